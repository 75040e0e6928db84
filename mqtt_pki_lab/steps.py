"""The engine: carry out the diagram's arrows in a lab folder, and read the lab's state from disk.

Every face of the package walks the same steps (:data:`~mqtt_pki_lab.diagram.STEPS`): ``mqtt-pki-lab build``
runs arrows 1 to 9, ``add-client`` runs 6 to 9 for one more device, a notebook section explains one, a
widget button runs one, the graph draws them, the tests check them.

>>> lab = Lab("pki")                      # doctest: +SKIP
>>> lab.state().next_step().title         # doctest: +SKIP
'CA: generate ca.key'
>>> for result in lab.build():            # doctest: +SKIP
...     print(result)
>>> lab.add_client("sensor-1")            # doctest: +SKIP

**Nothing is lost.** A command first checks everything (options, folders, links, an existing CA), then
makes every key and certificate in memory, then writes them all aside and renames them into place
under the lab's lock (:mod:`~mqtt_pki_lab.files`). A refused or failed command changes nothing.

**The disk is the truth**: :meth:`Lab.state` looks at which files exist, so a notebook restarted halfway
picks up where it was. Arrow 10 (the handshake) proves the files and writes nothing: it lives with the
other proofs in :mod:`mqtt_pki_lab.handshake`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding

from . import diagram as D
from .acl import default_policy
from .ca import create_ca_certificate
from .certificates import common_name
from .csr import create_csr
from .diagram import BUILD_STEPS, CLIENT_STEPS, STEPS, BoundStep, LabFile, Role, Roles, Step
from .errors import InputError, LabError, RefusedError
from .files import (
    CA_DIR_MODE,
    DIR_MODE,
    LabLock,
    Staging,
    check_folder,
    check_lab_path,
    check_parent_writable,
    leftovers,
    make_folder,
    remove_leftovers,
)
from .intermediate import DEFAULT_INTERMEDIATE_DAYS, chain_pem, create_intermediate_csr, sign_intermediate
from .keys import generate_key, key_kind, key_to_pem, load_private_key, public_key_fingerprint
from .names import check_client_name
from .options import BuildOptions
from .pem import load_certificate, load_csr
from .sign import sign_csr
from .twins import openssl_twin

__all__ = ["STEPS", "BuildOptions", "Lab", "LabState", "MadeFile", "Step", "StepResult", "build", "get_step",
           "has_intermediate", "issuer_role"]

Status = Literal["done", "ready", "blocked"]


@dataclass(frozen=True)
class MadeFile:
    """A file a step wrote: where, secret or public, and a fingerprint that is safe to show."""

    file: LabFile
    path: Path
    fingerprint: str
    summary: str

    def __str__(self) -> str:
        return f"{self.file.relpath:<20} {self.file.label}  {self.summary}"


@dataclass(frozen=True)
class StepResult:
    """What running one step did: the files it made, and for the handshake step, its result."""

    step: Step
    made: tuple[MadeFile, ...]
    detail: Any = None
    ok: bool = True
    openssl: str = ""
    """The ``openssl`` command(s) that do the same, with the options this step ran with."""
    role: Role | None = None
    """The role the step was done for (None: the diagram's own roles)."""
    issuer: Role = D.CA
    """The CA that signs the lab's leaves (the intermediate in a chain of three)."""

    @property
    def title(self) -> str:
        return D.BoundStep(self.step, self.role, self.issuer).title if self.role is not None else self.step.title

    def __str__(self) -> str:
        lines = [f"[{self.step.number:>2}] {self.title}"]
        lines += [f"     made {m}" for m in self.made]
        if self.detail is not None:
            lines += ["     " + line for line in str(self.detail).splitlines()]
        if self.openssl:
            lines.append(f"     openssl twin: {self.openssl}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        made = ", ".join(m.file.relpath for m in self.made)
        return f"<step {self.step.number}: {self.title}{': made ' + made if made else ''}>"

    def _repr_html_(self) -> str:
        from html import escape

        rows = "".join(
            f"<tr><td><code>{escape(m.file.relpath)}</code></td><td>{escape(m.file.label)}</td>"
            f"<td>{escape(m.summary)}</td><td><code>{escape(m.fingerprint[:23])}…</code></td></tr>"
            for m in self.made)
        detail = self.detail._repr_html_() if hasattr(self.detail, "_repr_html_") else (
            f"<pre>{escape(str(self.detail))}</pre>" if self.detail is not None else "")
        twin = f"<div>openssl twin: <code>{escape(self.openssl)}</code></div>" if self.openssl else ""
        return (f"<div><b>Step {self.step.number}: {escape(self.title)}</b>"
                f"<table>{rows}</table>{detail}{twin}</div>")


def get_step(step: str | int | Step) -> Step:
    """Find a step by id (``"server-csr"``), number (4) or the step itself."""
    if isinstance(step, Step):
        return step
    if isinstance(step, int) and not isinstance(step, bool) and step in D.STEP_BY_NUMBER:
        return D.STEP_BY_NUMBER[step]
    if isinstance(step, str) and step in D.STEP_BY_ID:
        return D.STEP_BY_ID[step]
    if isinstance(step, int) and not isinstance(step, bool) and step in {s.number for s in D.INTERMEDIATE_STEPS}:
        return D.any_step(step)  # type: ignore[return-value]
    if isinstance(step, str) and step in D.INTERMEDIATE_BY_ID:
        return D.INTERMEDIATE_BY_ID[step]
    raise InputError("step", f"unknown step {step!r}; steps are 1-{len(STEPS)} or {', '.join(D.STEP_BY_ID)} "
                             "(and 13-15 for a lab with an intermediate CA)")


# --- the state, read from disk ---------------------------------------------------------------------------------

def has_intermediate(root: str | Path) -> bool:
    """True when the lab has an intermediate CA: its folder ``intermediate/`` is there (a link there counts too,
    so that reading through it is refused rather than the root quietly signing in its place)."""
    return os.path.lexists(Path(root) / D.INTERMEDIATE.folder)


def issuer_role(root: str | Path) -> Role:
    """The CA that signs the lab's leaves (arrows 5 and 8, renewals, devices' CSRs) and its revocation list:
    the intermediate CA when the lab has one (:func:`has_intermediate`), else the root. The one place that
    decides it (:func:`mqtt_pki_lab.crl.issuer_role` returns this)."""
    return D.INTERMEDIATE if has_intermediate(root) else D.CA


def discover_roles(root: Path, *, intermediate: bool = False) -> Roles:
    """The lab's roles: the CA, the intermediate CA when there is one (or ``intermediate`` asks for it), the
    broker, ``client/`` and every valid ``clients/NAME/`` folder."""
    folder = root / D.CLIENTS_FOLDER
    extra: list[Role] = []
    if folder.is_dir() and not folder.is_symlink():
        with contextlib.suppress(OSError):
            extra = [D.client_role(p.name) for p in sorted(folder.iterdir())
                     if D.CLIENT_NAME.fullmatch(p.name) and p.is_dir() and not p.is_symlink()]
    return Roles((D.FIRST_CLIENT, *extra), intermediate or has_intermediate(root))


def key_on_device(root: str | Path, role: Role) -> bool:
    """True when ``role``'s private key was generated on its device: the CA signed its CSR and wrote the note
    :data:`~mqtt_pki_lab.diagram.DEVICE_KEY_NOTE` instead of a key (``mqtt-pki-lab sign``). Such a role is
    complete without its key; the lab never makes one for it."""
    path = D.device_note(role).path(root)
    return path.is_file() and not path.is_symlink()


@dataclass(frozen=True)
class LabState:
    """Which files of the lab exist, and so which steps are done or ready, for every role."""

    root: Path
    present: frozenset[LabFile]
    roles: Roles = field(default_factory=Roles)
    leftovers: tuple[str, ...] = ()
    """Temporary files a killed run left behind (removed by the next command that writes)."""
    exists: bool = True
    on_device: frozenset[Role] = frozenset()
    """The roles whose private key was generated on their device and never entered the lab
    (:func:`key_on_device`): their arrows 6-7 (3-4 for a broker) are done, on the device."""

    @classmethod
    def read(cls, root: str | Path) -> LabState:
        """Look at the disk: the state is whatever files are there now."""
        root = Path(root)
        roles = discover_roles(root)
        present = frozenset(f for f in roles.files() if f.path(root).is_file() and not f.path(root).is_symlink())
        stray = tuple(p.relative_to(root).as_posix() for p in leftovers(root, [r.folder for r in roles.all]))
        devices = frozenset(r for r in roles.sides if key_on_device(root, r))
        return cls(root, present, roles, stray, root.is_dir(), devices)

    def has(self, file: LabFile) -> bool:
        """True when ``file`` exists in the lab folder."""
        return file in self.present

    def held(self, file: LabFile) -> bool:
        """True when ``file`` exists in the lab folder, or is a key its device holds (made there, on purpose
        never here), or is the root's key kept offline in a lab whose intermediate CA signs day to day."""
        return file in self.present or (file.slot == "key" and file.role in self.on_device) or (
            file == D.CA_KEY and self.root_key_offline)

    @property
    def root_key_offline(self) -> bool:
        """True when the lab has an intermediate CA, its certificate and the root's are there, and ``ca/ca.key``
        is not: the root's key is kept offline, as it should be. Only step 15 (certifying an intermediate)
        needs it; every day-to-day step uses the intermediate's key."""
        return (self.roles.intermediate and D.CA_KEY not in self.present and D.CA_CERT in self.present
                and D.INTERMEDIATE_CERT in self.present)

    @property
    def _diagram(self) -> Roles:
        """The diagram's own boxes in this lab (with its intermediate, when it has one)."""
        return Roles(intermediate=self.roles.intermediate)

    def status_of(self, bound: BoundStep) -> Status:
        """``done`` (its files exist, or its key is held by the device), ``ready`` (its inputs exist) or
        ``blocked``, for one role."""
        if bound.writes and all(self.held(f) for f in bound.writes):
            return "done"
        return "ready" if all(self.held(f) for f in bound.reads) else "blocked"

    def status(self, step: str | int | Step, role: Role | None = None) -> Status:
        """The status of a step for ``role``, or for the diagram's own roles (every one it is done for)."""
        found = get_step(step)
        bounds = [D.bind(found, role, self.roles.issuer)] if role is not None else list(self._diagram.plan([found]))
        statuses = [self.status_of(b) for b in bounds]
        if all(s == "done" for s in statuses):
            return "done"
        return "blocked" if any(s == "blocked" for s in statuses) else "ready"

    def next_step(self) -> Step | None:
        """The first build step (1-9, and 13-15 with an intermediate) of the diagram's own roles not done yet,
        or None."""
        return next((s for s in self.roles.build_steps if self.status(s) != "done"), None)

    @property
    def complete(self) -> bool:
        """True when every role's files exist (arrows 1 to 9 for the diagram and every further client, and
        13-15 for an intermediate CA)."""
        return all(self.status_of(b) == "done" for b in self.roles.plan(self.roles.build_steps))

    def __iter__(self) -> Iterator[tuple[Step, Status]]:
        steps = (*self.roles.build_steps, *(s for s in STEPS if not s.writes))  # STEPS' order in a one-level lab
        return ((s, self.status(s)) for s in steps)

    def done_arrows(self, role: Role) -> list[int]:
        """The numbers of the arrows done for ``role``."""
        return sorted({b.number for b in self.roles.plan(self.roles.build_steps) if b.role == role
                       and self.status_of(b) == "done"})

    def to_json(self) -> dict[str, Any]:
        """Every role with its kind, name, folder, the paths of its files (None when missing), its arrows."""
        roles = []
        for role in self.roles.all:
            def where(slot: str, role: Role = role) -> str | None:
                if slot not in role.slots or not self.has(role.file(slot)):
                    return None
                return str(role.file(slot).path(self.root))
            roles.append({"kind": role.kind, "name": role.name, "folder": role.folder, "key": where("key"),
                          "csr": where("csr"), "crt": where("crt"),
                          "ca.crt": where("crt") if role.kind == "ca" else where("trust"),
                          "arrows_done": self.done_arrows(role),
                          "key_on_device": role in self.on_device,
                          "key_offline": role == D.CA and self.root_key_offline,
                          "complete": all(self.held(f) for f in role.files),
                          **({"acl": self._policy()} if role == D.BROKER else {})})
        return {"root": str(self.root.resolve()), "complete": self.complete, "roles": roles,
                "intermediate": self.roles.intermediate, "issuer": self.roles.issuer.folder,
                "leftovers": list(self.leftovers)}

    def _policy(self) -> str | None:
        """The path of the broker's policy ``broker/acl`` (:mod:`~mqtt_pki_lab.acl`), or None when there is none."""
        path = self.root / D.BROKER.folder / D.ACL_FILE
        return str(path) if path.is_file() and not path.is_symlink() else None

    def __str__(self) -> str:
        marks = {"done": "✔", "ready": "→", "blocked": "·"}
        lines = [f"{marks[status]} {step.number:>2}. {self._diagram.plan([step])[0].title} [{status}]"
                 for step, status in self if step.writes]
        if self.root_key_offline:
            lines.append(f"  ✔ {D.CA_KEY.relpath}: kept offline (the intermediate CA signs day to day; only "
                         f"step {D.INTERMEDIATE_CERT_STEP.number} needs the root's key)")
        extra = self.roles.clients[1:]
        if extra:
            done = sum(all(self.held(f) for f in c.files) for c in extra)
            lines.append(f"  further clients in {D.CLIENTS_FOLDER}/: {len(extra)} ({done} complete)")
            for client in extra:
                if not all(self.held(f) for f in client.files):
                    missing = [f.name for f in client.files if not self.held(f)]
                    lines.append(f"  · {client.folder}: missing {', '.join(missing)} (arrows 6-9)")
        for role in self.roles.sides:
            if role in self.on_device:
                key = role.file("key")
                lines.append(f"  ✔ {role.folder}: {key.name} is held by the device (arrows {D.arrow_of(key)}-"
                             f"{D.arrow_of(role.file('csr'))} done there; {D.DEVICE_KEY_NOTE})")
        lines += [f"  ! left by an interrupted run: {p} (removed by the next command that writes)"
                  for p in self.leftovers]
        return "\n".join(lines)


# --- doing the steps ---------------------------------------------------------------------------------------------

def _fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


def _summary(cert: x509.Certificate) -> str:
    return f"certificate {cert.subject.rfc4514_string()}, valid until {cert.not_valid_after_utc:%Y-%m-%d}"


class _Work:
    """One command's work: files read from the lab, and files made in memory until they are written."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.root = lab.root
        self.options = lab.options
        self.made: dict[LabFile, tuple[Any, bytes, bool]] = {}
        self.extra: dict[Path, bytes] = {}
        """Public files outside the diagram's slots, written with the made ones (the broker's ``broker/acl``)."""

    def get(self, file: LabFile) -> Any:
        """A file's object: made by this command, else read from the lab (parsed once while unchanged)."""
        if file in self.made:
            return self.made[file][0]
        return self.lab._read(file)

    def put(self, file: LabFile, obj: Any, chain: tuple[x509.Certificate, ...] = ()) -> None:
        """Keep a key, certificate or CSR to write at the end (a key encrypted when the options say so; a leaf
        followed by ``chain``, the intermediate, in a chain of three). A CA's key is written durably."""
        if file.secret:
            data = key_to_pem(obj, self.options.key_passphrase(file))
        else:
            data = chain_pem(obj, chain) if chain else obj.public_bytes(Encoding.PEM)
        self.made[file] = (obj, data, file in (D.CA_KEY, D.INTERMEDIATE_KEY))


def _do_generate(work: _Work, bound: BoundStep) -> tuple[MadeFile, ...]:
    file = bound.writes[0]
    key = generate_key(work.options.key_type)
    work.put(file, key)
    encrypted = ", encrypted" if work.options.key_passphrase(file) else ""
    return (MadeFile(file, file.path(work.root), public_key_fingerprint(key), f"{key_kind(key)} private key"
                     f"{encrypted}"),)


def _do_self_sign(work: _Work, bound: BoundStep) -> tuple[MadeFile, ...]:
    file = bound.writes[0]
    # pathLenConstraint 1 when an intermediate CA will stand below the root, 0 when it signs leaves itself.
    cert = create_ca_certificate(work.get(D.CA_KEY), work.options.ca_name, work.options.ca_days,
                                 path_length=1 if bound.issuer == D.INTERMEDIATE else 0)
    work.put(file, cert)
    return (MadeFile(file, file.path(work.root), _fingerprint(cert), _summary(cert)),)


def _do_csr(work: _Work, bound: BoundStep) -> tuple[MadeFile, ...]:
    role, file = bound.role, bound.writes[0]
    key = work.get(role.file("key"))
    csr = (create_intermediate_csr(key, work.options.intermediate_name) if role == D.INTERMEDIATE
           else create_csr(key, role.kind, work.options.names_for(role)))
    work.put(file, csr)
    return (MadeFile(file, file.path(work.root), public_key_fingerprint(key),
                     f"CSR {csr.subject.rfc4514_string()}"),)


def _do_sign(work: _Work, bound: BoundStep) -> tuple[MadeFile, ...]:
    role, file = bound.role, bound.writes[0]
    csr_file = role.file("csr")
    issuer_crt, issuer_key = bound.reads[1:3]  # the root's, or the intermediate's in a chain of three
    issuer_cert = work.get(issuer_crt)
    cert = sign_csr(work.get(csr_file), issuer_cert, work.get(issuer_key), role.kind, work.options.days,
                    csr_path=csr_file.path(work.root), ca_key_path=issuer_key.path(work.root))
    # The file a side presents: its certificate, then the intermediate's (RFC 8446 §4.4.2); the root stays out.
    work.put(file, cert, chain=(issuer_cert,) if bound.issuer == D.INTERMEDIATE else ())
    return (MadeFile(file, file.path(work.root), _fingerprint(cert), _summary(cert)),)


def _do_sign_ca(work: _Work, bound: BoundStep) -> tuple[MadeFile, ...]:
    """Step 15: the root signs the intermediate's CSR into a CA certificate (pathLenConstraint 0)."""
    role, file = bound.role, bound.writes[0]
    csr_file = role.file("csr")
    days = min(DEFAULT_INTERMEDIATE_DAYS, work.options.ca_days)
    cert = sign_intermediate(work.get(csr_file), work.get(D.CA_CERT), work.get(D.CA_KEY), days,
                             csr_path=csr_file.path(work.root), ca_key_path=D.CA_KEY.path(work.root))
    work.put(file, cert)
    return (MadeFile(file, file.path(work.root), _fingerprint(cert), _summary(cert)),)


def _do_hand_out(work: _Work, bound: BoundStep) -> tuple[MadeFile, ...]:
    file = bound.writes[0]
    cert = work.get(D.CA_CERT)  # parsed and written anew: nothing but the certificate is copied
    work.put(file, cert)
    return (MadeFile(file, file.path(work.root), _fingerprint(cert), f"copy of ca/ca.crt ({file.about})"),)


def _add_default_policy(work: _Work, plan: list[BoundStep]) -> None:
    """A command that makes the broker's files also writes the broker's default policy, ``broker/acl``
    (:func:`~mqtt_pki_lab.acl.default_policy`), when there is none: an existing policy is the student's."""
    path = work.root / D.BROKER.folder / D.ACL_FILE
    if any(b.role == D.BROKER for b in plan) and not os.path.lexists(path):
        work.extra[path] = default_policy().text().encode()


#: What each kind of build step does.
ACTIONS: dict[str, Callable[[_Work, BoundStep], tuple[MadeFile, ...]]] = {
    "generate-key": _do_generate, "self-sign": _do_self_sign, "create-csr": _do_csr, "sign": _do_sign,
    "sign-ca": _do_sign_ca, "hand-out": _do_hand_out,
}


def _cached(file: LabFile) -> bool:
    """Whether the engine keeps ``file`` parsed: only the files of the diagram's own roles, which every
    further client's steps read again (a fleet of 1000 clients keeps 1000 times nothing), and the
    intermediate CA's, which signs every one of them."""
    return file.role in D.DIAGRAM.all or file.role == D.INTERMEDIATE


def _missing_input(path: Path, needed: LabFile, bound: BoundStep) -> LabError:
    """Why a step cannot run: a file it reads is missing. A CA's key is never made again in passing (a new key
    orphans every certificate the old one signed): it is restored, or the CA is replaced on purpose."""
    if needed.secret and needed.role in (D.CA, D.INTERMEDIATE):
        offline = " (a root key kept offline is brought back only to certify an intermediate)" \
            if needed.role == D.CA else ""
        return InputError(path, f"missing: {needed.role.label}'s private key, which step {bound.number} "
                                f"({bound.title}) signs with{offline}; put it back from where it is kept, or "
                                "replace the CA on purpose (build --force)")
    maker = D.step_of(needed, bound.issuer)
    return InputError(path, f"missing: step {bound.number} ({bound.title}) needs it; run step {maker.number} "
                            f"({maker.title}) first")


_CA_EXISTS = ("a CA already exists here and is never overwritten: a new CA orphans every certificate the old one "
              "signed. Use --force (force=True) to replace it on purpose.")


class Lab:
    """A lab folder and the options to build it with: the object notebooks and scripts work with.

    >>> lab = Lab("pki", BuildOptions(server_names=("mqtt.example.com",)))  # doctest: +SKIP
    >>> lab.run("ca-key")                                                   # doctest: +SKIP
    >>> lab.add_client("sensor-1")                                          # doctest: +SKIP
    """

    def __init__(self, root: str | Path = "pki", options: BuildOptions | None = None) -> None:
        self.root = check_lab_path(root)
        self.options = (options or BuildOptions()).check()
        self.cleaned: list[str] = []
        """Leftovers of interrupted runs that the last writing command removed."""
        self._cache: dict[Path, tuple[tuple[int, int, int], Any]] = {}
        """Parsed files of the roles every step reads again (the CA, the broker, the diagram's client), by
        path and (inode, size, mtime). Further clients are never cached, so memory stays flat in a fleet."""

    def __repr__(self) -> str:
        return f"Lab({str(self.root)!r})"

    def path(self, file: LabFile) -> Path:
        """Where ``file`` lives in this lab."""
        return file.path(self.root)

    def state(self) -> LabState:
        """The lab's state, read from disk now."""
        return LabState.read(self.root)

    @property
    def roles(self) -> Roles:
        """The lab's roles as they are on disk: the CA, the intermediate CA (when there is one, or the options
        ask for one: ``build --intermediate``), the broker and every client."""
        return discover_roles(self.root, intermediate=self.options.intermediate)

    def with_options(self, **changes: Any) -> Lab:
        """A copy of this lab with some options changed (checked)."""
        return Lab(self.root, replace(self.options, **changes))

    # -- reading -------------------------------------------------------------------------------------
    def _read(self, file: LabFile) -> Any:
        path = file.path(self.root)
        if path.is_symlink():
            raise InputError(path, "is a symbolic link; the lab never follows links out of its folder")
        if file.role == D.INTERMEDIATE and os.path.islink(path.parent):
            raise InputError(path.parent, "is a symbolic link; the lab never follows links out of its folder")
        if file.secret:
            load: Callable[[Path], Any] = lambda p: load_private_key(p, self.options.passphrase)  # noqa: E731
        elif file.slot == "csr":
            load = load_csr
        else:
            load = load_certificate
        try:
            st = os.stat(path)
            stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
        except OSError:
            return load(path)  # the loader explains what is wrong
        hit = self._cache.get(path)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        value = load(path)
        if _cached(file):
            self._cache[path] = (stamp, value)
        return value

    # -- writing -------------------------------------------------------------------------------------
    def _check_before_writing(self, plan: Iterable[BoundStep], *, force: bool) -> None:
        """Every check that can be made before the first write: folders, links, inputs, an existing CA."""
        plan = list(plan)
        if self.root.exists():
            check_folder(self.root, ".")
        else:
            check_parent_writable(self.root)
        makes_ca = any(f.role == D.CA for b in plan for f in b.writes)
        if makes_ca and not force and self.options.intermediate and not has_intermediate(self.root) \
                and os.path.lexists(self.path(D.CA_CERT)):
            raise RefusedError(self.path(D.CA_CERT), "this lab has a one-level CA (ca/ca.crt signs the leaves "
                               "itself); --intermediate makes a new root (pathLenConstraint 1) and an intermediate, "
                               "and signs every certificate again: add --force to do that on purpose")
        will_make: set[LabFile] = set()
        for bound in plan:
            if self.root.exists():
                check_folder(self.root, bound.role.folder)
            if bound.step.kind in ("generate-key", "create-csr") and key_on_device(self.root, bound.role):
                raise RefusedError(self.path(bound.role.file("key")), f"{bound.role.label}'s key is held by its "
                                   "device (it made its key and CSR there): the lab never makes a key for it")
            for needed in bound.reads:
                if needed not in will_make and not self.path(needed).is_file():
                    raise _missing_input(self.path(needed), needed, bound)
            for file in bound.writes:
                path = self.path(file)
                if path.is_symlink() or (path.exists() and not path.is_file()):
                    raise InputError(path, "is a symbolic link or a folder where the lab keeps a file; move it "
                                           "away (the lab never writes through links)")
                if file.role in (D.CA, D.INTERMEDIATE) and not force and path.exists():
                    raise RefusedError(path, _CA_EXISTS)
                will_make.add(file)

    def _write(self, work: _Work) -> None:
        """Create the folders that are missing, write every made file aside, then rename them into place."""
        created: list[Path] = []
        try:
            with Staging() as staging:
                for file, (_, data, durable) in work.made.items():
                    folder = self.root / file.folder
                    if not folder.exists():
                        parts = Path(file.folder).parts
                        for i in range(len(parts)):
                            step_folder = self.root.joinpath(*parts[:i + 1])
                            if not step_folder.exists():
                                created.append(step_folder)
                        make_folder(self.root, file.folder,
                                    CA_DIR_MODE if file.role in (D.CA, D.INTERMEDIATE) else DIR_MODE)
                    staging.stage(self.path(file), data, secret=file.secret, durable=durable)
                for path, data in work.extra.items():
                    staging.stage(path, data, secret=False)
                staging.commit()
        except BaseException:
            for folder in reversed(created):
                with contextlib.suppress(OSError):
                    folder.rmdir()
            raise
        for file, (obj, _, _) in work.made.items():
            if not _cached(file):
                continue
            with contextlib.suppress(OSError):
                st = os.stat(self.path(file))
                self._cache[self.path(file)] = ((st.st_ino, st.st_size, st.st_mtime_ns), obj)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the lab's lock (creating the lab folder if needed, and removing it again if nothing was
        written); clean what killed runs left."""
        created = not self.root.exists()
        if created:
            try:
                self.root.mkdir(mode=DIR_MODE)
            except FileExistsError:
                created = False
            except OSError as exc:
                raise InputError(self.root, f"cannot create the lab folder ({exc.strerror})") from None
        try:
            lock = LabLock(self.root).__enter__()
        except RefusedError:
            raise  # another command holds the lab (and may be filling the folder we made): leave it be
        try:
            self.cleaned = remove_leftovers(self.root, [r.folder for r in discover_roles(self.root).all])
            yield
        except BaseException:
            if created:
                with contextlib.suppress(OSError):
                    self.root.rmdir()  # only when empty: nothing was written
            raise
        finally:
            lock.__exit__(None, None, None)

    def _carry_out(self, plan: list[BoundStep], *, force: bool,
                   progress: Callable[[int, int, str], None] | None = None) -> list[StepResult]:
        self._check_before_writing(plan, force=force)
        with self._locked():
            self._check_before_writing(plan, force=force)  # again, under the lock: another command may have won
            work = _Work(self)
            results = []
            for i, b in enumerate(plan):
                results.append(StepResult(b.step, ACTIONS[b.step.kind](work, b),
                                          openssl=openssl_twin(b, self.options), role=b.role, issuer=b.issuer))
                if progress is not None:
                    progress(i + 1, len(plan), b.title)
            _add_default_policy(work, plan)
            self._write(work)
        return results

    def run(self, step: str | int | Step, role: Role | str | None = None, *, force: bool = False) -> StepResult:
        """Carry out one build arrow (1-9) for ``role`` (default: the diagram's own roles it is done for).

        Arrow 10 proves the files and writes nothing: run it with
        :func:`~mqtt_pki_lab.handshake.mutual_tls_handshake` (or :func:`~mqtt_pki_lab.verify.verify_lab`).
        """
        found = get_step(step)
        if not found.writes:
            raise InputError("step", f"arrow {found.number} ({found.title}) writes nothing: it is proved with "
                                     "mutual_tls_handshake(lab.root) or verify_lab(lab.root)")
        roles = self.roles
        if role is None:
            plan = list(Roles(intermediate=roles.intermediate).plan([found]))
            if not plan:
                raise InputError("step", f"step {found.number} ({found.title}) is for an intermediate CA, and this "
                                         "lab has none (build --intermediate)")
        else:
            target = role if isinstance(role, Role) else self._client(role)
            plan = [D.bind(found, target, roles.issuer)]
        results = self._carry_out(plan, force=force)
        made = tuple(m for r in results for m in r.made)
        return replace(results[0], made=made, openssl=" && ".join(dict.fromkeys(r.openssl for r in results)))

    def _client(self, name: str) -> Role:
        found = self.roles.client(name)
        if found is None:
            raise InputError(name, "no such client in this lab; add it first: mqtt-pki-lab add-client DIR NAME")
        return found

    def build(self, *, force: bool = False, through: int = 9,
              progress: Callable[[int, int, str], None] | None = None) -> Iterator[StepResult]:
        """Run arrows 1 to ``through`` (default 9), for the diagram and every further client of the lab; with an
        intermediate CA (``BuildOptions(intermediate=True)`` or one on disk), steps 13-15 after arrow 2.

        Checks come first, before anything is written: the options, the folders, and an existing CA,
        which is refused (:class:`RefusedError`) unless ``force`` is true. A forced build replaces the CA
        and so signs every client again. Nothing is written unless every step succeeds.
        ``progress(done, total, title)`` is called after each step (slow keys: RSA-4096 in a chain).
        """
        roles = self.roles
        order = roles.build_steps
        last = max((i for i, s in enumerate(order) if s in BUILD_STEPS and s.number <= through), default=-1)
        # A role whose key is held by its device keeps its key and CSR: the lab only signs them (again).
        plan = [b for b in roles.plan(order[:last + 1])
                if not (b.step.kind in ("generate-key", "create-csr") and key_on_device(self.root, b.role))]
        return iter(self._carry_out(plan, force=force, progress=progress))

    def build_all(self, *, force: bool = False) -> list[StepResult]:
        """Build the whole diagram (arrows 1-9) at once; return what each step made."""
        return list(self.build(force=force))

    def client_names(self) -> dict[str, Role]:
        """The MQTT username (Common Name) of every client of the lab, from its certificate or CSR."""
        names: dict[str, Role] = {}
        for client in self.roles.clients:
            if client != D.FIRST_CLIENT and not self.path(client.file("crt")).is_file():
                continue  # an interrupted add-client: adding it again finishes it
            cn = client.name if client != D.FIRST_CLIENT else self.options.client_name
            for slot in ("crt", "csr"):
                path = self.path(client.file(slot))
                if path.is_file() and not path.is_symlink():
                    with contextlib.suppress(InputError):
                        cn = common_name(self._read(client.file(slot))) or cn
                    break
            names[cn] = client
        return names

    def add_clients(self, names: Iterable[str], *, progress: Callable[[int, int, str], None] | None = None
                    ) -> list[Role]:
        """Add further clients (arrows 6-9 for each, into ``clients/NAME/``); return their roles.

        Every name is checked first (valid, unique, not a client the lab has); then each client is made and
        written in turn under one lock, so memory stays flat and a failure keeps the clients made before
        it. ``progress(done, total, name)`` is called after each one.
        """
        wanted = list(names)
        if not wanted:
            raise InputError("NAME", "give at least one client name")
        taken = self.client_names()
        seen: set[str] = set()
        for name in wanted:
            check_client_name(name, "NAME")
            if name in taken or name in seen:
                raise RefusedError(name, "a client with this name (MQTT username) exists already; each device "
                                         "needs its own name")
            seen.add(name)
        roles = [D.client_role(n) for n in wanted]
        for role in roles:
            folder = self.root / role.folder
            if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
                raise InputError(folder, "is a symbolic link or a file; the lab never writes through links")
        issuer = self.roles.issuer  # the intermediate CA when the lab has one: the root's key may be offline
        first = [D.bind(s, roles[0], issuer) for s in CLIENT_STEPS]
        self._check_before_writing(first, force=False)
        self._read(issuer.file("key"))  # a wrong passphrase is found before anything is written
        with self._locked():
            for i, role in enumerate(roles):
                plan = [D.bind(s, role, issuer) for s in CLIENT_STEPS]
                self._check_before_writing(plan, force=False)
                work = _Work(self)
                for bound in plan:
                    ACTIONS[bound.step.kind](work, bound)
                self._write(work)
                if progress is not None:
                    progress(i + 1, len(roles), role.name)
        return roles

    def add_client(self, name: str) -> Role:
        """Add one further client called ``name`` (its Common Name and MQTT username): arrows 6-9."""
        return self.add_clients([name])[0]


def build(root: str | Path = "pki", options: BuildOptions | None = None, *, force: bool = False) -> list[StepResult]:
    """Build the whole diagram (arrows 1-9) in ``root``; return what each step made."""
    return Lab(root, options).build_all(force=force)
