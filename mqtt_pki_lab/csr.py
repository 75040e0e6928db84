"""Arrows 4 and 7 of the diagram: the broker and the client each create a certificate signing request.

A CSR (``server.csr``, ``client.csr``) carries the public key and the names its owner asks for, and is
signed with the owner's *private* key to prove possession. It is sent to the CA; the private key never
leaves its owner's folder.
"""

from __future__ import annotations

from cryptography import x509

from .ca import signature_hash
from .keys import PrivateKey
from .profile import check_common_name, check_name, general_name, server_names, subject


def request_names(role: str, names: list[str] | tuple[str, ...]) -> list[str]:
    """The names a ``broker`` or ``client`` asks for, checked; the broker adds the local names."""
    if not names:
        raise ValueError("at least one name is needed")
    where = "--server-name" if role == "broker" else "--client-name"
    for name in names:
        check_name(name, where)
    check_common_name(names[0], where)
    return server_names(names) if role == "broker" else list(dict.fromkeys(names))


def create_csr(key: PrivateKey, role: str, names: list[str] | tuple[str, ...]) -> x509.CertificateSigningRequest:
    """Make the CSR of a ``broker`` or ``client``: Common Name = first name, SAN = all names.

    Twin: ``openssl req -new -key server.key -out server.csr -subj "/CN=NAME"
    -addext "subjectAltName=DNS:NAME,DNS:localhost,IP:127.0.0.1,IP:::1"``.
    """
    wanted = request_names(role, names)
    builder = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(subject(names[0]))
        .add_extension(x509.SubjectAlternativeName([general_name(n) for n in wanted]), critical=False)
    )
    return builder.sign(key, signature_hash(key))
