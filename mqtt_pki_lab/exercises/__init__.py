"""Exercises that check themselves: the student types code or a value, :func:`check` answers.

A notebook asks; this package judges, so the answers are not in the notebook a student reads::

    from mqtt_pki_lab.course import check
    answer = ...                       # the student replaces ... with code or a value
    check("ca-lifetime", answer)       # Right, or a hint chosen for *that* wrong answer

Rules every exercise keeps (and the tests check for each one):

* never a traceback: an answer that raises, has the wrong type or is garbage gets a sentence back;
* ``...`` (the placeholder) is "not answered yet", not a wrong answer, so *Run All* on an untouched
  notebook runs to the end; ``None`` is an answer (usually a function that forgot to ``return``) and is told so;
* a wrong answer the exercise knows gets its own hint (:attr:`Exercise.hints` lists them, for the tests
  and for teachers); anything else gets the exercise's general hint;
* every checked answer is recorded in ``progress.json`` (:mod:`mqtt_pki_lab.coursework`) for ``grade``.

Exercises live in the modules of this package, one per notebook (``foundations``, ``ca``, ...), each
calling :func:`exercise` to register its own; :data:`EXERCISES` holds them all once loaded.
Solutions live in ``notebooks/solutions/``, between nbgrader's ``### BEGIN SOLUTION`` and
``### END SOLUTION`` markers, so teachers can strip or replace them with the tools they know.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from html import escape
from pathlib import PurePath
from typing import Any

from ..coursework import record


@dataclass(frozen=True)
class Feedback:
    """The verdict on one answer: right or not, and what to think about next."""

    correct: bool
    message: str
    answered: bool = True
    """False when the cell still holds the ``...`` placeholder."""

    def __str__(self) -> str:
        return self.message

    def __bool__(self) -> bool:
        return self.correct

    def __repr__(self) -> str:
        return self.message

    def _repr_html_(self) -> str:
        colour = "#1b7f3b" if self.correct else ("#9a6700" if self.answered else "#6b7280")
        mark = "✔ " if self.correct else ("✘ " if self.answered else "")
        return (f"<div style='border-left:5px solid {colour};padding:2px 8px'>{mark}"
                f"{escape(self.message)}</div>")


def right(explanation: str) -> Feedback:
    """A right answer, with what the student should take away."""
    return Feedback(True, f"Right. {explanation}")


def wrong(hint: str) -> Feedback:
    """A wrong answer, with a hint chosen for it."""
    return Feedback(False, f"Not yet. Hint: {hint}")


#: What a judge returns: a verdict, or a hint (str) meaning "wrong, and here is why".
Verdict = Feedback | str


@dataclass(frozen=True)
class Exercise:
    """One exercise: what the student does, how to judge it, which wrong answers it knows."""

    id: str
    notebook: str
    """The notebook that asks it, e.g. ``01_foundations.ipynb``."""
    task: str
    """What the student does, in one line (shown by ``grade`` and in error messages)."""
    judge: Callable[..., Verdict]
    """``judge(answer, **context) -> Feedback`` (or a hint string for a wrong answer)."""
    hint: str
    """The general hint, for a wrong answer the judge does not recognise."""
    hints: tuple[str, ...] = field(default=())
    """Every targeted hint this exercise can give (for the tests, and for teachers reading the catalogue)."""
    kind: str = "value"
    """``value`` (type a value), ``code`` (write code whose result is checked), ``choice`` (pick)."""

    def check(self, answer: Any, **context: Any) -> Feedback:
        """Judge ``answer``; never raises."""
        if answer is Ellipsis:
            return Feedback(False, "Not answered yet: replace ... with your answer and run the cell again.",
                            answered=False)
        if answer is None:
            return wrong("your answer is None. A function without a `return`, a method that found nothing, or "
                         "a cell whose last line assigns instead of giving a value all give None: print what "
                         "you computed, then pass the value itself.")
        try:
            verdict = self.judge(answer, **context)
        except Exception as error:  # a student's answer may be anything at all
            return wrong(f"checking your answer raised {type(error).__name__}: {_short(error)}. {self.hint}")
        if isinstance(verdict, str):
            return wrong(verdict)
        if verdict is None:
            return wrong(self.hint)
        return verdict


EXERCISES: dict[str, Exercise] = {}
_LOADED = False


def exercise(id: str, notebook: str, task: str, *, hint: str, hints: Iterable[str] = (), kind: str = "value"
             ) -> Callable[[Callable[..., Verdict]], Exercise]:
    """Register the decorated judge as exercise ``id``::

        @exercise("ca-lifetime", "02_the_ca.ipynb", "give the CA's lifetime in days", hint="...")
        def _(answer):
            ...
    """
    def register(judge: Callable[..., Verdict]) -> Exercise:
        if id in EXERCISES:
            raise ValueError(f"exercise {id!r} is defined twice")
        made = Exercise(id, notebook, task, judge, hint, tuple(hints), kind)
        EXERCISES[id] = made
        return made
    return register


def load_all() -> dict[str, Exercise]:
    """Import every exercise module of this package (once); return :data:`EXERCISES`."""
    global _LOADED
    if not _LOADED:
        for module in pkgutil.iter_modules(__path__):
            importlib.import_module(f"{__name__}.{module.name}")
        _LOADED = True
    return EXERCISES


def check(exercise_id: str, answer: Any = Ellipsis, /, **context: Any) -> Feedback:
    """Judge a student's answer to exercise ``exercise_id`` and record it; never raises.

    ``context`` passes what the exercise needs besides the answer (a key, a lab), as its notebook shows.
    """
    exercises = load_all()
    found = exercises.get(str(exercise_id))
    if found is None:
        near = [k for k in exercises if str(exercise_id).split("-")[0] in k][:5]
        return Feedback(False, f"There is no exercise {exercise_id!r}"
                               + (f"; did you mean {', '.join(near)}?" if near else "."), answered=False)
    verdict = found.check(answer, **context)
    if verdict.answered:
        record(found.id, verdict.correct)
    return verdict


def normalise(answer: Any) -> str:
    """A typed answer as comparable text: stripped, lower case, inner spaces folded, quotes dropped."""
    return " ".join(str(answer).strip().strip("'\"`").lower().split())


#: What a student types to see a mystery's answer without guessing further.
SHOW_ME = frozenset({"show me", "show", "reveal", "give up", "i give up", "answer", "tell me"})


def wants_answer(answer: Any) -> bool:
    """True when the student asks to see the answer (``"show me"``...)."""
    return isinstance(answer, str) and normalise(answer) in SHOW_ME


def reveal(story: str) -> Feedback:
    """The answer shown on request (:data:`SHOW_ME`): the whole story, not counted as right."""
    return Feedback(False, f"The answer: {story}")


def typed_path(answer: Any) -> str | None:
    """A file path typed as an answer, comparable: :func:`normalise`d, ``/`` separators, no leading ``./``;
    None when the answer is not text (or a path)."""
    if not isinstance(answer, str | PurePath):
        return None
    return normalise(answer).replace("\\", "/").removeprefix("./")


def _short(error: BaseException) -> str:
    text = str(error) or "no message"
    return text if len(text) <= 160 else text[:157] + "..."


# The multiple-choice questions of the widgets (Quiz) and the break-it diagnosis, kept importable from here.
from .quizzes import QUESTIONS, Question, check_diagnosis  # noqa: E402

__all__ = ["EXERCISES", "QUESTIONS", "Exercise", "Feedback", "Question", "check", "check_diagnosis",
           "exercise", "load_all", "normalise", "right", "wrong"]
