"""A running broker: does it present the lab's ``broker/server.crt``, or a certificate it loaded long ago?

``verify`` proves the *files*: the broker's three files and the client's work together. A broker that runs is
another matter: it read ``server.crt`` when it started (or at its last reload) and presents that copy, held
in memory, until it is told to read it again. After a renewal (day-two step 12, ``mqtt-pki-lab renew DIR
broker``) the file is new and the running broker still presents the old certificate, until it gets SIGHUP
(mosquitto 2.0: "TLS certificates for the server are now reloaded on SIGHUP", its ChangeLog for 2.0.0;
``mosquitto(8)``, SIGNALS) or a restart. Nothing on disk shows that; only a connection does.

:func:`presented_chain` connects as a client does (``openssl s_client -connect HOST:PORT -showcerts`` shows the
same): first with the lab's client's ``ca.crt``, the name check and, when given, the client's certificate,
so that what the lab's client would say is recorded; when that refuses, a second, unverified connection only
*looks* at the chain the broker sends (RFC 8446 §4.4.2: its certificate first, then each one certifying the
one before). :func:`check_live` compares that chain with ``broker/server.crt`` and with the certificates a
renewal replaced (kept in ``backups/<UTC time>/broker/`` by :func:`~mqtt_pki_lab.renew.renew`):

* the same certificate (and chain): a pass;
* the certificate ``server.crt`` replaced, or an older one of the broker's (same names, same key or signed by
  the lab's CA): the broker was not reloaded (code ``not-reloaded``; step 12, or 17 when the old one was signed
  by the root a CA rotation replaced);
* the same leaf with another chain: the broker's ``certfile`` is not ``server.crt`` (code ``live-chain``);
* anything else: the broker is not running on this lab's files (code ``not-this-lab``).

>>> presented = presented_chain("127.0.0.1", 8883, "pki/client/ca.crt")   # doctest: +SKIP
>>> print(check_live(LabFiles.load("pki"), presented))                     # doctest: +SKIP
[pass] live broker: the broker at 127.0.0.1:8883 presents broker/server.crt, serial 5f0c...
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from . import diagram as L
from .certificates import display_name, extension_value, host_names, signed_by
from .checks import Check, LabFiles
from .diagnose import Diagnosis
from .diagram import RENEW_STEP, ROTATE_STEPS
from .errors import InputError, LabError
from .handshake import _words
from .keys import same_public_key
from .names import check_host_name
from .pem import load_certificates
from .renew import BACKUPS_FOLDER
from .tlscontext import client_context

__all__ = ["LIVE_CHECK", "Presented", "check_live", "listening_process", "parse_address", "presented_chain"]

#: The name of verify's row for the running broker.
LIVE_CHECK = "live broker"
#: Seconds to wait for the broker to accept and finish the handshake.
LIVE_TIMEOUT = 5.0


def parse_address(live: str | tuple[str, int]) -> tuple[str, int]:
    """``"HOST:PORT"`` (``127.0.0.1:8883``, ``localhost:8883``, ``[::1]:8883``) or ``(host, port)``, checked.

    Raises :class:`~mqtt_pki_lab.errors.InputError` naming ``--live`` for anything else.
    """
    if isinstance(live, tuple) and len(live) == 2:
        host, port = live
    elif isinstance(live, str):
        host, sep, port = live.rpartition(":")
        if not sep or not host:
            raise InputError("--live", f"{live!r} is not HOST:PORT; give the broker's address, e.g. 127.0.0.1:8883")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        elif ":" in host:
            raise InputError("--live", f"{live!r}: write an IPv6 address in brackets, e.g. [::1]:8883")
    else:
        raise InputError("--live", f"{live!r} is neither 'HOST:PORT' nor a (host, port) pair")
    if isinstance(port, str):
        port = int(port) if port.isdigit() else -1
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise InputError("--live", f"the port of {live!r} must be a number from 1 to 65535 (mosquitto's TLS "
                                   "listener is usually 8883)")
    return check_host_name(str(host), "--live"), port


def _where(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True)
class Presented:
    """What a TLS server presented to a client that connected to it: its chain, and the client's verdict."""

    host: str
    port: int
    chain: tuple[x509.Certificate, ...]
    """The certificates the server sent, its own first (the leaf), then its chain (an intermediate)."""
    server_name: str
    """The name the client asked for (SNI) and checked the certificate against."""
    refused: str | None = None
    """OpenSSL's words when the client refused the certificate (``certificate verify failed: certificate has
    expired``); None when it accepted it, or when no ``ca.crt`` was given to check it with."""
    checked: bool = True
    """False when no ``ca.crt`` was given: the chain was only looked at."""
    tls_version: str | None = None

    @property
    def leaf(self) -> x509.Certificate:
        """The server's own certificate."""
        return self.chain[0]

    @property
    def address(self) -> str:
        """``host:port`` (``[::1]:8883`` for IPv6)."""
        return _where(self.host, self.port)

    def __str__(self) -> str:
        extra = len(self.chain) - 1
        more = f" (+{extra} chain certificate{'s' * (extra > 1)})" if extra else ""
        verdict = "" if not self.checked else (
            "; the client accepts it" if self.refused is None else f"; the client refuses it: {self.refused}")
        return (f"{self.address} presents CN={display_name(self.leaf.subject)}, serial {self.leaf.serial_number:x}"
                f"{more}{verdict}")


def _chain_of(tls: ssl.SSLSocket) -> tuple[x509.Certificate, ...]:
    """The chain the server sent, as sent. ``SSLSocket.get_unverified_chain`` is public from Python 3.13
    (DER bytes); 3.10-3.12 have the same OpenSSL call (``SSL_get_peer_cert_chain``) on the private object."""
    public = getattr(tls, "get_unverified_chain", None)
    if public is not None:
        ders = list(public() or ())
    else:
        found = getattr(tls._sslobj, "get_unverified_chain", lambda: None)() or ()  # type: ignore[union-attr]
        ders = [cert.public_bytes(ssl._ssl.ENCODING_DER) for cert in found]  # type: ignore[attr-defined]
    if not ders:  # an SSL library without the chain call: the leaf at least
        leaf = tls.getpeercert(binary_form=True)
        ders = [leaf] if leaf else []
    return tuple(x509.load_der_x509_certificate(der) for der in ders)


def _connect(host: str, port: int, timeout: float) -> socket.socket:
    where = _where(host, port)
    try:
        return socket.create_connection((host, port), timeout=timeout)
    except ConnectionRefusedError:
        raise InputError(where, "nothing is listening there (connection refused): start the broker, or give "
                                "the port of its TLS listener (--live HOST:PORT)") from None
    except socket.gaierror as exc:
        raise InputError("--live", f"{host!r}: no such host ({exc.strerror})") from None
    except TimeoutError:
        raise InputError(where, f"no answer within {timeout:g} s (a firewall, or the wrong address)") from None
    except OSError as exc:
        raise InputError(where, f"cannot connect ({_words(exc)})") from None


def _handshake(host: str, port: int, context: ssl.SSLContext, server_name: str,
               timeout: float) -> tuple[tuple[x509.Certificate, ...], str | None]:
    """Connect, finish the TLS handshake, return the chain seen and the TLS version; then hang up."""
    with _connect(host, port, timeout) as raw, context.wrap_socket(raw, server_hostname=server_name) as tls:
        return _chain_of(tls), tls.version()


def _silent(where: str, timeout: float) -> InputError:
    return InputError(where, f"no TLS handshake within {timeout:g} s: is this the broker's TLS listener?")


def presented_chain(host: str, port: int, ca: str | Path | None = None, *, server_name: str = "localhost",
                    client: L.Side | None = None, password: bytes | str | None = None,
                    timeout: float = LIVE_TIMEOUT) -> Presented:
    """The certificate chain the TLS server at ``host:port`` presents, seen as the lab's client sees it.

    With ``ca`` (the client's ``ca.crt``) the first connection verifies as the client does (strict X.509, the
    name ``server_name`` in the subjectAltName, and ``client``'s certificate presented when given: a
    :class:`~mqtt_pki_lab.diagram.Side`), and :attr:`Presented.refused` keeps OpenSSL's words when it refuses;
    then, or without ``ca``, an unverified connection *looks* at the chain (so an expired or foreign
    certificate is seen too). Raises :class:`~mqtt_pki_lab.errors.InputError` with one line when nothing
    listens there, or what listens does not speak TLS (plain MQTT on 1883, say).
    """
    where = _where(host, port)
    side = L.Side(Path(ca), client.cert if client else None, client.key if client else None) if ca else None  # type: ignore[arg-type]
    refused: str | None = None
    if side is not None:
        try:
            chain, version = _handshake(host, port, client_context(side, password), server_name, timeout)
            if chain:
                return Presented(host, port, chain, server_name, None, True, version)
        except ssl.SSLError as exc:  # refused by the client (verify failed), or by the server: look anyway
            refused = _words(exc)
        except ConnectionError:  # closed mid-handshake: the look below says why
            pass
        except TimeoutError:
            raise _silent(where, timeout) from None
    look = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    look.check_hostname = False
    look.verify_mode = ssl.CERT_NONE  # only to *see* what the server presents, whatever it is
    if client is not None and client.cert is not None and client.key is not None:
        try:
            look.load_cert_chain(str(client.cert), str(client.key), password=password)
        except (ssl.SSLError, OSError) as exc:
            raise InputError(client.cert, f"cannot be presented with {client.key.name} ({_words(exc)})") from None
    try:
        chain, version = _handshake(host, port, look, server_name, timeout)
    except (ssl.SSLError, ConnectionError) as exc:
        raise InputError(where, f"does not speak TLS ({_words(exc)}): is this the broker's TLS listener "
                                "(usually 8883), not plain MQTT (1883)?") from None
    except TimeoutError:
        raise _silent(where, timeout) from None
    if not chain:
        raise LabError(where, "the server presented no certificate")
    return Presented(host, port, chain, server_name, refused, side is not None, version)


# --- who is listening: the process to send SIGHUP to -----------------------------------------------------------

def _listening_sockets(port: int) -> set[str]:
    """The ``socket:[INODE]`` links of TCP sockets listening on ``port`` (Linux: ``/proc/net/tcp``, ``tcp6``)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()  # sl local_address rem_address st ... inode (st 0A: LISTEN)
            if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rpartition(":")[2], 16) == port:
                found.add(f"socket:[{fields[9]}]")
    return found


def listening_process(port: int) -> tuple[int, str] | None:
    """(process id, program name) of the process on this machine that listens on TCP ``port``, or None.

    Read from Linux's ``/proc`` (what ``ss -ltnp`` shows); None on other systems, and for another user's
    process when we are not root (its open files are not ours to see).
    """
    sockets = _listening_sockets(port)
    if not sockets:
        return None
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fds = os.listdir(proc / "fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(proc / "fd" / fd) in sockets:
                    return int(proc.name), (proc / "comm").read_text().strip()
            except OSError:
                continue
    return None


def _is_local(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _reload_fix(presented: Presented) -> str:
    """How to make the broker read its files again, with its process id when it runs here."""
    found = listening_process(presented.port) if _is_local(presented.host) else None
    hup = ("mosquitto 2.0 reads certfile and keyfile again on SIGHUP, without a restart and without dropping "
           "connected clients")
    if found is None:
        return (f"make the broker read its files again: kill -HUP PID (or systemctl reload mosquitto): {hup}; or "
                "restart it. Then run verify --live again.")
    pid, program = found
    if pid == os.getpid():
        return ("restart the broker: it runs inside this Python process (the embedded broker), which reads its "
                "files only when it starts. Then run verify --live again.")
    if program == "mosquitto":
        return (f"make mosquitto (process {pid}) read its files again: kill -HUP {pid} (or systemctl reload "
                f"mosquitto): {hup}. Then run verify --live again.")
    return (f"restart the broker ({program}, process {pid}); if it is mosquitto 2.0, kill -HUP {pid} is "
            "enough. Then run verify --live again.")


# --- the comparison -------------------------------------------------------------------------------------------

def _replaced(root: Path, leaf: x509.Certificate) -> str | None:
    """The backup of ``broker/server.crt`` that holds ``leaf`` (``backups/<UTC time>/broker/server.crt``,
    written by a renewal or a rotation), or None. Unreadable backups and links are passed over."""
    backups = root / BACKUPS_FOLDER
    try:
        if backups.is_symlink() or not backups.is_dir():
            return None
        stamps = sorted(os.listdir(backups), reverse=True)
    except OSError:
        return None
    for stamp in stamps:
        path = backups / stamp / L.BROKER.folder / L.SERVER_CERT.name
        if any(p.is_symlink() for p in (path.parent.parent, path.parent, path)) or not path.is_file():
            continue
        try:
            if load_certificates(path)[0] == leaf:
                return path.relative_to(root).as_posix()
        except (LabError, OSError):
            continue
    return None


def _older_self(files: LabFiles, leaf: x509.Certificate, current: x509.Certificate) -> bool:
    """True when ``leaf`` is an earlier certificate of the lab's broker: the same subject and names, issued
    before ``current``, for the same key or signed by one of the lab's CAs."""
    if leaf.subject != current.subject or sorted(host_names(leaf)) != sorted(host_names(current)):
        return False
    if leaf.not_valid_before_utc >= current.not_valid_before_utc:
        return False
    cas = [c for c in (files.certs.get(L.CA_CERT), files.intermediate, files.next_root) if c is not None]
    return same_public_key(leaf.public_key(), current.public_key()) or any(signed_by(leaf, ca) for ca in cas)


def _key_id(cert: x509.Certificate) -> bytes | None:
    aki = extension_value(cert, x509.AuthorityKeyIdentifier)
    return aki.key_identifier if aki is not None else None


def _day(moment: dt.datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"


def _refusal(presented: Presented) -> str:
    return f" (the lab's client refuses it: {presented.refused})" if presented.refused else ""


def _not_reloaded(files: LabFiles, presented: Presented, current: x509.Certificate, backup: str | None) -> Check:
    old = presented.leaf
    # re-issued under a new root (a CA rotation, step 17) rather than renewed (step 12)
    step = ROTATE_STEPS[1] if _key_id(old) != _key_id(current) else RENEW_STEP
    known = (f"it is the certificate {backup} keeps, the one broker/server.crt replaced" if backup else
             f"it is an older certificate of the broker (same names, notBefore {_day(old.not_valid_before_utc)})")
    rel = L.SERVER_CERT.relpath
    problem = (f"the running broker at {presented.address} still presents the certificate it loaded at start "
               f"(serial {old.serial_number:x}, notAfter {_day(old.not_valid_after_utc)}) and not {rel} (serial "
               f"{current.serial_number:x}, notAfter {_day(current.not_valid_after_utc)}): {known}.")
    return Check(LIVE_CHECK, "fail",
                 f"{presented.address} presents serial {old.serial_number:x}, not {rel}'s {current.serial_number:x} "
                 f"(not reloaded since the {'renewal' if step == RENEW_STEP else 're-issue'}){_refusal(presented)}",
                 Diagnosis(step.number, rel, problem, _reload_fix(presented), "not-reloaded"))


def _not_this_lab(presented: Presented, current: x509.Certificate) -> Check:
    leaf, rel = presented.leaf, L.SERVER_CERT.relpath
    problem = (f"the broker at {presented.address} is not running on this lab's files: it presents "
               f"CN={display_name(leaf.subject)} (serial {leaf.serial_number:x}, issued by "
               f"CN={display_name(leaf.issuer)}), which is neither {rel} (serial {current.serial_number:x}) nor a "
               f"certificate it replaced{_refusal(presented)}.")
    fix = (f"point the broker's certfile and keyfile at this lab's {rel} and {L.SERVER_KEY.relpath} (mqtt-pki-lab "
           "export mosquitto-conf DIR writes those lines) and restart it; or check the address: is this the broker "
           "you meant?")
    return Check(LIVE_CHECK, "fail", f"{presented.address} presents CN={display_name(leaf.subject)}, serial "
                                     f"{leaf.serial_number:x}: not {rel}",
                 Diagnosis(None, rel, problem, fix, "not-this-lab"))


def _other_chain(presented: Presented, current: x509.Certificate, expected: tuple[x509.Certificate, ...]) -> Check:
    rel, sent = L.SERVER_CERT.relpath, len(presented.chain) - 1
    problem = (f"the broker at {presented.address} presents {rel}'s certificate (serial {current.serial_number:x}) "
               f"with {sent} chain certificate{'s' * (sent != 1)} after it, where {rel} holds {len(expected)} "
               f"({', '.join('CN=' + display_name(c.subject) for c in expected) or 'the leaf alone'}): its certfile "
               f"is another file than {rel}{_refusal(presented)}.")
    fix = (f"make the broker's certfile {rel} itself (the leaf, then the intermediate's certificate), then reload "
           "it (mosquitto: kill -HUP PID) or restart it.")
    return Check(LIVE_CHECK, "fail", f"{presented.address} presents {rel}'s certificate with another chain",
                 Diagnosis(None, rel, problem, fix, "live-chain"))


def _sent_chain(files: LabFiles, presented: Presented) -> tuple[x509.Certificate, ...]:
    """The chain after the leaf, without the lab's root at its end. OpenSSL (so mosquitto) completes a chain
    from its ``cafile`` when ``certfile`` holds the leaf alone, and then sends the root too; RFC 8446 §4.4.2
    allows that (a trust anchor "MAY be omitted"), and it is not a different certificate."""
    roots = {*files.anchors(L.BROKER_CA), *files.anchors(L.CA_CERT)}
    chain = presented.chain[1:]
    while chain and chain[-1] in roots:
        chain = chain[:-1]
    return chain


def check_live(files: LabFiles, presented: Presented) -> Check:
    """verify's row for a running broker: does the chain it presents match ``broker/server.crt``?

    A pass names the serial; a failure carries a :class:`~mqtt_pki_lab.diagnose.Diagnosis`: ``not-reloaded``
    (step 12, or 17 after a CA rotation's re-issue: the broker still presents the certificate it loaded at
    start), ``live-chain`` (the right leaf with another chain) or ``not-this-lab``.
    """
    rel = L.SERVER_CERT.relpath
    current = files.certs.get(L.SERVER_CERT)
    if current is None:
        return Check(LIVE_CHECK, "fail", f"{presented.address} presents serial {presented.leaf.serial_number:x}, "
                                         f"but {rel} is missing or unreadable: nothing to compare it with")
    leaf = presented.leaf
    if leaf == current:
        expected = files.chains.get(L.SERVER_CERT, ())
        if _sent_chain(files, presented) != expected:
            return _other_chain(presented, current, expected)
        chain = " with intermediate/intermediate.crt after it" if files.intermediate in expected else ""
        verdict = "" if not presented.checked else (
            "; the lab's client accepts it" if presented.refused is None else
            f"; the lab's client refuses it: {presented.refused} (see the checks above)")
        return Check(LIVE_CHECK, "pass", f"the broker at {presented.address} presents {rel}{chain}, serial "
                                         f"{current.serial_number:x}{verdict}")
    backup = _replaced(files.root, leaf)
    if backup is not None or _older_self(files, leaf, current):
        return _not_reloaded(files, presented, current, backup)
    return _not_this_lab(presented, current)
