"""Arrows 1, 3 and 6 of the diagram: generate a private key (the SECRET 🔑 of each box).

A private key is the identity of its owner: whoever holds ``server.key`` *is* the broker as far as TLS
is concerned. So keys are written 0600, may be encrypted with a passphrase, and are never printed:
:func:`describe_key` tells what a key is without showing it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Union

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from .errors import InputError
from .files import read_bytes, write_atomic
from .pem import describe_pem_kind

#: A private key of one of the types the lab makes.
PrivateKey = Union[ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey, ed25519.Ed25519PrivateKey]  # noqa: UP007
#: The matching public key.
PublicKey = Union[ec.EllipticCurvePublicKey, rsa.RSAPublicKey, ed25519.Ed25519PublicKey]  # noqa: UP007


@dataclass(frozen=True)
class KeyType:
    """One kind of key the lab can generate, with its ``openssl`` spelling."""

    name: str
    kind: str
    """What :func:`key_kind` calls a key of this type, e.g. ``EC P-256``."""
    generate: Callable[[], PrivateKey]
    openssl: str
    """Arguments of ``openssl genpkey`` that make the same kind of key."""
    about: str


KEY_TYPES: dict[str, KeyType] = {
    kt.name: kt
    for kt in (
        KeyType("ec-p256", "EC P-256", lambda: ec.generate_private_key(ec.SECP256R1()),
                "-algorithm EC -pkeyopt ec_paramgen_curve:P-256",
                "elliptic curve P-256: small, fast, 128-bit security; the default"),
        KeyType("ec-p384", "EC P-384", lambda: ec.generate_private_key(ec.SECP384R1()),
                "-algorithm EC -pkeyopt ec_paramgen_curve:P-384",
                "elliptic curve P-384: 192-bit security, a little slower"),
        KeyType("rsa-2048", "RSA 2048", lambda: rsa.generate_private_key(65537, 2048),
                "-algorithm RSA -pkeyopt rsa_keygen_bits:2048",
                "RSA 2048 bits: the smallest RSA size still accepted; works everywhere"),
        KeyType("rsa-3072", "RSA 3072", lambda: rsa.generate_private_key(65537, 3072),
                "-algorithm RSA -pkeyopt rsa_keygen_bits:3072",
                "RSA 3072 bits: 128-bit security, slow to generate"),
        KeyType("rsa-4096", "RSA 4096", lambda: rsa.generate_private_key(65537, 4096),
                "-algorithm RSA -pkeyopt rsa_keygen_bits:4096",
                "RSA 4096 bits: large and slow (seconds to generate)"),
        KeyType("ed25519", "Ed25519", ed25519.Ed25519PrivateKey.generate,
                "-algorithm ED25519",
                "Ed25519: modern and fast; not every MQTT client library accepts it yet"),
    )
}
DEFAULT_KEY_TYPE = "ec-p256"


def key_type(name: str) -> KeyType:
    """Look up a key type by name (``ec-p256``, ``rsa-2048``, ...) with a helpful error."""
    try:
        return KEY_TYPES[name]
    except KeyError:
        raise InputError("--key-type", f"unknown key type {name!r}; choose one of: {', '.join(KEY_TYPES)}") \
            from None


def generate_key(kind: str = DEFAULT_KEY_TYPE) -> PrivateKey:
    """Generate a new private key of the given type (see :data:`KEY_TYPES`)."""
    return key_type(kind).generate()


def key_to_pem(key: PrivateKey, passphrase: bytes | str | None = None) -> bytes:
    """Serialise a private key as PKCS#8 PEM, encrypted with ``passphrase`` when one is given."""
    if passphrase:
        if isinstance(passphrase, str):
            passphrase = passphrase.encode()
        encryption: serialization.KeySerializationEncryption = serialization.BestAvailableEncryption(passphrase)
    else:
        encryption = serialization.NoEncryption()
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


def save_key(key: PrivateKey, path: Path, passphrase: bytes | str | None = None, *, durable: bool = False) -> Path:
    """Write a private key to ``path`` atomically with mode 0600 (``durable``: fsync it too)."""
    return write_atomic(Path(path), key_to_pem(key, passphrase), secret=True, durable=durable)


def is_private_key_pem(data: bytes) -> bool:
    """True when ``data`` holds a PEM private key (of any kind, encrypted or not)."""
    return b"PRIVATE KEY-----" in data


def is_encrypted_key_pem(data: bytes) -> bool:
    """True when a PEM private key is protected by a passphrase."""
    return b"ENCRYPTED PRIVATE KEY" in data or b"Proc-Type: 4,ENCRYPTED" in data


def load_private_key(path: str | Path, passphrase: bytes | str | None = None) -> PrivateKey:
    """Load a private key from a PEM file, explaining what is wrong when it cannot be loaded.

    ``passphrase`` is used only when the key is encrypted, so one passphrase can be given for a whole lab.
    """
    path = Path(path)
    data = read_bytes(path)
    if not is_private_key_pem(data):
        raise InputError(path, f"expected a private key, but this is {describe_pem_kind(data)}")
    encrypted = is_encrypted_key_pem(data)
    if isinstance(passphrase, str):
        passphrase = passphrase.encode()
    if encrypted and not passphrase:
        raise InputError(path, "this private key is encrypted; give its passphrase (--passphrase-file)")
    try:
        key = serialization.load_pem_private_key(data, password=passphrase if encrypted else None)
    except ValueError as exc:
        if encrypted:
            raise InputError(path, "wrong passphrase for this encrypted private key") from None
        raise InputError(path, f"the private key is damaged and cannot be read ({exc})") from None
    except TypeError as exc:
        raise InputError(path, f"cannot load this private key ({exc})") from None
    if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey, ed25519.Ed25519PrivateKey)):
        raise InputError(path, f"unsupported private key type {type(key).__name__}; use EC, RSA or Ed25519")
    return key


def key_type_of(key: PrivateKey | PublicKey) -> str | None:
    """The name in :data:`KEY_TYPES` of a key's type (``ec-p256``...), or None for a type the lab does not make."""
    return next((kt.name for kt in KEY_TYPES.values() if kt.kind == key_kind(key)), None)


#: Smallest RSA key OpenSSL accepts at security level 2 (112-bit security): the level Python's ssl sets since
#: 3.10, Debian builds OpenSSL with, and OpenSSL itself defaults to from 3.2 (3.0 and 3.1 default to level 1).
MIN_RSA_BITS = 2048
#: Largest RSA key the lab certifies (larger ones only slow every handshake down).
MAX_RSA_BITS = 16384
#: The curves TLS clients and brokers commonly accept.
GOOD_CURVES = ("secp256r1", "secp384r1", "secp521r1")


def key_problem(key: object) -> str | None:
    """Why the lab will not certify this (public or private) key, or None when it is strong and usable."""
    if isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        if key.key_size < MIN_RSA_BITS:
            return (f"RSA {key.key_size}: RSA keys below {MIN_RSA_BITS} bits are refused at OpenSSL's security "
                    "level 2, which Python's ssl and most systems use ('ee key too small')")
        if key.key_size > MAX_RSA_BITS:
            return f"RSA {key.key_size}: larger than {MAX_RSA_BITS} bits, which only slows every handshake"
        return None
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        if key.curve.name not in GOOD_CURVES:
            return (f"EC {key.curve.name}: TLS peers do not accept this curve (OpenSSL's default groups are "
                    "P-256, P-384, P-521 and X25519); use ec-p256 or ec-p384")
        return None
    if isinstance(key, (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey)):
        return None
    name = type(key).__name__.removeprefix("_").replace("PublicKey", "").replace("PrivateKey", "")
    return f"{name or 'this'} keys are not supported for MQTT over TLS here; use ec-p256, ec-p384, rsa-2048+ or ed25519"


def key_kind(key: PrivateKey | PublicKey) -> str:
    """A short human name of a key's type and size, e.g. ``EC P-256`` or ``RSA 2048``."""
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        return {"secp256r1": "EC P-256", "secp384r1": "EC P-384", "secp521r1": "EC P-521"}.get(
            key.curve.name, f"EC {key.curve.name}")
    if isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        return f"RSA {key.key_size}"
    if isinstance(key, (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey)):
        return "Ed25519"
    return type(key).__name__.removeprefix("_")


def public_key_fingerprint(key: PrivateKey | PublicKey) -> str:
    """SHA-256 of the public key (SubjectPublicKeyInfo DER), as colon-separated hex.

    The same value for a key, its CSR and its certificate: the quickest way to see that they belong
    together, and safe to show, because it is computed from the *public* half.
    """
    public = key.public_key() if hasattr(key, "private_bytes") else key  # type: ignore[union-attr]
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    digest = hashes.Hash(hashes.SHA256())
    digest.update(der)
    return digest.finalize().hex(":").upper()


def same_public_key(a: PrivateKey | PublicKey, b: PrivateKey | PublicKey) -> bool:
    """True when two keys (private or public) share the same public key."""
    def public(k: PrivateKey | PublicKey) -> PublicKey:
        return k.public_key() if hasattr(k, "private_bytes") else k  # type: ignore[return-value]

    return public(a) == public(b)
