"""The exercises of notebook 12 (your own devices): right answers pass, each targeted hint is reachable,
garbage gets a sentence, never a traceback."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from exercise_helpers import check, fits, garbage_tests, hint_of, targeted

from mqtt_pki_lab.coursework import workdir
from mqtt_pki_lab.exercises import EXERCISES
from mqtt_pki_lab.exercises.devices import broker_san
from mqtt_pki_lab.steps import BuildOptions, Lab

IDS = ("devices-own-lab", "devices-pub-command")
NAMES = ("mqtt.home.arpa", "192.168.1.50")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lab with the broker names of a home network, and the course lab, both built once."""
    root = tmp_path_factory.mktemp("home") / "my-devices"
    lab = Lab(root, BuildOptions(server_names=NAMES))
    lab.build_all()
    lab.add_client("thermostat")
    course = tmp_path_factory.mktemp("course") / "pki"
    Lab(course).build_all()
    return root.parent


@pytest.fixture
def mine(built: Path) -> Lab:
    """The home lab, copied into this test's course work folder."""
    target = workdir() / "my-devices"
    if not target.exists():
        shutil.copytree(built / "my-devices", target)
    return Lab(target)


test_garbage_gets_a_sentence, test_not_answered = garbage_tests(IDS)


def test_broker_san_lists_host_names_only(mine: Lab) -> None:
    assert broker_san(mine.root) == [*NAMES, "localhost", "127.0.0.1", "::1"]
    assert broker_san(mine.root.parent / "nowhere") is None


def test_own_lab(mine: Lab, tmp_path: Path, built: Path) -> None:
    assert EXERCISES["devices-own-lab"].notebook == "12_your_own_devices.ipynb"
    assert check("devices-own-lab", mine).correct
    assert check("devices-own-lab", str(mine.root), name="192.168.1.50").correct
    assert "LAN IP" not in check("devices-own-lab", mine).message
    outside = hint_of("devices-own-lab", built / "my-devices")
    assert fits(outside, EXERCISES["devices-own-lab"].hints[0]) and "course.workdir()" in outside
    course_lab = workdir() / "pki"
    shutil.copytree(next(built.parent.glob("course*")) / "pki", course_lab)
    assert "your course lab" in hint_of("devices-own-lab", Lab(course_lab))
    empty = Lab(workdir() / "not-built")
    assert "no broker certificate" in hint_of("devices-own-lab", empty)
    local = workdir() / "local-only"
    shutil.copytree(course_lab, local)
    assert "only the local names" in hint_of("devices-own-lab", Lab(local))
    assert "Hostname mismatch" in hint_of("devices-own-lab", mine, name="mqtt.example.com")
    assert "not a valid host name" in hint_of("devices-own-lab", mine, name="my broker")


def test_own_lab_as_a_lab_a_path_or_a_str(mine: Lab) -> None:
    """A Lab, its folder as a Path and as a str are judged alike (a Path's own ``.root`` is "/": never read)."""
    as_path = workdir() / "my-devices"
    verdicts = [check("devices-own-lab", answer) for answer in (mine, as_path, str(as_path), f" {as_path} ")]
    assert all(v.correct for v in verdicts), [v.message for v in verdicts]
    assert len({v.message for v in verdicts}) == 1
    elsewhere = hint_of("devices-own-lab", Path("/tmp/home2"))
    assert fits(elsewhere, EXERCISES["devices-own-lab"].hints[0]) and elsewhere.endswith("not /tmp/home2.")
    assert "no broker certificate" in hint_of("devices-own-lab", workdir() / "home2")


def test_own_lab_that_fails_verify_says_why(mine: Lab) -> None:
    broken = workdir() / "broken-devices"
    shutil.copytree(mine.root, broken)
    shutil.copyfile(broken / "broker" / "server.crt", broken / "client" / "ca.crt")  # trusts the wrong file
    text = hint_of("devices-own-lab", Lab(broken))
    assert text.startswith("verify broken-devices with hostname 'mqtt.home.arpa' fails"), text


def pub(root: Path, *extra: str, client: str = "client", host: str = "mqtt.home.arpa") -> str:
    folder = root / client
    return " ".join(["mosquitto_pub", "-h", host, "-p", "8883", "--cafile", str(folder / "ca.crt"),
                     "--cert", str(folder / "client.crt"), "--key", str(folder / "client.key"),
                     "-t", "lab/hello", "-m", "'hello there'", *extra])


def test_pub_command_right(mine: Lab) -> None:
    assert check("devices-pub-command", pub(mine.root), lab=mine).correct
    assert check("devices-pub-command", pub(mine.root, client="clients/thermostat"), lab=mine).correct
    without_port = pub(mine.root).replace("-p 8883 ", "")
    assert "default with TLS" in check("devices-pub-command", without_port, lab=mine).message
    assert check("devices-pub-command", pub(mine.root, host="192.168.1.50"), lab=mine).correct
    assert check("devices-pub-command", "mosquitto_pub --host=mqtt.home.arpa --cafile=c/ca.crt --cert c/client.crt "
                                        "--key c/client.key --topic t -m m").correct


def test_pub_command_hints(mine: Lab) -> None:
    root, hints = mine.root, EXERCISES["devices-pub-command"].hints
    line = pub(root)
    cases = {
        "start with the program": "mosquitto_sub -h x",
        "does not use TLS": re.sub(r"--cafile \S+ ", "", line),
        "public CAs": re.sub(r"--cafile \S+ ", "--tls-use-os-certs ", line),
        "CA's secret": line.replace(str(root / "client" / "ca.crt"), str(root / "ca" / "ca.key")),
        "not client.crt": line.replace(f"--cafile {root / 'client' / 'ca.crt'}",
                                       f"--cafile {root / 'client' / 'client.crt'}"),
        "switches off the check": pub(root, "--insecure"),
        "1883 is plain": line.replace("-p 8883", "-p 1883"),
        "give --cert": re.sub(r"--cert \S+ ", "", line),
        "give --key": re.sub(r"--key \S+ ", "", line),
        "swapped or wrong": line.replace("--cert " + str(root / "client" / "client.crt"),
                                         "--cert " + str(root / "client" / "client.key")),
        "broker's file": line.replace(str(root / "client" / "client.crt"), str(root / "broker" / "server.crt")),
        "different folders": line.replace(str(root / "client" / "client.key"),
                                          str(root / "clients" / "thermostat" / "client.key")),
        "give -h": line.replace("-h mqtt.home.arpa ", ""),
        "broker's own machine": pub(root, host="localhost"),
        "not in the broker certificate": pub(root, host="mqtt.example.com"),
        "needs a topic": line.replace("-t lab/hello ", ""),
    }
    reached = {targeted("devices-pub-command", answer, says=words, lab=mine) for words, answer in cases.items()}
    assert reached == set(hints)
    assert "could not read" in hint_of("devices-pub-command", "mosquitto_pub -m 'unclosed", lab=mine)
    assert "not a valid host name" in hint_of("devices-pub-command", pub(root, host="my_broker!"), lab=mine)


def test_pub_command_to_localhost_is_not_a_device_s_command(mine: Lab) -> None:
    """localhost and the loopback addresses reach the broker only on its own machine, though every lab's
    server.crt lists them: a device must dial the broker's real name."""
    local_host = EXERCISES["devices-pub-command"].hints[-3]
    for host in ("localhost", "LOCALHOST", "127.0.0.1", "127.0.1.1", "::1", "0:0::1"):
        text = hint_of("devices-pub-command", pub(mine.root, host=host), lab=mine)
        assert fits(text, local_host) and "mqtt.home.arpa, 192.168.1.50" in text, (host, text)
    assert fits(hint_of("devices-pub-command", pub(mine.root, host="localhost")), local_host)  # no lab given
    course_lab = Lab(workdir() / "local-only")
    course_lab.build_all()
    text = hint_of("devices-pub-command", pub(course_lab.root, host="localhost"), lab=course_lab)
    assert "lists only the local names" in text and "exercise 1" in text
