"""Where a student's course work lives, and the record of their exercises: no cryptography, no Jupyter.

* :func:`workdir`: the course's working folder (``$MQTT_PKI_LAB_WORKDIR``, else ``lab-work/`` in the current
  folder): the student's one lab is ``workdir()/pki``, broken copies and exports go beside it;
* :func:`record` and :func:`load_progress`: every checked exercise is written to ``progress.json`` in that
  folder, so a teacher's ``mqtt-pki-lab grade`` can read how far each student got.

``progress.json`` (format 1)::

    {"format": 1,
     "exercises": {"sign-a-message": {"correct": true, "attempts": 3,
                                      "first_try": "2026-12-02T16:00:00+00:00",
                                      "solved": "2026-12-02T16:04:10+00:00"}}}

``solved`` is absent until the exercise is answered right; ``attempts`` counts every checked answer (an
unanswered ``...`` is not an attempt).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import tempfile
from pathlib import Path
from typing import Any

WORKDIR_VARIABLE = "MQTT_PKI_LAB_WORKDIR"
PROGRESS_FILE = "progress.json"
PROGRESS_FORMAT = 1
#: A progress file larger than this is not read (it holds a few hundred bytes per exercise).
MAX_PROGRESS_BYTES = 1 << 20


def workdir() -> Path:
    """The course's working folder (created if needed): ``$MQTT_PKI_LAB_WORKDIR`` or ``./lab-work``."""
    folder = Path(os.environ.get(WORKDIR_VARIABLE) or "lab-work").resolve()
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def load_progress(folder: str | Path) -> dict[str, dict[str, Any]]:
    """The exercises recorded in ``folder/progress.json``: ``{exercise id: record}``; ``{}`` when there is
    no such file or it cannot be read (a damaged record never stops a student or a grader)."""
    path = Path(folder) / PROGRESS_FILE
    try:
        if not path.is_file() or path.is_symlink() or path.stat().st_size > MAX_PROGRESS_BYTES:
            return {}
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    found = data.get("exercises") if isinstance(data, dict) else None
    if not isinstance(found, dict):
        return {}
    return {str(k): v for k, v in found.items() if isinstance(v, dict)}


def record(exercise_id: str, correct: bool, folder: str | Path | None = None) -> dict[str, Any] | None:
    """Add one checked answer to ``progress.json`` (atomically); return the exercise's new record.

    Never raises: a read-only or missing folder means the answer is simply not recorded (``None``).
    """
    try:
        target = Path(folder) if folder is not None else workdir()
        progress = load_progress(target)
        now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()
        entry = dict(progress.get(exercise_id) or {"correct": False, "attempts": 0, "first_try": now})
        entry["attempts"] = int(entry.get("attempts", 0)) + 1
        if correct and not entry.get("correct"):
            entry["solved"] = now
        entry["correct"] = bool(entry.get("correct")) or correct
        progress[exercise_id] = entry
        text = json.dumps({"format": PROGRESS_FORMAT, "exercises": progress}, indent=1, sort_keys=True)
        fd, temp = tempfile.mkstemp(prefix=".progress.", suffix=".tmp", dir=target)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text + "\n")
            os.replace(temp, target / PROGRESS_FILE)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        return entry
    except OSError:
        return None
