"""Arrows 5 and 8 of the diagram: the CA signs a CSR with ``ca.key``, making ``server.crt`` or ``client.crt``.

The CA first checks the CSR's own signature (proof that the requester holds the private key), then
decides what goes into the certificate: the requester asks, the CA's profile rules. The broker gets
``serverAuth`` and its names; the client gets ``clientAuth`` and its name, which mosquitto reads as the
MQTT username. No leaf outlives the CA that signed it.
"""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID

from .ca import signature_hash
from .csr import request_names
from .errors import InputError
from .keys import PrivateKey, same_public_key
from .profile import DEFAULT_LEAF_DAYS, LEAF_ROLES, check_days, leaf_extensions, subject
from .profile import validity as make_validity


def csr_names(csr: x509.CertificateSigningRequest) -> list[str]:
    """The names a CSR asks for: its Common Name first, then its subjectAltName entries."""
    names: list[str] = [a.value for a in csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]  # type: ignore[misc]
    try:
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = x509.SubjectAlternativeName([])
    for entry in san:
        value = str(entry.value)
        if value not in names:
            names.append(value)
    return names


def sign_csr(csr: x509.CertificateSigningRequest, ca_cert: x509.Certificate, ca_key: PrivateKey, role: str,
             days: int = DEFAULT_LEAF_DAYS, *, csr_path: str | Path = "CSR",
             ca_key_path: str | Path = "ca.key") -> x509.Certificate:
    """Sign ``csr`` as the CA, applying the profile of ``role`` (``"broker"`` or ``"client"``).

    Raises :class:`~mqtt_pki_lab.errors.InputError` when the CSR's signature does not verify, when
    its names are not valid, or when ``ca_key`` is not the key of ``ca_cert``.

    Twin: ``openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 365
    -sha256 -copy_extensions copy -extfile server.ext``.
    """
    if role not in LEAF_ROLES:
        raise ValueError(f"role must be one of {LEAF_ROLES}, not {role!r}")
    check_days(days)
    if not csr.is_signature_valid:
        raise InputError(csr_path, "the CSR's signature does not verify: it was altered, or not signed by "
                                   "the key it carries; make the CSR again from its private key")
    if not same_public_key(ca_key, ca_cert.public_key()):  # type: ignore[arg-type]
        raise InputError(ca_key_path, "this key does not belong to ca.crt; the CA cannot sign with it")
    names = csr_names(csr)
    if not names:
        raise InputError(csr_path, "the CSR asks for no name (no Common Name, no subjectAltName)")
    names = request_names(role, names)
    window = make_validity(days, not_after_limit=ca_cert.not_valid_after_utc)
    issuer_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject(names[0]))
        .issuer_name(ca_cert.subject)
        .public_key(csr.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(window.not_before)
        .not_valid_after(window.not_after)
    )
    for extension, critical in leaf_extensions(role, names, csr.public_key(), issuer_ski):
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(ca_key, signature_hash(ca_key))
