"""From a cryptic TLS error to the arrow of the diagram that went wrong, the file at fault, and the fix.

Real TLS stacks explain a refusal in a few words of OpenSSL: ``tlsv1 alert unknown ca``,
``certificate verify failed: unable to get local issuer certificate``, ``sslv3 alert unsupported
certificate``. Each of those has one usual cause in this lab's picture:

* the side that refused checks the *other* side's certificate against *its own* ``ca.crt``: "unknown CA"
  means that ``ca.crt`` is not the CA that signed the other side's certificate (arrow 9, or 5/8);
* "unsupported certificate purpose" means the other side's certificate is for the wrong role (EKU, arrow 5/8);
* "hostname mismatch" means ``server.crt``'s SAN lacks the name the client dialled (arrows 4-5);
* "peer did not return a certificate" means the client came without ``client.crt`` (arrow 8).

:func:`diagnose_tls_failure` turns the OpenSSL words plus *who refused* into a :class:`Diagnosis`.
The checks in :mod:`mqtt_pki_lab.checks` look at the files themselves and can be more precise; the MQTT
face uses this module to explain a broker's or a client's refusal in the same words.

>>> print(diagnose_tls_failure("tlsv1 alert unknown ca", "broker"))  # doctest: +ELLIPSIS
arrow 9 (hand ca.crt to the broker and the client), broker/ca.crt: the broker does not trust ...
"""

from __future__ import annotations

from dataclasses import dataclass

from . import diagram as L
from .diagram import (
    ARROW_TITLES,
    BROKER,
    CRL_NAME,
    FIRST_CLIENT,
    HANDSHAKE_ARROW,
    REVOKE_STEP,
    Role,
    arrow_of,
    step_label,
    step_title,
)

SIDES = ("broker", "client")
Side = str | Role


@dataclass(frozen=True)
class Diagnosis:
    """What went wrong, in the diagram's words: the arrow at fault, the file, the problem and the fix.

    ``code`` is a short stable name for the kind of problem (``untrusted-issuer``, ``wrong-purpose``...),
    for programs and tests; people read ``str(diagnosis)``.
    """

    arrow: int | None
    """The step number (1-10) of :data:`~mqtt_pki_lab.steps.STEPS` at fault, or None when unknown."""
    file: str | None
    """The file at fault, relative to the lab folder (``client/ca.crt``), or None when unknown."""
    problem: str
    fix: str
    code: str = "unknown"

    @property
    def arrow_title(self) -> str | None:
        """The title of the arrow at fault, e.g. ``CA: sign client.csr into client.crt``."""
        return (ARROW_TITLES.get(self.arrow) or step_title(self.arrow)) if self.arrow is not None else None

    def __str__(self) -> str:
        where = [f"{step_label(self.arrow)} ({self.arrow_title})"] if self.arrow is not None else []
        where += [self.file] if self.file else []
        head = ", ".join(where)
        return f"{head}: {self.problem} Fix: {self.fix}" if head else f"{self.problem} Fix: {self.fix}"

    def _repr_html_(self) -> str:
        from html import escape

        where = [f"{step_label(self.arrow)} ({escape(self.arrow_title or '')})"] if self.arrow is not None else []
        where += [f"<code>{escape(self.file)}</code>"] if self.file else []
        fix = f"<br><i>Fix:</i> {escape(self.fix)}"
        return f"<div><b>{', '.join(where)}</b> {escape(self.problem)}{fix}</div>"


def file_diagnosis(file: L.LabFile | str | None, problem: str, fix: str, code: str,
                   arrow: int | None = None) -> Diagnosis:
    """A :class:`Diagnosis` about one file of the lab; the arrow defaults to the one that makes it."""
    if isinstance(file, L.LabFile):
        return Diagnosis(arrow if arrow is not None else arrow_of(file), file.relpath, problem, fix, code)
    return Diagnosis(arrow, file, problem, fix, code)


def role_of(side: Side, client: Role = FIRST_CLIENT) -> Role:
    """The role of a side: ``"broker"``, ``"client"`` (``client``: the diagram's first one) or a Role."""
    if isinstance(side, Role):
        return side
    return BROKER if side == "broker" else client


def other(side: str) -> str:
    """The other side of the connection: ``broker`` <-> ``client``."""
    return "client" if side == "broker" else "broker"


def trust_file(side: Side) -> L.LabFile:
    """The ``ca.crt`` copy a side checks the other side with."""
    return role_of(side).file("trust")


def cert_file(side: Side) -> L.LabFile:
    """The certificate a side presents: ``server.crt`` or ``client.crt``."""
    return role_of(side).file("crt")


def key_file(side: Side) -> L.LabFile:
    """The private key a side proves itself with: ``server.key`` or ``client.key``."""
    return role_of(side).file("key")


def csr_file(side: Side) -> L.LabFile:
    """The CSR a side sends to the CA: ``server.csr`` or ``client.csr``."""
    return role_of(side).file("csr")


#: OpenSSL's words for each kind of failure, most specific first. Matching is on lower-case text, and
#: underscores count as spaces (``SSLV3_ALERT_BAD_CERTIFICATE`` == ``sslv3 alert bad certificate``).
_PATTERNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("missing-file", ("no such file", "errno 2]", "is a directory")),
    ("unreadable-file", ("permission denied", "errno 13]")),
    ("bad-passphrase", ("bad decrypt", "bad password", "interrupted or cancelled")),
    ("key-mismatch", ("key values mismatch",)),
    ("weak-signature", ("md too weak", "digest algorithm too weak")),
    ("weak-key", ("key too small", "key too weak")),
    ("not-pem", ("pem lib", "no start line", "not enough data", "wrong tag", "header too long")),
    # Revocation (step 11) before "has expired" and "certificate verify failed", which these also contain.
    ("revoked", ("certificate revoked",)),
    ("crl-expired", ("crl has expired",)),
    ("crl-not-yet-valid", ("crl is not yet valid",)),
    ("crl-foreign", ("unable to get certificate crl", "crl signature failure", "unable to decrypt crl")),
    ("no-client-cert", ("peer did not return a certificate", "certificate required")),
    ("wrong-purpose", ("unsuitable certificate purpose", "unsupported certificate purpose",
                       "alert unsupported certificate")),
    ("name-mismatch", ("hostname mismatch", "ip address mismatch", "doesn't match", "does not match")),
    ("expired", ("has expired", "alert certificate expired")),
    ("not-yet-valid", ("not yet valid",)),
    ("ca-profile", ("basic constraints", "key usage does not include certificate signing",
                    "does not include key usage", "keyusage no certsign", "invalid ca certificate",
                    "missing authority key identifier", "missing subject key identifier",
                    "path length constraint exceeded", "invalid or inconsistent certificate extension")),
    ("untrusted-issuer", ("unknown ca", "local issuer", "unable to get issuer", "self-signed certificate",
                          "self signed certificate", "unable to verify the first certificate",
                          "certificate signature failure", "alert decrypt error")),
    ("bad-certificate", ("bad certificate", "certificate unknown", "certificate verify failed",
                         "unsupported certificate")),
    ("closed", ("eof occurred", "unexpected eof", "connection reset", "connection closed", "connection aborted")),
)


def classify(reason: str) -> str:
    """The kind of failure OpenSSL's ``reason`` describes (a :class:`Diagnosis` code), or ``handshake``."""
    text = reason.lower().replace("_", " ")
    for code, patterns in _PATTERNS:
        if any(p in text for p in patterns):
            return code
    return "handshake"


def _is_load_failure(reason: str) -> bool:
    """True when the refusing side failed on its *own* files (before talking to the other side)."""
    text = reason.lower().replace("_", " ")
    return "cannot load" in text or "ee key too small" in text or "ca md too weak" in text


def diagnose_tls_failure(reason: str, refused_by: str | None, *, hostname: str | None = None,
                         client: Role = FIRST_CLIENT, chain: bool = False) -> Diagnosis:
    """Explain a failed TLS connection between the broker's files and the client's files.

    ``reason`` is OpenSSL's text (``"tlsv1 alert unknown ca"``, ``"certificate verify failed: certificate
    has expired"``...); ``refused_by`` is the side that refused: ``"broker"``, ``"client"``, or None when
    unknown. The refusing side checked the *other* side's certificate against its *own* ``ca.crt``; for
    errors loading files (``key values mismatch``, ``ee key too small``), the refusing side's own files
    are at fault. ``hostname`` is the name the client connected to, when known; ``client`` is the client
    whose files were used (default: the diagram's first client, ``client/``). ``chain``: the lab has an
    intermediate CA, so "unable to get local issuer certificate" means the other side sent its certificate
    without the intermediate after it (:func:`missing_chain_diagnosis`).
    """
    reason = reason or ""
    code = classify(reason)
    side_name = refused_by if refused_by in SIDES else None
    if side_name is None:
        # Only one side can produce some failures; otherwise stay general.
        side_name = {"no-client-cert": "broker", "name-mismatch": "client"}.get(code) or (
            "broker" if code in _CRL_CODES else None)
    if side_name is None:
        return _general(code, reason)
    side_role, peer_role = role_of(side_name, client), role_of(other(side_name), client)
    _side, peer = side_role.kind, peer_role.kind
    side_l, peer_l = side_role.label, peer_role.label
    trust, peer_cert = trust_file(side_role).relpath, cert_file(peer_role).relpath
    peer_csr = csr_file(peer_role).relpath
    peer_arrow = arrow_of(cert_file(peer_role))
    name = f"{hostname!r}" if hostname else "the name the client connects to"

    if code in _CRL_CODES:
        return revocation_diagnosis(code, peer_role if side_name == "broker" else side_role)
    if code == "untrusted-issuer" and chain and "local issuer" in reason.lower():
        return missing_chain_diagnosis(peer_role, side_role)
    if code == "untrusted-issuer":
        return file_diagnosis(
            trust_file(side_role),
            f"{side_l} does not trust the CA that signed {peer_l}'s certificate ({peer_cert}): "
            f"its {trust} is not that CA's certificate.",
            f"copy ca/ca.crt to {trust} (arrow 9); if {peer_cert} comes from another CA, have ca.key sign "
            f"{peer_csr} again (arrow {peer_arrow}).", code)
    if code == "no-client-cert":
        who = role_of("client", client)
        return file_diagnosis(
            cert_file(who), f"{cert_file(who).relpath} is missing: the client has no certificate to present, and "
                            "the broker requires one.",
            f"give {who.label} {cert_file(who).relpath} and {key_file(who).relpath} (paho: tls_set(certfile=..., "
            "keyfile=...); mosquitto_pub: --cert/--key).", code)
    if code == "wrong-purpose":
        wanted = "serverAuth" if peer == "broker" else "clientAuth"
        return file_diagnosis(
            cert_file(peer_role),
            f"{peer_l}'s certificate is not made for its role: {side_l} needs extendedKeyUsage {wanted}.",
            f"have the CA sign {csr_file(peer_role).relpath} as a {peer} certificate "
            f"(arrow {arrow_of(cert_file(peer_role))}), and give each side its own certificate.", code)
    if code == "name-mismatch":
        return file_diagnosis(
            L.SERVER_CERT, f"the broker's certificate does not list {name} in its subjectAltName, so the "
                           "client cannot tell it is talking to the right broker.",
            "connect with a name the certificate lists, or make server.csr with that name (arrow 4, "
            "--server-name NAME) and have the CA sign it again (arrow 5).", code)
    if code in ("expired", "not-yet-valid"):
        when = "has expired" if code == "expired" else "is not valid yet (its notBefore is in the future)"
        return file_diagnosis(
            cert_file(peer_role), f"{peer_l}'s certificate {when}, or the CA certificate it chains to does.",
            f"have the CA sign {csr_file(peer_role).relpath} again with a current validity period "
            f"(arrow {arrow_of(cert_file(peer_role))}); check the clocks of both machines.", code)
    if code == "ca-profile":
        return file_diagnosis(
            L.CA_CERT, "the CA certificate does not pass strict X.509 checks (basicConstraints CA:TRUE must "
                       "be critical and keyUsage must include keyCertSign).",
            "make ca.crt again from ca.key with the lab's CA profile (arrow 2) and hand it out (arrow 9); "
            "certificates signed by the same key and name stay valid.", code)
    if code == "weak-key":
        owner = side_role if _is_load_failure(reason) else peer_role
        owner_l = owner.label
        key = key_file(owner)
        return file_diagnosis(
            key, f"{owner_l}'s key is too weak for OpenSSL's security level: RSA keys need at least 2048 bits "
                 "(the CA's key too).",
            f"generate {key.relpath} again with a strong key type (arrow {arrow_of(key)}), then make its CSR "
            f"and have it signed (arrows {arrow_of(csr_file(owner))}-{arrow_of(cert_file(owner))}).", code)
    if code == "weak-signature":
        owner = side_role if _is_load_failure(reason) else peer_role
        owner_l = owner.label
        cert = cert_file(owner)
        return file_diagnosis(
            cert, f"{cert.relpath} (or the CA certificate) is signed with a digest OpenSSL refuses (SHA-1 or MD5).",
            f"have the CA sign {csr_file(owner).relpath} again with SHA-256 (arrow {arrow_of(cert)}); if ca.crt "
            "itself is signed with SHA-1, make it again (arrow 2).", code)
    if code == "key-mismatch":
        cert, key = cert_file(side_role), key_file(side_role)
        return file_diagnosis(
            cert, f"{cert.relpath} does not belong to {key.relpath}: the public key in the certificate is "
                  "not the public half of the private key.",
            f"make {csr_file(side_role).relpath} from {key.relpath} (arrow {arrow_of(csr_file(side_role))}) and have "
            f"the CA sign it (arrow {arrow_of(cert)}).", code)
    if code in ("missing-file", "unreadable-file", "not-pem", "bad-passphrase"):
        return _own_files(code, side_role, reason)
    if code == "bad-certificate":
        wanted = "serverAuth" if peer == "broker" else "clientAuth"
        return file_diagnosis(
            cert_file(peer_role), f"{side_l} refused {peer_l}'s certificate ({reason}) without saying why. The "
                             f"usual causes: {peer_cert} is not signed by the CA in {trust}, it has expired or is "
                             f"not valid yet, or it is not made for {wanted}"
                             + (f", or it does not list {name}." if peer == "broker" else "."),
            f"run `mqtt-pki-lab verify` on the lab folder: its checks name the exact problem with {peer_cert}.",
            code)
    return _general(code, reason, side_l)


def missing_chain_diagnosis(presenter: Role, verifier: Role) -> Diagnosis:
    """In a lab with an intermediate CA, OpenSSL's "unable to get local issuer certificate": ``presenter``'s
    certificate file does not carry the intermediate CA's certificate after the leaf (or holds a certificate of
    another CA), so ``verifier``, which must trust the root alone (arrow 9), cannot link it to the root. Worded to
    hold whether or not a handshake ran and failed: a verifier given the intermediate as an anchor (a partial-chain
    one) may still accept the leaf alone."""
    cert = cert_file(presenter)
    return file_diagnosis(
        cert, f"{cert.relpath} holds {presenter.label}'s certificate without the intermediate CA's after it, so "
              f"{verifier.label}, which must trust the root alone ({trust_file(verifier).relpath} = ca/ca.crt, "
              "arrow 9), cannot link it to the root ('unable to get local issuer certificate'): the file must carry "
              "the intermediate CA's certificate after the leaf (the chain a side presents).",
        f"put intermediate/intermediate.crt after the certificate: cat intermediate/intermediate.crt >> "
        f"{cert.relpath} (arrow {arrow_of(cert)} writes both; or sign it again: mqtt-pki-lab renew DIR "
        f"{presenter.name}).", "missing-chain")


#: The failures of step 11: a revoked client, or a revocation list the broker cannot use. Only a broker checks
#: a CRL (MQTT clients check none), so the broker is the side that refuses.
_CRL_CODES = ("revoked", "crl-expired", "crl-not-yet-valid", "crl-foreign")


def revocation_diagnosis(code: str, client: Role = FIRST_CLIENT) -> Diagnosis:
    """A refusal caused by the broker's revocation list (``broker/crl.pem``, step 11): ``code`` is one of
    ``revoked`` (``client`` is on it), ``crl-expired``, ``crl-not-yet-valid``, ``crl-foreign``."""
    crl = f"{BROKER.folder}/{CRL_NAME}"
    refresh = "sign it again: mqtt-pki-lab crl DIR --refresh (it writes ca/crl.pem and broker/crl.pem), then " \
              "restart the broker or send mosquitto SIGHUP."
    if code == "revoked":
        cert = cert_file(client)
        return Diagnosis(REVOKE_STEP.number, cert.relpath,
                         f"the certificate of {client.label} ({cert.relpath}) is on the CA's revocation list ({crl}): "
                         "the CA no longer stands behind it, so the broker refuses it.",
                         "nothing, if it was revoked on purpose (a stolen or retired device). Revocation is final: a "
                         "device that should connect again needs a new key and certificate under a new name "
                         "(mqtt-pki-lab add-client DIR NEW-NAME).", code)
    if code == "crl-expired":
        return Diagnosis(REVOKE_STEP.number, crl,
                         f"the broker's revocation list ({crl}) is past its nextUpdate: OpenSSL then refuses EVERY "
                         "client, revoked or not.", refresh, code)
    if code == "crl-not-yet-valid":
        return Diagnosis(REVOKE_STEP.number, crl,
                         f"the broker's revocation list ({crl}) is dated in the future (its thisUpdate): the "
                         "broker's clock is behind the CA's, and OpenSSL refuses every client.",
                         "set the broker's clock right, or " + refresh, code)
    return Diagnosis(REVOKE_STEP.number, crl,
                     f"the broker's revocation list ({crl}) is not signed by the CA that issued the client "
                     "certificates (broker/ca.crt), so the broker cannot check revocation and refuses every client.",
                     "move it away and " + refresh, code)


def _own_files(code: str, role: Role, reason: str) -> Diagnosis:
    side = role.label.removeprefix("the ")
    files = ", ".join(f.relpath for f in role.operating)
    problem = {
        "missing-file": f"one of the {side}'s files ({files}) is missing.",
        "unreadable-file": f"the {side} may not read one of its files ({files}).",
        "not-pem": f"one of the {side}'s files ({files}) is not a PEM file of the right kind.",
        "bad-passphrase": f"{key_file(role).relpath} is encrypted and the passphrase is wrong or missing.",
    }[code]
    fix = {
        "bad-passphrase": "give the passphrase the key was encrypted with.",
        "unreadable-file": "let the user the program runs as read the file (keys 0600, owned by that user).",
    }.get(code, "run `mqtt-pki-lab status` to see which step makes the file, and run it.")
    return Diagnosis(None, key_file(role).relpath if code == "bad-passphrase" else None, problem, fix, code)


def _general(code: str, reason: str, side: str | None = None) -> Diagnosis:
    who = side if side else "one side"
    if code == "closed":
        return Diagnosis(HANDSHAKE_ARROW, None,
                         f"{who} hung up during the handshake without a TLS alert ({reason}); some brokers "
                         "(amqtt) refuse a client certificate that way.",
                         "look in the broker's log for its reason, and run `mqtt-pki-lab verify` on the lab "
                         "folder: its checks name the file at fault.", code)
    return Diagnosis(HANDSHAKE_ARROW, None, f"{who} ended the handshake ({reason or 'no reason given'}).",
                     "run `mqtt-pki-lab verify` on the lab folder: its checks look at every file before the "
                     "handshake and name the one at fault.", code if code != "handshake" else "handshake")
