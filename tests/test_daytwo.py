"""Notebook 10's real-broker parts and its mysteries: who gets in after a revocation, a renewal picked up by
SIGHUP (mosquitto, same process), a renewal never reloaded, and evidence that gives nothing away."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from conftest import require_program

from mqtt_pki_lab import daytwo_mysteries as M
from mqtt_pki_lab.breakit import get_scenario
from mqtt_pki_lab.crl import revoke
from mqtt_pki_lab.daytwo import renew_and_reload, who_gets_in
from mqtt_pki_lab.pem import load_certificate
from mqtt_pki_lab.steps import Lab
from mqtt_pki_lab.verify import verify_lab

pytest.importorskip("paho.mqtt")
pytest.importorskip("amqtt")


@pytest.fixture
def lesson_lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Lab:
    """The course lab as notebook 10 starts on it: three clients, stolen-sensor revoked."""
    monkeypatch.setenv("MQTT_PKI_LAB_WORKDIR", str(tmp_path))
    lab = Lab(tmp_path / "pki")
    lab.build_all()
    lab.add_clients(["sensor-1", "stolen-sensor"])
    revoke(lab.root, "stolen-sensor", reason="keyCompromise")
    return lab


@pytest.mark.parametrize("broker", ["embedded", "mosquitto"])
def test_the_revoked_device_is_refused_and_the_others_get_in(lesson_lab: Lab, broker: str) -> None:
    if broker == "mosquitto":
        require_program("mosquitto")
    seen = who_gets_in(lesson_lab, ["client", "sensor-1", "stolen-sensor"], broker=broker)
    assert seen.admitted == {"client", "sensor-1"} and seen.refused == {"stolen-sensor"}, seen
    if broker == "mosquitto":  # mosquitto sends the alert (asked again: daytwo.broker_alert); amqtt just closes
        assert "stolen-sensor  refused by the broker at tls: sslv3 alert certificate revoked" in str(seen), seen
    assert broker in str(seen).splitlines()[0] or "amqtt" in str(seen).splitlines()[0]


def test_mosquitto_presents_the_renewed_certificate_only_after_sighup(lesson_lab: Lab) -> None:
    require_program("mosquitto")
    watch = renew_and_reload(lesson_lab)
    (_, before), (_, unsignalled), (_, after) = watch.seen
    assert before == unsignalled != after == watch.on_disk, watch
    assert watch.same_process and watch.pid is not None
    assert watch.on_disk == f"{load_certificate(lesson_lab.root / 'broker/server.crt').serial_number:x}"[:12]


def test_the_renewal_never_reloaded_is_seen_live_not_in_the_files(lesson_lab: Lab) -> None:
    case = M.open_reload_mystery(lesson_lab)
    try:
        shown = str(case)
        assert "certificate has expired" in shown and "refused by the client" in shown, shown
        disk = load_certificate(case.folder / "broker/server.crt")
        assert f"serial {disk.serial_number:x}" not in shown.split("$ openssl")[0]  # presented != on disk
        assert verify_lab(case.folder).ok  # the files are right: only the running broker is behind
        live = case.verify_live().diagnosis  # verify asked the running broker: step 12, in its own words
        assert live is not None and live.code == "not-reloaded" and live.arrow == 12, live
        assert f"{disk.serial_number:x}" in str(live)
        for secret in ("step 12", "SIGHUP", "reload", "renew"):
            assert secret not in shown.split("files of the copy")[0], secret
        again = case.reload()
        assert "in: CONNACK" in again and f"serial {disk.serial_number:x}" in again, again
        assert case.verify_live().ok
    finally:
        case.close()


@pytest.mark.parametrize("opener", ["open_revoked_mystery", "open_stale_mystery", "open_old_root_mystery"])
def test_the_evidence_gives_nothing_away(lesson_lab: Lab, opener: str) -> None:
    case = getattr(M, opener)(lesson_lab)
    text = str(case)
    scenario = get_scenario(case._scenario.id) if hasattr(case, "_scenario") else get_scenario("crl-stale")
    report = verify_lab(case.folder)
    diagnosis = scenario.expected.judged(report)[0]
    assert diagnosis is not None
    for secret in (diagnosis.problem, diagnosis.fix, scenario.title, scenario.id, "step 11", "step 16"):
        assert secret not in text, secret
    assert "PRIVATE KEY" not in text and len(text) < 2500
    assert lesson_lab.root not in case.folder.parents and case.folder.parent.name == "mysteries"
    assert verify_lab(lesson_lab.root).ok  # the course lab is never broken by a mystery


def test_the_stale_mystery_shuts_everyone_out(lesson_lab: Lab) -> None:
    case = M.open_stale_mystery(lesson_lab)
    seen = who_gets_in(case.folder, case.clients())
    assert seen.admitted == frozenset() and seen.refused == {"client", "sensor-1", "stolen-sensor"}


# --- notebook 10 after notebook 09: a client whose key lives on its device; mysteries opened again ----------------

@pytest.fixture
def device_lab(lesson_lab: Lab, tmp_path: Path) -> tuple[Lab, Path]:
    """The lesson lab after notebook 09: the thermostat made its own key; its folder stands for its disk."""
    from mqtt_pki_lab.device import install, request, sign_request

    folder = tmp_path / "device-thermostat"
    request(folder, "thermostat")
    sign_request(lesson_lab.root, folder / "client.csr")
    signed = lesson_lab.root / "clients" / "thermostat"
    install(folder, signed / "client.crt", signed / "ca.crt")
    return lesson_lab, folder


def test_a_client_whose_key_lives_on_its_device_goes_through_with_its_device_files(device_lab) -> None:
    lab, folder = device_lab
    names = ["client", "thermostat"]
    untried = who_gets_in(lab, names, broker="embedded")
    assert untried.untried == ("thermostat",) and untried.admitted == {"client"}
    assert "thermostat  not tried: its key lives on its device" in str(untried)
    seen = who_gets_in(lab, names, devices=[folder], broker="embedded")
    assert seen.admitted == {"client", "thermostat"} and seen.on_device == {"thermostat"}, seen
    from mqtt_pki_lab.errors import InputError

    for wrong in (["nobody"], "client"):  # errors name the Python argument, not a command-line option
        with pytest.raises(InputError) as caught:
            who_gets_in(lab, wrong)
        assert str(caught.value).startswith("names:"), caught.value


@pytest.mark.parametrize("opener", ["open_revoked_mystery", "open_stale_mystery", "open_old_root_mystery"])
def test_the_mysteries_open_on_a_lab_with_a_device_held_key(device_lab, opener: str) -> None:
    lab, _ = device_lab
    case = getattr(M, opener)(lab)
    assert "thermostat" in {r.name for r in Lab(case.folder).roles.clients}
    assert str(case)


def test_the_stale_mystery_is_stale_again_each_time_it_is_opened(lesson_lab: Lab) -> None:
    from mqtt_pki_lab.crl import crl_info, refresh_crl

    case = M.open_stale_mystery(lesson_lab)
    assert crl_info(case.folder).stale
    refresh_crl(case.folder)  # what the notebook's next cell does: the copy is fixed
    again = M.open_stale_mystery(lesson_lab)
    info = crl_info(again.folder)
    assert info is not None and info.stale  # made afresh: the mystery again, not the copy fixed since
    assert info.entries and all(e.date <= info.this_update + dt.timedelta(minutes=5) for e in info.entries), info
    assert "(PASSED)" in str(again.inspect("broker/crl.pem"))  # as a certificate's EXPIRED
    details = str(again.details())
    assert "openssl verify" in details and "Files: " in details and "broker/crl.pem" in details


def test_the_mysteries_open_in_the_middle_of_a_rotation(device_lab) -> None:
    """revoke, refresh and renew are refused during a rotation; each mystery's copy completes its own, and the
    course lab stays in the middle of its rotation."""
    from mqtt_pki_lab.rotate import reissue, rotating, start_rotation

    lab, _ = device_lab
    start_rotation(lab.root)
    reissue(lab.root)
    for opener in ("open_revoked_mystery", "open_stale_mystery"):
        case = getattr(M, opener)(lab)
        assert not rotating(case.folder) and str(case)
    reload_case = M.open_reload_mystery(lab)
    try:
        assert not rotating(reload_case.folder) and "certificate has expired" in str(reload_case)
    finally:
        reload_case.close()
    assert rotating(lab.root)


def test_opening_the_reload_mystery_again_stops_the_broker_it_started(lesson_lab: Lab) -> None:
    first = M.open_reload_mystery(lesson_lab)
    second = M.open_reload_mystery(lesson_lab)
    try:
        assert first.closed and not first.broker.running and second.broker.running
        assert "stopped" in first.reload()
    finally:
        second.close()
    assert not second.broker.running
