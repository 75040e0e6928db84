"""Exercises of notebook 03 (the broker's certificate, arrows 3-5): names, purpose, and the CA's decision.

* ``broker-names``: the subjectAltName entries a broker needs for clients that dial a DNS name and an IP
  address (DNS vs IP entries; the Common Name alone does not do);
* ``broker-eku``: read ``server.crt``'s extendedKeyUsage with ``cryptography`` (the value or its OID objects:
  the purpose typed as text is not a reading);
* ``csr-policy``: a CSR asks for names; the student decides, by the CA's policy, which ones it signs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from ..names import is_ip
from ..profile import LOCAL_NAMES
from . import Feedback, exercise, normalise, right

NOTEBOOK = "03_broker_certificate.ipynb"

# --- broker-names -------------------------------------------------------------------------------------------------

#: The names the exercise's clients dial.
DIALLED_DNS = "mqtt.example.com"
DIALLED_IP = "192.168.1.20"

_NAMES_FORMAT = ("write each entry with its type, as openssl's -addext/-extfile take a SAN: a list such as "
                 "[\"DNS:some.host.name\", \"IP:10.0.0.1\"]. The type matters: a client compares a dialled name "
                 "with DNS entries and a dialled address with IP entries.")
_NAMES_CN = ("the Common Name is not where clients look. A client matches the name it dialled against the "
             "subjectAltName (RFC 6125 §6.4.4; RFC 9525 drops the CN fallback altogether), and an IP address is "
             "never matched against the CN. List subjectAltName entries: DNS:... and IP:...")
_NAMES_IP_AS_DNS = ("192.168.1.20 is an address, so it goes in an iPAddress entry (IP:192.168.1.20). A client "
                    "that dials an address compares it only with the certificate's IP entries (RFC 5280 §4.2.1.6 "
                    "keeps the two kinds apart); a DNS entry that looks like an address matches nothing.")
_NAMES_DNS_AS_IP = "mqtt.example.com is a host name, not an address: it goes in a DNS entry (DNS:mqtt.example.com)."
_NAMES_NO_IP = ("some clients dial 192.168.1.20 itself. Which entry lets a client that connects to an address "
                "accept the broker?")
_NAMES_NO_DNS = "some clients dial mqtt.example.com. Which entry lets them accept the broker?"
_NAMES_WILDCARD = ("a wildcard such as *.example.com matches every name one level under example.com: whoever "
                   "holds server.key could pose as any of those hosts. Name the broker exactly.")
_NAMES_EXTRA = ("{extra}: every name in server.crt is a name the broker can be reached by, and a name a "
                "stolen server.key could impersonate. List only the names clients dial (the local names "
                "localhost, 127.0.0.1 and ::1 are fine: the lab adds them).")
_NAMES_GENERAL = "list the subjectAltName entries, e.g. [\"DNS:...\", \"IP:...\"]."


#: Between two SAN entries typed in one string: a comma, or spaces before the next ``DNS``/``IP`` type.
_ENTRY_SEPARATOR = re.compile(r",|\s+(?=(?:dns|ip)\b)", re.IGNORECASE)


def _san_entries(answer: Any) -> list[str] | str:
    """The answer as ``TYPE:value`` strings, or a hint string when it cannot be read as SAN entries."""
    if isinstance(answer, x509.SubjectAlternativeName):
        answer = list(answer)
    if isinstance(answer, (str, x509.GeneralName)):
        answer = [answer]
    if not isinstance(answer, Iterable) or isinstance(answer, (bytes, dict)):
        return _NAMES_FORMAT
    entries: list[str] = []
    for item in answer:
        if isinstance(item, x509.DNSName):
            entries.append(f"DNS:{item.value}")
        elif isinstance(item, x509.IPAddress):
            entries.append(f"IP:{item.value}")
        elif isinstance(item, x509.GeneralName):
            entries.append(f"{type(item).__name__}:{item.value}")
        elif isinstance(item, str):
            entries += [part.strip() for part in _ENTRY_SEPARATOR.split(item) if part.strip()]
        else:
            return _NAMES_FORMAT
    return entries


def _split(entry: str) -> tuple[str, str]:
    kind, _, value = entry.partition(":")
    if not value:
        return "", entry
    kind = kind.strip().lower().replace(" ", "")
    return {"dns": "DNS", "dnsname": "DNS", "ip": "IP", "ipaddress": "IP"}.get(kind, kind), \
        value.strip().strip("'\"").lower()


@exercise("broker-names", NOTEBOOK, "list the subjectAltName entries a broker dialled as mqtt.example.com and "
          "192.168.1.20 must carry", hint=_NAMES_GENERAL,
          hints=(_NAMES_FORMAT, _NAMES_CN, _NAMES_IP_AS_DNS, _NAMES_DNS_AS_IP, _NAMES_NO_IP, _NAMES_NO_DNS,
                 _NAMES_WILDCARD, _NAMES_EXTRA))
def _broker_names(answer: Any) -> Feedback | str:
    if isinstance(answer, str) and re.search(r"\bcn\s*=", answer, re.IGNORECASE):
        return _NAMES_CN
    entries = _san_entries(answer)
    if isinstance(entries, str):
        return entries
    if not entries:
        return _NAMES_GENERAL
    if any(re.match(r"\s*(/?cn\s*=|commonname)", e, re.IGNORECASE) for e in entries):
        return _NAMES_CN
    split = [_split(e) for e in entries]
    if any(kind in ("cn", "commonname") for kind, _ in split):
        return _NAMES_CN
    if any(kind == "" for kind, _ in split):
        return _NAMES_FORMAT
    found = set(split)
    if ("DNS", DIALLED_IP) in found:
        return _NAMES_IP_AS_DNS
    if ("IP", DIALLED_DNS) in found:
        return _NAMES_DNS_AS_IP
    if any(value.startswith("*") for _, value in split):
        return _NAMES_WILDCARD
    if ("DNS", DIALLED_DNS) not in found:
        return _NAMES_NO_DNS
    if ("IP", DIALLED_IP) not in found:
        return _NAMES_NO_IP
    allowed = {("DNS", DIALLED_DNS), ("IP", DIALLED_IP), *(("IP" if is_ip(n) else "DNS", n) for n in LOCAL_NAMES)}
    extra = sorted(f"{k}:{v}" for k, v in found - allowed)
    if extra:
        return _NAMES_EXTRA.format(extra=", ".join(extra))
    local = "" if {("DNS", "localhost"), ("IP", "127.0.0.1")} & found else (
        " The lab adds localhost, 127.0.0.1 and ::1 too, for clients on the broker's own machine; they are "
        "not needed by these clients.")
    return right("DNS:mqtt.example.com for the clients that dial the name, IP:192.168.1.20 for the ones that "
                 "dial the address: each kind is matched only against its own kind of entry, and never against "
                 "the Common Name." + local)


# --- broker-eku ---------------------------------------------------------------------------------------------------

_EKU_KU = ("that is keyUsage: what the key may do (digitalSignature). The purpose of the whole certificate is in "
           "another extension: x509.ExtendedKeyUsage.")
_EKU_OTHER_EXTENSION = ("that is the {name} extension. Ask the certificate for the extendedKeyUsage one: "
                        "cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).")
_EKU_CERT = ("that is the whole certificate. Now take its extendedKeyUsage: "
             "cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value")
_EKU_PEM = "that is the file's bytes. Load them first: x509.load_pem_x509_certificate(data)."
_EKU_CLIENT = ("clientAuth (1.3.6.1.5.5.7.3.2) is the purpose of a client's certificate. Did you open "
               "broker/server.crt?")
_EKU_BOTH = ("a certificate good for both serverAuth and clientAuth could act as a broker and as a client; "
             "the lab gives each side only its own purpose. Read server.crt again.")
_EKU_TYPED = ("that is the right purpose, but typed by hand: the exercise is to *read* it from the "
              "certificate with cryptography. Read it from server_cert: "
              "server_cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value")
_EKU_GENERAL = ("give the extendedKeyUsage of broker/server.crt as cryptography reads it: the extension, its "
                "value (an x509.ExtendedKeyUsage), or its list of ObjectIdentifier objects.")


def _oids(answer: Any) -> list[str] | None:
    """The answer as a list of dotted OID strings, or None when it is not an EKU-like value."""
    if isinstance(answer, x509.Extension):
        answer = answer.value
    if isinstance(answer, x509.ObjectIdentifier):
        return [answer.dotted_string]
    if isinstance(answer, x509.ExtendedKeyUsage):
        return [oid.dotted_string for oid in answer]
    if isinstance(answer, str):
        names = {"serverauth": ExtendedKeyUsageOID.SERVER_AUTH.dotted_string,
                 "clientauth": ExtendedKeyUsageOID.CLIENT_AUTH.dotted_string,
                 "tls web server authentication": ExtendedKeyUsageOID.SERVER_AUTH.dotted_string,
                 "tls web client authentication": ExtendedKeyUsageOID.CLIENT_AUTH.dotted_string}
        text = normalise(answer)
        parts = [p.strip() for p in text.split(",") if p.strip()]
        if parts and all(p in names or re.fullmatch(r"[0-9]+(\.[0-9]+)+", p) for p in parts):
            return [names.get(p, p) for p in parts]
        return None
    if isinstance(answer, (list, tuple)) and answer:
        found: list[str] = []
        for item in answer:
            one = _oids(item)
            if one is None:
                return None
            found += one
        return found
    return None


def _typed_by_hand(answer: Any) -> bool:
    """True when the answer holds text (``"serverAuth"``, ``"1.3.6.1.5.5.7.3.1"``) rather than what
    cryptography reads from a certificate (an Extension, an ExtendedKeyUsage, ObjectIdentifier objects)."""
    if isinstance(answer, str):
        return True
    return isinstance(answer, (list, tuple)) and any(_typed_by_hand(item) for item in answer)


@exercise("broker-eku", NOTEBOOK, "read server.crt's extendedKeyUsage with cryptography", hint=_EKU_GENERAL,
          hints=(_EKU_KU, _EKU_OTHER_EXTENSION, _EKU_CERT, _EKU_PEM,
                 _EKU_CLIENT, _EKU_BOTH, _EKU_TYPED), kind="code")
def _broker_eku(answer: Any) -> Feedback | str:
    value = answer.value if isinstance(answer, x509.Extension) else answer
    if isinstance(value, x509.KeyUsage):
        return _EKU_KU
    if isinstance(value, x509.ExtensionType) and not isinstance(value, x509.ExtendedKeyUsage):
        return _EKU_OTHER_EXTENSION.format(name=type(value).__name__)
    if isinstance(answer, x509.Certificate):
        return _EKU_CERT
    if isinstance(answer, (bytes, bytearray)) or (isinstance(answer, str) and "BEGIN CERTIFICATE" in answer):
        return _EKU_PEM
    oids = _oids(answer)
    if oids is None:
        return _EKU_GENERAL
    server, client = ExtendedKeyUsageOID.SERVER_AUTH.dotted_string, ExtendedKeyUsageOID.CLIENT_AUTH.dotted_string
    if set(oids) == {server} and _typed_by_hand(answer):
        return _EKU_TYPED
    if set(oids) == {server}:
        return right("serverAuth, OID 1.3.6.1.5.5.7.3.1 (RFC 5280 §4.2.1.12): this certificate may identify a "
                     "TLS server and nothing else. OpenSSL checks it (so do Python's contexts): a client refuses "
                     "a broker whose extendedKeyUsage does not list serverAuth.")
    if server in oids and client in oids:
        return _EKU_BOTH
    if client in oids:
        return _EKU_CLIENT
    return _EKU_GENERAL


# --- csr-policy ---------------------------------------------------------------------------------------------------

#: The names the student's CSR asks for in the notebook, and the CA's policy: names under ``.lab.example``.
POLICY_SUFFIX = ".lab.example"
CSR_ASKS = ("mqtt.lab.example", "bank.example", "mqtt.lab.example.attacker.net", "printer.lab.example",
            "mqtt.evillab.example")
POLICY_GRANTS = frozenset(n for n in CSR_ASKS if n.endswith(POLICY_SUFFIX))

_POLICY_BANK = ("bank.example is not under .lab.example. The CSR's signature only proves that whoever sent it "
                "holds the private key; it proves no right to any name. Signing it would let that person pose "
                "as bank.example to everyone who trusts your CA.")
_POLICY_SUFFIX = ("mqtt.lab.example.attacker.net *contains* lab.example but ends in .attacker.net: it belongs to "
                  "whoever owns attacker.net. Check how a name ends (\"ends with .lab.example\"), never whether "
                  "it contains the text: a classic bug of name checks.")
_POLICY_DOT = ("mqtt.evillab.example ends in the text lab.example, but it is under evillab.example, a domain of "
               "its own that anyone may register. A name under .lab.example ends with the dot too: "
               "n.endswith(\".lab.example\"), or the name is lab.example itself.")
_POLICY_MISSING = ("{missing} is under .lab.example too: the policy allows it. A CA that refuses what its policy "
                   "allows just sends people elsewhere.")
_POLICY_EMPTY = "the policy does allow names under .lab.example. Which of the five end so?"
_POLICY_UNKNOWN = "{unknown}: the CSR does not ask for it. The CA signs (some of) the names asked for, nothing else."
_POLICY_GENERAL = "give the names the CA should sign, as a list of strings, e.g. [\"a.lab.example\"]."


@exercise("csr-policy", NOTEBOOK, "decide which names of a CSR the CA signs under its policy", hint=_POLICY_GENERAL,
          hints=(_POLICY_BANK, _POLICY_SUFFIX, _POLICY_DOT, _POLICY_MISSING, _POLICY_EMPTY,
                 _POLICY_UNKNOWN))
def _csr_policy(answer: Any) -> Feedback | str:
    if isinstance(answer, str):
        answer = [p for p in re.split(r"[,\s]+", answer) if p]
    if not isinstance(answer, (list, tuple, set, frozenset)):
        return _POLICY_GENERAL
    picked: set[str] = set()
    for item in answer:
        if isinstance(item, x509.DNSName):
            item = item.value
        if not isinstance(item, str):
            return _POLICY_GENERAL
        name = normalise(item).removeprefix("dns:").rstrip(".")
        if name:
            picked.add(name)
    if not picked:
        return _POLICY_EMPTY
    unknown = sorted(picked - set(CSR_ASKS))
    if unknown:
        return _POLICY_UNKNOWN.format(unknown=", ".join(unknown))
    if "bank.example" in picked:
        return _POLICY_BANK
    if "mqtt.lab.example.attacker.net" in picked:
        return _POLICY_SUFFIX
    if "mqtt.evillab.example" in picked:
        return _POLICY_DOT
    missing = sorted(POLICY_GRANTS - picked)
    if missing:
        return _POLICY_MISSING.format(missing=", ".join(missing))
    return right("mqtt.lab.example and printer.lab.example, and nothing else (mqtt.evillab.example ends in "
                 "'lab.example' but not in '.lab.example'). The CA decides every name it signs "
                 "(the lab's profile never copies a CSR's extensions); a public CA must also check that the "
                 "requester controls each name (CA/Browser Forum Baseline Requirements §3.2.2.4).")


__all__ = ["CSR_ASKS", "DIALLED_DNS", "DIALLED_IP", "POLICY_GRANTS", "POLICY_SUFFIX"]
