"""Benchmark: the whole course run headless, against the floor of as many empty notebooks.

Every notebook of the course (and the solutions) is executed top to bottom in a fresh kernel, in one
working folder, as a student would run them; the floor is the same number of notebooks with one empty
code cell each (kernel start and stop, nothing else). Repeated and interleaved; medians printed.

Targets: course <= 2x the floor, and under 90 s on a 2-core machine (issue 10).

    python benchmarks/bench_course.py [--repeat 3] [--no-dot]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from mqtt_pki_lab.course import NOTEBOOKS

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = REPO / "notebooks"
sys.path.insert(0, str(REPO / "tests"))  # nbrun: the notebook runner the tests use
from nbrun import execute_notebook  # noqa: E402


def course_notebooks() -> list[Path]:
    return [NOTEBOOK_DIR / name for name, _ in NOTEBOOKS] + sorted((NOTEBOOK_DIR / "solutions").glob("*.ipynb"))


def empty_notebooks(folder: Path, count: int) -> list[Path]:
    paths = []
    for i in range(count):
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell("")]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        path = folder / f"empty_{i:02d}.ipynb"
        nbformat.write(nb, path)
        paths.append(path)
    return paths


def run_all(notebooks: list[Path], env: dict[str, str]) -> float:
    start = time.perf_counter()
    for notebook in notebooks:
        execute_notebook(notebook, env)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    course = course_notebooks()
    times: dict[str, list[float]] = {"course": [], "floor": []}
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        empties = empty_notebooks(scratch, len(course))
        for i in range(args.repeat):
            work = scratch / f"work-{i}"
            times["course"].append(run_all(course, {"MQTT_PKI_LAB_WORKDIR": str(work)}))
            times["floor"].append(run_all(empties, {"MQTT_PKI_LAB_WORKDIR": str(work)}))
            shutil.rmtree(work, ignore_errors=True)
    course_s, floor_s = statistics.median(times["course"]), statistics.median(times["floor"])
    print(f"notebooks: {len(course)} (course + solutions), repeats: {args.repeat}, interleaved")
    print(f"course headless run : median {course_s:6.1f} s  (runs: {', '.join(f'{t:.1f}' for t in times['course'])})")
    print(f"floor (empty nbs)   : median {floor_s:6.1f} s  (runs: {', '.join(f'{t:.1f}' for t in times['floor'])})")
    ratio = course_s / floor_s
    print(f"course / floor = {ratio:.2f} (target <= 2.0) {'OK' if ratio <= 2.0 else 'MISSED'}; "
          f"course {'under' if course_s < 90 else 'OVER'} 90 s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
