"""Arrows 4 and 7 of the diagram: the broker and the client each create a certificate signing request.

A CSR (``server.csr``, ``client.csr``) carries the public key and the name its owner asks for, and is
signed with the owner's *private* key. That signature proves possession of the key, nothing more: it
does not prove any right to the name. Deciding that is the CA's job when it signs (arrows 5 and 8).
The CSR is sent to the CA; the private key never has to leave its owner.
"""

from __future__ import annotations

from cryptography import x509

from .certificates import signature_hash
from .errors import InputError
from .keys import PrivateKey
from .names import broker_names, check_client_name
from .profile import general_name, leaf_names, subject


def request_names(kind: str, names: list[str] | tuple[str, ...]) -> list[str]:
    """The names a ``broker`` or ``client`` asks for, checked: the broker's host names (normalised), or the
    client's single name (its MQTT username)."""
    if kind == "broker":
        return broker_names(names)
    if isinstance(names, str) or len(names) != 1:
        raise InputError("--client-name", "a client has exactly one name (its MQTT username)")
    return [check_client_name(names[0])]


def create_csr(key: PrivateKey, kind: str, names: list[str] | tuple[str, ...]) -> x509.CertificateSigningRequest:
    """Make the CSR of a ``broker`` or ``client``: Common Name = first name; subjectAltName = the broker's
    names plus localhost, 127.0.0.1 and ::1, or the client's device URI."""
    wanted = request_names(kind, names)
    builder = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(subject(wanted[0]))
        .add_extension(x509.SubjectAlternativeName([general_name(n) for n in leaf_names(kind, wanted)]),
                       critical=False)
    )
    return builder.sign(key, signature_hash(key))
