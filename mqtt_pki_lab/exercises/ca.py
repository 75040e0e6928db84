"""Exercises of notebook 02 (the CA, arrows 1-2): read ``ca.crt`` with ``cryptography`` and type what it says.

The student loads the lab's CA certificate and answers from it: its lifetime in days, its basicConstraints
(critical? which path length? read by a function the judge also runs on a lax CA, where ``.critical`` and
``.value.ca`` differ), its keyUsage bits, and whether ``ca.crt`` carries the public half of
``ca.key`` (two fingerprints they compute). Each judge compares with the certificate the student read,
passed as context (``cert=ca_cert``, ``lab=lab``); without it, with the lab's defaults
(:mod:`mqtt_pki_lab.profile`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ..diagram import BROKER, CA_CERT, CA_KEY, FIRST_CLIENT
from ..files import read_bytes
from ..keys import load_private_key
from ..pem import load_certificate
from ..profile import CLOCK_SKEW, DEFAULT_CA_DAYS, DEFAULT_LEAF_DAYS, MAX_CA_DAYS, MAX_LEAF_DAYS
from . import Feedback, exercise, normalise, right
from .foundations import has_placeholder

NOTEBOOK = "02_the_ca.ipynb"


def _certificate(cert: Any) -> x509.Certificate | None:
    return cert if isinstance(cert, x509.Certificate) else None


# --- the CA's lifetime ------------------------------------------------------------------------------------------

_LIFE_SKEW = ("{answer} counts the extra minutes: the window is {days} days and {skew} minutes long, because "
              "notBefore is set {skew} minutes in the past (so a device whose clock is slightly behind still "
              "accepts ca.crt). Give whole days: .days of the timedelta.")
_LIFE_YEARS = ("{answer} counts years; the question asks for days. Subtract the two dates and take .days of the "
               "timedelta.")
_LIFE_CALENDAR = ("{answer} is ten calendar years with their leap days; the lab counts days (--ca-days), not years. "
                  "Read it from the certificate: not_valid_after_utc - not_valid_before_utc.")
_LIFE_LEAF = ("{answer} days is a broker's or client's lifetime (the lab's default is {leaf} days, its cap "
              "{cap}); the CA outlives the certificates it signs. Read ca.crt's own dates.")
_LIFE_CAP = ("{answer} days is this lab's cap for a CA (100 years), not what your CA got. Read ca.crt's own "
             "dates.")
_LIFE_LEFT = ("{answer} is the number of days LEFT from now (what explain_file shows); the lifetime is "
              "notAfter - notBefore, whatever today's date.")
_LIFE_NEGATIVE = "the lifetime is not_valid_after_utc - not_valid_before_utc (later minus earlier), a positive number."
_LIFE_DATE = "that is a date; the lifetime is the difference of two dates, in days."
_LIFE_NOT_NUMBER = "type a number of days, e.g. 30."


def _number(answer: Any) -> float | None:
    """A typed number: int, float or a numeric string (bools are not numbers here)."""
    if isinstance(answer, bool):
        return None
    if isinstance(answer, (int, float)):
        return float(answer)
    if isinstance(answer, str):
        try:
            return float(answer.strip().replace("_", ""))
        except ValueError:
            return None
    return None


@exercise("ca-lifetime", NOTEBOOK, "read the CA's lifetime in days from ca.crt",
          hint="lifetime = ca_cert.not_valid_after_utc - ca_cert.not_valid_before_utc; answer lifetime.days.",
          hints=(_LIFE_SKEW.format(answer="3650.0035", days=3650, skew=5), _LIFE_YEARS.format(answer=10),
                 _LIFE_CALENDAR.format(answer=3652), _LIFE_LEAF.format(answer=365, leaf=365, cap=397),
                 _LIFE_CAP.format(answer=36500), _LIFE_LEFT.format(answer=3649), _LIFE_NEGATIVE, _LIFE_DATE,
                 _LIFE_NOT_NUMBER))
def _ca_lifetime(answer: Any, *, cert: Any = None) -> Feedback | str | None:
    found = _certificate(cert)
    span = (found.not_valid_after_utc - found.not_valid_before_utc) if found is not None else \
        dt.timedelta(days=DEFAULT_CA_DAYS) + CLOCK_SKEW
    days = span.days
    if isinstance(answer, dt.timedelta):
        answer = answer.days if answer.days == days else answer.total_seconds() / 86400
    if isinstance(answer, (dt.datetime, dt.date)):
        return _LIFE_DATE
    number = _number(answer)
    if number is None:
        return _LIFE_NOT_NUMBER
    shown = answer.strip() if isinstance(answer, str) else f"{number:.4f}".rstrip("0").rstrip(".")
    if number == days:
        skew = int(CLOCK_SKEW.total_seconds() // 60)
        return right(f"{days} days (about {days / 365.25:.1f} years), from notBefore to notAfter. The window "
                     f"starts {skew} minutes in the past, for clocks slightly behind: the timedelta is {days} days "
                     f"and {skew} minutes, and .days drops the minutes. A CA must outlive what it signs: the lab "
                     "never lets a leaf's notAfter pass its CA's.")
    if number < 0:
        return _LIFE_NEGATIVE
    if days < number <= days + 1:
        return _LIFE_SKEW.format(answer=shown, days=days, skew=int(CLOCK_SKEW.total_seconds() // 60))
    if number in (days - 1, days - 2):
        return _LIFE_LEFT.format(answer=shown)
    if abs(number - days / 365) < 0.05 or abs(number - days / 365.25) < 0.05:
        return _LIFE_YEARS.format(answer=shown)
    if days % 365 == 0 and 1 < number - days <= days / 365 / 4 + 1:  # the leap days of days/365 calendar years
        return _LIFE_CALENDAR.format(answer=shown)
    if number in (DEFAULT_LEAF_DAYS, MAX_LEAF_DAYS):
        return _LIFE_LEAF.format(answer=shown, leaf=DEFAULT_LEAF_DAYS, cap=MAX_LEAF_DAYS)
    if number == MAX_CA_DAYS:
        return _LIFE_CAP.format(answer=shown)
    return None


# --- basicConstraints ---------------------------------------------------------------------------------------------

_BC_FUNCTION = ("answer with your function itself, basic_constraints (no brackets): the check calls it on ca_cert "
                "and on another CA certificate, and it should return a pair (critical, path_length).")
_BC_CONTEXT = ("pass your CA certificate with it, as the cell shows: course.check('ca-basic-constraints', "
               "basic_constraints, cert=ca_cert).")
_BC_PAIR = "your function should return two values, (critical, path length): e.g. (False, 3)."
_BC_EXTENSION = ("your function returns the whole extension; return what it says: (bc.critical, "
                 "bc.value.path_length).")
_BC_VALUE = ("your function returns the extension's value; its criticality is kept on the Extension around it: "
             "return (bc.critical, bc.value.path_length).")
_BC_CRITICAL = ("look again at bc.critical (on the Extension, not on bc.value). Strict verifiers (OpenSSL "
                "-x509_strict, Python 3.13) refuse a CA whose basicConstraints is not critical, as RFC 5280 "
                "§4.2.1.9 requires.")
_BC_NO_LIMIT = ("None would mean 'no limit on the CAs below me'; this CA states a limit. Read "
                "bc.value.path_length.")
_BC_ONE = ("a path length of 1 would let this CA sign one intermediate CA below it; this lab's root signs "
           "leaves directly. Read bc.value.path_length.")
_BC_CA_FLAG = ("the second value looks like bc.value.ca (yes, it is a CA); the question asks for the path "
               "length, bc.value.path_length.")
_BC_SWAPPED = "the order is (critical, path length): a True/False first, then a number."
_BC_READS_CA = ("right values for your CA, but on a CA certificate whose basicConstraints is NOT critical your "
                "function still says critical=True: it reads the value's .ca (\"I am a CA\", True on both), not "
                "the flag. Criticality is on the Extension: bc.critical.")
_BC_FIXED = ("your function gives {got} for another CA certificate too, whose basicConstraints says {other}: "
             "read both values from `cert`, the function's argument, not from ca_cert or typed in.")
_BC_OTHER = ("right for your CA, but on another CA certificate (basicConstraints not critical, no path length) "
             "your function gives {got}; it should give {other}. Read bc.critical and bc.value.path_length.")


def _truth(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and normalise(value) in ("true", "yes", "critical"):
        return True
    if isinstance(value, str) and normalise(value) in ("false", "no", "not critical"):
        return False
    return None


def _path_length(value: Any) -> int | str | None:
    """An int path length, None ("no limit"), or "?" for anything else."""
    if value is None or (isinstance(value, str) and normalise(value) in ("none", "no limit", "")):
        return None
    if isinstance(value, bool):
        return "?"
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return "?"


def _bc_expected(cert: x509.Certificate) -> tuple[bool, int | None] | None:
    try:
        ext = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    except x509.ExtensionNotFound:
        return None
    return ext.critical, ext.value.path_length


def _bc_pair(got: Any) -> tuple[bool, int | str | None] | str:
    """What a function returned, as (critical, path length), or the hint it earns."""
    if isinstance(got, x509.Extension):
        return _BC_EXTENSION
    if isinstance(got, x509.BasicConstraints):
        return _BC_VALUE
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        return _BC_PAIR
    first, second = got
    if not isinstance(first, bool) and isinstance(second, bool):
        return _BC_SWAPPED
    critical = _truth(first)
    if critical is None:
        return _BC_PAIR
    if isinstance(second, bool):
        return _BC_CA_FLAG
    return critical, _path_length(second)


@lru_cache(maxsize=1)
def other_ca_certificate() -> x509.Certificate:
    """A CA certificate whose basicConstraints is NOT critical and sets no path length (CA:TRUE only).

    Strict verifiers refuse such a CA (RFC 5280 §4.2.1.9); the judge of ``ca-basic-constraints`` calls the
    student's function on it, where ``.critical`` (False) and ``.value.ca`` (True) differ.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Old Lax Root CA")])
    now = dt.datetime.now(dt.timezone.utc)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - CLOCK_SKEW)
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=False)
            .sign(key, hashes.SHA256()))


@exercise("ca-basic-constraints", NOTEBOOK, "write a function that reads a certificate's basicConstraints: is it "
          "critical, which path length?",
          hint="bc = cert.extensions.get_extension_for_class(x509.BasicConstraints); "
               "return (bc.critical, bc.value.path_length).",
          hints=(_BC_FUNCTION, _BC_CONTEXT, _BC_PAIR, _BC_EXTENSION, _BC_VALUE, _BC_CRITICAL, _BC_NO_LIMIT, _BC_ONE,
                 _BC_CA_FLAG, _BC_SWAPPED, _BC_READS_CA, _BC_FIXED.format(got="(True, 0)", other="(False, None)"),
                 _BC_OTHER.format(got="(False, 0)", other="(False, None)")), kind="code")
def _ca_basic_constraints(answer: Any, *, cert: Any = None) -> Feedback | str | None:
    if not callable(answer) or isinstance(answer, type):
        return _BC_FUNCTION
    if has_placeholder(answer):
        return Feedback(False, "Not finished yet: basic_constraints still returns `...`. Make it return "
                               "(critical, path_length), then run the cell again.", answered=False)
    found = _certificate(cert)
    expected = _bc_expected(found) if found is not None else None
    if found is None or expected is None:
        return _BC_CONTEXT
    got = _bc_pair(answer(found))
    if isinstance(got, str):
        return got
    critical, length = got
    if got != expected:
        if critical != expected[0]:
            return _BC_CRITICAL
        if length is None:
            return _BC_NO_LIMIT
        if length == 1 and expected[1] == 0:
            return _BC_ONE
        return None
    other = other_ca_certificate()
    other_expected = _bc_expected(other)
    other_got = _bc_pair(answer(other))
    if other_got != other_expected:
        if isinstance(other_got, tuple) and other_got == got:
            return _BC_FIXED.format(got=_shown(got), other=_shown(other_expected))
        if isinstance(other_got, tuple) and other_got[0] is True:
            return _BC_READS_CA
        return _BC_OTHER.format(got=other_got if isinstance(other_got, str) else _shown(other_got),
                                other=_shown(other_expected))
    return right(f"basicConstraints is critical, CA:TRUE with pathLen {expected[1]}: a CA that may sign leaf "
                 "(end-entity) certificates only, no CA below it; and your function also told the lax CA "
                 "(not critical, no path length) apart. Critical, because a verifier that ignored it could "
                 "take any certificate for a CA (RFC 5280 §4.2.1.9; OpenSSL -x509_strict and Python 3.13 "
                 "reject a CA whose basicConstraints is not critical).")


def _shown(pair: Any) -> str:
    return f"({pair[0]!r}, {pair[1]!r})" if isinstance(pair, tuple) and len(pair) == 2 else repr(pair)


# --- keyUsage ---------------------------------------------------------------------------------------------------

#: The keyUsage bits (RFC 5280 §4.2.1.3) by cryptography's attribute name, and the names people type for them.
KEY_USAGE_BITS = ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
                  "key_agreement", "key_cert_sign", "crl_sign", "encipher_only", "decipher_only")
_ALIASES = {"nonrepudiation": "content_commitment", "certsign": "key_cert_sign", "keycertificatesign": "key_cert_sign"}

_KU_MISSING_DS = ("keyCertSign and cRLSign are there, but read every bit: ku.digital_signature is set too (the lab "
                  "sets it for OCSP responses and harmless signatures). Type all the bits that are True.")
_KU_MISSING_CERTSIGN = ("without keyCertSign the key could not sign certificates at all: look again at "
                        "ku.key_cert_sign.")
_KU_EXTRA = ("{bit} is not set on this CA: ku.{bit} is False. Type only the bits that are True.")
_KU_OBJECT = ("that is the KeyUsage object itself; type the names of the bits that are True, e.g. "
              "['key_agreement']. (Careful: ku.encipher_only raises unless key_agreement is set.)")
_KU_UNKNOWN = "{name!r} is not a keyUsage bit; the bits are " + ", ".join(KEY_USAGE_BITS) + "."
_KU_NOT_A_LIST = "type the bit names as a list of strings, e.g. ['key_agreement']."


def _bit_name(typed: str) -> str | None:
    """A keyUsage bit typed any usual way (keyCertSign, key_cert_sign, "key cert sign") as cryptography's name."""
    flat = re.sub(r"[\s_\-]", "", typed.strip().strip("'\"`")).lower()
    for bit in KEY_USAGE_BITS:
        if flat == bit.replace("_", ""):
            return bit
    return _ALIASES.get(flat)


def key_usage_bits(usage: x509.KeyUsage) -> frozenset[str]:
    """The names of the bits set in a KeyUsage (encipher_only/decipher_only read only with key_agreement)."""
    bits = {b for b in KEY_USAGE_BITS[:7] if getattr(usage, b)}
    if usage.key_agreement:
        bits |= {b for b in ("encipher_only", "decipher_only") if getattr(usage, b)}
    return frozenset(bits)


@exercise("ca-key-usage", NOTEBOOK, "list the keyUsage bits set in ca.crt",
          hint="ku = ca_cert.extensions.get_extension_for_class(x509.KeyUsage).value; type the names of the bits "
               "that are True (digital_signature, key_cert_sign, ...).",
          hints=(_KU_MISSING_DS, _KU_MISSING_CERTSIGN, _KU_EXTRA.format(bit="key_encipherment"), _KU_OBJECT,
                 _KU_UNKNOWN.format(name="sign"), _KU_NOT_A_LIST))
def _ca_key_usage(answer: Any, *, cert: Any = None) -> Feedback | str | None:
    expected = frozenset({"digital_signature", "key_cert_sign", "crl_sign"})
    found = _certificate(cert)
    if found is not None:
        try:
            expected = key_usage_bits(found.extensions.get_extension_for_class(x509.KeyUsage).value)
        except x509.ExtensionNotFound:
            expected = frozenset()
    if isinstance(answer, (x509.KeyUsage, x509.Extension)):
        return _KU_OBJECT
    if isinstance(answer, str):
        answer = [a for a in re.split(r"[,;]+", answer) if a.strip()]
    if not isinstance(answer, (list, tuple, set, frozenset)) or not all(isinstance(a, str) for a in answer):
        return _KU_NOT_A_LIST
    picked: set[str] = set()
    for typed in answer:
        # one bit ("key cert sign", "keyCertSign"), else several separated by spaces ("keyCertSign cRLSign")
        bits = [_bit_name(typed)] if _bit_name(typed) is not None else [_bit_name(t) for t in typed.split()]
        if not bits or None in bits:
            return _KU_UNKNOWN.format(name=typed.strip())
        picked.update(b for b in bits if b is not None)
    if picked == expected:
        return right(f"{', '.join(sorted(expected))}. Of these, key_cert_sign is what lets a CA sign certificates "
                     "(crl_sign: revocation lists). RFC 5280 §4.2.1.3 says a CA MUST have keyUsage and SHOULD mark "
                     "it critical; strict verifiers (OpenSSL -x509_strict, Python 3.13) require it present, and "
                     "only basicConstraints critical.")
    extra = sorted(picked - expected)
    if extra:
        return _KU_EXTRA.format(bit=extra[0])
    missing = expected - picked
    if "key_cert_sign" in missing:
        return _KU_MISSING_CERTSIGN
    if "digital_signature" in missing:
        return _KU_MISSING_DS
    return None


# --- ca.crt carries ca.key's public half ---------------------------------------------------------------------

_FP_PAIR = "answer with two fingerprints, (from_cert, from_key): each a SHA-256 hex string."
_FP_CONTEXT = ("pass your lab with it, as the cell shows: "
               "course.check('ca-key-matches', (from_cert, from_key), lab=lab).")
_FP_WHOLE_CERT = ("that is the fingerprint of the whole certificate (cert.fingerprint(...)): it changes with the "
                  "serial, the dates and the signature. Hash the public key only: its SubjectPublicKeyInfo DER.")
_FP_PEM = ("you hashed the PEM text of the public key; hash the DER bytes: public_bytes(Encoding.DER, "
           "PublicFormat.SubjectPublicKeyInfo).")
_FP_PRIVATE = ("you hashed the PRIVATE key's bytes: never serialise a private key to compare it. Take its public "
               "half first, ca_key.public_key(), and hash that.")
_FP_SHA1 = "that hex string has 40 digits: a SHA-1. Use SHA-256 (64 hex digits): hashlib.sha256(der).hexdigest()."
_FP_OTHER_ROLE = ("that fingerprint belongs to {file}, not to the CA: read ca/ca.crt and ca/ca.key.")
_FP_ONE_WRONG = ("{good} is right, {bad} is not: compute both the same way, from the public key "
                 "(for the key: ca_key.public_key()).")
_FP_NOT_HEX = "a fingerprint is a hex string (as hashlib's .hexdigest() gives, colons allowed)."


def _fingerprint_text(value: Any) -> str | None:
    """A typed fingerprint as lower-case hex without separators (bytes digests are accepted)."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    if not isinstance(value, str):
        return None
    text = re.sub(r"[\s:]", "", value.strip().strip("'\"`")).lower()
    return text if text and re.fullmatch(r"[0-9a-f]+", text) else None


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _spki(public_key: Any, encoding: serialization.Encoding = serialization.Encoding.DER) -> bytes:
    return public_key.public_bytes(encoding, serialization.PublicFormat.SubjectPublicKeyInfo)


def _lab_root_and_passphrase(lab: Any) -> tuple[Path, Any] | None:
    if isinstance(lab, (str, Path)):
        return Path(lab), None
    root = getattr(lab, "root", None)
    if isinstance(root, Path):
        return root, getattr(getattr(lab, "options", None), "passphrase", None)
    return None


def _near_misses(root: Path, passphrase: Any, cert: x509.Certificate) -> dict[str, str]:
    """Fingerprints a student may compute by mistake, each with its hint."""
    misses = {_sha256(_spki(cert.public_key(), serialization.Encoding.PEM)): _FP_PEM,
              cert.fingerprint(hashes.SHA256()).hex(): _FP_WHOLE_CERT,
              _sha256(cert.public_bytes(serialization.Encoding.PEM)): _FP_WHOLE_CERT}
    for path, hint in ((CA_CERT.path(root), _FP_WHOLE_CERT), (CA_KEY.path(root), _FP_PRIVATE)):
        with contextlib.suppress(Exception):  # the whole file hashed, as `sha256sum` would; unreadable: skip it
            misses[_sha256(read_bytes(path))] = hint
    try:
        key = load_private_key(CA_KEY.path(root), passphrase)
        for fmt in (serialization.PrivateFormat.PKCS8, serialization.PrivateFormat.TraditionalOpenSSL):
            der = key.private_bytes(serialization.Encoding.DER, fmt, serialization.NoEncryption())
            pem = key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())
            misses[_sha256(der)] = misses[_sha256(pem)] = _FP_PRIVATE
    except Exception:  # an encrypted or missing key: those near misses cannot be told, the rest still can
        pass
    for role in (BROKER, FIRST_CLIENT):
        path = role.file("crt").path(root)
        try:
            other = load_certificate(path)
        except Exception:  # not made yet: nothing to compare with
            continue
        name = f"{role.folder}/{role.file('crt').name}"
        misses[_sha256(_spki(other.public_key()))] = _FP_OTHER_ROLE.format(file=name)
        misses[other.fingerprint(hashes.SHA256()).hex()] = _FP_OTHER_ROLE.format(file=name)
    return misses


@exercise("ca-key-matches", NOTEBOOK, "compute the SHA-256 fingerprint of ca.crt's public key and of ca.key's "
          "public half",
          hint="fingerprint(ca_cert.public_key()) and fingerprint(ca_key.public_key()), with the fingerprint "
               "function of the cell above (SHA-256 of the DER SubjectPublicKeyInfo).",
          hints=(_FP_PAIR, _FP_CONTEXT, _FP_WHOLE_CERT, _FP_PEM, _FP_PRIVATE, _FP_SHA1,
                 _FP_OTHER_ROLE.format(file="broker/server.crt"),
                 _FP_ONE_WRONG.format(good="from_cert", bad="from_key"), _FP_NOT_HEX), kind="code")
def _ca_key_matches(answer: Any, *, lab: Any = None) -> Feedback | str | None:
    place = _lab_root_and_passphrase(lab)
    if place is None:
        return _FP_CONTEXT
    root, passphrase = place
    cert = load_certificate(CA_CERT.path(root))
    expected = _sha256(_spki(cert.public_key()))
    if not isinstance(answer, (tuple, list)) or len(answer) != 2:
        return _FP_PAIR
    if any(a is Ellipsis or a is None for a in answer):
        return Feedback(False, "Not answered yet: replace both ... with the fingerprints and run the cell again.",
                        answered=False)
    typed = [_fingerprint_text(a) for a in answer]
    if any(t is None for t in typed):
        return _FP_NOT_HEX
    from_cert, from_key = typed
    if from_cert == expected and from_key == expected:
        return right("The two fingerprints are equal: ca.crt carries the public half of ca.key, so what ca.key "
                     "signs, ca.crt verifies. (explain_file shows the same 'key fingerprint' for both files; "
                     "with openssl: openssl pkey -in ca/ca.key -pubout versus openssl x509 -in ca/ca.crt -noout "
                     "-pubkey.) The lab checks this pair before it signs anything.")
    misses = _near_misses(root, passphrase, cert)
    for value in (from_cert, from_key):
        if value != expected and value in misses:
            return misses[value]
    if any(t is not None and len(t) == 40 for t in typed):
        return _FP_SHA1
    if from_cert == expected:
        return _FP_ONE_WRONG.format(good="from_cert", bad="from_key")
    if from_key == expected:
        return _FP_ONE_WRONG.format(good="from_key", bad="from_cert")
    return None


__all__ = ["KEY_USAGE_BITS", "key_usage_bits", "other_ca_certificate"]
