"""Keys born on the device: the CSR-only workflow (arrows 6-7 on the device, 8-9 at the CA).

In the lab's own ``build`` and ``add-client`` the CA's machine makes every key. A real device should make its
own: its private key then never travels, and only the public CSR goes to the CA (the reason CSRs exist, RFC
2986). Three commands, on two machines:

1. **on the device** ``mqtt-pki-lab request DEVICE_DIR NAME`` (:func:`request`): makes ``client.key`` (0600)
   and ``client.csr`` in the device's folder, nothing else (``--role broker``: ``server.key``, ``server.csr``);
2. **at the CA** ``mqtt-pki-lab sign LAB DEVICE_DIR/client.csr`` (:func:`sign_request`): checks the CSR (its
   signature, its key's strength, its name; a key that is the CA's or another device's; a name already
   issued), signs it with the lab's profile exactly as arrow 8 does (:func:`~mqtt_pki_lab.sign.sign_csr`;
   whatever else the CSR asked for, such as CA:TRUE or more extendedKeyUsages, is dropped and *said*), and
   writes ``clients/NAME/`` with ``client.csr``, ``client.crt``, ``ca.crt`` and the note
   :data:`~mqtt_pki_lab.diagram.DEVICE_KEY_NOTE`, never a key;
3. **on the device** ``mqtt-pki-lab install DEVICE_DIR client.crt ca.crt`` (:func:`install`): checks that the
   certificate is for the device's key and signed by that CA, and puts both beside the key.

**How the lab records "key held by the device".** The note ``key-on-device.txt`` in the role's folder,
where the key would be. A folder with the note and no key is complete (``status`` shows arrows 6-7 done on
the device); a lab-made client whose key was lost still reports ``client.key`` missing, and a key found
beside the note is reported as a leak. ``verify LAB`` checks such a client's certificate, its match with
its CSR and its chain, and says that the handshake needs the device's files: ``verify LAB --device
DEVICE_DIR`` and ``mqtt LAB --device DEVICE_DIR`` use them (:func:`device_folder`, :func:`lab_role_of`).

The device's folder is not a lab: it holds one role's files at its top (``client.key``, ``client.csr``,
``client.crt``, ``ca.crt``). It is written the same careful way: checks first, every file written aside then
renamed into place under a lock on the folder, the key 0600 from its first byte, no link followed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from . import diagram as D
from .certificates import common_name, eku_text, extended_key_usage, extension_value, is_ca, signed_by
from .csr import create_csr
from .errors import InputError, RefusedError
from .files import LabLock, Staging, check_folder, check_parent_writable, remove_leftovers
from .intermediate import build_path, chain_pem
from .keys import (
    DEFAULT_KEY_TYPE,
    PrivateKey,
    generate_key,
    key_kind,
    key_to_pem,
    load_private_key,
    public_key_fingerprint,
)
from .keys import key_type as find_key_type
from .names import broker_names, check_client_name
from .options import BuildOptions
from .pem import load_certificate, load_certificates, load_csr
from .profile import DEFAULT_LEAF_DAYS, check_days
from .sign import check_csr, sign_csr
from .steps import Lab, _Work

__all__ = ["ROLES", "DeviceFolder", "DeviceRequest", "Installed", "SignedRequest", "device_folder",
           "dropped_by_profile", "install", "lab_role_of", "request", "sign_request"]

#: The kinds of role a device can be: a client (the usual case) or the broker's own machine.
ROLES: tuple[str, ...] = ("client", "broker")
#: The mode of a device folder ``request`` creates: it holds a private key, so only its owner may list it.
DEVICE_DIR_MODE = 0o700


def check_role(role: object, where: str = "--role") -> str:
    """A device's role: ``client`` or ``broker``."""
    if role not in ROLES:
        raise InputError(where, f"unknown role {role!r}; choose one of: {', '.join(ROLES)}")
    return role  # type: ignore[return-value]


def _template(kind: str) -> D.Role:
    """The role whose file names a device of ``kind`` uses (``client.key``... or ``server.key``...)."""
    return D.BROKER if kind == "broker" else D.FIRST_CLIENT


def _device_path(folder: Path, kind: str, slot: str) -> Path:
    """A device file: the file name of the role's ``slot`` (diagram.FILE_NAMES), at the top of the folder."""
    return folder / D.FILE_NAMES[kind][slot]


def _public_pem(obj: x509.Certificate | x509.CertificateSigningRequest) -> bytes:
    return obj.public_bytes(Encoding.PEM)


# --- the device's folder ---------------------------------------------------------------------------------------

def _check_device_dir(folder: str | Path, where: str = "DEVICE_DIR") -> Path:
    """A device folder given by a user: a real folder (or one to make), not a link, not a file, not a lab."""
    if str(folder).strip() == "":
        raise InputError(where, "the device folder is empty (''); name a folder, e.g. sensor-1")
    path = Path(folder)
    if path.is_symlink():
        raise InputError(path, "is a symbolic link; give the real folder (a device's key is never written "
                               "through a link)")
    if path.exists() and not path.is_dir():
        raise InputError(path, "is a file, not a device folder")
    if (path / D.CA.folder).is_dir() or (path / D.CA_KEY.name).exists():
        raise InputError(path, "is a lab (the CA's folder): a device makes its key in a folder of its own, "
                               "never where the CA's key lives")
    return path


def _check_target(path: Path) -> None:
    """A file the device folder will get: not a link and not a folder where the file belongs."""
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise InputError(path, "is a symbolic link or a folder where a file belongs; move it away (nothing is "
                               "ever written through a link)")


@contextlib.contextmanager
def _device_locked(folder: Path) -> Iterator[None]:
    """Hold the device folder's lock (making the folder, 0700, when missing, and removing it again when nothing
    was written); remove what killed runs left in it."""
    created = not folder.exists()
    if created:
        check_parent_writable(folder)
        try:
            folder.mkdir(mode=DEVICE_DIR_MODE)
        except FileExistsError:
            created = False
        except OSError as exc:
            raise InputError(folder, f"cannot create the device folder ({exc.strerror})") from None
    try:
        with LabLock(folder):
            remove_leftovers(folder, ["."])
            yield
    except BaseException:
        if created:
            with contextlib.suppress(OSError):
                folder.rmdir()  # only when empty: nothing was written
        raise


def _write_device(folder: Path, files: Sequence[tuple[Path, bytes, bool]], check: Callable[[], None]) -> None:
    """Under the folder's lock: ``check()`` again (another command may have won), then write every file aside and
    rename them all into place (a secret 0600 and fsync'd)."""
    with _device_locked(folder):
        check()
        with Staging() as staging:
            for path, data, secret in files:
                staging.stage(path, data, secret=secret, durable=secret)
            staging.commit()


# --- 1. on the device: the key and the CSR ---------------------------------------------------------------------

@dataclass(frozen=True)
class DeviceRequest:
    """What :func:`request` made on the device, and what to do next."""

    folder: Path
    kind: str
    names: tuple[str, ...]
    key: Path
    csr: Path
    fingerprint: str
    """SHA-256 of the public key: the same in the CSR and in the certificate the CA will send back."""
    key_kind: str

    def __str__(self) -> str:
        role = " --role broker" if self.kind == "broker" else ""
        crt = D.FILE_NAMES[self.kind]["crt"]
        return "\n".join([
            f"made {self.key} (0600, {self.key_kind} private key): it stays on this device",
            f"made {self.csr} (CSR for CN={self.names[0]}; public key {self.fingerprint[:23]}…)",
            f"Next: send {self.csr.name} (public, nothing secret in it) to the CA, which runs:",
            f"  mqtt-pki-lab sign LAB {self.csr.name}{role}",
            f"then install the two files it sends back, here: mqtt-pki-lab install {self.folder} {crt} ca.crt",
        ])


def _request_names(kind: str, name: str | Sequence[str]) -> list[str]:
    names = [name] if isinstance(name, str) else list(name)
    if kind == "client":
        if len(names) != 1:
            raise InputError("NAME", "a client has exactly one name (its Common Name and MQTT username)")
        return [check_client_name(names[0], "NAME")]
    return broker_names(names, "NAME")


def request(device_dir: str | Path, name: str | Sequence[str], role: str = "client",
            key_type: str = DEFAULT_KEY_TYPE) -> DeviceRequest:
    """Arrows 6-7 (3-4 for a broker) on the device: make its private key and its CSR in ``device_dir``.

    ``name`` is a client's name (its Common Name and MQTT username), or the broker's host names (a list; the
    first is its Common Name). Writes exactly two files: the key (0600) and the CSR; the folder is made (0700)
    when missing. A folder that already holds a key, CSR or certificate of the role is refused: a key is never
    overwritten (a device that lost its certificate installs it again; a device that needs a new key uses a
    new folder).
    """
    kind = check_role(role)
    names = _request_names(kind, name)
    find_key_type(key_type)
    folder = _check_device_dir(device_dir)
    targets = {slot: _device_path(folder, kind, slot) for slot in ("key", "csr")}

    def check() -> None:
        for slot in ("key", "csr", "crt"):
            path = _device_path(folder, kind, slot)
            _check_target(path)
            if path.exists():
                what = "a private key" if slot == "key" else "a CSR" if slot == "csr" else "a certificate"
                raise RefusedError(path, f"this folder already holds {what} of a {kind}: request never overwrites "
                                         "a key; use a new folder for a new key (or install the certificate for "
                                         "the key it has)")
        if folder.exists():
            check_folder(folder, ".")

    check()
    key = generate_key(key_type)
    csr = create_csr(key, kind, names)
    _write_device(folder, [(targets["key"], key_to_pem(key), True), (targets["csr"], _public_pem(csr), False)], check)
    return DeviceRequest(folder, kind, tuple(names), targets["key"], targets["csr"], public_key_fingerprint(key),
                         key_kind(key))


# --- 2. at the CA: sign the CSR ----------------------------------------------------------------------------------

def _key_usage_bits(value: x509.KeyUsage) -> set[str]:
    """The purposes a keyUsage allows, in OpenSSL's names."""
    bits = {name: getattr(value, attr) for name, attr in (
        ("digitalSignature", "digital_signature"), ("nonRepudiation", "content_commitment"),
        ("keyEncipherment", "key_encipherment"), ("dataEncipherment", "data_encipherment"),
        ("keyAgreement", "key_agreement"), ("keyCertSign", "key_cert_sign"), ("cRLSign", "crl_sign"))}
    if value.key_agreement:  # encipherOnly/decipherOnly have a meaning (and a value) only with keyAgreement
        bits.update(encipherOnly=value.encipher_only, decipherOnly=value.decipher_only)
    return {name for name, on in bits.items() if on}


def _general_name(name: x509.GeneralName) -> str:
    prefix = {x509.DNSName: "DNS", x509.IPAddress: "IP", x509.UniformResourceIdentifier: "URI",
              x509.RFC822Name: "email"}.get(type(name), type(name).__name__)
    return f"{prefix}:{name.value}"


def _ext_name(oid: x509.ObjectIdentifier) -> str:
    return getattr(oid, "_name", None) or oid.dotted_string


def _requests(csr: x509.CertificateSigningRequest, csr_path: str | Path) -> x509.Extensions:
    try:
        return csr.extensions
    except (ValueError, x509.DuplicateExtension) as exc:
        raise InputError(csr_path, f"the CSR's extensions cannot be read ({exc}); make the CSR again") from None


def dropped_by_profile(csr: x509.CertificateSigningRequest, cert: x509.Certificate) -> list[str]:
    """What the CSR asked for that the certificate does not carry: the CA's profile wins (RFC 5280 leaves the
    content of a certificate to its issuer; ``openssl x509 -req`` likewise copies no extension unless told to).

    Compares the CSR's requested extensions and subject with the certificate the CA made, e.g.
    ``["basicConstraints CA:TRUE", "extendedKeyUsage serverAuth"]``.
    """
    dropped = []
    extra = [a.rfc4514_string() for a in csr.subject if a not in cert.subject]
    if extra:
        dropped.append(f"subject {', '.join(extra)}")
    for asked in _requests(csr, "CSR"):
        try:
            got = cert.extensions.get_extension_for_oid(asked.oid).value
        except x509.ExtensionNotFound:
            got = None
        name, value = _ext_name(asked.oid), asked.value
        if isinstance(value, x509.BasicConstraints):
            if value.ca and not (got is not None and got.ca):  # type: ignore[union-attr]
                dropped.append(f"{name} CA:TRUE")
        elif isinstance(value, x509.ExtendedKeyUsage):
            lost = [u for u in value if u not in (list(got) if got is not None else [])]  # type: ignore[arg-type]
            if lost:
                dropped.append(f"{name} {eku_text(lost)}")
        elif isinstance(value, x509.KeyUsage):
            lost_bits = _key_usage_bits(value) - (_key_usage_bits(got) if got is not None else set())  # type: ignore[arg-type]
            if lost_bits:
                dropped.append(f"{name} {', '.join(sorted(lost_bits))}")
        elif isinstance(value, x509.SubjectAlternativeName):
            kept = list(got) if got is not None else []  # type: ignore[arg-type]
            lost_names = [_general_name(n) for n in value if n not in kept]
            if lost_names:
                dropped.append(f"{name} {', '.join(lost_names)}")
        elif got is None:
            dropped.append(f"extension {name}")
    return dropped


@dataclass(frozen=True)
class SignedRequest:
    """What :func:`sign_request` did at the CA: the files it wrote, what the profile dropped, what to send back."""

    lab: Path
    role: D.Role
    name: str
    written: tuple[Path, ...]
    dropped: tuple[str, ...]
    """What the CSR asked for beyond the lab's profile (not in the certificate)."""
    certificate: Path
    ca_certificate: Path
    fingerprint: str
    """SHA-256 of the device's public key (in the CSR and the certificate; the key itself never came here)."""

    @property
    def send_back(self) -> tuple[Path, Path]:
        """The two public files the device needs: its certificate and the CA's certificate."""
        return self.certificate, self.ca_certificate

    def __str__(self) -> str:
        kind = self.role.kind
        usage = "serverAuth" if kind == "broker" else "clientAuth"
        lines = [f"signed the CSR of {self.role.label} (CN={self.name}): {self.role.folder}/ now holds "
                 f"{', '.join(p.name for p in self.written)}; no private key (it stays on the device)"]
        if self.dropped:
            lines.append(f"the lab's profile wins: dropped what the CSR asked for beyond it: {'; '.join(self.dropped)} "
                         f"(the certificate is CA:FALSE, {usage} only)")
        crt = D.FILE_NAMES[kind]["crt"]
        lines += [f"Send back to the device: {self.certificate} and {self.ca_certificate} (public files)",
                  f"On the device: mqtt-pki-lab install DEVICE_DIR {crt} ca.crt",
                  f"Then prove it here: mqtt-pki-lab verify {self.lab} --device DEVICE_DIR"]
        return "\n".join(lines)


def _target_role(lab: Lab, kind: str, name: str, csr_path: Path) -> D.Role:
    """The lab role a device's CSR becomes, refused when it would replace anything the lab holds."""
    if kind == "broker":
        for file in (D.SERVER_CERT, D.SERVER_KEY, D.SERVER_CSR, D.BROKER_CA):  # the certificate first
            if lab.path(file).exists() or lab.path(file).is_symlink():
                what = "issued" if file.slot == "crt" else "there"
                raise RefusedError(csr_path, f"already {what}: the lab has {file.relpath}; it has one broker, and "
                                             "a broker's certificate is never replaced by another's")
        return D.BROKER
    taken = lab.client_names()
    if name in taken:
        raise RefusedError(csr_path, f"already issued: the lab has a client named {name!r} "
                                     f"({taken[name].folder}/); each device needs its own name")
    role = D.client_role(name)
    folder = lab.root / role.folder
    if folder.exists() or folder.is_symlink():
        raise RefusedError(csr_path, f"{role.folder}/ exists already (an unfinished add-client?); remove it or "
                                     "choose another name")
    return role


def _key_taken(lab: Lab, csr: x509.CertificateSigningRequest, csr_path: Path) -> None:
    """Refuse a CSR whose public key is the CA's or one the lab has certified (or been asked to) for another role."""
    fingerprint = public_key_fingerprint(csr.public_key())  # type: ignore[arg-type]
    for ca_role in lab.roles.cas:  # the root, and the intermediate CA when the lab has one
        ca = lab._read(ca_role.file("crt"))
        if public_key_fingerprint(ca.public_key()) == fingerprint:
            raise InputError(csr_path, f"the CSR carries {ca_role.label}'s own public key: a CA's key signs "
                                       f"certificates and never leaves {ca_role.folder}/; the device must generate "
                                       "a key of its own")
    for role in lab.roles.sides:
        for slot in ("crt", "csr"):
            path = lab.path(role.file(slot))
            if not path.is_file() or path.is_symlink():
                continue
            with contextlib.suppress(InputError):
                other = load_certificate(path) if slot == "crt" else load_csr(path)
                if public_key_fingerprint(other.public_key()) == fingerprint:  # type: ignore[arg-type]
                    raise RefusedError(csr_path, f"the CSR carries the same public key as {role.file(slot).relpath} "
                                                 f"({role.label}): each device generates its own key, or one can "
                                                 "impersonate the other")


def _note(role: D.Role, name: str, fingerprint: str, cert: x509.Certificate) -> bytes:
    return (f"mqtt-pki-lab: the private key of {role.label} (CN={name}) was generated on its device and never\n"
            f"entered this lab. The CA signed the device's CSR on {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} "
            f"UTC.\npublic key SHA-256: {fingerprint}\ncertificate serial: {cert.serial_number:x}\n"
            "Prove the device's own files against this lab: mqtt-pki-lab verify LAB --device DEVICE_DIR\n").encode()


def sign_request(lab_root: str | Path, csr_path: str | Path, role: str = "client", days: int = DEFAULT_LEAF_DAYS,
                 password: bytes | str | None = None) -> SignedRequest:
    """Arrows 8-9 (5 and 9 for a broker) for a device's CSR: sign it with the lab's CA and profile.

    Checks first, before anything is written: the role and ``days``; the lab has a CA (``password`` unlocks an
    encrypted ``ca.key``); the CSR is a readable PEM CSR whose signature verifies, whose key is strong, whose
    name is valid and not issued yet (a broker: the lab has no broker files), and whose key is neither the CA's
    nor another device's. Then :func:`~mqtt_pki_lab.sign.sign_csr` makes the certificate with the profile of
    ``role`` (CA:FALSE, clientAuth or serverAuth only); what the CSR asked for beyond it is dropped and listed
    in :attr:`SignedRequest.dropped`. Writes ``clients/NAME/`` (``broker/``) with the CSR, the certificate,
    ``ca.crt`` and the note :data:`~mqtt_pki_lab.diagram.DEVICE_KEY_NOTE`, under the lab's lock.
    """
    kind = check_role(role)
    check_days(days)
    if isinstance(password, str):
        password = password.encode()
    lab = Lab(lab_root, BuildOptions(days=days, passphrase=password))
    if not lab.root.is_dir():
        raise InputError(lab.root, "no such lab folder; make one with: mqtt-pki-lab build DIR")
    issuer = lab.roles.issuer  # the intermediate CA in a chain of three: the root's key may be offline
    for file in (issuer.file("key"), issuer.file("crt"), D.CA_CERT):
        if not lab.path(file).is_file():
            if issuer == D.INTERMEDIATE:
                raise InputError(lab.path(file), f"missing: {file.role.label}'s {file.name}, which this lab signs "
                                                 "with; put it back from where it is kept")
            raise InputError(lab.path(file), "missing: this lab has no CA to sign with; make one with: "
                                             f"mqtt-pki-lab build {lab.root}")
    csr_path = Path(csr_path)
    csr = load_csr(csr_path)
    names = check_csr(csr, kind, csr_path)
    _requests(csr, csr_path)
    ca_cert, ca_key = lab._read(issuer.file("crt")), lab._read(issuer.file("key"))  # a wrong passphrase: now
    root_cert = lab._read(D.CA_CERT)
    target = _target_role(lab, kind, names[0], csr_path)
    _key_taken(lab, csr, csr_path)
    cert = sign_csr(csr, ca_cert, ca_key, kind, days, csr_path=csr_path, ca_key_path=lab.path(issuer.file("key")))
    fingerprint = public_key_fingerprint(csr.public_key())  # type: ignore[arg-type]
    work = _Work(lab)
    work.put(target.file("csr"), csr)  # parsed and written anew: only the request itself is kept
    work.put(target.file("crt"), cert, chain=(ca_cert,) if issuer == D.INTERMEDIATE else ())  # leaf + intermediate
    work.put(target.file("trust"), root_cert)  # the root alone: the trust anchor
    note = D.device_note(target)
    work.made[note] = (None, _note(target, names[0], fingerprint, cert), False)
    with lab._locked():
        _target_role(lab, kind, names[0], csr_path)  # again, under the lock: another command may have won
        check_folder(lab.root, ".")
        check_folder(lab.root, target.folder)  # no link on the way (the folder itself is made by the write)
        lab._write(work)
    written = tuple(lab.path(f) for f in work.made)
    return SignedRequest(lab.root, target, names[0], written, tuple(dropped_by_profile(csr, cert)),
                         lab.path(target.file("crt")), lab.path(target.file("trust")), fingerprint)


# --- 3. on the device: install what the CA sent back ---------------------------------------------------------

@dataclass(frozen=True)
class DeviceFolder:
    """A device's folder and the role its files are for; ``side`` is its three operating files."""

    folder: Path
    kind: str
    side: D.Side

    @property
    def files(self) -> str:
        """``sensor-1/{ca.crt,client.crt,client.key}``: the files it operates with."""
        return f"{self.folder}/{{{self.side.ca.name},{self.side.cert.name},{self.side.key.name}}}"


def device_folder(device_dir: str | Path, where: str = "--device") -> DeviceFolder:
    """The device folder ``device_dir``: which role's key it holds (``client.key`` or ``server.key``)."""
    path = Path(device_dir)
    if str(device_dir).strip() == "" or not path.is_dir() or path.is_symlink():
        raise InputError(where if str(device_dir).strip() == "" else path,
                         "is not a device folder (give the folder mqtt-pki-lab request made)")
    kinds = [k for k in ROLES if _device_path(path, k, "key").is_file()]
    if len(kinds) != 1:
        raise InputError(path, "holds no private key of a device (client.key or server.key)" if not kinds else
                               "holds both client.key and server.key: a device folder holds one role's files")
    kind = kinds[0]
    return DeviceFolder(path, kind, D.Side(*(_device_path(path, kind, s) for s in ("trust", "crt", "key"))))


def lab_role_of(lab_root: str | Path, device: DeviceFolder) -> D.Role:
    """The lab's role whose certificate the device holds (the same certificate, byte for byte)."""
    cert = load_certificate(device.side.cert)
    roles = [D.BROKER] if device.kind == "broker" else list(Lab(lab_root).roles.clients)
    for role in roles:
        path = role.file("crt").path(lab_root)
        if path.is_file() and not path.is_symlink():
            with contextlib.suppress(InputError):
                if load_certificate(path) == cert:
                    return role
    raise InputError(device.side.cert, f"is not a certificate this lab ({lab_root}) holds for a {device.kind}: "
                                       "give a device the lab's CA signed, or sign its CSR: mqtt-pki-lab sign")


@dataclass(frozen=True)
class Installed:
    """What :func:`install` put in the device's folder."""

    folder: Path
    kind: str
    written: tuple[Path, ...]
    replaced: bool
    """True when the folder held a certificate before (a renewal)."""
    subject: str
    issuer: str
    not_after: dt.datetime

    def __str__(self) -> str:
        verb = "replaced" if self.replaced else "installed"
        return "\n".join([
            f"{verb} {', '.join(str(p) for p in self.written)}: CN={self.subject}, signed by '{self.issuer}', "
            f"valid until {self.not_after:%Y-%m-%d}; the certificate matches this device's key",
            f"The device now operates with {self.folder}/{{ca.crt,{self.written[0].name},"
            f"{D.FILE_NAMES[self.kind]['key']}}}.",
            f"Prove it against the lab: mqtt-pki-lab verify LAB --device {self.folder}"])


def _check_install(folder: Path, kind: str, key: PrivateKey, cert: x509.Certificate, ca_cert: x509.Certificate,
                   cert_path: Path, ca_path: Path, chain: Sequence[x509.Certificate] = ()) -> None:
    """The certificate is for this device's key and role, signed by ``ca_cert`` (directly, or through the
    intermediate that follows it in its file: ``chain``), valid now."""
    key_path = _device_path(folder, kind, "key")
    if public_key_fingerprint(cert.public_key()) != public_key_fingerprint(key):  # type: ignore[arg-type]
        raise InputError(cert_path, f"does not match {key_path}: it carries another public key (it was signed "
                                    f"from another CSR); install the certificate the CA made from "
                                    f"{D.FILE_NAMES[kind]['csr']}")
    if not is_ca(ca_cert):
        raise InputError(ca_path, "is not a CA certificate (basicConstraints CA:TRUE): give the CA's ca.crt")
    if not signed_by(cert, ca_cert) and build_path(cert, chain, [ca_cert]) is None:
        if cert.issuer != ca_cert.subject and not chain:
            raise InputError(cert_path, f"is signed by '{common_name(cert.issuer) or cert.issuer.rfc4514_string()}', "
                                        f"not by {ca_path} itself, and the file holds no intermediate certificate to "
                                        "link them; install the file the CA sent (the certificate followed by "
                                        "intermediate.crt)")
        raise InputError(cert_path, f"is not signed by {ca_path} ('{common_name(ca_cert) or ca_cert.subject}'); "
                                    "install the ca.crt of the CA that signed it")
    usages = extended_key_usage(cert)
    wanted = "serverAuth" if kind == "broker" else "clientAuth"
    if usages is not None and wanted not in eku_text(usages).split(", "):
        raise InputError(cert_path, f"is not a {kind}'s certificate (extendedKeyUsage {eku_text(usages)}, not "
                                    f"{wanted}); have it signed with --role {kind}")
    bc = extension_value(cert, x509.BasicConstraints)
    if bc is not None and bc.ca:
        raise InputError(cert_path, "is a CA certificate, not a device's")
    now = dt.datetime.now(dt.timezone.utc)
    if cert.not_valid_after_utc <= now:
        raise InputError(cert_path, f"expired on {cert.not_valid_after_utc:%Y-%m-%d}; ask the CA to sign the "
                                    "CSR again")


def install(device_dir: str | Path, cert_path: str | Path, ca_cert_path: str | Path,
            password: bytes | str | None = None) -> Installed:
    """Put the certificate and the CA certificate the CA sent back beside the device's key.

    The folder must hold the key :func:`request` made (``client.key`` or ``server.key``; ``password`` unlocks
    an encrypted one); the certificate must carry that key's public key, be made for the role (clientAuth or
    serverAuth), valid now, and be signed by ``ca_cert_path``, which must be a CA certificate. Writes
    ``client.crt`` (``server.crt``) and ``ca.crt`` there, both at once; a certificate already installed is
    replaced (a renewal), the key never touched.
    """
    folder = _check_device_dir(device_dir)
    device = device_folder(folder, "DEVICE_DIR")
    kind = device.kind
    key = load_private_key(device.side.key, password)
    cert_path, ca_path = Path(cert_path), Path(ca_cert_path)
    cert, *chain = load_certificates(cert_path)  # the leaf, then the intermediate in a chain of three
    anchors = load_certificates(ca_path)  # a CA rotation's bundle holds two roots: the device keeps both
    ca_cert = next((a for a in anchors if any(signed_by(c, a) for c in (cert, *chain))), anchors[0])
    _check_install(folder, kind, key, cert, ca_cert, cert_path, ca_path, chain)
    targets = (device.side.cert, device.side.ca)
    replaced = device.side.cert.exists()

    def check() -> None:
        for path in targets:
            _check_target(path)

    check()
    _write_device(folder, [(targets[0], chain_pem(cert, chain), False),
                           (targets[1], b"".join(map(_public_pem, anchors)), False)], check)
    return Installed(folder, kind, targets, replaced, common_name(cert) or cert.subject.rfc4514_string(),
                     common_name(ca_cert) or ca_cert.subject.rfc4514_string(), cert.not_valid_after_utc)
