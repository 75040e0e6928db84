"""Keys born on the device: ``request`` on the device, ``sign`` at the CA, ``install`` on the device.

The done-when of issue 12, item 2: a device made with ``request`` in a separate folder, signed with ``sign``,
installed with ``install``: the lab folder holds no copy of its key (searched by the key's fingerprint in every
file, inside PEM bundles too), and mosquitto (and the embedded broker) accept it. Then every refusal: one line
naming the file and what is wrong, and nothing changed in the lab or the device folder.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import require_program, run_cli
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from test_safety import assert_one_line_refusal, tree

from mqtt_pki_lab import diagram as D
from mqtt_pki_lab.device import install, request, sign_request
from mqtt_pki_lab.errors import InputError, RefusedError
from mqtt_pki_lab.files import mode_of
from mqtt_pki_lab.graph import diagram_view
from mqtt_pki_lab.keys import load_private_key, public_key_fingerprint
from mqtt_pki_lab.mqtt_proof import mqtt_check
from mqtt_pki_lab.pem import load_certificate
from mqtt_pki_lab.steps import Lab, LabState
from mqtt_pki_lab.verify import verify_lab

PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?-----END \1-----", re.S)


def make_device(lab: Path, folder: Path, name: str, role: str = "client") -> Path:
    """request + sign + install through the API; returns the device folder."""
    request(folder, name, role)
    signed = sign_request(lab, folder / D.FILE_NAMES[role]["csr"], role)
    install(folder, signed.certificate, signed.ca_certificate)
    return folder


def key_copies(lab: Path, key_path: Path) -> list[str]:
    """Every place in the lab folder that holds ``key_path``'s private key: a PEM block (of any file, bundles
    too) whose private key has the same public key, or the key's bytes (PEM or DER) anywhere."""
    key = load_private_key(key_path)
    wanted = public_key_fingerprint(key)
    raw = (key_path.read_bytes().strip(), key.private_bytes(serialization.Encoding.DER,
                                                            serialization.PrivateFormat.PKCS8,
                                                            serialization.NoEncryption()))
    found = []
    for path in sorted(p for p in lab.rglob("*") if p.is_file() and not p.is_symlink()):
        data = path.read_bytes()
        if any(r in data for r in raw):
            found.append(f"{path}: the key's bytes")
        for block in PEM_BLOCK.finditer(data):
            if b"PRIVATE KEY" not in block.group(1):
                continue
            other = serialization.load_pem_private_key(block.group(0), password=None)
            if public_key_fingerprint(other) == wanted:  # type: ignore[arg-type]
                found.append(f"{path}: a PEM block")
    return found


@pytest.fixture
def lab(lab_copy: Path) -> Path:
    return lab_copy


# --- the workflow --------------------------------------------------------------------------------------------

def test_request_makes_the_key_and_the_csr_and_nothing_else(tmp_path: Path) -> None:
    made = request(tmp_path / "dev", "sensor-1")
    assert sorted(p.name for p in (tmp_path / "dev").iterdir()) == ["client.csr", "client.key"]
    assert mode_of(made.key) == 0o600 and mode_of(made.csr) == 0o644 and mode_of(made.folder) == 0o700
    csr = x509.load_pem_x509_csr(made.csr.read_bytes())
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "sensor-1"
    assert public_key_fingerprint(load_private_key(made.key)) == made.fingerprint == public_key_fingerprint(
        csr.public_key())  # type: ignore[arg-type]
    assert "mqtt-pki-lab sign LAB client.csr" in str(made) and "mqtt-pki-lab install" in str(made)


def test_sign_writes_the_certificate_and_ca_crt_never_a_key(lab: Path, tmp_path: Path) -> None:
    request(tmp_path / "dev", "sensor-1")
    signed = sign_request(lab, tmp_path / "dev" / "client.csr")
    folder = lab / "clients" / "sensor-1"
    assert sorted(p.name for p in folder.iterdir()) == ["ca.crt", "client.crt", "client.csr", D.DEVICE_KEY_NOTE]
    assert signed.send_back == (folder / "client.crt", folder / "ca.crt")
    assert signed.dropped == ()
    cert = load_certificate(signed.certificate)
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.CLIENT_AUTH]
    text = str(signed)
    assert "Send back to the device" in text and "install DEVICE_DIR client.crt ca.crt" in text
    state = LabState.read(lab)
    role = D.client_role("sensor-1")
    assert role in state.on_device and state.done_arrows(role) == [6, 7, 8, 9] and state.complete
    assert "client.key is held by the device" in str(state)
    entry = next(r for r in state.to_json()["roles"] if r["name"] == "sensor-1")
    assert entry["key"] is None and entry["key_on_device"] is True and entry["complete"] is True


def test_done_when_the_lab_holds_no_copy_of_the_key_and_both_brokers_accept_the_device(lab: Path,
                                                                                      tmp_path: Path) -> None:
    device = tmp_path / "sensor-1"
    for args in (("request", str(device), "sensor-1"), ("sign", str(lab), str(device / "client.csr")),
                 ("install", str(device), str(lab / "clients/sensor-1/client.crt"),
                  str(lab / "clients/sensor-1/ca.crt"))):
        done = run_cli(*args)
        assert done.returncode == 0, done.stderr
    # The search can find a key: the lab's own client key is found in the lab, inside a bundle too.
    bundle = (lab / "client/client.crt").read_bytes() + (lab / "client/client.key").read_bytes()
    (lab / "bundle.pem").write_bytes(bundle)
    assert len(key_copies(lab, lab / "client/client.key")) == 4  # client.key (bytes, block), bundle (bytes, block)
    (lab / "bundle.pem").unlink()
    assert key_copies(lab, device / "client.key") == []
    assert verify_lab(lab, devices=[device]).ok
    require_program("mosquitto", "apt-get install mosquitto")
    for broker in ("mosquitto", "embedded"):
        report = mqtt_check(lab, broker, devices=[device])
        assert report.ok, str(report)
        assert any(o.passed and o.uses.startswith(str(device)) for o in report.outcomes), str(report)
    done = run_cli("mqtt", str(lab), "--broker", "mosquitto", "--device", str(device))
    assert done.returncode == 0 and f"good client ({device}/ca.crt" in done.stdout, done.stdout + done.stderr
    assert key_copies(lab, device / "client.key") == []


def test_verify_and_mqtt_without_the_device_folder_say_how_to_prove_it(lab: Path, tmp_path: Path) -> None:
    make_device(lab, tmp_path / "dev", "sensor-1")
    report = verify_lab(lab)
    assert report.ok, str(report)
    text = str(report)
    assert "client.key is held by the device, not the lab: prove it with mqtt-pki-lab verify" in text
    assert "--device DEVICE_DIR" in text
    names = [c.name for c in report.checks if c.status == "pass"]
    assert "client 'sensor-1': client.key held by the device" in names
    assert "broker trusts client 'sensor-1': clients/sensor-1/client.crt signed by broker/ca.crt" in names
    mqtt = mqtt_check(lab, "embedded")
    assert mqtt.ok and any("clients/sensor-1: its key is held by its device" in n for n in mqtt.notes)
    view = diagram_view(lab, report)
    assert view.status(D.client_role("sensor-1").file("key")) == "on device"
    assert all(e.ok for e in view.handshakes)


def test_a_key_copied_into_the_lab_beside_the_note_is_a_leak(lab: Path, tmp_path: Path) -> None:
    device = make_device(lab, tmp_path / "dev", "sensor-1")
    shutil.copy(device / "client.key", lab / "clients/sensor-1/client.key")
    report = verify_lab(lab)
    assert not report.ok
    failed = [c for c in report.failures if c.diagnosis is not None and c.diagnosis.code == "secret-leak"]
    assert failed and "copied here" in failed[0].diagnosis.problem  # type: ignore[union-attr]


def test_a_forced_build_signs_the_device_again_and_makes_no_key(lab: Path, tmp_path: Path) -> None:
    make_device(lab, tmp_path / "dev", "sensor-1")
    csr = (lab / "clients/sensor-1/client.csr").read_bytes()
    list(Lab(lab).build(force=True))
    assert not (lab / "clients/sensor-1/client.key").exists()
    assert (lab / "clients/sensor-1/client.csr").read_bytes() == csr
    with pytest.raises(RefusedError, match="held by its device"):
        Lab(lab).run("client-key", "sensor-1")


def test_a_broker_whose_key_was_born_on_its_machine(tmp_path: Path) -> None:
    lab = tmp_path / "pki"
    first = Lab(lab)
    list(first.build(through=2))
    for step in ("client-key", "client-csr", "client-cert"):
        first.run(step, D.FIRST_CLIENT)
    broker = tmp_path / "broker-machine"
    made = request(broker, ["mqtt.example.com", "10.0.0.5"], "broker")
    signed = sign_request(lab, made.csr, "broker")
    first.run("hand-out", D.FIRST_CLIENT)
    assert sorted(p.name for p in (lab / "broker").iterdir()) == ["ca.crt", D.DEVICE_KEY_NOTE, "server.crt",
                                                                  "server.csr"]
    install(broker, signed.certificate, signed.ca_certificate)
    cert = load_certificate(broker / "server.crt")
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.SERVER_AUTH]
    assert "mqtt.example.com" in cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value \
        .get_values_for_type(x509.DNSName)
    skipped = verify_lab(lab)
    assert skipped.ok and "server.key is held by the broker's own machine" in str(skipped)
    proved = verify_lab(lab, hostname="mqtt.example.com", devices=[broker])
    assert proved.ok and proved.handshake is not None and proved.handshake.ok, str(proved)
    assert mqtt_check(lab, "embedded", devices=[broker]).ok
    with pytest.raises(InputError, match="--device BROKER_DIR"):
        mqtt_check(lab, "embedded")
    request(tmp_path / "second", "other.example.com", "broker")
    with pytest.raises(RefusedError, match="already issued"):
        sign_request(lab, tmp_path / "second/server.csr", "broker")


# --- the CA's profile wins ----------------------------------------------------------------------------------

def greedy_csr(path: Path, name: str = "greedy") -> Path:
    """A CSR asking for much more than a client gets: CA:TRUE, more usages, a host name, another organisation."""
    key = ec.generate_private_key(ec.SECP256R1())
    usage = x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                          encipher_only=False, decipher_only=False)
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "XX"),
                                    x509.NameAttribute(NameOID.COMMON_NAME, name)]))
           .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
           .add_extension(usage, critical=True)
           .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH,
                                                 ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
           .add_extension(x509.SubjectAlternativeName([x509.DNSName("evil.example.com")]), critical=False)
           .sign(key, hashes.SHA256()))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    return path


def test_a_greedy_csr_gets_the_lab_profile_and_the_message_lists_what_was_dropped(lab: Path, tmp_path: Path) -> None:
    csr = greedy_csr(tmp_path / "greedy.csr")
    done = run_cli("sign", str(lab), str(csr))
    assert done.returncode == 0, done.stderr
    cert = load_certificate(lab / "clients/greedy/client.crt")
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.CLIENT_AUTH]
    assert cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign is False
    said = " ".join(done.stdout.split())
    for dropped in ("basicConstraints CA:TRUE", "extendedKeyUsage serverAuth, codeSigning",
                    "keyUsage cRLSign, keyCertSign", "subjectAltName DNS:evil.example.com", "subject C=XX"):
        assert dropped in said, (dropped, said)
    assert "the certificate is CA:FALSE, clientAuth only" in said


# --- bad input: one line, nothing changed -----------------------------------------------------------------------

def csr_for(key, name: str) -> bytes:
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def bad_signature(ws: Path) -> bytes:
    der = bytearray(x509.load_pem_x509_csr(csr_for(rsa.generate_private_key(65537, 2048), "tampered"))
                    .public_bytes(serialization.Encoding.DER))
    der[-1] ^= 0x01  # the last byte of the RSA signature: still a CSR, no longer signed by its key
    return x509.load_der_x509_csr(bytes(der)).public_bytes(serialization.Encoding.PEM)


def other_ca(ws: Path) -> bytes:
    other = ws / "other-lab"
    if not other.exists():
        list(Lab(other).build(through=2))
    return (other / "ca/ca.crt").read_bytes()


#: (id, files to write in the workspace: name -> bytes or a function of the workspace, argv, exit code, what the
#: line names, a phrase of it). The workspace holds ``pki`` (a built lab) and ``dev`` (a device signed as sensor-1).
BAD: list[tuple[str, dict[str, bytes | Callable[[Path], bytes]], list[str], int, str, str]] = [
    ("name already issued", {"again.csr": lambda ws: csr_for(ec.generate_private_key(ec.SECP256R1()), "sensor-1")},
     ["sign", "pki", "again.csr"], 1, "again.csr", "already issued"),
    ("name of the lab's first client", {"c.csr": lambda ws: csr_for(ec.generate_private_key(ec.SECP256R1()),
                                                                       "client")},
     ["sign", "pki", "c.csr"], 1, "c.csr", "already issued"),
    ("the CA's key", {"ca.csr": lambda ws: csr_for(load_private_key(ws / "pki/ca/ca.key"), "mallory")},
     ["sign", "pki", "ca.csr"], 2, "ca.csr", "the CA's own public key"),
    ("another device's key", {"twin.csr": lambda ws: csr_for(load_private_key(ws / "dev/client.key"), "twin")},
     ["sign", "pki", "twin.csr"], 1, "twin.csr", "same public key as clients/sensor-1/client.crt"),
    ("the lab client's key", {"lc.csr": lambda ws: csr_for(load_private_key(ws / "pki/client/client.key"), "lc")},
     ["sign", "pki", "lc.csr"], 1, "lc.csr", "same public key as client/client.crt"),
    ("a weak key", {"weak.csr": lambda ws: csr_for(rsa.generate_private_key(65537, 1024), "weak")},
     ["sign", "pki", "weak.csr"], 2, "weak.csr", "RSA 1024"),
    ("a corrupt CSR", {"bad.csr": b"-----BEGIN CERTIFICATE REQUEST-----\nnot base64 at all\n"
                                  b"-----END CERTIFICATE REQUEST-----\n"},
     ["sign", "pki", "bad.csr"], 2, "bad.csr", "damaged"),
    ("a key instead of a CSR", {}, ["sign", "pki", "dev/client.key"], 2, "dev/client.key", "a private key"),
    ("a signature that does not verify", {"t.csr": bad_signature}, ["sign", "pki", "t.csr"], 2, "t.csr",
     "signature does not verify"),
    ("a bad name in the CSR", {"n.csr": lambda ws: csr_for(ec.generate_private_key(ec.SECP256R1()), "a b")},
     ["sign", "pki", "n.csr"], 2, "n.csr", "not a usable client name"),
    ("sign: unknown role", {}, ["sign", "pki", "dev/client.csr", "--role", "ca"], 2, "--role", "unknown role"),
    ("sign: days past the cap", {}, ["sign", "pki", "dev/client.csr", "--days", "4000"], 2, "--days", "longer"),
    ("sign: a lab without a CA", {"empty/.keep": b"x"}, ["sign", "empty", "dev/client.csr"], 2, "empty/ca/ca.key",
     "no CA"),
    ("sign: a broker the lab has", {}, ["sign", "pki", "dev/client.csr", "--role", "broker"], 1, "dev/client.csr",
     "already issued"),
    ("request: a folder with a key", {}, ["request", "dev", "sensor-2"], 1, "dev/client.key", "never overwrites"),
    ("request: unknown role", {}, ["request", "dev2", "x", "--role", "ca"], 2, "--role", "unknown role"),
    ("request: unknown key type", {}, ["request", "dev2", "x", "--key-type", "dsa"], 2, "--key-type", "unknown"),
    ("request: a bad name", {}, ["request", "dev2", "no/slash"], 2, "NAME", "not a usable client name"),
    ("request: into the lab", {}, ["request", "pki", "x"], 2, "pki", "is a lab"),
    ("request: no parent folder", {}, ["request", "nowhere/dev", "x"], 2, "nowhere", "no such folder"),
    ("install: the certificate of another key", {}, ["install", "dev", "pki/client/client.crt", "pki/ca/ca.crt"],
     2, "pki/client/client.crt", "does not match dev/client.key"),
    ("install: not signed by CA_CERT", {"other-ca.crt": other_ca},
     ["install", "dev", "dev/client.crt", "other-ca.crt"], 2, "dev/client.crt", "is not signed by other-ca.crt"),
    ("install: a leaf as CA_CERT", {}, ["install", "dev", "dev/client.crt", "pki/client/client.crt"], 2,
     "pki/client/client.crt", "not a CA certificate"),
    ("install: a folder without a key", {"nokey/client.csr": b"x"},
     ["install", "nokey", "dev/client.crt", "dev/ca.crt"], 2, "nokey", "no private key"),
    ("verify: a lab given as a device", {"other-ca.crt": other_ca}, ["verify", "pki", "--device", "other-lab"], 2,
     "other-lab", "no private key"),
    ("mqtt: a device this lab did not sign", {"odd/client.key": lambda ws: (ws / "dev/client.key").read_bytes(),
                                              "odd/client.crt": other_ca},
     ["mqtt", "pki", "--device", "odd"], 2, "odd/client.crt", "is not a certificate this lab"),
]


@pytest.fixture(scope="module")
def signed_world(built_lab: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lab with one device (sensor-1) signed and installed, built once; each row works on a copy."""
    ws = tmp_path_factory.mktemp("device-world")
    shutil.copytree(built_lab, ws / "pki")
    make_device(ws / "pki", ws / "dev", "sensor-1")
    return ws


@pytest.mark.parametrize(("row", "files", "argv", "code", "names", "phrase"), BAD, ids=[r[0] for r in BAD])
def test_bad_input_is_refused_in_one_line_and_changes_nothing(
        row: str, files: dict, argv: list[str], code: int, names: str, phrase: str, signed_world: Path,
        tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    shutil.copytree(signed_world, ws, symlinks=True)
    for rel, data in files.items():
        (ws / rel).parent.mkdir(parents=True, exist_ok=True)
        (ws / rel).write_bytes(data(ws) if callable(data) else data)
    before = tree(ws)
    done = run_cli(*argv, cwd=ws)
    line = assert_one_line_refusal(done, argv[0], code, names)
    assert phrase in line, (phrase, line)
    assert tree(ws) == before, "a refused command changed the lab or the device folder"


def test_a_refused_sign_through_the_api_names_the_csr(lab: Path, tmp_path: Path) -> None:
    (tmp_path / "w.csr").write_bytes(csr_for(rsa.generate_private_key(65537, 1024), "weak"))
    before = tree(lab)
    with pytest.raises(InputError) as caught:
        sign_request(lab, tmp_path / "w.csr")
    assert caught.value.where == str(tmp_path / "w.csr") and tree(lab) == before
