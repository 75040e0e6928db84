"""``mqtt-pki-lab inspect``: explain a certificate, a CSR or a key, field by field, for MQTT/TLS.

A private key is *described* (type, size, fingerprint of its public half, encrypted or not), never
printed: the explanation of a secret file is safe to show in a notebook or paste into a chat.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from html import escape
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from .certificates import eku_text, is_ca
from .errors import InputError
from .files import mode_of, read_bytes
from .keys import is_encrypted_key_pem, is_private_key_pem, key_kind, load_private_key, public_key_fingerprint
from .pem import describe_pem_kind, load_certificates, load_csr, pem_label


@dataclass(frozen=True)
class Explanation:
    """An explained file: a title and (field, value, why it matters) rows."""

    path: Path
    kind: str
    rows: tuple[tuple[str, str, str], ...]

    def __str__(self) -> str:
        width = max((len(k) for k, _, _ in self.rows), default=0)
        lines = [f"{self.path}: {self.kind}"]
        for key, value, why in self.rows:
            lines.append(f"  {key:<{width}}  {value}")
            if why:
                lines.append(f"  {'':<{width}}    ↳ {why}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        cell = "text-align:left;vertical-align:top;padding:2px 8px"
        body = "".join(f"<tr><th style='{cell};white-space:nowrap'>{escape(k)}</th>"
                       f"<td style='{cell};word-break:break-all;max-width:28em'><code>{escape(v)}</code></td>"
                       f"<td style='{cell};min-width:18em'><i>{escape(w)}</i></td></tr>" for k, v, w in self.rows)
        return (f"<div><b>{escape(str(self.path))}</b>: {escape(self.kind)}"
                f"<table style='border-collapse:collapse'>{body}</table></div>")


def _hex(data: bytes) -> str:
    return data.hex(":").upper()


def _names(ext: x509.SubjectAlternativeName) -> str:
    kinds = {x509.IPAddress: "IP", x509.DNSName: "DNS", x509.UniformResourceIdentifier: "URI"}
    return ", ".join(f"{kinds.get(type(n), type(n).__name__)}:{n.value}" for n in ext)


def _usage(ku: x509.KeyUsage) -> str:
    flags = ["digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
             "key_agreement", "key_cert_sign", "crl_sign"]
    names = [f for f in flags if getattr(ku, f)]
    return ", ".join(names) or "none"


def explain_extension(ext: x509.Extension) -> tuple[str, str, str]:
    """One row for an extension: its name (with criticality), value, and why it matters for MQTT/TLS."""
    value = ext.value
    crit = " (critical)" if ext.critical else ""
    if isinstance(value, x509.BasicConstraints):
        if value.ca:
            why = ("marks a CA; strict verifiers (Python 3.13, -x509_strict) want it critical"
                   + ("" if ext.critical else " — NOT critical here: strict verification rejects this CA"))
            text = f"CA:TRUE, pathlen {value.path_length}"
        else:
            why, text = "a leaf: this certificate may not sign others", "CA:FALSE"
        return (f"basicConstraints{crit}", text, why)
    if isinstance(value, x509.KeyUsage):
        why = ("keyCertSign lets a CA sign certificates; without it strict clients reject the chain"
               if value.key_cert_sign else "what the key may do: digitalSignature signs the TLS handshake")
        return (f"keyUsage{crit}", _usage(value), why)
    if isinstance(value, x509.ExtendedKeyUsage):
        names = eku_text(list(value))
        return (f"extendedKeyUsage{crit}", names,
                "serverAuth: may act as a TLS server (the broker); clientAuth: may log in as a client")
    if isinstance(value, x509.SubjectAlternativeName):
        return (f"subjectAltName{crit}", _names(value),
                "the names this certificate answers to: a client checks the host it dialled against the DNS/IP "
                "names; a URI names a device without pretending it is a host")
    if isinstance(value, x509.SubjectKeyIdentifier):
        return (f"subjectKeyIdentifier{crit}", _hex(value.digest), "an id of this certificate's key")
    if isinstance(value, x509.AuthorityKeyIdentifier):
        kid = _hex(value.key_identifier) if value.key_identifier else "none"
        return (f"authorityKeyIdentifier{crit}", kid,
                "the id of the key that signed it: links the certificate to its CA (required by -x509_strict)")
    name = getattr(ext.oid, "_name", None) or ext.oid.dotted_string
    return (f"{name}{crit}", str(value)[:120], "")


def _validity(cert: x509.Certificate, now: dt.datetime) -> str:
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    if now < start:
        state = "NOT YET VALID"
    elif now > end:
        state = "EXPIRED"
    else:
        state = f"valid, {(end - now).days} days left"
    return f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC ({state})"


def explain_certificate(path: Path) -> Explanation:
    """Explain a certificate: who, by whom, for what, until when; and what follows it in the file (the
    intermediate CA after a leaf in a chain of three: the chain that side presents)."""
    cert, *chain = load_certificates(path)
    now = dt.datetime.now(dt.timezone.utc)
    self_signed = cert.subject == cert.issuer
    rows = [
        ("subject", cert.subject.rfc4514_string(), "who this certificate speaks for"),
        ("issuer", cert.issuer.rfc4514_string(),
         "self-signed: a root CA" if self_signed else "the CA that signed it; must be the one the peer trusts"),
        ("version", f"v{cert.version.value + 1}", "v3 is needed for extensions (SAN, EKU); v1 fails strict checks"),
        ("serial", f"{cert.serial_number:x}", "unique per CA; random serials are the rule"),
        ("validity", _validity(cert, now), "outside this window every TLS peer refuses the certificate"),
        ("public key", key_kind(cert.public_key()), ""),  # type: ignore[arg-type]
        ("key fingerprint", public_key_fingerprint(cert.public_key()),  # type: ignore[arg-type]
         "SHA-256 of the public key: equals the fingerprint of the matching private key"),
        ("signature", cert.signature_algorithm_oid._name, ""),
        ("SHA-256 fingerprint", _hex(cert.fingerprint(hashes.SHA256())), "identifies this exact certificate"),
    ]
    rows += [explain_extension(ext) for ext in cert.extensions]
    if chain:
        shown = "; ".join(f"{c.subject.rfc4514_string()} (issued by {c.issuer.rfc4514_string()})" for c in chain)
        rows.append((f"followed by {len(chain)}", shown,
                     "the chain this side presents: its certificate first, then the CA that signed it (RFC 8446 "
                     "§4.4.2); the peer links it to the root in its ca.crt"))
    kind = "a CA certificate" if self_signed or is_ca(cert) else "a certificate"
    if chain:
        kind += f" followed by {len(chain)} more"
    return Explanation(Path(path), kind, tuple(rows))


def explain_csr(path: Path) -> Explanation:
    """Explain a certificate signing request."""
    csr = load_csr(path)
    rows = [
        ("subject", csr.subject.rfc4514_string(), "the name asked for"),
        ("public key", key_kind(csr.public_key()), ""),  # type: ignore[arg-type]
        ("key fingerprint", public_key_fingerprint(csr.public_key()),  # type: ignore[arg-type]
         "the certificate the CA makes from this CSR will carry this same key"),
        ("signature", "valid" if csr.is_signature_valid else "INVALID",
         "signed with the matching private key: proves the requester holds it"),
    ]
    rows += [explain_extension(ext) for ext in csr.extensions]
    return Explanation(Path(path), "a certificate signing request (CSR)", tuple(rows))


def explain_key(path: Path, passphrase: bytes | str | None = None) -> Explanation:
    """Describe a private key without showing it."""
    data = read_bytes(path)
    mode = mode_of(Path(path))
    perm = (f"{mode:04o}", "only the owner may read it: good" if mode & 0o077 == 0 else
            "WARNING: others may read this secret; chmod 600 it")
    if is_encrypted_key_pem(data) and not passphrase:
        rows = (("encrypted", "yes", "protected by a passphrase; give it to see the key's fingerprint"),
                ("permissions", *perm))
        return Explanation(Path(path), "an encrypted private key (not shown)", rows)
    key = load_private_key(path, passphrase)
    rows = (
        ("type", key_kind(key), ""),
        ("encrypted", "yes" if is_encrypted_key_pem(data) else "no",
         "an unencrypted key is readable by anybody who can read the file"),
        ("key fingerprint", public_key_fingerprint(key),
         "SHA-256 of the public half: matches its CSR and certificate"),
        ("permissions", *perm),
    )
    return Explanation(Path(path), "a private key (SECRET: described, never printed)", rows)


def _deadline(next_update: dt.datetime) -> str:
    """``PASSED`` (as a certificate's ``EXPIRED``) or ``current, N days left``."""
    now = dt.datetime.now(dt.timezone.utc)
    return "PASSED" if next_update <= now else f"current, {(next_update - now).days} days left"


def explain_crl(path: str | Path) -> Explanation:
    """Explain a certificate revocation list (``ca/crl.pem``, ``broker/crl.pem``: day-two step 11)."""
    from .certificates import extension_value
    from .crl import crl_number, load_crl, reason_of

    path = Path(path)
    crl = load_crl(path)
    aki = extension_value(crl, x509.AuthorityKeyIdentifier)
    entries = list(crl)
    shown = ", ".join(f"{e.serial_number:#x} ({reason_of(e)}, {e.revocation_date_utc:%Y-%m-%d})" for e in entries[:3])
    more = f" and {len(entries) - 3} more" if len(entries) > 3 else ""
    next_update = crl.next_update_utc
    rows = [
        ("issuer", crl.issuer.rfc4514_string(), "the CA that signed the list: it revokes only what it signed"),
        ("this update", f"{crl.last_update_utc:%Y-%m-%d %H:%M} UTC",
         "when it was signed (the lab writes 5 minutes earlier, so a clock a little behind accepts it)"),
        ("next update", f"{next_update:%Y-%m-%d %H:%M} UTC ({_deadline(next_update)})" if next_update else "none",
         "a newer list exists by then; after it OpenSSL (mosquitto) refuses EVERY client: sign it again in time"),
        ("CRL number", str(crl_number(crl)), "grows with every signing (RFC 5280 §5.2.3): the newest list wins"),
        ("authority key id", _hex(aki.key_identifier) if aki is not None and aki.key_identifier else "none",
         "the CA key that signed it: its subjectKeyIdentifier (RFC 5280 §5.2.1)"),
        ("revoked", f"{len(entries)}: {shown}{more}" if entries else "0",
         "serial numbers the CA no longer stands behind, with the reason code (RFC 5280 §5.3.1)"),
    ]
    return Explanation(path, "certificate revocation list (CRL)", tuple(rows))


def explain_file(path: str | Path, passphrase: bytes | str | None = None) -> Explanation:
    """Explain any file of the lab: certificate, CSR, private key or revocation list."""
    path = Path(path)
    data = read_bytes(path)
    label = pem_label(data)
    if label == b"CERTIFICATE":
        return explain_certificate(path)
    if label == b"X509 CRL":
        return explain_crl(path)
    if label in (b"CERTIFICATE REQUEST", b"NEW CERTIFICATE REQUEST"):
        return explain_csr(path)
    if is_private_key_pem(data):
        return explain_key(path, passphrase)
    raise InputError(path, f"cannot explain this: it is {describe_pem_kind(data)}; "
                           "expected a certificate, a CSR, a private key or a revocation list")
