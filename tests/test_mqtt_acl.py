"""Who may do what, on real brokers: ``client`` uses ``devices/client/...``; ``sensor-2`` can neither publish
there (its message is not delivered) nor read it (its subscription receives nothing).

* mosquitto 2.0.11 started unchanged on the exported ``mosquitto.conf`` by an ordinary user, with mosquitto's own
  clients (``mosquitto_pub``/``mosquitto_sub``, exactly the lines ``export client`` prints, topic changed);
* the embedded broker with paho-mqtt clients;
* both brokers agree with :func:`~mqtt_pki_lab.acl.may` on a policy that is not the default;
* ``mqtt_check`` shows, per client, what it may not do, and fails when a broker ignores the policy.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
from conftest import require_program, run_cli
from test_export import _as, owned_lab  # noqa: F401 (owned_lab: a fixture used below)

pytest.importorskip("paho.mqtt")
pytest.importorskip("amqtt")

from mqtt_pki_lab import diagram as L
from mqtt_pki_lab.acl import default_policy, grant, may, read_policy
from mqtt_pki_lab.broker_embedded import EmbeddedBroker
from mqtt_pki_lab.mosquitto import MosquittoBroker, free_port
from mqtt_pki_lab.mqtt_access import prove_access
from mqtt_pki_lab.mqtt_client import paho_client
from mqtt_pki_lab.mqtt_proof import mqtt_check
from mqtt_pki_lab.steps import Lab

SENSOR = "sensor-2"


@pytest.fixture(scope="module")
def two_clients(built_lab: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built lab plus ``clients/sensor-2``. Do not modify it."""
    root = tmp_path_factory.mktemp("acl") / "pki"
    shutil.copytree(built_lab, root)
    Lab(root).add_client(SENSOR)
    return root


# --- mosquitto, as the exported configuration runs it ---------------------------------------------------------

@pytest.fixture
def owned(owned_lab: tuple[Path, str | None]) -> tuple[Path, str | None]:  # noqa: F811 (the fixture)
    """test_export's copy of the lab owned by an ordinary account (as root: ``mosquitto``), plus ``sensor-2``."""
    lab, account = owned_lab
    Lab(lab).add_client(SENSOR)
    if account:
        entry = pwd.getpwnam(account)
        for path in [lab / L.CLIENTS_FOLDER, *(lab / L.CLIENTS_FOLDER).rglob("*")]:
            os.chown(path, entry.pw_uid, entry.pw_gid)
    return lab, account


def _tool_args(lab: Path, port: int, client: str) -> list[str]:
    """The TLS options of the ``mosquitto_pub`` line ``export client`` prints for ``client`` (its topic dropped)."""
    shell = run_cli("export", "client", str(lab), "--port", str(port), "--only", "shell", "--client", client,
                    "--host", "localhost").stdout
    pub = next(line for line in shell.splitlines() if line.startswith("mosquitto_pub"))
    words = pub.split()
    assert words[words.index("-t") + 1] == f"devices/{client}/hello"  # the default topic: its own
    return words[1:words.index("-t")]


class _Sub:
    """``mosquitto_sub -d`` in the background as ``account``: its output in a file we can poll."""

    def __init__(self, lab: Path, port: int, client: str, topic: str, account: str | None) -> None:
        self.out = lab.parent / f"sub-{client}-{time.monotonic_ns()}.txt"
        self.file = self.out.open("w")
        # stdbuf: line-buffered output, so that each line reaches the file as it is printed
        command = ["stdbuf", "-oL", "mosquitto_sub", *_tool_args(lab, port, client), "-t", topic, "-q", "1", "-v", "-d"]
        self.process = subprocess.Popen(command, stdout=self.file, stderr=subprocess.STDOUT, **_as(account))

    def text(self) -> str:
        return self.out.read_text()

    def wait_for(self, words: str, seconds: float = 10) -> bool:
        deadline = time.monotonic() + seconds
        while words not in self.text() and time.monotonic() < deadline:
            assert self.process.poll() is None, self.text()
            time.sleep(0.02)
        return words in self.text()

    def stop(self) -> str:
        self.process.terminate()
        self.process.wait(timeout=10)
        self.file.close()
        return self.text()


def _pub(lab: Path, port: int, client: str, topic: str, message: str, account: str | None) -> None:
    done = subprocess.run(["mosquitto_pub", *_tool_args(lab, port, client), "-t", topic, "-q", "1", "-m", message],
                          capture_output=True, text=True, timeout=20, **_as(account))
    assert done.returncode == 0, done.stderr  # QoS 1: it returns once the broker acknowledged (PUBACK)


def test_exported_conf_enforces_the_policy_with_mosquittos_own_clients(owned) -> None:
    program = require_program("mosquitto")
    require_program("mosquitto_sub")
    require_program("mosquitto_pub")
    require_program("stdbuf")
    lab, account = owned
    port = free_port()
    made = run_cli("export", "mosquitto-conf", str(lab), "--port", str(port), "--bind", "127.0.0.1")
    assert made.returncode == 0, made.stderr
    assert f"acl_file {L.BROKER.side(lab).cert.parent.resolve() / 'acl'}" in made.stdout.splitlines()
    conf = lab.parent / "mosquitto.conf"
    conf.write_text(made.stdout)
    if account:
        os.chown(conf, pwd.getpwnam(account).pw_uid, pwd.getpwnam(account).pw_gid)
    log_path = lab.parent / "mosquitto.log"
    with log_path.open("w") as log_file:
        broker = subprocess.Popen([program, "-c", str(conf)], stdout=log_file, stderr=subprocess.STDOUT,
                                  **_as(account))
    subs: list[_Sub] = []
    try:
        deadline = time.monotonic() + 10
        while " running" not in log_path.read_text() and time.monotonic() < deadline:
            assert broker.poll() is None, log_path.read_text()
            time.sleep(0.01)
        watcher = _Sub(lab, port, "client", "devices/client/t", account)
        intruder = _Sub(lab, port, SENSOR, "devices/client/#", account)
        subs += [watcher, intruder]
        assert watcher.wait_for("received SUBACK") and intruder.wait_for("received SUBACK")
        _pub(lab, port, SENSOR, "devices/client/t", "from sensor-2", account)  # acknowledged, then dropped
        _pub(lab, port, "client", "devices/client/t", "from client", account)
        assert watcher.wait_for("devices/client/t from client"), watcher.text()
        time.sleep(0.3)
    finally:
        texts = [s.stop() for s in subs]
        broker.terminate()
        broker.wait(timeout=10)
    log = log_path.read_text()
    watched, intruded = texts
    assert "devices/client/t from client" in watched and "from sensor-2" not in watched, watched
    assert "Subscribed (mid: 1): 1" in intruded  # mosquitto 2.0.11 grants the subscription (QoS 1)...
    assert "PUBLISH" not in intruded.replace("Sending PUBLISH", ""), intruded  # ...and delivers nothing on it
    assert "Warning: ACL pattern 'shared/#' does not contain '%c' or '%u'." in log, log  # it read broker/acl
    assert "Permission denied" not in log


# --- the embedded broker, with paho-mqtt ------------------------------------------------------------------------

class _Client:
    """A paho client of the lab: what it received, its SUBACK codes, PUBACKs."""

    def __init__(self, files: L.Side, port: int) -> None:
        self.got: list[tuple[str, bytes]] = []
        self.subacks: list[str] = []
        self.acks = threading.Event()
        self.client = paho_client(files)
        self.client.on_message = lambda c, u, m: self.got.append((m.topic, bytes(m.payload)))
        self.client.on_subscribe = lambda c, u, mid, codes, p: self.subacks.append(str(codes[0]))
        self.client.on_publish = lambda c, u, mid, rc, p: self.acks.set()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def subscribe(self, topic: str) -> None:
        count = len(self.subacks)
        self.client.subscribe(topic, qos=1)
        _until(lambda: len(self.subacks) > count)

    def publish(self, topic: str, payload: bytes) -> None:
        self.acks.clear()
        self.client.publish(topic, payload, qos=1)
        assert self.acks.wait(5), "no PUBACK"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _until(done, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while not done() and time.monotonic() < deadline:
        time.sleep(0.01)
    return done()


def test_embedded_broker_enforces_the_same_policy(two_clients: Path) -> None:
    with EmbeddedBroker(two_clients) as broker:
        assert broker.policy == default_policy()
        client = _Client(L.FIRST_CLIENT.side(two_clients), broker.port)
        sensor = _Client(L.client_role(SENSOR).side(two_clients), broker.port)
        try:
            client.subscribe("devices/client/t")
            sensor.subscribe("devices/client/#")
            sensor.publish("devices/client/t", b"from sensor-2")  # acknowledged (PUBACK), then dropped
            client.publish("devices/client/t", b"from client")
            assert _until(lambda: ("devices/client/t", b"from client") in client.got), client.got
            time.sleep(0.3)
        finally:
            client.close()
            sensor.close()
    assert client.got == [("devices/client/t", b"from client")]  # sensor-2's message was not delivered
    assert sensor.subacks == ["Granted QoS 1"] and sensor.got == []  # granted, as mosquitto does; nothing came
    denials = [line for line in broker.log if line.startswith("denied:")]
    assert any("'sensor-2'" in line and "may not publish to 'devices/client/t'" in line for line in denials)
    assert any("not delivered to 'sensor-2'" in line for line in denials), broker.log


@pytest.mark.parametrize("broker", ["embedded", "mosquitto"])
def test_both_brokers_agree_with_may_on_a_changed_policy(two_clients: Path, tmp_path: Path, broker: str) -> None:
    if broker == "mosquitto":
        require_program("mosquitto")
    lab = tmp_path / "pki"
    shutil.copytree(two_clients, lab)
    policy = grant(lab, SENSOR, "devices/client/#", "read")  # sensor-2 may now read client's topics, not write
    assert may(policy, SENSOR, "devices/client/x", "read") and not may(policy, SENSOR, "devices/client/x", "write")
    runner = EmbeddedBroker if broker == "embedded" else MosquittoBroker
    clients = [(name, role.side(lab)) for name, role in Lab(lab).client_names().items()]
    with runner(lab) as running:
        proofs = {p.client: p for p in prove_access("127.0.0.1", running.port, clients, policy)}
    assert all(p.passed for p in proofs.values()), [str(p) for p in proofs.values()]
    assert proofs[SENSOR].received and not proofs[SENSOR].delivered  # it read client's message; its own was dropped
    assert not proofs["client"].received and not proofs["client"].delivered


def test_a_broker_that_ignores_the_policy_fails_the_proof(two_clients: Path) -> None:
    clients = [(name, role.side(two_clients)) for name, role in Lab(two_clients).client_names().items()]
    with EmbeddedBroker(two_clients, acl=False) as broker:  # no policy: everything goes through
        proofs = prove_access("127.0.0.1", broker.port, clients, read_policy(two_clients))
    assert proofs and not any(p.passed for p in proofs)
    assert all(p.delivered and p.received and "NOT what broker/acl says" in str(p) for p in proofs)


# --- mqtt_check: per client, what it may not do -----------------------------------------------------------------

@pytest.mark.parametrize("broker", ["embedded", "mosquitto"])
def test_mqtt_check_shows_what_each_client_may_not_do(two_clients: Path, broker: str) -> None:
    if broker == "mosquitto":
        require_program("mosquitto")
    report = mqtt_check(two_clients, broker=broker)
    assert report.ok, str(report)
    assert [o.passed for o in report.outcomes] == [True] * 5
    assert [(p.client, p.other) for p in report.access] == [("client", SENSOR), (SENSOR, "client")]
    text = str(report)
    assert re.search(r"\[PASS\] sensor-2 may not publish to devices/client/from-sensor-2-\w+ \(client got nothing\) "
                     r"nor receive client's message on devices/client/marker-", text), text
    assert "who may do what" in report._repr_html_()


def test_mqtt_check_with_one_client_says_what_it_could_prove(built_lab: Path) -> None:
    report = mqtt_check(built_lab)
    (proof,) = report.access
    assert report.ok and proof.alone and proof.passed
    assert "add a second client to prove each" in str(proof)


def test_mqtt_check_of_a_lab_without_a_policy_says_how_to_make_one(lab_copy: Path) -> None:
    (lab_copy / "broker" / "acl").unlink()
    report = mqtt_check(lab_copy)
    assert report.ok and report.access == ()
    assert any("acl" in n and "--reset" in n for n in report.notes), report.notes


def test_cli_mqtt_prints_the_access_rows(two_clients: Path) -> None:
    done = run_cli("mqtt", str(two_clients))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[PASS] client may not publish to devices/sensor-2/from-client-" in done.stdout
