"""A renewal with real brokers: mosquitto picks up a renewed broker certificate on SIGHUP, without a restart, and a
renewed client's next connection goes through (the MQTT check, embedded broker and mosquitto).

mosquitto runs as tests/test_export.py runs it: from the exported mosquitto.conf, as an ordinary account that owns
the lab's files (the ``mosquitto`` account when the tests run as root). The renewal itself runs as us (as root it
keeps each replaced file's owner, so mosquitto can still read a new 0600 server.key).
"""

from __future__ import annotations

import contextlib
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import require_program
from cryptography import x509
from test_export import _as, owned_lab  # noqa: F401  (owned_lab is a fixture)

from mqtt_pki_lab import diagram as D
from mqtt_pki_lab.crl import refresh_crl
from mqtt_pki_lab.export import mosquitto_conf_text
from mqtt_pki_lab.mosquitto import free_port
from mqtt_pki_lab.mqtt_client import mqtt_round_trip
from mqtt_pki_lab.mqtt_proof import mqtt_check
from mqtt_pki_lab.pem import load_certificate
from mqtt_pki_lab.renew import renew
from mqtt_pki_lab.steps import Lab


def presented_serial(lab: Path, port: int) -> int:
    """The serial number of the certificate the broker presents, as the lab's client sees it in the handshake."""
    client = D.FIRST_CLIENT.side(lab)
    context = ssl.create_default_context(cafile=str(client.ca))
    context.load_cert_chain(client.cert, client.key)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname="localhost") as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def _wait_for(predicate, what: str, broker: subprocess.Popen, log: Path, seconds: float = 10) -> float:
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        assert broker.poll() is None, f"mosquitto exited while waiting for {what}:\n{log.read_text()}"
        try:
            if predicate():
                return time.monotonic() - started
        except OSError:
            pass
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}:\n{log.read_text()}")


@contextlib.contextmanager
def exported_mosquitto(lab: Path, account: str | None) -> Iterator[tuple[subprocess.Popen, int, Path]]:
    """mosquitto started from the exported mosquitto.conf as ``account``; yields (process, port, log) once running."""
    program = require_program("mosquitto")
    port = free_port()
    conf = lab.parent / "mosquitto.conf"
    conf.write_text(mosquitto_conf_text(lab, port, bind="127.0.0.1"))
    if account:
        shutil.chown(conf, account, account)
    log = lab.parent / "mosquitto.log"
    with log.open("w") as out:
        broker = subprocess.Popen([program, "-c", str(conf)], stdout=out, stderr=subprocess.STDOUT, **_as(account))
    try:
        _wait_for(lambda: " running" in log.read_text(), "mosquitto to start", broker, log)
        yield broker, port, log
    finally:
        broker.terminate()
        broker.wait(timeout=10)


@pytest.mark.parametrize("new_key", [False, True], ids=["same-key", "new-key"])
def test_mosquitto_serves_the_renewed_broker_certificate_after_sighup_without_a_restart(
        owned_lab, new_key: bool) -> None:  # noqa: F811
    lab, account = owned_lab
    with exported_mosquitto(lab, account) as (broker, port, log):
        old = load_certificate(D.SERVER_CERT.path(lab)).serial_number
        assert presented_serial(lab, port) == old

        result = renew(lab, "broker", new_key=new_key)
        assert result.old_serial == old != result.new_serial
        if account:  # the new files still belong to the account mosquitto runs as
            uid = pwd.getpwnam(account).pw_uid
            assert all(p.stat().st_uid == uid for p in result.written)
        assert presented_serial(lab, port) == old  # mosquitto keeps what it loaded until it is told

        pid = broker.pid
        broker.send_signal(signal.SIGHUP)
        took = _wait_for(lambda: presented_serial(lab, port) == result.new_serial, "the new serial", broker, log)
        assert broker.pid == pid and broker.poll() is None  # the same process: reloaded, not restarted
        trip = mqtt_round_trip("127.0.0.1", port, D.FIRST_CLIENT.side(lab), timeout=5)
        assert trip.ok, trip
        print(f"\nSIGHUP -> new serial presented after {took * 1000:.0f} ms (new key: {new_key})")

        # A client renewal needs nothing from the broker: the next connection uses the new certificate.
        renewed = renew(lab, "client", new_key=True)
        if account:
            assert all(p.stat().st_uid == pwd.getpwnam(account).pw_uid for p in renewed.written)
        trip = mqtt_round_trip("127.0.0.1", port, D.FIRST_CLIENT.side(lab), timeout=5)
        assert trip.ok, trip
        assert broker.pid == pid and broker.poll() is None
    text = log.read_text()
    assert "Reloading config." in text and "Error when reloading" not in text, text
    assert "Permission denied" not in text, text


def test_mosquitto_does_not_reload_its_cafile_on_sighup(owned_lab, tmp_path: Path) -> None:  # noqa: F811
    """Without crlfile, mosquitto 2.0.11 reads cafile only when it starts (SIGHUP reloads certfile and keyfile
    into the TLS context it has). With broker/ca.crt swapped for another CA's, the lab's client still gets in
    after a SIGHUP, and is refused after a restart. (With crlfile it is different: the next test.)"""
    lab, account = owned_lab
    assert not (lab / "broker" / "crl.pem").exists()  # the exported conf has no crlfile
    Lab(tmp_path / "other").build_all()
    swapped = lab / "broker" / ".swap"
    shutil.copyfile(tmp_path / "other" / "ca" / "ca.crt", swapped)
    if account:
        shutil.chown(swapped, account, account)
    with exported_mosquitto(lab, account) as (broker, port, log):
        assert mqtt_round_trip("127.0.0.1", port, D.FIRST_CLIENT.side(lab), timeout=5).ok
        swapped.replace(D.BROKER_CA.path(lab))
        broker.send_signal(signal.SIGHUP)
        _wait_for(lambda: log.read_text().count("Reloading config.") == 1, "the reload", broker, log)
        assert mqtt_round_trip("127.0.0.1", port, D.FIRST_CLIENT.side(lab), timeout=5).ok
    with exported_mosquitto(lab, account) as (broker, port, log):
        trip = mqtt_round_trip("127.0.0.1", port, D.FIRST_CLIENT.side(lab), timeout=5)
        assert not trip.ok and trip.refused_by == "broker", trip


def test_with_crlfile_mosquitto_reads_its_cafile_again_on_sighup(owned_lab, tmp_path: Path) -> None:  # noqa: F811
    """With crlfile (and require_certificate, as the lab's exported conf has once there is a revocation list),
    mosquitto 2.0.11 builds the listener's TLS context anew on SIGHUP and reads cafile again
    (mosquitto_security_apply_default in src/security_default.c; ChangeLog 1.6.5: "Fix CRL file not being reloaded
    on HUP"). Swapping broker/ca.crt for another CA's and sending SIGHUP refuses the lab's client: same process."""
    lab, account = owned_lab
    refresh_crl(lab)  # an empty list: the exported conf gets crlfile
    Lab(tmp_path / "other").build_all()
    swapped = lab / "broker" / ".swap"
    shutil.copyfile(tmp_path / "other" / "ca" / "ca.crt", swapped)
    if account:
        for path in (swapped, lab / "broker" / "crl.pem"):
            shutil.chown(path, account, account)
    with exported_mosquitto(lab, account) as (broker, port, log):
        assert "crlfile" in (lab.parent / "mosquitto.conf").read_text()
        assert mqtt_round_trip("127.0.0.1", port, D.FIRST_CLIENT.side(lab), timeout=5).ok
        swapped.replace(D.BROKER_CA.path(lab))
        pid = broker.pid
        broker.send_signal(signal.SIGHUP)
        _wait_for(lambda: log.read_text().count("Reloading config.") == 1, "the reload", broker, log)
        trip = mqtt_round_trip("127.0.0.1", port, D.FIRST_CLIENT.side(lab), timeout=5)
        assert not trip.ok and trip.refused_by == "broker", trip  # the new cafile is in force
        assert broker.pid == pid and broker.poll() is None  # reloaded, not restarted


@pytest.fixture(scope="module")
def two_client_lab(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("renew-mqtt") / "pki"
    lab = Lab(root)
    lab.build_all()
    lab.add_client("sensor-1")
    return root


@pytest.mark.parametrize("broker", ["embedded", "mosquitto"])
def test_the_mqtt_check_passes_with_renewed_clients(two_client_lab: Path, tmp_path: Path, broker: str) -> None:
    if broker == "mosquitto":
        require_program("mosquitto")
    lab = tmp_path / "pki"
    shutil.copytree(two_client_lab, lab)
    same = renew(lab, "client")
    fresh = renew(lab, "sensor-1", new_key=True)
    assert same.new_serial != same.old_serial and fresh.new_serial != fresh.old_serial
    report = mqtt_check(lab, broker=broker)
    assert report.ok, report
    good = [o for o in report.outcomes if o.expect == "through"]
    assert {o.client.name for o in good} == {"client", "sensor-1"} and all(o.passed for o in good)
