"""mosquitto, the production broker, on the lab's files: started on a free port, logged, stopped by pid.

These tests run the real program: ``require_program("mosquitto")`` skips locally when it is missing but
fails in CI, so the mosquitto half of the lab never goes untested.
"""

from __future__ import annotations

import os
import pwd
import subprocess
from pathlib import Path

import pytest
from conftest import require_program

pytest.importorskip("paho.mqtt")

from mqtt_pki_lab import diagram as L
from mqtt_pki_lab.errors import LabError
from mqtt_pki_lab.export import mosquitto_conf_text
from mqtt_pki_lab.mosquitto import (
    MosquittoBroker,
    MosquittoMissing,
    cannot_read_files,
    explain_start_failure,
    free_port,
    mosquitto_conf,
    refusals_in,
)
from mqtt_pki_lab.mqtt_client import mqtt_round_trip
from mqtt_pki_lab.tlscontext import side_paths

IS_ROOT = os.geteuid() == 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()


def test_conf_asks_for_mutual_tls_and_the_certificate_name() -> None:
    side = L.Side(Path("/x/ca.crt"), Path("/x/server.crt"), Path("/x/server.key"))
    text = mosquitto_conf(side, 18883, bind="127.0.0.1", user="alice")
    lines = text.splitlines()
    for line in ("listener 18883 127.0.0.1", "cafile /x/ca.crt", "certfile /x/server.crt", "keyfile /x/server.key",
                 "require_certificate true", "use_identity_as_username true", "allow_anonymous false",
                 "user alice"):
        assert line in lines, (line, text)
    assert "listener 18883" in mosquitto_conf(side, 18883, bind=None).splitlines()
    with pytest.raises(LabError, match="spaces"):
        mosquitto_conf(L.Side(Path("/my lab/ca.crt"), side.cert, side.key), 1)


def test_both_ways_mosquitto_logs_a_tls_refusal_are_read() -> None:
    log = ["New connection from 127.0.0.1:36237 on port 53037.",
           "OpenSSL Error[0]: error:0A000086:SSL routines::certificate verify failed",
           "Client <unknown> disconnected: Protocol error.",
           "Client connection from 127.0.0.1 failed: error:0A0000C7:SSL routines::peer did not return a certificate.",
           "New client connected from 127.0.0.1:47873 as x (p2, c1, k30, u'client')."]
    assert refusals_in(log) == ["certificate verify failed", "peer did not return a certificate"]


def test_round_trip_and_refusals_logged_by_mosquitto(built_lab: Path) -> None:
    require_program("mosquitto")
    client = L.side(built_lab, "client")
    with MosquittoBroker(built_lab) as broker:
        pid = broker.pid
        assert broker.running and broker.version and broker.port and _alive(pid)
        good = mqtt_round_trip("127.0.0.1", broker.port, client)
        bare = mqtt_round_trip("127.0.0.1", broker.port, side_paths(client.ca, None, None), timeout=3)
    assert good.ok, good
    assert not bare.ok and bare.refused_by == "broker", bare
    assert broker.refusals == ["peer did not return a certificate"]
    assert any("u'client'" in line for line in broker.log), broker.log  # use_identity_as_username
    assert not _alive(pid) and not broker.running
    assert broker.log[-1].endswith("terminating")


def test_as_root_it_runs_as_the_mosquitto_user_on_files_in_memory(built_lab: Path) -> None:
    """mosquitto started by root would switch user before reading server.key: the runner starts it as the
    `mosquitto` user from the start (so it never switches and dies with us) and hands it the broker's files
    as memory files, never as a copy on disk."""
    require_program("mosquitto")
    if not IS_ROOT:
        pytest.skip("only root makes mosquitto switch users")
    key_bytes = L.SERVER_KEY.path(built_lab).read_bytes()
    with MosquittoBroker(built_lab) as broker:
        conf = broker.conf_path.read_text()
        keyfile = next(line.split()[1] for line in conf.splitlines() if line.startswith("keyfile "))
        assert "user mosquitto" in conf.splitlines() and keyfile.startswith("/proc/self/fd/")
        memory = Path(f"/proc/{broker.pid}/fd/{keyfile.rsplit('/', 1)[1]}")
        assert os.readlink(memory).startswith("/memfd:server.key")  # the same descriptor, inherited
        assert Path(keyfile).read_bytes() == key_bytes  # the same number names it here
        mode = os.fstat(int(keyfile.rsplit("/", 1)[1]))
        assert (mode.st_mode & 0o777) == 0o400 and mode.st_uid == pwd.getpwnam("mosquitto").pw_uid
        status = Path(f"/proc/{broker.pid}/status").read_text()
        uid = next(line.split()[1] for line in status.splitlines() if line.startswith("Uid:"))
        assert int(uid) == pwd.getpwnam("mosquitto").pw_uid
        assert mqtt_round_trip("127.0.0.1", broker.port, L.side(built_lab, "client")).ok
    assert any("no copy on disk" in note for note in broker.notes)
    assert (L.SERVER_KEY.path(built_lab).stat().st_uid) == 0  # the lab itself is untouched


def test_as_root_other_accounts_to_run_as(built_lab: Path) -> None:
    """run_as="root" keeps root (files read in place, and said so); an unknown account is a clear error."""
    require_program("mosquitto")
    if not IS_ROOT:
        pytest.skip("run_as matters only for root")
    with MosquittoBroker(built_lab, run_as="root") as broker:
        assert "user root" in broker.conf_path.read_text().splitlines()
        assert f"keyfile {L.SERVER_KEY.path(built_lab)}" in broker.conf_path.read_text()
        assert mqtt_round_trip("127.0.0.1", broker.port, L.side(built_lab, "client")).ok
    assert any("runs as root" in note for note in broker.notes)
    with pytest.raises(LabError, match="no user 'no-such-account-here'"):
        MosquittoBroker(built_lab, run_as="no-such-account-here").start()


def test_the_root_pitfall_is_real_and_explained(built_lab: Path, tmp_path: Path) -> None:
    """Without the runner's care, root-owned 0600 keys and a root start fail with Permission denied."""
    program = require_program("mosquitto")
    if not IS_ROOT:
        pytest.skip("the pitfall needs root")
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(mosquitto_conf_text(built_lab, free_port(), bind="127.0.0.1") + "log_dest stderr\n")
    assert "WARNING: server.key belongs to root" in conf.read_text()
    done = subprocess.run([program, "-c", str(conf)], capture_output=True, text=True, timeout=10)
    # After switching users mosquitto reads broker/acl first ("Unable to open acl_file"), then the key.
    assert done.returncode != 0 and cannot_read_files(done.stdout + done.stderr), done.stdout + done.stderr
    explained = explain_start_failure(done.stdout + done.stderr, "mosquitto")
    assert "switches to the user" in explained and "chown" in explained


def test_runner_explains_a_broker_that_cannot_read_its_key(built_lab: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The runner without its root care (files in place, no `user` line), started by root: mosquitto
    switches to 'mosquitto', cannot read server.key, and the LabError says why and what to do."""
    import mqtt_pki_lab.mosquitto as m

    require_program("mosquitto")
    if not IS_ROOT:
        pytest.skip("the pitfall needs root")
    monkeypatch.setattr(m, "running_as_root", lambda: False)
    broker = MosquittoBroker(built_lab)
    with pytest.raises(LabError, match="switches to the user") as caught:
        broker.start()
    assert caught.value.where == str(L.SERVER_KEY.path(built_lab).parent)
    assert cannot_read_files(str(caught.value))  # broker/acl is read first: "Unable to open acl_file"
    assert not broker.running and broker.conf_path is not None and not broker.conf_path.exists()


def test_mosquitto_missing_is_a_clear_error(built_lab: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mqtt_pki_lab.mosquitto as m

    monkeypatch.setattr(m, "find_mosquitto", lambda: None)
    with pytest.raises(MosquittoMissing, match="apt-get install mosquitto") as caught:
        MosquittoBroker(built_lab).start()
    assert caught.value.exit_code == 2


def test_encrypted_server_key_is_refused_with_the_way_out(lab_factory) -> None:
    require_program("mosquitto")
    encrypted = lab_factory(passphrase=b"correct horse", encrypt_all=True)
    with pytest.raises(LabError, match="cannot use an encrypted key"):
        MosquittoBroker(encrypted).start()


def test_port_taken_meanwhile_is_retried(built_lab: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """mosquitto has no port 0: we pick a free port, and pick again if someone takes it before mosquitto."""
    import socket

    import mqtt_pki_lab.mosquitto as m

    require_program("mosquitto")
    squatter = socket.create_server(("127.0.0.1", 0))
    taken = squatter.getsockname()[1]
    picks = iter([taken])
    monkeypatch.setattr(m, "free_port", lambda host="127.0.0.1": next(picks, None) or free_port(host))
    try:
        with MosquittoBroker(built_lab) as broker:
            assert broker.port != taken
            assert mqtt_round_trip("127.0.0.1", broker.port, L.side(built_lab, "client")).ok
    finally:
        squatter.close()

