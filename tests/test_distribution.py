"""The course, anywhere: the notebooks ship in the wheel, ``mqtt-pki-lab course`` hands them out, ``mqtt-pki-lab
grade`` reads the students' work back, and ``run.py`` skips pip when nothing changed.

The last test is the real thing, slow on purpose: the built wheel into a fresh virtual environment (its
dependencies from the package index or pip's cache), ``mqtt-pki-lab course`` into a folder outside the
repository, and every copied notebook run in that environment's kernel, the repository nowhere on its path.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import importlib.util
import io
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from conftest import REPO, require, run_cli

from mqtt_pki_lab import coursefiles, coursework
from mqtt_pki_lab.cli import main
from mqtt_pki_lab.exercises import load_all
from mqtt_pki_lab.steps import Lab

NOTEBOOKS = REPO / "notebooks"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def tree(root: Path) -> dict[str, str]:
    """Everything under ``root``, links not followed: a hash per file, the target per link, the mode per folder."""
    found: dict[str, str] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                found[rel] = "link -> " + os.readlink(path)
            elif path.is_dir():
                found[rel] = f"folder {path.stat().st_mode:o}"
            else:
                found[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``mqtt-pki-lab ARGS`` in this process: (exit code, stdout, stderr)."""
    code = main(list(args))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


@pytest.fixture
def source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A small course of our own as the shipped notebooks (the real ones are being rewritten meanwhile)."""
    folder = tmp_path / "shipped"
    (folder / "solutions").mkdir(parents=True)
    (folder / ".ipynb_checkpoints").mkdir()
    for name in ("00_start_here.ipynb", "01_the_ca.ipynb", "02_broker.ipynb"):
        (folder / name).write_text(f'{{"cells": [], "name": "{name}"}}\n')
    (folder / "solutions" / "01_the_ca_solutions.ipynb").write_text('{"cells": ["answer"]}\n')
    (folder / "notes.txt").write_text("not a notebook\n")
    (folder / ".ipynb_checkpoints" / "00_start_here-checkpoint.ipynb").write_text("{}\n")
    monkeypatch.setattr(coursefiles, "course_source", lambda: folder)
    return folder


# --- mqtt-pki-lab course ------------------------------------------------------------------------------------------

def test_course_copies_the_notebooks_and_keeps_one_the_student_changed(source: Path, tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "home" / "course"
    code, out, _ = cli(capsys, "course", str(target))
    assert code == 0
    assert sorted(p.name for p in target.iterdir()) == ["00_start_here.ipynb", "01_the_ca.ipynb", "02_broker.ipynb"]
    for notebook in target.iterdir():
        assert notebook.read_bytes() == (source / notebook.name).read_bytes()
        assert notebook.stat().st_mode & 0o777 == 0o644 & ~current_umask()
    assert "copied 3 notebooks" in out and f"Next: jupyter lab {target / '00_start_here.ipynb'}" in out
    assert len(out.strip().splitlines()) <= 5

    (target / "01_the_ca.ipynb").write_text("my work\n")
    (target / "02_broker.ipynb").unlink()
    before = (target / "01_the_ca.ipynb").stat().st_mtime_ns
    code, out, _ = cli(capsys, "course", str(target), "--solutions")
    assert code == 0
    assert (target / "01_the_ca.ipynb").read_text() == "my work\n"
    assert (target / "01_the_ca.ipynb").stat().st_mtime_ns == before
    assert (target / "02_broker.ipynb").read_bytes() == (source / "02_broker.ipynb").read_bytes()
    assert (target / "solutions" / "01_the_ca_solutions.ipynb").read_bytes() == \
        (source / "solutions" / "01_the_ca_solutions.ipynb").read_bytes()
    assert "copied 1 notebook and 1 solution (in solutions/)" in out
    assert "1 notebook already up to date" in out
    assert "kept 1 notebook you have changed: 01_the_ca.ipynb" in out
    assert not [p for p in target.rglob("*") if p.name.endswith(".tmp") or p.name == "notes.txt"]


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_course_goes_to_the_default_folder(source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, _ = cli(capsys, "course")
    assert code == 0
    assert (tmp_path / "mqtt-pki-lab-course" / "00_start_here.ipynb").is_file()
    assert not (tmp_path / "mqtt-pki-lab-course" / "solutions").exists()
    assert f"jupyter lab {tmp_path / 'mqtt-pki-lab-course' / '00_start_here.ipynb'}" in out


Case = tuple[Path, Path, list[str]]
"""What a refusal case sets up: the folder given to ``course``, the path the message must name, extra options."""


def _is_file(work: Path) -> Case:
    (work / "course").write_text("a file\n")
    return work / "course", work / "course", []


def _under_a_file(work: Path) -> Case:
    (work / "afile").write_text("a file\n")
    return work / "afile" / "course", work / "afile", []


def _notebook_is_a_link(work: Path) -> Case:
    (work / "course").mkdir()
    (work / "elsewhere.ipynb").write_text("someone else's\n")
    (work / "course" / "01_the_ca.ipynb").symlink_to(work / "elsewhere.ipynb")
    return work / "course", work / "course" / "01_the_ca.ipynb", []


def _notebook_is_a_dangling_link(work: Path) -> Case:
    (work / "course").mkdir()
    (work / "course" / "02_broker.ipynb").symlink_to(work / "not-yet.ipynb")
    return work / "course", work / "course" / "02_broker.ipynb", []


def _solutions_is_a_link(work: Path) -> Case:
    (work / "course").mkdir()
    (work / "elsewhere").mkdir()
    (work / "course" / "solutions").symlink_to(work / "elsewhere")
    return work / "course", work / "course" / "solutions", ["--solutions"]


def _course_is_a_link(work: Path) -> Case:
    (work / "real").mkdir()
    (work / "course").symlink_to(work / "real")
    return work / "course", work / "course", []


def _folder_where_a_notebook_goes(work: Path) -> Case:
    (work / "course" / "00_start_here.ipynb").mkdir(parents=True)
    return work / "course", work / "course" / "00_start_here.ipynb", []


@pytest.mark.parametrize("case", [_is_file, _under_a_file, _notebook_is_a_link, _notebook_is_a_dangling_link,
                                  _solutions_is_a_link, _course_is_a_link, _folder_where_a_notebook_goes],
                         ids=lambda f: f.__name__.strip("_"))
def test_course_refuses_a_bad_target_in_one_line_and_writes_nothing(case, source: Path, tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    work = tmp_path / "work"
    work.mkdir()
    target, named, extra = case(work)
    before = tree(work)
    code, out, err = cli(capsys, "course", str(target), *extra)
    assert code == 2, (out, err)
    assert out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith(f"mqtt-pki-lab course: {named}: "), err
    assert tree(work) == before
    assert not (work / "not-yet.ipynb").exists()


def test_course_refuses_a_folder_it_cannot_write(tmp_path: Path) -> None:
    """Unwritable: checked by the operating system, so run as an ordinary user (root may write anywhere)."""
    root = os.geteuid() == 0
    if root:
        require(shutil.which("setpriv") is not None, "setpriv is needed to run the command as an ordinary user")
    base = Path(tempfile.mkdtemp(prefix="mqtt-pki-lab-ro-")) if root else tmp_path
    try:
        base.chmod(0o755)
        locked = base / "locked"
        locked.mkdir()
        locked.chmod(0o555)
        before = tree(base)
        as_user = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if root else []
        done = subprocess.run([*as_user, sys.executable, "-m", "mqtt_pki_lab", "course", str(locked / "course")],
                              capture_output=True, text=True, timeout=120, cwd=base,
                              env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
        assert done.returncode == 2, (done.stdout, done.stderr)
        assert done.stderr.strip() == f"mqtt-pki-lab course: {locked}: cannot be written (permission denied): " \
                                      "choose a folder of yours, e.g. mqtt-pki-lab course ~/mqtt-pki-lab-course"
        assert tree(base) == before
    finally:
        (base / "locked").chmod(0o755)
        if root:
            shutil.rmtree(base)


def test_a_failure_while_writing_leaves_no_temporary_file(source: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    def full_disk(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device", dst)

    monkeypatch.setattr(coursefiles.os, "link", full_disk)
    code, _, err = cli(capsys, "course", str(tmp_path / "course"))
    assert code == 2 and err.count("\n") == 1 and "No space left on device" in err
    assert list((tmp_path / "course").iterdir()) == []


def test_course_copies_the_real_notebooks_from_this_checkout(tmp_path: Path) -> None:
    """In an editable install the notebooks are the repository's own notebooks/ (run as a real process)."""
    assert Path(coursefiles.course_source()) == NOTEBOOKS
    done = run_cli("course", str(tmp_path / "course"), "--solutions", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    copied = {p.relative_to(tmp_path / "course").as_posix() for p in (tmp_path / "course").rglob("*.ipynb")}
    shipped = {p.relative_to(NOTEBOOKS).as_posix() for p in [*NOTEBOOKS.glob("*.ipynb"),
                                                              *NOTEBOOKS.glob("solutions/*.ipynb")]}
    assert copied == shipped and "00_start_here.ipynb" in copied


# --- mqtt-pki-lab grade -------------------------------------------------------------------------------------------

@pytest.fixture
def classroom(tmp_path: Path) -> Path:
    """Two students: alice finished the lab (in her course folder's lab-work/), bob made arrows 1-3."""
    room = tmp_path / "class"
    alice = room / "alice" / "lab-work"
    alice.mkdir(parents=True)
    Lab(alice / "pki").build_all()
    Lab(alice / "pki").add_clients(["sensor-1"])
    coursework.record("ca-lifetime", False, alice)
    coursework.record("ca-lifetime", True, alice)
    coursework.record("san-not-cn", False, alice)
    bob = room / "bob"
    bob.mkdir()
    bob_lab = Lab(bob / "pki")
    for arrow in (1, 2, 3):
        bob_lab.run(arrow)
    coursework.record("ca-lifetime", False, bob)
    frank = room / "frank" / "mqtt-pki-lab-course" / "lab-work"  # a home, as on a JupyterHub: exercises only
    frank.mkdir(parents=True)
    coursework.record("ca-lifetime", True, frank)
    (room / ".hidden").mkdir()
    return room


def test_grade_prints_one_row_per_student(classroom: Path, capsys: pytest.CaptureFixture[str]) -> None:
    total = len(load_all())
    code, out, err = cli(capsys, "grade", str(classroom / "alice"), str(classroom / "bob"))
    assert code == 0, err
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:3]}
    assert rows["alice"][1:5] == ["9/9", "2", "pass", f"1/2/{total}"]
    assert rows["bob"][1:5] == ["3/9", "0", "FAIL", f"0/1/{total}"]
    assert out.splitlines()[0].split()[:5] == ["student", "arrows", "clients", "verify", "exercises"]


def test_grade_csv_parses_and_a_class_folder_is_every_student(classroom: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    start = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(minutes=5)
    (classroom / "carol").mkdir()  # handed in nothing
    code, out, _ = cli(capsys, "grade", str(classroom), str(tmp_path / "nobody"), "--csv")
    assert code == 1, "an unreadable folder makes the exit code 1"
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["student"] for r in rows] == ["alice", "bob", "carol", "frank", "nobody"]
    alice, bob, carol, frank, nobody = rows
    assert (frank["arrows_done"], frank["verify"], frank["exercises_solved"], frank["exercises_attempted"]) == \
        ("0", "", "1", "1")
    assert (alice["arrows_done"], alice["arrows_total"], alice["clients"], alice["verify"]) == ("9", "9", "2", "pass")
    assert (alice["exercises_solved"], alice["exercises_attempted"]) == ("1", "2")
    assert alice["exercises_total"] == str(len(load_all())) and alice["problem"] == ""
    assert (bob["arrows_done"], bob["clients"], bob["verify"], bob["exercises_solved"]) == ("3", "0", "fail", "0")
    for row in (alice, bob):
        assert start <= dt.datetime.fromisoformat(row["last_activity"]) <= dt.datetime.now(dt.timezone.utc)
    assert carol["problem"].startswith("not a course folder") and carol["arrows_done"] == ""
    assert nobody["problem"] == "no such folder"


def test_grade_reads_a_damaged_record_and_a_file_without_a_traceback(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    damaged = tmp_path / "dave"
    damaged.mkdir()
    (damaged / "progress.json").write_text("{not json")
    (tmp_path / "eve").write_text("a file\n")
    code, out, _ = cli(capsys, "grade", str(damaged), str(tmp_path / "eve"))
    assert code == 1
    lines = out.splitlines()
    assert lines[1].split()[:5] == ["dave", "0/9", "0", "-", f"0/0/{len(load_all())}"]
    assert lines[2].split() == ["eve", f"{tmp_path / 'eve'}:", "not", "a", "folder"]


# --- run.py: pip only when something changed ----------------------------------------------------------------------

@pytest.fixture
def run_py(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """run.py as a module, with a pretend .venv and pyproject.toml of its own (the real .venv is never touched)."""
    spec = importlib.util.spec_from_file_location("run_py_under_test", REPO / "run.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    venv = tmp_path / "venv"
    venv.mkdir()
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\nversion = 3.11.7\n")
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_bytes((REPO / "pyproject.toml").read_bytes())
    monkeypatch.setattr(module, "VENV", venv)
    monkeypatch.setattr(module, "PYPROJECT", pyproject)
    return module


def test_the_stamp_follows_pyproject_the_extra_and_the_python(run_py: ModuleType) -> None:
    venv, python = run_py.VENV, Path(sys.executable)  # this interpreter imports this checkout's package
    stamp = run_py.install_stamp("lab", venv)
    assert stamp == run_py.install_stamp("lab", venv) != run_py.install_stamp("test", venv)
    assert run_py.needs_install(python, "lab", venv)
    run_py.record_install("lab", venv)
    assert not run_py.needs_install(python, "lab", venv)
    assert run_py.needs_install(python, "test", venv), "a lab install does not give the test tools"
    assert run_py.needs_install(Path("/nonexistent/bin/python"), "lab", venv), "a venv that lost the package"

    (venv / "pyvenv.cfg").write_text("home = /usr/bin\nversion = 3.12.1\n")
    assert run_py.install_stamp("lab", venv) != stamp and run_py.needs_install(python, "lab", venv)
    run_py.record_install("test", venv)
    assert not run_py.needs_install(python, "lab", venv), "a test install gives everything lab needs"

    run_py.PYPROJECT.write_text(run_py.PYPROJECT.read_text() + '\n# "tqdm>=5" one day\n')
    assert run_py.needs_install(python, "lab", venv) and run_py.needs_install(python, "test", venv)


def test_install_runs_pip_only_when_needed_and_stamps_only_a_success(run_py: ModuleType,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []
    fail = False

    def fake_run(argv: list[str], check: bool = False, **kwargs: object) -> subprocess.CompletedProcess[str]:
        calls.append(argv)
        if fail and "-e" in argv:
            raise subprocess.CalledProcessError(1, argv)
        return subprocess.CompletedProcess(argv, 0)

    monkeypatch.setattr(run_py.subprocess, "run", fake_run)
    monkeypatch.setattr(run_py, "installed_here", lambda python: True)
    python = run_py.VENV / "bin" / "python"
    run_py.install(python, "lab")
    assert [c[3:5] for c in calls] == [["install", "--quiet"]] * 2 and calls[1][-1].endswith("[lab]")
    calls.clear()
    run_py.install(python, "lab")
    assert calls == [], "nothing changed: no pip"

    run_py.PYPROJECT.write_text(run_py.PYPROJECT.read_text() + "\n# changed\n")
    fail = True
    with pytest.raises(subprocess.CalledProcessError):
        run_py.install(python, "lab")
    assert not run_py.stamp_file(run_py.VENV, "lab").exists(), "a failed install leaves no stamp"
    fail = False
    calls.clear()
    run_py.install(python, "lab")
    assert len(calls) == 2 and run_py.stamp_file(run_py.VENV, "lab").exists()


def test_jupyterlab_gets_the_venv_first_on_path(run_py: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    python = run_py.VENV / "bin" / "python"
    env = run_py.venv_env(python)
    assert env["PATH"].split(os.pathsep) == [str(run_py.VENV / "bin"), "/usr/bin", "/bin"]
    assert env["VIRTUAL_ENV"] == str(run_py.VENV)


def test_jupyterlab_terminals_keep_the_venv_first_after_the_users_bashrc(run_py: ModuleType, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    bash = shutil.which("bash")
    require(bash is not None, "bash is not installed")
    venv = run_py.VENV
    (venv / "bin").mkdir()
    other = tmp_path / "pyenv-shims"
    other.mkdir()
    for folder in (venv / "bin", other):
        tool = folder / "mqtt-pki-lab"
        tool.write_text("#!/bin/sh\n")
        tool.chmod(0o755)
    home = tmp_path / "home"
    home.mkdir()
    (home / ".bashrc").write_text(f'export PATH="{other}:$PATH"\n')  # as pyenv's or conda's set-up does
    monkeypatch.setenv("SHELL", bash)
    (option,) = run_py.terminal_options(venv / "bin" / "python")
    prefix = "--ServerApp.terminado_settings=shell_command="
    assert option.startswith(prefix)
    command = shlex.split(option.removeprefix(prefix))
    assert command[0] == bash and "-l" not in command, "a login shell would read /etc/profile, which resets PATH"
    done = subprocess.run([*command, "-i", "-c", "command -v mqtt-pki-lab; echo $VIRTUAL_ENV"], capture_output=True,
                          text=True, timeout=60, env={"HOME": str(home), "PATH": "/usr/bin:/bin", "TERM": "dumb"})
    assert done.stdout.split() == [str(venv / "bin" / "mqtt-pki-lab"), str(venv)], done.stderr


# --- the wheel, and the course from it in a fresh environment -----------------------------------------------------

@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This checkout built as a wheel (hatchling from the package index or pip's cache)."""
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--disable-pip-version-check",
                    str(REPO), "-w", str(out)], check=True, timeout=600, cwd=out)
    (found,) = out.glob("mqtt_pki_lab-*.whl")
    return found


def test_the_wheel_ships_the_notebooks_and_the_solutions(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    shipped = sorted(n.removeprefix("mqtt_pki_lab/notebooks/") for n in names
                     if n.startswith("mqtt_pki_lab/notebooks/"))
    expected = sorted(p.relative_to(NOTEBOOKS).as_posix() for p in NOTEBOOKS.rglob("*")
                      if p.is_file() and ".ipynb_checkpoints" not in p.parts and "lab-work" not in p.parts)
    assert shipped == expected and "00_start_here.ipynb" in shipped
    assert any(n.startswith("solutions/") for n in shipped)
    assert "mqtt_pki_lab/cli.py" in names and not any("checkpoint" in n or "lab-work" in n for n in names)


def user_env(venv: Path) -> dict[str, str]:
    """The environment of someone who ran ``pip install mqtt-pki-lab`` into ``venv`` and has no repository:
    the venv's scripts first on PATH, nothing added to Python's path, the course's default work folder."""
    drop = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "MQTT_PKI_LAB_WORKDIR")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}", PYTHONNOUSERSITE="1",
               VIRTUAL_ENV=str(venv))
    return env


@pytest.fixture
def fresh_venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """An empty virtual environment outside the repository (no system site-packages)."""
    folder = tmp_path_factory.mktemp("fresh") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True, timeout=300, cwd=folder.parent)
    yield folder


# Slow on purpose (a real install: a minute or two with pip's cache warm, then every notebook), so it is one test.
@pytest.mark.timeout(1800)
def test_pip_install_then_course_runs_every_notebook_without_the_repository(
        wheel: Path, fresh_venv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nbformat = pytest.importorskip("nbformat", reason="the test extra is not installed")
    nbclient = pytest.importorskip("nbclient", reason="the test extra is not installed")
    from nbrun import execute_notebook
    from test_binder import frozen
    from test_notebooks import errors

    timings: dict[str, float] = {}
    python = fresh_venv / "bin" / "python"
    env = user_env(fresh_venv)
    start = time.perf_counter()
    # The wheel with its dependencies, resolved by pip as for any user (ipykernel: the Jupyter a hub provides).
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(wheel),
                    "ipykernel"], check=True, timeout=1500, cwd=tmp_path, env=env)
    timings["pip install"] = time.perf_counter() - start
    assert {"mqtt-pki-lab", "cryptography", "paho-mqtt", "amqtt", "ipywidgets", "ipykernel"} <= set(frozen(python))

    student = tmp_path / "student"
    student.mkdir()
    script = shutil.which("mqtt-pki-lab", path=env["PATH"])
    assert script == str(fresh_venv / "bin" / "mqtt-pki-lab")
    done = subprocess.run([script, "course", "--solutions"], cwd=student, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    course = student / "mqtt-pki-lab-course"
    shipped = sorted(n.removeprefix("mqtt_pki_lab/notebooks/") for n in zipfile.ZipFile(wheel).namelist()
                     if n.startswith("mqtt_pki_lab/notebooks/") and n.endswith(".ipynb"))
    assert sorted(p.relative_to(course).as_posix() for p in course.rglob("*.ipynb")) == shipped
    assert f"Next: jupyter lab {course / '00_start_here.ipynb'}" in done.stdout

    # The venv's kernel, found first; the course's default work folder (lab-work/ beside the notebooks).
    subprocess.run([str(python), "-m", "ipykernel", "install", "--sys-prefix"], check=True, capture_output=True,
                   env=env, cwd=tmp_path)
    kernel_env = {"JUPYTER_PATH": str(fresh_venv / "share" / "jupyter"), "PATH": env["PATH"], "PYTHONPATH": "",
                  "PYTHONNOUSERSITE": "1"}
    monkeypatch.delenv("MQTT_PKI_LAB_WORKDIR", raising=False)
    probe = student / "probe.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import os, sys, mqtt_pki_lab\n"
        f"repo = {str(REPO)!r}\n"
        "print(sys.prefix, mqtt_pki_lab.__file__, os.getcwd(),\n"
        "      any(os.path.abspath(p or '.').startswith(repo) for p in sys.path))")]), probe)
    prefix, package, cwd, repo_on_path = execute_notebook(probe, kernel_env).cells[0].outputs[0]["text"].split()
    assert Path(prefix).resolve() == fresh_venv.resolve() and Path(cwd).resolve() == student.resolve()
    assert Path(package).resolve().is_relative_to(fresh_venv.resolve()) and repo_on_path == "False"

    start = time.perf_counter()
    failed: dict[str, str] = {}
    for notebook in [*sorted(course.glob("*.ipynb")), *sorted(course.glob("solutions/*.ipynb"))]:
        name = notebook.relative_to(course).as_posix()
        began = time.perf_counter()
        try:
            found = errors(execute_notebook(notebook, kernel_env, timeout=600))
            if found:
                failed[name] = ", ".join(found)
        except nbclient.exceptions.CellExecutionError as error:
            failed[name] = next((line for line in str(error).splitlines()[::-1] if line.strip()), "cell failed")
        except Exception as error:  # a notebook that is not even valid JSON (being rewritten as we run)
            failed[name] = f"{type(error).__name__}: {error}"
        timings[name] = time.perf_counter() - began
    timings["notebooks"] = time.perf_counter() - start

    # The teacher's view of what the run left: a readable course folder, with the student's lab in lab-work/.
    graded = subprocess.run([script, "grade", str(course), "--csv"], cwd=student, env=env, capture_output=True,
                            text=True, timeout=300)
    print("fresh venv: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
    print(graded.stdout)
    assert graded.returncode == 0, graded.stdout + graded.stderr
    assert not failed, "notebooks that failed in the fresh environment:\n" + "\n".join(
        f"{name}: {ANSI.sub('', why)}" for name, why in failed.items())
