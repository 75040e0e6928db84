"""Day two: renew a broker's or a client's certificate before it expires, and see what expires soon.

A certificate does not last: the lab's leaves live a year by default (:data:`~mqtt_pki_lab.profile.MAX_LEAF_DAYS`
is the lab's cap). Renewing is arrows 4-5 (broker) or 7-8 (client) again, and with ``new_key`` arrows 3-5 or
6-8: the role makes a CSR with its key for the *same names* its certificate has now, and the CA signs it with
the lab's profile, exactly as the first time (:func:`~mqtt_pki_lab.sign.sign_csr`; nothing is copied from the
old certificate but its names). The new certificate has a new random serial number and a new validity window.

>>> result = renew("pki", "broker")               # doctest: +SKIP
>>> result.old_serial != result.new_serial        # doctest: +SKIP
True
>>> expiring("pki", 30)                           # doctest: +SKIP
[]

**Same key or a new one.** By default the key stays: nothing secret moves, and a device that holds its key only
needs the new certificate. ``new_key`` makes a new key of the same type (or ``key_type``), for when the old
one may have leaked or is too weak; the old certificate stays valid until its notAfter unless it is revoked.

**Backups.** What is replaced is kept in ``backups/<UTC time>/<role folder>/`` inside the lab (for example
``backups/20261202T190312Z/broker/server.crt``): outside every role's folder, so the engine, ``status``,
``verify`` (which warns about a second private key in a role's folder) and ``grade`` never mistake a backup
for a live file. ``backups/`` is made 0700 and an old key in it stays 0600: delete it once the new one works.

**Making the broker use it.** mosquitto 2.0 reads ``certfile`` and ``keyfile`` again when it gets SIGHUP
(its ChangeLog for 2.0.0: "TLS certificates for the server are now reloaded on SIGHUP"; ``mosquitto(8)``,
SIGNALS), without a restart and without dropping connected clients; Debian's ``mosquitto.service`` reloads
with ``ExecReload=/bin/kill -HUP $MAINPID``. (``cafile`` is read again on SIGHUP only when ``crlfile`` is set:
measured with 2.0.11; see :mod:`~mqtt_pki_lab.rotate`. A renewal does not change ``ca.crt``.) If the
reload cannot read the key (a root-owned 0600 ``server.key`` while mosquitto runs as the user
``mosquitto``), mosquitto 2.0.11 keeps running with the new certificate and *no* key: every new connection
then fails ("no shared cipher" in its log). So a file replaced by root keeps its owner here.
A client needs nothing from the broker: the broker checks client certificates against ``ca.crt``, which did
not change, so the client's next connection uses the new certificate.

**Refused**: the CA itself (renewing the root is a CA rotation: every side must get the new ``ca.crt``), a
client whose key lives on its device (it must make a new CSR there: ``mqtt-pki-lab sign``), a revoked
certificate (the CRL of :mod:`~mqtt_pki_lab.crl`: renewing it would let the device back in), a lab without a
CA, ``days`` past the CA's notAfter. Every check comes before the first write; a refused renewal changes
nothing.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from . import diagram as D
from .csr import create_csr
from .diagram import LabFile, Role
from .errors import InputError, RefusedError
from .files import CA_DIR_MODE, Staging, check_folder, check_lab_path, make_folder, read_bytes
from .intermediate import chain_pem
from .keys import (
    DEFAULT_KEY_TYPE,
    generate_key,
    is_encrypted_key_pem,
    key_kind,
    key_to_pem,
    key_type,
    key_type_of,
    same_public_key,
)
from .names import check_client_name
from .options import BuildOptions
from .profile import CLOCK_SKEW, MAX_CA_DAYS, MAX_LEAF_DAYS, check_days
from .sign import csr_names, sign_csr
from .steps import Lab, key_on_device

__all__ = ["BACKUPS_FOLDER", "Expiry", "Renewal", "expiring", "expiring_text", "find_role", "renew"]

#: Where renewals keep what they replaced: ``backups/<UTC time>/<role folder>/<file>``.
BACKUPS_FOLDER = "backups"
_DAY = dt.timedelta(days=1)


@dataclass(frozen=True)
class Renewal:
    """What :func:`renew` did: the old and new serial numbers and notAfter, the files written and backed up."""

    role: Role
    old_serial: int
    new_serial: int
    old_not_after: dt.datetime
    new_not_after: dt.datetime
    new_key: bool
    """True when a new key was made (arrows 3-5 or 6-8); False when the key was kept (arrows 4-5 or 7-8)."""
    key_type: str
    written: tuple[Path, ...]
    """The files written in the role's folder: the CSR, the certificate, and the key when it is new."""
    backups: tuple[Path, ...]
    """The copies of what was replaced, in ``backups/<UTC time>/<role folder>/``."""
    days: int
    ca_not_after: dt.datetime

    @property
    def cut_at_ca(self) -> bool:
        """True when the new certificate ends when the CA does (no leaf outlives the CA that signed it)."""
        return self.new_not_after >= self.ca_not_after

    @property
    def arrows(self) -> str:
        """The arrows done again: ``3-5`` / ``4-5`` for the broker, ``6-8`` / ``7-8`` for a client."""
        first = D.arrow_of(self.role.file("key" if self.new_key else "csr"))
        return f"{first}-{D.arrow_of(self.role.file('crt'))}"

    @property
    def pick_up(self) -> str:
        """How the new certificate gets used: a SIGHUP for mosquitto, nothing for a client."""
        if self.role.kind == "broker":
            return ("A running mosquitto (2.0 or later) reads server.crt and server.key again on SIGHUP, without "
                    "a restart: kill -HUP <mosquitto's pid>, or systemctl reload mosquitto (Debian's unit "
                    "sends SIGHUP). Connected clients stay; new connections get the new certificate.")
        return ("The broker needs no reload (it checks client certificates against ca.crt, which did not change): "
                f"the client's next connection uses it. A device outside this folder needs the new "
                f"{self.role.file('crt').name}{' and ' + self.role.file('key').name if self.new_key else ''}.")

    def __str__(self) -> str:
        crt = self.role.file("crt")
        what = f"new {self.key_type} key" if self.new_key else f"same {self.key_type} key"
        lines = [f"Renewed {crt.relpath} ({self.role.label}; step {D.RENEW_STEP.number}: arrows {self.arrows} again, "
                 f"{what}, {self.days} days)",
                 f"  serial    {self.old_serial:x} -> {self.new_serial:x}",
                 f"  notAfter  {self.old_not_after:%Y-%m-%d %H:%M} UTC -> {self.new_not_after:%Y-%m-%d %H:%M} UTC"
                 + (" (cut at the CA's notAfter)" if self.cut_at_ca else "")]
        lines += [f"  wrote     {p}" for p in self.written]
        lines += [f"  kept      {p}" + (" (the old key, 0600: delete it once the new one works)"
                                        if p.name == self.role.file("key").name else "") for p in self.backups]
        if self.new_key:
            lines.append(f"  The old certificate stays valid until {self.old_not_after:%Y-%m-%d} unless you revoke it.")
        lines.append(self.pick_up)
        return "\n".join(lines)


# --- which role ----------------------------------------------------------------------------------------------

def find_role(lab: Lab, name: str) -> Role:
    """The role ``name`` means: ``broker``, ``client`` (the diagram's client), a further client's folder name
    or a client's MQTT username (its certificate's Common Name). ``ca`` is refused: see :func:`renew`."""
    if not isinstance(name, str) or not name:
        raise InputError("NAME", "give what to renew: broker, client or a further client's name")
    if name == "ca":
        raise RefusedError(lab.path(D.CA_CERT), "renewing the root is a CA rotation, not a renewal: every broker "
                                                "and client must get the new ca.crt (mosquitto reads cafile only "
                                                "when it starts); rotate with mqtt-pki-lab build DIR --force, "
                                                "which makes a new CA and signs every certificate again")
    if name == D.BROKER.name:
        return D.BROKER
    check_client_name(name, "NAME")
    found = lab.roles.client(name) or lab.client_names().get(name)
    if found is None:
        known = ", ".join(["broker", *sorted(lab.client_names())])
        raise InputError(name, f"no such broker or client in {lab.root} (it has: {known}); a new device is "
                               "added with mqtt-pki-lab add-client, not renewed")
    return found


# --- renewing ------------------------------------------------------------------------------------------------

def _lifetime_days(cert: x509.Certificate) -> int:
    """The days a certificate was made for (notBefore was set back by the clock skew allowance)."""
    span = cert.not_valid_after_utc - cert.not_valid_before_utc - CLOCK_SKEW
    return min(max(1, round(span / _DAY)), MAX_LEAF_DAYS)


def _check_days(days: int | None, old: x509.Certificate, ca_cert: x509.Certificate, now: dt.datetime) -> int:
    """``days`` checked (1 to the lab's cap, not past the CA's notAfter); None: the old certificate's lifetime."""
    if days is None:
        return _lifetime_days(old)  # sign_csr cuts it at the CA's notAfter, as the first signing did
    check_days(days, "--days")
    ca_end = ca_cert.not_valid_after_utc
    if now + dt.timedelta(days=days) > ca_end:
        left = math.floor((ca_end - now) / _DAY)
        raise InputError("--days", f"{days} days would outlive the CA: ca.crt is valid until {ca_end:%Y-%m-%d} "
                                   f"({left} days from now) and no certificate outlives its issuer; give --days "
                                   f"{left} or less, or rotate the CA first")
    return days


def _refuse_keyless(lab: Lab, role: Role, new_key: bool) -> None:
    """A role whose key is not in the lab: held by its device (refused), or missing (only ``new_key`` helps)."""
    key = lab.path(role.file("key"))
    if key_on_device(lab.root, role):
        raise RefusedError(key, f"the private key of {role.label} lives on its device ({D.DEVICE_KEY_NOTE}), so "
                                "the lab cannot renew it: make a new CSR on the device (mqtt-pki-lab request) and sign "
                                "it here with mqtt-pki-lab sign")
    if not new_key and not key.is_file():
        raise InputError(key, "missing, so the same key cannot be certified again: renew with --new-key to make "
                               "a new one (or, if it lives on a device, sign a new CSR from it: mqtt-pki-lab sign)")


def _refuse_revoked(lab: Lab, role: Role, cert: x509.Certificate) -> None:
    """A revoked certificate is not renewed: that would let a device the CA shut out back in, with the same
    identity (RFC 5280 §5.3.1's reasons, e.g. keyCompromise, say why it was shut out)."""
    from .crl import revocation_of

    revoked = revocation_of(lab.root, cert)
    if revoked is not None:
        raise RefusedError(lab.path(role.file("crt")), f"the certificate of {role.label} was revoked "
                                                       f"({revoked.reason}, {revoked.date:%Y-%m-%d}): renewing it "
                                                       "would let it back in; if it really should come back, give "
                                                       "it a new key and name: mqtt-pki-lab add-client")


def _owner(path: Path) -> tuple[int, int] | None:
    """The (uid, gid) a replacement of ``path`` must keep, when we are root and it belongs to someone else."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return None
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return None if (st.st_uid, st.st_gid) == (0, 0) else (st.st_uid, st.st_gid)


def _backup_folder(root: Path, role: Role, now: dt.datetime) -> str:
    """``backups/<UTC time>/<role folder>``, with ``-2``, ``-3``... when a renewal in the same second took it."""
    stamp = f"{now:%Y%m%dT%H%M%SZ}"
    for n in range(1, 1000):
        name = stamp if n == 1 else f"{stamp}-{n}"
        if not (root / BACKUPS_FOLDER / name / role.folder).exists():
            return f"{BACKUPS_FOLDER}/{name}/{role.folder}"
    raise RefusedError(root / BACKUPS_FOLDER, "too many renewals in one second")


def _read_ca(lab: Lab) -> tuple[x509.Certificate, Any]:
    """The issuing CA's certificate and key (the intermediate's in a chain of three, :func:`~mqtt_pki_lab.steps.
    issuer_role`; an encrypted key needs the passphrase): a lab without a CA is refused."""
    issuer = lab.roles.issuer
    for file in (issuer.file("crt"), issuer.file("key")):
        if not lab.path(file).is_file():
            if issuer == D.INTERMEDIATE:
                raise InputError(lab.path(file), f"missing: {issuer.label}'s {file.name}, which signs renewals in "
                                                 "this lab; put it back from where it is kept (or replace the CAs "
                                                 "on purpose: build --intermediate --force)")
            raise InputError(lab.path(file), "missing: this lab has no CA to sign a renewal (make one with "
                                             "mqtt-pki-lab build DIR)")
    return lab._read(issuer.file("crt")), lab._read(issuer.file("key"))


def renew(root: str | Path, name: str, *, new_key: bool = False, days: int | None = None,
          password: bytes | str | None = None, key_type_name: str | None = None,
          issuer: tuple[x509.Certificate, Any, Path] | None = None) -> Renewal:
    """Renew the certificate of ``name`` (``broker``, ``client`` or a further client) in the lab ``root``.

    Keeps the key unless ``new_key`` (then a new key of the same type, or ``key_type_name``); asks for the
    names the current certificate has; the CA signs with the lab's profile for ``days`` (default: the old
    certificate's lifetime, at most the lab's cap and never past the CA's notAfter). ``password`` unlocks an
    encrypted ``ca.key`` (and an encrypted role key, which a new key then gets too). The replaced files go to
    ``backups/``. Raises :class:`~mqtt_pki_lab.errors.LabError` (nothing written) for every refusal listed in
    the module's docstring.

    ``issuer`` (certificate, key, key path) signs instead of the lab's ``ca/``: a CA rotation re-issues under
    its new root this way (:func:`~mqtt_pki_lab.rotate.reissue`). Without it, a renewal during a rotation is
    refused: it would sign with the root that is being retired.
    """
    if isinstance(password, str):
        password = password.encode()
    root = check_lab_path(root)
    if not root.is_dir():
        raise InputError(root, "no such lab folder; make one with: mqtt-pki-lab build DIR")
    if key_type_name is not None:
        key_type(key_type_name)
        if not new_key:
            raise InputError("--key-type", "only with --new-key: a kept key keeps its type")
    lab = Lab(root, BuildOptions(passphrase=password))
    role = find_role(lab, name)
    check_folder(root, ".")
    check_folder(root, role.folder, must_exist=True)  # no link on the way: the lab never writes through one
    _refuse_keyless(lab, role, new_key)
    crt_file, key_file, csr_file = role.file("crt"), role.file("key"), role.file("csr")
    if not lab.path(crt_file).is_file():
        raise InputError(lab.path(crt_file), f"missing: {role.label} has no certificate to renew yet; make it "
                                             f"first (arrow {D.arrow_of(crt_file)}: mqtt-pki-lab build or add-client)")
    if issuer is None:
        from .rotate import refuse_during_rotation

        refuse_during_rotation(root, f"renewing {role.label}", f"mqtt-pki-lab rotate {root} reissue {role.name}")
    ca_cert, ca_key = _read_ca(lab) if issuer is None else issuer[:2]
    old = lab._read(crt_file)
    _refuse_revoked(lab, role, old)
    now = dt.datetime.now(dt.timezone.utc)
    lifetime = _check_days(days, old, ca_cert, now)
    names = csr_names(old)  # the same names again: the broker's host names, or the client's MQTT username
    if not names:
        raise InputError(lab.path(crt_file), "names nobody (no Common Name, no subjectAltName): it cannot be renewed")
    encrypted = key_file.path(root).is_file() and is_encrypted_key_pem(read_bytes(lab.path(key_file)))
    if encrypted and not password:
        raise InputError(lab.path(key_file), "this private key is encrypted; give its passphrase (--passphrase-file)")
    if new_key:
        kind = key_type_name or key_type_of(old.public_key()) or DEFAULT_KEY_TYPE  # type: ignore[arg-type]
        key = generate_key(kind)
    else:
        key = lab._read(key_file)
        if not same_public_key(key, old.public_key()):  # type: ignore[arg-type]
            raise RefusedError(lab.path(key_file), f"does not belong to {crt_file.relpath}: the lab will not guess "
                                                   "which one is right; run mqtt-pki-lab verify, or renew with "
                                                   "--new-key")
    csr = create_csr(key, role.kind, names if role.kind == "broker" else names[:1])
    signer = lab.roles.issuer
    cert = sign_csr(csr, ca_cert, ca_key, role.kind, lifetime, csr_path=lab.path(csr_file),
                    ca_key_path=lab.path(signer.file("key")) if issuer is None else issuer[2])
    # In a chain of three the file a side presents holds its certificate, then the intermediate's.
    chain = (ca_cert,) if issuer is None and signer == D.INTERMEDIATE else ()
    made: dict[LabFile, bytes] = {csr_file: csr.public_bytes(Encoding.PEM), crt_file: chain_pem(cert, chain)}
    if new_key:
        made[key_file] = key_to_pem(key, password if encrypted else None)
    before = read_bytes(lab.path(crt_file))
    with lab._locked():
        if read_bytes(lab.path(crt_file)) != before:
            raise RefusedError(lab.path(crt_file), "changed while it was being renewed; nothing was written: "
                                                   "run the renewal again")
        backups, written = _write(lab, role, made, now)
    return Renewal(role, old.serial_number, cert.serial_number, old.not_valid_after_utc, cert.not_valid_after_utc,
                   new_key, key_type_of(key) or key_kind(key), written, backups, lifetime,
                   ca_cert.not_valid_after_utc)


def _write(lab: Lab, role: Role, made: dict[LabFile, bytes], now: dt.datetime
           ) -> tuple[tuple[Path, ...], tuple[Path, ...]]:
    """Under the lab's lock: copy what is replaced to ``backups/``, then put the new files in place, all at once.

    The copies are renamed into place before the new files, so an interrupted renewal leaves the old files,
    or the new ones with their backups. A folder made here is removed again when writing fails.
    """
    root = lab.root
    folder = _backup_folder(root, role, now)
    old = [f for f in made if lab.path(f).is_file() and not lab.path(f).is_symlink()]
    parts = Path(folder).parts
    new_folders = [p for p in (root.joinpath(*parts[:i]) for i in range(1, len(parts) + 1)) if not p.exists()]
    try:
        make_folder(root, BACKUPS_FOLDER, CA_DIR_MODE)  # it holds old keys: only its owner may list it
        make_folder(root, folder)
        with Staging() as staging:
            backups = [staging.stage(root / folder / f.name, read_bytes(lab.path(f)), secret=f.secret)
                       for f in old]
            written = [staging.stage(lab.path(f), data, secret=f.secret, owner=_owner(lab.path(f)))
                       for f, data in made.items()]
            staging.commit()
    except BaseException:
        for path in reversed(new_folders):
            with contextlib.suppress(OSError):
                path.rmdir()
        raise
    return tuple(backups), tuple(written)


# --- what expires soon ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Expiry:
    """One certificate of the lab and when it expires (``problem``: it could not be read)."""

    file: LabFile
    path: Path
    not_after: dt.datetime | None
    days_left: int | None
    """Whole days from now to notAfter (rounded toward zero); negative once it has expired."""
    serial: int | None = None
    problem: str | None = None
    expired: bool = False

    def __str__(self) -> str:
        if self.problem is not None or self.not_after is None or self.days_left is None:
            return f"{self.file.relpath:<28} unreadable: {self.problem}"
        left = f"expired {-self.days_left} days ago" if self.expired else f"{self.days_left} days left"
        return f"{self.file.relpath:<28} notAfter {self.not_after:%Y-%m-%d %H:%M} UTC  {left}"

    def to_json(self) -> dict[str, Any]:
        """The entry for ``status --json --expiring N``."""
        return {"file": self.file.relpath, "path": str(self.path), "role": self.file.role.name,
                "not_after": self.not_after.isoformat() if self.not_after else None, "days_left": self.days_left,
                "serial": f"{self.serial:x}" if self.serial is not None else None, "problem": self.problem}


def _expiry(root: Path, file: LabFile, now: dt.datetime) -> Expiry:
    from .pem import load_certificate

    path = file.path(root)
    try:
        if path.is_symlink():
            raise InputError(path, "is a symbolic link; the lab never follows links")
        cert = load_certificate(path)
    except InputError as exc:
        return Expiry(file, path, None, None, problem=exc.problem)
    end = cert.not_valid_after_utc
    return Expiry(file, path, end, math.trunc((end - now) / _DAY), cert.serial_number, expired=end <= now)


def expiring(root: str | Path, within_days: int, *, now: dt.datetime | None = None) -> list[Expiry]:
    """Every certificate of the lab (``ca.crt``, ``server.crt``, each ``client.crt``) that expires within
    ``within_days`` days from now (0: only those already expired), soonest first; unreadable ones too (first),
    since nobody can tell when they expire. Certificates a role does not have yet are not listed."""
    if not isinstance(within_days, int) or isinstance(within_days, bool) or not 0 <= within_days <= MAX_CA_DAYS:
        raise InputError("--expiring", f"{within_days!r} is not a number of days from 0 to {MAX_CA_DAYS}")
    root = check_lab_path(root)
    now = now or dt.datetime.now(dt.timezone.utc)
    roles = Lab(root).roles
    files = [*(r.file("crt") for r in roles.cas), *(r.file("crt") for r in roles.sides)]
    found = [_expiry(root, f, now) for f in files if f.path(root).exists() or f.path(root).is_symlink()]
    limit = now + dt.timedelta(days=within_days)
    soon = [e for e in found if e.not_after is None or e.not_after <= limit]
    return sorted(soon, key=lambda e: (e.not_after is not None, e.not_after or now))


def expiring_text(root: str | Path, within_days: int, soon: list[Expiry], lists: Sequence[Any] = ()) -> str:
    """What ``status --expiring N`` prints: the certificates :func:`expiring` found and how to renew them, and
    the revocation lists whose nextUpdate comes within the same days (``lists``:
    :func:`~mqtt_pki_lab.crl.list_deadlines`; past it every client is refused)."""
    from .crl import revoked_clients

    if not soon and not lists:
        return (f"No certificate of {root} expires, and no revocation list reaches its nextUpdate, within "
                f"{within_days} days.")
    lines = [f"Expiring within {within_days} days ({len(soon)}):"] if soon else \
        [f"No certificate of {root} expires within {within_days} days."]
    lines += [f"  {e}" for e in soon]
    leaves = [e.file.role for e in soon if e.file.role.kind in D.LEAF_KINDS and e.problem is None]
    revoked = set(revoked_clients(root)) if leaves else set()
    names = [r.name for r in leaves if r not in revoked and not key_on_device(root, r)]
    if names:
        lines.append(f"Renew with: mqtt-pki-lab renew {root} NAME   (NAME: {', '.join(dict.fromkeys(names))})")
    lines += [f"  {r.folder}: revoked, not renewed (renewing would let it back in); it stays out as it is"
              for r in dict.fromkeys(leaves) if r in revoked]
    lines += [f"  {r.folder}: its key lives on its device: make a new CSR there (mqtt-pki-lab request) and sign it "
              "here (mqtt-pki-lab sign)" for r in dict.fromkeys(leaves) if r not in revoked and key_on_device(root, r)]
    if any(e.file == D.INTERMEDIATE_CERT for e in soon):
        lines.append("intermediate/intermediate.crt: the root signs a new intermediate (steps 13-15), and the leaves "
                     "are signed again (mqtt-pki-lab build DIR --intermediate --force replaces both CAs)")
    if any(e.file == D.CA_CERT for e in soon):
        lines.append(f"ca/ca.crt itself: renewing the root is a CA rotation (mqtt-pki-lab rotate {root} start)")
    if lists:
        lines.append(f"Revocation lists whose nextUpdate comes within {within_days} days ({len(lists)}):")
        lines += [f"  {d}" for d in lists]
        lines.append(f"Sign them again before then, or every client is refused: mqtt-pki-lab crl {root} --refresh")
    return "\n".join(lines)

