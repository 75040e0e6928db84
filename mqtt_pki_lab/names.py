"""The names a certificate may carry, checked before anything is written.

* **A broker** is reached by host name or IP address: its names go into the certificate's
  subjectAltName as dNSName / iPAddress entries, which clients compare with the host they dialled
  (RFC 6125). A DNS name is dot-separated labels of letters, digits and hyphens (RFC 1123), and its
  last label is never all digits (RFC 1123 §2.1, RFC 3696 §2): ``192.168.1.300`` is a mistyped IPv4
  address, refused, not a DNS name.
* **A client** is a device, not a host: its name is its MQTT username (mosquitto's
  ``use_identity_as_username`` reads it from the Common Name). Usernames are commonly letters, digits,
  ``-``, ``_``, ``.`` and ``@``; the lab allows those, at most 64 characters (X.509's upper bound for a
  Common Name, RFC 5280 ub-common-name), and refuses control characters, ``/``, spaces and quotes,
  which would break a file path or a configuration line.

Every check uses ``fullmatch``: a name with a trailing newline is refused, not trimmed.
"""

from __future__ import annotations

import functools
import ipaddress
import re

from .diagram import CLIENT_NAME
from .errors import InputError

#: Upper bound of a Common Name in X.509 (RFC 5280, ub-common-name).
MAX_CN_LENGTH = 64
_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


def _shown(name: object) -> str:
    text = repr(name)
    return text if len(text) <= 40 else text[:37] + "...'"


@functools.lru_cache(maxsize=1024)
def is_ip(name: str) -> bool:
    """True when ``name`` is a plain IPv4 or IPv6 address (no ``%scope``: a certificate cannot carry one)."""
    if not isinstance(name, str) or "%" in name:
        return False
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def check_host_name(name: str, where: str = "--server-name") -> str:
    """Check a broker name: a DNS name or an IP address a certificate can carry; return it normalised.

    IP addresses come back in their short form (``0:0::1`` -> ``::1``), DNS names in lower case, so that
    the same name is never listed twice.
    """
    if not isinstance(name, str) or not name:
        raise InputError(where, "the name is empty; give a host name such as mqtt.example.com")
    if "%" in name:
        raise InputError(where, f"{_shown(name)} has a '%': an IPv6 zone (scope id) has no meaning outside one "
                                "machine and cannot go into a certificate; give the address without it")
    if is_ip(name):
        return str(ipaddress.ip_address(name))
    candidate = name[:-1] if name.endswith(".") else name
    labels = candidate.split(".")
    if len(candidate) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise InputError(where, f"{_shown(name)} is not a valid host name: use ASCII letters, digits, hyphens and dots "
                                "(e.g. mqtt.example.com), or an IP address")
    if labels[-1].isdigit():
        raise InputError(where, f"{_shown(name)} {_not_ipv4(labels)}")
    return candidate.lower()


def _not_ipv4(labels: list[str]) -> str:
    """Why a name whose last label is all digits is refused: it is a mistyped IPv4 address, not a host name.

    A top-level label is never all-numeric (RFC 1123 §2.1, RFC 3696 §2): that is how a dotted-decimal string
    that does not parse as IPv4 (``192.168.1.300``) is told apart from a DNS name, instead of going into the
    certificate as ``DNS:192.168.1.300``, a name no DNS resolves and no client dialling an address matches.
    """
    if not all(label.isdigit() for label in labels):
        return (f"is not a valid host name: its last label {labels[-1]!r} is all digits, and a top-level domain "
                "never is (RFC 1123 §2.1); give a DNS name such as mqtt.example.com, or an IP address")
    why = "looks like an IPv4 address but is not one: "
    if len(labels) != 4:
        return why + "an IPv4 address is four numbers 0-255 separated by dots (e.g. 192.168.1.50)"
    if any(len(label) > 1 and label.startswith("0") for label in labels):
        return why + "write each of the four numbers without leading zeros (e.g. 192.168.1.50)"
    return why + "each of the four numbers must be 0-255"


def check_common_name(name: str, where: str) -> str:
    """Check a Common Name: not empty, at most 64 characters, no control characters."""
    if not isinstance(name, str) or not name.strip():
        raise InputError(where, "the name is empty")
    if len(name) > MAX_CN_LENGTH:
        raise InputError(where, f"{name[:20]!r}... is {len(name)} characters; a certificate's Common Name "
                                f"holds at most {MAX_CN_LENGTH}")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise InputError(where, f"{_shown(name)} contains a control character (a newline, a NUL...); "
                                "a certificate name may not")
    return name


def check_client_name(name: str, where: str = "--client-name") -> str:
    """Check a client's name (its Common Name and MQTT username, and its folder ``clients/NAME``)."""
    if not isinstance(name, str) or not name:
        raise InputError(where, "the client's name is empty; give one such as sensor-1")
    check_common_name(name, where)
    if not CLIENT_NAME.fullmatch(name):
        raise InputError(where, f"{_shown(name)} is not a usable client name: use ASCII letters, digits and - _ . @ "
                                "(at most 64, not starting with '.' or '-'); no spaces, '/', quotes or "
                                "control characters")
    return name


def broker_names(names: list[str] | tuple[str, ...], where: str = "--server-name",
                 local: tuple[str, ...] = ()) -> list[str]:
    """The broker's names checked and normalised, then ``local`` names, each once, in order."""
    if isinstance(names, str):
        raise InputError(where, "give a list of names, not a single string")
    if not names:
        raise InputError(where, "the broker needs at least one name")
    out: list[str] = []
    for name in [*(check_host_name(n, where) for n in names), *local]:
        if name not in out:
            out.append(name)
    check_common_name(out[0], where)
    return out
