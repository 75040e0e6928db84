"""The break-it catalogue: every scenario breaks a copy in one way, and verify diagnoses exactly that."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import REPO, python313, require, run_cli
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from mqtt_pki_lab import diagram as L
from mqtt_pki_lab.breakit import (
    FOREIGN_CA_NAME,
    SCENARIO_BY_ID,
    SCENARIOS,
    break_lab,
    catalogue,
    get_scenario,
    run_catalogue,
)
from mqtt_pki_lab.errors import InputError, RefusedError
from mqtt_pki_lab.files import mode_of
from mqtt_pki_lab.keys import is_encrypted_key_pem
from mqtt_pki_lab.pem import load_certificate
from mqtt_pki_lab.verify import verify_lab

IDS = [s.id for s in SCENARIOS]


def _digest(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() + oct(mode_of(p))
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_catalogue_has_the_fourteen_cases_of_the_issue() -> None:
    assert len(SCENARIOS) >= 14 and len(SCENARIO_BY_ID) == len(SCENARIOS)
    covered = {s.expected.code for s in SCENARIOS}
    assert {"untrusted-issuer", "foreign-issuer", "no-client-cert", "key-mismatch", "expired", "not-yet-valid",
            "name-mismatch", "wrong-purpose", "ca-profile", "weak-key", "orphaned", "secret-leak"} <= covered
    for scenario in SCENARIOS:
        assert scenario.title and scenario.breaks and scenario.expected.phrase
        assert L.step_title(scenario.expected.arrow) is not None  # an arrow 1-10 or a day-two step
        assert scenario.id in catalogue()


@pytest.fixture
def source_of(built_lab: Path, lab_factory: Callable[..., Path]) -> Callable[[str], Path]:
    """The lab a scenario breaks: the session's one-level lab, or a chain of three (``build --intermediate``)
    for a scenario of the chain (``Scenario.chain``)."""
    return lambda scenario_id: lab_factory(intermediate=True) if get_scenario(scenario_id).chain else built_lab


@pytest.mark.parametrize("scenario_id", IDS)
def test_scenario_breaks_a_copy_and_verify_diagnoses_it_exactly(scenario_id: str, source_of: Callable[[str], Path],
                                                                tmp_path: Path) -> None:
    src = source_of(scenario_id)
    before = _digest(src)
    scenario = get_scenario(scenario_id)
    out = break_lab(src, scenario_id, tmp_path / "broken")
    assert out == tmp_path / "broken" and out.is_dir()
    assert _digest(src) == before, "the source lab must not change"
    assert _digest(out) != before
    assert [p.name for p in tmp_path.iterdir()] == ["broken"], "no temporary folder left behind"
    for key in [*out.rglob("*.key")]:
        assert mode_of(key) == 0o600, key
    assert mode_of(out / "ca") == 0o700

    report = verify_lab(out)
    expected = scenario.expected
    assert report.ok == expected.intended  # a revoked client is refused on purpose: verify passes
    diagnosis, handshake = expected.judged(report)
    assert diagnosis is not None
    assert (diagnosis.code, diagnosis.arrow, diagnosis.file) == (expected.code, expected.arrow, expected.file), \
        str(report)
    assert expected.phrase in str(diagnosis)
    assert scenario.expected.mismatches(report) == []
    if expected.intended:
        assert handshake is not None and handshake.refused_by == "broker" and not report.failures
        return
    # The first failing check carries the diagnosis; the handshake agrees on the kind of problem.
    assert report.failures[0].diagnosis == diagnosis
    if expected.handshake is None:
        assert report.handshake is not None and report.handshake.ok
    else:
        assert report.handshake is not None and not report.handshake.ok
        assert report.handshake.diagnosis is not None and report.handshake.diagnosis.code == expected.handshake


@pytest.mark.parametrize("key_type", ["ed25519", "rsa-2048", "ec-p384"])
def test_catalogue_works_for_every_key_type(key_type: str, lab_factory: Callable[..., Path], tmp_path: Path
                                            ) -> None:
    outcomes = run_catalogue(lab_factory(key_type=key_type), tmp_path)
    one_level = [s for s in SCENARIOS if not s.chain]  # the chain's scenarios: test_chain_mysteries.py
    assert len(outcomes) == len(one_level)
    assert {o.scenario.id: o.mismatches for o in outcomes} == {s.id: [] for s in one_level}


def test_broken_files_are_made_with_the_labs_profile(built_lab: Path, tmp_path: Path) -> None:
    """A broken certificate differs from the good one in the one respect the scenario names."""
    good = load_certificate(L.CLIENT_CERT.path(built_lab))

    def ext(cert: x509.Certificate, kind: type) -> x509.ExtensionType:
        return cert.extensions.get_extension_for_class(kind).value

    foreign = load_certificate(L.CLIENT_CERT.path(break_lab(built_lab, "client-cert-foreign-ca", tmp_path / "f")))
    assert foreign.subject == good.subject and foreign.issuer != good.issuer
    assert FOREIGN_CA_NAME in foreign.issuer.rfc4514_string()
    for kind in (x509.ExtendedKeyUsage, x509.SubjectAlternativeName, x509.KeyUsage, x509.BasicConstraints):
        assert ext(foreign, kind) == ext(good, kind)

    expired = load_certificate(L.CLIENT_CERT.path(break_lab(built_lab, "client-expired", tmp_path / "e")))
    assert expired.issuer == good.issuer and expired.not_valid_after_utc < good.not_valid_before_utc
    assert list(ext(expired, x509.ExtendedKeyUsage)) == [ExtendedKeyUsageOID.CLIENT_AUTH]

    no_name = load_certificate(L.SERVER_CERT.path(break_lab(built_lab, "server-name-missing", tmp_path / "n")))
    assert ext(no_name, x509.SubjectAlternativeName).get_values_for_type(x509.DNSName) == ["mqtt.example.com"]

    ca = load_certificate(L.CA_CERT.path(break_lab(built_lab, "ca-without-keycertsign", tmp_path / "k")))
    assert not ext(ca, x509.KeyUsage).key_cert_sign and ext(ca, x509.BasicConstraints).ca
    assert (tmp_path / "k/broker/ca.crt").read_bytes() == (tmp_path / "k/ca/ca.crt").read_bytes()


def test_out_must_not_exist(built_lab: Path, tmp_path: Path) -> None:
    out = tmp_path / "taken"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(RefusedError, match="already exists"):
        break_lab(built_lab, "client-expired", out)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_bad_requests_are_explained(built_lab: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown scenario 'nope'; choose one of: client-trusts-wrong-ca"):
        break_lab(built_lab, "nope", tmp_path / "x")
    with pytest.raises(InputError, match="no such lab folder"):
        break_lab(tmp_path / "missing", "client-expired", tmp_path / "x")
    half = tmp_path / "half"
    (half / "ca").mkdir(parents=True)
    with pytest.raises(InputError, match="not a complete lab"):
        break_lab(half, "client-expired", tmp_path / "x")
    with pytest.raises(InputError, match="no such folder"):
        break_lab(built_lab, "client-expired", tmp_path / "no" / "where")
    with pytest.raises(InputError, match="inside the lab"):
        break_lab(built_lab, "client-expired", built_lab / "broken")
    assert not (tmp_path / "x").exists() and not (built_lab / "broken").exists()


def test_encrypted_lab_needs_its_passphrase_and_stays_encrypted(lab_factory: Callable[..., Path],
                                                                tmp_path: Path) -> None:
    root = lab_factory(passphrase=b"course secret", encrypt_all=True)
    with pytest.raises(InputError, match="encrypted"):
        break_lab(root, "client-expired", tmp_path / "x")
    assert list(tmp_path.iterdir()) == [], "nothing half-broken left behind"
    for scenario_id in ("client-expired", "ca-regenerated", "key-mismatch", "weak-rsa-key"):
        out = break_lab(root, scenario_id, tmp_path / scenario_id, passphrase=b"course secret")
        for key in (L.CA_KEY, L.SERVER_KEY, L.CLIENT_KEY):
            assert is_encrypted_key_pem(key.path(out).read_bytes()), (scenario_id, key)
        report = verify_lab(out, password=b"course secret")
        assert get_scenario(scenario_id).expected.mismatches(report) == [], str(report)


def test_cli_break_then_verify(built_lab: Path, tmp_path: Path) -> None:
    out = tmp_path / "broken"
    done = run_cli("break", str(built_lab), "client-trusts-wrong-ca", str(out))
    assert done.returncode == 0, done.stderr
    assert "the client trusts the wrong CA" in done.stdout and f"mqtt-pki-lab verify {out}" in done.stdout
    again = run_cli("break", str(built_lab), "client-trusts-wrong-ca", str(out))
    assert again.returncode == 1 and "already exists" in again.stderr and "Traceback" not in again.stderr
    checked = run_cli("verify", str(out))
    assert checked.returncode == 1
    assert "FAILED: arrow 9 (hand ca.crt to the broker and the client), client/ca.crt:" in checked.stdout


def test_cli_break_usage_errors(built_lab: Path, tmp_path: Path) -> None:
    listed = run_cli("break", "--list")
    assert listed.returncode == 0 and all(s.id in listed.stdout for s in SCENARIOS)
    for args in (("break", str(built_lab)), ("break", str(built_lab), "nope", str(tmp_path / "x")),
                 ("break", str(tmp_path / "none"), "client-expired", str(tmp_path / "y"))):
        done = run_cli(*args)
        assert done.returncode == 2, (args, done.stderr)
        assert done.stderr.startswith("mqtt-pki-lab break: ") and "Traceback" not in done.stderr


# --- the same catalogue under Python 3.13 (its default contexts are strict) ---------------------------------

PY313_CATALOGUE = textwrap.dedent("""
    import json, ssl, sys, tempfile
    from pathlib import Path
    from mqtt_pki_lab.steps import Lab
    from mqtt_pki_lab.breakit import run_catalogue
    from mqtt_pki_lab.verify import verify_lab
    work = Path(tempfile.mkdtemp(dir=sys.argv[1]))
    Lab(work / "pki").build_all()
    good = verify_lab(work / "pki")
    outcomes = run_catalogue(work / "pki", work)
    print(json.dumps({
        "python": sys.version.split()[0],
        "strict_by_default": bool(ssl.create_default_context().verify_flags & ssl.VERIFY_X509_STRICT),
        "good": good.ok,
        "mismatches": {o.scenario.id: o.mismatches for o in outcomes},
        "diagnoses": {o.scenario.id: str(o.diagnosis) for o in outcomes},
    }))
""")


def python313_with_cryptography() -> str | None:
    """``$MQTT_PKI_LAB_PYTHON313`` when set, else conftest's :func:`python313` if it can import cryptography."""
    chosen = os.environ.get("MQTT_PKI_LAB_PYTHON313")
    if chosen:
        return chosen
    candidate = python313()
    if candidate is None:
        return None
    probe = subprocess.run([candidate, "-c", "import cryptography"], capture_output=True, timeout=60)
    return candidate if probe.returncode == 0 else None


def test_catalogue_under_python313(tmp_path: Path) -> None:
    interpreter = python313_with_cryptography()
    require(interpreter is not None, "no Python 3.13 with cryptography: set MQTT_PKI_LAB_PYTHON313 to one "
                                     "(e.g. a venv made with pyenv's 3.13 and `pip install -e .`)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([interpreter, "-c", PY313_CATALOGUE, str(tmp_path)], capture_output=True, text=True,
                          timeout=300, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["python"].startswith("3.13.")
    assert result["strict_by_default"] is True
    assert result["good"] is True
    one_level = [s for s in SCENARIOS if not s.chain]  # run_catalogue leaves out the chain's on a one-level lab
    assert result["mismatches"] == {s.id: [] for s in one_level}
    for scenario in one_level:
        assert result["diagnoses"][scenario.id].startswith(f"{L.step_label(scenario.expected.arrow)} ")


@pytest.mark.parametrize("scenario_id", IDS)
def test_raw_errors_are_the_tools_words_and_never_the_diagnosis(scenario_id: str, source_of: Callable[[str], Path],
                                                                 tmp_path: Path) -> None:
    from mqtt_pki_lab.breakit import raw_errors

    out = break_lab(source_of(scenario_id), scenario_id, tmp_path / "broken")
    raw = raw_errors(out)
    diagnosis = get_scenario(scenario_id).expected.judged(verify_lab(out))[0]
    assert diagnosis is not None
    text = str(raw)
    for secret in (diagnosis.problem, diagnosis.fix, get_scenario(scenario_id).title, scenario_id):
        assert secret not in text
    assert "arrow" not in text.lower() and "PRIVATE KEY" not in text
    # The handshake's own verdict and the raw errors agree: an error exactly when the handshake fails.
    assert raw.handshake_ok == (get_scenario(scenario_id).expected.handshake is None)
    for side in (raw.client, raw.broker):
        assert side.side in str(side)
        if side.words is not None:
            assert side.role in ("refused", "was told", "cannot start") and "_ssl.c" not in side.words


def test_openssl_verify_runs_as_a_student_would_type_it(built_lab: Path, tmp_path: Path) -> None:
    from mqtt_pki_lab.breakit import openssl_verify

    missing = openssl_verify(built_lab, program=str(tmp_path / "no-openssl"))
    assert all(run.output and run.output.startswith("(could not run openssl") for run in missing)
    require(shutil.which("openssl") is not None, "openssl is not installed")
    runs = openssl_verify(break_lab(built_lab, "client-trusts-wrong-ca", tmp_path / "broken"))
    assert [r.command for r in runs] == [
        "openssl verify -x509_strict -purpose sslserver -CAfile client/ca.crt broker/server.crt",
        "openssl verify -x509_strict -purpose sslclient -CAfile broker/ca.crt client/client.crt"]
    assert runs[0].exit_code != 0 and "unable to get local issuer certificate" in str(runs[0].output)
    assert runs[1].exit_code == 0 and str(runs[1].output).endswith("client/client.crt: OK")


def test_each_scenario_fits_its_kind_of_lab(built_lab: Path, lab_factory: Callable[..., Path], tmp_path: Path) -> None:
    """A chain scenario needs a lab with an intermediate CA; the rotation's needs one without (the lab rotates
    one-level labs only): each is left out of the other kind's catalogue, and refused in one clear line."""
    from mqtt_pki_lab.breakit import scenarios_for
    from mqtt_pki_lab.errors import InputError

    chain = lab_factory(intermediate=True)
    one_level_ids = {s.id for s in scenarios_for(built_lab)}
    chain_ids = {s.id for s in scenarios_for(chain)}
    assert "client-trusts-old-root" in one_level_ids and "client-trusts-old-root" not in chain_ids
    assert "server-without-intermediate" in chain_ids and "server-without-intermediate" not in one_level_ids
    with pytest.raises(InputError, match="has an intermediate CA, and client-trusts-old-root breaks a CA rotation"):
        break_lab(chain, "client-trusts-old-root", tmp_path / "refused")
    assert not (tmp_path / "refused").exists()
