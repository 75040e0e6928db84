"""One certificate builder for every certificate of the lab, and one reader for what a certificate says.

:func:`issue` is the only place a certificate is put together: the CA's own (self-signed), an
intermediate's, a broker's or a client's, and the deliberately broken ones of break-it. It takes the
extensions from :mod:`~mqtt_pki_lab.profile` and adds what links a certificate to its issuer (the issuer's
name and the authorityKeyIdentifier). The CA never copies an extension from a CSR: it decides.

The readers (:func:`common_name`, :func:`san_names`, :func:`extended_key_usage`, :func:`signed_by`) are
what the checks, the explanations, the exports and the brokers use to read a certificate.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .keys import PrivateKey, PublicKey
from .profile import Extensions, Validity, subject


def signature_hash(signing_key: PrivateKey) -> hashes.HashAlgorithm | None:
    """The digest to sign with: SHA-256, or none for Ed25519 (which hashes internally)."""
    return None if isinstance(signing_key, ed25519.Ed25519PrivateKey) else hashes.SHA256()


def issue(public_key: PublicKey, name: str | x509.Name, *, issuer: x509.Certificate | None, signing_key: PrivateKey,
          extensions: Extensions, window: Validity, serial: int | None = None) -> x509.Certificate:
    """Make a certificate for ``public_key`` named ``name``, signed with ``signing_key``.

    ``issuer`` None makes a self-signed certificate (a root CA: issuer = subject). Otherwise the issuer's
    subject becomes the issuer name and an authorityKeyIdentifier (the issuer's subjectKeyIdentifier)
    is added, which strict verifiers require on every certificate that is not self-signed.
    """
    subject_name = subject(name) if isinstance(name, str) else name
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject_name)
        .issuer_name(subject_name if issuer is None else issuer.subject)
        .public_key(public_key)
        .serial_number(serial or x509.random_serial_number())
        .not_valid_before(window.not_before)
        .not_valid_after(window.not_after)
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    if issuer is not None:
        ski = extension_value(issuer, x509.SubjectKeyIdentifier)
        aki = (x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski) if ski is not None
               else x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.public_key()))  # type: ignore[arg-type]
        builder = builder.add_extension(aki, critical=False)
    return builder.sign(signing_key, signature_hash(signing_key))


# --- reading ------------------------------------------------------------------------------------------------

Readable = x509.Certificate | x509.CertificateSigningRequest


def extension(obj: Readable, kind: type) -> x509.Extension | None:
    """The extension of class ``kind`` (e.g. ``x509.KeyUsage``), or None when it is absent."""
    try:
        return obj.extensions.get_extension_for_class(kind)
    except x509.ExtensionNotFound:
        return None
    except ValueError:  # a duplicate or malformed extension: treat as unreadable
        return None


def extension_value(obj: Readable, kind: type):
    """The value of an extension, or None."""
    ext = extension(obj, kind)
    return ext.value if ext is not None else None


def common_name(obj: Readable | x509.Name) -> str | None:
    """The Common Name of a certificate's or CSR's subject (or of a Name), or None when it has none."""
    name = obj if isinstance(obj, x509.Name) else obj.subject
    cns = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(cns[0].value) if cns else None


def display_name(name: x509.Name) -> str:
    """A name as people read it: its Common Name, or the whole name when it has none."""
    return common_name(name) or name.rfc4514_string() or "(empty name)"


def san_names(obj: Readable) -> list[str]:
    """The DNS names, IP addresses and URIs in a certificate's (or CSR's) subjectAltName, in order."""
    san = extension_value(obj, x509.SubjectAlternativeName)
    if san is None:
        return []
    kinds = (x509.DNSName, x509.IPAddress, x509.UniformResourceIdentifier)
    return [str(n.value) for n in san if isinstance(n, kinds)]


def host_names(obj: Readable) -> list[str]:
    """Only the DNS names and IP addresses of the subjectAltName: what a client checks a broker against."""
    return [n for n in san_names(obj) if not n.startswith("urn:")]


EKU_NAMES = {ExtendedKeyUsageOID.SERVER_AUTH: "serverAuth", ExtendedKeyUsageOID.CLIENT_AUTH: "clientAuth",
             ExtendedKeyUsageOID.CODE_SIGNING: "codeSigning", ExtendedKeyUsageOID.EMAIL_PROTECTION: "emailProtection",
             ExtendedKeyUsageOID.OCSP_SIGNING: "OCSPSigning", ExtendedKeyUsageOID.TIME_STAMPING: "timeStamping"}


def extended_key_usage(cert: Readable) -> list[x509.ObjectIdentifier] | None:
    """The extendedKeyUsage purposes, or None when the certificate has none (usable for anything)."""
    value = extension_value(cert, x509.ExtendedKeyUsage)
    return list(value) if value is not None else None


def eku_text(usages: list[x509.ObjectIdentifier]) -> str:
    """``serverAuth, clientAuth``: purposes in OpenSSL's short names."""
    return ", ".join(EKU_NAMES.get(u, u.dotted_string) for u in usages) or "empty"


def is_ca(cert: x509.Certificate) -> bool:
    """True when the certificate says it is a CA (basicConstraints CA:TRUE)."""
    bc = extension_value(cert, x509.BasicConstraints)
    return bool(bc is not None and bc.ca)


def digest_name(cert: x509.Certificate | None) -> str | None:
    """The digest a certificate is signed with (``sha256``), or None (Ed25519, unknown)."""
    if cert is None:
        return None
    try:
        algorithm = cert.signature_hash_algorithm
    except UnsupportedAlgorithm:
        return None
    return algorithm.name if algorithm is not None else None


def signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """True when ``cert`` names ``issuer`` as its issuer and ``issuer``'s key signed it.

    Signatures with digests cryptography no longer verifies (SHA-1) are checked by hand, so that a
    weak signature is reported as weak, not as signed by somebody else.
    """
    if cert.issuer != issuer.subject:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
        return True
    except InvalidSignature:
        return False
    except (ValueError, TypeError, UnsupportedAlgorithm):
        pass
    key = issuer.public_key()
    try:
        digest = cert.signature_hash_algorithm
        if isinstance(key, rsa.RSAPublicKey):
            scheme = cert.signature_algorithm_parameters or padding.PKCS1v15()
            key.verify(cert.signature, cert.tbs_certificate_bytes, scheme, digest)  # type: ignore[arg-type]
        elif isinstance(key, ec.EllipticCurvePublicKey) and digest is not None:
            key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(digest))
        else:
            key.verify(cert.signature, cert.tbs_certificate_bytes)  # type: ignore[call-arg]
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return True
