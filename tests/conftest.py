"""Shared fixtures: built labs, the CLI as a subprocess, and real components that must not be skipped in CI.

Tests that need a real program (mosquitto, dot, chromium, python3.13) call :func:`require`. Locally
they skip with the reason when it is missing; when ``CI`` (or ``MQTT_PKI_LAB_REQUIRE_ALL``) is set in
the environment, a missing component is a *failure*, so nothing silently stops being tested in CI.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from mqtt_pki_lab.steps import BuildOptions, Lab

REPO = Path(__file__).resolve().parent.parent


def components_required() -> bool:
    """True in CI: missing real components fail the tests instead of skipping them."""
    return any(os.environ.get(v, "").lower() not in ("", "0", "false", "no")
               for v in ("CI", "MQTT_PKI_LAB_REQUIRE_ALL"))


def require(condition: bool, reason: str) -> None:
    """Skip (locally) or fail (in CI) when a real component the test needs is missing."""
    if condition:
        return
    if components_required():
        pytest.fail(f"required component missing in CI: {reason}")
    pytest.skip(reason)


def require_program(name: str, install_hint: str = "") -> str:
    """The absolute path of ``name`` on PATH, or skip/fail as :func:`require` does."""
    path = shutil.which(name)
    require(path is not None, f"{name} is not installed{(': ' + install_hint) if install_hint else ''}")
    return path  # type: ignore[return-value]


@functools.lru_cache(maxsize=1)
def python313() -> str | None:
    """A Python 3.13 interpreter: ``$MQTT_PKI_LAB_PYTHON313`` (set by ``run.py test``), else one found the
    way ``run.py`` finds it (on PATH or installed by pyenv); None when there is none."""
    explicit = os.environ.get("MQTT_PKI_LAB_PYTHON313")
    if explicit and Path(explicit).exists():
        return explicit
    spec = importlib.util.spec_from_file_location("run_py", REPO / "run.py")
    run_py = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(run_py)  # type: ignore[union-attr]
    return run_py.find_python313()


@pytest.fixture(autouse=True)
def _course_workdir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Exercises record answers in the course's work folder: never in the repository or the caller's folder."""
    if "MQTT_PKI_LAB_WORKDIR" not in os.environ:
        monkeypatch.setenv("MQTT_PKI_LAB_WORKDIR", str(tmp_path_factory.mktemp("lab-work")))


@pytest.fixture(scope="session")
def built_lab(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A complete lab (arrows 1-9, EC P-256 defaults), built once per session. Do not modify it."""
    root = tmp_path_factory.mktemp("lab") / "pki"
    Lab(root).build_all()
    return root


@pytest.fixture
def lab_copy(built_lab: Path, tmp_path: Path) -> Path:
    """A private copy of the built lab that a test may change."""
    target = tmp_path / "pki"
    shutil.copytree(built_lab, target)
    return target


@pytest.fixture(scope="session")
def lab_factory(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Build (and cache) a lab for given :class:`BuildOptions` fields, e.g. ``lab_factory(key_type="rsa-2048")``."""
    cache: dict[tuple, Path] = {}

    def make(**options) -> Path:
        key = tuple(sorted(options.items()))
        if key not in cache:
            root = tmp_path_factory.mktemp("lab") / "pki"
            Lab(root, BuildOptions(**options)).build_all()
            cache[key] = root
        return cache[key]

    return make


#: Run a command as root *without* the capabilities that let root ignore file modes (util-linux's setpriv):
#: a 0000 file is then unreadable and a 0555 folder unwritable for it too, as for an ordinary user.
WITHOUT_ROOTS_FILE_POWERS = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search,-fowner",
                             "--inh-caps", "-dac_override,-dac_read_search,-fowner"]


def run_cli(*args: str, cwd: Path | None = None, input: str | None = None, timeout: float = 120,
            env: dict[str, str] | None = None, as_ordinary_user: bool = False) -> subprocess.CompletedProcess[str]:
    """Run ``python -m mqtt_pki_lab ARGS`` as a real process; return the completed process.

    ``as_ordinary_user``: when running as root, drop root's power over file modes first (see
    :data:`WITHOUT_ROOTS_FILE_POWERS`), so permission cases behave as they do for a student.
    """
    prefix = WITHOUT_ROOTS_FILE_POWERS if as_ordinary_user and os.geteuid() == 0 else []
    return subprocess.run([*prefix, sys.executable, "-m", "mqtt_pki_lab", *args], cwd=cwd, input=input, text=True,
                          capture_output=True, timeout=timeout, env=env)
