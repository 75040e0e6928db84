"""A CA rotation walked through every stage with real MQTT: three clients (two made by the lab, one whose key and
files live on its device), the embedded broker and mosquitto. At each stage the MQTT check passes for exactly the
clients that should pass, and ``verify`` names the device that still trusts only the old root.

Then mosquitto from the exported mosquitto.conf: without crlfile the bundle in its cafile needs a restart (a SIGHUP
does not load it), its re-issued server.crt only a SIGHUP; with crlfile a SIGHUP loads everything, so a whole
rotation runs under one mosquitto process.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from conftest import require_program
from test_export import owned_lab  # noqa: F401  (owned_lab is a fixture)
from test_mqtt_renew import _wait_for, exported_mosquitto, presented_serial

from mqtt_pki_lab import diagram as D
from mqtt_pki_lab.crl import refresh_crl
from mqtt_pki_lab.device import install, request, sign_request
from mqtt_pki_lab.files import mode_of
from mqtt_pki_lab.mqtt_client import mqtt_round_trip
from mqtt_pki_lab.mqtt_proof import GOOD_CLIENT, MqttCheckReport, mqtt_check
from mqtt_pki_lab.pem import load_certificate, load_certificates
from mqtt_pki_lab.rotate import finish_rotation, reissue, rotation_status, start_rotation
from mqtt_pki_lab.steps import Lab
from mqtt_pki_lab.verify import verify_lab

CLIENTS = ("client", "s1", "dev")


def _fleet(tmp_path: Path) -> tuple[Path, Path]:
    """A lab with the diagram's client, a further client s1, and a device 'dev' whose key never entered the lab."""
    lab = tmp_path / "pki"
    Lab(lab).build_all()
    Lab(lab).add_client("s1")
    device = tmp_path / "dev-device"
    request(device, "dev")
    sign_request(lab, device / "client.csr")
    install(device, lab / "clients/dev/client.crt", lab / "clients/dev/ca.crt")
    return lab, device


def _passed(lab: Path, device: Path, broker: str) -> tuple[dict[str, bool], MqttCheckReport]:
    """Per client of the lab: did its MQTT round trip go through (with the device's own files for 'dev')? The
    intruders must be refused at every stage."""
    report = mqtt_check(lab, broker, devices=[device])
    intruders = [o for o in report.outcomes if o.name != GOOD_CLIENT]
    assert intruders and all(o.passed for o in intruders), report
    return {o.client.name: o.passed for o in report.outcomes if o.name == GOOD_CLIENT}, report


@pytest.mark.parametrize("broker", ["embedded", "mosquitto"])
def test_a_rotation_walked_through_every_stage(tmp_path: Path, broker: str) -> None:
    if broker == "mosquitto":
        require_program("mosquitto")
    lab, device = _fleet(tmp_path)
    seconds: dict[str, float] = {}

    def stage(name: str, expected: dict[str, bool]):
        started = time.monotonic()
        passed, report = _passed(lab, device, broker)
        seconds[name] = time.monotonic() - started
        assert passed == expected, f"{name}:\n{report}"
        return report

    everyone = dict.fromkeys(CLIENTS, True)
    stage("0 one root", everyone)

    start_rotation(lab)  # stage 1: every ca.crt of the lab holds both roots; the device was not given the bundle
    assert rotation_status(lab).stage == 1
    assert len(load_certificates(device / "ca.crt")) == 1
    report = stage("1 both roots handed out", everyone)
    assert all("ca.crt: old + new" in (o.rotation or "") for o in report.outcomes if o.client.name != "dev"
               and o.name == GOOD_CLIENT)
    assert verify_lab(lab, devices=[device]).ok  # the device only warns: the broker still presents an old-root cert

    reissue(lab, ["s1"])  # a client under the new root while the broker still presents an old-root certificate
    stage("2a s1 re-issued", everyone)

    reissue(lab, ["broker"])  # now the device, which trusts only the old root, refuses the broker
    report = stage("2b broker re-issued", {"client": True, "s1": True, "dev": False})
    dev = next(o for o in report.outcomes if o.client.name == "dev")
    assert dev.trip.refused_by == "client" and "still trusts only the old root" in (dev.rotation or ""), dev
    verified = verify_lab(lab, devices=[device])
    assert not verified.ok and "still trusts only the old root" in str(verified), verified
    assert "dev" in str(verified.diagnosis) or "clients/dev" in str(verified), verified

    done = reissue(lab)  # everything else; the device cannot be re-issued without its CSR
    assert {r.name for r in done.done} == {"client"} and [r.name for r, _ in done.skipped] == ["dev"]
    with pytest.raises(Exception, match="clients/dev"):
        finish_rotation(lab)
    reissue(lab, ["dev"], csr=device / "client.csr")  # the device sends its CSR (same key), the new root signs
    install(device, lab / "clients/dev/client.crt", lab / "clients/dev/ca.crt")  # certificate and bundle
    assert len(load_certificates(device / "ca.crt")) == 2
    stage("2c everyone re-issued", everyone)
    assert rotation_status(lab).ready

    old_root = load_certificate(lab / "ca/ca.crt")
    result = finish_rotation(lab)
    stage("3 old root retired", everyone)
    new_root = load_certificate(lab / "ca/ca.crt")
    assert new_root != old_root and not (lab / D.NEXT_CA_FOLDER).exists()
    for role in Lab(lab).roles.sides:
        assert load_certificates(lab / role.folder / "ca.crt") == [new_root]
    archived = lab / result.archive / "ca"
    assert load_certificate(archived / "ca.crt") == old_root and mode_of(archived / "ca.key") == 0o600
    assert verify_lab(lab, devices=[device]).ok
    print(f"\n{broker}: MQTT check per stage: " + ", ".join(f"{k} {v:.2f} s" for k, v in seconds.items()))


def test_exported_mosquitto_needs_a_restart_for_the_bundle_and_a_sighup_for_its_certificate(
        owned_lab) -> None:  # noqa: F811
    lab, account = owned_lab
    client = D.FIRST_CLIENT.side(lab)
    with exported_mosquitto(lab, account) as (broker, port, log):
        assert "restart it" in start_rotation(lab).broker  # no crlfile: what the command prints
        reissue(lab, ["client"])  # the client now presents a certificate of the new root
        assert not mqtt_round_trip("127.0.0.1", port, client, timeout=5).ok  # cafile: the old root only
        broker.send_signal(signal.SIGHUP)
        _wait_for(lambda: log.read_text().count("Reloading config.") == 1, "the reload", broker, log)
        trip = mqtt_round_trip("127.0.0.1", port, client, timeout=5)
        assert not trip.ok and trip.refused_by == "broker", trip  # a SIGHUP does not load the bundle
    with exported_mosquitto(lab, account) as (broker, port, log):  # restarted: it reads the bundle
        assert mqtt_round_trip("127.0.0.1", port, client, timeout=5).ok
        old_serial = presented_serial(lab, port)
        reissue(lab, ["broker"])
        new_serial = load_certificate(D.SERVER_CERT.path(lab)).serial_number
        assert presented_serial(lab, port) == old_serial
        broker.send_signal(signal.SIGHUP)  # the broker's own certificate: a SIGHUP is enough
        took = _wait_for(lambda: presented_serial(lab, port) == new_serial, "the new serial", broker, log)
        assert mqtt_round_trip("127.0.0.1", port, client, timeout=5).ok
        print(f"\nSIGHUP -> server.crt of the new root presented after {took * 1000:.0f} ms")
    reissue(lab)
    finish_rotation(lab)
    with exported_mosquitto(lab, account) as (broker, port, log):
        assert mqtt_round_trip("127.0.0.1", port, client, timeout=5).ok
    assert "Permission denied" not in log.read_text()


def test_with_crlfile_a_whole_rotation_needs_only_sighup(owned_lab) -> None:  # noqa: F811
    """With crlfile set, mosquitto 2.0.11 reads cafile again on SIGHUP: start, re-issue and finish each followed by
    a SIGHUP, one process all along, and the lab's client gets in at every stage (what each command prints)."""
    lab, account = owned_lab
    refresh_crl(lab)  # a revocation list: the exported conf has crlfile
    client = D.FIRST_CLIENT.side(lab)
    with exported_mosquitto(lab, account) as (broker, port, log):
        pid, reloads = broker.pid, 0
        assert "crlfile" in (lab.parent / "mosquitto.conf").read_text()

        def hup_then_in(stage: str) -> None:
            nonlocal reloads
            reloads += 1
            broker.send_signal(signal.SIGHUP)
            _wait_for(lambda: log.read_text().count("Reloading config.") == reloads, "the reload", broker, log)
            trip = mqtt_round_trip("127.0.0.1", port, client, timeout=5)
            assert trip.ok, (stage, trip)
            assert broker.pid == pid and broker.poll() is None, stage

        started = start_rotation(lab)
        assert "SIGHUP" in started.broker and "cafile included" in str(started)
        hup_then_in("start")
        reissue(lab)  # the broker and the client now hold new-root certificates
        hup_then_in("reissue")
        assert presented_serial(lab, port) == load_certificate(D.SERVER_CERT.path(lab)).serial_number
        finished = finish_rotation(lab)
        assert "cafile included" in str(finished)
        hup_then_in("finish")  # the broker trusts the new root alone now
    assert "Error when reloading" not in log.read_text() and "Permission denied" not in log.read_text()

