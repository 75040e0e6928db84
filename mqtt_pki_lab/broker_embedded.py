"""An MQTT broker inside Python, for ``pip install`` users: amqtt behind a mutual-TLS door we hold ourselves.

The broker's three files (``broker/ca.crt``, ``server.crt``, ``server.key``) go into the same strict TLS
context the in-memory handshake uses (:func:`~mqtt_pki_lab.tlscontext.broker_context`): a client
certificate is **required** and must be signed by ``broker/ca.crt``.

Why not amqtt's own TLS listener? amqtt 0.12 builds its listener context with
``verify_mode = CERT_OPTIONAL``: a client with *no* certificate gets in. Instead of patching amqtt, we
use its supported *external listener*: we accept the TCP connection, run the TLS handshake ourselves
(so we can record why a client was refused, as mosquitto logs it), and hand the encrypted stream to
:meth:`amqtt.broker.Broker.external_connected`. A small auth plugin, :class:`CertificateIdentityAuth`,
then does what mosquitto's ``use_identity_as_username true`` does: the Common Name of the client's
certificate becomes its MQTT username, whatever username the client typed. A certificate signed by the
right CA but with *no* Common Name names nobody: like mosquitto, the broker refuses that CONNECT
("not authorized") and logs why (``no Common Name: cannot tell the username``).

A client may hang up at any moment, even while amqtt is still closing a connection it refused; that is
a line in :attr:`EmbeddedBroker.log`, never a "Task exception was never retrieved" on stderr.

The broker runs its asyncio loop in a thread of its own, so it works the same from a plain script and
from a Jupyter kernel (whose thread already runs a loop). Use it as a context manager::

    with EmbeddedBroker("pki") as broker:       # listening on 127.0.0.1, a free port
        print(broker.port)
    # stopped: thread joined, port closed
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amqtt.adapters import StreamReaderAdapter, StreamWriterAdapter
from amqtt.broker import Broker
from amqtt.contexts import Action, BrokerConfig, ListenerConfig, ListenerType
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.session import Session
from cryptography import x509

from . import diagram as L
from .acl import Policy, may, policy_file_for, read_policy_file
from .certificates import common_name, display_name
from .crl import checked_broker_crl
from .errors import LabError
from .mqtt_client import check_side_files, openssl_reason
from .tlscontext import broker_context

#: The name of our single amqtt listener (amqtt requires one called ``default``).
LISTENER = "default"
#: How long a client may take to finish the TLS handshake before the broker hangs up.
HANDSHAKE_TIMEOUT = 10.0


#: Why a client whose certificate verified is still refused: it names nobody.
NO_COMMON_NAME = "the client certificate has no Common Name: cannot tell the username"


def peer_certificate(der: bytes | None) -> x509.Certificate | None:
    """The client's certificate, as the TLS layer verified it (DER bytes); None when there is none, or
    when it cannot be read (OpenSSL accepted it, but cryptography cannot parse it)."""
    if not der:
        return None
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError:
        return None


def certificate_identity(der: bytes | None) -> tuple[str | None, str | None]:
    """``(username, None)`` for a client certificate that names someone, else ``(None, why not)``.

    The username is the certificate's Common Name (:func:`~mqtt_pki_lab.certificates.common_name`), as
    mosquitto's ``use_identity_as_username`` reads it. A certificate can be signed by the right CA and
    still carry no Common Name (its subject only ``O=...``): TLS accepts it, but the broker cannot tell
    who it is, so mosquitto refuses the CONNECT with "bad user name or password", and so do we.
    """
    if not der:
        return None, "the client presented no certificate"
    cert = peer_certificate(der)
    if cert is None:
        return None, "the client certificate cannot be read"
    username = common_name(cert)
    if not username:
        return None, NO_COMMON_NAME
    return username, None


class CertificateIdentityAuth(BaseAuthPlugin):
    """amqtt auth plugin: the client certificate's Common Name becomes the MQTT username.

    Like mosquitto's ``use_identity_as_username true``: a session is accepted only if the TLS layer
    verified a client certificate that has a Common Name, and whatever username the client sent is
    replaced by the CN. A refused session gets a CONNACK "not authorized" from amqtt.
    """

    @dataclass
    class Config:
        """Plugin settings: ``on_login(client_id, username)`` is told of every accepted login,
        ``on_refuse(client_id, where, reason)`` of every refused one."""

        on_login: Any = None
        on_refuse: Any = None

    async def authenticate(self, *, session: Session) -> bool | None:
        ssl_object = session.ssl_object
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        username, why_not = certificate_identity(der)
        if username is None:
            if callable(self.config.on_refuse):
                where = f"{session.remote_address}:{session.remote_port}"
                self.config.on_refuse(session.client_id, where, why_not)
            return False
        session.username = username
        if callable(self.config.on_login):
            self.config.on_login(session.client_id, session.username)
        return True


class PolicyTopicCheck(BaseTopicPlugin):
    """amqtt topic plugin: the broker's policy (``broker/acl``) decides, as mosquitto's ``acl_file`` does.

    amqtt asks a topic plugin three questions (``Broker._topic_filtering``): may this session PUBLISH to a
    topic (refused: amqtt drops the message, the client still had its PUBACK), SUBSCRIBE to a filter (refused:
    SUBACK 0x80), and RECEIVE a message on a topic (refused: not delivered to it). We answer them as
    mosquitto 2.0.11 does with :func:`~mqtt_pki_lab.acl.may`: ``write`` for a PUBLISH, ``read`` for each
    delivery, and *every* subscription granted (mosquitto's acl_file does not check subscriptions; a forbidden
    one simply receives nothing). The username is the certificate's Common Name, set by
    :class:`CertificateIdentityAuth`. Each refusal is told to ``on_deny(client_id, username, what, topic)``.
    """

    @dataclass
    class Config:
        """Plugin settings: the :class:`~mqtt_pki_lab.acl.Policy` to enforce, and who hears of a refusal."""

        policy: Any = None
        on_deny: Any = None

    async def topic_filtering(self, *, session: Session | None = None, topic: str | None = None,
                              action: Action | None = None) -> bool | None:
        policy = self.config.policy
        if action == Action.SUBSCRIBE or not isinstance(policy, Policy) or session is None or topic is None:
            return True  # amqtt needs True here: None would count as a refusal
        what = "write" if action == Action.PUBLISH else "read"
        allowed = may(policy, session.username, topic, what, client_id=session.client_id)
        if not allowed and callable(self.config.on_deny):
            self.config.on_deny(session.client_id, session.username, what, topic)
        return allowed


def _plugin_path(plugin: type = CertificateIdentityAuth) -> str:
    return f"{plugin.__module__}.{plugin.__qualname__}"


class _Unread(asyncio.Protocol):
    """Holds a new TCP connection *unread* until the TLS layer takes it over.

    The client sends its ClientHello at once; had a stream reader read it first, the TLS layer would
    never see it. Pausing in ``connection_made`` (before asyncio registers the reader) keeps it in the
    socket for :meth:`asyncio.loop.start_tls`.
    """

    def __init__(self, on_connection: Callable[[asyncio.Transport], None]) -> None:
        self._on_connection = on_connection

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.pause_reading()
        self._on_connection(transport)


class EmbeddedBroker:
    """amqtt, listening on ``host`` (127.0.0.1) and a free port, requiring client certificates.

    ``files`` is a lab folder or a :class:`~mqtt_pki_lab.diagram.Side` (``ca``, ``cert``, ``key``).
    ``password`` unlocks an encrypted ``server.key``. :attr:`log` collects what the broker saw, in
    mosquitto's spirit: connections, refusals with OpenSSL's reason, logins.
    """

    def __init__(self, files: str | Path | L.Side, *, host: str = "127.0.0.1",
                 password: bytes | str | None = None, start_timeout: float = 15.0,
                 acl: str | Path | bool = True) -> None:
        self.side = files if isinstance(files, L.Side) else L.BROKER.side(files)
        self.acl = acl
        """The policy to enforce, as for mosquitto: True (default) the ``acl`` file beside ``server.crt`` (the
        lab's ``broker/acl``) when there is one, False none, or the path of a policy file."""
        self.policy: Policy | None = None
        """The policy in force once started (None: every client may use every topic)."""
        self.host = host
        self.port: int | None = None
        self.log: list[str] = []
        self.refusals: list[str] = []
        """Why each client was turned away, in order: OpenSSL's reason for a failed TLS handshake (the broker
        refused the client, or the client refused the broker: ``tlsv1 alert unknown ca``), or, for a
        certificate that verified but names nobody, :data:`NO_COMMON_NAME` (refused at CONNECT)."""
        self._password = password
        self._start_timeout = start_timeout
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready: concurrent.futures.Future[int] = concurrent.futures.Future()
        self._log_handler: logging.Handler | None = None

    # -- life cycle -------------------------------------------------------------------------------
    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> EmbeddedBroker:
        """Load the broker's files, start the broker thread, return once it listens."""
        if self._thread is not None:
            raise RuntimeError("this EmbeddedBroker was already started; make a new one")
        check_side_files(self.side, L.BROKER, self._password)
        checked_broker_crl(self.side)  # the revocation list the context loads: a bad one is named, not "server.crt"
        policy_file = policy_file_for(self.side, self.acl)
        self.policy = read_policy_file(policy_file) if policy_file is not None else None
        try:
            context = broker_context(self.side, self._password if self._password is not None else b"")
        except (ssl.SSLError, OSError) as exc:
            raise LabError(self.side.cert, f"the broker cannot load its files: {openssl_reason(exc)}") from None
        self._capture_amqtt_warnings()
        self._thread = threading.Thread(target=self._run, args=(context,), name="mqtt-pki-lab embedded broker",
                                        daemon=True)
        self._thread.start()
        try:
            self.port = self._ready.result(timeout=self._start_timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the broker, close its port and join its thread (safe to call twice)."""
        thread = self._thread
        if thread is not None and thread.is_alive():
            loop, stop = self._loop, self._stop
            if loop is not None and stop is not None:
                with contextlib.suppress(RuntimeError):  # the loop has already closed
                    loop.call_soon_threadsafe(stop.set)
            thread.join(timeout)
            if thread.is_alive():  # pragma: no cover - a stuck amqtt shutdown; never seen
                raise RuntimeError("the embedded broker did not stop in time")
        if self._log_handler is not None:
            logging.getLogger("amqtt").removeHandler(self._log_handler)
            self._log_handler = None

    # -- inside the broker thread ----------------------------------------------------------------
    def _run(self, context: ssl.SSLContext) -> None:
        try:
            asyncio.run(self._serve(context))
        except BaseException as exc:  # reported to start(); nothing else can catch it in this thread
            if not self._ready.done():
                self._ready.set_exception(exc)

    async def _serve(self, context: ssl.SSLContext) -> None:
        loop = self._loop = asyncio.get_running_loop()
        loop.set_exception_handler(self._on_loop_error)
        self._stop = asyncio.Event()
        # We own the listening socket: "a free port" has no race and needs no private attribute.
        sock = socket.create_server((self.host, 0), family=socket.AF_INET6 if ":" in self.host else socket.AF_INET)
        port = sock.getsockname()[1]
        config = BrokerConfig(
            listeners={LISTENER: ListenerConfig(type=ListenerType.EXTERNAL, bind=f"{self.host}:{port}")},
            plugins={_plugin_path(): {"on_login": self._on_login, "on_refuse": self._on_refuse},
                     **({_plugin_path(PolicyTopicCheck): {"policy": self.policy, "on_deny": self._on_deny}}
                        if self.policy is not None else {})},
        )
        broker = Broker(config)
        try:
            await broker.start()
        except BaseException:
            sock.close()
            raise
        handlers: set[asyncio.Task[None]] = set()

        def connection(transport: asyncio.Transport) -> None:
            task = loop.create_task(self._handle(broker, context, transport))
            handlers.add(task)
            task.add_done_callback(handlers.discard)

        server = await loop.create_server(lambda: _Unread(connection), sock=sock)
        self._say(f"listening on {self.host}:{port} (TLS, client certificate required, CA {self.side.ca})")
        self._ready.set_result(port)
        try:
            await self._stop.wait()
        finally:
            server.close()
            await broker.shutdown()
            for task in list(handlers):
                task.cancel()
            await asyncio.gather(*handlers, return_exceptions=True)
            await server.wait_closed()
            self._say("stopped")

    async def _handle(self, broker: Broker, context: ssl.SSLContext, transport: asyncio.Transport) -> None:
        """One client: the TLS handshake (recording a refusal), then hand the stream to amqtt.

        Nothing escapes this task: a client may hang up at any moment (even while amqtt is still closing
        a connection it refused), and that is a line in the log, not an error of the broker.
        """
        peer = transport.get_extra_info("peername")
        where = f"{peer[0]}:{peer[1]}" if peer else "?"
        try:
            await self._serve_client(broker, context, transport, where)
        except (ConnectionError, ssl.SSLError, OSError) as exc:
            words = exc.strerror if isinstance(exc, OSError) and exc.strerror else openssl_reason(exc)
            self._say(f"connection from {where} ended: {words}")  # the client hung up; nothing to fix here
            transport.close()
        except Exception as exc:  # amqtt's trouble with one client must not stop the broker
            self._say(f"connection from {where} failed inside amqtt: {type(exc).__name__}: {exc}")
            transport.close()

    async def _serve_client(self, broker: Broker, context: ssl.SSLContext, transport: asyncio.Transport,
                            where: str) -> None:
        loop = asyncio.get_running_loop()
        # Small MQTT packets must not wait for the peer's delayed ACK (40 ms on Linux): no Nagle.
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._say(f"new connection from {where}")
        reader = asyncio.StreamReader()
        protocol = asyncio.StreamReaderProtocol(reader)
        try:
            tls = await loop.start_tls(transport, protocol, context, server_side=True,
                                       ssl_handshake_timeout=HANDSHAKE_TIMEOUT)
        except (ssl.SSLError, OSError) as exc:
            reason = openssl_reason(exc)
            self.refusals.append(reason)
            self._say(f"TLS refused {where}: {reason}")
            transport.close()
            return
        if tls is None:  # the client hung up right after the handshake
            self._say(f"connection from {where} ended right after the TLS handshake")
            return
        protocol.connection_made(tls)
        writer = asyncio.StreamWriter(tls, protocol, reader, loop)
        ssl_object = tls.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        cert = peer_certificate(der)
        shown = f"CN={common_name(cert)}" if cert is not None and common_name(cert) else \
            (display_name(cert.subject) if cert is not None else "unreadable")
        self._say(f"TLS accepted {where}: client certificate {shown}")
        try:
            await broker.external_connected(StreamReaderAdapter(reader), StreamWriterAdapter(writer), LISTENER)
        finally:
            tls.close()

    def _on_login(self, client_id: str, username: str) -> None:
        self._say(f"client {client_id!r} logged in as username {username!r} (the certificate's CN)")

    def _on_refuse(self, client_id: str, where: str, reason: str) -> None:
        """A client whose certificate verified but names nobody: refused at CONNECT, like mosquitto does."""
        self.refusals.append(reason)
        self._say(f"refused client {client_id!r} from {where}: {reason}")

    def _on_deny(self, client_id: str, username: str | None, what: str, topic: str) -> None:
        """A PUBLISH or a delivery the policy refuses, in words (mosquitto logs ``Denied PUBLISH``)."""
        if what == "write":
            self._say(f"denied: {username!r} (client {client_id!r}) may not publish to {topic!r} (broker/acl gives "
                      "it no write access there); the message was dropped")
        else:
            self._say(f"denied: a message on {topic!r} was not delivered to {username!r} (client {client_id!r}): "
                      "broker/acl gives it no read access there")

    def _on_loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """Whatever asyncio would print on stderr ("Task exception was never retrieved"...) goes to the log."""
        exc = context.get("exception")
        detail = f": {type(exc).__name__}: {exc}" if exc is not None else ""
        self._say(f"asyncio: {context.get('message', 'error')}{detail}")

    def _say(self, line: str) -> None:
        self.log.append(line)

    def _capture_amqtt_warnings(self) -> None:
        """Send amqtt's warnings to :attr:`log` rather than to a notebook's stderr."""
        broker = self

        class ToLog(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                if record.thread == (broker._thread.ident if broker._thread else None):
                    broker._say(f"amqtt: {record.getMessage()}")

        self._log_handler = ToLog(logging.WARNING)
        logging.getLogger("amqtt").addHandler(self._log_handler)
