"""A real MQTT client over mutual TLS: paho-mqtt, on the lab's strict client context.

:func:`mqtt_round_trip` connects with the client's three files, subscribes to a topic, publishes one
message at QoS 1 and waits for that same message to come back through the broker. It never takes
"``connect()`` did not raise" as success: with TLS 1.3 the client finishes its half of the handshake
*before* the broker has checked the client's certificate, so a broker that refuses the certificate
lets ``connect()`` return and hangs up a moment later. Only the broker's CONNACK proves we are in.

Every outcome is a :class:`RoundTrip`: who refused (the ``broker`` or the ``client``) and OpenSSL's
words for why, the same words the in-memory handshake reports.
"""

from __future__ import annotations

import re
import ssl
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from . import diagram as L
from .errors import InputError
from .tlscontext import client_context

#: Topic the round trip uses for a client without a readable certificate (a unique suffix is added).
TOPIC_PREFIX = "mqtt-pki-lab/round-trip"
#: Where a client's own topics are under the lab's default policy (``pattern readwrite devices/%u/#``).
OWN_TOPIC_PREFIX = "devices"
_SSL_CODE = re.compile(r"\[SSL: ([A-Z0-9_]+)\]")
_SSL_C = re.compile(r"\(_ssl\.c:\d+\)")
_RECEIVE_FAILED = "failed to receive on socket: "


def openssl_reason(exc: BaseException) -> str:
    """OpenSSL's reason for a TLS failure, in the words the in-memory handshake uses.

    ``certificate verify failed: unable to get local issuer certificate``, ``peer did not return a
    certificate``, ``tlsv13 alert certificate required``...
    """
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {exc.verify_message}"
    reason = getattr(exc, "reason", None)
    if isinstance(reason, str) and reason:
        return reason.lower().replace("_", " ")
    match = _SSL_CODE.search(str(exc))
    if match:
        return match.group(1).lower().replace("_", " ")
    return str(exc) or type(exc).__name__


def _whose(role: L.Role | str, what: str) -> str:
    """``the broker's private key``, ``the client's ca.crt``, ``the certificate of client 'sensor-1'``."""
    if isinstance(role, str):
        return f"the {role}'s {what}"
    return f"{role.label}'s {what}" if role.label.startswith("the ") else f"the {what} of {role.label}"


def check_side_files(side: L.Side, role: L.Role | str, password: bytes | str | None = None) -> None:
    """Raise :class:`InputError` naming the first of ``side``'s files that is missing or unusable.

    ``role`` is whose files they are (a :class:`~mqtt_pki_lab.diagram.Role`, or ``"broker"`` /
    ``"client"``), so that the message says which client's file is missing. A key that is there is
    also opened, so that a wrong or missing passphrase is explained before any broker starts.
    """
    from .keys import load_private_key

    owner = role if isinstance(role, L.Role) else {"broker": L.BROKER, "client": L.FIRST_CLIENT}.get(role)
    for path, what in ((side.ca, "ca.crt"), (side.cert, "certificate"), (side.key, "private key")):
        if path is not None and not Path(path).is_file():
            hint = f"Build the lab first: mqtt-pki-lab build {_lab_of(Path(path), owner)}"
            if owner is not None and owner.kind == "client" and owner != L.FIRST_CLIENT:
                hint = f"Make its files (arrows 6-9): mqtt-pki-lab add-client {_lab_of(Path(path), owner)} {owner.name}"
            raise InputError(path, f"missing: {_whose(role, what)}. {hint}")
    from .pem import load_certificate

    for path in (side.ca, side.cert):
        if path is not None:
            load_certificate(path)  # a CSR or a key where a certificate belongs is named now
    if side.key is not None:
        load_private_key(side.key, password)  # explains a wrong or missing passphrase


def _lab_of(path: Path, role: L.Role | None) -> Path:
    """The lab folder that holds ``path``, a file of ``role`` (``clients/NAME/`` is two folders deep)."""
    depth = len(role.folder.split("/")) if role is not None else 1
    return path.parents[depth] if len(path.parents) > depth else path.parent


@dataclass(frozen=True)
class RoundTrip:
    """What happened when a client tried to go through the broker and back."""

    ok: bool
    """True when the client got its own QoS 1 message back."""
    stage: str
    """How far it got: ``tcp``, ``tls``, ``connack``, ``subscribe``, ``message`` or ``done``."""
    refused_by: str | None = None
    """``broker`` or ``client`` when one side refused the other; None when nobody refused."""
    reason: str | None = None
    """OpenSSL's (or MQTT's) words for the failure."""
    seconds: float = 0.0
    log: tuple[str, ...] = field(default=(), repr=False)
    """paho-mqtt's own log lines."""

    def __str__(self) -> str:
        if self.ok:
            return f"round trip OK in {self.seconds * 1000:.0f} ms: CONNACK, SUBACK, PUBLISH (QoS 1), message back"
        who = f"the {self.refused_by} refused" if self.refused_by else "failed"
        return f"round trip stopped at {self.stage}: {who}: {self.reason}"


class _Events:
    """The client's callbacks, turned into events the caller waits for."""

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self.changed = threading.Event()
        """Set by every callback: wakes :meth:`wait`."""
        self.connack = threading.Event()
        self.gone = threading.Event()
        self.subscribed = threading.Event()
        self.received = threading.Event()
        self.connack_failure: str | None = None
        self.suback_failure: str | None = None
        self.disconnect_reason: str | None = None
        self.log: list[str] = []

    def on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self.connack_failure = f"CONNACK: {reason_code}"
        self.connack.set()
        self.changed.set()

    def on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.disconnect_reason = str(reason_code)
        self.gone.set()
        self.changed.set()

    def on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        failures = [str(code) for code in reason_codes if code.is_failure]
        if failures:
            self.suback_failure = f"SUBACK: {', '.join(failures)}"
        self.subscribed.set()
        self.changed.set()

    def on_message(self, client, userdata, message) -> None:
        if message.payload == self.payload:
            self.received.set()
            self.changed.set()

    def on_log(self, client, userdata, level, text) -> None:
        self.log.append(text)

    def tls_reason(self) -> str | None:
        """The last socket error paho logged: OpenSSL's reason (``tlsv1 alert unknown ca``) or, when the
        broker hung up without a TLS alert, what the socket said (``EOF occurred in violation of protocol``)."""
        for line in reversed(self.log):
            match = _SSL_CODE.search(line)
            if match:
                return match.group(1).lower().replace("_", " ")
            if line.startswith(_RECEIVE_FAILED):
                return "the broker hung up: " + _SSL_C.sub("", line[len(_RECEIVE_FAILED):]).strip()
        return None

    def wait(self, event: threading.Event, deadline: float) -> bool:
        """Wait until ``event`` is set or the connection is gone; False when ``deadline`` passes first."""
        while True:
            self.changed.clear()  # before looking, so a callback that fires meanwhile is not missed
            if event.is_set() or self.gone.is_set():
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.changed.wait(remaining)


def round_trip_topic(files: L.Side) -> str:
    """The topic a round trip uses unless told: ``devices/<the certificate's Common Name>/round-trip-<random>``.

    The Common Name is the client's MQTT username (``use_identity_as_username``), and the lab's default policy
    (``broker/acl``) lets every client read and write ``devices/<its username>/#``: the round trip stays inside
    what the client may do. Without a readable certificate: ``mqtt-pki-lab/round-trip/<random>``.
    """
    from .certificates import common_name
    from .errors import LabError
    from .pem import load_certificate

    suffix = uuid.uuid4().hex[:8]
    try:
        name = common_name(load_certificate(files.cert)) if files.cert is not None else None
    except LabError:
        name = None
    if not name or any(c in name for c in "/+#"):
        return f"{TOPIC_PREFIX}/{suffix}"
    return f"{OWN_TOPIC_PREFIX}/{name}/round-trip-{suffix}"


def paho_client(files: L.Side, *, password: bytes | str | None = None, client_id: str | None = None,
                check_hostname: bool = True):
    """A paho-mqtt 2.x client (callback API version 2, MQTT 3.1.1) on the lab's strict TLS context."""
    import paho.mqtt.client as mqtt

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                         client_id=client_id or f"mqtt-pki-lab-{uuid.uuid4().hex[:8]}",
                         protocol=mqtt.MQTTv311, reconnect_on_failure=False)
    client.tls_set_context(client_context(files, password, check_hostname=check_hostname))
    return client


def mqtt_round_trip(host: str, port: int, files: L.Side, *, password: bytes | str | None = None,
                    topic: str | None = None, timeout: float = 5.0) -> RoundTrip:
    """Connect with ``files``, subscribe, publish at QoS 1, wait for the message to come back.

    ``files.cert``/``files.key`` may be None (a client with no certificate). Never raises for a
    refusal: the :class:`RoundTrip` says who refused and why.
    """
    started = time.monotonic()
    deadline = started + timeout
    topic = topic or round_trip_topic(files)
    payload = f"hello over mutual TLS {uuid.uuid4().hex[:8]}".encode()
    events = _Events(payload)
    try:
        client = paho_client(files, password=password if password is not None else b"")
    except (ssl.SSLError, OSError) as exc:
        return RoundTrip(False, "tls", "client", f"the client cannot load its files: {openssl_reason(exc)}")
    for name in ("on_connect", "on_disconnect", "on_subscribe", "on_message", "on_log"):
        setattr(client, name, getattr(events, name))
    client.connect_timeout = timeout

    def result(ok: bool, stage: str, refused_by: str | None = None, reason: str | None = None) -> RoundTrip:
        return RoundTrip(ok, stage, refused_by, reason, time.monotonic() - started, tuple(events.log))

    try:
        client.connect(host, port, keepalive=30)
    except ssl.SSLError as exc:
        reason = openssl_reason(exc)
        # A TLS alert *received* means the broker refused during the handshake (TLS 1.2 does that).
        refused_by = "broker" if "alert" in reason and "certificate verify failed" not in reason else "client"
        return result(False, "tls", refused_by, reason)
    except TimeoutError:
        return result(False, "tls", None, f"{host}:{port} accepted the connection but did not answer the TLS "
                                          f"handshake within {timeout:g} s")
    except OSError as exc:
        return result(False, "tcp", None, f"cannot reach {host}:{port}: {exc.strerror or exc}")

    client.loop_start()
    try:
        if not events.wait(events.connack, deadline):
            return result(False, "connack", None, f"no CONNACK from the broker within {timeout:g} s")
        if not events.connack.is_set():
            reason = events.tls_reason() or \
                f"the broker closed the connection before CONNACK ({events.disconnect_reason})"
            return result(False, "tls", "broker", reason)
        if events.connack_failure:
            return result(False, "connack", "broker", events.connack_failure)
        client.subscribe(topic, qos=1)
        if not events.wait(events.subscribed, deadline) or not events.subscribed.is_set():
            return result(False, "subscribe", None, "no SUBACK from the broker")
        if events.suback_failure:
            return result(False, "subscribe", "broker", events.suback_failure)
        client.publish(topic, payload, qos=1)
        if not events.wait(events.received, deadline) or not events.received.is_set():
            return result(False, "message", None, f"our own message did not come back within {timeout:g} s")
        return result(True, "done")
    finally:
        client.disconnect()
        client.loop_stop()
