"""What the exercise tests (``tests/test_exercises_*.py``) share: judging an answer, matching the hint it
earns against the exercise's listed hints, and the garbage every exercise must answer with a sentence.

Two ways to judge are used, on purpose:

* :func:`check` asks the exercise itself (``EXERCISES[id].check``): nothing is recorded, and only the
  modules a test file imports are needed;
* :func:`message_of` goes through the course's :func:`mqtt_pki_lab.exercises.check`, as a student's
  notebook does (it loads every exercise and records the answer in the test's work folder).

The rules every exercise keeps (see :mod:`mqtt_pki_lab.exercises`) are checked by the tests
:func:`garbage_tests` makes: garbage gets a short sentence, never a traceback, and ``...`` is
"not answered yet".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest

from mqtt_pki_lab.exercises import EXERCISES, Feedback
from mqtt_pki_lab.exercises import check as course_check

HINT = "Not yet. Hint: "
"""How a wrong answer's feedback starts when the exercise chose a hint for it."""


def check(exercise_id: str, answer: object, **context: object) -> Feedback:
    """Judge ``answer`` with exercise ``exercise_id`` itself; records nothing.

    The exercise must be registered: importing its module (``mqtt_pki_lab.exercises.mqtt``, ...) does it.
    """
    return EXERCISES[exercise_id].check(answer, **context)


class Explodes:
    """An answer whose every use raises: printed, iterated, measured, compared, hashed or opened as a path."""

    def __str__(self) -> str:
        raise RuntimeError("boom")

    def __iter__(self) -> Any:
        raise RuntimeError("boom")

    def __len__(self) -> int:
        raise RuntimeError("boom")

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("boom")

    __hash__ = None  # type: ignore[assignment]

    def __fspath__(self) -> str:
        raise RuntimeError("boom")


def fits(text: str, template: str) -> bool:
    """True when ``text`` is ``template`` with its ``{fields}`` filled in (a listed hint is such a template)."""
    pattern = ".*".join(re.escape(part) for part in re.split(r"\{[^}]*\}", template))
    return re.fullmatch(pattern, text, re.DOTALL) is not None


def hint_of(exercise_id: str, answer: object, **context: object) -> str:
    """The hint a wrong ``answer`` earns, without ``Not yet. Hint: `` (fails if the answer is right or gets
    no hint)."""
    verdict = check(exercise_id, answer, **context)
    assert not verdict.correct and verdict.message.startswith(HINT), verdict.message
    return verdict.message.removeprefix(HINT)


def targeted(exercise_id: str, answer: object, *, says: str | Iterable[str] = (), **context: object) -> str:
    """The listed hint (``Exercise.hints``, a template) that the wrong ``answer`` earns.

    Fails if ``answer`` is right, earns no hint, or earns one the exercise does not list (its general hint
    included); and, with ``says``, unless the hint as given (fields filled in) contains each of those words.
    """
    text = hint_of(exercise_id, answer, **context)
    found = [h for h in EXERCISES[exercise_id].hints if fits(text, h)]
    assert found, f"{answer!r} earned a hint that is not listed: {text}"
    for words in [says] if isinstance(says, str) else says:
        assert words in text, (words, text)
    return found[0]


def message_of(answer: object, exercise_id: str, **context: object) -> str:
    """The whole feedback on a wrong ``answer``, judged by the course's ``check`` as a notebook would."""
    feedback = course_check(exercise_id, answer, **context)
    assert not feedback.correct, (exercise_id, answer, feedback.message)
    return feedback.message


def assert_every_hint_reached(exercise_id: str, messages: Iterable[str]) -> None:
    """Each hint the exercise lists appears, word for word, in one of ``messages``."""
    messages = list(messages)
    for hint in EXERCISES[exercise_id].hints:
        assert any(hint in m for m in messages), (exercise_id, hint)


#: Answers no exercise asks for: each must get a sentence back, never a traceback.
GARBAGE: tuple[object, ...] = ("", 42, 3.5, 3.5j, True, b"\x00", b"bytes", [], [None], [1, 2], ["x", 1], {},
                               {"a": 1}, object(), Path("/"), Explodes())


def assert_a_sentence(verdict: Feedback, opening: str | None = "Not yet.") -> None:
    """The verdict on garbage: answered, wrong, and a short sentence (starting with ``opening`` unless that is
    None), not a traceback."""
    message = verdict.message
    assert not verdict.correct and verdict.answered, message
    assert opening is None or message.startswith(opening), message
    assert "Traceback" not in message, message
    assert message.strip().endswith((".", "?", ")")) and len(message) < 600, message


def garbage_tests(ids: Iterable[str], contexts: Mapping[str, Mapping[str, Any]] | str | None = None, *,
                  judge: Callable[..., Feedback] = check, opening: str | None = "Not yet."
                  ) -> tuple[Callable[..., None], Callable[..., None]]:
    """The two tests every exercise file runs, for the exercises ``ids``; use them as::

        test_garbage_gets_a_sentence, test_the_placeholder_is_not_answered = garbage_tests(IDS)

    ``contexts`` gives each exercise the context it is checked with: a mapping, or the name of a fixture that
    returns one (for contexts that need a lab); missing exercises get none. ``judge`` is :func:`check`, or
    the course's ``check`` to judge as a notebook does. ``opening`` is how the feedback on garbage starts
    (None for a quiz question, whose feedback names the choices instead).
    """
    ids = tuple(ids)

    def context_of(exercise_id: str, request: pytest.FixtureRequest) -> Mapping[str, Any]:
        found = request.getfixturevalue(contexts) if isinstance(contexts, str) else (contexts or {})
        return found.get(exercise_id, {})

    @pytest.mark.parametrize("exercise_id", ids)
    @pytest.mark.parametrize("garbage", GARBAGE)
    def test_garbage_gets_a_sentence(exercise_id: str, garbage: object, request: pytest.FixtureRequest) -> None:
        assert_a_sentence(judge(exercise_id, garbage, **context_of(exercise_id, request)), opening)

    @pytest.mark.parametrize("exercise_id", ids)
    def test_the_placeholder_is_not_answered(exercise_id: str, request: pytest.FixtureRequest) -> None:
        verdict = judge(exercise_id, ..., **context_of(exercise_id, request))
        assert not verdict.correct and not verdict.answered, exercise_id
        none = judge(exercise_id, None, **context_of(exercise_id, request))  # an answer: a forgotten return
        assert not none.correct and none.answered, (exercise_id, none.message)

    return test_garbage_gets_a_sentence, test_the_placeholder_is_not_answered
