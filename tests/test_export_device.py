"""Exports a device loads: the PKCS#12 opens in OpenSSL 3 (without -legacy) and in Python's cryptography, the C
header compiles as C and as C++ and its strings are the lab's files; bad input is refused in one line and
nothing is written anywhere.

The compilers and openssl run for real: without them a test skips locally and fails in CI (conftest.require).
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import require, require_program, run_cli
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from test_safety import (
    AS_ROOT,
    CAN_DROP_ROOTS_POWERS,
    Bad,
    Sources,
    assert_one_line_refusal,
    copy,
    mkdir,
    remove,
    symlink,
    tree,
    write,
)

from mqtt_pki_lab import diagram as L
from mqtt_pki_lab.errors import InputError, RefusedError
from mqtt_pki_lab.export_device import (
    KDF_ROUNDS,
    c_header_text,
    c_identifier,
    ca_chain,
    device_pkcs12_twin,
    pkcs12_bytes,
    save_c_header,
    save_pkcs12,
)
from mqtt_pki_lab.files import mode_of
from mqtt_pki_lab.keys import load_private_key, same_public_key
from mqtt_pki_lab.pem import load_certificate
from mqtt_pki_lab.steps import Lab

PASSPHRASE = b"correct horse battery staple"
KEY_PASSPHRASE = b"the key passphrase"
#: Client names whose C identifiers a naive mapping would merge (a.b, a-b, a_b and A-b all become a_b).
TRICKY = ("a.b", "a-b", "a_b", "A-b")


@pytest.fixture(scope="module")
def lab(built_lab: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built lab with further clients: sensor-1 and names whose identifiers could collide."""
    root = tmp_path_factory.mktemp("export-device") / "pki"
    shutil.copytree(built_lab, root)
    Lab(root).add_clients(["sensor-1", *TRICKY])
    return root


@pytest.fixture(scope="module")
def encrypted(lab_factory: Callable[..., Path]) -> Path:
    """A lab built with --encrypt-all-keys: client.key needs its passphrase."""
    return lab_factory(passphrase=KEY_PASSPHRASE, encrypt_all=True)


def client_files(root: Path, folder: str) -> tuple[Path, Path, Path]:
    """client.key, client.crt and the lab's ca/ca.crt for the client in ``folder``."""
    return root / folder / "client.key", root / folder / "client.crt", L.CA_CERT.path(root)


# --- PKCS#12 ----------------------------------------------------------------------------------------------------

def test_p12_loads_in_python_with_the_key_the_certificate_and_the_ca(lab: Path) -> None:
    key_path, cert_path, ca_path = client_files(lab, "clients/sensor-1")
    data = pkcs12_bytes(lab, "sensor-1", PASSPHRASE)
    key, cert, cas = pkcs12.load_key_and_certificates(data, PASSPHRASE)
    assert cert == load_certificate(cert_path)
    assert same_public_key(key, cert.public_key()), "the key in the PKCS#12 matches its certificate"
    assert same_public_key(key, load_private_key(key_path))
    assert cas == [load_certificate(ca_path)] == ca_chain(lab, cert)
    assert pkcs12.load_pkcs12(data, PASSPHRASE).cert.friendly_name == b"sensor-1"
    with pytest.raises(ValueError):
        pkcs12.load_key_and_certificates(data, b"not the passphrase")


@pytest.mark.parametrize(("encryption", "expected"), [
    ("aes-256", ("MAC: sha256", f"PBES2, PBKDF2, AES-256-CBC, Iteration {KDF_ROUNDS}, PRF hmacWithSHA256")),
    ("3des", ("MAC: sha1", f"pbeWithSHA1And3-KeyTripleDES-CBC, Iteration {KDF_ROUNDS}")),
])
def test_openssl_opens_the_p12_without_legacy(encryption: str, expected: tuple[str, str], lab: Path,
                                              tmp_path: Path) -> None:
    openssl = require_program("openssl", "apt-get install openssl")
    key_path, cert_path, ca_path = client_files(lab, "clients/sensor-1")
    out, passfile = tmp_path / "sensor-1.p12", tmp_path / "pass"
    passfile.write_bytes(PASSPHRASE + b"\n")
    save_pkcs12(lab, "sensor-1", out, PASSPHRASE, encryption=encryption)
    assert mode_of(out) == 0o600
    info = subprocess.run([openssl, "pkcs12", "-info", "-noout", "-in", str(out), "-passin", f"file:{passfile}"],
                          capture_output=True, text=True, timeout=30)
    assert info.returncode == 0, info.stderr
    for line in expected:
        assert line in info.stdout + info.stderr
    assert "Shrouded Keybag" in info.stdout + info.stderr
    dump = subprocess.run([openssl, "pkcs12", "-in", str(out), "-passin", f"file:{passfile}", "-nodes"],
                          capture_output=True, text=True, timeout=30)
    assert dump.returncode == 0, dump.stderr
    pems = re.findall(r"-----BEGIN ([A-Z ]+)-----\n.*?-----END \1-----\n", dump.stdout, re.DOTALL)
    blocks = re.findall(r"(-----BEGIN [A-Z ]+-----\n.*?-----END [A-Z ]+-----\n)", dump.stdout, re.DOTALL)
    assert sorted(pems) == ["CERTIFICATE", "CERTIFICATE", "PRIVATE KEY"]
    certs = [b.encode() for b in blocks if "CERTIFICATE" in b]
    assert cert_path.read_bytes() in certs and ca_path.read_bytes() in certs
    key = serialization.load_pem_private_key(next(b for b in blocks if "PRIVATE KEY" in b).encode(), None)
    assert same_public_key(key, load_private_key(key_path))


def test_cli_writes_the_p12_0600_and_replaces_it_only_with_force(lab: Path, tmp_path: Path) -> None:
    out, passfile = tmp_path / "phone.p12", tmp_path / "pass"
    passfile.write_bytes(PASSPHRASE + b"\n")
    args = ("export", "p12", str(lab), "sensor-1", "-o", str(out), "--passphrase-file", str(passfile))
    done = run_cli(*args)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "" and str(out) in done.stdout and "openssl pkcs12 -info" in done.stdout
    assert mode_of(out) == 0o600
    first = out.read_bytes()
    assert pkcs12.load_key_and_certificates(first, PASSPHRASE)[0] is not None
    again = run_cli(*args)
    assert_one_line_refusal(again, "export", 1, "--force")
    assert out.read_bytes() == first
    forced = run_cli(*args, "--force")
    assert forced.returncode == 0, forced.stderr
    assert out.read_bytes() != first, "a new salt and IV each time"
    assert mode_of(out) == 0o600 and pkcs12.load_key_and_certificates(out.read_bytes(), PASSPHRASE)[1] is not None


def test_an_encrypted_client_key_opens_with_its_passphrase(encrypted: Path, tmp_path: Path) -> None:
    data = pkcs12_bytes(encrypted, "client", PASSPHRASE, key_password=KEY_PASSPHRASE)
    key, cert, _ = pkcs12.load_key_and_certificates(data, PASSPHRASE)
    assert same_public_key(key, cert.public_key())
    with pytest.raises(InputError, match="--key-passphrase-file"):
        pkcs12_bytes(encrypted, "client", PASSPHRASE)
    text = c_header_text(encrypted, "client", include_key=True, key_password=KEY_PASSPHRASE)
    assert "-----BEGIN PRIVATE KEY-----" in text and "ENCRYPTED" not in text


def test_a_key_born_on_the_device_gets_the_openssl_twin_that_works_there(lab: Path, tmp_path: Path) -> None:
    """request on the device, sign at the CA, install on the device: the lab never has the key, so the
    PKCS#12 is refused here with the command to run there, and that command makes one OpenSSL 3 opens."""
    openssl = require_program("openssl", "apt-get install openssl")
    root, device = tmp_path / "pki", tmp_path / "device"
    shutil.copytree(lab, root)
    for args in (("request", str(device), "dev-1"), ("sign", str(root), str(device / "client.csr")),
                 ("install", str(device), str(root / "clients/dev-1/client.crt"), str(root / "clients/dev-1/ca.crt"))):
        done = run_cli(*args)
        assert done.returncode == 0, done.stderr
    assert not (root / "clients/dev-1/client.key").exists()
    with pytest.raises(InputError, match="lives on the device") as refused:
        pkcs12_bytes(root, "dev-1", PASSPHRASE)
    twin = device_pkcs12_twin("dev-1")
    assert twin in str(refused.value)
    header = c_header_text(root, "dev-1")
    assert "mqtt_dev_1_client_cert" in header and "PRIVATE KEY" not in header
    passfile = tmp_path / "pass"
    passfile.write_bytes(PASSPHRASE + b"\n")
    made = subprocess.run([*shlex.split(twin), "-passout", f"file:{passfile}"], cwd=device, capture_output=True,
                          text=True, timeout=30)
    assert made.returncode == 0, made.stderr
    key, cert, cas = pkcs12.load_key_and_certificates((device / "dev-1.p12").read_bytes(), PASSPHRASE)
    assert same_public_key(key, cert.public_key()) and cas == [load_certificate(L.CA_CERT.path(root))]
    info = subprocess.run([openssl, "pkcs12", "-info", "-noout", "-in", str(device / "dev-1.p12"), "-passin",
                           f"file:{passfile}"], capture_output=True, text=True, timeout=30)
    assert info.returncode == 0 and "AES-256-CBC" in info.stdout + info.stderr


def test_api_refuses_an_empty_passphrase_and_an_output_inside_the_lab(lab: Path) -> None:
    for empty in (b"", b"  \t", ""):
        with pytest.raises(InputError, match="passphrase is empty"):
            pkcs12_bytes(lab, "sensor-1", empty)
    with pytest.raises(RefusedError, match="inside the lab folder"):
        save_pkcs12(lab, "sensor-1", lab / "clients" / "sensor-1" / "sensor-1.p12", PASSPHRASE)
    with pytest.raises(RefusedError, match="inside the lab folder"):
        save_c_header(lab, lab / "mqtt_ca.h")
    assert not list(lab.rglob("*.p12")) and not list(lab.rglob("*.h"))


# --- the C header -------------------------------------------------------------------------------------------------

def test_the_header_holds_no_key_unless_asked(lab: Path) -> None:
    for text in (c_header_text(lab), c_header_text(lab, "sensor-1")):
        assert "PRIVATE KEY" not in text and "BEGIN CERTIFICATE" in text
        assert "WARNING" not in text
    with_key = c_header_text(lab, "sensor-1", include_key=True)
    assert "-----BEGIN PRIVATE KEY-----" in with_key and "WARNING: THIS FILE HOLDS A PRIVATE KEY" in with_key
    header = c_header_text(lab, "sensor-1")
    assert header.startswith("/* ") and "#ifndef MQTT_PKI_LAB_CLIENT_SENSOR_1_H" in header
    for path in (L.CA_CERT.path(lab), lab / "clients" / "sensor-1" / "client.crt"):
        assert load_certificate(path).fingerprint(hashes.SHA256()).hex(":").upper() in header
        assert str(path.resolve()) in header
    for call in ("setCACert(mqtt_sensor_1_ca_cert)", "setCertificate(mqtt_sensor_1_client_cert)",
                 ".broker.verification.certificate = mqtt_sensor_1_ca_cert",
                 ".credentials.authentication.certificate = mqtt_sensor_1_client_cert"):
        assert call in header


def test_identifiers_are_valid_distinct_and_readable() -> None:
    names = ["sensor-1", "1x", "client", *TRICKY, "a--b", "@x", "_x", "@@", "x-deadbeef", "X", "x",
             "a" * 64, "a-" * 31 + "ab"]
    ids = [c_identifier(n) for n in names]
    assert len(set(ids)) == len(names), dict(zip(names, ids, strict=True))
    for ident in ids:
        assert re.fullmatch(r"[a-z0-9_]+", ident) and "__" not in ident and not ident.startswith("_")
    assert c_identifier("sensor-1") == "sensor_1" and c_identifier("client") == "client"
    assert c_identifier("a.b").startswith("a_b_") and c_identifier("a.b") == c_identifier("a.b")


def _compile(compiler: str, args: list[str], cwd: Path) -> None:
    done = subprocess.run([compiler, *args], cwd=cwd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_headers_compile_as_c_and_cxx_and_hold_the_lab_files(lab: Path, tmp_path: Path) -> None:
    cc = require_program("cc", "apt-get install gcc libc6-dev")
    clients = ["sensor-1", *TRICKY]
    save_c_header(lab, tmp_path / "mqtt_ca.h")
    ids = {}
    for n, name in enumerate(clients):
        save_c_header(lab, tmp_path / f"client{n}.h", name, include_key=name == "sensor-1")
        ids[name] = f"mqtt_{c_identifier(name)}"
    assert mode_of(tmp_path / "mqtt_ca.h") == 0o644 and mode_of(tmp_path / "client1.h") == 0o644
    assert mode_of(tmp_path / "client0.h") == 0o600, "a header with a key is secret"
    includes = "".join(f'#include "client{n}.h"\n' for n in range(len(clients)))
    dumps = [("ca", "mqtt_ca_cert")] + [(f"{n}-ca", f"{ids[c]}_ca_cert") for n, c in enumerate(clients)] \
        + [(f"{n}-crt", f"{ids[c]}_client_cert") for n, c in enumerate(clients)] \
        + [("0-key", f"{ids['sensor-1']}_client_key")]
    body = "".join(f'    dump("{file}", {name}, sizeof {name} - 1);\n' for file, name in dumps)
    (tmp_path / "main.c").write_text(
        '#include <stdio.h>\n#include "mqtt_ca.h"\n' + includes + '#include "mqtt_ca.h"\n' + includes +
        "static void dump(const char *file, const char *text, size_t size) {\n"
        '    FILE *out = fopen(file, "wb");\n    fwrite(text, 1, size, out);\n    fclose(out);\n}\n'
        "int main(void) {\n" + body + "    return 0;\n}\n")
    strict = ["-Wall", "-Wextra", "-Werror"]
    _compile(cc, ["-std=c99", "-pedantic", *strict, "-fsyntax-only", "main.c"], tmp_path)
    _compile(cc, [*strict, "-o", "dump", "main.c"], tmp_path)
    run = subprocess.run(["./dump"], cwd=tmp_path, capture_output=True, timeout=30)
    assert run.returncode == 0
    ca = L.CA_CERT.path(lab).read_bytes()
    assert (tmp_path / "ca").read_bytes() == ca
    for n, name in enumerate(clients):
        folder = lab / "clients" / name
        assert (tmp_path / f"{n}-ca").read_bytes() == ca
        assert (tmp_path / f"{n}-crt").read_bytes() == (folder / "client.crt").read_bytes()
    key = serialization.load_pem_private_key((tmp_path / "0-key").read_bytes(), None)
    assert same_public_key(key, load_private_key(lab / "clients" / "sensor-1" / "client.key"))
    cxx = require_program("c++", "apt-get install g++ (Arduino sketches are C++)")
    (tmp_path / "main.cpp").write_text((tmp_path / "main.c").read_text())
    _compile(cxx, ["-std=c++11", "-pedantic", *strict, "-fsyntax-only", "main.cpp"], tmp_path)


def test_cli_prints_the_header_and_warns_for_a_key(lab: Path, tmp_path: Path) -> None:
    plain = run_cli("export", "c-header", str(lab))
    assert plain.returncode == 0 and plain.stderr == "" and "mqtt_ca_cert" in plain.stdout
    assert "PRIVATE KEY" not in plain.stdout
    keyed = run_cli("export", "c-header", str(lab), "sensor-1", "--include-key")  # never a key on the terminal
    assert keyed.returncode == 2 and keyed.stdout == "" and "add -o FILE" in keyed.stderr
    assert len(keyed.stderr.splitlines()) == 1
    out = tmp_path / "sensor.h"
    written = run_cli("export", "c-header", str(lab), "sensor-1", "-o", str(out), "--include-key")
    assert written.returncode == 0 and written.stderr.startswith("warning:") and mode_of(out) == 0o600
    assert "PRIVATE KEY" in written.stdout and "-----BEGIN" not in written.stdout


# --- bad input: one line, nothing written ----------------------------------------------------------------------------
# The rows use test_safety's Bad and setups: ``ws`` holds the lab (with sensor-1) as lab/, the encrypted lab as enc/,
# an empty out/ and the passphrase file pass.

P12 = ("export", "p12", "lab", "sensor-1", "-o", "out/sensor-1.p12", "--passphrase-file", "pass")
HEADER = ("export", "c-header", "lab", "sensor-1")
FOREIGN = "enc/client/client.crt"
SENSOR = "lab/clients/sensor-1"

BAD = [
    Bad("p12-passphrase-empty", (*P12[:-1], "empty"), 2, "the file is empty", write("empty", b"")),
    Bad("p12-passphrase-whitespace", (*P12[:-1], "blank"), 2, "the file is empty", write("blank", b"  \t\n \n")),
    Bad("p12-passphrase-first-line-blank", (*P12[:-1], "later"), 2, "first line is empty",
        write("later", b"   \nsecret\n")),
    Bad("p12-passphrase-missing", (*P12[:-1], "nope"), 2, "no such file"),
    Bad("p12-passphrase-unreadable", (*P12[:-1], "locked"), 2, "cannot read", write("locked", b"secret\n", 0o000),
        needs_file_modes=True),
    Bad("p12-unknown-client", ("export", "p12", "lab", "nobody", *P12[4:]), 2, "has no client 'nobody'"),
    Bad("p12-bad-client-name", ("export", "p12", "lab", "../ca", *P12[4:]), 2, "NAME"),
    Bad("p12-key-on-the-device", P12, 2, "openssl pkcs12 -export", remove(f"{SENSOR}/client.key")),
    Bad("p12-key-of-another-pair", P12, 2, "does not belong", copy(FOREIGN, f"{SENSOR}/client.crt")),
    Bad("p12-output-in-the-lab", (*P12[:5], f"{SENSOR}/sensor-1.p12", *P12[6:]), 1, "inside the lab"),
    Bad("p12-output-in-the-lab-root", (*P12[:5], "lab/sensor-1.p12", *P12[6:]), 1, "holds a private key"),
    Bad("p12-output-in-the-lab-by-a-link", (*P12[:5], "way-in/sensor-1.p12", *P12[6:]), 1, "inside the lab",
        symlink("way-in", "lab/clients")),
    Bad("p12-output-exists", P12, 1, "exists already", write("out/sensor-1.p12", b"my own file")),
    Bad("p12-output-is-a-folder", (*P12[:5], "out", *P12[6:]), 2, "is a folder"),
    Bad("p12-output-folder-missing", (*P12[:5], "missing/sensor-1.p12", *P12[6:]), 2, "no such folder"),
    Bad("p12-output-is-a-link", P12, 2, "symbolic link", symlink("out/sensor-1.p12", "../elsewhere.p12")),
    Bad("p12-encrypted-key-without-passphrase", ("export", "p12", "enc", "client", *P12[4:]), 2,
        "--key-passphrase-file"),
    Bad("p12-encrypted-key-wrong-passphrase", ("export", "p12", "enc", "client", *P12[4:], "--key-passphrase-file",
                                               "pass"), 2, "wrong passphrase"),
    Bad("p12-no-such-lab", ("export", "p12", "nolab", "sensor-1", *P12[4:]), 2, "no such lab folder"),
    Bad("header-lab-without-ca", ("export", "c-header", "empty-lab"), 2, "ca/ca.crt", mkdir("empty-lab")),
    Bad("header-client-of-a-lab-without-ca", HEADER, 2, "missing: the CA's certificate", remove("lab/ca/ca.crt")),
    Bad("header-unknown-client", ("export", "c-header", "lab", "nobody"), 2, "has no client 'nobody'"),
    Bad("header-foreign-certificate", HEADER, 2, "not signed by this lab's CA", copy(FOREIGN, f"{SENSOR}/client.crt")),
    Bad("header-key-to-the-terminal", (*HEADER, "--include-key"), 2, "never to the terminal"),
    Bad("header-key-on-the-device", (*HEADER, "--include-key", "-o", "out/sensor.h"), 2, "without --include-key",
        remove(f"{SENSOR}/client.key")),
    Bad("header-key-without-a-client", ("export", "c-header", "lab", "--include-key", "-o", "out/sensor.h"), 2,
        "needs a client NAME"),
    Bad("header-encrypted-key-without-passphrase", ("export", "c-header", "enc", "client", "--include-key", "-o",
                                                    "out/sensor.h"), 2,
        "--key-passphrase-file"),
    Bad("header-with-key-in-the-lab", (*HEADER, "--include-key", "-o", f"{SENSOR}/sensor.h"), 1,
        "holds a private key"),
    Bad("header-in-the-lab", (*HEADER, "-o", "lab/sensor.h"), 1, "the diagram's files only"),
    Bad("header-output-exists", (*HEADER, "-o", "out/sensor.h"), 1, "--force", write("out/sensor.h", b"mine")),
]
#: Usage mistakes argparse catches: the line names the sub-command (``mqtt-pki-lab export p12: ...``).
USAGE = [
    Bad("p12-without-output", P12[:4] + P12[6:], 2, "-o/--output"),
    Bad("p12-without-passphrase", P12[:6], 2, "--passphrase-file"),
    Bad("p12-unknown-encryption", (*P12, "--encryption", "rc2-40"), 2, "--encryption"),
]


@pytest.mark.parametrize("bad", BAD + USAGE, ids=[b.id for b in BAD + USAGE])
def test_bad_input_is_refused_in_one_line_and_nothing_is_written(bad: Bad, lab: Path, encrypted: Path,
                                                                 tmp_path: Path) -> None:
    if bad.needs_file_modes:
        require(CAN_DROP_ROOTS_POWERS, AS_ROOT)
    ws = tmp_path / "ws"
    ws.mkdir()
    shutil.copytree(lab, ws / "lab")
    shutil.copytree(encrypted, ws / "enc")
    (ws / "out").mkdir()
    (ws / "pass").write_bytes(PASSPHRASE + b"\n")
    if bad.setup is not None:
        bad.setup(ws, Sources(lab, encrypted))
    before = tree(ws)
    try:
        done = run_cli(*bad.args, cwd=ws, timeout=60, as_ordinary_user=bad.needs_file_modes)
    finally:
        after = tree(ws)
    command = " ".join(bad.args[:2]) if bad in USAGE else bad.args[0]
    assert_one_line_refusal(done, command, bad.code, bad.names)
    assert after == before, f"{bad.id} changed the disk: {sorted(set(after.items()) ^ set(before.items()))}"
    assert not done.stdout
