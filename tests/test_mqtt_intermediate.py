"""A chain of three with real brokers: mosquitto on the exported configuration, the embedded broker, the MQTT check.

The lab is built with ``--intermediate`` and its root key is then removed (kept offline): every side presents
its certificate followed by the intermediate's and trusts the root alone. mosquitto (its ``certfile`` is the
broker's chain, its ``cafile`` the root, its ``crlfile`` the intermediate's list) accepts the good clients and
refuses a revoked one; ``mosquitto_pub`` and ``mosquitto_sub`` are the clients, as a student types them. A broker
that presents its certificate without the intermediate is refused by every client, and the MQTT check says why.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import require_program, run_cli
from test_export import _as
from test_mqtt_revoke import _mosquitto, _publish

pytest.importorskip("paho.mqtt")
pytest.importorskip("amqtt")

from cryptography.hazmat.primitives.serialization import Encoding

from mqtt_pki_lab import diagram as L
from mqtt_pki_lab.broker_embedded import EmbeddedBroker
from mqtt_pki_lab.crl import revoke
from mqtt_pki_lab.mqtt_client import mqtt_round_trip
from mqtt_pki_lab.mqtt_proof import GOOD_CLIENT, REVOKED_CLIENT, mqtt_check
from mqtt_pki_lab.mysteries import MOSQUITTO_PUB_WORDS
from mqtt_pki_lab.pem import load_certificates
from mqtt_pki_lab.steps import BuildOptions, Lab

SENSOR = L.client_role("sensor-2")


@pytest.fixture(scope="module")
def chain_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A chain-of-three lab with a further client, sensor-2, revoked; the root's key removed (kept offline)."""
    lab = tmp_path_factory.mktemp("chain-mqtt") / "pki"
    Lab(lab, BuildOptions(intermediate=True)).build_all()
    (lab / "ca/ca.key").unlink()
    Lab(lab).add_client("sensor-2")
    revoke(lab, "sensor-2", reason="keyCompromise")
    return lab


@pytest.fixture
def owned_chain(chain_source: Path) -> Iterator[tuple[Path, str | None]]:
    """A copy in a fresh folder outside pytest's (root-only) tree, for mosquitto's own account:
    (lab folder, account to run as; None when we are not root)."""
    import os
    import pwd

    account = None
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("mosquitto")
        except KeyError:
            pytest.fail("as root the test needs the 'mosquitto' account (made by the mosquitto package)")
        account = "mosquitto"
    home = Path(tempfile.mkdtemp(prefix="mqtt-pki-lab-chain-"))
    shutil.copytree(chain_source, home / "pki")
    try:
        yield home / "pki", account
    finally:
        shutil.rmtree(home, ignore_errors=True)


def test_mosquitto_with_the_exported_conf_serves_the_chain(owned_chain) -> None:
    require_program("mosquitto_sub")
    lab, account = owned_chain
    exported = run_cli("export", "mosquitto-conf", str(lab))
    assert exported.returncode == 0, exported.stderr
    lines = exported.stdout.splitlines()
    assert f"certfile {(lab / 'broker/server.crt').resolve()}" in lines  # the chain: leaf, then intermediate
    assert f"cafile {(lab / 'broker/ca.crt').resolve()}" in lines  # the root alone
    side = L.FIRST_CLIENT.side(lab)
    tls = ["-h", "localhost", "--cafile", str(side.ca), "--cert", str(side.cert), "--key", str(side.key),
           "-t", "devices/client/hello"]  # a topic the lab's default policy (broker/acl) lets the client use
    with _mosquitto(lab, account) as (_broker, port, log_path):
        sub = subprocess.Popen([require_program("mosquitto_sub"), "-p", str(port), *tls, "-C", "1", "-W", "15"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **_as(account))
        try:
            got = ""
            for _ in range(50):  # publish until the subscriber, which connects in its own time, has it
                started = time.monotonic()
                good = subprocess.run([require_program("mosquitto_pub"), "-p", str(port), *tls, "-q", "1", "-m", "hi"],
                                      capture_output=True, text=True, timeout=20, **_as(account))
                good_s = time.monotonic() - started
                assert good.returncode == 0, good.stderr + log_path.read_text()
                try:
                    got, _err = sub.communicate(timeout=0.2)
                    break
                except subprocess.TimeoutExpired:
                    continue
        finally:
            sub.kill()
        bad, bad_s = _publish(lab, SENSOR, port, account)
        log = log_path.read_text()
    assert got.strip() == "hi", log
    assert bad.returncode != 0 and "u'sensor-2'" not in log and "certificate verify failed" in log
    print(f"\nchain of three on mosquitto: client published in {good_s * 1000:.0f} ms; revoked sensor-2 refused in "
          f"{bad_s * 1000:.0f} ms ({bad.stderr.strip()!r})")


def test_mosquitto_clients_refuse_a_broker_without_its_chain(owned_chain) -> None:
    lab, account = owned_chain
    leaf = load_certificates(lab / "broker/server.crt")[0]
    (lab / "broker/server.crt").write_bytes(leaf.public_bytes(Encoding.PEM))
    with _mosquitto(lab, account) as (_broker, port, _log):
        refused, _ = _publish(lab, L.FIRST_CLIENT, port, account)
    assert refused.returncode != 0, refused.stdout
    # mosquitto_pub's own TLS refuses the broker (no intermediate after the leaf): its words for that, which depend
    # on timing (mysteries.MOSQUITTO_PUB_WORDS; seen here as "Unable to connect (A TLS error occurred.).")
    assert refused.stderr.strip() in MOSQUITTO_PUB_WORDS["client refused"], refused.stderr


def test_the_embedded_broker_serves_the_chain_and_refuses_the_revoked_device(chain_source: Path) -> None:
    with EmbeddedBroker(chain_source) as broker:
        good = mqtt_round_trip("127.0.0.1", broker.port, L.FIRST_CLIENT.side(chain_source))
        bad = mqtt_round_trip("127.0.0.1", broker.port, SENSOR.side(chain_source))
    assert good.ok, good
    assert not bad.ok and bad.refused_by == "broker", bad
    assert any("certificate revoked" in reason for reason in broker.refusals), broker.refusals


@pytest.mark.parametrize("broker", ["embedded", "mosquitto"])
def test_the_mqtt_check_passes_on_a_chain_of_three(chain_source: Path, tmp_path: Path, broker: str) -> None:
    if broker == "mosquitto":
        require_program("mosquitto")
    report = mqtt_check(chain_source, broker=broker)
    assert report.ok, str(report)
    by_name = {o.name: o for o in report.outcomes}
    assert by_name[GOOD_CLIENT].passed and by_name[GOOD_CLIENT].trip.ok
    revoked = by_name[REVOKED_CLIENT]
    assert revoked.passed and revoked.diagnosis is not None and revoked.diagnosis.code == "revoked"
    # An intruder's certificate from another CA is that, not a missing chain, though OpenSSL says the same words.
    for name in ("certificate from another CA", "trusts another CA"):
        intruder = by_name[name]
        assert intruder.passed and intruder.diagnosis is not None and intruder.diagnosis.code == "untrusted-issuer"
    # Without the intermediate after the broker's certificate, every client refuses it, and the check says why.
    lab = tmp_path / "pki"
    shutil.copytree(chain_source, lab)
    leaf = load_certificates(lab / "broker/server.crt")[0]
    (lab / "broker/server.crt").write_bytes(leaf.public_bytes(Encoding.PEM))
    broken = mqtt_check(lab, broker=broker)
    assert not broken.ok
    good = {o.name: o for o in broken.outcomes}[GOOD_CLIENT]
    assert not good.passed and good.trip.refused_by == "client"
    assert good.diagnosis is not None and (good.diagnosis.code, good.diagnosis.file) == \
        ("missing-chain", "broker/server.crt")
