"""The spine of the lab: the ten arrows of the diagram as data, and the lab's state read from disk.

Every face of the package walks these same steps: ``mqtt-pki-lab build`` runs arrows 1 to 9, a notebook
section explains one, a widget button runs one, the graph draws them, the tests check them.

>>> lab = Lab("pki")                      # doctest: +SKIP
>>> lab.state().next_step().title         # doctest: +SKIP
'CA: generate ca.key'
>>> for result in lab.build():            # doctest: +SKIP
...     print(result)

The disk is the truth: :meth:`Lab.state` looks at which files exist, so a notebook restarted halfway
picks up where it was.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from . import layout as L
from .ca import create_ca_certificate
from .csr import create_csr, request_names
from .errors import InputError, RefusedError
from .files import CA_DIR_MODE, ensure_dir
from .keys import (
    DEFAULT_KEY_TYPE,
    generate_key,
    key_kind,
    key_type,
    load_private_key,
    public_key_fingerprint,
    save_key,
)
from .pem import load_certificate, load_csr, save_pem
from .profile import (
    DEFAULT_CA_DAYS,
    DEFAULT_CA_NAME,
    DEFAULT_CLIENT_NAME,
    DEFAULT_LEAF_DAYS,
    DEFAULT_SERVER_NAME,
    check_common_name,
    check_days,
)
from .sign import sign_csr

Status = Literal["done", "ready", "blocked"]


@dataclass(frozen=True)
class BuildOptions:
    """The choices a student makes while building the PKI. All are checked by :meth:`check`."""

    key_type: str = DEFAULT_KEY_TYPE
    server_names: tuple[str, ...] = (DEFAULT_SERVER_NAME,)
    client_name: str = DEFAULT_CLIENT_NAME
    ca_name: str = DEFAULT_CA_NAME
    days: int = DEFAULT_LEAF_DAYS
    ca_days: int = DEFAULT_CA_DAYS
    passphrase: bytes | None = field(default=None, repr=False)
    """Encrypts ``ca.key`` (and, with ``encrypt_all``, every key) when set."""
    encrypt_all: bool = False

    def check(self) -> BuildOptions:
        """Check every option before anything is written; raise :class:`InputError` on the first bad one."""
        key_type(self.key_type)
        if isinstance(self.server_names, str):
            raise InputError("--server-name", "give a list of names, not a single string")
        request_names("broker", list(self.server_names) or [""])
        request_names("client", [self.client_name])
        check_common_name(self.ca_name, "--ca-name")
        if not self.ca_name.strip():
            raise InputError("--ca-name", "the CA's name is empty")
        check_days(self.days, "--days")
        check_days(self.ca_days, "--ca-days", maximum=None)
        if self.days > self.ca_days:
            raise InputError("--days", f"leaf certificates ({self.days} days) cannot outlive the CA "
                                       f"({self.ca_days} days)")
        return self

    def key_passphrase(self, file: L.LabFile) -> bytes | None:
        """The passphrase protecting ``file`` (a key of the lab), or None when it is stored in clear."""
        if self.passphrase and (file is L.CA_KEY or self.encrypt_all):
            return self.passphrase
        return None


@dataclass(frozen=True)
class MadeFile:
    """A file a step wrote: where, secret or public, and a fingerprint that is safe to show."""

    file: L.LabFile
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

    def __str__(self) -> str:
        lines = [f"[{self.step.number:>2}] {self.step.title}"]
        lines += [f"     made {m}" for m in self.made]
        if self.detail is not None:
            lines += ["     " + line for line in str(self.detail).splitlines()]
        lines.append(f"     openssl twin: {self.openssl or self.step.openssl_command}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        from html import escape

        rows = "".join(
            f"<tr><td><code>{escape(m.file.relpath)}</code></td><td>{escape(m.file.label)}</td>"
            f"<td>{escape(m.summary)}</td><td><code>{escape(m.fingerprint[:23])}…</code></td></tr>"
            for m in self.made)
        detail = self.detail._repr_html_() if hasattr(self.detail, "_repr_html_") else (
            f"<pre>{escape(str(self.detail))}</pre>" if self.detail is not None else "")
        return (f"<div><b>Step {self.step.number}: {escape(self.step.title)}</b>"
                f"<table>{rows}</table>{detail}"
                f"<div>openssl twin: <code>{escape(self.openssl or self.step.openssl_command)}</code></div></div>")


@dataclass(frozen=True)
class Step:
    """One arrow of the diagram."""

    number: int
    id: str
    role: str
    """The role that performs the step: ``ca``, ``broker``, ``client``."""
    title: str
    reads: tuple[L.LabFile, ...]
    writes: tuple[L.LabFile, ...]
    why: str
    openssl: Callable[[BuildOptions], str] = field(repr=False)
    action: Callable[[_Run], StepResult] = field(repr=False)

    @property
    def openssl_command(self) -> str:
        """The equivalent ``openssl`` command(s) with the default options, run from the lab folder."""
        return self.openssl(BuildOptions())

    def run(self, root: str | Path, options: BuildOptions | None = None, *, force: bool = False) -> StepResult:
        """Carry out this arrow in the lab folder ``root``."""
        options = (options or BuildOptions()).check()
        return self._run(_Run(ensure_dir(Path(root)), options, force, _Files()))

    def _run(self, run: _Run) -> StepResult:
        """Run with options already checked and the lab folder already there."""
        for needed in self.reads:
            if not os.path.exists(run.path(needed)):
                raise InputError(run.path(needed), f"missing: step {self.number} ({self.title}) needs it; "
                                                   f"run {_maker(needed)} first")
        return replace(self.action(run), openssl=self.openssl(run.options))


# --- what each arrow does ------------------------------------------------------------------------------

class _Files:
    """Parsed keys, certificates and CSRs of one lab, re-read whenever the file on disk changed.

    The disk stays the truth (each use checks the file's inode, size and modification time), but a
    build does not parse again what it has just written.
    """

    __slots__ = ("_seen",)

    def __init__(self) -> None:
        self._seen: dict[Path, tuple[tuple[int, int, int], Any]] = {}

    @staticmethod
    def _stamp(path: Path) -> tuple[int, int, int]:
        st = os.stat(path)
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def get(self, path: Path, load: Callable[[Path], Any]) -> Any:
        try:
            stamp = self._stamp(path)
        except OSError:
            return load(path)  # let the loader explain what is wrong with it
        hit = self._seen.get(path)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        value = load(path)
        self._seen[path] = (stamp, value)
        return value

    def put(self, path: Path, value: Any) -> None:
        self._seen[path] = (self._stamp(path), value)


class _Run:
    """Everything one step needs: the lab folder, the checked options, force, and the parsed files."""

    __slots__ = ("_paths", "files", "force", "options", "root")

    def __init__(self, root: Path, options: BuildOptions, force: bool, files: _Files) -> None:
        self.root, self.options, self.force, self.files = root, options, force, files
        self._paths: dict[L.LabFile, Path] = {}

    def path(self, file: L.LabFile) -> Path:
        path = self._paths.get(file)
        if path is None:
            path = self._paths[file] = file.path(self.root)
        return path

    def folder(self, role: str) -> Path:
        folder = self.root / role
        if role != "ca" and folder.is_dir():
            return folder
        return ensure_dir(folder, CA_DIR_MODE if role == "ca" else 0o755)

    def refuse_replacing_ca(self, file: L.LabFile) -> None:
        _refuse_replacing_ca(self.root, file, self.force)

    def key(self, file: L.LabFile):
        return self.files.get(self.path(file), lambda path: load_private_key(path, self.options.passphrase))

    def cert(self, file: L.LabFile) -> x509.Certificate:
        return self.files.get(self.path(file), load_certificate)

    def csr(self, file: L.LabFile) -> x509.CertificateSigningRequest:
        return self.files.get(self.path(file), load_csr)

    def save(self, file: L.LabFile, obj: Any) -> Path:
        """Write a key, certificate or CSR to its place in the lab and remember it."""
        path = self.path(file)
        if file.secret:
            save_key(obj, path, self.options.key_passphrase(file), durable=file is L.CA_KEY)
        else:
            save_pem(obj, path)
        self.files.put(path, obj)
        return path


def _fingerprint_cert(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


def _refuse_replacing_ca(root: Path, file: L.LabFile, force: bool) -> None:
    if not force and file.path(root).exists():
        raise RefusedError(file.path(root), "a CA already exists here and is never overwritten: a new CA "
                                             "orphans every certificate the old one signed. Use --force "
                                             "(force=True) to replace it on purpose.")


def _cert_summary(cert: x509.Certificate) -> str:
    return f"certificate {cert.subject.rfc4514_string()}, valid until {cert.not_valid_after_utc:%Y-%m-%d}"


def _make_key(file: L.LabFile) -> Callable[[_Run], StepResult]:
    def action(run: _Run) -> StepResult:
        if file is L.CA_KEY:
            run.refuse_replacing_ca(file)
        run.folder(file.role)
        key = generate_key(run.options.key_type)
        path = run.save(file, key)
        encrypted = ", encrypted" if run.options.key_passphrase(file) else ""
        made = MadeFile(file, path, public_key_fingerprint(key), f"{key_kind(key)} private key{encrypted}")
        return StepResult(STEP_BY_FILE[file], (made,))
    return action


def _make_ca_cert(run: _Run) -> StepResult:
    run.refuse_replacing_ca(L.CA_CERT)
    cert = create_ca_certificate(run.key(L.CA_KEY), run.options.ca_name, run.options.ca_days)
    path = run.save(L.CA_CERT, cert)
    return StepResult(STEP_BY_FILE[L.CA_CERT], (MadeFile(L.CA_CERT, path, _fingerprint_cert(cert),
                                                         _cert_summary(cert)),))


def _make_csr(key_file: L.LabFile, csr_file: L.LabFile, role: str) -> Callable[[_Run], StepResult]:
    def action(run: _Run) -> StepResult:
        key = run.key(key_file)
        names = list(run.options.server_names) if role == "broker" else [run.options.client_name]
        csr = create_csr(key, role, names)
        path = run.save(csr_file, csr)
        summary = f"CSR {csr.subject.rfc4514_string()} asking for {', '.join(request_names(role, names))}"
        return StepResult(STEP_BY_FILE[csr_file], (MadeFile(csr_file, path, public_key_fingerprint(key), summary),))
    return action


def _sign(csr_file: L.LabFile, cert_file: L.LabFile, role: str) -> Callable[[_Run], StepResult]:
    def action(run: _Run) -> StepResult:
        cert = sign_csr(run.csr(csr_file), run.cert(L.CA_CERT), run.key(L.CA_KEY), role, run.options.days,
                        csr_path=run.path(csr_file), ca_key_path=run.path(L.CA_KEY))
        path = run.save(cert_file, cert)
        return StepResult(STEP_BY_FILE[cert_file], (MadeFile(cert_file, path, _fingerprint_cert(cert),
                                                             _cert_summary(cert)),))
    return action


def _hand_out(run: _Run) -> StepResult:
    cert = run.cert(L.CA_CERT)
    made = []
    for copy in (L.BROKER_CA, L.CLIENT_CA):
        run.folder(copy.role)
        path = run.save(copy, cert)
        made.append(MadeFile(copy, path, _fingerprint_cert(cert), f"copy of ca/ca.crt ({copy.about})"))
    return StepResult(STEP_BY_ID["hand-out"], tuple(made))


def _handshake(run: _Run) -> StepResult:
    from .handshake import mutual_tls_handshake

    options = run.options
    hostname = options.server_names[0] if options.server_names else DEFAULT_SERVER_NAME
    result = mutual_tls_handshake(run.root, hostname=hostname, password=options.passphrase)
    return StepResult(STEP_BY_ID["handshake"], (), detail=result, ok=result.ok)


# --- the openssl twins ------------------------------------------------------------------------------------

def _q(text: str) -> str:
    return shlex.quote(text)


def _subj(cn: str) -> str:
    return _q(f"/O=mqtt-pki-lab/CN={cn}")


def _san(names: list[str]) -> str:
    from .profile import is_ip

    return ",".join(f"IP:{n}" if is_ip(n) else f"DNS:{n}" for n in names)


def _genpkey(file: L.LabFile) -> Callable[[BuildOptions], str]:
    def twin(o: BuildOptions) -> str:
        cipher = " -aes256" if o.key_passphrase(file) else ""
        return f"(umask 077; openssl genpkey {key_type(o.key_type).openssl}{cipher} -out {file.relpath})"
    return twin


def _digest(o: BuildOptions) -> str:
    return "" if o.key_type == "ed25519" else " -sha256"


def _ca_twin(o: BuildOptions) -> str:
    return (f"openssl req -x509 -new -key ca/ca.key{_digest(o)} -days {o.ca_days} -subj {_subj(o.ca_name)}"
            " -addext 'basicConstraints=critical,CA:TRUE,pathlen:0'"
            " -addext 'keyUsage=critical,digitalSignature,keyCertSign,cRLSign' -out ca/ca.crt")


def _leaf_names(role: str, o: BuildOptions) -> list[str]:
    return request_names(role, list(o.server_names) if role == "broker" else [o.client_name])


def _csr_twin(key: L.LabFile, csr: L.LabFile, role: str) -> Callable[[BuildOptions], str]:
    def twin(o: BuildOptions) -> str:
        names = _leaf_names(role, o)
        return (f"openssl req -new -key {key.relpath}{_digest(o)} -subj {_subj(names[0])}"
                f" -addext {_q('subjectAltName=' + _san(names))} -out {csr.relpath}")
    return twin


def _sign_twin(csr: L.LabFile, cert: L.LabFile, role: str) -> Callable[[BuildOptions], str]:
    def twin(o: BuildOptions) -> str:
        names = _leaf_names(role, o)
        usage = "digitalSignature,keyEncipherment" if o.key_type.startswith("rsa") else "digitalSignature"
        eku = "serverAuth" if role == "broker" else "clientAuth"
        ext = (f"basicConstraints=critical,CA:FALSE\\nkeyUsage=critical,{usage}\\nextendedKeyUsage={eku}"
               f"\\nsubjectAltName={_san(names)}\\nsubjectKeyIdentifier=hash\\nauthorityKeyIdentifier=keyid")
        return (f"openssl x509 -req -in {csr.relpath} -CA ca/ca.crt -CAkey ca/ca.key -CAcreateserial"
                f" -days {o.days}{_digest(o)} -extfile <(printf {_q(ext)}) -out {cert.relpath}")
    return twin


def _hand_out_twin(o: BuildOptions) -> str:
    return "cp ca/ca.crt broker/ca.crt && cp ca/ca.crt client/ca.crt"


def _handshake_twin(o: BuildOptions) -> str:
    host = o.server_names[0] if o.server_names else DEFAULT_SERVER_NAME
    return ("openssl s_server -accept 8883 -naccept 1 -cert broker/server.crt -key broker/server.key"
            " -CAfile broker/ca.crt -Verify 1 -verify_return_error -x509_strict &  "
            "openssl s_client -connect localhost:8883 -cert client/client.crt -key client/client.key"
            f" -CAfile client/ca.crt -verify_return_error -x509_strict -verify_hostname {host} </dev/null")


STEPS: tuple[Step, ...] = (
    Step(1, "ca-key", "ca", "CA: generate ca.key", (), (L.CA_KEY,),
         "The CA's private key is the root of all trust in this system: whoever holds it can mint a "
         "certificate for any broker or client. It is made first, stays in ca/ (mode 0600), and is never "
         "copied anywhere else.",
         _genpkey(L.CA_KEY), _make_key(L.CA_KEY)),
    Step(2, "ca-cert", "ca", "CA: self-sign ca.crt", (L.CA_KEY,), (L.CA_CERT,),
         "ca.crt is the CA's public key wrapped in a certificate that the CA signed itself. It says "
         "'I am a CA and may sign certificates' (basicConstraints CA:TRUE, keyUsage keyCertSign, both "
         "critical). Everybody who should trust the CA gets a copy.",
         _ca_twin, _make_ca_cert),
    Step(3, "server-key", "broker", "broker: generate server.key", (), (L.SERVER_KEY,),
         "The broker's secret identity. It never leaves broker/: the CA only ever sees the public half, "
         "inside the CSR.",
         _genpkey(L.SERVER_KEY), _make_key(L.SERVER_KEY)),
    Step(4, "server-csr", "broker", "broker: create server.csr", (L.SERVER_KEY,), (L.SERVER_CSR,),
         "The certificate signing request carries the broker's public key and the names clients will use "
         "to reach it (its SAN), signed with server.key to prove the broker holds that key.",
         _csr_twin(L.SERVER_KEY, L.SERVER_CSR, "broker"), _make_csr(L.SERVER_KEY, L.SERVER_CSR, "broker")),
    Step(5, "server-cert", "ca", "CA: sign server.csr into server.crt", (L.SERVER_CSR, L.CA_CERT, L.CA_KEY),
         (L.SERVER_CERT,),
         "The CA checks the CSR's signature, then signs a certificate with ca.key: serverAuth only, the "
         "broker's names in the SAN. A client that trusts ca.crt will now accept this broker under those "
         "names.",
         _sign_twin(L.SERVER_CSR, L.SERVER_CERT, "broker"), _sign(L.SERVER_CSR, L.SERVER_CERT, "broker")),
    Step(6, "client-key", "client", "client: generate client.key", (), (L.CLIENT_KEY,),
         "The client's secret identity, for mutual TLS: the broker will ask the client to prove who it is, "
         "and only the holder of client.key can.",
         _genpkey(L.CLIENT_KEY), _make_key(L.CLIENT_KEY)),
    Step(7, "client-csr", "client", "client: create client.csr", (L.CLIENT_KEY,), (L.CLIENT_CSR,),
         "The client asks for a certificate in its name. That name (the Common Name) becomes its MQTT "
         "username when the broker uses the certificate as identity.",
         _csr_twin(L.CLIENT_KEY, L.CLIENT_CSR, "client"), _make_csr(L.CLIENT_KEY, L.CLIENT_CSR, "client")),
    Step(8, "client-cert", "ca", "CA: sign client.csr into client.crt", (L.CLIENT_CSR, L.CA_CERT, L.CA_KEY),
         (L.CLIENT_CERT,),
         "The CA signs the client's certificate: clientAuth only, so it cannot be used to impersonate the "
         "broker. A broker that trusts ca.crt will now let this client in.",
         _sign_twin(L.CLIENT_CSR, L.CLIENT_CERT, "client"), _sign(L.CLIENT_CSR, L.CLIENT_CERT, "client")),
    Step(9, "hand-out", "ca", "hand ca.crt to the broker and the client", (L.CA_CERT,), (L.BROKER_CA, L.CLIENT_CA),
         "Each side needs ca.crt to check the other: the broker verifies client certificates with it, the "
         "client verifies the broker's. Only the public ca.crt is copied; ca.key stays in ca/.",
         _hand_out_twin, _hand_out),
    Step(10, "handshake", "client", "prove it: mutual-TLS handshake",
         (L.BROKER_CA, L.SERVER_CERT, L.SERVER_KEY, L.CLIENT_CA, L.CLIENT_CERT, L.CLIENT_KEY), (),
         "A TLS handshake between the broker's three files and the client's three files: each side "
         "checks the other's certificate against its ca.crt, and proves it holds its private key.",
         _handshake_twin, _handshake),
)
STEP_BY_ID: dict[str, Step] = {s.id: s for s in STEPS}
STEP_BY_FILE: dict[L.LabFile, Step] = {f: s for s in STEPS for f in s.writes}
#: Arrows that build the files (1 to 9); step 10 checks them.
BUILD_STEPS: tuple[Step, ...] = STEPS[:9]


def _maker(file: L.LabFile) -> str:
    step = STEP_BY_FILE.get(file)
    return f"step {step.number} ({step.title})" if step else "the step that makes it"


def get_step(step: str | int | Step) -> Step:
    """Find a step by id (``"server-csr"``), number (4) or the step itself."""
    if isinstance(step, Step):
        return step
    if isinstance(step, int):
        if 1 <= step <= len(STEPS):
            return STEPS[step - 1]
    elif step in STEP_BY_ID:
        return STEP_BY_ID[step]
    raise InputError("step", f"unknown step {step!r}; steps are 1-{len(STEPS)} or {', '.join(STEP_BY_ID)}")


@dataclass(frozen=True)
class LabState:
    """Which files of the diagram exist in a lab folder, and so which steps are done or ready."""

    root: Path
    present: frozenset[L.LabFile]

    @classmethod
    def read(cls, root: str | Path) -> LabState:
        """Look at the disk: the state is whatever files are there now."""
        root = Path(root)
        return cls(root, frozenset(f for f in L.ALL_FILES if f.path(root).is_file()))

    def has(self, file: L.LabFile) -> bool:
        """True when ``file`` exists in the lab folder."""
        return file in self.present

    def status(self, step: str | int | Step) -> Status:
        """``done`` (its files exist), ``ready`` (its inputs exist) or ``blocked`` (inputs missing)."""
        step = get_step(step)
        if step.writes and all(self.has(f) for f in step.writes):
            return "done"
        return "ready" if all(self.has(f) for f in step.reads) else "blocked"

    def next_step(self) -> Step | None:
        """The first build step (1-9) not done yet, or None when every file exists."""
        return next((s for s in BUILD_STEPS if self.status(s) != "done"), None)

    @property
    def complete(self) -> bool:
        """True when arrows 1 to 9 are done: every file of the diagram exists."""
        return self.next_step() is None

    def __iter__(self) -> Iterator[tuple[Step, Status]]:
        return ((s, self.status(s)) for s in STEPS)

    def __str__(self) -> str:
        marks = {"done": "✔", "ready": "→", "blocked": "·"}
        return "\n".join(f"{marks[status]} {step.number:>2}. {step.title} [{status}]" for step, status in self)


class Lab:
    """A lab folder and the options to build it with: the object notebooks and scripts work with.

    >>> lab = Lab("pki", BuildOptions(server_names=("mqtt.example.com",)))  # doctest: +SKIP
    >>> lab.run("ca-key")                                                   # doctest: +SKIP
    """

    def __init__(self, root: str | Path = "pki", options: BuildOptions | None = None) -> None:
        self.root = Path(root)
        self.options = (options or BuildOptions()).check()
        self._files = _Files()

    def __repr__(self) -> str:
        return f"Lab({str(self.root)!r})"

    def path(self, file: L.LabFile) -> Path:
        """Where ``file`` lives in this lab."""
        return file.path(self.root)

    def state(self) -> LabState:
        """The lab's state, read from disk now."""
        return LabState.read(self.root)

    def with_options(self, **changes: Any) -> Lab:
        """A copy of this lab with some options changed (checked)."""
        return Lab(self.root, replace(self.options, **changes))

    def run(self, step: str | int | Step, *, force: bool = False) -> StepResult:
        """Carry out one arrow of the diagram (by id, number, or :class:`Step`)."""
        return get_step(step)._run(_Run(ensure_dir(self.root), self.options, force, self._files))

    def build(self, *, force: bool = False, through: int = 9) -> Iterator[StepResult]:
        """Run arrows 1 to ``through`` (default 9) in order, yielding each step's result as it is done.

        Checks come first, before anything is written: the options, the folder, and an existing CA,
        which is refused (:class:`RefusedError`) unless ``force`` is true.
        """
        ensure_dir(self.root)
        if not force:
            for file in (L.CA_KEY, L.CA_CERT):
                _refuse_replacing_ca(self.root, file, force=False)
        run = _Run(self.root, self.options, force, self._files)
        return (step._run(run) for step in STEPS[:through])

    def build_all(self, *, force: bool = False) -> list[StepResult]:
        """Build the whole diagram (arrows 1-9) at once; return what each step made."""
        return list(self.build(force=force))


def build(root: str | Path = "pki", options: BuildOptions | None = None, *, force: bool = False) -> list[StepResult]:
    """Build the whole diagram (arrows 1-9) in ``root``; return what each step made."""
    return Lab(root, options).build_all(force=force)
