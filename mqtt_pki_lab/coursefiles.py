"""Hand the course out, and take the work back in: ``mqtt-pki-lab course`` and ``mqtt-pki-lab grade``.

* :func:`copy_course` copies the course's notebooks (shipped in the wheel as ``mqtt_pki_lab/notebooks``, or the
  repository's ``notebooks/`` in an editable install, see :func:`course_source`) into a folder of the student's.
  It never overwrites a notebook the student has changed, never writes through a symbolic link, and checks the
  whole target before it writes anything; each notebook is written aside, then linked into place.
* :func:`grade` reads students' work folders (``pki/``, the lab, and ``progress.json``, the record of their
  exercises, see :mod:`mqtt_pki_lab.coursework`): arrows done, clients, whether ``verify`` passes, exercises
  solved, attempted and in the course, last activity. It only reads.

A course folder made by ``mqtt-pki-lab course`` holds the notebooks; the notebooks' kernel runs there, so the
student's work lands in its ``lab-work/`` (:func:`mqtt_pki_lab.coursework.workdir`). ``grade`` accepts the
course folder or the work folder itself.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import errno
import io
import os
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .coursework import PROGRESS_FILE, load_progress
from .errors import InputError, LabError

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

#: Where ``mqtt-pki-lab course`` copies the notebooks when no folder is given.
DEFAULT_COURSE_DIR = "mqtt-pki-lab-course"
#: The solutions' sub-folder, in the shipped notebooks and in a student's copy.
SOLUTIONS = "solutions"
#: The work folder the notebooks make next to themselves (``coursework.workdir()`` run from the course folder).
WORK_FOLDER = "lab-work"
#: A file in the target larger than this is not compared (it cannot be one of the course's notebooks).
_MAX_NOTEBOOK_BYTES = 64 << 20
#: What ``link`` answers on a file system without hard links.
_NO_HARD_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.ENOSYS, errno.EMLINK}


# --- the course, handed out ----------------------------------------------------------------------------------------

def course_source() -> Traversable:
    """The folder of the course's notebooks: ``mqtt_pki_lab/notebooks`` of an installed wheel, else (an editable
    install) the repository's ``notebooks/``. Raises :class:`InputError` when this installation has neither."""
    shipped = resources.files(__package__).joinpath("notebooks")
    if shipped.is_dir():
        return shipped
    repository = Path(__file__).resolve().parent.parent / "notebooks"
    if repository.is_dir():
        return repository
    raise InputError("mqtt-pki-lab", "this installation has no course notebooks; reinstall it: "
                                     "pip install --force-reinstall mqtt-pki-lab")


def course_notebooks(solutions: bool = False) -> dict[str, bytes]:
    """The notebooks to hand out, ``{relative path: content}``: every ``*.ipynb`` of the course (in name order,
    which is course order), then, with ``solutions``, every ``solutions/*.ipynb``."""
    source = course_source()
    found = {e.name: e.read_bytes() for e in sorted(source.iterdir(), key=lambda e: e.name)
             if e.name.endswith(".ipynb") and e.is_file()}
    answers = source.joinpath(SOLUTIONS)
    if solutions and answers.is_dir():
        found.update({f"{SOLUTIONS}/{e.name}": e.read_bytes() for e in sorted(answers.iterdir(), key=lambda e: e.name)
                      if e.name.endswith(".ipynb") and e.is_file()})
    if not any("/" not in name for name in found):
        raise InputError("mqtt-pki-lab", "this installation's course has no notebooks; reinstall it: "
                                         "pip install --force-reinstall mqtt-pki-lab")
    return found


@dataclass(frozen=True)
class CourseCopy:
    """What :func:`copy_course` did: each notebook copied, already up to date, or kept (changed by the student)."""

    target: Path
    copied: tuple[str, ...]
    unchanged: tuple[str, ...]
    kept: tuple[str, ...]
    """Notebooks the student has changed: left exactly as they are, the course's version not copied over them."""
    first: str
    """The notebook to open first."""

    def __str__(self) -> str:
        def names(items: Sequence[str]) -> str:
            return ", ".join(items[:4]) + (f" and {len(items) - 4} more" if len(items) > 4 else "")

        def count(items: Sequence[str]) -> str:
            notebooks = sum(not n.startswith(f"{SOLUTIONS}/") for n in items)
            answers = len(items) - notebooks
            parts = [f"{notebooks} notebook{'s' * (notebooks != 1)}"] if notebooks else []
            parts += [f"{answers} solution{'s' * (answers != 1)} (in {SOLUTIONS}/)"] if answers else []
            return " and ".join(parts)

        lines = [f"The course is in {self.target}:"]
        if self.copied:
            lines.append(f"  copied {count(self.copied)}")
        if self.unchanged:
            lines.append(f"  {count(self.unchanged)} already up to date")
        if self.kept:
            lines.append(f"  kept {count(self.kept)} you have changed: {names(self.kept)}")
            lines.append("    (the course's version was not copied over; to get it, rename yours and run this again)")
        lines.append(f"Next: jupyter lab {self.target / self.first}")
        lines.append(f"(your work goes to {self.target / WORK_FOLDER}; a teacher reads it with: "
                     f"mqtt-pki-lab grade {self.target})")
        return "\n".join(lines)


def copy_course(target: str | Path = DEFAULT_COURSE_DIR, *, solutions: bool = False) -> CourseCopy:
    """Copy the course's notebooks into ``target`` (made if missing); with ``solutions``, ``solutions/`` too.

    A notebook that is missing is copied; one identical to the course's is left alone; one that differs (the
    student's work) is kept as it is and reported. Everything is checked before anything is written: ``target``
    (or a folder on its way) being a file, a folder that cannot be written, a symbolic link where a notebook or
    ``solutions/`` goes, raise :class:`InputError` naming the path, with nothing written.
    """
    notebooks = course_notebooks(solutions)
    target = Path(os.path.abspath(target))
    _check_target(target, {target / name for name in notebooks})
    copied: list[str] = []
    unchanged: list[str] = []
    kept: list[str] = []
    plan: list[tuple[str, bytes]] = []
    for name, data in notebooks.items():
        existing = _read_existing(target / name)
        if existing is None:
            plan.append((name, data))
        else:
            (unchanged if existing == data else kept).append(name)
    for name, data in plan:
        destination = target / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        if _write_new(destination, data):
            copied.append(name)
        else:  # made meanwhile (by the student, or a second copy running): theirs, never overwritten
            (unchanged if _read_existing(destination) == data else kept).append(name)
    first = next(name for name in notebooks if "/" not in name)
    return CourseCopy(target, tuple(copied), tuple(unchanged), tuple(kept), first)


def _check_target(target: Path, destinations: Iterable[Path]) -> None:
    """Refuse, before anything is written, a target that cannot receive the notebooks (see :func:`copy_course`)."""
    existing = target
    while not os.path.lexists(existing):
        existing = existing.parent
    if existing == target and target.is_symlink():
        raise InputError(target, "is a symbolic link: refused (nothing is written through links); "
                                 f"give the real folder, {target.resolve()}")
    if not existing.is_dir():
        raise InputError(existing, f"is {'a file' if existing.is_file() else 'something'}, not a folder: "
                                   "give a folder for the course's notebooks")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(existing, "cannot be written (permission denied): choose a folder of yours, "
                                   f"e.g. mqtt-pki-lab course ~/{DEFAULT_COURSE_DIR}")
    for destination in destinations:
        for path in (destination.parent, destination):
            if path == target or not os.path.lexists(path):
                continue
            if path.is_symlink():
                raise InputError(path, "is a symbolic link: refused (nothing is written through links); "
                                       "remove the link and run this again")
            if path == destination and not path.is_file():
                raise InputError(path, "is in the way of a notebook of the course (it is not a file): "
                                       "move it and run this again")
            if path != destination and not path.is_dir():
                raise InputError(path, "is a file, not a folder: move it and run this again")
            if path != destination and not os.access(path, os.W_OK | os.X_OK):
                raise InputError(path, "cannot be written (permission denied)")


def _read_existing(path: Path) -> bytes | None:
    """The content of a notebook already in the target, None when there is none (links were refused before)."""
    if not os.path.lexists(path):
        return None
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as file:
        return file.read(_MAX_NOTEBOOK_BYTES + 1)


def _write_new(path: Path, data: bytes) -> bool:
    """Write a new file atomically, never over anything: write it aside, then hard-link it into place.

    Returns False (and writes nothing) when ``path`` exists by then. Where hard links are not supported, the file
    is renamed into place after a last check.
    """
    temp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(temp, flags, 0o644)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        try:
            os.link(temp, path)
        except FileExistsError:
            return False
        except OSError as error:
            if error.errno not in _NO_HARD_LINKS:
                raise
            if os.path.lexists(path):  # no hard links here (some network or FAT file systems): a last check
                return False
            os.replace(temp, path)
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)


# --- the work, taken in --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Grade:
    """One student's work, as :func:`grade` found it."""

    student: str
    """The folder's name (the course folder's, when the work is in its ``lab-work/``)."""
    folder: Path
    problem: str | None = None
    """Why the folder could not be read as a student's work (the other fields are then empty)."""
    arrows_done: int = 0
    """Arrows 1-9 done for the diagram's own roles, as ``mqtt-pki-lab status`` shows them."""
    arrows_total: int = 9
    clients: int = 0
    """Clients with a certificate: ``client/`` and every ``clients/NAME/``."""
    verify: bool | None = None
    """Whether ``mqtt-pki-lab verify`` passes on the lab (None: there is no lab)."""
    solved: int = 0
    attempted: int = 0
    total: int = 0
    """Exercises in the course (this installation's catalogue)."""
    last_activity: dt.datetime | None = None
    """The latest of the exercise record's times and the lab's and the record's file times (UTC)."""


def find_work(folder: Path) -> Path | None:
    """The work folder in ``folder``: ``folder`` itself when it holds ``pki/`` or ``progress.json``, else its
    ``lab-work/`` (a course folder), else ``mqtt-pki-lab-course/lab-work/`` (a student's home) when that does;
    None when none does (not a course folder)."""
    for candidate in (folder, folder / WORK_FOLDER, folder / DEFAULT_COURSE_DIR / WORK_FOLDER):
        if (candidate / "pki").is_dir() or (candidate / PROGRESS_FILE).is_file():
            return candidate
    return None


def student_folders(folders: Iterable[str | Path]) -> list[Path]:
    """The students' folders among ``folders``: each one, or, for a folder that is no course folder itself but
    holds some, each of its sub-folders (hidden ones aside) in name order: a class's hand-in folder."""
    found: list[Path] = []
    for folder in map(Path, folders):
        if folder.is_dir() and find_work(folder) is None:
            with contextlib.suppress(OSError):
                subs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
                if any(find_work(p) is not None for p in subs):
                    found.extend(subs)
                    continue
        found.append(folder)
    return found


def grade(folders: Iterable[str | Path]) -> list[Grade]:
    """Read every student's folder (see :func:`student_folders`); one :class:`Grade` each, never an exception
    for a folder that is missing or not a student's work (its ``problem`` says so)."""
    from .exercises import load_all

    total = len(load_all())
    return [grade_one(folder, total) for folder in student_folders(folders)]


def grade_one(folder: Path, total: int) -> Grade:
    """One student's :class:`Grade`, ``total`` being the number of exercises in the course."""
    from .steps import BUILD_STEPS, LabState
    from .verify import verify_lab

    where = Path(os.path.abspath(folder))
    name = where.parent.name if where.name == WORK_FOLDER and where.parent.name else where.name
    if not folder.exists():
        return Grade(name, folder, "no such folder", total=total)
    if not folder.is_dir():
        return Grade(name, folder, "not a folder", total=total)
    work = find_work(folder)
    if work is None:
        return Grade(name, folder, f"not a course folder (no pki/ or {PROGRESS_FILE} in it, its {WORK_FOLDER}/ "
                                   f"or its {DEFAULT_COURSE_DIR}/{WORK_FOLDER}/)", total=total)
    times: list[dt.datetime] = []
    lab = work / "pki"
    arrows = clients = 0
    verified: bool | None = None
    try:
        if lab.is_dir() and not lab.is_symlink():
            state = LabState.read(lab)
            arrows = sum(status == "done" for step, status in state if step in BUILD_STEPS)
            clients = sum(state.has(client.file("crt")) for client in state.roles.clients)
            times += [_mtime(f.path(lab)) for f in state.present]
            try:
                verified = verify_lab(lab).ok
            except LabError:
                verified = False
        progress = load_progress(work)
        if (work / PROGRESS_FILE).is_file():
            times.append(_mtime(work / PROGRESS_FILE))
    except OSError as error:
        return Grade(name, folder, f"cannot be read: {error.strerror or error}", total=total)
    recorded = (_parse_time(entry.get(key)) for entry in progress.values() for key in ("first_try", "solved"))
    times += [t for t in recorded if t is not None]
    return Grade(name, folder, None, arrows, len(BUILD_STEPS), clients, verified,
                 solved=sum(bool(e.get("correct")) for e in progress.values()),
                 attempted=sum(_count(e.get("attempts")) > 0 for e in progress.values()),
                 total=total, last_activity=max(times, default=None))


def _mtime(path: Path) -> dt.datetime:
    return dt.datetime.fromtimestamp(path.stat().st_mtime, dt.timezone.utc).replace(microsecond=0)


def _parse_time(value: Any) -> dt.datetime | None:
    try:
        found = dt.datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return found.astimezone(dt.timezone.utc) if found.tzinfo else found.replace(tzinfo=dt.timezone.utc)


def _count(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


_COLUMNS = ("student", "folder", "arrows_done", "arrows_total", "clients", "verify", "exercises_solved",
            "exercises_attempted", "exercises_total", "last_activity", "problem")


def grades_csv(grades: Iterable[Grade]) -> str:
    """The grades as CSV, with a header row: one row per student, empty cells where there is nothing to say."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(_COLUMNS)
    for g in grades:
        if g.problem:
            writer.writerow([g.student, str(g.folder), "", "", "", "", "", "", g.total, "", g.problem])
            continue
        writer.writerow([g.student, str(g.folder), g.arrows_done, g.arrows_total, g.clients,
                         "" if g.verify is None else ("pass" if g.verify else "fail"), g.solved, g.attempted,
                         g.total, g.last_activity.isoformat() if g.last_activity else "", ""])
    return out.getvalue()


def grades_table(grades: Sequence[Grade]) -> str:
    """The grades as a plain-text table, one line per student (a folder that could not be read says why)."""
    header = ("student", "arrows", "clients", "verify", "exercises", "last activity (UTC)")
    rows = []
    for g in grades:
        if g.problem:
            rows.append((g.student, f"{g.folder}: {g.problem}"))
            continue
        rows.append((g.student, f"{g.arrows_done}/{g.arrows_total}", str(g.clients),
                     "-" if g.verify is None else ("pass" if g.verify else "FAIL"),
                     f"{g.solved}/{g.attempted}/{g.total}",
                     g.last_activity.strftime("%Y-%m-%d %H:%M") if g.last_activity else "-"))
    full = [header, *(r for r in rows if len(r) == len(header))]
    widths = [max(len(r[i]) for r in full) for i in range(len(header))]
    widths[0] = max(len(r[0]) for r in (header, *rows))

    def line(cells: Sequence[str]) -> str:
        if len(cells) != len(header):
            return f"{cells[0]:<{widths[0]}}  {cells[1]}"
        return "  ".join(f"{c:<{w}}" for c, w in zip(cells, widths, strict=True)).rstrip()

    legend = "arrows: 1-9 done; verify: mqtt-pki-lab verify; exercises: solved/attempted/in the course"
    return "\n".join([line(header), *map(line, rows), "", legend]) + "\n"
