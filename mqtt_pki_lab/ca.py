"""Arrow 2 of the diagram: the CA signs its own certificate, ``ca.crt``, with ``ca.key``.

``ca.crt`` is the public face of the Certificate Authority: the broker and every client keep a copy,
and trust whatever certificate ``ca.key`` signed. It is *self-signed*: issuer and subject are the same,
which is what makes it a root of trust rather than something that needs checking further.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519

from .keys import PrivateKey
from .profile import DEFAULT_CA_DAYS, DEFAULT_CA_NAME, ca_extensions, check_common_name, check_days, subject
from .profile import validity as make_validity


def signature_hash(signing_key: PrivateKey) -> hashes.HashAlgorithm | None:
    """The digest to sign with: SHA-256, or none for Ed25519 (which hashes internally)."""
    return None if isinstance(signing_key, ed25519.Ed25519PrivateKey) else hashes.SHA256()


def create_ca_certificate(ca_key: PrivateKey, common_name: str = DEFAULT_CA_NAME,
                          days: int = DEFAULT_CA_DAYS) -> x509.Certificate:
    """Make the self-signed CA certificate for ``ca_key``.

    Twin: ``openssl req -x509 -new -key ca.key -out ca.crt -days 3650 -subj "/CN=..."`` with
    ``-addext`` for basicConstraints (critical, CA:TRUE, pathlen:0) and keyUsage (critical).
    """
    check_common_name(common_name, "--ca-name")
    check_days(days, "--ca-days", maximum=None)
    window = make_validity(days)
    name = subject(common_name)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(window.not_before)
        .not_valid_after(window.not_after)
    )
    for extension, critical in ca_extensions(ca_key.public_key()):
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(ca_key, signature_hash(ca_key))
