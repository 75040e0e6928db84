"""The MQTT check, with either broker: the good client gets through, the three intruders are refused, and
every outcome is explained in the words of ``verify``. Also the ``mqtt`` command's exit codes."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from conftest import require_program, run_cli

pytest.importorskip("paho.mqtt")
pytest.importorskip("amqtt")

from mqtt_pki_lab import cli
from mqtt_pki_lab import diagram as L
from mqtt_pki_lab.errors import InputError
from mqtt_pki_lab.mqtt_client import RoundTrip
from mqtt_pki_lab.mqtt_proof import MqttOutcome, mqtt_check, require_libraries

BROKERS = ["embedded", "mosquitto"]


def _need(broker: str) -> None:
    if broker == "mosquitto":
        require_program("mosquitto")


@pytest.fixture
def foreign_client_lab(lab_copy: Path, lab_factory) -> Path:
    """The lab, but client.crt/client.key come from another CA (same client name)."""
    other = lab_factory(ca_name="Some Other CA")
    for file in (L.CLIENT_CERT, L.CLIENT_KEY):
        shutil.copyfile(file.path(other), file.path(lab_copy))
    return lab_copy


@pytest.mark.parametrize("broker", BROKERS)
def test_good_client_through_intruders_refused_and_explained(built_lab: Path, broker: str) -> None:
    _need(broker)
    report = mqtt_check(built_lab, broker)
    assert report.ok, report
    good, bare, foreign, distrust = report.outcomes
    assert good.trip.ok and good.diagnosis is None
    assert (bare.trip.refused_by, bare.broker_reason) == ("broker", "peer did not return a certificate")
    assert bare.diagnosis.code == "no-client-cert" and bare.diagnosis.file == "client/client.crt"
    assert foreign.trip.refused_by == "broker" and "certificate verify failed" in foreign.reason
    assert foreign.diagnosis.code == "untrusted-issuer" and foreign.diagnosis.file == "broker/ca.crt"
    assert distrust.trip.refused_by == "client" and distrust.diagnosis.file == "client/ca.crt"
    assert distrust.diagnosis.code == "untrusted-issuer"
    assert ("mosquitto" in report.broker) == (broker == "mosquitto")
    text = str(report)
    assert text.startswith(f"MQTT over mutual TLS with {report.broker} on 127.0.0.1:") and "PASSED" in text
    assert text.count("[PASS]") == 4 + 1  # the four outcomes, and what the one client may not do (broker/acl)
    # An intruder refused as it must be is explained, but no "fix" is offered: nothing is broken.
    assert "Fix:" not in text and "Fix:" not in report._repr_html_()
    assert text.count("why refused:") == 3 and "nothing to fix" in text
    html = report._repr_html_()
    assert html.count("&#10004;") == 4 + 1 and "no certificate" in html and "<script" not in html


@pytest.mark.parametrize("broker", BROKERS)
def test_client_certificate_from_another_ca_fails_the_check(foreign_client_lab: Path, broker: str) -> None:
    _need(broker)
    report = mqtt_check(foreign_client_lab, broker)
    assert not report.ok
    assert [o.name for o in report.failures] == ["good client"]
    good = report.failures[0]
    assert good.trip.refused_by == "broker" and "had to get through" in good.verdict
    assert good.diagnosis.code == "untrusted-issuer" and good.diagnosis.file == "broker/ca.crt"
    assert "[FAIL] good client" in str(report) and "FAILED" in str(report)


def test_an_intruder_let_in_fails_the_check() -> None:
    let_in = MqttOutcome("no certificate", "client/ca.crt only", "broker", RoundTrip(True, "done"))
    assert not let_in.passed and "let an intruder in" in let_in.verdict
    wrong_side = MqttOutcome("trusts another CA", "x", "client",
                             RoundTrip(False, "connack", "broker", "CONNACK: Not authorized"))
    assert not wrong_side.passed and "had to be refused by the client" in wrong_side.verdict


@pytest.mark.parametrize("broker", BROKERS)
def test_cli_mqtt_exit_codes(built_lab: Path, foreign_client_lab: Path, broker: str) -> None:
    _need(broker)
    done = run_cli("mqtt", str(built_lab), "--broker", broker)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PASSED" in done.stdout and done.stdout.count("[PASS]") == 4 + 1  # + the access row
    failed = run_cli("mqtt", str(foreign_client_lab), "--broker", broker)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "Traceback" not in failed.stdout + failed.stderr
    assert "[FAIL] good client" in failed.stdout and "broker/ca.crt" in failed.stdout


def test_cli_mqtt_missing_lab_and_missing_mosquitto(tmp_path: Path, built_lab: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    done = run_cli("mqtt", str(tmp_path / "nothing-here"))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "missing" in done.stderr and "mqtt-pki-lab build" in done.stderr
    import mqtt_pki_lab.mosquitto as m

    monkeypatch.setattr(m, "find_mosquitto", lambda: None)
    assert cli.main(["mqtt", str(built_lab), "--broker", "mosquitto"]) == 2
    err = capsys.readouterr().err
    assert "mosquitto program is not installed" in err and "apt-get install mosquitto" in err


def test_damaged_client_certificate_is_explained_not_a_traceback(lab_copy: Path) -> None:
    L.CLIENT_CERT.path(lab_copy).write_text("hello\n")
    done = run_cli("mqtt", str(lab_copy))
    assert done.returncode == 2 and "Traceback" not in done.stderr and "client.crt" in done.stderr, done.stderr


def test_encrypted_keys_with_a_passphrase_file(lab_factory, tmp_path: Path) -> None:
    lab = lab_factory(passphrase=b"correct horse", encrypt_all=True)
    secret = tmp_path / "pass.txt"
    secret.write_text("correct horse\n")
    assert run_cli("mqtt", str(lab)).returncode == 2  # no passphrase: explained, exit 2
    done = run_cli("mqtt", str(lab), "--passphrase-file", str(secret))
    assert done.returncode == 0, done.stdout + done.stderr


def test_missing_libraries_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("amqtt", "amqtt.broker"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(InputError, match=r"amqtt not installed: pip install --upgrade mqtt-pki-lab"):
        require_libraries("embedded")
    require_libraries("mosquitto")  # mosquitto needs only paho-mqtt
