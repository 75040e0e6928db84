"""Reading certificates and CSRs from PEM files, with errors that name the file and the problem.

PEM is base64 text between ``-----BEGIN X-----`` and ``-----END X-----`` lines; the label says what
is inside. A DER file is the same data in binary, without the text armour.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography import x509

from .errors import InputError
from .files import read_bytes, write_atomic

_LABEL = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----")

_KINDS = {
    b"CERTIFICATE": "a certificate",
    b"CERTIFICATE REQUEST": "a certificate signing request (CSR)",
    b"NEW CERTIFICATE REQUEST": "a certificate signing request (CSR)",
    b"PRIVATE KEY": "a private key",
    b"ENCRYPTED PRIVATE KEY": "an encrypted private key",
    b"RSA PRIVATE KEY": "a private key",
    b"EC PRIVATE KEY": "a private key",
    b"PUBLIC KEY": "a public key",
    b"EC PARAMETERS": "EC parameters (not a key)",
    b"X509 CRL": "a certificate revocation list",
}


def pem_label(data: bytes) -> bytes | None:
    """The label of the first PEM block in ``data`` (``b"CERTIFICATE"``), or None when there is none."""
    match = _LABEL.search(data)
    return match.group(1) if match else None


def describe_pem_kind(data: bytes) -> str:
    """Say in words what a file holds: 'a certificate', 'a private key', 'binary (DER) data', ..."""
    label = pem_label(data)
    if label is None:
        if data[:1] == b"\x30":
            return "binary DER data, not PEM text (convert it with `openssl x509 -inform DER -in FILE`)"
        return "not a PEM file (no '-----BEGIN ...-----' line)"
    return _KINDS.get(label, f"a PEM block labelled {label.decode()!r}")


def _expect(path: Path, data: bytes, labels: tuple[bytes, ...], what: str) -> None:
    label = pem_label(data)
    if label not in labels:
        raise InputError(path, f"expected {what}, but this is {describe_pem_kind(data)}")


def _certificate_pem(path: str | Path, load: Callable[[bytes], Any], damaged: str) -> Any:
    """Read ``path``, check that it holds PEM certificates, and parse it with ``load`` (``damaged``: what to say
    when the parser refuses it)."""
    path = Path(path)
    data = read_bytes(path)
    _expect(path, data, (b"CERTIFICATE",), "a certificate")
    try:
        return load(data)
    except ValueError as exc:
        raise InputError(path, f"{damaged} and cannot be read ({exc})") from None


def load_certificate(path: str | Path) -> x509.Certificate:
    """Load a PEM certificate, explaining what the file is instead when it is not one."""
    return _certificate_pem(path, x509.load_pem_x509_certificate, "the certificate is damaged")


def load_certificates(path: str | Path) -> list[x509.Certificate]:
    """Load every certificate of a PEM bundle, in file order (a ``ca.crt`` holding two roots during a CA
    rotation; OpenSSL's ``cafile`` and mosquitto read every one; a leaf file of a lab with an intermediate CA:
    the leaf first, then the intermediate, the chain it presents). :func:`load_certificate` reads the first."""
    return _certificate_pem(path, x509.load_pem_x509_certificates, "a certificate of the bundle is damaged")


def load_csr(path: str | Path) -> x509.CertificateSigningRequest:
    """Load a PEM certificate signing request (CSR)."""
    path = Path(path)
    data = read_bytes(path)
    _expect(path, data, (b"CERTIFICATE REQUEST", b"NEW CERTIFICATE REQUEST"), "a certificate signing request")
    try:
        return x509.load_pem_x509_csr(data)
    except ValueError as exc:
        raise InputError(path, f"the CSR is damaged and cannot be read ({exc})") from None


def save_pem(obj: x509.Certificate | x509.CertificateSigningRequest, path: Path) -> Path:
    """Write a certificate or CSR as PEM (public, mode 0644), atomically."""
    from cryptography.hazmat.primitives.serialization import Encoding

    return write_atomic(Path(path), obj.public_bytes(Encoding.PEM), secret=False)
