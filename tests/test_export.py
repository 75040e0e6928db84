"""Configurations to take home: the exported mosquitto.conf runs unchanged, and the exported client (paho-mqtt
program, mosquitto_sub / mosquitto_pub lines) makes a round trip through it.

The end-to-end test runs mosquitto the way the export promises: as an *ordinary user who owns the files*.
As root (here, and in many CI containers) that user is the ``mosquitto`` account the Debian package makes:
the test copies the lab to a fresh folder owned by it and starts every program as that account (no
supplementary groups); as an ordinary user, it uses the current account.
"""

from __future__ import annotations

import os
import pwd
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import require, require_program, run_cli

from mqtt_pki_lab import diagram as L
from mqtt_pki_lab.errors import InputError
from mqtt_pki_lab.export import client_commands, client_text, mosquitto_conf_text, paho_snippet, server_name
from mqtt_pki_lab.mosquitto import free_port


def test_conf_names_absolute_paths_and_the_key_owner(built_lab: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(built_lab.parent)
    text = mosquitto_conf_text(Path(built_lab.name), 18883)
    lines = text.splitlines()
    for file in (L.BROKER_CA, L.SERVER_CERT, L.SERVER_KEY):
        key = {"ca.crt": "cafile", "server.crt": "certfile", "server.key": "keyfile"}[file.name]
        assert f"{key} {file.path(built_lab).resolve()}" in lines
    assert {"listener 18883", "require_certificate true", "use_identity_as_username true"} <= set(lines)
    owner = pwd.getpwuid(L.SERVER_KEY.path(built_lab).stat().st_uid).pw_name
    if owner == "root":
        assert not any(line.startswith("user ") for line in lines)
        assert any(line.startswith("# WARNING: server.key belongs to root.") for line in lines)
    else:
        assert f"user {owner}" in lines
    assert "PRIVATE KEY" not in text


def test_conf_and_client_refuse_bad_input(built_lab: Path, lab_copy: Path) -> None:
    with pytest.raises(InputError, match="not a TCP port"):
        mosquitto_conf_text(built_lab, 0)
    L.CLIENT_KEY.path(lab_copy).unlink()
    with pytest.raises(InputError, match="missing: the client's private key"):
        client_text(lab_copy)
    done = run_cli("export", "mosquitto-conf", str(lab_copy.parent / "nope"))
    assert done.returncode == 2 and "Traceback" not in done.stderr and "missing" in done.stderr


def test_client_export_parts(built_lab: Path) -> None:
    assert server_name(built_lab) == "localhost"
    sub, pub = client_commands(built_lab, "localhost", 8883)
    assert sub[:1] == ["mosquitto_sub"] and pub[:1] == ["mosquitto_pub"]
    for args in (sub, pub):
        for flag, file in (("--cafile", L.CLIENT_CA), ("--cert", L.CLIENT_CERT), ("--key", L.CLIENT_KEY)):
            assert args[args.index(flag) + 1] == str(file.path(built_lab).resolve())
    program = paho_snippet(built_lab, "localhost", 8883)
    compile(program, "mqtt_client.py", "exec")
    assert "CallbackAPIVersion.VERSION2" in program and "tls_set_context" in program
    everything = run_cli("export", "client", str(built_lab))
    assert everything.returncode == 0, everything.stderr
    assert program in everything.stdout and shlex.join(sub) in everything.stdout
    assert run_cli("export", "client", str(built_lab), "--only", "python").stdout == program


@pytest.fixture
def owned_lab(built_lab: Path) -> Iterator[tuple[Path, str | None]]:
    """A copy of the lab in a fresh folder owned by an ordinary account: (lab folder, account to run as).

    The account is None when we are not root (we already are an ordinary user who owns the copy)."""
    account = None
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("mosquitto")
        except KeyError:
            require(False, "as root the test needs the 'mosquitto' account (made by the mosquitto package)")
        account = "mosquitto"
    home = Path(tempfile.mkdtemp(prefix="mqtt-pki-lab-home-"))
    shutil.copytree(built_lab, home / "pki")
    if account:
        entry = pwd.getpwnam(account)
        for path in [home, *home.rglob("*")]:
            os.chown(path, entry.pw_uid, entry.pw_gid)
    try:
        yield home / "pki", account
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _as(account: str | None) -> dict:
    """subprocess arguments that run a program as ``account`` with no privileges left over from root."""
    if account is None:
        return {}
    entry = pwd.getpwnam(account)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": [],
            "env": {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(entry.pw_dir)}}


def test_exported_conf_runs_unchanged_and_exported_clients_make_a_round_trip(owned_lab) -> None:
    program = require_program("mosquitto")
    require_program("mosquitto_sub")
    require_program("mosquitto_pub")
    lab, account = owned_lab
    port = free_port()
    conf = lab.parent / "mosquitto.conf"
    made = run_cli("export", "mosquitto-conf", str(lab), "--port", str(port), "--bind", "127.0.0.1")
    assert made.returncode == 0, made.stderr
    conf.write_text(made.stdout)
    owner = account or pwd.getpwuid(os.geteuid()).pw_name
    assert f"user {owner}" in made.stdout.splitlines()
    if account:
        os.chown(conf, pwd.getpwnam(account).pw_uid, pwd.getpwnam(account).pw_gid)
    shell = run_cli("export", "client", str(lab), "--port", str(port), "--only", "shell").stdout
    sub_line, pub_line = [line for line in shell.splitlines() if not line.startswith("#")]
    log_path = lab.parent / "mosquitto.log"
    log_file = log_path.open("w")
    broker = subprocess.Popen([program, "-c", str(conf)], stdout=log_file, stderr=subprocess.STDOUT, **_as(account))
    try:
        deadline = time.monotonic() + 10
        while " running" not in log_path.read_text() and time.monotonic() < deadline:
            assert broker.poll() is None, log_path.read_text()
            time.sleep(0.01)
        sub = subprocess.Popen(["bash", "-c", sub_line], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, **_as(account))
        deadline = time.monotonic() + 15
        while sub.poll() is None and time.monotonic() < deadline:  # publish until the subscriber has one
            assert broker.poll() is None, log_path.read_text()
            subprocess.run(["bash", "-c", pub_line], capture_output=True, timeout=10, **_as(account))
            time.sleep(0.05)
        out, err = sub.communicate(timeout=5)
        assert sub.returncode == 0, err
        assert out == "lab/hello hello over mutual TLS\n"
        python = run_cli("export", "client", str(lab), "--port", str(port), "--only", "python").stdout
        script = lab.parent / "mqtt_client.py"
        script.write_text(python)
        # The paho program runs as us: this Python (and its paho-mqtt) may be out of the account's reach.
        ran = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=30)
        assert "CONNACK: Success" in ran.stdout, ran.stdout + ran.stderr
        assert "received: lab/hello hello over mutual TLS" in ran.stdout
    finally:
        broker.terminate()
        broker.wait(timeout=10)
        log_file.close()
    log = log_path.read_text()
    assert "u'client'" in log, log  # use_identity_as_username: the certificate's CN is the username
    if account:
        assert "Permission denied" not in log


def test_exported_conf_started_by_root_switches_to_the_key_owner(owned_lab) -> None:
    """The `user` line names the key's owner, so `mosquitto -c` as root works too: it drops to that user."""
    program = require_program("mosquitto")
    lab, account = owned_lab
    if account is None:
        pytest.skip("only root makes mosquitto switch users")
    from mqtt_pki_lab.mqtt_client import mqtt_round_trip

    port = free_port()
    conf = lab.parent / "mosquitto.conf"
    conf.write_text(mosquitto_conf_text(lab, port, bind="127.0.0.1"))
    broker = subprocess.Popen([program, "-c", str(conf)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
    try:
        deadline, trip = time.monotonic() + 10, None
        while time.monotonic() < deadline and not (trip and trip.ok):
            assert broker.poll() is None, broker.stdout.read()
            trip = mqtt_round_trip("127.0.0.1", port, L.side(lab, "client"), timeout=3)
        assert trip is not None and trip.ok, trip
        status = Path(f"/proc/{broker.pid}/status").read_text()
        uid = int(next(line.split()[1] for line in status.splitlines() if line.startswith("Uid:")))
        assert uid == pwd.getpwnam(account).pw_uid
    finally:
        broker.terminate()
        broker.communicate(timeout=10)
