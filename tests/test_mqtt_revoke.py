"""A stolen device shut out, with real brokers: mosquitto on the exported configuration, the embedded broker,
and the MQTT check.

The issue's "done when": after ``revoke DIR sensor-2``, mosquitto (started with the exported conf by the
ordinary user who owns the files, as ``test_export.py`` does) refuses ``sensor-2`` and still accepts
``client``; with a list whose nextUpdate has passed it refuses both, and ``verify`` says why before the broker
starts. ``mosquitto_pub`` is the client, as a student would type it.
"""

from __future__ import annotations

import datetime as dt
import os
import pwd
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import require_program, run_cli
from test_export import _as, owned_lab  # noqa: F401  (owned_lab is a fixture used by name)

pytest.importorskip("paho.mqtt")
pytest.importorskip("amqtt")

from mqtt_pki_lab import diagram as L
from mqtt_pki_lab.broker_embedded import EmbeddedBroker
from mqtt_pki_lab.crl import refresh_crl, revoke
from mqtt_pki_lab.mosquitto import free_port
from mqtt_pki_lab.mqtt_client import mqtt_round_trip
from mqtt_pki_lab.mqtt_proof import GOOD_CLIENT, REVOKED_CLIENT, mqtt_check
from mqtt_pki_lab.steps import Lab

SENSOR = L.client_role("sensor-2")
STALE_AT = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=2)


def _give(lab: Path, account: str | None) -> None:
    """Hand every file of the lab (made as root by the test) to the account mosquitto runs as."""
    if account is None:
        return
    entry = pwd.getpwnam(account)
    for path in [lab.parent, *lab.parent.rglob("*")]:
        os.chown(path, entry.pw_uid, entry.pw_gid, follow_symlinks=False)


@contextmanager
def _mosquitto(lab: Path, account: str | None) -> Iterator[tuple[subprocess.Popen, int, Path]]:
    """mosquitto started with ``mqtt-pki-lab export mosquitto-conf`` unchanged, as the owner of the files."""
    program = require_program("mosquitto")
    port = free_port()
    made = run_cli("export", "mosquitto-conf", str(lab), "--port", str(port), "--bind", "127.0.0.1")
    assert made.returncode == 0, made.stderr
    assert f"crlfile {(lab / 'broker/crl.pem').resolve()}" in made.stdout.splitlines()
    conf, log_path = lab.parent / "mosquitto.conf", lab.parent / "mosquitto.log"
    conf.write_text(made.stdout + "log_type all\n")
    _give(lab, account)
    with log_path.open("w") as log:
        broker = subprocess.Popen([program, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT, **_as(account))
        try:
            deadline = time.monotonic() + 10
            while " running" not in log_path.read_text() and time.monotonic() < deadline:
                assert broker.poll() is None, log_path.read_text()
                time.sleep(0.01)
            yield broker, port, log_path
        finally:
            broker.terminate()
            broker.wait(timeout=10)


def _publish(lab: Path, role: L.Role, port: int, account: str | None) -> tuple[subprocess.CompletedProcess, float]:
    """``mosquitto_pub`` with ``role``'s three files (QoS 1, so a broker's refusal is seen); and its time."""
    pub = require_program("mosquitto_pub")
    side = role.side(lab)
    started = time.monotonic()
    done = subprocess.run([pub, "-h", "localhost", "-p", str(port), "--cafile", str(side.ca), "--cert",
                           str(side.cert), "--key", str(side.key), "-t", "lab/hello", "-q", "1", "-m", "hi"],
                          capture_output=True, text=True, timeout=20, **_as(account))
    return done, time.monotonic() - started


def test_mosquitto_refuses_the_revoked_device_and_everyone_when_the_list_is_stale(owned_lab) -> None:  # noqa: F811
    lab, account = owned_lab
    Lab(lab).add_client("sensor-2")
    done = run_cli("revoke", str(lab), "sensor-2", "--reason", "keyCompromise")
    assert done.returncode == 0, done.stderr
    with _mosquitto(lab, account) as (_broker, port, log_path):
        good, good_s = _publish(lab, L.FIRST_CLIENT, port, account)
        bad, bad_s = _publish(lab, SENSOR, port, account)
    assert good.returncode == 0, good.stderr + log_path.read_text()
    assert bad.returncode != 0 and bad.stderr.strip(), bad.stderr
    log = log_path.read_text()
    assert "u'client'" in log and "u'sensor-2'" not in log  # sensor-2 never got as far as a username
    assert "certificate verify failed" in log
    print(f"\nrevoked list: client accepted in {good_s * 1000:.0f} ms, sensor-2 refused in {bad_s * 1000:.0f} ms "
          f"(mosquitto_pub said {bad.stderr.strip()!r})")

    # A list whose nextUpdate has passed: verify says so before any broker starts; then mosquitto refuses both.
    refresh_crl(lab, next_update_days=1, now=STALE_AT)
    checked = run_cli("verify", str(lab))
    assert checked.returncode == 1
    assert "[FAIL] broker/crl.pem current: its nextUpdate passed on" in checked.stdout
    assert "everyone will be refused" in checked.stdout
    with _mosquitto(lab, account) as (_broker, port, log_path):
        good, _ = _publish(lab, L.FIRST_CLIENT, port, account)
        bad, _ = _publish(lab, SENSOR, port, account)
    assert good.returncode != 0 and bad.returncode != 0, good.stderr + bad.stderr
    assert "u'client'" not in log_path.read_text()
    print(f"stale list: client refused ({good.stderr.strip()!r}), sensor-2 refused ({bad.stderr.strip()!r})")


def test_mosquitto_reads_the_list_again_on_sighup(owned_lab) -> None:  # noqa: F811
    """What ``revoke`` prints is true: a running mosquitto 2.0 picks up the new list on SIGHUP, without a restart."""
    lab, account = owned_lab
    Lab(lab).add_client("sensor-2")
    refresh_crl(lab)  # an empty list, so the exported conf has crlfile from the start
    with _mosquitto(lab, account) as (broker, port, log_path):
        before, _ = _publish(lab, SENSOR, port, account)
        revoke(lab, "sensor-2", reason="keyCompromise")
        _give(lab, account)
        still, _ = _publish(lab, SENSOR, port, account)  # mosquitto has not read it yet
        broker.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while "Reloading config" not in log_path.read_text() and time.monotonic() < deadline:
            time.sleep(0.01)
        after, _ = _publish(lab, SENSOR, port, account)
        pid_alive = broker.poll() is None
    assert before.returncode == 0 and still.returncode == 0, before.stderr + still.stderr
    assert after.returncode != 0 and pid_alive, after.stderr


def test_a_device_connected_before_it_was_revoked_stays_connected(owned_lab) -> None:  # noqa: F811
    """Revocation is checked in new handshakes only (mosquitto 2.0.11): a device connected before ``revoke``
    keeps publishing and receiving through the new list and a SIGHUP, while a new connection of the same device
    is refused, with the alert ``certificate revoked`` when the client listens before it speaks."""
    import threading

    from mqtt_pki_lab.daytwo import broker_alert
    from mqtt_pki_lab.mqtt_client import paho_client

    lab, account = owned_lab
    Lab(lab).add_client("sensor-2")
    refresh_crl(lab)  # an empty list, so the exported conf has crlfile from the start
    with _mosquitto(lab, account) as (broker, port, log_path):
        received, subscribed = [], threading.Event()
        device = paho_client(SENSOR.side(lab))
        device.on_subscribe = lambda *args: subscribed.set()
        device.on_message = lambda client, userdata, message: received.append(message.payload)
        device.connect("localhost", port)
        device.loop_start()
        try:
            device.subscribe("devices/sensor-2/#", qos=1)
            assert subscribed.wait(5) and device.is_connected()
            revoke(lab, "sensor-2", reason="keyCompromise")
            _give(lab, account)
            broker.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 10
            while "Reloading config" not in log_path.read_text() and time.monotonic() < deadline:
                time.sleep(0.01)
            device.publish("devices/sensor-2/status", b"still here", qos=1).wait_for_publish(5)
            deadline = time.monotonic() + 5
            while not received and time.monotonic() < deadline:
                time.sleep(0.01)
            assert device.is_connected() and received == [b"still here"], log_path.read_text()
            again, _ = _publish(lab, SENSOR, port, account)  # a new connection: refused
            assert again.returncode != 0, again.stdout
            assert broker_alert(port, SENSOR.side(lab), host="localhost") == "sslv3 alert certificate revoked"
        finally:
            device.loop_stop()
            device.disconnect()


def test_the_embedded_broker_refuses_the_revoked_device(tmp_path: Path) -> None:
    lab = tmp_path / "pki"
    Lab(lab).build_all()
    Lab(lab).add_client("sensor-2")
    revoke(lab, "sensor-2")
    with EmbeddedBroker(lab) as broker:
        good = mqtt_round_trip("127.0.0.1", broker.port, L.FIRST_CLIENT.side(lab))
        bad = mqtt_round_trip("127.0.0.1", broker.port, SENSOR.side(lab))
    assert good.ok, good
    assert not bad.ok and bad.refused_by == "broker", bad
    assert any("certificate revoked" in reason for reason in broker.refusals), broker.refusals


@pytest.mark.parametrize("broker", ["embedded", "mosquitto"])
def test_the_mqtt_check_expects_the_revoked_device_to_be_refused(tmp_path: Path, broker: str) -> None:
    if broker == "mosquitto":
        require_program("mosquitto")
    lab = tmp_path / "pki"
    Lab(lab).build_all()
    Lab(lab).add_client("sensor-2")
    revoke(lab, "sensor-2", reason="keyCompromise")
    report = mqtt_check(lab, broker=broker)
    assert report.ok, str(report)
    by_name = {o.name: o for o in report.outcomes}
    revoked = by_name[REVOKED_CLIENT]
    assert by_name[GOOD_CLIENT].client == L.FIRST_CLIENT and revoked.client == SENSOR
    assert revoked.passed and revoked.trip.refused_by == "broker"
    assert revoked.diagnosis is not None and revoked.diagnosis.code == "revoked"
    assert "is on the CA's revocation list (broker/crl.pem)" in (revoked.explanation or "")
    assert "refused is the right outcome" in (revoked.explanation or "")

    refresh_crl(lab, next_update_days=1, now=STALE_AT)
    stale = mqtt_check(lab, broker=broker)
    assert not stale.ok
    good, gone = ({o.name: o for o in stale.outcomes}[n] for n in (GOOD_CLIENT, REVOKED_CLIENT))
    assert not good.passed and good.diagnosis is not None and good.diagnosis.code == "crl-expired"
    assert not gone.passed, "refused for a stale list, not because it is revoked: that is no pass"
    assert "not otherwise" in gone.verdict
