#!/usr/bin/env python3
"""Set up and start the lab, or set up and run the tests: the only two commands a newcomer needs.

    python3 run.py lab      # make .venv, install the course, open JupyterLab at notebook 00
    python3 run.py test     # make .venv, install the course and its test tools, run every test

Needs nothing but Python >= 3.10 and this folder; everything else comes from PyPI into ``.venv``. pip runs
only when something changed since the last successful install (pyproject.toml, the extra, the Python version),
so the second ``run.py lab`` starts JupyterLab at once; JupyterLab runs with ``.venv``'s scripts first on
PATH, so its terminals find ``mqtt-pki-lab`` and the venv's ``python``.
Extra arguments after ``test`` go to pytest (``python3 run.py test -k handshake``), after ``lab`` to
JupyterLab (``python3 run.py lab --no-browser``).
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
import sys
import venv
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENV = HERE / ".venv"
PYPROJECT = HERE / "pyproject.toml"
FIRST_NOTEBOOK = "notebooks/00_start_here.ipynb"


def venv_python() -> Path:
    """The interpreter of ``.venv`` (created on first use)."""
    python = VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    if not python.exists():
        print(f"creating {VENV} ...", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    return python


#: An install of the key's extra also gives the value's: `run.py test` installs all that `run.py lab` needs.
COVERS = {"lab": ("lab", "test"), "test": ("test",)}


def stamp_file(venv: Path, extra: str) -> Path:
    """Where a successful install of ``extra`` into ``venv`` leaves its stamp."""
    return venv / f".mqtt-pki-lab-installed-{extra}"


def venv_version(venv: Path) -> str:
    """The Python version of ``venv``, from its ``pyvenv.cfg`` (no interpreter started); "" when unknown."""
    try:
        lines = (venv / "pyvenv.cfg").read_text(encoding="utf-8").splitlines()
    except OSError:
        return ""
    settings = dict(line.split("=", 1) for line in lines if "=" in line)
    settings = {key.strip(): value.strip() for key, value in settings.items()}
    return settings.get("version_info") or settings.get("version") or ""


def install_stamp(extra: str, venv: Path | None = None) -> str:
    """What an install depends on: a hash of pyproject.toml, the extra and the venv's Python version.

    When it is the one a successful install recorded, the next install would change nothing and is skipped.
    """
    digest = hashlib.sha256()
    version = venv_version(venv or VENV)
    for part in (PYPROJECT.read_bytes(), extra.encode(), version.encode(), str(HERE).encode()):
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()


def installed_here(python: Path) -> bool:
    """True when ``python`` imports this folder's package (the editable install is in place and works)."""
    try:
        probe = subprocess.run([str(python), "-c", "import mqtt_pki_lab; print(mqtt_pki_lab.__file__)"],
                               capture_output=True, text=True, cwd=python.parent, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0 and Path(probe.stdout.strip()).resolve() == HERE / "mqtt_pki_lab" / "__init__.py"


def needs_install(python: Path, extra: str, venv: Path | None = None) -> bool:
    """False when an install of ``extra`` (or of an extra that covers it) was recorded for this very
    pyproject.toml and Python, and the package still imports from here; True otherwise."""
    venv = venv or VENV
    for done in COVERS.get(extra, (extra,)):
        try:
            recorded = stamp_file(venv, done).read_text(encoding="utf-8").strip()
        except OSError:
            continue
        if recorded == install_stamp(done, venv) and installed_here(python):
            return False
    return True


def record_install(extra: str, venv: Path | None = None) -> None:
    """Leave the stamp of a successful install of ``extra`` (written aside, then renamed)."""
    venv = venv or VENV
    write_text(stamp_file(venv, extra), install_stamp(extra, venv) + "\n")


def install(python: Path, extra: str, venv: Path | None = None) -> None:
    """Install this package, editable, with one of its extras (``lab`` or ``test``), unless nothing changed
    since the last install (see :func:`needs_install`; delete ``.venv`` or its stamp to force one)."""
    venv = venv or VENV
    if not needs_install(python, extra, venv):
        return
    print(f"installing mqtt-pki-lab[{extra}] into {venv} ...", flush=True)
    stamp_file(venv, extra).unlink(missing_ok=True)  # an interrupted install leaves no stamp behind
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--upgrade", "pip"], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "-e", f"{HERE}[{extra}]"], check=True)
    record_install(extra, venv)


def venv_env(python: Path) -> dict[str, str]:
    """This environment with the venv's scripts first on PATH, as an activated venv has it: JupyterLab's
    terminals and ``!`` commands then find ``mqtt-pki-lab`` and the venv's ``python``."""
    scripts = str(python.parent)
    path = os.environ.get("PATH", "")
    env = {**os.environ, "PATH": scripts + (os.pathsep + path if path else ""),
           "VIRTUAL_ENV": str(python.parent.parent)}
    env.pop("PYTHONHOME", None)
    return env


def terminal_options(python: Path) -> list[str]:
    """JupyterLab options that make its terminals keep the venv first on PATH (writes the bash rc file they use).

    A terminal is a shell that may reset PATH: a login shell (JupyterLab starts one when it was not started
    from a terminal itself) reads /etc/profile, and ``~/.bashrc`` may put pyenv's or conda's ``python`` first.
    So the user's shell is started without ``-l``; bash with an rc file, kept in the venv, that reads
    ``~/.bashrc`` and then puts the venv first again (unless run.py is given its own terminado_settings).
    """
    if os.name == "nt":
        return []
    venv = python.parent.parent
    shell = os.environ.get("SHELL") or shutil.which("bash") or "/bin/sh"
    command = [shell]
    if Path(shell).name == "bash":
        rcfile = venv / "mqtt-pki-lab.bashrc"
        write_text(rcfile, "# Written by run.py for JupyterLab's terminals: your ~/.bashrc, then this venv first.\n"
                           "[ -f ~/.bashrc ] && . ~/.bashrc\n"
                           f"export VIRTUAL_ENV={shlex.quote(str(venv))}\n"
                           f"export PATH={shlex.quote(str(python.parent))}\"${{PATH:+:$PATH}}\"\n")
        command += ["--rcfile", str(rcfile)]
    return [f"--ServerApp.terminado_settings=shell_command={shlex.join(command)}"]


def write_text(path: Path, text: str) -> None:
    """Write a small file atomically (aside, then renamed), making its folder if needed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temp.write_text(text, encoding="utf-8")
    os.replace(temp, path)


def lab(args: list[str]) -> int:
    python = venv_python()
    install(python, "lab")
    target = FIRST_NOTEBOOK if (HERE / FIRST_NOTEBOOK).exists() else "notebooks"
    extra = ["--ServerApp.allow_root=True"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
    if not any(a.startswith("--ServerApp.terminado_settings") for a in args):
        extra += terminal_options(python)
    return subprocess.call([str(python), "-m", "jupyterlab", target, *extra, *args], cwd=HERE,
                           env=venv_env(python))


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
    if needs_install(python, "base", folder):
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "-e", str(HERE)], check=True)
        record_install("base", folder)
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
