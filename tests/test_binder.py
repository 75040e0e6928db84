"""Binder: the ``binder/`` folder is right, and the environment it describes runs the whole course.

mybinder.org builds the repository with repo2docker: a base image (Python, JupyterLab 4, ipywidgets 8),
then ``apt.txt``, then ``pip install -r binder/requirements.txt`` run from the repository's root. Without
Docker we rebuild that as far as this machine allows (:func:`test_simulated_binder_environment_runs_the_course`):
a fresh virtual environment with ``runtime.txt``'s Python, what the base image has, then ``requirements.txt``;
the apt packages must be installed here; then every notebook runs in a kernel of that environment.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, require

from mqtt_pki_lab.course import NOTEBOOKS

BINDER = REPO / "binder"
BINDER_URL = "https://mybinder.org/v2/gh/mqtt-pki-lab/mqtt-pki-lab/HEAD?urlpath=lab/tree/notebooks/"
#: What repo2docker's base environment provides (its conda environment.yml: jupyterlab==4.*,
#: ipywidgets==8.*, notebook==7.*, jupyter_server==2.*; ipykernel comes with them).
BASE_IMAGE = ["jupyterlab>=4,<5", "ipywidgets>=8,<9", "notebook>=7,<8", "jupyter_server>=2,<3", "ipykernel"]
#: Packages the base image owns: binder/requirements.txt must not pin (or change) them.
BASE_OWNED = ("jupyterlab", "ipywidgets", "notebook", "jupyter-server", "ipykernel")


def requirement_lines(path: Path) -> list[str]:
    """The requirements of a pip requirements file, without comments and blank lines."""
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def apt_packages() -> list[str]:
    return requirement_lines(BINDER / "apt.txt")


def runtime_python() -> tuple[int, int]:
    """The Python version ``binder/runtime.txt`` asks for, as (major, minor)."""
    text = (BINDER / "runtime.txt").read_text().strip()
    match = re.fullmatch(r"python-(\d+)\.(\d+)", text)
    assert match, f"binder/runtime.txt: expected one line 'python-X.Y', found {text!r}"
    return int(match[1]), int(match[2])


def find_python(version: tuple[int, int]) -> str | None:
    """An interpreter of the given version: this one, pyenv's, or ``pythonX.Y`` on PATH; else None."""
    if sys.version_info[:2] == version:
        return sys.executable
    name = f"python{version[0]}.{version[1]}"
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    pyenvs = sorted(pyenv_root.glob(f"versions/{version[0]}.{version[1]}.*/bin/{name}"), reverse=True)
    candidates = [*map(str, pyenvs), shutil.which(name)]
    for candidate in candidates:
        if candidate and Path(candidate).exists():
            probe = subprocess.run([candidate, "-c", "import sys, venv; print(sys.version_info[:2])"],
                                   capture_output=True, text=True, timeout=60)
            if probe.stdout.strip() == str(version):
                return candidate
    return None


def deb_installed(package: str) -> bool:
    probe = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True)
    return probe.returncode == 0 and "install ok installed" in probe.stdout


# --- the binder/ folder, read as repo2docker reads it ----------------------------------------------------------

def test_requirements_install_this_package_and_leave_the_base_image_alone() -> None:
    lines = requirement_lines(BINDER / "requirements.txt")
    assert any(re.fullmatch(r"-e\s+\.(\[[^\]]*\bmqtt\b[^\]]*\])?", line) for line in lines), \
        "binder/requirements.txt must install this package from the repository's root: '-e .'"
    names = [re.split(r"[\s<>=!~\[;@]", line, maxsplit=1)[0].lower().replace("_", "-")
             for line in lines if not line.startswith("-")]
    assert "graphviz" in names, "the trust-chain graph needs the graphviz Python package"
    assert not set(names) & set(BASE_OWNED), f"re-pins what the Binder base image provides: {names}"
    assert re.search(r"^mqtt = \[", (REPO / "pyproject.toml").read_text(), re.MULTILINE), "no 'mqtt' extra"


def test_apt_and_runtime_files() -> None:
    assert {"graphviz", "mosquitto", "mosquitto-clients"} <= set(apt_packages())
    major, minor = runtime_python()
    lowest = re.search(r'^requires-python = ">=\s*(\d+)\.(\d+)"', (REPO / "pyproject.toml").read_text(), re.MULTILINE)
    assert lowest and (major, minor) >= (int(lowest[1]), int(lowest[2]))


def test_readme_badge_opens_the_first_notebook_in_jupyterlab() -> None:
    readme = (REPO / "README.md").read_text()
    first = NOTEBOOKS[0][0]
    badge = re.search(r"\[!\[[^\]]*\]\((https://mybinder\.org/badge[^)]+)\)\]\(([^)]+)\)", readme)
    assert badge, "README.md has no Binder badge"
    assert badge[2] == BINDER_URL + first
    assert (REPO / "notebooks" / first).exists()
    assert readme.index(badge[0]) < readme.index("python3 run.py lab"), "the badge goes right under the title"


# --- the environment itself, rebuilt -----------------------------------------------------------------------------

def pip(python: Path, *args: str) -> None:
    """``pip install`` into the simulated image, from the repository's root (as repo2docker runs it).

    pip's cache is used on purpose (repo2docker passes --no-cache-dir; here it would only make the test slower).
    """
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *args],
                   cwd=REPO, check=True, timeout=1200)


def frozen(python: Path) -> dict[str, str]:
    out = subprocess.run([str(python), "-m", "pip", "list", "--format=json", "--disable-pip-version-check"],
                         capture_output=True, text=True, check=True).stdout
    return {p["name"].lower().replace("_", "-"): p["version"] for p in json.loads(out)}


# Slow on purpose (a fresh environment from PyPI: about a minute with pip's cache warm, a few without), so it
# is one test. It needs the apt packages and runtime.txt's Python on this machine (CI installs them).
@pytest.mark.timeout(1800)
def test_simulated_binder_environment_runs_the_course(tmp_path: Path) -> None:
    from nbrun import execute_notebook
    from test_notebooks import ALL, draws_a_picture, errors, svg_outputs

    missing = [p for p in apt_packages() if not deb_installed(p)]
    require(shutil.which("dpkg-query") is not None and not missing,
            f"binder/apt.txt packages not installed: {missing or 'no dpkg'} (apt-get install {' '.join(missing)})")
    version = runtime_python()
    base_python = find_python(version)
    require(base_python is not None, f"binder/runtime.txt asks for Python {version[0]}.{version[1]}: not found")

    timings: dict[str, float] = {}
    start = time.perf_counter()
    image = tmp_path / "srv-venv"
    subprocess.run([base_python, "-m", "venv", str(image)], check=True, timeout=300)
    python = image / "bin" / "python"
    pip(python, "--upgrade", "pip")
    pip(python, *BASE_IMAGE)  # the base image
    base = frozen(python)
    timings["base image"] = time.perf_counter() - start

    start = time.perf_counter()
    pip(python, "-r", str(BINDER / "requirements.txt"))  # repo2docker's step, from the repository's root
    after = frozen(python)
    timings["binder/requirements.txt"] = time.perf_counter() - start
    changed = {name: (base[name], after.get(name)) for name in BASE_OWNED
               if name in base and after.get(name) != base[name]}
    assert not changed, f"binder/requirements.txt changed the base image's packages: {changed}"
    assert "mqtt-pki-lab" in after and {"paho-mqtt", "amqtt", "graphviz"} <= set(after)

    # The image's kernel, as Binder registers it: kernels/python3 in the environment's prefix.
    subprocess.run([str(python), "-m", "ipykernel", "install", "--sys-prefix"], check=True, capture_output=True)
    env = {
        "JUPYTER_PATH": str(image / "share" / "jupyter"),  # found before any other python3 kernel
        "PATH": f"{image / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": "",
        "PYTHONNOUSERSITE": "1",
        "MQTT_PKI_LAB_WORKDIR": str(tmp_path / "lab-work"),
    }

    # Prove the kernel is the simulated image's, and that it imports this repository's package.
    import nbformat

    probe = tmp_path / "probe.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import sys, mqtt_pki_lab\nprint(sys.prefix)\nprint(mqtt_pki_lab.__file__)")]), probe)
    printed = execute_notebook(probe, env).cells[0].outputs[0]["text"].split()
    assert Path(printed[0]).resolve() == image.resolve(), f"the kernel ran in {printed[0]}, not in the image"
    assert Path(printed[1]).resolve().is_relative_to(REPO), printed[1]

    start = time.perf_counter()
    failed = {}
    for notebook in ALL:
        nb = execute_notebook(notebook, env, timeout=600)
        failed.update({notebook.name: errors(nb)} if errors(nb) else {})
        if draws_a_picture(nb) and notebook.parent.name != "solutions":
            svgs = svg_outputs(nb)
            assert svgs and "Generated by graphviz" in svgs[0], f"{notebook.name}: no graph from apt's Graphviz"
    timings["notebooks"] = time.perf_counter() - start
    assert not failed, failed
    assert (tmp_path / "lab-work" / "pki" / "client" / "client.crt").exists()
    print("simulated Binder: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
