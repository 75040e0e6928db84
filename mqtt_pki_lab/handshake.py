"""Arrow 10 of the diagram: prove that the broker's files and the client's files trust each other.

The handshake runs *in memory*: two :class:`ssl.SSLObject` talk through :class:`ssl.MemoryBIO` buffers,
with no socket, no port and no thread. It is the same TLS code a real broker and client run, so it
fails for the same reasons, and it takes milliseconds, so a whole class can run it on one machine.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from html import escape
from pathlib import Path

from cryptography import x509

from . import diagram as L
from .certificates import display_name, san_names
from .diagnose import Diagnosis, diagnose_tls_failure
from .steps import StepResult
from .tlscontext import broker_context, client_context


@dataclass(frozen=True)
class PeerView:
    """What one side saw of the other's certificate."""

    subject: str
    issuer: str
    names: tuple[str, ...]

    @classmethod
    def from_der(cls, der: bytes | None) -> PeerView | None:
        if not der:
            return None
        cert = x509.load_der_x509_certificate(der)
        return cls(f"CN={display_name(cert.subject)}", f"CN={display_name(cert.issuer)}", tuple(san_names(cert)))

    def __str__(self) -> str:
        return f"{self.subject} (issued by {self.issuer}; SAN {', '.join(self.names) or 'none'})"


@dataclass(frozen=True)
class HandshakeResult:
    """The outcome of a mutual-TLS handshake between the broker's and the client's files."""

    ok: bool
    hostname: str
    tls_version: str | None = None
    cipher: str | None = None
    broker_saw: PeerView | None = None
    """The client's certificate, as the broker saw it."""
    client_saw: PeerView | None = None
    """The broker's certificate, as the client saw it."""
    refused_by: str | None = None
    """``broker`` or ``client``: the side that refused, when the handshake failed."""
    reason: str | None = None
    """OpenSSL's words for the failure, e.g. ``certificate verify failed: unable to get local issuer...``."""
    alert: str | None = None
    """What the other side was told, as its log would say it (e.g. ``tlsv1 alert unknown ca``)."""
    diagnosis: Diagnosis | None = field(default=None, compare=False)
    """Which arrow of the diagram went wrong and how to fix it, from OpenSSL's words alone."""

    def __str__(self) -> str:
        if self.ok:
            return (f"handshake PASSED ({self.tls_version}, {self.cipher}), client connected to "
                    f"{self.hostname!r}\n  broker saw client: {self.broker_saw}\n"
                    f"  client saw broker: {self.client_saw}")
        text = f"handshake FAILED: the {self.refused_by or 'setup'} refused: {self.reason}"
        if self.alert:
            text += f"\n  the {_other(self.refused_by)} was told: {self.alert}"
        if self.diagnosis is not None:
            text += f"\n  {self.diagnosis}"
        return text

    def _repr_html_(self) -> str:
        colour, title = ("#1b7f3b", "Handshake passed") if self.ok else ("#b3261e", "Handshake failed")
        rows = [("client connected to", self.hostname)]
        if self.ok:
            rows += [("TLS", f"{self.tls_version}, {self.cipher}"), ("broker saw client", str(self.broker_saw)),
                     ("client saw broker", str(self.client_saw))]
        else:
            rows += [("refused by", self.refused_by or "setup"), ("OpenSSL said", self.reason or "")]
            if self.alert:
                rows.append((f"the {_other(self.refused_by)} was told", self.alert))
            if self.diagnosis is not None:
                rows.append(("diagnosis", str(self.diagnosis)))
        body = "".join(f"<tr><th style='text-align:left;padding-right:1em'>{escape(k)}</th>"
                       f"<td>{escape(v)}</td></tr>" for k, v in rows)
        return (f"<div style='border-left:6px solid {colour};padding:4px 10px'>"
                f"<b style='color:{colour}'>{title}</b><table>{body}</table></div>")


def _pump(source: ssl.MemoryBIO, target: ssl.MemoryBIO) -> bool:
    data = source.read()
    if data:
        target.write(data)
    return bool(data)


def _other(side: str | None) -> str:
    return {"broker": "client", "client": "broker"}.get(side or "", "other side")


def handshake_contexts(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, hostname: str,
                       max_rounds: int = 50, *, client_role: L.Role = L.FIRST_CLIENT) -> HandshakeResult:
    """Run a TLS handshake in memory between two ready contexts; never raises for TLS failures.

    The two sides take turns: each one runs as far as it can, then its output is delivered to the
    other, until both are done or one refuses. The refusal is reported with the refusing side's own
    words, and the alert the other side received, as each side's log would show them.
    """
    s_in, s_out, c_in, c_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname=hostname)
    ends = {"client": (client, c_out, s_in), "broker": (server, s_out, c_in)}
    done = {"broker": False, "client": False}
    for _ in range(max_rounds):
        moved = False
        for name, (obj, out, peer_in) in ends.items():
            if not done[name]:
                try:
                    obj.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
                except ssl.SSLError as exc:
                    return _failure(hostname, name, exc, ends, done, client_role)
            moved |= _pump(out, peer_in)
        if all(done.values()) or not moved:
            break
    # TLS 1.3: the client may finish before the broker has checked its certificate. A round trip of
    # application data makes any refusal by the broker visible, as it would be on a socket.
    for name, message in (("client", b"ping"), ("broker", b"pong")):
        obj, out, peer_in = ends[name]
        peer = _other(name)
        try:
            obj.write(message)
            _pump(out, peer_in)
            ends[peer][0].read(4)
        except ssl.SSLError as exc:
            return _failure(hostname, peer, exc, ends, done, client_role)
    return HandshakeResult(
        ok=True, hostname=hostname, tls_version=client.version(), cipher=(client.cipher() or ("?",))[0],
        broker_saw=PeerView.from_der(server.getpeercert(binary_form=True)),
        client_saw=PeerView.from_der(client.getpeercert(binary_form=True)),
    )


def _words(exc: BaseException) -> str:
    """OpenSSL's words for an error, as logs print them: ``tlsv1 alert unknown ca``."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError) and getattr(exc, "reason", None):
        return str(exc.reason).lower().replace("_", " ")
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc)


def _is_alert(exc: ssl.SSLError) -> bool:
    return "ALERT" in str(getattr(exc, "reason", "") or "").upper()


def _failure(hostname: str, side: str, exc: ssl.SSLError, ends: dict, done: dict[str, bool],
             client: L.Role) -> HandshakeResult:
    """The result when ``side`` raised ``exc``: a refusal by ``side``, or, when ``exc`` is an alert
    ``side`` received, a refusal by the other side."""
    if _is_alert(exc):
        refused_by, reason, alert = _other(side), _words(exc), None
    else:
        refused_by, reason = side, _words(exc)
        alert = _alert_received(_other(side), ends, done)
    return HandshakeResult(ok=False, hostname=hostname, refused_by=refused_by, reason=reason, alert=alert,
                           diagnosis=diagnose_tls_failure(reason, refused_by, hostname=hostname, client=client))


def _alert_received(peer: str, ends: dict, done: dict[str, bool]) -> str | None:
    """Deliver the refusing side's last words to ``peer`` and return the alert ``peer`` reads in them."""
    obj, _, _ = ends[peer]
    _, refuser_out, peer_in = ends[_other(peer)]
    if not _pump(refuser_out, peer_in):
        return None
    try:
        if done[peer]:
            obj.read(4)
        else:
            obj.do_handshake()
    except ssl.SSLError as exc:
        return _words(exc) if _is_alert(exc) else None
    return None


def mutual_tls_handshake(root: str | Path, hostname: str = "localhost",
                         password: bytes | str | None = None, client: L.Role = L.FIRST_CLIENT) -> HandshakeResult:
    """Handshake between the broker's files and the client's files of the lab folder ``root``.

    The broker presents ``server.crt`` and requires a client certificate signed by ``broker/ca.crt``;
    the client (``client``: default the diagram's ``client/``, or any further client) presents
    ``client.crt``, trusts only ``client/ca.crt`` and checks that the broker's
    certificate covers ``hostname``. Strict X.509 checks are on, as in Python 3.13. A failure comes
    with a :class:`~mqtt_pki_lab.diagnose.Diagnosis`; :func:`mqtt_pki_lab.verify.verify_lab` adds
    checks of the files themselves, which can name the file at fault more precisely.
    """
    return handshake_files(L.BROKER.side(root), client.side(root), hostname, password, client_role=client)


def handshake_files(broker: L.Side, client: L.Side, hostname: str = "localhost",
                    password: bytes | str | None = None, *, client_role: L.Role = L.FIRST_CLIENT) -> HandshakeResult:
    """Handshake between any broker files and any client files (paths in two :class:`~layout.Side`).

    A client :class:`~layout.Side` with ``cert`` and ``key`` set to None connects without a certificate.
    """
    contexts = []
    for side, files, make in (("broker", broker, broker_context), ("client", client, client_context)):
        try:
            contexts.append(make(files, password))
        except (ssl.SSLError, OSError, ValueError) as exc:
            reason = f"the {side} cannot load its files: {_words(exc)}"
            return HandshakeResult(ok=False, hostname=hostname, refused_by=side, reason=reason,
                                   diagnosis=diagnose_tls_failure(reason, side, hostname=hostname,
                                                                  client=client_role))
    return handshake_contexts(contexts[0], contexts[1], hostname, client_role=client_role)


def prove(root: str | Path, hostname: str = "localhost", password: bytes | str | None = None,
          client: L.Role = L.FIRST_CLIENT) -> StepResult:
    """Arrow 10 as a step result: the handshake of ``client``'s files with the broker's, in ``detail``."""
    result = mutual_tls_handshake(root, hostname, password, client)
    return StepResult(L.PROOF_STEP, (), detail=result, ok=result.ok, role=client)
