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
        assert out == "devices/client/hello hello over mutual TLS\n"  # the default topic: its own
        python = run_cli("export", "client", str(lab), "--port", str(port), "--only", "python").stdout
        script = lab.parent / "mqtt_client.py"
        script.write_text(python)
        # The paho program runs as us: this Python (and its paho-mqtt) may be out of the account's reach.
        ran = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=30)
        assert "CONNACK: Success" in ran.stdout, ran.stdout + ran.stderr
        assert "received: devices/client/hello hello over mutual TLS" in ran.stdout
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


# --- nothing a user types can add a line to the configuration ---------------------------------------------

@pytest.mark.parametrize("bind", ["0.0.0.0\nallow_anonymous true", "127.0.0.1 allow_anonymous", "\tlocalhost",
                                  "localhost\n", "", "bad_name!", "fe80::1%eth0", "host\r\nuser root"])
def test_bind_must_be_one_address_or_host_name(built_lab: Path, bind: str) -> None:
    with pytest.raises(InputError) as caught:
        mosquitto_conf_text(built_lab, 8883, bind=bind)
    assert caught.value.where == "--bind"


@pytest.mark.parametrize(("bind", "listener"), [("0.0.0.0", "listener 8883 0.0.0.0"), ("::", "listener 8883 ::"),
                                                ("0:0::1", "listener 8883 ::1"),
                                                ("MQTT.Example.com", "listener 8883 mqtt.example.com"),
                                                (None, "listener 8883")])
def test_bind_addresses_that_are_accepted(built_lab: Path, bind: str | None, listener: str) -> None:
    assert listener in mosquitto_conf_text(built_lab, 8883, bind=bind).splitlines()


def test_cli_refuses_a_bind_that_smuggles_in_a_setting(built_lab: Path) -> None:
    done = run_cli("export", "mosquitto-conf", str(built_lab), "--bind", "0.0.0.0\nallow_anonymous true")
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "--bind" in done.stderr and "allow_anonymous true" not in done.stdout


@pytest.mark.parametrize("port", [0, -1, 65536, 100000, True, "8883", 8883.0])
def test_port_must_be_1_to_65535(built_lab: Path, port: object) -> None:
    with pytest.raises(InputError, match="not a TCP port") as caught:
        mosquitto_conf_text(built_lab, port)  # type: ignore[arg-type]
    assert caught.value.where == "--port"
    with pytest.raises(InputError, match="not a TCP port"):
        client_text(built_lab, port=port)  # type: ignore[arg-type]
    assert "listener 65535" in mosquitto_conf_text(built_lab, 65535).splitlines()
    assert "listener 1" in mosquitto_conf_text(built_lab, 1).splitlines()


def test_cli_port_out_of_range(built_lab: Path) -> None:
    for what in ("mosquitto-conf", "client"):
        done = run_cli("export", what, str(built_lab), "--port", "70000")
        assert done.returncode == 2 and "--port" in done.stderr and "Traceback" not in done.stderr, done.stderr


@pytest.mark.parametrize("folder", ["with space", "with\ttab", "with\nnewline", "with\rreturn"])
def test_conf_refuses_a_path_with_whitespace(built_lab: Path, tmp_path: Path, folder: str) -> None:
    lab = tmp_path / folder / "pki"
    shutil.copytree(built_lab, lab)
    with pytest.raises(InputError, match="spaces or other whitespace") as caught:
        mosquitto_conf_text(lab, 8883)
    assert folder in caught.value.where


# --- export client: a missing or damaged server.crt, and the other clients -----------------------------------

@pytest.mark.parametrize("damage", ["missing", "garbage", "a key", "truncated", "folder"])
def test_client_export_explains_a_missing_or_damaged_server_certificate(lab_copy: Path, damage: str) -> None:
    cert = L.SERVER_CERT.path(lab_copy)
    if damage == "missing":
        cert.unlink()
    elif damage == "garbage":
        cert.write_text("hello\n")
    elif damage == "a key":
        shutil.copyfile(L.SERVER_KEY.path(lab_copy), cert)
    elif damage == "truncated":
        cert.write_text(cert.read_text()[:200] + "\n-----END CERTIFICATE-----\n")
    else:
        cert.unlink()
        cert.mkdir()
    with pytest.raises(InputError) as caught:
        client_text(lab_copy)
    assert caught.value.where.endswith("broker/server.crt"), caught.value
    done = run_cli("export", "client", str(lab_copy))
    assert done.returncode == 2 and "Traceback" not in done.stderr and "broker/server.crt" in done.stderr, done.stderr
    # The broker's name given by hand: server.crt is not needed
    assert "HOST, PORT, TOPIC = 'localhost'" in client_text(lab_copy, host="localhost")


@pytest.fixture(scope="module")
def two_client_lab(built_lab: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mqtt_pki_lab.steps import Lab

    root = tmp_path_factory.mktemp("two") / "pki"
    shutil.copytree(built_lab, root)
    Lab(root).add_client("sensor-1")
    return root


def test_client_export_for_a_further_client(two_client_lab: Path) -> None:
    lab = two_client_lab
    role = L.client_role("sensor-1")
    sub, pub = client_commands(lab, "localhost", 8883, client="sensor-1")
    for args in (sub, pub):
        for flag, slot in (("--cafile", "trust"), ("--cert", "crt"), ("--key", "key")):
            assert args[args.index(flag) + 1] == str(role.file(slot).path(lab).resolve())
    program = paho_snippet(lab, "localhost", client="sensor-1")
    compile(program, "mqtt_client.py", "exec")
    assert str(role.file("crt").path(lab).resolve()) in program and "client 'sensor-1'" in program
    assert "clients/sensor-1/" in client_text(lab, client="sensor-1")
    # the default, and the first client by its own name, are client/
    assert client_text(lab) == client_text(lab, client="client")
    assert "/clients/" not in client_text(lab)
    done = run_cli("export", "client", str(lab), "--client", "sensor-1", "--only", "shell")
    assert done.returncode == 0 and "clients/sensor-1/client.crt" in done.stdout, done.stderr
    conf = mosquitto_conf_text(lab, 8883, client="sensor-1")
    assert "--client sensor-1" in conf and "keyfile" in conf


@pytest.mark.parametrize("name", ["sensor-9", "../client", "a b", "-x", ""])
def test_client_export_refuses_an_unknown_or_bad_client(two_client_lab: Path, name: str) -> None:
    with pytest.raises(InputError) as caught:
        client_text(two_client_lab, client=name)
    assert caught.value.where == "--client"
    done = run_cli("export", "client", str(two_client_lab), "--client", name)
    assert done.returncode == 2 and "--client" in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_client_export_names_the_missing_file_of_a_further_client(two_client_lab: Path, tmp_path: Path) -> None:
    lab = tmp_path / "pki"
    shutil.copytree(two_client_lab, lab)
    L.client_role("sensor-1").file("key").path(lab).unlink()
    with pytest.raises(InputError, match="missing: the private key of client 'sensor-1'") as caught:
        client_text(lab, client="sensor-1")
    assert caught.value.where.endswith("clients/sensor-1/client.key")
