"""Bad input never hurts: 144 kinds of it, each refused in one line, with nothing on disk changed.

Every row of :data:`BAD` runs the real command line (``python -m mqtt_pki_lab``) in a private folder that
holds a copy of a built lab (and, where a row needs it, a second lab, an encrypted lab or odd files), and
checks that the command

* exits 1 (a refusal) or 2 (unusable input), as the row says;
* prints exactly one line on stderr, ``mqtt-pki-lab CMD: WHERE: PROBLEM``, naming the file or option;
* shows no Python traceback;
* changes nothing: every file (path, bytes, mode), every folder (path, mode) and every link of the
  private folder is the same afterwards, so no other lab was written through a link and no temporary
  file or folder was left next to the lab.

The rows of :data:`API_NAMES` and :data:`WEAK_CSRS` do the same through the Python API (a NUL cannot be
passed in ``argv``; :func:`~mqtt_pki_lab.sign.sign_csr` has no command of its own).
134 CLI rows + 4 NUL rows + 6 CSR rows make 144 kinds (3 of them, permission cases, run without
root's power over file modes when the tests run as root);
:func:`test_the_docstring_counts_the_kinds` keeps that number honest.

Unreadable-by-permission cases cannot be made as plain root (root reads every file): as root they run the CLI
through util-linux's ``setpriv`` without the capabilities that bypass file modes.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import require, require_program, run_cli
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, rsa
from cryptography.x509.oid import NameOID

from mqtt_pki_lab.errors import InputError
from mqtt_pki_lab.keys import load_private_key
from mqtt_pki_lab.names import check_host_name
from mqtt_pki_lab.options import BuildOptions
from mqtt_pki_lab.pem import load_certificate
from mqtt_pki_lab.sign import sign_csr
from mqtt_pki_lab.steps import Lab

IS_ROOT = os.geteuid() == 0
#: As root, the permission rows run the CLI without root's power over file modes (setpriv, util-linux).
CAN_DROP_ROOTS_POWERS = not IS_ROOT or shutil.which("setpriv") is not None
AS_ROOT = ("running as root without util-linux's setpriv: root reads and writes every file whatever its mode, "
           "so this case cannot be made")


# --- the state of a folder: every file, folder and link, with its mode --------------------------------------

def tree(top: Path) -> dict[str, tuple]:
    """Every entry under ``top`` (and ``top`` itself): folders (mode), files (mode, SHA-256), links (target)."""
    def entry(path: Path) -> tuple:
        info = os.lstat(path)
        if stat.S_ISLNK(info.st_mode):
            return ("link", os.readlink(path))
        if stat.S_ISDIR(info.st_mode):
            return ("dir", stat.S_IMODE(info.st_mode))
        if stat.S_ISREG(info.st_mode):
            try:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
            except PermissionError:  # a row's unreadable file (when not root): its mode says enough
                digest = "unreadable"
            return ("file", stat.S_IMODE(info.st_mode), digest)
        return ("other", stat.S_IFMT(info.st_mode), stat.S_IMODE(info.st_mode))

    found = {".": entry(top)}
    for folder, dirs, files in os.walk(top):  # does not descend into linked folders
        for name in dirs + files:
            path = Path(folder, name)
            found[path.relative_to(top).as_posix()] = entry(path)
    return found


def assert_one_line_refusal(done: subprocess.CompletedProcess[str], command: str, code: int, names: str) -> str:
    """The command exited ``code`` with one stderr line ``mqtt-pki-lab COMMAND: ...`` naming ``names``."""
    everything = done.stdout + done.stderr
    assert "Traceback" not in everything, everything
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}: {done.stderr!r}"
    assert lines[0].startswith(f"mqtt-pki-lab {command}: "), lines[0]
    assert names in lines[0], (names, lines[0])
    return lines[0]


# --- what a row may set up ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Sources:
    """Labs built once per session, copied into each row's private folder as needed."""

    lab: Path
    encrypted: Path


Setup = Callable[[Path, Sources], None]


def other_lab(ws: Path, src: Sources) -> None:
    """A second, unrelated lab next to the first (with one further client), to be pointed at by links."""
    if not (ws / "other").exists():
        shutil.copytree(src.lab, ws / "other")
        Lab(ws / "other").add_client("o1")


def link_to_other(rel: str) -> Setup:
    """``lab/REL`` replaced by a link to the other lab's ``REL``."""
    def setup(ws: Path, src: Sources) -> None:
        other_lab(ws, src)
        target = ws / "lab" / rel
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
        target.parent.mkdir(parents=True, exist_ok=True)
        depth = len(Path(rel).parts)
        target.symlink_to(Path(*([".."] * depth), "other", rel))
    return setup


def write(rel: str, data: bytes | Callable[[Path], bytes], mode: int | None = None) -> Setup:
    """Write ``ws/REL`` (``data`` may be computed from the workspace)."""
    def setup(ws: Path, src: Sources) -> None:
        path = ws / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data(ws) if callable(data) else data)
        if mode is not None:
            path.chmod(mode)
    return setup


def copy(rel_from: str, rel_to: str) -> Setup:
    """Copy ``ws/REL_FROM`` over ``ws/REL_TO`` (e.g. a CSR where a certificate belongs)."""
    def setup(ws: Path, src: Sources) -> None:
        shutil.copyfile(ws / rel_from, ws / rel_to)
    return setup


def remove(rel: str) -> Setup:
    def setup(ws: Path, src: Sources) -> None:
        (ws / rel).unlink()
    return setup


def mkdir(rel: str, mode: int = 0o755) -> Setup:
    def setup(ws: Path, src: Sources) -> None:
        (ws / rel).mkdir(parents=True)
        (ws / rel).chmod(mode)
    return setup


def symlink(rel: str, target: str) -> Setup:
    def setup(ws: Path, src: Sources) -> None:
        (ws / rel).symlink_to(target)
    return setup


def fifo(rel: str) -> Setup:
    def setup(ws: Path, src: Sources) -> None:
        os.mkfifo(ws / rel)
    return setup


def encrypted_lab(ws: Path, src: Sources) -> None:
    shutil.copytree(src.encrypted, ws / "enc")
    (ws / "wrong-pass").write_text("not the passphrase\n")


def with_client(name: str) -> Setup:
    def setup(ws: Path, src: Sources) -> None:
        Lab(ws / "lab").add_client(name)
    return setup


def renamed_lab(ws: Path, src: Sources) -> None:
    """A lab whose first client (in client/) is called alice: its username is taken though no folder says so."""
    Lab(ws / "renamed", BuildOptions(client_name="alice")).build_all()


def der_of_ca(ws: Path) -> bytes:
    return load_certificate(ws / "lab" / "ca" / "ca.crt").public_bytes(serialization.Encoding.DER)


def public_key_pem(ws: Path) -> bytes:
    key = load_private_key(ws / "lab" / "broker" / "server.key")
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def truncated_cert(ws: Path) -> bytes:
    return (ws / "lab" / "broker" / "server.crt").read_bytes()[:300]


def all_of(*setups: Setup) -> Setup:
    def setup(ws: Path, src: Sources) -> None:
        for one in setups:
            one(ws, src)
    return setup


@dataclass(frozen=True)
class Bad:
    """One kind of bad input: the command line, the exit code, what its one stderr line must name."""

    id: str
    args: tuple[str, ...]
    code: int
    names: str
    setup: Setup | None = None
    needs_file_modes: bool = False
    """A permission case: as root it runs without root's power over file modes (see conftest.run_cli)."""
    env: tuple[tuple[str, str], ...] = ()


LONG = "a" * 65
LONG_HOST = "a" * 40 + "." + "b" * 29  # a valid DNS name of 70 characters: too long for a Common Name
FAKE_LINE = "::1%\n[PASS] fake line"
#: Client names the lab refuses, with why (every one must be refused by build and by add-client alike).
BAD_CLIENT_NAMES = {
    "newline-and-fake-line": FAKE_LINE,
    "slash": "sensor/1",
    "dot-dot-slash": "../ca",
    "space": "sensor 1",
    "single-quote": "sensor'1",
    "double-quote": 'sensor"1',
    "trailing-newline": "sensor-1\n",
    "tab": "sensor\t1",
    "leading-dot": ".sensor",
    "leading-dash": "-sensor",
    "longer-than-64": LONG,
    "empty": "",
}
NO_BROKER = (("PATH", "/nonexistent"),)  # had a broker been started, its absence would be the error

BAD: list[Bad] = [
    # -- build: the lab folder ---------------------------------------------------------------------------
    Bad("build-empty-dir", ("build", ""), 2, "DIR"),
    Bad("build-dir-is-a-file", ("build", "afile"), 2, "afile", write("afile", b"not a folder\n")),
    Bad("build-dir-is-a-link-to-a-lab", ("build", "link", "--force"), 2, "link", symlink("link", "lab")),
    Bad("build-parent-missing", ("build", "missing/pki"), 2, "missing"),
    Bad("build-parent-is-a-file", ("build", "afile/pki"), 2, "afile", write("afile", b"x\n")),
    Bad("build-parent-read-only", ("build", "ro/pki"), 2, "ro", mkdir("ro", 0o555), needs_file_modes=True),
    Bad("build-over-an-existing-ca", ("build", "lab"), 1, "lab/ca/ca.key"),
    Bad("build-force-broker-links-to-other-lab", ("build", "lab", "--force"), 2, "lab/broker",
        link_to_other("broker")),
    Bad("build-force-ca-links-to-other-lab", ("build", "lab", "--force"), 2, "lab/ca", link_to_other("ca")),
    Bad("build-force-client-links-to-other-lab", ("build", "lab", "--force"), 2, "lab/client",
        link_to_other("client")),
    Bad("build-force-client-crt-links-to-other-lab", ("build", "lab", "--force"), 2, "lab/client/client.crt",
        link_to_other("client/client.crt")),
    Bad("build-force-ca-key-links-to-other-lab", ("build", "lab", "--force"), 2, "lab/ca/ca.key",
        link_to_other("ca/ca.key")),
    Bad("build-ca-key-is-a-folder", ("build", "lab", "--force"), 2, "lab/ca/ca.key",
        all_of(remove("lab/ca/ca.key"), mkdir("lab/ca/ca.key"))),
    # -- build: names --------------------------------------------------------------------------------------
    *[Bad(f"build-client-name-{kind}", ("build", "new", f"--client-name={name}"), 2, "--client-name")
      for kind, name in BAD_CLIENT_NAMES.items()],
    Bad("build-server-name-newline", ("build", "new", "--server-name", "mqtt\n.example.com"), 2, "--server-name"),
    Bad("build-server-name-ipv6-zone", ("build", "new", "--server-name", "::1%x"), 2, "--server-name"),
    Bad("build-server-name-with-space-and-bang", ("build", "new", "--server-name", "bad name!"), 2,
        "--server-name"),
    Bad("build-server-name-config-injection", ("build", "new", "--server-name", "a.example\nallow_anonymous true"),
        2, "--server-name"),
    Bad("build-server-name-cn-over-64", ("build", "new", "--server-name", LONG_HOST), 2, "--server-name"),
    Bad("build-server-name-empty", ("build", "new", "--server-name", ""), 2, "--server-name"),
    Bad("build-server-name-label-starts-with-dash", ("build", "new", "--server-name=-mqtt.example.com"), 2,
        "--server-name"),
    Bad("build-server-name-ipv4-out-of-range", ("build", "new", "--server-name", "mqtt.home.arpa", "--server-name",
                                                    "192.168.1.300"), 2, "--server-name"),
    Bad("build-ca-name-over-64", ("build", "new", "--ca-name", LONG), 2, "--ca-name"),
    Bad("build-ca-name-newline", ("build", "new", "--ca-name", "Root\nCA"), 2, "--ca-name"),
    Bad("build-ca-name-empty", ("build", "new", "--ca-name", " "), 2, "--ca-name"),
    Bad("build-unknown-key-type", ("build", "new", "--key-type", "rsa-1024"), 2, "--key-type"),
    # -- build: lifetimes ----------------------------------------------------------------------------------
    Bad("build-days-0", ("build", "new", "--days", "0"), 2, "--days"),
    Bad("build-days-negative", ("build", "new", "--days", "-5"), 2, "--days"),
    Bad("build-days-800", ("build", "new", "--days", "800"), 2, "--days"),
    Bad("build-days-not-a-number", ("build", "new", "--days", "many"), 2, "--days"),
    Bad("build-ca-days-0", ("build", "new", "--ca-days", "0"), 2, "--ca-days"),
    Bad("build-ca-days-3000000", ("build", "new", "--ca-days", "3000000"), 2, "--ca-days"),
    Bad("build-days-outlive-ca", ("build", "new", "--days", "300", "--ca-days", "200"), 2, "--days"),
    # -- build: the passphrase file -------------------------------------------------------------------------
    Bad("build-passphrase-file-dev-zero", ("build", "new", "--passphrase-file", "/dev/zero"), 2, "/dev/zero"),
    Bad("build-passphrase-file-missing", ("build", "new", "--passphrase-file", "nope.txt"), 2, "nope.txt"),
    # -- add-client ----------------------------------------------------------------------------------------
    Bad("add-client-existing-name", ("add-client", "lab", "sensor-1"), 1, "sensor-1", with_client("sensor-1")),
    Bad("add-client-duplicate-in-list", ("add-client", "lab", "s1", "s2", "s1"), 1, "s1"),
    Bad("add-client-first-clients-cn", ("add-client", "lab", "client"), 1, "client"),
    Bad("add-client-first-clients-own-cn", ("add-client", "renamed", "alice"), 1, "alice", renamed_lab),
    Bad("add-client-existing-among-new", ("add-client", "lab", "s1", "sensor-1"), 1, "sensor-1",
        with_client("sensor-1")),
    *[Bad(f"add-client-name-{kind}", ("add-client", "lab", "--", name), 2, "NAME")
      for kind, name in BAD_CLIENT_NAMES.items()],
    Bad("add-client-no-ca", ("add-client", "fresh", "s1"), 2, "fresh/ca/ca.crt", mkdir("fresh")),
    Bad("add-client-no-lab", ("add-client", "nolab", "s1"), 2, "nolab"),
    Bad("add-client-lab-is-a-file", ("add-client", "afile", "s1"), 2, "afile", write("afile", b"x\n")),
    Bad("add-client-ca-crt-is-a-csr", ("add-client", "lab", "s1"), 2, "lab/ca/ca.crt",
        copy("lab/broker/server.csr", "lab/ca/ca.crt")),
    Bad("add-client-ca-key-is-a-certificate", ("add-client", "lab", "s1"), 2, "lab/ca/ca.key",
        copy("lab/ca/ca.crt", "lab/ca/ca.key")),
    Bad("add-client-encrypted-ca-key-no-passphrase", ("add-client", "enc", "s1"), 2, "enc/ca/ca.key", encrypted_lab),
    Bad("add-client-encrypted-ca-key-wrong-passphrase", ("add-client", "enc", "s1", "--passphrase-file",
                                                         "wrong-pass"), 2, "enc/ca/ca.key", encrypted_lab),
    Bad("add-client-clients-links-to-other-lab", ("add-client", "lab", "s1"), 2, "lab/clients",
        link_to_other("clients")),
    Bad("add-client-clients-name-links-to-other-lab", ("add-client", "lab", "o1"), 2, "lab/clients/o1",
        link_to_other("clients/o1")),
    Bad("add-client-days-800", ("add-client", "lab", "s1", "--days", "800"), 2, "--days"),
    Bad("add-client-unknown-key-type", ("add-client", "lab", "s1", "--key-type", "dsa"), 2, "--key-type"),
    # -- export ---------------------------------------------------------------------------------------------
    Bad("export-conf-bind-injection", ("export", "mosquitto-conf", "lab", "--bind", "0.0.0.0\nallow_anonymous true"),
        2, "--bind"),
    Bad("export-conf-bind-two-words", ("export", "mosquitto-conf", "lab", "--bind", "0.0.0.0 1883"), 2, "--bind"),
    Bad("export-conf-port-0", ("export", "mosquitto-conf", "lab", "--port", "0"), 2, "--port"),
    Bad("export-conf-port-70000", ("export", "mosquitto-conf", "lab", "--port", "70000"), 2, "--port"),
    Bad("export-conf-server-crt-missing", ("export", "mosquitto-conf", "lab"), 2, "lab/broker/server.crt",
        remove("lab/broker/server.crt")),
    Bad("export-conf-server-crt-is-a-csr", ("export", "mosquitto-conf", "lab"), 2, "server.crt",
        copy("lab/broker/server.csr", "lab/broker/server.crt")),
    Bad("export-conf-ca-crt-is-a-csr", ("export", "mosquitto-conf", "lab"), 2, "ca.crt",
        copy("lab/broker/server.csr", "lab/broker/ca.crt")),
    Bad("export-client-port-0", ("export", "client", "lab", "--port", "0"), 2, "--port"),
    Bad("export-client-server-crt-missing", ("export", "client", "lab"), 2, "lab/broker/server.crt",
        remove("lab/broker/server.crt")),
    Bad("export-client-server-crt-corrupt", ("export", "client", "lab"), 2, "lab/broker/server.crt",
        write("lab/broker/server.crt", truncated_cert)),
    Bad("export-client-server-crt-is-a-csr", ("export", "client", "lab"), 2, "lab/broker/server.crt",
        copy("lab/broker/server.csr", "lab/broker/server.crt")),
    Bad("export-client-client-crt-is-a-csr", ("export", "client", "lab"), 2, "client.crt",
        copy("lab/client/client.csr", "lab/client/client.crt")),
    Bad("export-client-client-key-missing", ("export", "client", "lab"), 2, "lab/client/client.key",
        remove("lab/client/client.key")),
    Bad("export-client-unknown-client", ("export", "client", "lab", "--client", "nosuch"), 2, "--client"),
    Bad("export-client-client-path", ("export", "client", "lab", "--client", "../ca"), 2, "--client"),
    Bad("export-client-host-with-space", ("export", "client", "lab", "--host", "a b"), 2, "--host"),
    # -- mqtt: the timeout is checked before any broker starts ----------------------------------------------
    *[Bad(f"mqtt-timeout-{value}", ("mqtt", "lab", "--broker", "mosquitto", f"--timeout={value}"), 2, "--timeout",
          env=NO_BROKER) for value in ("-1", "0", "nan", "inf", "1e308")],
    # -- inspect ----------------------------------------------------------------------------------------------
    Bad("inspect-dev-zero", ("inspect", "/dev/zero"), 2, "/dev/zero"),
    Bad("inspect-fifo", ("inspect", "pipe"), 2, "pipe", fifo("pipe")),
    Bad("inspect-missing", ("inspect", "nope.pem"), 2, "nope.pem"),
    Bad("inspect-folder", ("inspect", "lab/ca"), 2, "lab/ca"),
    Bad("inspect-der", ("inspect", "ca.der"), 2, "ca.der", write("ca.der", der_of_ca)),
    Bad("inspect-public-key", ("inspect", "pub.pem"), 2, "pub.pem", write("pub.pem", public_key_pem)),
    Bad("inspect-corrupt-pem", ("inspect", "cut.pem"), 2, "cut.pem", write("cut.pem", truncated_cert)),
    Bad("inspect-empty", ("inspect", "empty.pem"), 2, "empty.pem", write("empty.pem", b"")),
    Bad("inspect-not-pem", ("inspect", "notes.txt"), 2, "notes.txt", write("notes.txt", b"hello\n")),
    Bad("inspect-oversized", ("inspect", "big.pem"), 2, "big.pem", write("big.pem", b"A" * (2 * 1024 * 1024))),
    Bad("inspect-unreadable", ("inspect", "locked.pem"), 2, "locked.pem",
        write("locked.pem", b"-----BEGIN CERTIFICATE-----\n", 0o000), needs_file_modes=True),
    Bad("inspect-encrypted-key-wrong-passphrase", ("inspect", "enc/ca/ca.key", "--passphrase-file", "wrong-pass"), 2,
        "enc/ca/ca.key", encrypted_lab),
    # -- --passphrase-file ----------------------------------------------------------------------------------------
    Bad("passphrase-file-dev-zero", ("inspect", "lab/ca/ca.crt", "--passphrase-file", "/dev/zero"), 2, "/dev/zero"),
    Bad("passphrase-file-empty", ("inspect", "lab/ca/ca.crt", "--passphrase-file", "pass"), 2, "pass",
        write("pass", b"")),
    Bad("passphrase-file-blank-first-line", ("inspect", "lab/ca/ca.crt", "--passphrase-file", "pass"), 2, "pass",
        write("pass", b"\n\nsecret\n")),
    Bad("passphrase-file-missing", ("inspect", "lab/ca/ca.crt", "--passphrase-file", "pass"), 2, "pass"),
    Bad("passphrase-file-folder", ("inspect", "lab/ca/ca.crt", "--passphrase-file", "lab/ca"), 2, "lab/ca"),
    Bad("passphrase-file-empty-name", ("inspect", "lab/ca/ca.crt", "--passphrase-file", ""), 2, "--passphrase-file"),
    Bad("passphrase-file-oversized", ("inspect", "lab/ca/ca.crt", "--passphrase-file", "pass"), 2, "pass",
        write("pass", b"x" * 5000)),
    # -- status, verify ---------------------------------------------------------------------------------------
    Bad("status-missing-folder", ("status", "nolab"), 2, "nolab"),
    Bad("status-on-a-file", ("status", "afile"), 2, "afile", write("afile", b"x\n")),
    Bad("status-empty-name", ("status", ""), 2, "DIR"),
    Bad("status-on-a-link", ("status", "link"), 2, "link", symlink("link", "lab")),
    Bad("verify-missing-folder", ("verify", "nolab"), 2, "nolab"),
    Bad("verify-on-a-file", ("verify", "afile"), 2, "afile", write("afile", b"x\n")),
    # -- break -------------------------------------------------------------------------------------------------
    Bad("break-source-ca-links-to-other-lab", ("break", "lab", "client-expired", "broken"), 2, "lab/ca",
        link_to_other("ca")),
    Bad("break-source-key-links-to-other-lab", ("break", "lab", "client-expired", "broken"), 2,
        "lab/client/client.key", link_to_other("client/client.key")),
    Bad("break-parent-is-a-file", ("break", "lab", "client-expired", "afile/broken"), 2, "afile",
        write("afile", b"x\n")),
    Bad("break-parent-missing", ("break", "lab", "client-expired", "missing/broken"), 2, "missing"),
    Bad("break-parent-read-only", ("break", "lab", "client-expired", "ro/broken"), 2, "ro", mkdir("ro", 0o555),
        needs_file_modes=True),
    Bad("break-out-exists", ("break", "lab", "client-expired", "lab"), 1, "lab"),
    Bad("break-out-is-a-link", ("break", "lab", "client-expired", "link"), 2, "link", symlink("link", "elsewhere")),
    Bad("break-out-inside-source", ("break", "lab", "client-expired", "lab/broken"), 2, "lab/broken"),
    Bad("break-source-incomplete", ("break", "lab", "client-expired", "broken"), 2, "lab",
        remove("lab/client/client.key")),
    Bad("break-source-missing", ("break", "nolab", "client-expired", "broken"), 2, "nolab"),
    Bad("break-unknown-scenario", ("break", "lab", "no-such-way", "broken"), 2, "SCENARIO"),
    Bad("break-no-arguments", ("break",), 2, "break"),
    Bad("break-unknown-client", ("break", "lab", "client-expired", "broken", "--client", "nosuch"), 2, "--client"),
    Bad("break-client-for-a-ca-scenario", ("break", "lab", "ca-regenerated", "broken", "--client", "client"), 2,
        "--client"),
]


@pytest.fixture(scope="module")
def sources(built_lab: Path, lab_factory: Callable[..., Path]) -> Sources:
    return Sources(built_lab, lab_factory(passphrase=b"the passphrase"))


@pytest.mark.parametrize("bad", BAD, ids=[b.id for b in BAD])
def test_bad_input_is_refused_in_one_line_and_changes_nothing(bad: Bad, sources: Sources, tmp_path: Path) -> None:
    if bad.needs_file_modes:
        require(CAN_DROP_ROOTS_POWERS, AS_ROOT)
    ws = tmp_path / "ws"
    ws.mkdir()
    shutil.copytree(sources.lab, ws / "lab")
    if bad.setup is not None:
        bad.setup(ws, sources)
    before = tree(ws)
    env = {**os.environ, **dict(bad.env)} if bad.env else None
    try:
        done = run_cli(*bad.args, cwd=ws, env=env, timeout=60, as_ordinary_user=bad.needs_file_modes)
    finally:
        after = tree(ws)
        for path in ws.rglob("*"):  # let pytest clean up whatever the row made read-only
            if path.is_dir() and not path.is_symlink():
                path.chmod(0o755)
    line = assert_one_line_refusal(done, bad.args[0], bad.code, bad.names)
    assert after == before, f"{bad.id} changed the disk: {sorted(set(after.items()) ^ set(before.items()))}"
    assert not any(row.startswith("[PASS]") for row in (done.stdout + done.stderr).splitlines()), line


# --- names through the API (a NUL byte cannot travel in argv) --------------------------------------------------

API_NAMES = {
    "client-name": (lambda: BuildOptions(client_name="a\x00b").check(), "--client-name"),
    "server-name": (lambda: BuildOptions(server_names=("mqtt\x00.example.com",)).check(), "--server-name"),
    "ca-name": (lambda: BuildOptions(ca_name="Root\x00CA").check(), "--ca-name"),
    "add-client": (None, "NAME"),
}


@pytest.mark.parametrize("which", list(API_NAMES))
def test_a_nul_in_a_name_is_refused_by_the_api(which: str, lab_copy: Path) -> None:
    call, where = API_NAMES[which]
    before = tree(lab_copy)
    with pytest.raises(InputError) as caught:
        if call is None:
            Lab(lab_copy).add_client("sensor\x00-1")
        else:
            call()
    assert caught.value.where == where
    assert "\x00" not in str(caught.value) and "\n" not in str(caught.value)
    assert tree(lab_copy) == before


@pytest.mark.parametrize(("name", "why"), [
    ("192.168.1.300", "each of the four numbers must be 0-255"),
    ("256.1.1.1", "each of the four numbers must be 0-255"),
    ("192.168.001.050", "without leading zeros"),
    ("192.168.1", "four numbers 0-255 separated by dots"),
    ("mqtt.home.123", "its last label '123' is all digits"),
])
def test_a_name_with_an_all_numeric_last_label_is_refused(name: str, why: str) -> None:
    """RFC 1123 §2.1 / RFC 3696 §2: a top-level label is never all digits, so such a name is a mistyped
    address, refused in one line, and never written into a certificate as DNS:NAME."""
    with pytest.raises(InputError) as caught:
        BuildOptions(server_names=("mqtt.home.arpa", name)).check()
    assert caught.value.where == "--server-name"
    assert why in caught.value.problem and "\n" not in str(caught.value)
    assert check_host_name("mqtt.home.arpa") == "mqtt.home.arpa"   # digits elsewhere stay allowed:
    assert check_host_name("mqtt2.3com.example") == "mqtt2.3com.example"
    assert check_host_name("192.168.1.255") == "192.168.1.255"


# --- the CA refuses weak, unusual and tampered CSRs (sign_csr) ------------------------------------------------------

def _csr_for(key) -> x509.CertificateSigningRequest:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sensor-1")])
    algorithm = None if isinstance(key, ed448.Ed448PrivateKey) else hashes.SHA256()
    return x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, algorithm)


def _rsa_512() -> x509.CertificateSigningRequest:
    """cryptography will not generate an RSA key under 1024 bits; openssl will, and cryptography loads it."""
    openssl = require_program("openssl")
    pem = subprocess.run([openssl, "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:512"],
                         capture_output=True, check=True, timeout=30).stdout
    return _csr_for(serialization.load_pem_private_key(pem, None))


def _tampered() -> x509.CertificateSigningRequest:
    der = _csr_for(ec.generate_private_key(ec.SECP256R1())).public_bytes(serialization.Encoding.DER)
    assert der.count(b"sensor-1") == 1
    return x509.load_der_x509_csr(der.replace(b"sensor-1", b"sensor-9"))


WEAK_CSRS: dict[str, tuple[Callable[[], x509.CertificateSigningRequest], str]] = {
    "rsa-1024": (lambda: _csr_for(rsa.generate_private_key(65537, 1024)), "RSA 1024"),
    "rsa-512": (_rsa_512, "RSA 512"),
    "dsa-2048": (lambda: _csr_for(dsa.generate_private_key(2048)), "DSA"),
    "secp256k1": (lambda: _csr_for(ec.generate_private_key(ec.SECP256K1())), "secp256k1"),
    "ed448": (lambda: _csr_for(ed448.Ed448PrivateKey.generate()), "Ed448"),
    "tampered": (_tampered, "signature does not verify"),
}


@pytest.mark.parametrize("kind", ["client", "broker"])
@pytest.mark.parametrize("which", list(WEAK_CSRS))
def test_sign_csr_refuses_weak_unusual_and_tampered_csrs(which: str, kind: str, built_lab: Path) -> None:
    make, reason = WEAK_CSRS[which]
    csr = make()
    ca_cert = load_certificate(built_lab / "ca" / "ca.crt")
    ca_key = load_private_key(built_lab / "ca" / "ca.key")
    where = f"requests/{which}.csr"
    with pytest.raises(InputError) as caught:
        sign_csr(csr, ca_cert, ca_key, kind, csr_path=where)
    assert caught.value.where == where
    assert reason in caught.value.problem, caught.value.problem
    assert "\n" not in str(caught.value)


# --- what must keep working: existing folders keep their mode, usual usernames are accepted ---------------------------

@pytest.mark.parametrize("mode", [0o700, 0o1777, 0o555], ids=["0700", "1777", "0555"])
def test_build_into_an_existing_folder_keeps_its_mode(mode: int, tmp_path: Path) -> None:
    root = tmp_path / "pki"
    root.mkdir()
    root.chmod(mode)
    try:
        done = run_cli("build", "pki", cwd=tmp_path)
        writable = IS_ROOT or mode & 0o200
        if writable:
            assert done.returncode == 0, done.stderr
            assert "Traceback" not in done.stdout + done.stderr
            assert stat.S_IMODE((root / "ca").stat().st_mode) == 0o700
            for key in ("ca/ca.key", "broker/server.key", "client/client.key"):
                assert stat.S_IMODE((root / key).stat().st_mode) == 0o600, key
            assert run_cli("verify", "pki", cwd=tmp_path).returncode == 0
        else:  # 0555 for an ordinary user: refused, and still nothing written
            assert_one_line_refusal(done, "build", 2, "pki")
            assert list(root.iterdir()) == []
        assert stat.S_IMODE(root.stat().st_mode) == mode
        assert sorted(p.name for p in tmp_path.iterdir()) == ["pki"]
    finally:
        root.chmod(0o755)


@pytest.mark.parametrize("name", ["sensor_1", "alice@example.com"])
def test_usual_mqtt_usernames_are_accepted(name: str, tmp_path: Path, lab_copy: Path) -> None:
    built = run_cli("build", "new", "--client-name", name, cwd=tmp_path)
    assert built.returncode == 0, built.stderr
    cert = load_certificate(tmp_path / "new" / "client" / "client.crt")
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == name
    added = run_cli("add-client", str(lab_copy), name)
    assert added.returncode == 0, added.stderr
    assert (lab_copy / "clients" / name / "client.crt").is_file()
    assert run_cli("verify", str(lab_copy)).returncode == 0


def test_the_docstring_counts_the_kinds() -> None:
    claimed = re.search(r"make (\d+) kinds", __doc__ or "")
    assert claimed is not None
    counted = (len(BAD), len(API_NAMES), len(WEAK_CSRS))
    assert f"{counted[0]} CLI rows + {counted[1]} NUL rows + {counted[2]} CSR rows" in " ".join((__doc__ or "").split())
    assert int(claimed.group(1)) == sum(counted)
