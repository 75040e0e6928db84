"""A lab with many clients over real MQTT: every client makes its own round trip, the intruders are tried once,
and a refusal names the files of the client that was refused (``clients/sensor-3/ca.crt``, not ``client/``).

Also the ``--timeout`` check of :func:`~mqtt_pki_lab.mqtt_proof.mqtt_check`, which runs before any broker starts.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
from conftest import require_program, run_cli

pytest.importorskip("paho.mqtt")
pytest.importorskip("amqtt")

from mqtt_pki_lab import diagram as L
from mqtt_pki_lab.errors import InputError
from mqtt_pki_lab.mqtt_proof import GOOD_CLIENT, MAX_TIMEOUT, check_timeout, mqtt_check
from mqtt_pki_lab.steps import Lab

BROKERS = ["embedded", "mosquitto"]
FURTHER = ("sensor-1", "sensor-2", "sensor-3", "sensor-4")


def _need(broker: str) -> None:
    if broker == "mosquitto":
        require_program("mosquitto")


@pytest.fixture(scope="module")
def fleet_lab(built_lab: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built lab plus four further clients in ``clients/sensor-1`` ... ``clients/sensor-4``: five in all.
    Do not modify it (use ``fleet_copy``)."""
    root = tmp_path_factory.mktemp("fleet") / "pki"
    shutil.copytree(built_lab, root)
    Lab(root).add_clients(FURTHER)
    assert len(Lab(root).roles.clients) == 5
    return root


@pytest.fixture
def fleet_copy(fleet_lab: Path, tmp_path: Path) -> Path:
    target = tmp_path / "pki"
    shutil.copytree(fleet_lab, target)
    return target


@pytest.mark.parametrize("broker", BROKERS)
def test_five_clients_each_get_through_and_the_intruders_are_refused(fleet_lab: Path, broker: str) -> None:
    _need(broker)
    report = mqtt_check(fleet_lab, broker)
    assert report.ok, report
    goods = [o for o in report.outcomes if o.name == GOOD_CLIENT]
    intruders = [o.name for o in report.outcomes if o.name != GOOD_CLIENT]
    assert intruders == ["no certificate", "certificate from another CA", "trusts another CA"]
    assert [o.client for o in goods] == [L.FIRST_CLIENT, *(L.client_role(n) for n in FURTHER)]
    assert goods[0].uses == "client/ca.crt, client/client.crt, client/client.key"
    for outcome, name in zip(goods[1:], FURTHER, strict=True):
        assert outcome.uses == f"clients/{name}/ca.crt, clients/{name}/client.crt, clients/{name}/client.key"
        assert outcome.trip.ok and outcome.diagnosis is None
    assert all(o.client == L.FIRST_CLIENT for o in report.outcomes[5:])  # the intruders use client/'s files
    text = str(report)
    assert text.count("[PASS]") == 8 + 5 and "PASSED" in text  # + what each of the 5 may not do (broker/acl)
    assert "clients/sensor-4/client.key" in report._repr_html_()
    # every client logged in under its own name: the certificate's CN is the MQTT username
    usernames = ("u'client'", *(f"u'{n}'" for n in FURTHER)) if broker == "mosquitto" else \
        ("username 'client'", *(f"username '{n}'" for n in FURTHER))
    for username in usernames:
        assert any(username in line for line in report.broker_log), (username, report.broker_log)


@pytest.mark.parametrize("broker", BROKERS)
def test_a_further_client_that_trusts_another_ca_is_named(fleet_copy: Path, lab_factory, broker: str) -> None:
    """sensor-3 has the wrong ca.crt: only its round trip fails, and the diagnosis names *its* ca.crt."""
    _need(broker)
    other = lab_factory(ca_name="Some Other CA")
    shutil.copyfile(L.CA_CERT.path(other), L.client_role("sensor-3").file("trust").path(fleet_copy))
    report = mqtt_check(fleet_copy, broker)
    assert not report.ok
    (failed,) = report.failures
    assert failed.name == GOOD_CLIENT and failed.client == L.client_role("sensor-3")
    assert failed.uses.startswith("clients/sensor-3/ca.crt")
    assert failed.trip.refused_by == "client" and "had to get through" in failed.verdict
    assert failed.diagnosis.code == "untrusted-issuer" and failed.diagnosis.file == "clients/sensor-3/ca.crt"
    assert len([o for o in report.outcomes if o.passed]) == 7


def test_a_further_client_with_a_missing_file_is_named_before_any_broker_starts(fleet_copy: Path) -> None:
    L.client_role("sensor-2").file("crt").path(fleet_copy).unlink()
    with pytest.raises(InputError, match=r"missing: the certificate of client 'sensor-2'") as caught:
        mqtt_check(fleet_copy, "embedded")
    assert caught.value.where.endswith("clients/sensor-2/client.crt")
    assert "mqtt-pki-lab add-client" in caught.value.problem and "sensor-2" in caught.value.problem
    done = run_cli("mqtt", str(fleet_copy))
    assert done.returncode == 2 and "Traceback" not in done.stderr and "clients/sensor-2/client.crt" in done.stderr


@pytest.mark.parametrize("timeout", ["5", None, True, math.nan, math.inf, -math.inf, 0, 0.0, -1, -0.5,
                                     MAX_TIMEOUT + 0.001, 301, 1e9])
def test_timeout_must_be_a_sensible_number_of_seconds(built_lab: Path, timeout: object) -> None:
    with pytest.raises(InputError) as caught:
        mqtt_check(built_lab, "embedded", timeout=timeout)  # type: ignore[arg-type]
    assert caught.value.where == "--timeout"


def test_timeout_limits_that_are_accepted() -> None:
    assert check_timeout(5) == 5.0 and check_timeout(0.25) == 0.25 and check_timeout(MAX_TIMEOUT) == MAX_TIMEOUT


@pytest.mark.parametrize("value", ["nan", "inf", "0", "-3", "301"])
def test_cli_timeout_is_refused_without_a_traceback(built_lab: Path, value: str) -> None:
    done = run_cli("mqtt", str(built_lab), f"--timeout={value}")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "--timeout" in done.stderr and "Traceback" not in done.stderr
