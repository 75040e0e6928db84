"""Every notebook runs top to bottom, headless, with and without Graphviz's ``dot``; none leaks a key.

The notebooks are executed in course order in one working folder (as a student would run them), by
nbclient in a real Jupyter kernel. They are committed without outputs; these tests produce the outputs
and check them: the trust-chain graph is there as SVG, and no private key is in any output.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
from conftest import REPO, require

nbformat = pytest.importorskip("nbformat", reason="the test extra is not installed (pip install -e '.[test]')")
nbclient = pytest.importorskip("nbclient", reason="the test extra is not installed (pip install -e '.[test]')")

from nbrun import execute_notebook  # noqa: E402

from mqtt_pki_lab.course import NOTEBOOKS  # noqa: E402

NOTEBOOK_DIR = REPO / "notebooks"
COURSE = [NOTEBOOK_DIR / name for name, _ in NOTEBOOKS]
SOLUTIONS = sorted((NOTEBOOK_DIR / "solutions").glob("*.ipynb"))
ALL = [*COURSE, *SOLUTIONS]
#: What a notebook calls to draw one of the two pictures (it must then show an SVG).
DRAWS = re.compile(r"course\.(diagram|trust)\(|trust_graph\(|(diagram|trust)_view\(")
#: The longest text a single output may have (pictures and widgets aside): outputs stay quiet.
QUIET = 2500
CHECK_CALL = re.compile(r"course\.check\(\s*[\"']([a-z0-9-]+)[\"']")


def draws_a_picture(nb: nbformat.NotebookNode) -> bool:
    return any(DRAWS.search(cell.source) for cell in nb.cells if cell.cell_type == "code")
GRAPHVIZ_PROGRAMS = {"dot", "neato", "twopi", "circo", "fdp", "sfdp", "patchwork", "osage"}


def path_without_dot(shadow: Path) -> str:
    """A PATH like ours in which no directory offers Graphviz's programs.

    Each directory holding ``dot`` is replaced by a shadow folder of links to everything else in it.
    """
    parts = []
    for i, entry in enumerate(os.environ.get("PATH", "").split(os.pathsep)):
        folder = Path(entry)
        if not (folder / "dot").exists():
            parts.append(entry)
            continue
        copy = shadow / f"bin{i}"
        copy.mkdir(parents=True)
        for item in folder.iterdir():
            if item.name not in GRAPHVIZ_PROGRAMS:
                (copy / item.name).symlink_to(item)
        parts.append(str(copy))
    return os.pathsep.join(parts)


def outputs_text(nb: nbformat.NotebookNode) -> str:
    return "\n".join(json.dumps(cell.get("outputs", [])) for cell in nb.cells if cell.cell_type == "code")


def key_bodies(workdir: Path) -> list[str]:
    """A recognisable slice of every private key the course wrote (base64 body, first line)."""
    bodies = []
    for key in workdir.rglob("*.key"):
        lines = key.read_text().strip().splitlines()
        bodies += [line for line in lines[1:-1] if len(line) > 40][:2]
    return bodies


def run_course(tmp_path: Path, env_extra: dict[str, str]) -> dict[str, nbformat.NotebookNode]:
    workdir = tmp_path / "lab-work"
    env = {"MQTT_PKI_LAB_WORKDIR": str(workdir), **env_extra}
    done = {nb.name: execute_notebook(nb, env) for nb in ALL}
    text = "\n".join(outputs_text(nb) for nb in done.values())
    assert "PRIVATE KEY" not in text
    bodies = key_bodies(workdir)
    assert len(bodies) >= 6
    leaked = [b for b in bodies if b in text]
    assert not leaked, f"private key material in notebook outputs: {leaked[:1]}"
    return done


def svg_outputs(nb: nbformat.NotebookNode) -> list[str]:
    return [out["data"]["image/svg+xml"] for cell in nb.cells if cell.cell_type == "code"
            for out in cell.get("outputs", []) if "image/svg+xml" in out.get("data", {})]


def errors(nb: nbformat.NotebookNode) -> list[str]:
    return [out.get("ename", "") for cell in nb.cells if cell.cell_type == "code"
            for out in cell.get("outputs", []) if out.get("output_type") == "error"]


def text_outputs(nb: nbformat.NotebookNode) -> list[tuple[int, str]]:
    """(cell index, text) of every output that is text (stream, plain text, HTML or markdown), not a picture."""
    found = []
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            data = out.get("data", {})
            if "image/svg+xml" in data or "image/png" in data or \
                    "application/vnd.jupyter.widget-view+json" in data:
                continue
            text = out.get("text") or data.get("text/html") or data.get("text/markdown") or \
                data.get("text/plain") or ""
            found.append((i, "".join(text) if isinstance(text, list) else text))
    return found


def check_answers(nb: nbformat.NotebookNode) -> list[str]:
    """The verdicts of the notebook's ``course.check`` cells, in order: each such cell's result (the value of
    its last line), not what it printed before."""
    verdicts = []
    for cell in nb.cells:
        if cell.cell_type == "code" and CHECK_CALL.search(cell.source):
            results = [out for out in cell.get("outputs", []) if out.get("output_type") == "execute_result"]
            text = results[-1].get("data", {}).get("text/plain", "") if results else ""
            verdicts.append("".join(text) if isinstance(text, list) else text)
    return verdicts


def check_course(done: dict[str, nbformat.NotebookNode], *, graphviz: bool) -> None:
    for name, nb in done.items():
        assert not errors(nb), name
        if draws_a_picture(nb):
            svgs = svg_outputs(nb)
            assert svgs, f"{name} shows no SVG picture"
            if graphviz:
                assert "Generated by graphviz" in svgs[0] or "<!-- Generated by" in svgs[0], name
            else:
                assert all(s.lstrip().startswith(("<?xml", "<svg", "<!--")) for s in svgs), name
        loud = [(i, len(t)) for i, t in text_outputs(nb) if len(t) > QUIET]
        assert not loud, f"{name}: outputs longer than {QUIET} characters (cell, length): {loud}"
        verdicts = check_answers(nb)
        if name in SOLUTION_NAMES:
            wrong = [v for v in verdicts if not v.startswith("Right")]
            assert verdicts and not wrong, f"{name}: a solution is not judged right: {wrong[:2]}"
        else:  # committed as students get it: every exercise still holds its `...`
            assert all(v.startswith(("Not answered yet", "Not finished yet")) for v in verdicts), (name, verdicts)


SOLUTION_NAMES = {p.name for p in SOLUTIONS}


def test_course_runs_with_graphviz(tmp_path: Path) -> None:
    require(shutil.which("dot") is not None, "Graphviz (dot) is not installed: apt-get install graphviz")
    check_course(run_course(tmp_path, {}), graphviz=True)


def test_course_runs_without_dot(tmp_path: Path) -> None:
    shadow = tmp_path / "shadow"
    path = path_without_dot(shadow)
    assert shutil.which("dot", path=path) is None
    check_course(run_course(tmp_path, {"PATH": path}), graphviz=False)


def test_notebooks_are_committed_clean_and_numbered() -> None:
    numbers = [int(p.name[:2]) for p in COURSE]
    assert numbers == sorted(set(numbers)) and numbers[0] == 0, numbers
    assert {p.name for p in NOTEBOOK_DIR.glob("*.ipynb")} == {p.name for p in COURSE}, "a notebook not in NOTEBOOKS"
    for notebook in ALL:
        nb = json.loads(notebook.read_text())
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                assert cell["outputs"] == [] and cell["execution_count"] is None, notebook.name


def test_navigation_links_lead_to_the_previous_and_next_notebook() -> None:
    link = re.compile(r"\]\(([^)#\s]+\.ipynb)\)")
    for i, notebook in enumerate(COURSE):
        nb = nbformat.read(notebook, as_version=4)
        first, last = nb.cells[0].source, nb.cells[-1].source
        targets = set(link.findall(first)) | set(link.findall(last))
        for target in targets:
            assert (notebook.parent / target).exists(), (notebook.name, target)
        if i > 0:
            assert COURSE[i - 1].name in first, notebook.name
        if i + 1 < len(COURSE):
            assert COURSE[i + 1].name in first and COURSE[i + 1].name in last, notebook.name


def code_of(notebook: Path) -> str:
    nb = nbformat.read(notebook, as_version=4)
    return "\n".join(cell.source for cell in nb.cells if cell.cell_type == "code")


def test_every_lesson_has_two_exercises_to_type_and_each_exists() -> None:
    from mqtt_pki_lab.exercises import load_all

    exercises = load_all()
    used: set[str] = set()
    for notebook in COURSE:
        ids = CHECK_CALL.findall(code_of(notebook))
        unknown = [i for i in ids if i not in exercises]
        assert not unknown, (notebook.name, unknown)
        typed = {i for i in ids if exercises[i].kind != "choice"}
        if not notebook.name.startswith("00_"):
            assert len(typed) >= 2, f"{notebook.name} has {len(typed)} exercises to type: {sorted(typed)}"
        for i in ids:
            assert exercises[i].notebook in ("", notebook.name), (i, exercises[i].notebook, notebook.name)
        used |= set(ids)
    unused = [i for i, e in exercises.items() if i not in used and e.kind != "choice"]
    assert not unused, f"exercises no notebook asks: {unused}"


def test_solutions_are_kept_apart_from_the_exercises() -> None:
    course = {p.stem: p for p in COURSE}
    for solution in SOLUTIONS:
        stem = solution.stem.removesuffix("_solutions")
        assert stem in course, f"{solution.name} solves no notebook of the course"
        student, solved = code_of(course[stem]), code_of(solution)
        assert "### BEGIN SOLUTION" in solved and solved.count("### BEGIN SOLUTION") == solved.count("### END SOLUTION")
        assert "BEGIN SOLUTION" not in student, course[stem].name
        assert CHECK_CALL.findall(student) == CHECK_CALL.findall(solved), solution.name
        assert f"solutions/{solution.name}" in course[stem].read_text(), f"{stem} does not point to its solutions"
    solved_stems = {p.stem.removesuffix("_solutions") for p in SOLUTIONS}
    missing = [p.name for p in COURSE if CHECK_CALL.search(code_of(p)) and p.stem not in solved_stems]
    assert not missing, f"notebooks with exercises but no solutions notebook: {missing}"
    from mqtt_pki_lab.breakit import SCENARIOS

    # The break-it notebook never names the scenarios it uses: the mystery stays a mystery.
    breakit = next(p for p in COURSE if "break_it" in p.name).read_text()
    assert not [s.id for s in SCENARIOS if s.id in breakit]
