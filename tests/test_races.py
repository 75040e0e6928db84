"""Two writers at once, and writers killed at random moments: the lab stays whole and tells the truth.

* :func:`test_two_builds_started_together` starts two ``build`` processes on the same new folder, 20 times:
  one must build the lab, the other must be refused in one line (the lock, or the CA the winner made),
  and the lab must verify, with no temporary file left.
* :func:`test_a_build_whose_lock_is_taken_leaves_the_winners_folder` makes the unlucky interleaving of
  the above happen every time: the command that *created* the lab folder loses the lock to a second
  build, and must not take the folder away from under the winner.
* :func:`test_kill_9_at_random_moments_during_build` kills ``build`` with SIGKILL at 40 random moments
  (30 EC P-256 builds within 0-0.6 s, 10 RSA-4096 builds within 0-2.5 s; the delays come from a seeded
  :class:`random.Random` and are shown with any failure). Afterwards ``status --json`` must report every
  file that is there and nothing that is not, every key, certificate and CSR present must load (no
  half-written PEM), and the next ``build`` (``--force`` when a CA file survived) must remove the
  leftovers, say so, and make a lab that verifies.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import run_cli

from mqtt_pki_lab.acl import default_policy, read_policy_file
from mqtt_pki_lab.files import TEMP_NAME
from mqtt_pki_lab.keys import load_private_key
from mqtt_pki_lab.pem import load_certificate, load_csr

CLI = [sys.executable, "-m", "mqtt_pki_lab"]
LOSER_SAYS = ("another mqtt-pki-lab command is writing", "a CA already exists")
SEED = 20241202


def temp_files(root: Path) -> list[str]:
    """Every temporary file of an atomic write anywhere under ``root``."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if TEMP_NAME.fullmatch(p.name))


def lab_files(root: Path) -> set[str]:
    """Every regular file under ``root``, relative."""
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and not p.is_symlink()}


# --- two writers --------------------------------------------------------------------------------------------

def test_two_builds_started_together(tmp_path: Path) -> None:
    outcomes: Counter[str] = Counter()
    for run in range(20):
        root = tmp_path / f"run{run}" / "pki"
        root.parent.mkdir()
        both = [subprocess.Popen([*CLI, "build", str(root)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True) for _ in range(2)]
        done = [(p.returncode, out, err) for p in both for out, err in [p.communicate(timeout=60)]]
        codes = sorted(code for code, _, _ in done)
        for _code, out, err in done:
            assert "Traceback" not in out + err, (run, out, err)
        assert codes == [0, 1], (run, done)
        _, _, loser_err = next(d for d in done if d[0] == 1)
        lines = loser_err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("mqtt-pki-lab build: "), (run, loser_err)
        said = next((phrase for phrase in LOSER_SAYS if phrase in lines[0]), None)
        assert said is not None, (run, lines[0])
        outcomes[said] += 1
        assert temp_files(root.parent) == [], run
        verified = run_cli("verify", str(root))
        assert verified.returncode == 0, (run, verified.stdout[-2000:])
    assert sum(outcomes.values()) == 20
    print(f"two builds at once, 20 runs: one built each time; the other was refused by {dict(outcomes)}")


def _locks_on(path: Path) -> bool:
    """True when some process holds a flock on ``path`` (Linux: /proc/locks lists MAJ:MIN:INODE)."""
    inode = os.stat(path).st_ino
    return any(len(f := line.split()) > 5 and f[1] == "FLOCK" and f[5].endswith(f":{inode}")
               for line in Path("/proc/locks").read_text().splitlines())


@pytest.mark.skipif(not Path("/proc/locks").exists(), reason="needs Linux's /proc/locks to see who holds the lock")
def test_a_build_whose_lock_is_taken_leaves_the_winners_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                                ) -> None:
    """This build creates the lab folder; before it takes the lock, another build takes it (a slow RSA-4096
    one, so it is still working). This build is refused, and must leave the folder to the winner:
    removing it "because I created it and wrote nothing" would pull it away from under the winner."""
    import mqtt_pki_lab.steps as steps
    from mqtt_pki_lab.errors import RefusedError

    root = tmp_path / "pki"
    winner: list[subprocess.Popen[str]] = []

    class LockTakenFirst(steps.LabLock):
        def __enter__(self) -> steps.LabLock:
            winner.append(subprocess.Popen([*CLI, "build", str(self.root), "--key-type", "rsa-4096"],
                                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
            deadline = time.monotonic() + 20
            while not _locks_on(self.root):
                assert winner[0].poll() is None and time.monotonic() < deadline, winner[0].communicate()
                time.sleep(0.005)
            return super().__enter__()

    monkeypatch.setattr(steps, "LabLock", LockTakenFirst)
    try:
        with pytest.raises(RefusedError, match="another mqtt-pki-lab command is writing"):
            steps.Lab(root).build_all()
        folder_after_refusal = root.is_dir()
    finally:
        _out, err = winner[0].communicate(timeout=60)
    assert folder_after_refusal, "the refused build removed the lab folder the winner was building in"
    assert winner[0].returncode == 0, err
    assert run_cli("verify", str(root)).returncode == 0


# --- kill -9 --------------------------------------------------------------------------------------------------

@dataclass
class Kill:
    """One build killed after ``delay`` seconds, and what was found afterwards."""

    run: int
    key_type: str
    delay: float
    finished_first: bool = False
    state: str = ""
    leftovers: list[str] = field(default_factory=list)
    recovery: str = ""

    def __str__(self) -> str:
        return (f"run {self.run}: {self.key_type} killed at {self.delay:.3f}s -> {self.state}"
                f"{' (it had finished)' if self.finished_first else ''}; leftovers {self.leftovers}; "
                f"then {self.recovery}")


def _check_status_is_truthful(root: Path, kill: Kill) -> dict:
    done = run_cli("status", str(root), "--json")
    assert done.returncode == 0 and "Traceback" not in done.stderr, (str(kill), done.stderr)
    report = json.loads(done.stdout)
    reported: set[str] = set()
    for role in report["roles"]:
        for slot in ("key", "csr", "crt", "ca.crt", "acl"):  # acl: the broker's policy, broker/acl
            path = role.get(slot)
            if path is not None:
                assert Path(path).is_file(), (str(kill), role["folder"], slot, path)
                reported.add(Path(path).relative_to(root).as_posix())
    leftovers = report["leftovers"]
    for rel in leftovers:
        assert TEMP_NAME.fullmatch(Path(rel).name) and (root / rel).is_file(), (str(kill), rel)
    assert lab_files(root) == reported | set(leftovers), (str(kill), sorted(lab_files(root)), report)
    # No file of the lab is a partial PEM: whatever took its name was complete.
    for rel in sorted(reported):
        path = root / rel
        if path.suffix == ".key":
            load_private_key(path)
        elif path.suffix == ".csr":
            load_csr(path)
        elif path.name == "acl":
            assert read_policy_file(path) == default_policy(), (str(kill), path.read_text())  # never partial
        else:
            load_certificate(path)
    kill.leftovers = list(leftovers)
    ca_files = {"ca/ca.key", "ca/ca.crt"} & reported
    kill.state = (f"{len(reported)} files" + (f" (CA: {', '.join(sorted(ca_files))})" if ca_files else "")
                  + (", complete" if report["complete"] else ""))
    return report


def _kill_and_recover(run: int, key_type: str, delay: float, tmp_path: Path) -> Kill:
    kill = Kill(run, key_type, delay)
    root = tmp_path / f"kill{run}" / "pki"
    root.parent.mkdir()
    process = subprocess.Popen([*CLI, "build", str(root), "--key-type", key_type], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    time.sleep(delay)
    kill.finished_first = process.poll() is not None
    process.kill()
    process.wait(30)
    assert sorted(p.name for p in root.parent.iterdir()) in ([], ["pki"]), (str(kill), list(root.parent.iterdir()))
    if root.exists():
        _check_status_is_truthful(root, kill)
    else:
        kill.state = "no lab folder yet"
    has_ca = (root / "ca" / "ca.key").exists() or (root / "ca" / "ca.crt").exists()
    args = ["build", str(root), *(["--force"] if has_ca else [])]
    again = run_cli(*args)
    assert again.returncode == 0 and "Traceback" not in again.stderr, (str(kill), again.stderr)
    for rel in kill.leftovers:
        assert f"removed {rel}" in again.stderr, (str(kill), again.stderr)
    kill.recovery = " ".join(["build", *(["--force"] if has_ca else [])]) + " ok"
    assert temp_files(root.parent) == [], str(kill)
    verified = run_cli("verify", str(root))
    assert verified.returncode == 0, (str(kill), verified.stdout[-2000:])
    kill.recovery += ", verify ok"
    return kill


def test_kill_9_at_random_moments_during_build(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    plan = [("ec-p256", round(rng.uniform(0.0, 0.6), 3)) for _ in range(30)]
    plan += [("rsa-4096", round(rng.uniform(0.0, 2.5), 3)) for _ in range(10)]
    rng.shuffle(plan)
    with ThreadPoolExecutor(max_workers=2) as pool:  # two at a time: the machine has two cores to spare
        futures = [pool.submit(_kill_and_recover, i, kind, delay, tmp_path) for i, (kind, delay) in enumerate(plan)]
        kills = [f.result() for f in futures]
    assert len(kills) == 40
    by_state = Counter("finished" if k.finished_first else ("leftovers" if k.leftovers else k.state.split(" (")[0])
                       for k in kills)
    print(f"kill -9 during build, seed {SEED}, 40 runs: {dict(sorted(by_state.items()))}")
    for k in kills:
        print(f"  {k}")
