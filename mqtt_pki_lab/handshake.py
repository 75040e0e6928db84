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
from .errors import LabError
from .pem import load_certificate, load_certificates
from .steps import StepResult, has_intermediate
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
                       max_rounds: int = 50, *, client_role: L.Role = L.FIRST_CLIENT,
                       gaps: frozenset[str] = frozenset()) -> HandshakeResult:
    """Run a TLS handshake in memory between two ready contexts; never raises for TLS failures.

    The two sides take turns: each one runs as far as it can, then its output is delivered to the
    other, until both are done or one refuses. The refusal is reported with the refusing side's own
    words, and the alert the other side received, as each side's log would show them. ``gaps``: the sides
    (``broker``, ``client``) whose certificate file lacks the intermediate CA that issued it (:func:`chain_gaps`),
    so that a refusal of theirs is diagnosed as the missing chain it is.
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
                    return _failure(hostname, name, exc, ends, done, client_role, gaps)
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
            return _failure(hostname, peer, exc, ends, done, client_role, gaps)
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
             client: L.Role, gaps: frozenset[str] = frozenset()) -> HandshakeResult:
    """The result when ``side`` raised ``exc``: a refusal by ``side``, or, when ``exc`` is an alert
    ``side`` received, a refusal by the other side."""
    if _is_alert(exc):
        refused_by, reason, alert = _other(side), _words(exc), None
    else:
        refused_by, reason = side, _words(exc)
        alert = _alert_received(_other(side), ends, done)
    return HandshakeResult(ok=False, hostname=hostname, refused_by=refused_by, reason=reason, alert=alert,
                           diagnosis=diagnose_tls_failure(reason, refused_by, hostname=hostname, client=client,
                                                          chain=_other(refused_by) in gaps))


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
    broker_side, client_side = L.BROKER.side(root), client.side(root)
    return handshake_files(broker_side, client_side, hostname, password, client_role=client,
                           gaps=chain_gaps(broker_side, client_side, lab_intermediate(root)))


def handshake_files(broker: L.Side, client: L.Side, hostname: str = "localhost",
                    password: bytes | str | None = None, *, client_role: L.Role = L.FIRST_CLIENT,
                    gaps: frozenset[str] = frozenset()) -> HandshakeResult:
    """Handshake between any broker files and any client files (paths in two :class:`~layout.Side`).

    A client :class:`~layout.Side` with ``cert`` and ``key`` set to None connects without a certificate.
    ``gaps``: :func:`chain_gaps` of the two sides (for the diagnosis of a refusal in a chain of three).
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
    return handshake_contexts(contexts[0], contexts[1], hostname, client_role=client_role, gaps=gaps)


def lab_intermediate(root: str | Path) -> x509.Certificate | None:
    """The lab's intermediate CA certificate (``intermediate/intermediate.crt``), or None when the lab has none
    or it cannot be read (``verify`` names that file)."""
    if not has_intermediate(root):
        return None
    try:
        return load_certificate(L.INTERMEDIATE_CERT.path(root))
    except (LabError, OSError):
        return None


def chain_gaps(broker: L.Side, client: L.Side, intermediate: x509.Certificate | None) -> frozenset[str]:
    """The sides (``broker``, ``client``) whose certificate was issued by the lab's ``intermediate`` CA but whose
    file does not carry it after the leaf: the other side, trusting the root alone, then says "unable to get
    local issuer certificate", which here means the missing chain (not a foreign CA). Empty in a one-level lab."""
    if intermediate is None:
        return frozenset()
    found = set()
    for name, side in (("broker", broker), ("client", client)):
        if side.cert is None:
            continue
        try:
            leaf, *chain = load_certificates(side.cert)
        except (LabError, OSError):
            continue  # the side cannot even load it: its own refusal says so
        if leaf.issuer == intermediate.subject and intermediate not in chain:
            found.add(name)
    return frozenset(found)


def prove(root: str | Path, hostname: str = "localhost", password: bytes | str | None = None,
          client: L.Role = L.FIRST_CLIENT) -> StepResult:
    """Arrow 10 as a step result: the handshake of ``client``'s files with the broker's, in ``detail``."""
    result = mutual_tls_handshake(root, hostname, password, client)
    return StepResult(L.PROOF_STEP, (), detail=result, ok=result.ok, role=client)


# --- the transcript: the same handshake, message by message (RFC 8446 §4) ---------------------------------------

#: TLS 1.3 handshake message types (RFC 8446 §4, ``HandshakeType``), by their number on the wire.
MESSAGE_NAMES: dict[int, str] = {
    1: "ClientHello", 2: "ServerHello", 4: "NewSessionTicket", 5: "EndOfEarlyData", 8: "EncryptedExtensions",
    11: "Certificate", 13: "CertificateRequest", 15: "CertificateVerify", 20: "Finished", 24: "KeyUpdate",
}
#: TLS alerts (RFC 8446 §6), the ones a certificate problem or a refusal produces.
ALERT_NAMES: dict[int, str] = {
    0: "close_notify", 40: "handshake_failure", 42: "bad_certificate", 43: "unsupported_certificate",
    44: "certificate_revoked", 45: "certificate_expired", 46: "certificate_unknown", 47: "illegal_parameter",
    48: "unknown_ca", 50: "decode_error", 51: "decrypt_error", 70: "protocol_version", 80: "internal_error",
    109: "missing_extension", 112: "unrecognized_name", 116: "certificate_required",
}
#: What each message does or proves, in one line (RFC 8446: ClientHello §4.1.2, ServerHello §4.1.3,
#: EncryptedExtensions §4.3.1, CertificateRequest §4.3.2, Certificate §4.4.2, CertificateVerify §4.4.3,
#: Finished §4.4.4, NewSessionTicket §4.6.1).
MESSAGE_ROLES: dict[str, str] = {
    "ClientHello": "offers versions, ciphers, a key share and the name dialled; proves nothing",
    "ServerHello": "picks, and sends its own key share: everything after it is encrypted",
    "EncryptedExtensions": "settings that complete the hello; proves nothing",
    "CertificateRequest": "asks for the client's certificate: this makes the TLS mutual",
    "Certificate": "the sender's certificate: a public claim, anyone can send a copy",
    "CertificateVerify": "a signature with the sender's private key: proves it holds it",
    "Finished": "a MAC over the whole handshake: nothing was altered on the way",
    "NewSessionTicket": "after the handshake: a ticket to resume later; not part of the proof",
}


@dataclass(frozen=True)
class TlsMessage:
    """One handshake message (or alert) as its sender wrote it."""

    sender: str
    """``client`` or ``broker``."""
    name: str
    """``ClientHello``, ``Certificate``..., or ``Alert: unknown_ca``."""
    size: int
    """Bytes of the message (its body and 4-byte header; for an alert, 2 bytes)."""
    encrypted: bool
    """True when it travelled encrypted (in TLS 1.3: everything after ServerHello)."""

    @property
    def receiver(self) -> str:
        return _other(self.sender)

    @property
    def proves(self) -> str:
        """What this message does or proves, in one line."""
        if self.name.startswith("Alert"):
            return f"the {self.sender} refuses and tells the {self.receiver} why; the connection ends"
        return MESSAGE_ROLES.get(self.name, "")


@dataclass(frozen=True)
class Transcript:
    """A handshake and the messages each side sent, in the order they were sent."""

    result: HandshakeResult
    messages: tuple[TlsMessage, ...]
    recorded: bool = True
    """False when this Python cannot record messages (no ``SSLContext._msg_callback``): the handshake
    still ran, and :attr:`result` says how it went, but :attr:`messages` is empty."""
    roles: bool = True
    """Show what each message does or proves (a column of the table); :meth:`without_roles` hides it, so a
    notebook can show the messages before it asks what they prove."""

    def without_roles(self) -> Transcript:
        """The same transcript, shown without the column that says what each message does or proves."""
        from dataclasses import replace

        return replace(self, roles=False)

    @property
    def handshake(self) -> tuple[TlsMessage, ...]:
        """The messages of the handshake itself: every one up to the client's Finished, and any alert."""
        return tuple(m for m in self.messages if m.name != "NewSessionTicket")

    def names(self) -> list[str]:
        """The names of the handshake's messages, in order (``["ClientHello", "ServerHello", ...]``)."""
        return [m.name for m in self.handshake]

    def sender_of(self, name: str) -> str | None:
        """Who sent the messages called ``name``: ``client``, ``broker``, ``both`` when each side sent one
        (in mutual TLS 1.3: ``Certificate``, ``CertificateVerify`` and ``Finished``), or None when nobody did."""
        wanted = str(name).strip().lower()
        senders = {m.sender for m in self.messages if m.name.lower() == wanted}
        if len(senders) > 1:
            return "both"
        return next(iter(senders), None)

    def sent_by(self, side: str) -> list[str]:
        """The names of the handshake messages ``side`` (``client`` or ``broker``) sent, in order."""
        return [m.name for m in self.handshake if m.sender == side]

    def __str__(self) -> str:
        if not self.recorded:
            return ("(this Python cannot record TLS messages: SSLContext._msg_callback is missing)\n"
                    f"{self.result}")
        width = max((len(m.name) for m in self.handshake), default=0)
        lines = [(f"{i:>2}. {m.sender:>6} -> {m.receiver:<6} {m.name:<{width}} "
                  f"{'(encrypted)' if m.encrypted else '(in clear) '}" + (f"  {m.proves}" if self.roles else "")
                  ).rstrip() for i, m in enumerate(self.handshake, 1)]
        after = len(self.messages) - len(self.handshake)
        if after:
            role = f": {MESSAGE_ROLES['NewSessionTicket']}" if self.roles else " (after the handshake)"
            lines.append(f"    then {after} NewSessionTicket from the broker{role}")
        verdict = (f"handshake PASSED ({self.result.tls_version})" if self.result.ok
                   else f"handshake FAILED: the {self.result.refused_by} refused: {self.result.reason}")
        return "\n".join([*lines, verdict])

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        if not self.recorded:
            return f"<pre>{escape(str(self))}</pre>"
        rows = "".join(f"<tr><td>{i}</td><td>{m.sender} → {m.receiver}</td><td><b>{escape(m.name)}</b></td>"
                       f"<td>{'🔒' if m.encrypted else 'clear'}</td>"
                       + (f"<td>{escape(m.proves)}</td>" if self.roles else "") + "</tr>"
                       for i, m in enumerate(self.handshake, 1))
        after = len(self.messages) - len(self.handshake)
        note = f"then {after} NewSessionTicket from the broker (not part of the proof). " if after else ""
        verdict = (f"Handshake passed ({self.result.tls_version})." if self.result.ok
                   else f"Handshake failed: the {self.result.refused_by} refused: {self.result.reason}")
        head = "<th>what it does</th>" if self.roles else ""
        return (f"<table><tr><th>#</th><th>from → to</th><th>message</th><th></th>{head}</tr>"
                f"{rows}</table><p>{escape(note)}<b>{escape(verdict)}</b></p>")


def can_record_messages() -> bool:
    """True when this Python's ``ssl`` has the (private, CPython 3.8+) ``SSLContext._msg_callback`` hook."""
    return hasattr(getattr(ssl, "_ssl", None), "_SSLContext") and hasattr(ssl._ssl._SSLContext, "_msg_callback")


class _Recorder:
    """Collects what OpenSSL's message callback reports for one side, without ever raising into OpenSSL."""

    HANDSHAKE, ALERT, INNER = 22, 21, 257

    def __init__(self, side: str, log: list[TlsMessage]) -> None:
        self.side, self.log, self.inner = side, log, False

    def __call__(self, conn: object, direction: str, version: object, content_type: object, msg_type: object,
                 data: bytes) -> None:
        try:
            if direction != "write":
                return
            kind = int(content_type)  # type: ignore[call-overload]
            if kind == self.INNER:  # the next message travels inside an encrypted record
                self.inner = True
                return
            encrypted, self.inner = self.inner, False
            if kind == self.HANDSHAKE:
                number = int(msg_type)  # type: ignore[call-overload]
                name = MESSAGE_NAMES.get(number, f"handshake message {number}")
            elif kind == self.ALERT:
                number = data[1] if len(data) > 1 else -1
                name = f"Alert: {ALERT_NAMES.get(number, number)}"
            else:
                return
            self.log.append(TlsMessage(self.side, name, len(data), encrypted))
        except Exception:  # a recorder must never break the handshake it watches
            return


def record_handshake(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, hostname: str, *,
                     client_role: L.Role = L.FIRST_CLIENT) -> Transcript:
    """Run :func:`handshake_contexts` and record every handshake message and alert each side sent.

    It uses CPython's ``SSLContext._msg_callback`` (OpenSSL's ``SSL_CTX_set_msg_callback``): private, but
    present since Python 3.8 and working with :class:`ssl.MemoryBIO`. Where it is missing, the handshake
    still runs and the transcript says it could not record (``recorded=False``). The contexts get their
    callbacks back as they were.
    """
    if not can_record_messages():
        return Transcript(handshake_contexts(server_ctx, client_ctx, hostname, client_role=client_role), (),
                          recorded=False)
    log: list[TlsMessage] = []
    saved = [(ctx, ctx._msg_callback) for ctx in (server_ctx, client_ctx)]
    server_ctx._msg_callback = _Recorder("broker", log)
    client_ctx._msg_callback = _Recorder("client", log)
    try:
        result = handshake_contexts(server_ctx, client_ctx, hostname, client_role=client_role)
    finally:
        for ctx, callback in saved:
            ctx._msg_callback = callback
    return Transcript(result, tuple(log))


def handshake_transcript(root: str | Path, hostname: str = "localhost", password: bytes | str | None = None,
                         client: L.Role = L.FIRST_CLIENT) -> Transcript:
    """Arrow 10 message by message: the mutual-TLS handshake of the lab ``root``, with its transcript.

    The same handshake as :func:`mutual_tls_handshake` (the broker's files, ``client``'s files, strict
    checks); when a side cannot even load its files, the transcript is empty and the result says why.
    """
    broker, files = L.BROKER.side(root), client.side(root)
    try:
        server_ctx, client_ctx = broker_context(broker, password), client_context(files, password)
    except (ssl.SSLError, OSError, ValueError):
        return Transcript(handshake_files(broker, files, hostname, password, client_role=client), ())
    return record_handshake(server_ctx, client_ctx, hostname, client_role=client)


def handshake_twin(hostname: str = "localhost", port: int = 8883, client: L.Role = L.FIRST_CLIENT) -> str:
    """The ``openssl`` commands of arrow 10, to paste into bash in the lab folder: they work as printed.

    ``s_server`` must listen before ``s_client`` dials: the commands start the broker in the background,
    wait until its log says ``ACCEPT`` (or it has died), then connect. ``-www`` keeps ``s_server`` from
    reading the terminal (a background job that reads it is stopped by the shell); ``-naccept 1`` makes it
    exit after the one handshake. Each side then says whether its handshake was done: read both, since in
    TLS 1.3 the client may finish before the broker has checked the client's certificate (RFC 8446 §4.4.2),
    and ``s_server`` exits 0 either way, so the broker's verdict is read from its log. Add ``-msg`` to
    ``s_client`` to see the messages of the transcript.
    """
    from .names import check_host_name
    from .twins import prove_commands

    hostname = check_host_name(hostname, "hostname")
    return prove_commands(L.BROKER.operating, client.operating, hostname, port)
