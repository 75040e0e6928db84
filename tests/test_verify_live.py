"""``verify DIR --live HOST:PORT``: does the running broker present broker/server.crt, or the certificate it loaded
before a renewal (day-two step 12, mosquitto not sent SIGHUP)?

Real brokers on 127.0.0.1 and a free port: mosquitto from the exported mosquitto.conf, run as an ordinary account
(tests/test_mqtt_renew.py shows how), and the embedded broker. Each outcome through the API and the CLI.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import require_program, run_cli
from cryptography.hazmat.primitives.serialization import Encoding
from test_export import owned_lab  # noqa: F401  (a fixture)
from test_mqtt_renew import _wait_for, exported_mosquitto

from mqtt_pki_lab import diagram as D
from mqtt_pki_lab.daytwo import presented_certificate
from mqtt_pki_lab.diagram import RENEW_STEP, ROTATE_STEPS
from mqtt_pki_lab.errors import InputError
from mqtt_pki_lab.live import LIVE_CHECK, parse_address, presented_chain
from mqtt_pki_lab.mosquitto import free_port
from mqtt_pki_lab.mqtt_proof import start_broker
from mqtt_pki_lab.pem import load_certificate, load_certificates
from mqtt_pki_lab.renew import renew
from mqtt_pki_lab.rotate import reissue, start_rotation
from mqtt_pki_lab.steps import Lab
from mqtt_pki_lab.verify import VerifyReport, verify_lab


def live_row(report: VerifyReport):
    rows = [c for c in report.checks if c.name == LIVE_CHECK]
    assert len(rows) == 1, str(report)
    return rows[0]


def serial(lab: Path) -> str:
    return f"{load_certificate(D.SERVER_CERT.path(lab)).serial_number:x}"


def assert_presents_the_file(lab: Path, address: str) -> None:
    """API and CLI agree: the broker presents broker/server.crt (a pass, exit 0)."""
    report = verify_lab(lab, live=address)
    row = live_row(report)
    assert report.ok and row.status == "pass", str(report)
    assert "presents broker/server.crt" in row.message and serial(lab) in row.message, row
    assert report.live is not None and report.live.leaf == load_certificate(D.SERVER_CERT.path(lab))
    done = run_cli("verify", str(lab), "--live", address)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"[pass] {LIVE_CHECK}: the broker at {address} presents broker/server.crt" in done.stdout
    assert done.stdout.splitlines()[-1].endswith(f"; the broker running at {address} presents them."), done.stdout


def assert_not_reloaded(lab: Path, address: str, old: str, new: str) -> str:
    """API and CLI agree: step 12, broker/server.crt, both serials; returns the fix."""
    report = verify_lab(lab, live=address)
    row, diagnosis = live_row(report), report.diagnosis
    assert not report.ok and row.status == "fail" and diagnosis is row.diagnosis, str(report)
    assert (diagnosis.code, diagnosis.arrow, diagnosis.file) == ("not-reloaded", RENEW_STEP.number, "broker/server.crt")
    assert (f"still presents the certificate it loaded at start (serial {old}, notAfter" in diagnosis.problem
            and f"and not broker/server.crt (serial {new}" in diagnosis.problem), diagnosis
    assert all(c.ok for c in report.checks if c is not row) and report.handshake.ok  # the files themselves are fine
    done = run_cli("verify", str(lab), "--live", address)
    assert done.returncode == 1, done.stdout + done.stderr
    last = done.stdout.splitlines()[-1]
    assert last.startswith(f"FAILED: step {RENEW_STEP.number} ({RENEW_STEP.title}), broker/server.crt: the running "
                           f"broker at {address} still presents") and old in last and new in last, done.stdout
    return diagnosis.fix


# --- mosquitto ---------------------------------------------------------------------------------------------------

def test_mosquitto_before_renewal_after_renewal_without_sighup_and_after_sighup(owned_lab) -> None:  # noqa: F811
    lab, account = owned_lab
    with exported_mosquitto(lab, account) as (broker, port, log):
        address = f"127.0.0.1:{port}"
        assert_presents_the_file(lab, address)

        old = serial(lab)
        result = renew(lab, "broker")
        new = serial(lab)
        assert new == f"{result.new_serial:x}" != old
        fix = assert_not_reloaded(lab, address, old, new)
        assert f"kill -HUP {broker.pid}" in fix and "mosquitto 2.0 reads certfile and keyfile again on SIGHUP" in fix
        problem = verify_lab(lab, live=address).diagnosis.problem
        assert f"{result.backups[0].parent.relative_to(lab).as_posix()}/server.crt" in problem  # the backup it matched

        broker.send_signal(signal.SIGHUP)
        _wait_for(lambda: presented_certificate(port, D.FIRST_CLIENT.side(lab).ca).serial_number == result.new_serial,
                  "the new serial", broker, log)
        assert_presents_the_file(lab, address)
        assert broker.poll() is None  # reloaded, not restarted


# --- the embedded broker -----------------------------------------------------------------------------------------

@pytest.fixture
def chain_lab(lab_factory, tmp_path: Path) -> Path:
    lab = tmp_path / "pki"
    shutil.copytree(lab_factory(intermediate=True), lab)
    return lab


@pytest.fixture(params=["one level", "intermediate"])
def any_lab(request: pytest.FixtureRequest, built_lab: Path, lab_factory, tmp_path: Path) -> Path:
    lab = tmp_path / "pki"
    shutil.copytree(lab_factory(intermediate=True) if request.param == "intermediate" else built_lab, lab)
    return lab


@contextlib.contextmanager
def embedded(files) -> Iterator[str]:
    broker = start_broker("embedded", files)
    try:
        yield f"127.0.0.1:{broker.port}"
    finally:
        broker.stop()


def test_embedded_broker_before_renewal_after_renewal_and_after_a_restart(any_lab: Path) -> None:
    lab = any_lab
    with embedded(lab) as address:
        assert_presents_the_file(lab, address)
        chained = len(load_certificates(D.SERVER_CERT.path(lab))) == 2
        assert ("with intermediate/intermediate.crt after it" in live_row(verify_lab(lab, live=address)).message) \
            == chained
        old = serial(lab)
        renew(lab, "broker")
        fix = assert_not_reloaded(lab, address, old, serial(lab))
        assert fix.startswith("restart the broker: it runs inside this Python process (the embedded broker)"), fix
    with embedded(lab) as address:  # it reads its files when it starts
        assert_presents_the_file(lab, address)


@pytest.mark.parametrize("new_key", [False, True], ids=["same-key", "new-key"])
def test_without_backups_an_older_certificate_of_the_broker_is_still_recognised(lab_copy: Path, new_key: bool) -> None:
    with embedded(lab_copy) as address:
        old = serial(lab_copy)
        renew(lab_copy, "broker", new_key=new_key)
        shutil.rmtree(lab_copy / "backups")
        report = verify_lab(lab_copy, live=address)
        assert report.diagnosis.code == "not-reloaded", str(report)
        assert "an older certificate of the broker (same names" in report.diagnosis.problem
        assert old in report.diagnosis.problem and serial(lab_copy) in report.diagnosis.problem


def test_a_broker_not_reloaded_after_a_rotations_reissue_is_step_17(lab_copy: Path) -> None:
    """The old certificate was signed by the old root: the step to redo is the re-issue of a CA rotation."""
    start_rotation(lab_copy)
    with embedded(lab_copy) as address:
        old = serial(lab_copy)
        reissue(lab_copy, ["broker"])
        report = verify_lab(lab_copy, live=address)
        assert (report.diagnosis.code, report.diagnosis.arrow) == ("not-reloaded", ROTATE_STEPS[1].number), str(report)
        assert old in report.diagnosis.problem and "not reloaded since the re-issue" in live_row(report).message


def test_a_broker_of_another_lab_is_not_running_on_this_labs_files(lab_copy: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    Lab(other).build_all()
    with embedded(other) as address:
        report = verify_lab(lab_copy, live=address)
        row = live_row(report)
        assert not report.ok and row.status == "fail" and report.diagnosis is row.diagnosis, str(report)
        diagnosis = row.diagnosis
        assert (diagnosis.code, diagnosis.arrow, diagnosis.file) == ("not-this-lab", None, "broker/server.crt")
        assert diagnosis.problem.startswith(f"the broker at {address} is not running on this lab's files")
        assert serial(other) in diagnosis.problem and serial(lab_copy) in diagnosis.problem
        assert "the lab's client refuses it: certificate verify failed" in diagnosis.problem  # another CA
        done = run_cli("verify", str(lab_copy), "--live", address)
        assert done.returncode == 1 and "is not running on this lab's files" in done.stdout.splitlines()[-1], done


def test_the_right_leaf_with_another_chain_names_the_certfile(chain_lab: Path, tmp_path: Path) -> None:
    """A broker whose certfile holds server.crt's leaf but not the intermediate after it."""
    leaf_only = tmp_path / "leaf.crt"
    leaf_only.write_bytes(load_certificates(D.SERVER_CERT.path(chain_lab))[0].public_bytes(Encoding.PEM))
    side = D.Side(D.BROKER_CA.path(chain_lab), leaf_only, D.SERVER_KEY.path(chain_lab))
    with embedded(side) as address:
        report = verify_lab(chain_lab, live=address)
        diagnosis = live_row(report).diagnosis
        assert not report.ok and diagnosis.code == "live-chain", str(report)
        assert "with 0 chain certificates after it, where broker/server.crt holds 1 (CN=MQTT Lab Intermediate CA)" \
            in diagnosis.problem
        assert report.live.chain == (load_certificates(D.SERVER_CERT.path(chain_lab))[0],)


# --- no broker, no TLS, bad addresses: one line, exit 2 ------------------------------------------------------------

def assert_one_line(done, *words: str) -> None:
    assert done.returncode == 2 and done.stdout == "", done
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr and all(w in lines[0] for w in words), done.stderr


def test_nothing_listening_is_one_line_and_exit_2(built_lab: Path) -> None:
    port = free_port()
    before = {p: (p.stat().st_mode, p.read_bytes() if p.is_file() else None) for p in built_lab.rglob("*")}
    done = run_cli("verify", str(built_lab), "--live", f"127.0.0.1:{port}")
    assert_one_line(done, f"127.0.0.1:{port}", "nothing is listening there (connection refused)")
    assert {p: (p.stat().st_mode, p.read_bytes() if p.is_file() else None) for p in built_lab.rglob("*")} == before
    with pytest.raises(InputError, match="nothing is listening"):
        verify_lab(built_lab, live=("127.0.0.1", port))


@pytest.fixture
def plain_tcp() -> Iterator[int]:
    """A server that answers every connection with a line of text: not TLS (an MQTT port without TLS is alike)."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.1)  # so that the loop sees `stop` soon
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.sendall(b"HTTP/1.0 400 not TLS\r\n\r\n")
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=5)
        server.close()


@pytest.fixture
def plain_mosquitto(tmp_path: Path) -> Iterator[int]:
    """mosquitto with a listener without TLS (what port 1883 usually is)."""
    program = require_program("mosquitto")
    port = free_port()
    conf = tmp_path / "plain.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
    log = tmp_path / "plain.log"
    with log.open("w") as out:
        broker = subprocess.Popen([program, "-c", str(conf), "-v"], stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_for(lambda: " running" in log.read_text(), "mosquitto to start", broker, log)
        yield port
    finally:
        broker.terminate()
        broker.wait(timeout=10)


@pytest.mark.parametrize("server", ["plain_tcp", "plain_mosquitto"])
def test_a_port_that_does_not_speak_tls_is_one_line_and_exit_2(built_lab: Path, server: str,
                                                                request: pytest.FixtureRequest) -> None:
    port = request.getfixturevalue(server)
    done = run_cli("verify", str(built_lab), "--live", f"127.0.0.1:{port}")
    assert_one_line(done, f"127.0.0.1:{port}", "does not speak TLS", "not plain MQTT (1883)")
    with pytest.raises(InputError, match="does not speak TLS"):
        presented_chain("127.0.0.1", port, D.FIRST_CLIENT.side(built_lab).ca)


def test_a_server_that_never_answers_is_one_line_after_the_timeout(built_lab: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # the kernel accepts; nobody speaks
        port = silent.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(InputError, match=r"no TLS handshake within 0.5 s"):
            presented_chain("127.0.0.1", port, D.FIRST_CLIENT.side(built_lab).ca, timeout=0.5)
        assert time.monotonic() - started < 2  # one wait, not one per connection


@pytest.mark.parametrize("value, words", [
    ("localhost", "is not HOST:PORT"),
    ("127.0.0.1:0", "must be a number from 1 to 65535"),
    ("127.0.0.1:99999", "must be a number from 1 to 65535"),
    ("127.0.0.1:http", "must be a number from 1 to 65535"),
    ("::1:8883", "write an IPv6 address in brackets"),
    ("bad_host!:8883", "is not a valid host name"),
])
def test_bad_live_addresses_are_one_line_and_exit_2(built_lab: Path, value: str, words: str) -> None:
    assert_one_line(run_cli("verify", str(built_lab), "--live", value), "--live", words)


def test_addresses_are_parsed_and_normalised() -> None:
    assert parse_address("[::1]:8883") == ("::1", 8883)
    assert parse_address("LOCALHOST:1") == ("localhost", 1)
    assert parse_address(("127.0.0.1", 65535)) == ("127.0.0.1", 65535)
    with pytest.raises(InputError, match="--live"):
        parse_address(("127.0.0.1", True))


def test_daytwo_presented_certificate_is_the_live_leaf(lab_copy: Path) -> None:
    """One implementation: day two's helper returns the leaf live.presented_chain sees, even when it is refused."""
    with embedded(lab_copy) as address:
        port = int(address.rpartition(":")[2])
        ca = D.FIRST_CLIENT.side(lab_copy).ca
        seen = presented_chain("127.0.0.1", port, ca, server_name="not-in-the-san.example")
        assert seen.refused is not None and "mismatch" in seen.refused.lower(), seen
        assert presented_certificate(port, ca) == seen.leaf == load_certificate(D.SERVER_CERT.path(lab_copy))
