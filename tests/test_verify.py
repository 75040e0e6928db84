"""``verify``: the checks before the handshake, the report, and the ``mqtt-pki-lab verify`` command."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import require_program, run_cli
from cryptography import x509

from mqtt_pki_lab import checks as C
from mqtt_pki_lab import diagram as L
from mqtt_pki_lab.breakit import SCENARIOS, break_lab, careless_issue, foreign_ca
from mqtt_pki_lab.certificates import signature_hash
from mqtt_pki_lab.errors import InputError
from mqtt_pki_lab.keys import generate_key, key_problem, load_private_key, save_key
from mqtt_pki_lab.pem import load_certificate, load_csr, save_pem
from mqtt_pki_lab.profile import ca_extensions, subject
from mqtt_pki_lab.verify import VerifyReport, verify_lab


def _fails(report: VerifyReport) -> list[tuple[str | None, int | None, str | None]]:
    return [(c.diagnosis.code, c.diagnosis.arrow, c.diagnosis.file) for c in report.failures if c.diagnosis]


def test_a_fresh_build_passes_every_check_and_the_handshake(built_lab: Path) -> None:
    report = verify_lab(built_lab)
    assert report.ok and report.diagnosis is None
    assert [c.status for c in report.checks] == ["pass"] * len(report.checks)
    names = " | ".join(c.name for c in report.checks)
    for question in ("files present", "server.key matches server.crt", "client trusts broker",
                     "broker trusts client", "validity of broker/server.crt", "made for the client (clientAuth)",
                     "covers 'localhost'", "CA profile of ca/ca.crt", "strong keys", "secrets stay home"):
        assert question in names
    assert report.handshake is not None and report.handshake.ok
    text = str(report)
    assert text.splitlines()[-1] == "OK: the broker's files and the client's files work together."
    assert "[FAIL]" not in text and "handshake PASSED" in text
    html = report._repr_html_()
    assert "work together" in html and "Handshake passed" in html and "✘" not in html


@pytest.mark.parametrize("options", [{"key_type": "rsa-2048"}, {"key_type": "ed25519"},
                                     {"server_names": ("mqtt.example.com",), "client_name": "sensor-7"}])
def test_other_builds_pass_too(options: dict, lab_factory: Callable[..., Path]) -> None:
    root = lab_factory(**options)
    for name in (*options.get("server_names", ()), "localhost", "127.0.0.1", "::1"):
        assert verify_lab(root, name).ok, str(verify_lab(root, name))


def test_hostname_outside_the_san_names_the_csr(built_lab: Path) -> None:
    report = verify_lab(built_lab, "mqtt.example.com")
    assert not report.ok
    assert _fails(report) == [("name-mismatch", 4, "broker/server.csr")]
    assert "server.csr did not ask for that name either" in str(report.diagnosis)
    assert "--server-name mqtt.example.com" in report.diagnosis.fix
    assert report.handshake is not None and report.handshake.refused_by == "client"


@pytest.mark.parametrize("pattern, hostname, matches", [
    ("localhost", "localhost", True), ("LocalHost.", "localhost", True), ("127.0.0.1", "127.0.0.1", True),
    ("::1", "0:0:0:0:0:0:0:1", True), ("127.0.0.1", "localhost", False), ("localhost", "127.0.0.1", False),
    ("*.example.com", "mqtt.example.com", True), ("*.example.com", "a.b.example.com", False),
    ("*.example.com", "example.com", False), ("mqtt.example.com", "mqtt.example.org", False),
])
def test_name_matching(pattern: str, hostname: str, matches: bool) -> None:
    assert C.name_matches(pattern, hostname) is matches


# --- broken and odd files: a diagnosis, never an exception -------------------------------------------------

def _write(data: bytes) -> Callable[[Path], None]:
    return lambda path: path.write_bytes(data)


ODD_FILES = {
    "der": ("broker/server.crt", _write(b"\x30\x82\x01\x00" + bytes(200)), "unreadable-file", 5, "binary DER"),
    "random": ("client/client.crt", _write(os.urandom(300)), "unreadable-file", 8, "not a PEM file"),
    "key-as-ca": ("client/ca.crt", lambda p: shutil.copy(p.parent / "client.key", p), "unreadable-file", 9,
                  "this is a private key"),
    "cert-as-key": ("client/client.key", lambda p: shutil.copy(p.parent / "client.crt", p), "unreadable-file", 6,
                    "this is a certificate"),
    "empty": ("broker/ca.crt", _write(b""), "unreadable-file", 9, "empty"),
    "damaged-pem": ("broker/server.crt", _write(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
                    "unreadable-file", 5, "damaged"),
    "folder": ("broker/server.key", lambda p: (p.unlink(), p.mkdir()), "unreadable-file", 3, "a folder"),
    "missing": ("broker/ca.crt", lambda p: p.unlink(), "missing-file", 9, "broker/ca.crt is missing"),
    # A link is never followed, dangling or not: the lab's files are real files.
    "dangling-link": ("client/ca.crt", lambda p: (p.unlink(), p.symlink_to(p.parent / "nowhere")), "unreadable-file",
                      9, "symbolic link"),
}


@pytest.mark.parametrize("case", ODD_FILES, ids=list(ODD_FILES))
def test_odd_files_are_diagnosed(case: str, lab_copy: Path) -> None:
    relpath, damage, code, arrow, phrase = ODD_FILES[case]
    damage(lab_copy / relpath)
    report = verify_lab(lab_copy)
    assert not report.ok
    assert _fails(report)[0] == (code, arrow, relpath)
    assert phrase in str(report.diagnosis)
    assert report.handshake is None and report.skipped and relpath in report.skipped
    assert "[skip] handshake" in str(report)
    done = run_cli("verify", str(lab_copy))
    assert done.returncode == 1 and "Traceback" not in done.stderr + done.stdout
    assert f"FAILED: arrow {arrow} " in done.stdout


def test_a_deployed_folder_without_ca_and_csrs_still_verifies(lab_copy: Path) -> None:
    shutil.rmtree(lab_copy / "ca")
    for csr in (L.SERVER_CSR, L.CLIENT_CSR):
        csr.path(lab_copy).unlink()
    report = verify_lab(lab_copy)
    assert report.ok, str(report)
    assert "not here: ca/ca.key, ca/ca.crt, broker/server.csr, client/client.csr" in report.checks[0].message


def test_damaged_optional_files_only_warn(lab_copy: Path) -> None:
    L.SERVER_CSR.path(lab_copy).write_bytes(b"junk")
    report = verify_lab(lab_copy)
    assert report.ok
    assert [c.name for c in report.warnings] == ["broker/server.csr readable"]
    assert "1 warning" in str(report).splitlines()[-1]


def test_keys_readable_by_others_warn(lab_copy: Path) -> None:
    L.CLIENT_KEY.path(lab_copy).chmod(0o644)
    report = verify_lab(lab_copy)
    assert report.ok
    assert any("mode 0644" in c.message and "chmod 600 client/client.key" in c.message for c in report.warnings)
    assert "⚠" in report._repr_html_()


def test_ca_key_under_another_name_is_found(lab_copy: Path) -> None:
    """A leaked ca.key is found by its public key, whatever the file is called."""
    key = load_private_key(L.CA_KEY.path(lab_copy))
    save_key(key, lab_copy / "client" / "backup.pem")
    save_key(generate_key(), lab_copy / "broker" / "spare.key")
    report = verify_lab(lab_copy)
    assert _fails(report) == [("secret-leak", 1, "client/backup.pem")]
    assert any(c.name == "broker/spare.key" and c.status == "warn" for c in report.checks)


def test_ca_key_used_as_a_role_key_is_a_leak(lab_copy: Path) -> None:
    shutil.copy(L.CA_KEY.path(lab_copy), L.SERVER_KEY.path(lab_copy))
    report = verify_lab(lab_copy)
    assert ("secret-leak", 1, "broker/server.key") in _fails(report)


def test_encrypted_keys_need_the_passphrase(lab_factory: Callable[..., Path], tmp_path: Path) -> None:
    root = lab_factory(passphrase=b"pw 123", encrypt_all=True)
    locked = verify_lab(root)
    assert not locked.ok and locked.handshake is None
    assert _fails(locked)[0] == ("bad-passphrase", 3, "broker/server.key")
    assert verify_lab(root, password=b"pw 123").ok
    wrong = verify_lab(root, password=b"nope")
    assert _fails(wrong)[0][0] == "unreadable-file" and "wrong passphrase" in str(wrong.diagnosis)
    secret = tmp_path / "pass.txt"
    secret.write_text("pw 123\n")
    assert run_cli("verify", str(root), "--passphrase-file", str(secret)).returncode == 0


def test_certificate_close_to_its_end_warns(lab_copy: Path) -> None:
    ca_cert, ca_key = load_certificate(L.CA_CERT.path(lab_copy)), load_private_key(L.CA_KEY.path(lab_copy))
    start = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=80)
    cert = careless_issue(load_csr(L.SERVER_CSR.path(lab_copy)), ca_cert, ca_key, "broker", not_before=start, days=90)
    save_pem(cert, L.SERVER_CERT.path(lab_copy))
    report = verify_lab(lab_copy)
    assert report.ok
    assert [c.name for c in report.warnings] == ["validity of broker/server.crt"]
    assert "renew it soon" in report.warnings[0].message


def test_expired_ca_is_blamed_on_arrow_2(lab_copy: Path) -> None:
    key = load_private_key(L.CA_KEY.path(lab_copy))
    old = load_certificate(L.CA_CERT.path(lab_copy))
    now = dt.datetime.now(dt.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(old.subject).issuer_name(old.subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(days=30)).not_valid_after(now - dt.timedelta(days=1)))
    for extension, critical in ca_extensions(key.public_key()):
        builder = builder.add_extension(extension, critical=critical)
    ca = builder.sign(key, signature_hash(key))
    for file in (L.CA_CERT, L.BROKER_CA, L.CLIENT_CA):
        save_pem(ca, file.path(lab_copy))
    report = verify_lab(lab_copy)
    assert _fails(report)[0] == ("expired", 2, "ca/ca.crt")
    assert report.handshake is not None and not report.handshake.ok


def test_broker_certificate_without_san_fails_and_cn_only_warns(lab_copy: Path) -> None:
    ca_cert, ca_key = load_certificate(L.CA_CERT.path(lab_copy)), load_private_key(L.CA_KEY.path(lab_copy))
    server = load_certificate(L.SERVER_CERT.path(lab_copy))
    ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (x509.CertificateBuilder().subject_name(subject("localhost")).issuer_name(ca_cert.subject)
               .public_key(server.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(server.not_valid_before_utc).not_valid_after(server.not_valid_after_utc)
               .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False))
    save_pem(builder.sign(ca_key, signature_hash(ca_key)), L.SERVER_CERT.path(lab_copy))
    cn_only = verify_lab(lab_copy, "localhost")
    name_check = next(c for c in cn_only.checks if c.name.startswith("broker/server.crt covers"))
    assert name_check.status == "warn" and "Common Name" in name_check.message
    by_ip = verify_lab(lab_copy, "127.0.0.1")
    assert _fails(by_ip) == [("name-mismatch", 5, "broker/server.crt")]
    assert "it has no subjectAltName" in str(by_ip.diagnosis)
    assert by_ip.handshake is not None and not by_ip.handshake.ok


def test_sha1_signature_is_weak_not_foreign(lab_copy: Path, tmp_path: Path) -> None:
    """`openssl x509 -req -sha1` still signs with SHA-1 (cryptography refuses to): verify calls it weak,
    and does not mistake it for a certificate signed by another CA."""
    openssl = require_program("openssl")
    ext = tmp_path / "server.ext"
    ext.write_text("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                   "extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n"
                   "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n")
    done = subprocess.run([openssl, "x509", "-req", "-in", "broker/server.csr", "-CA", "ca/ca.crt", "-CAkey",
                           "ca/ca.key", "-set_serial", "7", "-days", "90", "-sha1", "-extfile", str(ext),
                           "-out", "broker/server.crt"], cwd=lab_copy, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    report = verify_lab(lab_copy)
    assert _fails(report) == [("weak-signature", 5, "broker/server.crt")]
    assert "signed with SHA-1" in str(report.diagnosis)
    assert report.handshake is not None and "ca md too weak" in (report.handshake.reason or "")
    assert report.handshake.diagnosis is not None and report.handshake.diagnosis.code == "weak-signature"


def test_ca_profile_problems() -> None:
    key = generate_key()
    name = subject("Old Recipe CA")
    now = dt.datetime.now(dt.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
               .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True))
    problems = C.ca_profile_problems(builder.sign(key, signature_hash(key)))
    assert problems == ["it has no keyUsage extension (strict verifiers want keyCertSign)",
                        "it has no subjectKeyIdentifier"]
    assert C.ca_profile_problems(foreign_ca()[1]) == []


def test_key_weakness() -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    assert "RSA 1024" in (key_problem(rsa.generate_private_key(65537, 1024)) or "")
    assert key_problem(generate_key("ec-p256")) is None and key_problem(generate_key("ed25519")) is None


def test_each_file_is_parsed_once(built_lab: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: Counter[str] = Counter()

    def counting(loader):
        def load(path, *args, **kwargs):
            seen[str(path)] += 1
            return loader(path, *args, **kwargs)
        return load

    for name in ("load_certificates", "load_csr", "load_private_key"):  # a certificate file: all its certificates
        monkeypatch.setattr(C, name, counting(getattr(C, name)))
    assert verify_lab(built_lab).ok
    assert len(seen) == len(L.ALL_FILES) and set(seen.values()) == {1}


# --- the command --------------------------------------------------------------------------------------------

def test_cli_verify_exit_codes(built_lab: Path, tmp_path: Path) -> None:
    good = run_cli("verify", str(built_lab))
    assert good.returncode == 0 and good.stdout.rstrip().endswith("work together.")
    assert run_cli("verify", str(built_lab), "--hostname", "127.0.0.1").returncode == 0
    named = run_cli("verify", str(built_lab), "--hostname", "mqtt.example.com")
    assert named.returncode == 1 and "FAILED: arrow 4 (broker: create server.csr)" in named.stdout
    a_file = tmp_path / "file"
    a_file.write_text("x")
    for args, message in ((("verify", str(tmp_path / "none")), "no such lab folder"),
                          (("verify", str(a_file)), "is a file, not a lab folder"),
                          (("verify", str(built_lab), "--hostname", "bad name!"), "--hostname"),
                          (("verify",), "required"),
                          (("verify", str(built_lab), "--passphrase-file", str(tmp_path / "none")), "no such file")):
        done = run_cli(*args)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert message in done.stderr and "Traceback" not in done.stderr


def test_verify_lab_refuses_bad_input_clearly(built_lab: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such lab folder"):
        verify_lab(tmp_path / "none")
    with pytest.raises(InputError, match="--hostname"):
        verify_lab(built_lab, "bad name!")


@pytest.fixture(scope="module")
def catalogue_dir(built_lab: Path, lab_factory, tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("catalogue")
    for scenario in SCENARIOS:  # a scenario of the chain breaks a lab built with --intermediate
        break_lab(lab_factory(intermediate=True) if scenario.chain else built_lab, scenario, work / scenario.id)
    return work


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.id for s in SCENARIOS])
def test_cli_prints_the_expected_diagnosis(scenario, catalogue_dir: Path) -> None:
    folder = catalogue_dir / scenario.id
    done = run_cli("verify", str(folder))
    assert "Traceback" not in done.stdout + done.stderr
    expected = scenario.expected
    if expected.intended:  # a revoked client: verify passes, and says the refusal is the point
        assert done.returncode == 0, done.stdout
        refused = next(line for line in done.stdout.splitlines() if "refused, as it must be" in line)
        assert "certificate revoked" in refused and "revoked client is refused, as it must be" in done.stdout
        diagnosis, _ = expected.judged(verify_lab(folder))
        assert str(diagnosis).startswith(f"{L.step_label(expected.arrow)} (") and expected.phrase in str(diagnosis)
        return
    assert done.returncode == 1, done.stdout
    last = done.stdout.rstrip().splitlines()[-1]
    assert last.startswith(f"FAILED: {L.step_label(expected.arrow)} (") and f"), {expected.file}: " in last
    assert expected.phrase in last
    assert last == f"FAILED: {verify_lab(folder).diagnosis}"
