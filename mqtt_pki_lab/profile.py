"""The certificate profile: which extensions each kind of certificate carries, and why.

Strict verifiers (OpenSSL ``-x509_strict``, Python 3.13's default context, mosquitto) check more than
a signature. They want a CA that *says* it is a CA (basicConstraints, which must be marked critical) and
*may* sign certificates (keyUsage keyCertSign; RFC 5280 says keyUsage SHOULD be critical, and the lab
marks it so); leaves that say what they are for (extendedKeyUsage) and which names they answer to
(subjectAltName); and key identifiers that link each certificate to its issuer.

This module is data and small decisions; :func:`mqtt_pki_lab.certificates.issue` applies it, in one place.
"""

from __future__ import annotations

import datetime as dt
import urllib.parse
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .errors import InputError
from .names import is_ip

#: Names every broker certificate answers to, so that a client on the same machine can connect.
LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")
#: This lab's own cap on a leaf certificate's lifetime. It is the lab's choice, not a TLS rule: 397 days is
#: the usual safe figure under the public web's former 398-day limit (CA/Browser Forum Baseline Requirements
#: §6.3.2, for certificates issued from 2020-09-01); ballot SC-081 lowers that limit to 200 days from
#: 2026-03-15, 100 from 2027-03-15 and 47 from 2029-03-15. OpenSSL, Python 3.13 and mosquitto accept
#: longer-lived leaves from a private CA. Short lives limit how long a stolen key works.
MAX_LEAF_DAYS = 397
DEFAULT_LEAF_DAYS = 365
DEFAULT_CA_DAYS = 3650
#: This lab's cap on a CA's lifetime (100 years); dates past 9999 cannot even be written in X.509.
MAX_CA_DAYS = 36500
DEFAULT_CA_NAME = "MQTT Lab Root CA"
DEFAULT_SERVER_NAME = "localhost"
DEFAULT_CLIENT_NAME = "client"
#: Backdate notBefore a little, so a machine whose clock is slightly behind accepts a fresh certificate.
CLOCK_SKEW = dt.timedelta(minutes=5)
#: Days from a revocation list's signing to its nextUpdate: this lab's default (why 30: :mod:`~mqtt_pki_lab.crl`).
DEFAULT_NEXT_UPDATE_DAYS = 30
ORGANIZATION = "mqtt-pki-lab"
#: A client certificate names its device with a URI in the subjectAltName, not as a host: nobody dials a
#: device by a host name. (A single-label dNSName such as ``sensor-1`` is valid DNS syntax, RFC 1034, but
#: pkilint flags it, as it flags the broker's ``localhost``.)
#: The URN namespace is the lab's own (not registered with IANA): fine inside a private PKI.
CLIENT_URI_PREFIX = "urn:mqtt-pki-lab:client:"


def check_days(days: object, where: str = "--days", maximum: int = MAX_LEAF_DAYS) -> int:
    """Check a validity period in days: a whole number from 1 to ``maximum``."""
    if not isinstance(days, int) or isinstance(days, bool) or days <= 0:
        raise InputError(where, f"{days!r} is not a positive whole number of days")
    if days > maximum:
        if maximum == MAX_LEAF_DAYS:
            raise InputError(where, f"{days} days is longer than this lab allows for a broker's or client's "
                                    f"certificate ({maximum} days: the lab's own choice, a figure from the public "
                                    "web's former 398-day rule; public limits are shrinking, CA/Browser Forum "
                                    "ballot SC-081. Short lives limit how long a stolen key works)")
        raise InputError(where, f"{days} days is longer than this lab allows for a CA ({maximum} days)")
    return days


def client_uri(name: str) -> str:
    """The URI that names a client device in its certificate's subjectAltName."""
    return CLIENT_URI_PREFIX + urllib.parse.quote(name, safe="@-._")


def subject(common_name: str) -> x509.Name:
    """A subject with just a Common Name and the lab's organisation."""
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])


def general_name(name: str) -> x509.GeneralName:
    """The SAN entry for a name: an IPAddress for addresses, a URI for ``urn:...``, a DNSName otherwise."""
    import ipaddress

    if is_ip(name):
        return x509.IPAddress(ipaddress.ip_address(name))
    if name.startswith("urn:"):
        return x509.UniformResourceIdentifier(name)
    return x509.DNSName(name)


@dataclass(frozen=True)
class Validity:
    """A certificate's validity window."""

    not_before: dt.datetime
    not_after: dt.datetime


def validity(days: int, not_after_limit: dt.datetime | None = None, now: dt.datetime | None = None) -> Validity:
    """A window starting a few minutes ago (clock skew) and lasting ``days``, cut at ``not_after_limit``."""
    now = now or dt.datetime.now(dt.timezone.utc)
    not_after = now + dt.timedelta(days=days)
    if not_after_limit is not None and not_after > not_after_limit:
        not_after = not_after_limit
    return Validity(now - CLOCK_SKEW, not_after)


def _key_usage(*, sign: bool = False, certs: bool = False, encipher: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=sign, content_commitment=False, key_encipherment=encipher,
                         data_encipherment=False, key_agreement=False, key_cert_sign=certs, crl_sign=certs,
                         encipher_only=False, decipher_only=False)


Extensions = list[tuple[x509.ExtensionType, bool]]


def ca_extensions(public_key, path_length: int = 0) -> Extensions:
    """Extensions of a CA certificate, each with its criticality.

    ``path_length`` 0: it signs leaves only; 1: it may sign one intermediate CA, which signs the leaves.
    """
    return [
        # CA:TRUE, critical: strict verifiers refuse a CA whose basicConstraints may be ignored.
        (x509.BasicConstraints(ca=True, path_length=path_length), True),
        # keyCertSign lets it sign certificates, cRLSign revocation lists; digitalSignature is for OCSP
        # responses and is harmless. RFC 5280 says keyUsage SHOULD be critical: it is.
        (_key_usage(sign=True, certs=True), True),
        (x509.SubjectKeyIdentifier.from_public_key(public_key), False),
    ]


def leaf_extensions(kind: str, names: list[str], public_key) -> Extensions:
    """Extensions of a ``broker`` or ``client`` certificate (the AKI is added by the builder)."""
    if kind not in ("broker", "client"):
        raise ValueError(f"a leaf is a broker's or a client's certificate, not a {kind!r}")
    is_rsa = isinstance(public_key, rsa.RSAPublicKey)
    usage = ExtendedKeyUsageOID.SERVER_AUTH if kind == "broker" else ExtendedKeyUsageOID.CLIENT_AUTH
    return [
        # Not a CA: this certificate may not sign others.
        (x509.BasicConstraints(ca=False, path_length=None), True),
        # The key signs handshakes (and, for RSA key exchange in TLS 1.2, decrypts the premaster secret).
        (_key_usage(sign=True, encipher=is_rsa), True),
        # What it is for: serverAuth for the broker, clientAuth for a client; never both.
        (x509.ExtendedKeyUsage([usage]), False),
        # The broker: the names clients dial. A client: the URI naming the device.
        (x509.SubjectAlternativeName([general_name(n) for n in names]), False),
        (x509.SubjectKeyIdentifier.from_public_key(public_key), False),
    ]


def leaf_names(kind: str, names: list[str]) -> list[str]:
    """The SAN of a leaf: the broker's names plus the local names; a client's device URI."""
    if kind == "broker":
        return list(dict.fromkeys([*names, *LOCAL_NAMES]))
    return [client_uri(names[0])]
