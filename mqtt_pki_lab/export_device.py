"""Exports a real device loads: a PKCS#12 file (phones, Java) and a C header (ESP32, Arduino, ESP-IDF).

* :func:`pkcs12_bytes` packs a client's private key, its certificate and the CA chain above it into one
  PKCS#12 file (RFC 7292), protected by a passphrase. Android, Java keystores, Windows and
  ``openssl pkcs12`` import it.
* :func:`c_header_text` writes the CA certificate (and, for a client, its certificate) as C string
  constants, one line of PEM per line of C, the way ``WiFiClientSecure`` and ``esp-mqtt`` take them. The
  private key goes in only when asked for (``include_key=True``), and then with a loud warning.

**Keys never go into an export without being asked for**, and an export that holds a key is written only
where the user says, 0600, and never inside the lab folder (:func:`check_output`): the lab folder holds
the diagram's files and nothing else, because ``status``, ``verify`` and ``break`` read it and ``break``
copies all of it; ``verify`` finds a stray PEM key there, but a PKCS#12 is binary and encrypted, so a copy
of a key hidden in one would go unseen. A key the device made itself (``mqtt-pki-lab request`` there) is
not in the lab at all: then the PKCS#12 is made on the device, and this module says how.

**Which encryption a PKCS#12 gets.** :data:`P12_ENCRYPTIONS`:

* ``aes-256`` (the default): keys and certificates encrypted with PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC),
  integrity by HMAC-SHA256 (RFC 7292 with RFC 8018). OpenSSL 3 writes the same by default and reads it
  without ``-legacy`` (checked by the tests with OpenSSL 3.0). Java reads it from JDK 12 on, and from 8u301
  and 11.0.12 on, where OpenJDK backported its stronger PKCS#12 defaults and the ``HmacPBESHA256`` MAC
  (OpenJDK CSR JDK-8267701); checked by hand with the keytool of OpenJDK 17.0.15. Android: *not
  confirmed* for any version. Users report that the certificate installer of Android 11, 12 and 13 rejects
  such a file with a misleading "incorrect password" (strongSwan's docs added a warning for Android 12),
  and one report says Android 16 imports it.
* ``3des``: the older PKCS#12 scheme (pbeWithSHA1And3-KeyTripleDES-CBC, HMAC-SHA1) for readers like those
  Android versions. OpenSSL 3 still reads it without ``-legacy`` (3DES and the PKCS#12 KDF are in its
  default provider; only RC2-40, the scheme before it, needs ``-legacy``); checked by the tests.

PBKDF2 runs :data:`KDF_ROUNDS` rounds, this lab's own choice: OpenSSL 3 uses 2048 and Java 10000; more
rounds slow down whoever guesses passphrases, and 100000 still opens in a few tens of milliseconds.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding, PrivateFormat, pkcs12

from . import diagram as L
from .certificates import common_name, signed_by
from .errors import InputError, RefusedError
from .export import client_role, server_name
from .files import check_lab_path, read_bytes, write_atomic
from .intermediate import chain_pem
from .keys import PrivateKey, is_encrypted_key_pem, key_to_pem, load_private_key, same_public_key
from .pem import load_certificate
from .steps import Lab, key_on_device

#: PBKDF2 rounds for the PKCS#12 encryption (the lab's own choice; OpenSSL 3 uses 2048, Java 10000).
KDF_ROUNDS = 100_000


@dataclass(frozen=True)
class P12Encryption:
    """One way to protect a PKCS#12: the cipher for the key and certificate bags, and the MAC's hash."""

    name: str
    algorithm: pkcs12.PBES
    mac: type[hashes.HashAlgorithm]
    about: str
    """The scheme in the words ``openssl pkcs12 -info`` uses."""


#: The encryptions :func:`pkcs12_bytes` offers, by name (see the module's docstring for who reads which).
P12_ENCRYPTIONS: dict[str, P12Encryption] = {
    e.name: e for e in (
        P12Encryption("aes-256", pkcs12.PBES.PBESv2SHA256AndAES256CBC, hashes.SHA256,
                      "PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC), MAC HMAC-SHA256"),
        P12Encryption("3des", pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC, hashes.SHA1,
                      "pbeWithSHA1And3-KeyTripleDES-CBC, MAC HMAC-SHA1"),
    )
}
DEFAULT_P12_ENCRYPTION = "aes-256"


# --- what an export is made of -------------------------------------------------------------------------------

def _lab_root(root: str | Path) -> Path:
    path = check_lab_path(root)
    if not path.is_dir():
        raise InputError(path, "no such lab folder; make one with: mqtt-pki-lab build DIR")
    return path


def _ca_certificates(root: Path) -> list[tuple[Path, x509.Certificate]]:
    """Every CA certificate the lab has (the root's ``ca/ca.crt``, and an intermediate's when it has one)."""
    found = []
    for role in Lab(root).roles.all:
        if role.kind in ("ca", "intermediate"):
            path = role.file("crt").path(root)
            if path.is_file() and not path.is_symlink():
                found.append((path, load_certificate(path)))
    return found


def ca_chain(root: str | Path, leaf: x509.Certificate, leaf_path: str | Path = "certificate") -> list[x509.Certificate]:
    """The CA certificates above ``leaf``, nearest first, up to the self-signed root: all from the lab ``root``.

    Today that is ``ca/ca.crt`` alone; a lab with an intermediate CA gives the intermediate, then the root,
    which is the order a TLS peer sends and PKCS#12 readers expect (RFC 8446 §4.4.2). A leaf that no CA
    certificate of the lab signed is refused: a device given that chain would fail its handshake.
    """
    cas = _ca_certificates(Path(root))
    if not cas:
        raise InputError(L.CA_CERT.path(root), "missing: the CA's certificate (arrow 2), the top of every chain. "
                                               f"Build the lab first: mqtt-pki-lab build {root}")
    chain: list[x509.Certificate] = []
    current = leaf
    while not chain or chain[-1].issuer != chain[-1].subject:
        issuer = next((c for _, c in cas if c not in chain and signed_by(current, c)), None)
        if issuer is None:
            problem = "is not signed by this lab's CA" if not chain else \
                f"chains up to {chain[-1].subject.rfc4514_string()}, which no CA certificate of the lab signed"
            known = ", ".join(str(p) for p, _ in cas)
            raise InputError(leaf_path, f"{problem} ({known}); a device given this chain would fail its handshake. "
                                        f"Check the lab: mqtt-pki-lab verify {root}")
        chain.append(issuer)
        current = issuer
    return chain


def _client_certificate(root: Path, name: str) -> tuple[L.Role, Path, x509.Certificate]:
    role = client_role(root, name, "NAME")
    path = role.file("crt").path(root)
    if not path.is_file():
        raise InputError(path, f"missing: the certificate of {role.label} (arrow 8). Sign its CSR first: "
                               f"mqtt-pki-lab add-client {root} {role.name}")
    return role, path, load_certificate(path)


def device_pkcs12_twin(friendly: str) -> str:
    """The ``openssl pkcs12 -export`` that makes the same PKCS#12 on the device, where its key is.

    OpenSSL 3's defaults are this module's ``aes-256`` (add ``-legacy`` for the old 3DES/RC2 scheme).
    """
    files = L.FILE_NAMES["client"]
    return (f"openssl pkcs12 -export -inkey {files['key']} -in {files['crt']} -certfile {files['trust']} "
            f"-name {shlex.quote(friendly)} -out {shlex.quote(friendly + '.p12')}")


def client_key(root: str | Path, role: L.Role, cert: x509.Certificate, key_password: bytes | str | None = None,
               *, instead: str = "") -> PrivateKey:
    """The private key of ``role`` from the lab, checked against its certificate.

    A key that is not in the lab is explained: made on the device (the CA's note says so, or simply no
    ``client.key`` beside ``client.crt``), it stays there; ``instead`` says what to do there.
    An encrypted key (``--encrypt-all-keys`` labs) needs ``key_password``.
    """
    root = Path(root)
    path = role.file("key").path(root)
    if not path.is_file() or path.is_symlink():
        where = "lives on the device (made there; only its CSR came to the CA)" if key_on_device(root, role) else \
            "is not in the lab (if the device made it, only its CSR came to the CA, and the key is there)"
        raise InputError(path, f"missing: the private key of {role.label} {where}; no export made here can hold "
                               f"it. {instead}".rstrip())
    if is_encrypted_key_pem(read_bytes(path)) and not key_password:
        raise InputError(path, "this private key is encrypted (a lab built with --encrypt-all-keys); give its "
                               "passphrase with --key-passphrase-file")
    key = load_private_key(path, key_password)
    if not same_public_key(key, cert.public_key()):
        raise InputError(path, f"does not belong to {role.file('crt').relpath} (another key pair): arrows "
                               f"6-8 must be redone for {role.label}; check with mqtt-pki-lab verify {root}")
    return key


def _passphrase_bytes(passphrase: bytes | str) -> bytes:
    secret = passphrase.encode() if isinstance(passphrase, str) else passphrase
    if not isinstance(secret, bytes) or not secret.strip():
        raise InputError("--passphrase-file", "the passphrase is empty; a PKCS#12 protects the private key with it, "
                                              "so give one (on the file's first line)")
    return secret


def pkcs12_bytes(root: str | Path, name: str, passphrase: bytes | str, key_password: bytes | str | None = None,
                 encryption: str = DEFAULT_P12_ENCRYPTION) -> bytes:
    """A PKCS#12 file for the client ``name``: its key, its certificate and the CA chain, under ``passphrase``.

    ``name`` is a client's folder name (``sensor-1`` for ``clients/sensor-1/``, ``client`` for the first) or
    its MQTT username. The friendly name (the alias a Java keystore or a phone shows) is that username, the
    certificate's Common Name. ``key_password`` opens an encrypted ``client.key``. ``encryption`` is a key
    of :data:`P12_ENCRYPTIONS`. Everything is checked first: the key must match the certificate, and the
    certificate must chain up to the lab's CA.

    >>> data = pkcs12_bytes("pki", "sensor-1", b"a long passphrase")   # doctest: +SKIP
    """
    secret = _passphrase_bytes(passphrase)
    chosen = P12_ENCRYPTIONS.get(encryption)
    if chosen is None:
        raise InputError("--encryption", f"{encryption!r}: choose one of {', '.join(P12_ENCRYPTIONS)}")
    root = _lab_root(root)
    role, cert_path, cert = _client_certificate(root, name)
    friendly = common_name(cert) or role.name
    key = client_key(root, role, cert, key_password,
                     instead="Make the PKCS#12 on the device, with client.crt and ca.crt copied beside its key: "
                             + device_pkcs12_twin(friendly))
    chain = ca_chain(root, cert, cert_path)
    protect = (PrivateFormat.PKCS12.encryption_builder().kdf_rounds(KDF_ROUNDS)
               .key_cert_algorithm(chosen.algorithm).hmac_hash(chosen.mac()).build(secret))
    return pkcs12.serialize_key_and_certificates(friendly.encode(), key, cert, chain, protect)


# --- the C header -------------------------------------------------------------------------------------------

#: A client name that becomes a C identifier as it is, hyphens turned into underscores (``sensor-1`` ->
#: ``sensor_1``): lower-case letters and digits in groups joined by single hyphens.
_PLAIN_NAME = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
#: The suffix that marks an identifier as hashed; a plain name ending like it is hashed too.
_HASH_TAIL = re.compile(r".*-[0-9a-f]{8}")
#: What a PEM line may hold: base64 and the BEGIN/END lines. Anything else would not be a PEM line.
_PEM_LINE = re.compile(r"[A-Za-z0-9+/= -]*")


def c_identifier(name: str) -> str:
    """The C identifier part for a client's name: ``sensor-1`` -> ``sensor_1``; never the same for two names.

    Client names may hold ``A-Z a-z 0-9 - _ . @``. A *plain* name (lower-case letters and digits, single
    hyphens between them) maps hyphens to underscores, which can be undone, so two plain names never
    meet. Every other name (``Sensor_1``, ``a.b``, ``a-b`` vs ``a_b``...) gets its readable form plus
    ``_`` and the first 8 hex digits of the SHA-256 of the name: ``a.b`` -> ``a_b_5d0e5c81``. Plain names
    ending in ``-`` and 8 hex digits are hashed too, so the two kinds never meet either. No identifier
    holds ``__`` (reserved in C++, which is what Arduino compiles).
    """
    if _PLAIN_NAME.fullmatch(name) and not _HASH_TAIL.fullmatch(name):
        return name.replace("-", "_")
    readable = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "client"
    return f"{readable}_{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def _c_string(pem: bytes, where: str | Path) -> list[str]:
    """PEM text as C string literal lines, ``"...\\n"`` each: the string equals the PEM text exactly."""
    lines = pem.decode("ascii", "replace").splitlines()
    if not all(_PEM_LINE.fullmatch(line) for line in lines):
        raise InputError(where, "holds characters a PEM file never has; it cannot go into a C string as is")
    return [f'    "{line}\\n"' for line in lines]


def _comment_text(text: str) -> str:
    """Text made safe inside a C block comment: printable ASCII, no ``*/``."""
    shown = json.dumps(text)[1:-1] if not text.isprintable() or not text.isascii() else text
    return shown.replace("*/", "*\\/")


def _constant(identifier: str, pem: bytes, where: str | Path) -> list[str]:
    lines = _c_string(pem, where)
    return [f"static const char {identifier}[] =", *lines[:-1], lines[-1] + ";", ""]


def _describe(label: str, path: Path, cert: x509.Certificate) -> list[str]:
    return [f" *   {label}: {_comment_text(str(path.resolve()))}",
            f" *     subject {_comment_text(cert.subject.rfc4514_string())}, valid until "
            f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC",
            f" *     SHA-256 fingerprint {cert.fingerprint(hashes.SHA256()).hex(':').upper()}"]


def _broker_uri(root: Path) -> str:
    try:
        host = server_name(root)
    except InputError:
        host = "BROKER"
    host = f"[{host}]" if ":" in host else host
    return f"mqtts://{_comment_text(host)}:8883"


@dataclass(frozen=True)
class _Constant:
    """One constant of a header: its C name, what it is, the file it came from, its PEM text."""

    identifier: str
    label: str
    path: Path
    pem: bytes
    cert: x509.Certificate | None = None


def _header_constants(root: Path, name: str | None, include_key: bool, key_password: bytes | str | None
                      ) -> tuple[str, str, list[_Constant]]:
    """The include guard, the title and the constants of the header for ``name`` (None: the CA only)."""
    anchor = "CA certificate (the trust anchor: the device checks the broker with it)"
    if name is None:
        if include_key:
            raise InputError("--include-key", "needs a client NAME (only a client's key can go into a header)")
        path = L.CA_CERT.path(root)
        if not path.is_file():
            raise InputError(path, "missing: the CA's certificate (arrow 2), what a device trusts the broker with. "
                                   f"Build the lab first: mqtt-pki-lab build {root}")
        ca = load_certificate(path)
        return ("MQTT_PKI_LAB_CA_H", "the CA certificate",
                [_Constant("mqtt_ca_cert", anchor, path, ca.public_bytes(Encoding.PEM), ca)])
    role, cert_path, cert = _client_certificate(root, name)
    chain = ca_chain(root, cert, cert_path)
    username = common_name(cert) or role.name
    ident = c_identifier(username)
    # The device presents its certificate followed by the intermediate CA's, when the lab has one: the text of
    # client.crt as it is. mbedTLS (under WiFiClientSecure::setCertificate and esp-tls) reads every certificate
    # of the PEM text (mbedtls_x509_crt_parse) and sends the whole list in its Certificate message.
    intermediates = chain[:-1]
    with_chain = f", followed by {len(intermediates)} intermediate CA certificate" if intermediates else ""
    constants = [
        _Constant(f"mqtt_{ident}_ca_cert", anchor, L.CA_CERT.path(root), chain[-1].public_bytes(Encoding.PEM),
                  chain[-1]),
        _Constant(f"mqtt_{ident}_client_cert", f"certificate of {role.label} (MQTT username {username!r}){with_chain}",
                  cert_path, chain_pem(cert, intermediates), cert),
    ]
    if include_key:
        key = client_key(root, role, cert, key_password,
                         instead="Export the header without --include-key; the device loads its key from its own "
                                 "storage, where it was made.")
        key_path = role.file("key").path(root)
        constants.append(_Constant(f"mqtt_{ident}_client_key", f"PRIVATE KEY of {role.label}", key_path,
                                   key_to_pem(key)))
    return f"MQTT_PKI_LAB_CLIENT_{ident.upper()}_H", f"the TLS files of {role.label}", constants


def c_header_text(root: str | Path, name: str | None = None, include_key: bool = False,
                  key_password: bytes | str | None = None) -> str:
    """A C header with the lab's CA certificate and, for client ``name``, its certificate (and key if asked).

    The constants are ``static const char[]`` holding the PEM text, one PEM line per C line, so they
    compile as C and as C++ (Arduino) and equal the files byte for byte. Without ``name`` the header
    holds only the CA certificate (``mqtt_ca_cert``): what any device needs to check the broker. With a
    name it holds ``mqtt_<id>_ca_cert``, ``mqtt_<id>_client_cert`` and, with ``include_key=True`` only,
    ``mqtt_<id>_client_key`` (unencrypted PKCS#8 PEM; ``key_password`` opens an encrypted ``client.key``);
    ``<id>`` is :func:`c_identifier` of the client's MQTT username. The comment at the top says where it
    came from (paths, subjects, fingerprints, expiry dates), whether it holds a private key, and how ESP32
    Arduino (``WiFiClientSecure``) and ESP-IDF v5 (``esp_mqtt_client_config_t``) take the constants.
    """
    from . import __version__

    root = _lab_root(root)
    guard, title, constants = _header_constants(root, name, include_key, key_password)
    head = [f"/* {title} of an MQTT PKI, for a device: made by mqtt-pki-lab {__version__}",
            f" * from the lab {_comment_text(str(root.resolve()))}.", " *",
            " * What it holds, as C strings of PEM text (certificates as in the lab's files):"]
    for c in constants:
        head += _describe(c.label, c.path, c.cert) if c.cert is not None else \
            [f" *   {c.label}: {_comment_text(str(c.path.resolve()))} (unencrypted PKCS#8)"]
    with_key = any(c.cert is None for c in constants)
    if with_key:
        head += [" *", " * WARNING: THIS FILE HOLDS A PRIVATE KEY. Whoever reads it can connect as this client.",
                 " * Keep it out of version control and shared folders (mode 0600); better, keep the key in the",
                 " * device's protected storage (e.g. encrypted NVS) and use a header without it."]
    elif name is not None:
        head += [" *", " * It holds NO private key: the device loads its key from its own storage (or make a",
                 " * header with it: mqtt-pki-lab export c-header LAB NAME --include-key, and read the warning)."]
    else:
        head += [" *", " * It holds no private key: a CA certificate is public."]
    head += _usage([c.identifier for c in constants], _broker_uri(root))
    body = [f"#ifndef {guard}", f"#define {guard}", ""]
    for c in constants:
        body += _constant(c.identifier, c.pem, c.path)
    body += [f"#endif /* {guard} */"]
    return "\n".join([*head, " */", "", *body]) + "\n"


def _usage(identifiers: list[str], uri: str) -> list[str]:
    """How ESP32 Arduino and ESP-IDF v5 take the constants (CA, then certificate and key for a client)."""
    ca, cert, key = [*identifiers, None, None][:3]
    key = key or "key_pem"  # not in the header: the device's own key, from its storage
    arduino = [" *", " * ESP32 with Arduino (WiFiClientSecure, e.g. under PubSubClient):",
               " *     WiFiClientSecure net;", f" *     net.setCACert({ca});"]
    idf = [" *", " * ESP-IDF v5 (esp-mqtt):", " *     const esp_mqtt_client_config_t cfg = {",
           f" *         .broker.address.uri = \"{uri}\",", f" *         .broker.verification.certificate = {ca},"]
    if cert is not None:
        arduino += [f" *     net.setCertificate({cert});", f" *     net.setPrivateKey({key});"]
        idf += [f" *         .credentials.authentication.certificate = {cert},",
                f" *         .credentials.authentication.key = {key},"]
    idf += [" *     };"]
    if cert is not None and key == "key_pem":
        idf += [" * (key_pem: the client's private key as PEM text, from the device's own storage.)"]
    note = [" *", " * The broker's certificate must name the host the device dials (its subjectAltName), and",
            " * mosquitto with use_identity_as_username takes the client certificate's CN as the MQTT username."]
    return arduino + idf + note


# --- writing an export -----------------------------------------------------------------------------------------

def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_output(out: str | Path, root: str | Path, *, holds_key: bool, force: bool = False) -> Path:
    """Check where an export goes before anything is made: refuse it inside the lab, or over a file unasked.

    The lab folder holds the diagram's files only (``status``, ``verify`` and ``break`` read it; ``break``
    copies it whole), so no export is written anywhere inside it, and one that holds a key least of all:
    a key lives in its own file in its own folder, and every copy is one more to protect. An existing
    file is replaced only with ``force``; a link, a folder or a missing folder is refused.
    """
    if str(out).strip() == "":
        raise InputError("-o", "the file name is empty")
    path = Path(out)
    if path.is_symlink():
        raise InputError(path, "is a symbolic link; give the real file name (an export never writes through links)")
    if path.is_dir():
        raise InputError(path, "is a folder; give a file name in it, e.g. " + str(path / "device.p12"))
    parent = path.parent
    if not parent.is_dir():
        raise InputError(parent, "no such folder to write the export in")
    lab = Path(os.path.realpath(root))
    if _inside(Path(os.path.realpath(parent)), lab):
        what = "it holds a private key, and a key never leaves its own file into the lab's folders" if holds_key \
            else "the lab folder holds the diagram's files only"
        raise RefusedError(path, f"is inside the lab folder {root}: {what} (status, verify and break read it, break "
                                 "copies it); nothing was written. Write it outside the lab, e.g. ./" + path.name)
    if path.exists() and not force:
        raise RefusedError(path, "exists already; nothing was written. Give --force to replace it, or another name")
    return path


def save_pkcs12(root: str | Path, name: str, out: str | Path, passphrase: bytes | str,
                key_password: bytes | str | None = None, encryption: str = DEFAULT_P12_ENCRYPTION,
                *, force: bool = False) -> Path:
    """Write :func:`pkcs12_bytes` to ``out`` (mode 0600, atomically); everything is checked before writing."""
    path = check_output(out, _lab_root(root), holds_key=True, force=force)
    data = pkcs12_bytes(root, name, passphrase, key_password, encryption)
    return write_atomic(path, data, secret=True)


def save_c_header(root: str | Path, out: str | Path, name: str | None = None, include_key: bool = False,
                  key_password: bytes | str | None = None, *, force: bool = False) -> Path:
    """Write :func:`c_header_text` to ``out``: 0644 without a key, 0600 with one; checked before writing."""
    path = check_output(out, _lab_root(root), holds_key=include_key, force=force)
    text = c_header_text(root, name, include_key, key_password)
    return write_atomic(path, text.encode(), secret=include_key)


#: What the command line prints on standard error when a header holds a private key.
KEY_WARNING = ("warning: this header holds the client's PRIVATE KEY: whoever reads it can connect as that client; "
               "keep it out of version control and shared folders")
