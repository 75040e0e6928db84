"""Day two, steps 16-18: rotate the root CA. A new root takes over without cutting a single device off.

A root cannot be renewed like a leaf (``renew`` refuses ``ca``): every broker and client holds a copy of
``ca.crt`` and checks the other side against it, so a new root is a new trust anchor that each side must
receive *before* anything is signed by it. A rotation therefore runs in three stages, and between them the
lab works (the tests walk all of them with real MQTT):

====  ======================================  ==========================================================
step  command                                 what changes on disk
====  ======================================  ==========================================================
16    ``mqtt-pki-lab rotate DIR start``       ``ca-next/`` (0700) gets the new root: ``ca.key`` (0600) and
                                              ``ca.crt``; every side's ``ca.crt`` becomes a *bundle*: the
                                              old root, then the new one (OpenSSL's ``cafile`` and
                                              mosquitto read every certificate of the file). Stage 1.
17    ``mqtt-pki-lab rotate DIR reissue``     the broker's and clients' certificates are signed again by
                                              the new root, same names, same keys (:func:`renew`'s
                                              same-key re-issue); all at once or a few at a time. Stage 2.
18    ``mqtt-pki-lab rotate DIR finish``      the new root moves into ``ca/``; every ``ca.crt`` holds the new
                                              root alone; the old root's ``ca.key``, ``ca.crt`` (and
                                              ``crl.pem``) are archived in ``backups/<UTC time>/ca/`` (the key
                                              stays 0600: never deleted). Stage 3, then the lab is back to one
                                              root (stage 0).
====  ======================================  ==========================================================

``mqtt-pki-lab rotate DIR status`` shows the stage and, per device, which root signed its certificate and
which roots its ``ca.crt`` holds; ``verify`` and the MQTT check show the same (a device "still depending on
the old root").

**Why the bundle first.** During the overlap a side with a new certificate meets sides with old ones: the
broker re-issued first presents a certificate of the new root to clients that have not been re-issued yet.
They accept it only because their ``ca.crt`` already holds the new root. A device that never received the
bundle (one whose files live on the device: :mod:`~mqtt_pki_lab.device`) keeps working until the broker
presents a new-root certificate, and then refuses the broker: "still trusts only the old root". That is what
``status`` and ``verify`` look for.

**The broker.** After ``start`` and after ``finish`` the broker's ``ca.crt`` (mosquitto's ``cafile``) has
changed; after its own re-issue its ``server.crt``. mosquitto 2.0 reads ``certfile`` and ``keyfile`` again on
SIGHUP (``mosquitto.conf(5)``, certfile). ``cafile`` depends on ``crlfile`` (measured with 2.0.11, strace showing
which files it opens): *without* ``crlfile`` a SIGHUP leaves the trusted roots as they were at start, so the
broker must be restarted; *with* ``crlfile`` and ``require_certificate`` (the lab's config once it has a
revocation list) a SIGHUP builds the listener's TLS context anew and reads ``cafile`` and ``crlfile`` again
(``mosquitto_security_apply_default`` in mosquitto's src/security_default.c; its ChangeLog for 1.6.5: "Fix CRL
file not being reloaded on HUP"): a whole rotation then needs no restart. A restart is always safe.
:func:`broker_trust_note` says which applies; each command prints it.

**Refused**, with nothing written: a second ``start`` while a rotation is under way; ``reissue`` or ``finish``
before ``start``; ``finish`` while any certificate is still signed by the old root or any side's ``ca.crt``
lacks the new root (the list is given); an encrypted ``ca.key`` without its passphrase (the new root's key is
encrypted with the same passphrase); a lab without a CA; a lab with an intermediate CA (not rotated by this
version: one clear line says so). During a rotation, ``renew`` is refused (it would sign with the old root:
use ``rotate DIR reissue NAME``), and so are ``revoke`` and ``crl --refresh`` (see below).

**Revocation.** A revoked client is not re-issued (that would let it back in). If the lab has a revocation
list, ``start`` makes the new root's own (empty) list, ``ca-next/crl.pem``, and the broker's ``crl.pem`` holds
both lists (OpenSSL checks each client against the list of the root that signed it). ``finish`` archives the
revoked clients' folders with the old root: their certificates chain to a root nobody trusts any more, so they
stay out; the new root signs a fresh list for ``ca/crl.pem`` and ``broker/crl.pem``. During the overlap the
lists cannot be signed again (this version): finish the rotation before their nextUpdate (``status`` shows it).

**Nothing half-done.** Each stage checks everything first, then writes under the lab's lock through
:class:`~mqtt_pki_lab.files.Staging`: ``start`` is one commit (the new root's key first, durable, then its
certificate, then the bundles); ``finish`` is ordered so that every moment between its renames is a working
lab, and running ``finish`` again completes one that was killed.

>>> start_rotation("pki")                         # doctest: +SKIP
>>> reissue("pki")                                # doctest: +SKIP
>>> print(rotation_status("pki"))                 # doctest: +SKIP
>>> finish_rotation("pki")                        # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from . import diagram as D
from .ca import create_ca_certificate
from .certificates import common_name, display_name, signed_by
from .crl import MAX_CRL_BYTES, crl_number, crl_path, issuer_role, load_crl, load_crls, make_crl, revoked_clients
from .diagram import NEXT_CA, NEXT_CA_FOLDER, LabFile, Role
from .errors import InputError, RefusedError
from .files import (
    CA_DIR_MODE,
    TEMP_NAME,
    Staging,
    check_folder,
    check_lab_path,
    make_folder,
    read_bytes,
    remove_leftovers,
)
from .keys import (
    DEFAULT_KEY_TYPE,
    generate_key,
    is_encrypted_key_pem,
    key_to_pem,
    key_type,
    key_type_of,
    same_public_key,
)
from .names import check_common_name
from .options import BuildOptions
from .pem import load_certificate, load_certificates, load_csr
from .profile import DEFAULT_CA_DAYS, MAX_CA_DAYS, check_days
from .renew import BACKUPS_FOLDER, _backup_folder, _lifetime_days, _owner, _write, find_role, renew
from .sign import check_csr, sign_csr
from .steps import Lab, key_on_device

__all__ = ["Reissued", "Rotation", "RotationFinish", "RotationStart", "SideRotation", "broker_trust_note",
           "finish_rotation", "next_root_name", "reissue", "retired_roots", "rotating", "rotation_note",
           "rotation_status", "start_rotation"]

Root = Literal["old", "new", "other", "missing"]
OLD: Root = "old"
NEW: Root = "new"
#: What the commands say about a broker whose ca.crt changed (mosquitto 2.0.11, measured): without crlfile
#: it reads cafile only at start; with crlfile (and require_certificate) a SIGHUP reads cafile again too.
RESTART = ("mosquitto reads cafile again on SIGHUP only when crlfile is set, and this broker has no crlfile: restart "
           "it (systemctl restart mosquitto); until then it trusts what its ca.crt held at start")
RELOAD_ALL = ("with crlfile set (broker/crl.pem), mosquitto 2.0 builds its TLS context anew on SIGHUP, cafile "
              "included: kill -HUP <pid> (systemctl reload mosquitto), or restart it")
SIGHUP = ("a running mosquitto reads server.crt and server.key again on SIGHUP (kill -HUP <pid>, systemctl reload "
          "mosquitto): no restart needed for the broker's own certificate")
_GENERATION = re.compile(r"^(.*) G(\d+)$")


# --- where things are ----------------------------------------------------------------------------------------

def broker_trust_note(root: str | Path) -> str:
    """What a running mosquitto needs once the broker's ``ca.crt`` changed (``start``, ``finish``):
    :data:`RELOAD_ALL` when the lab's broker has a revocation list (``broker/crl.pem``: its config has
    ``crlfile``), else :data:`RESTART`."""
    path = crl_path(root, D.BROKER)
    return RELOAD_ALL if path.is_file() and not path.is_symlink() else RESTART


def rotating(root: str | Path) -> bool:
    """True when a CA rotation is under way in the lab ``root``: ``ca-next/`` exists."""
    path = Path(root) / NEXT_CA_FOLDER
    return path.exists() or path.is_symlink()


def retired_roots(root: str | Path) -> list[x509.Certificate]:
    """The roots this lab has retired (step 18 archived each in ``backups/<UTC time>/ca/ca.crt``), oldest
    first: empty when the lab was never rotated. A notebook cell uses it so that running it again does not
    quietly start another rotation."""
    folder = Path(root) / BACKUPS_FOLDER
    if not folder.is_dir() or folder.is_symlink():
        return []
    found = [_read_cert(when / D.CA.folder / D.CA_CERT.name) for when in sorted(folder.iterdir()) if when.is_dir()]
    return list(dict.fromkeys(c for c in found if c is not None and c.issuer == c.subject))


def refuse_during_rotation(root: str | Path, what: str, instead: str) -> None:
    """Refuse ``what`` (a command that signs with ``ca/``) while a rotation is under way, saying what to do."""
    if rotating(root):
        raise RefusedError(Path(root) / NEXT_CA_FOLDER, f"a CA rotation is under way, so {what} is refused (it would "
                                                        f"sign with the root that is being retired): {instead}")


def next_root_name(old_name: str) -> str:
    """The new root's Common Name: ``MQTT Lab Root CA`` -> ``MQTT Lab Root CA G2`` -> ``... G3``.

    A root of its own name (the "generation" suffix public CAs use: DigiCert Global Root G2, ISRG Root X2), so
    that certificates, logs and ``verify`` tell the two roots apart during the overlap.
    """
    found = _GENERATION.match(old_name)
    return f"{found.group(1)} G{int(found.group(2)) + 1}" if found else f"{old_name} G2"


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.PEM)


def _rel(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


def _lab(root: str | Path, password: bytes | str | None) -> tuple[Lab, bytes | None]:
    """The lab folder (it must exist and hold a CA, without an intermediate) and the passphrase as bytes."""
    secret = password.encode() if isinstance(password, str) else password
    path = check_lab_path(root)
    if not path.is_dir():
        raise InputError(path, "no such lab folder; make one with: mqtt-pki-lab build DIR")
    lab = Lab(path, BuildOptions(passphrase=secret or None))
    if issuer_role(path) != D.CA or (path / D.INTERMEDIATE.folder).exists():
        raise RefusedError(path / D.INTERMEDIATE.folder, "this lab has an intermediate CA, and this version rotates "
                                                         "only a lab whose root signs the leaves itself")
    for file in (D.CA_CERT, D.CA_KEY):
        if not lab.path(file).is_file() or lab.path(file).is_symlink():
            raise InputError(lab.path(file), "missing: this lab has no CA to rotate (make one with: mqtt-pki-lab "
                                             f"build {path})")
    return lab, secret or None


def _key(lab: Lab, file: LabFile, cert: x509.Certificate, password: bytes | None) -> Any:
    """A CA's private key, refused with one line when it is encrypted and no passphrase is given, or does not
    belong to ``cert``."""
    path = lab.path(file)
    if is_encrypted_key_pem(read_bytes(path)) and not password:
        raise InputError(path, "this CA key is encrypted; give its passphrase (--passphrase-file)")
    key = lab._read(file)
    if not same_public_key(key, cert.public_key()):  # type: ignore[arg-type]
        raise InputError(path, f"does not belong to {file.role.folder}/ca.crt: the CA cannot sign with it")
    return key


def _next_files(root: Path) -> list[Path]:
    """The files in ``ca-next/`` (not the temporary files a killed run left)."""
    folder = root / NEXT_CA_FOLDER
    if not folder.is_dir() or folder.is_symlink():
        return []
    return sorted(p for p in folder.iterdir() if not TEMP_NAME.fullmatch(p.name))


# --- the state: which root each side depends on --------------------------------------------------------------

@dataclass(frozen=True)
class SideRotation:
    """One side (the broker or a client) during a rotation: who signed its certificate, what its ca.crt holds."""

    role: Role
    signed_by: Root
    """``old``, ``new``, ``other`` (neither root signed it) or ``missing`` (no certificate)."""
    trusts: tuple[Root, ...]
    """The roots its ``ca.crt`` holds, in file order (``("old", "new")`` during the overlap)."""
    on_device: bool = False
    """Its key is held by its device (:mod:`~mqtt_pki_lab.device`): the lab cannot re-issue it without a CSR."""
    revoked: bool = False
    """On the revocation list: it is not re-issued, and is archived with the old root at ``finish``."""

    @property
    def trusts_new(self) -> bool:
        return NEW in self.trusts

    @property
    def depends_on_old(self) -> bool:
        """True when retiring the old root now would cut it off: its certificate is the old root's, or its
        ca.crt lacks the new root (a revoked client does not count: it is meant to be cut off)."""
        return not self.revoked and (self.signed_by in (OLD, "other", "missing") or not self.trusts_new)

    @property
    def reasons(self) -> list[str]:
        """Why it depends on the old root, in words."""
        found = []
        if self.signed_by == OLD:
            found.append("its certificate is signed by the old root")
        elif self.signed_by in ("other", "missing"):
            found.append("its certificate is missing" if self.signed_by == "missing"
                         else "its certificate is signed by neither root")
        if not self.trusts_new:
            found.append("it still trusts only the old root" if self.trusts == (OLD,) else
                         "its ca.crt does not hold the new root")
        return found

    def __str__(self) -> str:
        trusts = " + ".join(self.trusts) or "nothing"
        notes = [n for n, on in (("key on device", self.on_device), ("revoked", self.revoked)) if on]
        extra = f"  ({', '.join(notes)})" if notes else ""
        return f"{self.role.folder + '/':<24} certificate: {self.signed_by:<7} root   ca.crt: {trusts}{extra}"


def _classify(cert: x509.Certificate | None, old: x509.Certificate | None, new: x509.Certificate | None) -> Root:
    if cert is None:
        return "missing"
    if new is not None and signed_by(cert, new):
        return NEW
    return OLD if old is not None and signed_by(cert, old) else "other"


def _anchor(cert: x509.Certificate, old: x509.Certificate | None, new: x509.Certificate | None) -> Root:
    return NEW if cert == new else OLD if cert == old else "other"


def _read_cert(path: Path) -> x509.Certificate | None:
    try:
        return load_certificate(path) if path.is_file() and not path.is_symlink() else None
    except InputError:
        return None


def _read_anchors(path: Path) -> list[x509.Certificate]:
    try:
        return load_certificates(path) if path.is_file() and not path.is_symlink() else []
    except InputError:
        return []


def trusted_roots(path: str | Path, old: x509.Certificate | None, new: x509.Certificate | None
                  ) -> tuple[Root, ...]:
    """Which roots the trust file ``path`` (a ``ca.crt``, a bundle) holds: ``old``, ``new`` or ``other``."""
    return tuple(_anchor(c, old, new) for c in _read_anchors(Path(path)))


@dataclass(frozen=True)
class Rotation:
    """Where a lab is in a CA rotation (:func:`rotation_status`), and which devices still depend on the old root."""

    root: Path
    old: x509.Certificate | None
    """The root in ``ca/`` (the one being retired during a rotation)."""
    new: x509.Certificate | None
    """The new root in ``ca-next/`` (None: no rotation under way)."""
    sides: tuple[SideRotation, ...] = ()
    interrupted: Literal["start", "finish", "empty", None] = None
    """A command that was killed halfway: ``start`` (no new ca.crt), ``finish`` (run it again), ``empty``
    (an empty ``ca-next/`` left behind; the next ``start`` removes it)."""
    crl_until: dt.datetime | None = None
    """The earliest nextUpdate of the revocation lists the broker holds (None: no list)."""

    @property
    def stage(self) -> int:
        """0: one root; 1: new root made and handed out; 2: re-issuing (some certificates under the new root);
        3: retiring (a finish was interrupted: run it again)."""
        if self.interrupted == "finish":
            return 3
        if self.new is None:
            return 0
        return 2 if any(s.signed_by == NEW for s in self.sides) else 1

    @property
    def waiting(self) -> tuple[SideRotation, ...]:
        """The sides that still depend on the old root (finish is refused while there are any)."""
        return tuple(s for s in self.sides if s.depends_on_old)

    @property
    def ready(self) -> bool:
        """True when the old root can be retired now."""
        return self.new is not None and self.interrupted is None and not self.waiting

    def __str__(self) -> str:
        head = {0: "stage 0: one root", 1: "stage 1: new root made, both roots handed out (step 16)",
                2: "stage 2: re-issuing under the new root (step 17)", 3: "stage 3: retiring the old root (step 18)"}
        lines = [f"CA rotation in {self.root}: {head[self.stage]}"]
        if self.interrupted == "start":
            lines.append(f"  ! an interrupted start left {NEXT_CA_FOLDER}/ without ca.crt: move {NEXT_CA_FOLDER}/ "
                         "away (its key certified nothing) and start again")
        if self.interrupted == "finish":
            lines.append(f"  ! finishing was interrupted: run mqtt-pki-lab rotate {self.root} finish again")
        if self.old is not None:
            which = "old root" if self.new is not None else "root    "
            lines.append(f"  {which}: ca/ca.crt       '{display_name(self.old.subject)}', until "
                         f"{self.old.not_valid_after_utc:%Y-%m-%d}")
        if self.new is not None and self.interrupted != "finish":
            lines.append(f"  new root: {NEXT_CA_FOLDER}/ca.crt  '{display_name(self.new.subject)}', until "
                         f"{self.new.not_valid_after_utc:%Y-%m-%d}")
        if self.new is None or self.interrupted:
            return "\n".join(lines)
        lines += [f"  {s}" for s in self.sides]
        done = sum(s.signed_by == NEW for s in self.sides)
        lines.append(f"  {done} of {len(self.sides)} certificates signed by the new root; "
                     f"{sum(s.trusts_new for s in self.sides)} of {len(self.sides)} sides trust it")
        if self.waiting:
            lines.append(f"  still depending on the old root ({len(self.waiting)}): "
                         + "; ".join(f"{s.role.folder} ({', '.join(s.reasons)})" for s in self.waiting))
            devices = [s for s in self.waiting if s.on_device]
            todo = "re-issue: mqtt-pki-lab rotate DIR reissue" + (" (a device whose key it holds: with --csr, see "
                                                                    "rotate DIR reissue NAME)" if devices else "")
            lines.append(f"  next: {todo}")
        else:
            lines.append(f"  ready: retire the old root with mqtt-pki-lab rotate {self.root} finish")
        if self.crl_until is not None:
            lines.append(f"  the broker's revocation lists are current until {self.crl_until:%Y-%m-%d %H:%M} UTC: "
                         "finish the rotation before then (they cannot be signed again during it)")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        """The state for ``rotate DIR status --json``."""
        return {"root": str(self.root), "stage": self.stage, "interrupted": self.interrupted,
                "old_root": display_name(self.old.subject) if self.old is not None else None,
                "new_root": display_name(self.new.subject) if self.new is not None else None,
                "ready_to_finish": self.ready,
                "sides": [{"folder": s.role.folder, "name": s.role.name, "signed_by": s.signed_by,
                           "trusts": list(s.trusts), "key_on_device": s.on_device, "revoked": s.revoked,
                           "depends_on_old_root": s.depends_on_old, "reasons": s.reasons} for s in self.sides]}


def _interrupted(root: Path, old: x509.Certificate | None) -> tuple[Literal["start", "finish", "empty", None],
                                                                   x509.Certificate | None]:
    """What ``ca-next/`` says: a finished start (None, the new root), or which command was killed halfway."""
    names = {p.name for p in _next_files(root)}
    if not names:
        return "empty", None
    new = _read_cert(NEXT_CA.file("crt").path(root))
    if new is None:
        return "start", None
    if old is not None and old == new:
        return "finish", new
    key_path = D.CA_KEY.path(root)
    with contextlib.suppress(InputError, OSError, ValueError, TypeError):
        if not is_encrypted_key_pem(read_bytes(key_path)):
            from cryptography.hazmat.primitives.serialization import load_pem_private_key

            if same_public_key(load_pem_private_key(read_bytes(key_path), None), new.public_key()):  # type: ignore
                return "finish", new
    return None, new


def _crl_until(root: Path) -> dt.datetime | None:
    """The earliest nextUpdate of the lists in the broker's ``crl.pem`` (it may hold two during a rotation)."""
    path = crl_path(root, D.BROKER)
    if not path.is_file() or path.is_symlink():
        return None
    with contextlib.suppress(InputError):
        ends = [c.next_update_utc for c in load_crls(path)]
        return min((e for e in ends if e is not None), default=None)
    return None


def rotation_status(root: str | Path) -> Rotation:
    """Read where the lab ``root`` is in a CA rotation: the stage, and per side (the broker, then each client)
    which root signed its certificate and which roots its ``ca.crt`` holds. Reads only; never raises for the
    lab's files (an unreadable certificate is ``other``)."""
    root = check_lab_path(root)
    if not root.is_dir():
        raise InputError(root, "no such lab folder")
    old = _read_cert(D.CA_CERT.path(root))
    if not rotating(root):
        return Rotation(root, old, None)
    interrupted, new = _interrupted(root, old)
    if new is None or interrupted is not None:
        return Rotation(root, old, new, (), interrupted)
    lab = Lab(root)
    revoked = set(revoked_clients(root))
    sides = tuple(SideRotation(role, _classify(_read_cert(lab.path(role.file("crt"))), old, new),
                               trusted_roots(lab.path(role.file("trust")), old, new),
                               key_on_device(root, role), role in revoked)
                  for role in lab.roles.sides)
    return Rotation(root, old, new, sides, None, _crl_until(root))


def rotation_note(root: str | Path, side: D.Side, role: Role) -> str | None:
    """One line for a side's files during a rotation (what the MQTT check prints beside a client), or None when
    no rotation is under way: ``certificate: new root; ca.crt: old + new``, and "still trusts only the old
    root" when it will refuse a broker whose certificate the new root signed."""
    root = Path(root)
    status = rotation_status(root)
    if status.new is None or status.interrupted is not None:
        return None
    mine = _classify(_read_cert(Path(side.cert)) if side.cert is not None else None, status.old, status.new)
    trusts = trusted_roots(side.ca, status.old, status.new)
    note = f"certificate: {mine} root; ca.crt: {' + '.join(trusts) or 'nothing'}"
    if NEW not in trusts and role.kind == "client":
        broker = _classify(_read_cert(D.SERVER_CERT.path(root)), status.old, status.new)
        note += ("; still trusts only the old root: it refuses the broker's new-root certificate" if broker == NEW
                 else "; still trusts only the old root: it will refuse the broker once the broker is re-issued")
    elif mine == OLD:
        note += "; still depends on the old root: re-issue it (mqtt-pki-lab rotate DIR reissue)"
    return note


# --- 16: start ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RotationStart:
    """What :func:`start_rotation` did: the new root, the bundles handed out, what the devices and the broker need."""

    root: Path
    new_root: x509.Certificate
    written: tuple[str, ...]
    devices: tuple[Role, ...]
    """Clients whose files live on their devices: the lab's copy got the bundle, the device must install it."""
    broker: str = RESTART
    """What a running broker needs to trust the bundle (:func:`broker_trust_note`)."""

    def __str__(self) -> str:
        cert = self.new_root
        lines = [f"Step {D.ROTATE_STEPS[0].number}: started a CA rotation in {self.root}",
                 f"  new root: {NEXT_CA_FOLDER}/ca.crt '{display_name(cert.subject)}' (key {NEXT_CA_FOLDER}/ca.key, "
                 f"0600), valid until {cert.not_valid_after_utc:%Y-%m-%d}",
                 f"  wrote {len(self.written)} files: " + ", ".join(self.written[:6])
                 + (f" and {len(self.written) - 6} more" if len(self.written) > 6 else ""),
                 "  every ca.crt now holds both roots (old first): certificates of either root are accepted",
                 f"  broker: its ca.crt is now the bundle; {self.broker}"]
        lines += [f"  device {r.name}: its key lives on the device, so hand it the bundle: mqtt-pki-lab install "
                  f"DEVICE_DIR {r.folder}/client.crt {r.folder}/ca.crt" for r in self.devices]
        lines.append(f"Next: re-issue under the new root: mqtt-pki-lab rotate {self.root} reissue")
        return "\n".join(lines)


def start_rotation(root: str | Path, *, ca_name: str | None = None, ca_days: int | None = None,
          key_type_name: str | None = None, password: bytes | str | None = None) -> RotationStart:
    """Step 16: make a new root in ``ca-next/`` and hand every side a ``ca.crt`` bundle of both roots.

    ``ca_name`` defaults to :func:`next_root_name` of the old root's; ``ca_days`` to the lab's default for a CA
    (:data:`~mqtt_pki_lab.profile.DEFAULT_CA_DAYS`); ``key_type_name`` to the old root's key type. ``password``
    unlocks an encrypted ``ca.key`` and then encrypts the new one. If the lab has a revocation list, the new
    root signs its own empty one (``ca-next/crl.pem``) and the broker's ``crl.pem`` holds both. One commit:
    the new key (fsync'd) first, then its certificate, then the bundles.
    """
    lab, password = _lab(root, password)
    root = lab.root
    if rotating(root) and _next_files(root):
        state = rotation_status(root)
        if state.interrupted == "start":
            raise RefusedError(root / NEXT_CA_FOLDER, "an interrupted start left a key without a certificate "
                                                      "here: move the folder away (its key certified nothing) and "
                                                      "start again")
        raise RefusedError(root / NEXT_CA_FOLDER, f"a CA rotation is already under way (stage {state.stage}): it "
                                                  f"cannot be started twice; see mqtt-pki-lab rotate {root} status")
    old = lab._read(D.CA_CERT)
    _key(lab, D.CA_KEY, old, password)  # whoever rotates the root must hold it
    name = check_common_name(ca_name if ca_name is not None else next_root_name(
        common_name(old) or display_name(old.subject)), "--ca-name")
    if name == common_name(old):
        raise InputError("--ca-name", f"{name!r} is the old root's name: the new root needs a name of its own, so "
                                      "that certificates and logs tell the two apart")
    days = check_days(DEFAULT_CA_DAYS if ca_days is None else ca_days, "--ca-days", maximum=MAX_CA_DAYS)
    kind = key_type(key_type_name).name if key_type_name is not None else (
        key_type_of(old.public_key()) or DEFAULT_KEY_TYPE)  # type: ignore[arg-type]
    encrypted = is_encrypted_key_pem(read_bytes(lab.path(D.CA_KEY)))
    sides = [r for r in lab.roles.sides if lab.path(r.file("trust")).is_file()]
    for role in sides:
        check_folder(root, role.folder, must_exist=True)
    key = generate_key(kind)
    new = create_ca_certificate(key, name, days)
    bundle = _pem(old) + _pem(new)
    made: list[tuple[Path, bytes, bool]] = [(lab.path(NEXT_CA.file("key")), key_to_pem(key, password if encrypted
                                                                                        else None), True)]
    record = crl_path(root, D.CA)
    new_list = make_crl(new, key, [], 1).public_bytes(Encoding.PEM) if record.is_file() else None
    if new_list is not None:
        made.append((crl_path(root, NEXT_CA), new_list, False))
    made.append((lab.path(NEXT_CA.file("crt")), _pem(new), False))
    made += [(lab.path(r.file("trust")), bundle, False) for r in sides]
    with lab._locked():
        if rotating(root) and _next_files(root):
            raise RefusedError(root / NEXT_CA_FOLDER, "a CA rotation was started meanwhile: it cannot be started twice")
        if load_certificate(lab.path(D.CA_CERT)) != old:
            raise RefusedError(lab.path(D.CA_CERT), "changed meanwhile; nothing was written: start again")
        if new_list is not None:
            broker_list = crl_path(root, D.BROKER)
            held = read_bytes(broker_list, MAX_CRL_BYTES) if broker_list.is_file() else read_bytes(record)
            made.append((broker_list, held + new_list, False))
        _commit_start(root, made)
    written = tuple(_rel(root, p) for p, _, _ in made)
    return RotationStart(root, new, written, tuple(r for r in sides if key_on_device(root, r)),
                         broker_trust_note(root))


def _commit_start(root: Path, made: list[tuple[Path, bytes, bool]]) -> None:
    """Make ``ca-next/`` (0700) and write everything in one commit; an empty ``ca-next/`` is removed again
    when nothing could be written."""
    folder = root / NEXT_CA_FOLDER
    if folder.is_dir() and not folder.is_symlink():
        remove_leftovers(root, [NEXT_CA_FOLDER])
        with contextlib.suppress(OSError):
            folder.rmdir()  # an empty one left by a killed run
    make_folder(root, NEXT_CA_FOLDER, CA_DIR_MODE)
    try:
        _commit(made)
    except BaseException:
        with contextlib.suppress(OSError):
            folder.rmdir()  # only when empty: nothing was renamed into it
        raise


# --- 17: re-issue ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Reissued:
    """What :func:`reissue` did: who was re-issued under the new root, who was not and why."""

    root: Path
    done: tuple[Role, ...]
    handed_out: tuple[str, ...]
    """Trust files that lacked the new root and got the bundle first (e.g. a client added during the overlap)."""
    skipped: tuple[tuple[Role, str], ...]
    """Sides left as they are, with the reason (revoked, key on the device, already under the new root)."""

    def __str__(self) -> str:
        lines = [f"Step {D.ROTATE_STEPS[1].number}: re-issued {len(self.done)} certificate"
                 f"{'s' * (len(self.done) != 1)} under the new root (same names, same keys; the old files are "
                 f"in {BACKUPS_FOLDER}/)"]
        lines += [f"  {r.file('crt').relpath}" for r in self.done[:10]]
        if len(self.done) > 10:
            lines.append(f"  ... and {len(self.done) - 10} more")
        if self.handed_out:
            lines.append(f"  handed out the bundle of both roots (these lacked the new root): "
                         f"{', '.join(self.handed_out)}")
        lines += [f"  not re-issued: {r.folder}: {why}" for r, why in self.skipped]
        if any(r == D.BROKER for r in self.done):
            lines.append(f"  broker: {SIGHUP}")
        if any(r.kind == "client" for r in self.done):
            lines.append("  clients: the next connection uses the new certificate (a device outside this folder "
                         "needs its new client.crt)")
        state = rotation_status(self.root)
        lines.append(f"Next: mqtt-pki-lab rotate {self.root} finish" if state.ready else
                     f"Still depending on the old root: {len(state.waiting)} (mqtt-pki-lab rotate {self.root} status)")
        return "\n".join(lines)


def _new_root(lab: Lab, password: bytes | None) -> tuple[x509.Certificate, Any, Path]:
    """The new root's certificate, key and key path; refused when no rotation is under way."""
    state = rotation_status(lab.root)
    if state.new is None or state.interrupted is not None:
        why = {"start": "an interrupted start left ca-next/ without its certificate",
               "finish": "finishing was interrupted: run mqtt-pki-lab rotate DIR finish again",
               "empty": "ca-next/ is empty (a killed start)"}.get(state.interrupted or "", "")
        raise RefusedError(lab.root / NEXT_CA_FOLDER, why or "no CA rotation is under way: start one first "
                                                            f"(mqtt-pki-lab rotate {lab.root} start)")
    key_file = NEXT_CA.file("key")
    if not lab.path(key_file).is_file():
        raise InputError(lab.path(key_file), "missing: the new root's key signs the re-issued certificates")
    return state.new, _key(lab, key_file, state.new, password), lab.path(key_file)


def _hand_out(lab: Lab, roles: Iterable[Role], old: x509.Certificate, new: x509.Certificate) -> tuple[str, ...]:
    """Give the bundle of both roots to every side in ``roles`` whose ca.crt lacks the new root (one commit)."""
    bundle = _pem(old) + _pem(new)
    todo = [r for r in roles if NEW not in trusted_roots(lab.path(r.file("trust")), old, new)]
    if not todo:
        return ()
    with lab._locked(), Staging() as staging:
        for role in todo:
            check_folder(lab.root, role.folder, must_exist=True)
            path = lab.path(role.file("trust"))
            staging.stage(path, bundle, secret=False, owner=_owner(path))
        staging.commit()
    return tuple(r.file("trust").relpath for r in todo)


def _sign_device_csr(lab: Lab, role: Role, csr_path: Path, issuer: tuple[x509.Certificate, Any, Path],
                     bundle: bytes, days: int | None) -> None:
    """A device's CSR (its key never enters the lab) signed by the new root, for the name it has now."""
    csr = load_csr(csr_path)
    names = check_csr(csr, "client", csr_path)
    cert_path = lab.path(role.file("crt"))
    current = load_certificate(cert_path)
    if names[0] != common_name(current):
        raise InputError(csr_path, f"asks for {names[0]!r}, but {role.folder}/ is {common_name(current)!r}: a rotation "
                                   "re-issues the same names (a new device is signed with mqtt-pki-lab sign)")
    lifetime = _lifetime_days(current) if days is None else check_days(days)
    cert = sign_csr(csr, issuer[0], issuer[1], "client", lifetime, csr_path=csr_path, ca_key_path=issuer[2])
    made = {role.file("csr"): csr.public_bytes(Encoding.PEM), role.file("crt"): _pem(cert),
            role.file("trust"): bundle}
    with lab._locked():
        _write(lab, role, made, dt.datetime.now(dt.timezone.utc))


def reissue(root: str | Path, names: Iterable[str] = (), *, csr: str | Path | None = None, days: int | None = None,
            password: bytes | str | None = None, progress: Callable[[int, int, str], None] | None = None) -> Reissued:
    """Step 17: sign the broker's and the clients' certificates again with the new root (same names, same keys).

    ``names``: ``broker``, ``client`` or further clients' names (default: every side not yet under the new root).
    Each is :func:`~mqtt_pki_lab.renew.renew`'s same-key re-issue, signed by the new root, its old files kept in
    ``backups/``; ``progress(done, total, name)`` is called after each. A side whose ``ca.crt`` lacks the new
    root gets the bundle first; one already signed by the new root whose ``ca.crt`` lacks it (a copy of the
    old root put back, the mystery of notebook 10) gets the bundle alone. Not re-issued (listed with the
    reason): revoked clients, and clients whose key is held by their device, unless ``csr`` is that device's
    CSR (one name): the new root then signs it, and the device installs the new client.crt and ca.crt
    (:func:`~mqtt_pki_lab.device.install`). ``days``: the new certificates' lifetime (default: the old
    ones'). Refused before ``start``.
    """
    lab, password = _lab(root, password)
    root = lab.root
    issuer = _new_root(lab, password)
    state = rotation_status(root)
    old, new = state.old, issuer[0]
    if days is not None:
        check_days(days)
    wanted = list(names)
    by_role = {s.role: s for s in state.sides}
    roles = [find_role(lab, n) for n in wanted] if wanted else [s.role for s in state.sides
                                                                if s.signed_by != NEW or not s.trusts_new]
    if csr is not None:
        if len(roles) != 1 or not wanted or not by_role[roles[0]].on_device:
            raise InputError("--csr", "give it with exactly one NAME whose key is held by its device (the device's "
                                      "CSR, made with its own key)")
        csr = Path(csr)
        load_csr(csr)  # a wrong file is refused before anything is written
    todo: list[Role] = []
    bundle_only: list[Role] = []  # already signed by the new root, but its ca.crt lacks it: the bundle alone
    skipped: list[tuple[Role, str]] = []
    for role in dict.fromkeys(roles):
        side = by_role[role]
        if side.revoked:
            skipped.append((role, "revoked: re-issuing it would let it back in; it goes to the archive at finish"))
        elif side.signed_by == "missing":
            skipped.append((role, "no certificate yet (finish adding it: mqtt-pki-lab add-client)"))
        elif side.on_device and csr is None:
            skipped.append((role, "its key is held by its device: on the device send its CSR (client.csr, or a new "
                                  f"one: mqtt-pki-lab request), then here: mqtt-pki-lab rotate {root} reissue "
                                  f"{role.name} --csr CSR, and install client.crt and ca.crt on the device"))
        elif side.signed_by == NEW and csr is None:
            if side.trusts_new:
                skipped.append((role, "already signed by the new root, and its ca.crt holds the new root"))
            else:
                bundle_only.append(role)
        else:
            todo.append(role)
    handed = _hand_out(lab, [r for r in (*todo, *bundle_only) if not key_on_device(root, r)], old, new) \
        if old is not None else ()
    for i, role in enumerate(todo):
        if csr is not None:
            _sign_device_csr(lab, role, csr, issuer, _pem(old) + _pem(new), days)  # type: ignore[arg-type]
        else:
            renew(root, role.name, days=days, password=password, issuer=issuer)
        if progress is not None:
            progress(i + 1, len(todo), role.name)
    return Reissued(root, tuple(todo), handed, tuple(skipped))


# --- 18: finish -------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RotationFinish:
    """What :func:`finish_rotation` did: where the old root went, what was rewritten, what the devices and the
    broker need."""

    root: Path
    new_root: x509.Certificate
    archive: str
    """``backups/<UTC time>``: the old root's ``ca/`` files (and revoked clients' folders) are kept there."""
    written: tuple[str, ...]
    archived: tuple[str, ...]
    devices: tuple[Role, ...]
    broker: str = RESTART
    """What a running broker needs to trust the new root alone (:func:`broker_trust_note`)."""

    def __str__(self) -> str:
        lines = [f"Step {D.ROTATE_STEPS[2].number}: retired the old root of {self.root}",
                 f"  ca/ca.crt is now '{display_name(self.new_root.subject)}' (moved from {NEXT_CA_FOLDER}/); "
                 f"{NEXT_CA_FOLDER}/ is gone",
                 f"  every ca.crt holds the new root alone ({len(self.written)} files written)",
                 f"  archived (keys 0600, never deleted): {', '.join(self.archived)}",
                 f"  broker: its ca.crt changed; {self.broker}"]
        lines += [f"  device {r.name}: install the new ca.crt on it (it still holds the bundle; "
                  f"mqtt-pki-lab install DEVICE_DIR {r.folder}/client.crt {r.folder}/ca.crt)" for r in self.devices]
        lines.append(f"Check: mqtt-pki-lab verify {self.root}")
        return "\n".join(lines)


def _refuse_waiting(root: Path, state: Rotation) -> None:
    waiting = state.waiting
    if not waiting:
        return
    shown = "; ".join(f"{s.role.folder} ({', '.join(s.reasons)})" for s in waiting[:8])
    more = f" and {len(waiting) - 8} more" if len(waiting) > 8 else ""
    raise RefusedError(root / NEXT_CA_FOLDER, f"the old root cannot be retired: {len(waiting)} side"
                                              f"{'s' * (len(waiting) != 1)} still depend{'s' * (len(waiting) == 1)} "
                                              f"on it: {shown}{more}; re-issue them first (mqtt-pki-lab rotate "
                                              f"{root} reissue)")


def finish_rotation(root: str | Path, *, password: bytes | str | None = None,
           now: dt.datetime | None = None) -> RotationFinish:
    """Step 18: retire the old root. Refused while any side still depends on it (the list is given).

    In order, each commit leaving a working lab: (1) every side's ``ca.crt`` becomes the new root alone, the
    broker's ``crl.pem`` the new root's fresh list, and copies of the old ``ca/`` files go to
    ``backups/<UTC time>/ca/`` (the key fsync'd, 0600); (2) the new root's files are copied into ``ca/``, the key
    last; (3) revoked clients' folders move to the archive; (4) ``ca-next/`` is removed. Run again, it completes
    a finish that was killed halfway. ``password`` unlocks the new root's key (checked against its certificate
    before it becomes the lab's CA, and used to sign the new revocation list).
    """
    lab, password = _lab(root, password)
    root = lab.root
    now = now or dt.datetime.now(dt.timezone.utc)
    state = rotation_status(root)
    if state.new is None or state.interrupted in ("start", "empty"):
        _new_root(lab, password)  # raises with the reason
    resume = state.interrupted == "finish"
    if not resume:
        _refuse_waiting(root, state)
    new = state.new
    key_file = NEXT_CA.file("key") if lab.path(NEXT_CA.file("key")).is_file() else D.CA_KEY  # a killed cleanup
    new_key = _key(lab, key_file, new, password)  # type: ignore[arg-type]
    with lab._locked():
        remove_leftovers(root, [NEXT_CA_FOLDER])
        again = rotation_status(root)
        if again.new != new or (not resume and again.interrupted is not None):
            raise RefusedError(root / NEXT_CA_FOLDER, "changed meanwhile; nothing was written: finish again")
        if not resume:
            _refuse_waiting(root, again)
        return _retire(lab, new, new_key, key_file, now)  # type: ignore[arg-type]


def _new_list(root: Path, new: x509.Certificate, new_key: Any) -> bytes | None:
    """The new root's fresh revocation list (empty: revoked clients are archived), numbered after every list the
    lab held; None when the lab has no list."""
    numbers = []
    for path in (crl_path(root, D.CA), crl_path(root, NEXT_CA)):
        if path.is_file() and not path.is_symlink():
            with contextlib.suppress(InputError):
                numbers.append(crl_number(load_crl(path)) or 0)
    if not numbers:
        return None
    return make_crl(new, new_key, [], max(numbers) + 1).public_bytes(Encoding.PEM)


def _replaced(root: Path, new: x509.Certificate) -> list[Path]:
    """The files of ``ca/`` that are the old root's (not yet replaced by the new root's): to archive."""
    found = []
    cert, key, crl = D.CA_CERT.path(root), D.CA_KEY.path(root), crl_path(root, D.CA)
    if _read_cert(cert) != new and cert.is_file():
        found.append(cert)
    if crl.is_file() and not crl.is_symlink():
        with contextlib.suppress(InputError):
            if load_crl(crl).issuer != new.subject:
                found.append(crl)
    if key.is_file() and not key.is_symlink():
        data = read_bytes(key)
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        try:
            same = not is_encrypted_key_pem(data) and same_public_key(load_pem_private_key(data, None),
                                                                      new.public_key())  # type: ignore[arg-type]
        except (ValueError, TypeError):
            same = False
        if not same:  # an encrypted key is archived again on a resumed finish: a copy too many, never one too few
            found.append(key)
    return found


def _retire(lab: Lab, new: x509.Certificate, new_key: Any, key_file: LabFile, now: dt.datetime) -> RotationFinish:
    root = lab.root
    revoked_now = set(revoked_clients(root))
    sides = [r for r in lab.roles.sides if lab.path(r.file("crt")).is_file()]
    # Revoked clients stay as they are (and go to the archive); on a resumed finish the lists are already the new
    # root's, so they are the clients whose certificate the new root did not sign (finish let no other through).
    revoked = [r for r in sides if r.kind == "client" and (r in revoked_now or _classify(
        _read_cert(lab.path(r.file("crt"))), None, new) != NEW)]
    live = [r for r in lab.roles.sides if r not in revoked and lab.path(r.file("trust")).is_file()]
    new_pem, new_list = _pem(new), _new_list(root, new, new_key)
    archive = str(Path(_backup_folder(root, D.CA, now)).parent)
    for role in (*live, *revoked):
        check_folder(root, role.folder, must_exist=True)
    # (1) the trust files and the broker's list; copies of the old ca/ files into the archive
    trust = [(lab.path(r.file("trust")), new_pem, False) for r in live
             if read_bytes(lab.path(r.file("trust"))) != new_pem]
    lists = [(crl_path(root, D.BROKER), new_list, False)] if new_list is not None else []
    old_files = _replaced(root, new)
    archived = [f"{archive}/{D.CA.folder}/{p.name}" for p in old_files]
    if old_files:
        make_folder(root, BACKUPS_FOLDER, CA_DIR_MODE)
        make_folder(root, f"{archive}/{D.CA.folder}", CA_DIR_MODE)
    copies = [(root / a, read_bytes(p), p.name == D.CA_KEY.name) for a, p in zip(archived, old_files, strict=True)]
    _commit([*copies, *trust, *lists])
    # (2) the new root becomes the lab's CA: its certificate first, its key last
    if key_file != D.CA_KEY:
        _commit([(D.CA_CERT.path(root), new_pem, False),
                 *(((crl_path(root, D.CA), new_list, False),) if new_list is not None else ()),
                 (D.CA_KEY.path(root), read_bytes(lab.path(key_file)), True)])
    # (3) revoked clients go with the root that signed them
    for role in revoked:
        make_folder(root, str(Path(archive, role.folder).parent))
        os.rename(root / role.folder, root / archive / role.folder)
        archived.append(f"{archive}/{role.folder}/")
    # (4) ca-next/ goes; its certificate last, so a killed cleanup is still recognised and completed
    next_files = _next_files(root)
    for path in sorted(next_files, key=lambda p: p.name == NEXT_CA.file("crt").name):
        path.unlink()
    (root / NEXT_CA_FOLDER).rmdir()
    devices = tuple(r for r in live if key_on_device(root, r))
    return RotationFinish(root, new, archive, tuple(_rel(root, p) for p, _, _ in (*trust, *lists)), tuple(archived),
                          devices, broker_trust_note(root))


def _commit(made: list[tuple[Path, bytes, bool]]) -> None:
    with Staging() as staging:
        for path, data, secret in made:
            staging.stage(path, data, secret=secret, durable=secret, owner=_owner(path))
        staging.commit()
