"""The MQTT check cleans up after itself, even when it is killed: no mosquitto left running, no key copy left.

``mqtt-pki-lab mqtt LAB --broker mosquitto`` runs as a real process and is killed at random moments with
SIGTERM or SIGKILL. Afterwards, within a short grace period:

* no mosquitto started by that run is alive. The run is recognised by a marker in its environment, which
  mosquitto inherits (its command line only says ``-c /proc/self/fd/N``); zombies are dead and not counted;
* no file holding the bytes of ``server.key`` exists in the run's temporary folder (``TMPDIR``, private to the
  run) or in anything the run created directly under the system's temporary folder.

Processes are found through /proc; the test signals only the processes it started itself (and, if something
is left over, the broker carrying its own run's marker, so that a failure does not leak a broker).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from conftest import REPO, require_program

pytest.importorskip("paho.mqtt")

from mqtt_pki_lab import diagram as L

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and PR_SET_PDEATHSIG: Linux")

RUNS = 20
GRACE = 2.0  # seconds a killed run's broker may take to go
MARKER = "MQTT_PKI_LAB_CLEANUP_RUN"


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:  # the process went meanwhile, or is a zombie
        return b""


def _state(pid: str) -> str:
    stat = _read(f"/proc/{pid}/stat").decode(errors="replace")
    return stat.rsplit(")", 1)[1].split()[0] if ")" in stat else "?"


def brokers_of(run: str) -> list[int]:
    """Live (not zombie) mosquitto processes whose environment carries this run's marker."""
    marker = f"{MARKER}={run}".encode()
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if os.path.basename(_read(f"/proc/{pid}/cmdline").split(b"\0")[0]) != b"mosquitto":
            continue  # the program itself, not e.g. the CLI run with "--broker mosquitto"
        if marker in _read(f"/proc/{pid}/environ").split(b"\0") and _state(pid) not in ("Z", "X", "?"):
            found.append(int(pid))
    return found


def children_of(pid: int) -> list[int]:
    return [int(c) for task in os.listdir(f"/proc/{pid}/task") if os.path.exists(f"/proc/{pid}/task/{task}")
            for c in _read(f"/proc/{pid}/task/{task}/children").split()] if os.path.exists(f"/proc/{pid}") else []


def key_copies(folders: list[Path], key: bytes, lab: Path) -> list[Path]:
    """Files under ``folders`` that hold exactly the bytes of ``key`` (the lab's own key excepted)."""
    copies = []
    for folder in folders:
        for top, _dirs, files in os.walk(folder):
            for name in files:
                path = Path(top, name)
                try:
                    if path.stat().st_size == len(key) and path.read_bytes() == key and path != lab:
                        copies.append(path)
                except OSError:
                    continue
    return copies


def created_since(folder: Path, since: float) -> list[Path]:
    """What appeared directly under ``folder`` since ``since`` (a wall-clock time)."""
    found = []
    for entry in os.scandir(folder):
        try:
            if entry.stat(follow_symlinks=False).st_ctime >= since:
                found.append(Path(entry.path))
        except OSError:
            continue
    return found


def test_killed_check_leaves_no_broker_and_no_key_copy(built_lab: Path, tmp_path: Path) -> None:
    require_program("mosquitto")
    key_path = L.SERVER_KEY.path(built_lab)
    key = key_path.read_bytes()
    system_tmp = Path(tempfile.gettempdir())
    rng = random.Random(os.environ.get("MQTT_PKI_LAB_CLEANUP_SEED") or None)
    figures = {"runs": 0, "SIGTERM": 0, "SIGKILL": 0, "broker alive at the kill": 0, "finished before the kill": 0,
               "brokers left": 0, "key copies left": 0, "intruder folders left": 0}
    leftovers: list[str] = []
    started = time.monotonic()
    for n in range(RUNS):
        sig = signal.SIGTERM if n % 2 else signal.SIGKILL
        run = uuid.uuid4().hex
        run_tmp = tmp_path / f"run-{n}"
        run_tmp.mkdir()
        env = {**os.environ, MARKER: run, "TMPDIR": str(run_tmp), "PYTHONPATH": str(REPO)}
        since = time.time() - 1
        cli = subprocess.Popen([sys.executable, "-m", "mqtt_pki_lab", "mqtt", str(built_lab), "--broker", "mosquitto"],
                               env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            if n % 4 < 2:  # a moment anywhere in the run: starting Python, making intruders, mosquitto, clients
                time.sleep(rng.uniform(0.0, 0.3))
            else:  # a moment while mosquitto runs: wait for it to be there, then a little more
                deadline = time.monotonic() + 5
                while not children_of(cli.pid) and cli.poll() is None and time.monotonic() < deadline:
                    time.sleep(0.002)
                time.sleep(rng.uniform(0.0, 0.06))
            alive_broker = bool(brokers_of(run))
            if cli.poll() is None:
                cli.send_signal(sig)
                figures[sig.name] += 1
                figures["broker alive at the kill"] += alive_broker
            else:
                figures["finished before the kill"] += 1
            cli.wait(10)
        finally:
            if cli.poll() is None:
                cli.kill()
                cli.wait()
        figures["runs"] += 1
        deadline = time.monotonic() + GRACE
        while (left := brokers_of(run)) and time.monotonic() < deadline:
            time.sleep(0.01)
        # pytest's own folder (which holds this run's TMPDIR, searched above, and the other tests' labs, whose
        # keys may be copies of the same built lab) is not something the check made
        new_in_tmp = [p for p in created_since(system_tmp, since) if not tmp_path.is_relative_to(p)]
        copies = key_copies([run_tmp, *new_in_tmp], key, key_path)
        intruders = [p for p in [*run_tmp.iterdir(), *new_in_tmp] if p.name.startswith("mqtt-pki-lab-intruder-")]
        figures["brokers left"] += len(left)
        figures["key copies left"] += len(copies)
        figures["intruder folders left"] += len(intruders)
        if left or copies:
            leftovers.append(f"run {n} ({sig.name}): brokers {left}, key copies {[str(p) for p in copies]}")
        for pid in left:  # only our own run's broker (its marker), so that a failure does not leak it
            os.kill(pid, signal.SIGKILL)
    figures["seconds"] = round(time.monotonic() - started, 1)
    print("\ncleanup figures:", figures)
    assert figures["SIGTERM"] + figures["SIGKILL"] >= RUNS * 3 // 4, figures  # most runs were really killed
    assert figures["broker alive at the kill"] >= RUNS // 4, figures  # the risky moment was hit
    assert not leftovers, (leftovers, figures)


def test_the_next_check_removes_the_intruders_folder_a_killed_check_left(built_lab: Path, tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGKILL leaves the intruders' throwaway folder (never the lab's key): the next check removes it, and
    leaves alone the folder of a check still running, a link, and anything that is not an intruders' folder."""
    from mqtt_pki_lab.mqtt_proof import INTRUDER_PREFIX, mqtt_check

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a process id that no longer runs
    stale = tmp_path / f"{INTRUDER_PREFIX}{gone.pid}-abc"
    (stale / "sub").mkdir(parents=True)
    (stale / "intruder-client.key").write_text("a throwaway key")
    running = tmp_path / f"{INTRUDER_PREFIX}{os.getpid()}-def"  # this very process: still running
    running.mkdir()
    other = tmp_path / "someone-elses-folder"
    other.mkdir()
    link = tmp_path / f"{INTRUDER_PREFIX}{gone.pid}-link"
    link.symlink_to(other, target_is_directory=True)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

    report = mqtt_check(built_lab, "embedded")

    assert report.ok, report
    assert not stale.exists()
    assert running.is_dir() and other.is_dir() and link.is_symlink()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(f"{INTRUDER_PREFIX}{os.getpid()}-")
                and p != running], "the check's own folder is removed at its end"
