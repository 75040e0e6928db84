#!/usr/bin/env python3
"""Set up and start the lab, or set up and run the tests: the only two commands a newcomer needs.

    python3 run.py lab      # make .venv, install the course, open JupyterLab at notebook 00
    python3 run.py test     # make .venv, install the course and its test tools, run every test

Needs nothing but Python >= 3.10 and this folder; everything else comes from PyPI into ``.venv``.
Extra arguments after ``test`` go to pytest (``python3 run.py test -k handshake``), after ``lab`` to
JupyterLab (``python3 run.py lab --no-browser``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENV = HERE / ".venv"
FIRST_NOTEBOOK = "notebooks/00_start_here.ipynb"


def venv_python() -> Path:
    """The interpreter of ``.venv`` (created on first use)."""
    python = VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    if not python.exists():
        print(f"creating {VENV} ...", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    return python


def install(python: Path, extra: str) -> None:
    """Install this package, editable, with one of its extras (``lab`` or ``test``)."""
    print(f"installing mqtt-pki-lab[{extra}] into {VENV} ...", flush=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--upgrade", "pip"], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "-e", f"{HERE}[{extra}]"], check=True)


def lab(args: list[str]) -> int:
    python = venv_python()
    install(python, "lab")
    target = FIRST_NOTEBOOK if (HERE / FIRST_NOTEBOOK).exists() else "notebooks"
    extra = ["--ServerApp.allow_root=True"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
    return subprocess.call([str(python), "-m", "jupyterlab", target, *extra, *args], cwd=HERE)


def find_python313() -> str | None:
    """A Python 3.13 interpreter (on PATH or installed by pyenv), for the strict-TLS tests; else None."""
    candidates = [shutil.which("python3.13")]
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates += sorted((str(p) for p in pyenv_root.glob("versions/3.13*/bin/python3.13")), reverse=True)
    for candidate in filter(None, candidates):
        probe = subprocess.run([candidate, "-c", "import sys, venv; print(sys.version_info[:2] == (3, 13))"],
                               capture_output=True, text=True)
        if probe.stdout.strip() == "True":
            return candidate
    return None


def python313_env() -> dict[str, str]:
    """Python 3.13 with this package in ``.venv313``, for the tests that check 3.13's default TLS contexts.

    Returns ``{"MQTT_PKI_LAB_PYTHON313": path}``, or nothing when no 3.13 is installed (those tests then
    skip locally, and fail in CI).
    """
    if os.environ.get("MQTT_PKI_LAB_PYTHON313"):
        return {}
    base = find_python313()
    if base is None:
        print("no Python 3.13 found: the Python 3.13 tests will skip (in CI: fail)", flush=True)
        return {}
    folder = HERE / ".venv313"
    python = folder / "bin" / "python"
    if not python.exists():
        print(f"creating {folder} with {base} ...", flush=True)
        subprocess.run([base, "-m", "venv", str(folder)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "-e", str(HERE)], check=True)
    return {"MQTT_PKI_LAB_PYTHON313": str(python)}


def test(args: list[str]) -> int:
    python = venv_python()
    install(python, "test")
    env = {**os.environ, **python313_env()}
    code = subprocess.call([str(python), "-m", "pytest", *args], cwd=HERE, env=env)
    if code == 5:
        print("pytest collected no tests: that is a failure here, not a success", file=sys.stderr)
        return 1
    return code


def main() -> int:
    commands = {"lab": lab, "test": test}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    return commands[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
