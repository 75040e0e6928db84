"""The certificate profile: which extensions each kind of certificate carries, and why.

Strict verifiers (OpenSSL ``-x509_strict``, Python 3.13's default context, mosquitto) check more than
a signature. They want a CA that *says* it is a CA (basicConstraints critical) and *may* sign
certificates (keyUsage keyCertSign); leaves that say what they are for (extendedKeyUsage) and which
names they answer to (subjectAltName); and key identifiers that link each leaf to its issuer.
"""

from __future__ import annotations

import datetime as dt
import functools
import ipaddress
import re
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .errors import InputError

#: The three roles of the diagram, by the name of their folder.
ROLES = ("ca", "broker", "client")
#: The two kinds of leaf certificate a CA signs here.
LEAF_ROLES = ("broker", "client")

#: Names every broker certificate answers to, so that a client on the same machine can connect.
LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")
#: Longest lifetime of a leaf certificate that browsers and strict clients accept (CA/B Forum rule).
MAX_LEAF_DAYS = 397
DEFAULT_LEAF_DAYS = 365
DEFAULT_CA_DAYS = 3650
DEFAULT_CA_NAME = "MQTT Lab Root CA"
DEFAULT_SERVER_NAME = "localhost"
DEFAULT_CLIENT_NAME = "client"
#: Backdate notBefore a little, so a machine whose clock is slightly behind accepts a fresh certificate.
CLOCK_SKEW = dt.timedelta(minutes=5)
#: Upper bound of a Common Name in X.509 (ub-common-name).
MAX_CN_LENGTH = 64

_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


@functools.lru_cache(maxsize=256)
def check_name(name: str, where: str = "--server-name") -> str:
    """Check that ``name`` is a DNS name or an IP address a certificate can carry; return it.

    DNS names are dot-separated labels of letters, digits and hyphens (no spaces, no ``!``).
    """
    if not isinstance(name, str) or not name.strip():
        raise InputError(where, "the name is empty; give a host name such as mqtt.example.com")
    if is_ip(name):
        return name
    candidate = name[:-1] if name.endswith(".") else name
    if len(candidate) > 253 or not all(_LABEL.match(label) for label in candidate.split(".")):
        raise InputError(where, f"{name!r} is not a valid host name: use letters, digits, hyphens and dots "
                                "(e.g. mqtt.example.com), or an IP address")
    return name


def check_common_name(name: str, where: str) -> str:
    """Check a name that becomes a certificate's Common Name (at most 64 characters)."""
    if len(name) > MAX_CN_LENGTH:
        raise InputError(where, f"{name[:20]!r}... is {len(name)} characters; a certificate's Common Name "
                                f"holds at most {MAX_CN_LENGTH}")
    return name


def check_days(days: int, where: str = "--days", maximum: int | None = MAX_LEAF_DAYS) -> int:
    """Check a validity period in days: positive, and at most ``maximum``."""
    if not isinstance(days, int) or isinstance(days, bool) or days <= 0:
        raise InputError(where, f"{days!r} is not a positive number of days")
    if maximum is not None and days > maximum:
        raise InputError(where, f"{days} days is too long: leaf certificates may live at most {maximum} days "
                                "(longer ones are refused by strict clients)")
    return days


@functools.lru_cache(maxsize=256)
def is_ip(name: str) -> bool:
    """True when ``name`` is an IPv4 or IPv6 address."""
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def general_name(name: str) -> x509.GeneralName:
    """The SAN entry for a name: an IPAddress for addresses, a DNSName otherwise."""
    return x509.IPAddress(ipaddress.ip_address(name)) if is_ip(name) else x509.DNSName(name)


def server_names(names: list[str] | tuple[str, ...]) -> list[str]:
    """The broker's SAN: its own names first, then the local names, without duplicates."""
    out: list[str] = []
    for name in [*names, *LOCAL_NAMES]:
        if name not in out:
            out.append(name)
    return out


def subject(common_name: str) -> x509.Name:
    """A subject with just a Common Name and the lab's organisation."""
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mqtt-pki-lab"),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])


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


def ca_extensions(public_key) -> list[tuple[x509.ExtensionType, bool]]:
    """Extensions of the CA certificate, each with its criticality."""
    return [
        # CA:TRUE, critical: strict verifiers refuse a CA whose basicConstraints may be ignored.
        # pathLen 0: this CA signs leaves only, never another CA.
        (x509.BasicConstraints(ca=True, path_length=0), True),
        # keyCertSign lets it sign certificates; cRLSign lets it sign revocation lists.
        (x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                       data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                       encipher_only=False, decipher_only=False), True),
        (x509.SubjectKeyIdentifier.from_public_key(public_key), False),
    ]


def leaf_extensions(role: str, names: list[str], public_key, issuer_ski: x509.SubjectKeyIdentifier
                    ) -> list[tuple[x509.ExtensionType, bool]]:
    """Extensions of a broker (``role="broker"``) or client (``role="client"``) certificate."""
    is_rsa = isinstance(public_key, rsa.RSAPublicKey)
    usage = ExtendedKeyUsageOID.SERVER_AUTH if role == "broker" else ExtendedKeyUsageOID.CLIENT_AUTH
    return [
        # Not a CA: this certificate may not sign others.
        (x509.BasicConstraints(ca=False, path_length=None), True),
        # The key signs handshakes (and, for RSA key exchange, decrypts the premaster secret).
        (x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=is_rsa,
                       data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                       encipher_only=False, decipher_only=False), True),
        # What it is for: serverAuth for the broker, clientAuth for a client; never both.
        (x509.ExtendedKeyUsage([usage]), False),
        # The names it answers to: clients check the host they dialled against this list.
        (x509.SubjectAlternativeName([general_name(n) for n in names]), False),
        (x509.SubjectKeyIdentifier.from_public_key(public_key), False),
        # Which CA key signed it: lets verifiers find the issuer (required by -x509_strict).
        (x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(issuer_ski), False),
    ]
