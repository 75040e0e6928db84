"""Exercises of notebooks 00 (the warm-up) and 01 (foundations), and the few helpers 01 calls.

Notebook 01 teaches the four ideas every later arrow stands on, with ``cryptography`` code the student
writes: a **key pair** (the private half signs, the public half checks and may be shown to anyone); a
**signature** (change one byte and it no longer verifies); a **certificate** (a signed statement binding a
name to a public key); and the **chain** from a certificate through its issuer's signature to a trust
anchor, which is why a *critical* extension a verifier does not understand must make it refuse.

The judges take what the notebook holds (the student's key, message, certificate function) as keyword
context, for instance ``check("sign-a-message", signature, message=message, public_key=public_key)``.
"""

from __future__ import annotations

import datetime as dt
import random
import re
import types
from collections.abc import Iterable
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from ..diagram import ALL_FILES
from . import Feedback, exercise, normalise, right

NOTEBOOK_00 = "00_start_here.ipynb"
NOTEBOOK_01 = "01_foundations.ipynb"

_PRIVATE_KEYS = (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey, ed25519.Ed25519PrivateKey)
_PUBLIC_KEYS = (ec.EllipticCurvePublicKey, rsa.RSAPublicKey, ed25519.Ed25519PublicKey)


# --- 00: the warm-up -----------------------------------------------------------------------------------------

#: Every file name of the diagram (ca.crt appears in three boxes, but it is one name).
DIAGRAM_FILES: tuple[str, ...] = tuple(dict.fromkeys(f.name for f in ALL_FILES))
SECRET_FILES: frozenset[str] = frozenset(f.name for f in ALL_FILES if f.secret)

_CERTS_PUBLIC = ("a .crt file is a certificate: it is PUBLIC, handed to anyone who needs to check a signature or "
                 "a name (the diagram marks it 📜). Holding it lets you *recognise* somebody, not *be* them.")
_CSR_PUBLIC = ("a .csr is sent to the CA to be signed: it carries only the public key and the names asked for, so "
               "it is not secret.")
_ONLY_CA_KEY = ("ca.key is secret, yes. But the broker and the client can each be impersonated too: which of "
                "their files would let a thief *be* the broker or the client?")
_MISSING_CA_KEY = ("the most dangerous secret of all is in the CA's box: with it, anybody can sign a certificate "
                   "for any broker or client.")
_NOT_A_LIST = 'type the file names as a list of strings, e.g. ["ca.crt", "server.csr"].'


def _names_typed(answer: Any) -> list[str] | None:
    """A typed list of file names: a list/tuple/set of strings, or one string separated by commas/spaces."""
    if isinstance(answer, str):
        items: Iterable[Any] = re.split(r"[,\s;]+", answer)
    elif isinstance(answer, (list, tuple, set, frozenset)):
        items = answer
    else:
        return None
    if not all(isinstance(i, str) for i in items):
        return None
    # "ca/ca.key" or "pki/ca/ca.key" is a path to the same file: keep its name.
    return [i.strip().strip("'\"`").lower().rsplit("/", 1)[-1] for i in items if i.strip().strip("'\"`")]


@exercise("secret-files", NOTEBOOK_00, "type the names of the diagram's SECRET files, as a list",
          hint="a file is secret when holding it lets you *be* somebody: which files are private keys?",
          hints=(_CERTS_PUBLIC, _CSR_PUBLIC, _ONLY_CA_KEY, _MISSING_CA_KEY, _NOT_A_LIST))
def _secret_files(answer: Any) -> Feedback | str | None:
    names = _names_typed(answer)
    if names is None:
        return _NOT_A_LIST
    if not names:
        return _NOT_A_LIST
    unknown = [n for n in names if n not in DIAGRAM_FILES]
    if unknown:
        return f"{unknown[0]!r} is not a file of the diagram; its files are {', '.join(DIAGRAM_FILES)}."
    picked = set(names)
    if picked == SECRET_FILES:
        return right("The three private keys: ca.key, server.key and client.key. Whoever holds one can sign as "
                     "its owner, so each stays in its owner's folder, readable only by its owner (mode 0600). "
                     "Certificates and CSRs carry only public keys: show them to anyone.")
    if any(n.endswith(".crt") for n in picked):
        return _CERTS_PUBLIC
    if any(n.endswith(".csr") for n in picked):
        return _CSR_PUBLIC
    if "ca.key" not in picked:
        return _MISSING_CA_KEY
    return _ONLY_CA_KEY


# --- 01: signatures --------------------------------------------------------------------------------------------

_SIGN_CONTEXT = ("pass the message and your public key with it, as the cell shows: course.check('sign-a-message', "
                 "signature, message=message, public_key=my_key.public_key()).")
_SIGN_IS_KEY = ("that is a key, not a signature. A signature is what the private key makes from the message: "
                "my_key.sign(message, ec.ECDSA(hashes.SHA256())).")
_SIGN_IS_MESSAGE = ("that is the message itself. The signature is a separate value the private key computes "
                    "from it: my_key.sign(message, ...).")
_SIGN_TEXT = ("a signature is bytes, not text: pass what my_key.sign(...) returns as it is (no .hex(), no "
              "str()).")
_SIGN_OTHER_HASH = ("this signature is valid, but made over a {name} hash; this course (like the lab's "
                    "certificates) signs with SHA-256: ec.ECDSA(hashes.SHA256()).")
_SIGN_NO_MATCH = ("these bytes do not verify as a signature of `message` with your public key. Sign exactly "
                  "`message` (not a copy you changed), with my_key, the private half of the key you passed.")
_SIGN_NOT_BYTES = "a signature is bytes; my_key.sign(message, ec.ECDSA(hashes.SHA256())) returns them."


def _public(key: Any) -> Any:
    """The public half of a key (a public key is returned as it is)."""
    return key.public_key() if isinstance(key, _PRIVATE_KEYS) else key


def _verifies(public_key: Any, signature: bytes, message: bytes, hash_: hashes.HashAlgorithm | None) -> bool:
    """True when ``signature`` is a valid signature of ``message`` by ``public_key``."""
    try:
        if isinstance(public_key, ed25519.Ed25519PublicKey):
            public_key.verify(signature, message)
        elif isinstance(public_key, ec.EllipticCurvePublicKey) and hash_ is not None:
            public_key.verify(signature, message, ec.ECDSA(hash_))
        else:
            return False
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


@exercise("sign-a-message", NOTEBOOK_01, "sign the message with your private key (ECDSA with SHA-256)",
          hint="signature = my_key.sign(message, ec.ECDSA(hashes.SHA256())): the private key signs.",
          hints=(_SIGN_CONTEXT, _SIGN_IS_KEY, _SIGN_IS_MESSAGE, _SIGN_TEXT, _SIGN_OTHER_HASH.format(name="SHA384"),
                 _SIGN_NO_MATCH, _SIGN_NOT_BYTES), kind="code")
def _sign_a_message(answer: Any, *, message: Any = None, public_key: Any = None) -> Feedback | str:
    public_key = _public(public_key)
    if not isinstance(message, bytes) or not isinstance(public_key, _PUBLIC_KEYS):
        return _SIGN_CONTEXT
    if isinstance(answer, (*_PRIVATE_KEYS, *_PUBLIC_KEYS)):
        return _SIGN_IS_KEY
    if isinstance(answer, str):
        return _SIGN_TEXT
    if not isinstance(answer, (bytes, bytearray, memoryview)):
        return _SIGN_NOT_BYTES
    signature = bytes(answer)
    if signature == message:
        return _SIGN_IS_MESSAGE
    if _verifies(public_key, signature, message, hashes.SHA256()):
        return right(f"A {len(signature)}-byte ECDSA signature. Only your private key could make it; anybody "
                     "holding the public key can check it. (ECDSA uses a fresh random number each time: sign "
                     "again and you get other bytes, just as valid.)")
    for other in (hashes.SHA384(), hashes.SHA512(), hashes.SHA224(), hashes.SHA1()):
        if _verifies(public_key, signature, message, other):
            return _SIGN_OTHER_HASH.format(name=other.name.upper())
    return _SIGN_NO_MATCH


_TAMPER_SAME = ("`tampered` is still exactly `message`: change one byte, e.g. "
                "tampered = message.replace(b'21', b'91').")
_TAMPER_NOT_BYTES = "`tampered` must be bytes: the message with one byte changed (e.g. message.replace(b'21', b'91'))."
_TAMPER_TYPEERROR = ("TypeError means verify() was not given bytes at all: is `tampered` still `...`? Make it the "
                     "message with one byte changed, run the cell, and read the exception's name again.")
_TAMPER_TEXT = ("`tampered` is text (a str), and verify() takes bytes, not text: write it as a bytes literal, "
                "b'...', or change a byte of `message` itself, e.g. message.replace(b'21', b'91').")
_TAMPER_VALUEERROR = ("ValueError is Python's general complaint about a bad value; a signature that does not match "
                      "gets cryptography's own exception. Read the name the cell printed.")
_TAMPER_ACCEPTED = ("verify() returns None only when the signature matches, so if nothing was raised your "
                    "`tampered` equals `message`. Change one byte and run the cell again.")
_TAMPER_CHAIN = ("VerificationError comes from cryptography.x509.verification, which checks whole certificate "
                 "chains; a single signature check raises another exception. Read the name the cell printed.")
_TAMPER_TOO_VAGUE = ("every exception is an Exception: which one exactly? The cell prints type(error).__name__.")


def _exception_name(answer: Any) -> str:
    """The last part of an exception's name, lower case, from a class, an instance or a typed string."""
    if isinstance(answer, type):
        return answer.__name__.lower()
    if isinstance(answer, BaseException):
        return type(answer).__name__.lower()
    text = normalise(answer).removesuffix("()").rsplit(".", 1)[-1]
    return text.replace(" ", "")


@exercise("tampered-message", NOTEBOOK_01, "change one byte of the signed message and name the exception verify raises",
          hint="verify the tampered message with the public key inside try/except, print type(error).__name__, "
               "and type that name.",
          hints=(_TAMPER_SAME, _TAMPER_NOT_BYTES, _TAMPER_TEXT, _TAMPER_TYPEERROR, _TAMPER_VALUEERROR, _TAMPER_ACCEPTED,
                 _TAMPER_CHAIN, _TAMPER_TOO_VAGUE))
def _tampered(answer: Any, *, tampered: Any = Ellipsis, message: Any = None) -> Feedback | str | None:
    name = _exception_name(answer)
    if isinstance(tampered, str):
        return _TAMPER_TEXT
    if tampered is not Ellipsis and not isinstance(tampered, (bytes, bytearray)):
        return _TAMPER_TYPEERROR if name == "typeerror" else _TAMPER_NOT_BYTES
    if isinstance(message, bytes) and isinstance(tampered, (bytes, bytearray)) and bytes(tampered) == message:
        return _TAMPER_SAME
    if name == "invalidsignature":
        return right("cryptography.exceptions.InvalidSignature. verify() returns None when the signature "
                     "matches and raises when it does not, so a check cannot be forgotten silently. One changed "
                     "byte is enough: that is how a CA's signature protects every byte of a certificate.")
    return {"typeerror": _TAMPER_TYPEERROR, "valueerror": _TAMPER_VALUEERROR, "none": _TAMPER_ACCEPTED,
            "noexception": _TAMPER_ACCEPTED, "nothing": _TAMPER_ACCEPTED, "accepted": _TAMPER_ACCEPTED,
            "false": _TAMPER_ACCEPTED, "verificationerror": _TAMPER_CHAIN, "exception": _TAMPER_TOO_VAGUE,
            "baseexception": _TAMPER_TOO_VAGUE}.get(name)


# --- 01: a certificate binds a name to a public key ---------------------------------------------------------

_CERT_CONTEXT = ("pass your key and your name with it, as the cell shows: course.check('self-signed-cert', "
                 "make_certificate, key=my_key, name=my_name).")
_CERT_NAME_TYPE = ("subject_name() and issuer_name() take an x509.Name (the variable `name` in the function), "
                   "not a string.")
_CERT_PRIVATE_IN = ("public_key() takes the PUBLIC half, key.public_key(): a certificate is shown to everybody, "
                    "so the private key never goes into it.")
_CERT_SIGN_PUBLIC = ("sign() needs the PRIVATE key (a public key cannot sign): .sign(key, hashes.SHA256()).")
_CERT_HASH = "sign()'s second argument is a hash object: hashes.SHA256() (with the brackets)."
_CERT_MISSING = ("the builder is missing {what}: every certificate has a subject, an issuer, a public key, a "
                 "serial number and a validity window.")
_CERT_NOT_CERT = "make_certificate should return what .sign(...) returns: an x509.Certificate."
_CERT_WRONG_KEY = ("the certificate carries a public key that is not your key's: .public_key(key.public_key()) "
                   "binds the name to *your* key.")
_CERT_WRONG_NAME = "the subject should carry your name ({name!r}), but the certificate says {found!r}."
_CERT_NOT_SELF = ("the issuer ({issuer}) differs from the subject ({subject}): a self-signed certificate names "
                  "itself as its issuer, .issuer_name(name).")
#: The second name the judge asks make_certificate for, to see that it uses its arguments.
SECOND_NAME = "Grace's test certificate"
_CERT_IGNORES_KEY = ("make_certificate ignores its `key` argument: called with another key, it still puts "
                     "{which} in the certificate. Use the parameter `key` inside the function "
                     "(.public_key(key.public_key()), .sign(key, ...)), not the notebook's my_key.")
_CERT_IGNORES_NAME = ("make_certificate ignores its `common_name` argument: called with {asked!r}, the certificate "
                      "says {found!r}. Build the subject from `common_name` (the variable `name` does), not from "
                      "a fixed string or my_name.")
_CERT_BAD_SIGNATURE = ("the signature does not verify with the certificate's own public key: a self-signed "
                       "certificate is signed with the private half of the key it carries, .sign(key, ...).")


def has_placeholder(function: Any) -> bool:
    """True when a function's code still holds ``...`` (Ellipsis) somewhere: the student has not finished it."""
    code = getattr(function, "__code__", None)
    if code is None:
        return False
    pending: list[types.CodeType] = [code]
    while pending:
        current = pending.pop()
        for const in current.co_consts:
            if const is Ellipsis:
                return True
            if isinstance(const, types.CodeType):
                pending.append(const)
    return False


def _cert_error_hint(error: Exception) -> str | None:
    text = str(error)
    if isinstance(error, TypeError):
        if "x509.Name" in text:
            return _CERT_NAME_TYPE
        if "PublicKey" in text:
            return _CERT_PRIVATE_IN
        if "private key" in text:
            return _CERT_SIGN_PUBLIC
        if "hash" in text.lower() or "algorithm" in text.lower():
            return _CERT_HASH
    if isinstance(error, ValueError) and "must have" in text:
        return _CERT_MISSING.format(what=text.rsplit("must have", 1)[-1].strip(" ."))
    return None


def _common_name(name: x509.Name) -> str:
    found = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(found[0].value) if found else ""


def _made_certificate(answer: Any, key: Any, name: Any) -> x509.Certificate | Feedback | str:
    """The student's certificate (their function called with their key and name), or a verdict."""
    if isinstance(answer, x509.Certificate):
        return answer
    if not callable(answer):
        return _CERT_NOT_CERT
    if has_placeholder(answer):
        return Feedback(False, "Not finished yet: make_certificate still holds a `...`. Fill in issuer_name, "
                               "public_key and sign, then run the cell again.", answered=False)
    try:
        made = answer(key, name)
    except Exception as error:  # the student's own code may fail in any way: turn it into a hint
        hint = _cert_error_hint(error)
        if hint is None:
            raise
        return hint
    return made if isinstance(made, x509.Certificate) else _CERT_NOT_CERT


@exercise("self-signed-cert", NOTEBOOK_01, "complete the certificate builder: your name, your public key, self-signed",
          hint="subject and issuer are both `name`; the certificate carries key.public_key(); key signs it.",
          hints=(_CERT_CONTEXT, _CERT_NAME_TYPE, _CERT_PRIVATE_IN, _CERT_SIGN_PUBLIC, _CERT_HASH,
                 _CERT_MISSING.format(what="an issuer name"), _CERT_NOT_CERT, _CERT_WRONG_KEY,
                 _CERT_WRONG_NAME.format(name="Ada", found="Bob"),
                 _CERT_NOT_SELF.format(issuer="CN=Bob", subject="CN=Ada"), _CERT_BAD_SIGNATURE,
                 _CERT_IGNORES_KEY.format(which="my_key's public half"),
                 _CERT_IGNORES_NAME.format(asked=SECOND_NAME, found="Ada")), kind="code")
def _self_signed(answer: Any, *, key: Any = None, name: Any = None) -> Feedback | str:
    if not isinstance(key, _PRIVATE_KEYS) or not isinstance(name, str) or not name.strip():
        return _CERT_CONTEXT
    made = _made_certificate(answer, key, name)
    if not isinstance(made, x509.Certificate):
        return made
    cert = made
    if cert.public_key() != key.public_key():
        return _CERT_WRONG_KEY
    found = _common_name(cert.subject)
    if found != name:
        return _CERT_WRONG_NAME.format(name=name, found=found)
    if cert.issuer != cert.subject:
        return _CERT_NOT_SELF.format(issuer=cert.issuer.rfc4514_string(), subject=cert.subject.rfc4514_string())
    try:
        cert.verify_directly_issued_by(cert)
    except (InvalidSignature, ValueError, TypeError):
        return _CERT_BAD_SIGNATURE
    if callable(answer):
        ignored = _ignores_its_arguments(answer, key, name)
        if ignored is not None:
            return ignored
    return right(f"Your certificate binds the name {name!r} to your public key, and is signed by that same key: "
                 "self-signed, like ca.crt in arrow 2. Anybody can make one for any name, which is why a "
                 "self-signed certificate is trusted only when it is handed over on purpose, as a trust anchor.")


def _ignores_its_arguments(make: Any, key: Any, name: str) -> Feedback | str | None:
    """Call the student's builder once more, with a fresh key and another name: a builder that uses the
    notebook's ``my_key`` or a fixed name instead of its arguments gets a hint; None when it uses both."""
    other_key = ec.generate_private_key(ec.SECP256R1())
    other_name = SECOND_NAME if name != SECOND_NAME else SECOND_NAME + " (2)"
    made = _made_certificate(make, other_key, other_name)
    if not isinstance(made, x509.Certificate):
        return made
    carried = made.public_key()
    if carried != other_key.public_key():
        which = "my_key's public half" if carried == key.public_key() else "a key that is not the one passed in"
        return _CERT_IGNORES_KEY.format(which=which)
    found = _common_name(made.subject)
    if found != other_name:
        return _CERT_IGNORES_NAME.format(asked=other_name, found=found)
    try:
        made.verify_directly_issued_by(made)
    except (InvalidSignature, ValueError, TypeError):
        return _CERT_IGNORES_KEY.format(which="a signature made with another key (my_key?)")
    return None


def certificate_for_next_cells(make_certificate: Any, key: Any, name: str) -> x509.Certificate:
    """The certificate ``make_certificate(key, name)`` makes when it passes the exercise; else one the lab's own
    builder (:func:`mqtt_pki_lab.certificates.issue`) makes, so the next cells work either way (said in one line).
    """
    from ..certificates import issue
    from ..profile import validity

    if isinstance(key, _PRIVATE_KEYS) and _self_signed.check(make_certificate, key=key, name=name).correct:
        made = _made_certificate(make_certificate, key, name)
        if isinstance(made, x509.Certificate):
            return made
    if not isinstance(key, _PRIVATE_KEYS):
        key = ec.generate_private_key(ec.SECP256R1())
    print("(make_certificate is not finished yet: the next cells use a certificate made by the lab's builder)")
    plain = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name if isinstance(name, str) and name else "me")])
    return issue(key.public_key(), plain, issuer=None, signing_key=key, extensions=[], window=validity(30))


# --- 01: issuer -> signature -> trust anchor -----------------------------------------------------------------

def _small_cert(name: str, public_key: Any, issuer: str, signing_key: Any, *, ca: bool,
                extra: x509.ExtensionType | None = None, extra_critical: bool = False) -> x509.Certificate:
    """A minimal certificate for the demonstrations of notebook 01 (valid for a day, backdated 5 minutes)."""
    now = dt.datetime.now(dt.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                          encipher_only=False, decipher_only=False), critical=True)
    else:
        builder = (builder
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(signing_key.public_key()),
                                  critical=False)
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                   .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False))
    if extra is not None:
        builder = builder.add_extension(extra, critical=extra_critical)
    return builder.sign(signing_key, hashes.SHA256())


#: The name of the root CA of notebook 01's puzzle.
PUZZLE_ROOT = "Foundations Root CA"
PUZZLE_NAMES = ("sensor-a.example", "sensor-b.example")


def chain_puzzle(seed: int | None = None) -> tuple[x509.Certificate, dict[str, x509.Certificate]]:
    """A root CA certificate and two leaf certificates that both *name* it as their issuer.

    Only one was signed with the root's key; the other by an impostor's key. Which one is chosen at
    random (``seed`` fixes the choice, for tests). The student finds out with ``verify_directly_issued_by``.
    """
    chooser = random.Random(seed)
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = _small_cert(PUZZLE_ROOT, root_key.public_key(), PUZZLE_ROOT, root_key, ca=True)
    impostor = ec.generate_private_key(ec.SECP256R1())
    genuine = chooser.choice(PUZZLE_NAMES)
    candidates = {name: _small_cert(name, ec.generate_private_key(ec.SECP256R1()).public_key(), PUZZLE_ROOT,
                                    root_key if name == genuine else impostor, ca=False)
                  for name in PUZZLE_NAMES}
    return root, candidates


def issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """True when ``issuer``'s public key verifies ``cert``'s signature (and the names match)."""
    try:
        cert.verify_directly_issued_by(issuer)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


_PUZZLE_CONTEXT = ("pass the root and the candidates with it, as the cell shows: course.check('issued-by-root', "
                   "answer, root=root, candidates=candidates).")
_PUZZLE_IMPOSTOR = ("{name}'s issuer *name* is {root!r}, but a name is only a claim anybody can write. Does its "
                    "signature verify with the root's public key? candidates[{name!r}].verify_directly_issued_by(root)")
_PUZZLE_BOTH = ("only one of them was signed with the root's key; the other merely copied the root's name. Try "
                "verify_directly_issued_by(root) on each.")
_PUZZLE_ROOT = "the root is the trust anchor itself; which of the two candidates did it sign?"


@exercise("issued-by-root", NOTEBOOK_01, "find which candidate certificate the root really signed",
          hint="loop over candidates.items(), call cert.verify_directly_issued_by(root) in try/except, and "
               "answer with the name whose certificate passes.",
          hints=(_PUZZLE_CONTEXT, _PUZZLE_IMPOSTOR.format(name="sensor-a.example", root=PUZZLE_ROOT), _PUZZLE_BOTH,
                 _PUZZLE_ROOT), kind="code")
def _issued_by_root(answer: Any, *, root: Any = None, candidates: Any = None) -> Feedback | str:
    if not isinstance(root, x509.Certificate) or not isinstance(candidates, dict) or not candidates:
        return _PUZZLE_CONTEXT
    genuine = {n for n, c in candidates.items() if isinstance(c, x509.Certificate) and issued_by(c, root)}
    if isinstance(answer, x509.Certificate):
        answer = next((n for n, c in candidates.items() if c == answer), _common_name(answer.subject))
    if isinstance(answer, (list, tuple, set, frozenset)):
        picked = {normalise(a) for a in answer}
        if picked == genuine:
            answer = next(iter(picked))
        elif len(picked) > 1:
            return _PUZZLE_BOTH
        else:
            answer = next(iter(picked), "")
    typed = normalise(answer)
    if typed in genuine:
        return right(f"{typed}'s signature verifies with the root's public key. The other candidate carries the "
                     "same issuer *name*, but its signature was made by another key, so verify_directly_issued_by "
                     "raises InvalidSignature. A name is a claim; the signature is the proof. A client that "
                     "trusts ca.crt checks exactly this for the broker's certificate.")
    if typed in candidates:
        return _PUZZLE_IMPOSTOR.format(name=typed, root=_common_name(root.subject))
    if typed in (normalise(_common_name(root.subject)), "root", "the root"):
        return _PUZZLE_ROOT
    return f"answer with one of the candidates' names: {', '.join(candidates)}."


# --- 01: what "critical" means --------------------------------------------------------------------------------

#: An extension nobody knows: an OID under a private-enterprise arc, made up for the demonstration.
UNKNOWN_EXTENSION_OID = ObjectIdentifier("1.3.6.1.4.1.55555.1")


def verify_with_unknown_extension(critical: bool) -> str:
    """Verify a small chain whose leaf carries an extension no verifier knows, marked ``critical`` or not.

    Uses ``cryptography.x509.verification`` (RFC 5280 path validation, no network, no ``ssl``), and returns
    ``"accepted"`` or ``"refused: <the verifier's reason>"`` in one line.
    """
    from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

    root_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    root = _small_cert("Demo Root CA", root_key.public_key(), "Demo Root CA", root_key, ca=True)
    unknown = x509.UnrecognizedExtension(UNKNOWN_EXTENSION_OID, b"\x05\x00")
    leaf = _small_cert("broker.example", leaf_key.public_key(), "Demo Root CA", root_key, ca=False, extra=unknown,
                       extra_critical=critical)
    verifier = (PolicyBuilder().store(Store([root])).time(dt.datetime.now(dt.timezone.utc))
                .build_server_verifier(x509.DNSName("broker.example")))
    try:
        verifier.verify(leaf, [])
    except VerificationError as error:
        reason = str(error).split(" (encountered", 1)[0]
        return f"refused: {reason}"
    return "accepted"


_CRIT_ACCEPT = ("accepting (ignoring the extension) is allowed only for a NON-critical extension the verifier "
                "does not recognise. Marking it critical says: if you cannot process this, do not trust me.")
_CRIT_WARN = ("X.509 has no 'warn': a verifier accepts or rejects. Which one does RFC 5280 §4.2 require when it "
              "cannot process a critical extension?")
_CRIT_DEPENDS = ("it does not depend on anything else: RFC 5280 §4.2 gives one rule for a critical extension the "
                 "verifier does not recognise. Accept or reject?")


@exercise("critical-unknown", NOTEBOOK_01,
          "say what a verifier must do with a critical extension it does not recognise: accept or reject",
          hint="read RFC 5280 §4.2 as quoted above the cell: what MUST a certificate-using system do?",
          hints=(_CRIT_ACCEPT, _CRIT_WARN, _CRIT_DEPENDS))
def _critical_unknown(answer: Any) -> Feedback | str | None:
    if not isinstance(answer, str):
        return 'type one word as text: "accept" or "reject".'
    typed = normalise(answer)
    if typed in ("reject", "rejects", "rejected", "refuse", "refuses", "refused", "fail", "reject it",
                 "refuse it", "reject the certificate"):
        return right("RFC 5280 §4.2: a certificate-using system MUST reject a certificate with a critical "
                     "extension it does not recognise or cannot process; a non-critical one it does not "
                     "recognise it MAY ignore. So a CA marks critical what must never be skipped: basicConstraints "
                     "on a CA MUST be critical (§4.2.1.9), and keyUsage SHOULD be (§4.2.1.3).")
    if typed in ("accept", "accepts", "accepted", "ignore", "ignores", "ignore it", "ignored", "skip", "accept it",
                 "allow"):
        return _CRIT_ACCEPT
    if typed in ("warn", "warning", "log", "ask", "ask the user"):
        return _CRIT_WARN
    if typed in ("depends", "it depends", "maybe"):
        return _CRIT_DEPENDS
    return None


__all__ = ["DIAGRAM_FILES", "PUZZLE_NAMES", "PUZZLE_ROOT", "SECRET_FILES", "UNKNOWN_EXTENSION_OID",
           "certificate_for_next_cells", "chain_puzzle", "has_placeholder", "issued_by",
           "verify_with_unknown_extension"]

