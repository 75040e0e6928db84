"""A chain of three: ``build --intermediate`` (steps 13-15), the root key offline, and every day-two command on it.

What is checked here, with real verifiers where there is one:

* every key type: the root says pathLen 1, the intermediate pathLen 0 and the strict CA profile; each leaf file is
  the leaf then the intermediate, each ``ca.crt`` the root alone; ``openssl verify -x509_strict -CAfile
  broker/ca.crt -untrusted <the chain>`` accepts each certificate for its purpose (and only that one), Python 3.13's
  *default* contexts accept a mutual-TLS connection with those files, pkilint finds no new ERROR;
* with ``ca/ca.key`` removed, add-client, sign, install, renew, revoke, crl --refresh, verify and status work, and
  say "kept offline"; the CRL is the intermediate's;
* bad input (one line, nothing changed): --intermediate over a one-level CA, a missing, encrypted or damaged
  intermediate;
* exports (PKCS#12 with the whole chain, the C header), the checks that name a missing chain or an intermediate in
  ``ca.crt``, the openssl twins, the graph, the progress bar.

The MQTT brokers (mosquitto, the embedded one) are in ``test_mqtt_intermediate.py``.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import python313, require, require_program, run_cli
from cryptography.hazmat.primitives.serialization import Encoding, pkcs12
from test_safety import assert_one_line_refusal, tree

from mqtt_pki_lab import diagram as D
from mqtt_pki_lab.checks import ca_profile_problems
from mqtt_pki_lab.crl import crl_info, issuer_role, load_crl, revoke
from mqtt_pki_lab.device import install, request, sign_request
from mqtt_pki_lab.diagnose import diagnose_tls_failure
from mqtt_pki_lab.errors import InputError
from mqtt_pki_lab.export_device import c_header_text, pkcs12_bytes
from mqtt_pki_lab.intermediate import build_path, path_length
from mqtt_pki_lab.keys import KEY_TYPES
from mqtt_pki_lab.pem import load_certificate, load_certificates
from mqtt_pki_lab.renew import renew
from mqtt_pki_lab.steps import BuildOptions, Lab, LabState
from mqtt_pki_lab.verify import verify_lab

CHAIN_FILES = ("intermediate/intermediate.key", "intermediate/intermediate.csr", "intermediate/intermediate.crt")


@pytest.fixture(scope="module")
def chain_lab(lab_factory: Callable[..., Path]) -> Callable[..., Path]:
    """A lab with an intermediate CA for given options (built once): ``chain_lab(key_type="rsa-2048")``."""
    return lambda **options: lab_factory(intermediate=True, **options)


@pytest.fixture
def chain_copy(chain_lab: Callable[..., Path], tmp_path: Path) -> Path:
    """A private copy of the EC P-256 chain lab that a test may change."""
    target = tmp_path / "pki"
    shutil.copytree(chain_lab(), target)
    return target


def openssl_verify(root: Path, cert: str, purpose: str, *extra: str) -> subprocess.CompletedProcess[str]:
    """``openssl verify -x509_strict`` as a side does it: the root as the anchor, the file's own chain untrusted."""
    openssl = require_program("openssl")
    return subprocess.run([openssl, "verify", "-x509_strict", "-CAfile", str(root / "broker" / "ca.crt"),
                           "-untrusted", str(root / cert), "-purpose", purpose, *extra, str(root / cert)],
                          capture_output=True, text=True, timeout=30)


# --- the chain, every key type ------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", list(KEY_TYPES))
def test_build_makes_a_chain_of_three_that_strict_openssl_accepts(kind: str, chain_lab: Callable[..., Path]) -> None:
    root = chain_lab(key_type=kind)
    for rel in CHAIN_FILES:
        assert (root / rel).is_file(), rel
    assert (root / "intermediate").stat().st_mode & 0o777 == 0o700
    assert (root / "intermediate/intermediate.key").stat().st_mode & 0o777 == 0o600
    ca, inter = load_certificate(root / "ca/ca.crt"), load_certificate(root / "intermediate/intermediate.crt")
    assert (path_length(ca), path_length(inter)) == (1, 0)
    assert ca_profile_problems(ca) == [] and ca_profile_problems(inter) == []
    assert inter.issuer == ca.subject and inter.not_valid_after_utc <= ca.not_valid_after_utc
    for role in (D.BROKER, D.FIRST_CLIENT):
        leaf, *chain = load_certificates(root / role.file("crt").relpath)
        assert chain == [inter], role  # the leaf, then the intermediate: the chain that side presents
        assert leaf.not_valid_after_utc <= inter.not_valid_after_utc
        assert build_path(leaf, chain, [ca]) == [leaf, inter, ca]
        assert load_certificates(root / role.file("trust").relpath) == [ca]  # the trust anchor: the root alone
    for extra in (("-verify_hostname", "localhost"), ("-verify_ip", "127.0.0.1")):
        ok = openssl_verify(root, "broker/server.crt", "sslserver", *extra)
        assert ok.returncode == 0 and ": OK" in ok.stdout, ok.stdout + ok.stderr
    ok = openssl_verify(root, "client/client.crt", "sslclient")
    assert ok.returncode == 0 and ": OK" in ok.stdout, ok.stdout + ok.stderr
    for cert, wrong in (("broker/server.crt", "sslclient"), ("client/client.crt", "sslserver")):
        refused = openssl_verify(root, cert, wrong)
        assert refused.returncode != 0 and "unsuitable certificate purpose" in refused.stdout + refused.stderr
    # Without the chain (the leaf alone), the same command fails the way a peer would.
    leaf_only = root.parent / f"leaf-{kind}.pem"
    leaf_only.write_bytes(load_certificates(root / "broker/server.crt")[0].public_bytes(Encoding.PEM))
    bare = subprocess.run([require_program("openssl"), "verify", "-x509_strict", "-CAfile", str(root / "ca/ca.crt"),
                           str(leaf_only)], capture_output=True, text=True, timeout=30)
    assert bare.returncode != 0 and "unable to get local issuer certificate" in bare.stdout + bare.stderr
    report = verify_lab(root)
    assert report.ok, str(report)


@pytest.mark.parametrize("kind", list(KEY_TYPES))
def test_python313_default_contexts_accept_the_chain(kind: str, chain_lab: Callable[..., Path]) -> None:
    """test_strict.py's mutual TLS over loopback with Python 3.13's *default* contexts, on a chain of three: each
    side loads its file as it is (the leaf, then the intermediate) and trusts the root alone."""
    from test_strict import PY313_MTLS

    interpreter = python313()
    require(interpreter is not None, "Python 3.13 is not installed (pyenv install 3.13)")
    root = chain_lab(key_type=kind)
    done = subprocess.run([interpreter, "-c", PY313_MTLS, str(root), "localhost", "127.0.0.1"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["python"].startswith("3.13") and result["strict_by_default"] == [True, True]
    assert result["localhost"]["echo"] == result["127.0.0.1"]["echo"] == "HELLO"
    assert result["client_cn"] == "client"


@pytest.mark.parametrize("kind", list(KEY_TYPES))
def test_pkilint_finds_no_new_error_in_the_chain(kind: str, chain_lab: Callable[..., Path], tmp_path: Path) -> None:
    from test_client_identity import SINGLE_LABEL, pkilint_errors

    root = chain_lab(key_type=kind)
    pem = {}
    for rel in ("ca/ca.crt", "intermediate/intermediate.crt", "broker/server.crt", "client/client.crt"):
        path = tmp_path / rel.replace("/", "_")
        first = load_certificates(root / rel)[0]  # pkilint lints one certificate: the leaf of a chain file
        path.write_bytes(first.public_bytes(Encoding.PEM))
        pem[rel] = path
    assert pkilint_errors(pem["ca/ca.crt"]) == []
    assert pkilint_errors(pem["intermediate/intermediate.crt"]) == []
    # The leaves draw exactly the findings a one-level lab's leaves draw (test_client_identity.py explains both).
    assert pkilint_errors(pem["broker/server.crt"]) == [(SINGLE_LABEL, 'Invalid domain name syntax: "localhost"')]
    assert [code for code, _ in pkilint_errors(pem["client/client.crt"])] == ["pkix.invalid_uri_syntax"]
    # pkilint's issuer/subject linter on each link of the chain: names, key identifiers, signatures.
    linter = Path(sys.executable).parent / "lint_pkix_signer_signee_cert_chain"
    require(linter.exists(), "pkilint's lint_pkix_signer_signee_cert_chain is not installed")
    for issuer, subject in (("ca/ca.crt", "intermediate/intermediate.crt"),
                            ("intermediate/intermediate.crt", "broker/server.crt"),
                            ("intermediate/intermediate.crt", "client/client.crt")):
        done = subprocess.run([str(linter), "lint", "-s", "ERROR", str(pem[issuer]), str(pem[subject])],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0 and done.stdout.strip() == "", (issuer, subject, done.stdout + done.stderr)


# --- the model, the state, status --------------------------------------------------------------------------------

def test_a_one_level_lab_is_the_seed_as_before(built_lab: Path) -> None:
    assert D.Roles().build_steps == D.BUILD_STEPS and D.DIAGRAM.issuer == D.CA
    assert all(s.number <= 10 for s in D.STEPS) and {s.number for s in D.INTERMEDIATE_STEPS} == {13, 14, 15}
    state = LabState.read(built_lab)
    assert not state.roles.intermediate and issuer_role(built_lab) == D.CA and not state.root_key_offline
    assert [s.number for s, _ in state] == list(range(1, 11))
    data = state.to_json()
    assert data["intermediate"] is False and data["issuer"] == "ca"
    assert [r["kind"] for r in data["roles"]] == ["ca", "broker", "client"]
    assert all(len(load_certificates(built_lab / f.relpath)) == 1 for f in D.ALL_FILES if f.slot in ("crt", "trust"))


def test_status_shows_the_intermediate_and_the_root_key_offline(chain_copy: Path) -> None:
    state = LabState.read(chain_copy)
    assert state.complete and state.roles.issuer == D.INTERMEDIATE and issuer_role(chain_copy) == D.INTERMEDIATE
    assert [s.number for s, _ in state][:6] == [1, 2, 13, 14, 15, 3]
    text = run_cli("status", str(chain_copy)).stdout
    assert "15. root CA: sign intermediate.csr into intermediate.crt [done]" in text
    assert " 5. intermediate CA: sign server.csr into server.crt [done]" in text
    (chain_copy / "ca/ca.key").unlink()  # kept offline from now on
    state = LabState.read(chain_copy)
    assert state.root_key_offline and state.complete and state.done_arrows(D.CA) == [1, 2]
    done = run_cli("status", str(chain_copy))
    assert done.returncode == 0 and "ca/ca.key: kept offline" in done.stdout
    data = json.loads(run_cli("status", str(chain_copy), "--json").stdout)
    assert data["intermediate"] is True and data["issuer"] == "intermediate" and data["complete"] is True
    ca, inter = data["roles"][0], data["roles"][1]
    assert (ca["kind"], ca["key"], ca["key_offline"], ca["complete"]) == ("ca", None, True, True)
    assert inter["kind"] == "intermediate" and inter["arrows_done"] == [13, 14, 15]
    assert inter["crt"].endswith("intermediate/intermediate.crt") and inter["key"] is not None
    report = verify_lab(chain_copy)
    assert report.ok, str(report)
    assert "ca/ca.key kept offline" in str(report) and "ca.key" not in " ".join(str(c) for c in report.failures)


# --- day to day without the root's key ---------------------------------------------------------------------------

def test_everything_day_to_day_works_with_the_root_key_offline(chain_copy: Path, tmp_path: Path) -> None:
    (chain_copy / "ca/ca.key").unlink()
    inter = load_certificate(chain_copy / "intermediate/intermediate.crt")
    root = load_certificate(chain_copy / "ca/ca.crt")
    # add-client (CLI), two at once
    done = run_cli("add-client", str(chain_copy), "sensor-1", "sensor-2")
    assert done.returncode == 0, done.stderr
    for name in ("sensor-1", "sensor-2"):
        assert load_certificates(chain_copy / f"clients/{name}/client.crt")[1:] == [inter]
        assert load_certificates(chain_copy / f"clients/{name}/ca.crt") == [root]
    # a device's own key: request there, sign here, install there
    device = tmp_path / "device"
    request(device, "sensor-3")
    signed = sign_request(chain_copy, device / "client.csr")
    assert load_certificates(signed.certificate)[1:] == [inter] and load_certificates(signed.ca_certificate) == [root]
    installed = install(device, signed.certificate, signed.ca_certificate)
    assert load_certificates(installed.written[0])[1:] == [inter]  # the chain travels to the device
    # renew: the broker (same key) and a client (new key); the chain is written again
    for name, new_key in (("broker", False), ("sensor-1", True)):
        renewal = renew(chain_copy, name, new_key=new_key)
        leaf, *chain = load_certificates(renewal.role.file("crt").path(chain_copy))
        assert chain == [inter] and leaf.issuer == inter.subject and leaf.serial_number == renewal.new_serial
    # revoke and refresh: the intermediate's list, beside it, and the broker's copy
    result = revoke(chain_copy, "sensor-2", reason="keyCompromise")
    assert result.written == ("intermediate/crl.pem", "broker/crl.pem")
    assert not (chain_copy / "ca/crl.pem").exists()
    crl = load_crl(chain_copy / "broker/crl.pem")
    assert crl.issuer == inter.subject and crl.is_signature_valid(inter.public_key())
    again = run_cli("crl", str(chain_copy), "--refresh")
    assert again.returncode == 0, again.stderr
    info = crl_info(chain_copy)
    assert info is not None and info.number == 2 and [e.name for e in info.entries] == ["sensor-2"]
    # verify: everything passes, the revoked client is refused as it must be, and the device's own files work
    report = verify_lab(chain_copy, devices=[device])
    assert report.ok, str(report)
    assert {r.name for r in report.revoked} == {"sensor-2"}
    refused = next(h for r, h, _ in report.handshakes if r.name == "sensor-2")
    assert refused is not None and refused.diagnosis is not None and refused.diagnosis.code == "revoked"
    assert not (chain_copy / "ca/ca.key").exists()


def test_the_root_key_is_needed_only_to_certify_an_intermediate(chain_copy: Path) -> None:
    (chain_copy / "ca/ca.key").unlink()
    before = tree(chain_copy)
    done = run_cli("build", str(chain_copy), "--intermediate", "--force")
    after = tree(chain_copy)
    # A forced build makes a new root (a new ca.key): that is allowed, and it signs everything again.
    assert done.returncode == 0, done.stderr
    assert after != before and (chain_copy / "ca/ca.key").is_file()
    with pytest.raises(InputError, match=r"ca/ca\.key"):  # step 15 alone, without the root's key: refused, named
        (chain_copy / "ca/ca.key").unlink()
        Lab(chain_copy).run("intermediate-cert", force=True)


def test_encrypted_ca_keys_need_the_passphrase(chain_lab: Callable[..., Path], tmp_path: Path) -> None:
    lab = tmp_path / "pki"
    shutil.copytree(chain_lab(passphrase=b"correct horse"), lab)
    for rel in ("ca/ca.key", "intermediate/intermediate.key"):
        assert (lab / rel).read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----"), rel
    assert not (lab / "broker/server.key").read_bytes().startswith(b"-----BEGIN ENCRYPTED")
    (lab / "ca/ca.key").unlink()
    Lab(lab, BuildOptions(passphrase=b"correct horse")).add_client("sensor-1")
    assert verify_lab(lab).ok


# --- bad input: one line, nothing written ---------------------------------------------------------------------------

def _damaged(ws: Path) -> None:
    path = ws / "lab/intermediate/intermediate.crt"
    path.write_bytes(path.read_bytes()[:300])


def _no_intermediate_key(ws: Path) -> None:
    (ws / "lab/intermediate/intermediate.key").unlink()


BAD_COMMANDS = [("add-client", ("lab", "sensor-9")), ("sign", ("lab", "device/client.csr")),
                ("renew", ("lab", "broker")), ("revoke", ("lab", "sensor-1")), ("crl", ("lab", "--refresh"))]
BAD = [*((f"{cmd}-{why}", cmd, args, setup, source, name)
         for why, setup, source, name in (("no-intermediate-key", _no_intermediate_key, "plain", "intermediate.key"),
                                          ("encrypted-no-passphrase", None, "encrypted", "intermediate.key"),
                                          ("damaged-intermediate", _damaged, "plain", "intermediate.crt"))
         for cmd, args in BAD_COMMANDS)]


@pytest.fixture(scope="module")
def bad_sources(chain_lab: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A chain lab (plain, and with encrypted CA keys) with a further client, and a device's CSR beside it."""
    found = {}
    for name, options in (("plain", {}), ("encrypted", {"passphrase": b"pw"})):
        top = tmp_path_factory.mktemp(f"bad-{name}")
        shutil.copytree(chain_lab(**options), top / "lab")
        Lab(top / "lab", BuildOptions(passphrase=options.get("passphrase"))).add_client("sensor-1")
        request(top / "device", "sensor-9")
        found[name] = top
    return found


@pytest.mark.parametrize("row", BAD, ids=[b[0] for b in BAD])
def test_bad_input_on_a_chain_lab_is_refused_in_one_line_and_changes_nothing(row, bad_sources, tmp_path: Path
                                                                            ) -> None:
    _, command, args, setup, source, name = row
    ws = tmp_path / "ws"
    shutil.copytree(bad_sources[source], ws)
    if setup is not None:
        setup(ws)
    before = tree(ws)
    done = run_cli(command, *args, cwd=ws, timeout=60)
    assert tree(ws) == before, f"{command} changed the disk"
    line = assert_one_line_refusal(done, command, 2, f"intermediate/{name}")
    assert "Traceback" not in line


def test_intermediate_over_a_one_level_ca_needs_force(lab_copy: Path) -> None:
    before = tree(lab_copy)
    done = run_cli("build", str(lab_copy), "--intermediate")
    assert tree(lab_copy) == before
    line = assert_one_line_refusal(done, "build", 1, "ca/ca.crt")
    assert "one-level CA" in line and "--force" in line
    forced = run_cli("build", str(lab_copy), "--intermediate", "--force")
    assert forced.returncode == 0, forced.stderr
    assert LabState.read(lab_copy).roles.intermediate and verify_lab(lab_copy).ok


def test_bad_intermediate_options_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    done = run_cli("build", str(tmp_path / "pki"), "--intermediate", "--intermediate-name", "MQTT Lab Root CA")
    assert_one_line_refusal(done, "build", 2, "--intermediate-name")
    done = run_cli("build", str(tmp_path / "pki"), "--intermediate", "--intermediate-name", "")
    assert_one_line_refusal(done, "build", 2, "--intermediate-name")
    assert not (tmp_path / "pki").exists()


# --- the checks name a broken chain ----------------------------------------------------------------------------------

def _leaf_only(lab: Path, rel: str) -> None:
    leaf = load_certificates(lab / rel)[0]
    (lab / rel).write_bytes(leaf.public_bytes(Encoding.PEM))


def test_a_missing_intermediate_in_the_chain_is_named(chain_copy: Path) -> None:
    _leaf_only(chain_copy, "broker/server.crt")
    report = verify_lab(chain_copy)
    assert not report.ok
    diagnosis = report.diagnosis
    assert (diagnosis.code, diagnosis.arrow, diagnosis.file) == ("missing-chain", 5, "broker/server.crt")
    assert "intermediate" in diagnosis.problem and "cat intermediate/intermediate.crt" in diagnosis.fix
    handshake = report.handshake
    assert handshake is not None and not handshake.ok
    assert "unable to get local issuer certificate" in (handshake.reason or "")
    assert handshake.diagnosis.code == "missing-chain" and handshake.diagnosis.file == "broker/server.crt"
    # The same words on a one-level lab keep their old meaning: the verifier's ca.crt is not the issuer.
    words = "certificate verify failed: unable to get local issuer certificate"
    assert diagnose_tls_failure(words, "client").code == "untrusted-issuer"
    chained = diagnose_tls_failure(words, "client", chain=True)
    assert (chained.code, chained.arrow, chained.file) == ("missing-chain", 5, "broker/server.crt")
    assert diagnose_tls_failure(words, "broker", chain=True).file == "client/client.crt"


@pytest.mark.parametrize("bundle", [False, True], ids=["intermediate-alone", "root-and-intermediate"])
def test_an_intermediate_in_ca_crt_instead_of_the_chain_is_named(bundle: bool, chain_copy: Path) -> None:
    _leaf_only(chain_copy, "broker/server.crt")
    inter = (chain_copy / "intermediate/intermediate.crt").read_bytes()
    trust = chain_copy / "client/ca.crt"
    trust.write_bytes((trust.read_bytes() if bundle else b"") + inter)
    report = verify_lab(chain_copy)
    # Python's partial-chain default accepts it; mosquitto and `openssl verify` would not: the check says so.
    assert report.handshake is not None and report.handshake.ok
    assert not report.ok
    diagnosis = report.diagnosis
    assert (diagnosis.code, diagnosis.arrow, diagnosis.file) == ("intermediate-in-trust", 9, "client/ca.crt")
    assert "root alone" in diagnosis.problem
    codes = {c.diagnosis.code for c in report.failures if c.diagnosis is not None}
    assert "missing-chain" in codes  # and server.crt's missing chain is named too
    refused = subprocess.run([require_program("openssl"), "verify", "-x509_strict", "-CAfile",
                              str(chain_copy / "ca/ca.crt"), str(chain_copy / "broker/server.crt")],
                             capture_output=True, text=True, timeout=30)
    assert refused.returncode != 0


def test_a_damaged_or_missing_intermediate_certificate_is_named(chain_copy: Path) -> None:
    path = chain_copy / "intermediate/intermediate.crt"
    path.write_bytes(path.read_bytes()[:300])
    report = verify_lab(chain_copy)
    assert (report.diagnosis.code, report.diagnosis.arrow, report.diagnosis.file) == \
        ("unreadable-file", 15, "intermediate/intermediate.crt")
    path.unlink()
    report = verify_lab(chain_copy)
    assert (report.diagnosis.code, report.diagnosis.file) == ("missing-file", "intermediate/intermediate.crt")


def test_a_root_with_path_length_zero_is_named(chain_copy: Path) -> None:
    from mqtt_pki_lab.ca import create_ca_certificate
    from mqtt_pki_lab.keys import load_private_key
    from mqtt_pki_lab.pem import save_pem

    key = load_private_key(chain_copy / "ca/ca.key")
    old = load_certificate(chain_copy / "ca/ca.crt")
    again = create_ca_certificate(key, "MQTT Lab Root CA", path_length=0)  # same key and name, pathLen 0
    assert again.subject == old.subject
    for rel in ("ca/ca.crt", "broker/ca.crt", "client/ca.crt"):
        save_pem(again, chain_copy / rel)
    report = verify_lab(chain_copy)
    assert (report.diagnosis.code, report.diagnosis.arrow, report.diagnosis.file) == ("ca-profile", 2, "ca/ca.crt")
    assert "path length" in report.diagnosis.problem


def test_a_copy_of_the_intermediate_key_in_a_side_folder_is_a_leak(chain_copy: Path) -> None:
    shutil.copy(chain_copy / "intermediate/intermediate.key", chain_copy / "client/backup.key")
    report = verify_lab(chain_copy)
    leak = next(c for c in report.failures if c.diagnosis is not None and c.diagnosis.code == "secret-leak")
    assert leak.diagnosis.file == "client/backup.key" and "intermediate CA's private key" in leak.diagnosis.problem


# --- exports: PKCS#12 with the chain, the C header ----------------------------------------------------------------

def test_pkcs12_holds_key_leaf_intermediate_and_root(chain_copy: Path, tmp_path: Path) -> None:
    data = pkcs12_bytes(chain_copy, "client", b"secret passphrase")
    loaded = pkcs12.load_pkcs12(data, b"secret passphrase")
    leaf, inter, root = (load_certificates(chain_copy / "client/client.crt")[0],
                         load_certificate(chain_copy / "intermediate/intermediate.crt"),
                         load_certificate(chain_copy / "ca/ca.crt"))
    assert loaded.cert is not None and loaded.cert.certificate == leaf
    assert [c.certificate for c in loaded.additional_certs] == [inter, root]
    out = tmp_path / "client.p12"
    out.write_bytes(data)
    done = subprocess.run([require_program("openssl"), "pkcs12", "-in", str(out), "-passin", "pass:secret passphrase",
                           "-nokeys"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and done.stdout.count("-----BEGIN CERTIFICATE-----") == 3, done.stderr


def test_the_c_header_carries_the_chain_the_device_presents(chain_copy: Path, tmp_path: Path) -> None:
    text = c_header_text(chain_copy, "client")

    def constant(name: str) -> bytes:
        start = text.index(f"static const char {name}[] =")
        body = text[start:text.index(";", start)].splitlines()[1:]
        return "".join(line.strip()[1:-3] + "\n" for line in body).encode()

    assert constant("mqtt_client_ca_cert") == (chain_copy / "ca/ca.crt").read_bytes()  # the root alone
    client_pem = constant("mqtt_client_client_cert")
    assert client_pem == (chain_copy / "client/client.crt").read_bytes()  # the leaf, then the intermediate
    assert client_pem.count(b"-----BEGIN CERTIFICATE-----") == 2
    assert "followed by 1 intermediate CA certificate" in text
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is not None:  # it compiles as C
        header = tmp_path / "client.h"
        header.write_text(text)
        source = tmp_path / "main.c"
        source.write_text('#include "client.h"\n#include <stdio.h>\nint main(void) { fputs(mqtt_client_client_cert, '
                          'stdout); return 0; }\n')
        subprocess.run([cc, "-Wall", "-Werror", "-o", str(tmp_path / "main"), str(source)], check=True, timeout=60)
        printed = subprocess.run([str(tmp_path / "main")], capture_output=True, timeout=10).stdout
        assert printed == client_pem


def test_explain_shows_what_follows_the_leaf(chain_lab: Callable[..., Path]) -> None:
    done = run_cli("inspect", str(chain_lab() / "broker/server.crt"))
    assert done.returncode == 0 and "followed by 1" in done.stdout and "MQTT Lab Intermediate CA" in done.stdout


# --- the openssl twins, the graph, the progress --------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["ec-p256", "rsa-2048", "ed25519"])
def test_openssl_twins_make_a_chain_of_three(kind: str, tmp_path: Path) -> None:
    from mqtt_pki_lab.handshake import mutual_tls_handshake
    from mqtt_pki_lab.twins import openssl_twin

    bash = require_program("bash")
    require_program("openssl")
    options = BuildOptions(key_type=kind, intermediate=True)
    roles = D.Roles(intermediate=True)
    for role in roles.all:
        (tmp_path / role.folder).mkdir()
    script = "set -euo pipefail\n" + "\n".join(openssl_twin(b, options) for b in roles.plan(roles.build_steps))
    done = subprocess.run([bash, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (path_length(load_certificate(tmp_path / "ca/ca.crt")),
            path_length(load_certificate(tmp_path / "intermediate/intermediate.crt"))) == (1, 0)
    assert len(load_certificates(tmp_path / "broker/server.crt")) == 2
    for cert, purpose in (("broker/server.crt", "sslserver"), ("client/client.crt", "sslclient")):
        ok = openssl_verify(tmp_path, cert, purpose)
        assert ok.returncode == 0, ok.stdout + ok.stderr
    assert mutual_tls_handshake(tmp_path).ok
    assert verify_lab(tmp_path).ok


def test_both_views_draw_the_intermediate(chain_copy: Path) -> None:
    from mqtt_pki_lab.graph import diagram_view, trust_view

    view = diagram_view(chain_copy)
    assert [n.file.relpath for n in view.box(D.INTERMEDIATE)] == list(CHAIN_FILES)
    numbers = {n for a in view.arrows for n in a.numbers}
    assert {13, 14, 15, 5, 8} <= numbers
    signing = {a.numbers for a in view.arrows if a.kind == "sign"}
    assert (5, 8) in signing and (15,) in signing  # the intermediate signs the leaves, the root the intermediate
    assert "Intermediate CA" in view.dot
    trust = trust_view(chain_copy, verify_lab(chain_copy))
    kinds = {c.kind for c in trust.certs}
    assert {"root", "intermediate", "leaf", "anchor"} <= kinds
    names = {c.id: c.file.relpath if c.file is not None else c.id for c in trust.certs}
    signed = {(names.get(link.issuer, link.issuer), names.get(link.subject, link.subject))
              for link in trust.links if link.kind == "signed"}
    assert ("ca/ca.crt", "intermediate/intermediate.crt") in signed
    assert ("intermediate/intermediate.crt", "broker/server.crt") in signed
    assert ("intermediate/intermediate.crt", "client/client.crt") in signed
    assert all(c.ok for c in trust.certs)


def test_build_reports_progress_and_the_cli_draws_a_bar_when_it_is_slow(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, int, str]] = []
    list(Lab(tmp_path / "quick", BuildOptions(intermediate=True)).build(progress=lambda *a: calls.append(a)))
    assert [c[0] for c in calls] == list(range(1, 14)) and {c[1] for c in calls} == {13}
    assert calls[2][2] == "intermediate CA: generate intermediate.key"

    import mqtt_pki_lab.steps as engine
    from mqtt_pki_lab import cli

    real = engine.generate_key

    def slow(kind: str):  # an RSA-4096 build on a slow machine, without waiting for four RSA-4096 keys
        time.sleep(0.3)
        return real(kind)

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(engine, "generate_key", slow)
    monkeypatch.setattr(sys, "stderr", Terminal())
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    assert cli.main(["build", str(tmp_path / "slow"), "--intermediate"]) == 0
    drawn = sys.stderr.getvalue()
    assert "build:" in drawn and "step" in drawn, drawn
    quiet = Terminal()
    monkeypatch.setattr(engine, "generate_key", real)
    monkeypatch.setattr(sys, "stderr", quiet)
    assert cli.main(["build", str(tmp_path / "fast"), "--intermediate"]) == 0
    assert quiet.getvalue() == ""  # a quick build draws nothing
    assert os.listdir(tmp_path / "slow" / "intermediate")
