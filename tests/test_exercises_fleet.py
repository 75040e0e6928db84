"""The exercises of notebook 08 (a fleet): right answers pass, each targeted hint is reachable, garbage
gets a sentence, never a traceback."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from mqtt_pki_lab.exercises import EXERCISES, Feedback
from mqtt_pki_lab.exercises.fleet import PUZZLE, PUZZLE_CLOCK, puzzle_table
from mqtt_pki_lab.steps import Lab

IDS = ("fleet-refuse", "fleet-boot-clock", "fleet-two-names")
REFUSED = ["sensor-2", "sensor-3", "garden"]


def check(exercise_id: str, answer: object, **context: object) -> Feedback:
    """Judge with the exercise itself (importing the module registered it; no other module is loaded)."""
    return EXERCISES[exercise_id].check(answer, **context)


class Explodes:
    def __str__(self) -> str:
        raise RuntimeError("boom")

    def __iter__(self):
        raise RuntimeError("boom")


def hint_of(exercise_id: str, answer: object, **context: object) -> str:
    verdict = check(exercise_id, answer, **context)
    assert not verdict.correct and verdict.message.startswith("Not yet. Hint: "), verdict.message
    return verdict.message.removeprefix("Not yet. Hint: ")


def fits(text: str, template: str) -> bool:
    """True when ``text`` is ``template`` with its ``{fields}`` filled in."""
    pattern = ".*".join(re.escape(part) for part in re.split(r"\{[^}]*\}", template))
    return re.fullmatch(pattern, text, re.DOTALL) is not None


def targeted(exercise_id: str, key_words: str, answer: object, **context: object) -> str:
    """``answer`` earns one of the exercise's listed hints, and the hint says ``key_words``."""
    text = hint_of(exercise_id, answer, **context)
    found = [h for h in EXERCISES[exercise_id].hints if fits(text, h)]
    assert found, text
    assert key_words in text, text
    return text


@pytest.fixture(scope="module")
def fleet_lab(tmp_path_factory: pytest.TempPathFactory) -> Lab:
    lab = Lab(tmp_path_factory.mktemp("fleet") / "pki")
    lab.build_all()
    lab.add_clients(["sensor-1"])
    return lab


def test_registered_for_notebook_08() -> None:
    for exercise_id in IDS:
        assert EXERCISES[exercise_id].notebook == "08_a_fleet.ipynb" and EXERCISES[exercise_id].hints


@pytest.mark.parametrize("exercise_id", IDS)
@pytest.mark.parametrize("garbage", ["", 42, [], {}, Explodes(), 3.5, b"x", True, [1, 2]])
def test_garbage_gets_a_sentence(exercise_id: str, garbage: object) -> None:
    verdict = check(exercise_id, garbage)
    assert not verdict.correct and verdict.answered
    assert verdict.message.endswith((".", "?", ")")), verdict.message


@pytest.mark.parametrize("exercise_id", IDS)
def test_not_answered(exercise_id: str) -> None:
    assert not check(exercise_id, ...).answered and not check(exercise_id, None).answered


def test_the_puzzle_has_each_kind_of_window() -> None:
    valid = [w.client for w in PUZZLE if w.valid_at(PUZZLE_CLOCK)]
    assert sorted(valid) == ["door-lock", "sensor-1"]
    assert any(w.not_before > PUZZLE_CLOCK for w in PUZZLE) and any(w.not_after < PUZZLE_CLOCK for w in PUZZLE)
    assert "garden" in puzzle_table() and len(puzzle_table().splitlines()) == 3 + len(PUZZLE)


def test_refuse() -> None:
    assert check("fleet-refuse", REFUSED).correct
    assert check("fleet-refuse", tuple(reversed(REFUSED))).correct
    assert check("fleet-refuse", "garden, sensor-2, sensor-3").correct
    assert "sensor-1 is valid" in targeted("fleet-refuse", "valid at that clock", [*REFUSED, "sensor-1"])
    assert "sensor-3" in targeted("fleet-refuse", "not valid *yet*", ["sensor-2", "garden"])
    assert "garden" in targeted("fleet-refuse", "notAfter", ["sensor-2", "sensor-3"])
    assert "not one of the clients" in hint_of("fleet-refuse", ["sensor-9"])


def test_boot_clock(built_lab: Path) -> None:
    assert check("fleet-boot-clock", "1970-01-01").correct
    assert check("fleet-boot-clock", dt.date(1970, 1, 1)).correct
    assert check("fleet-boot-clock", dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)).correct
    with_cert = check("fleet-boot-clock", "1970-01-01", cert=built_lab / "broker" / "server.crt")
    assert with_cert.correct and "days later" in with_cert.message
    assert check("fleet-boot-clock", "1970-01-01", cert=Explodes()).correct  # a bad context is only left out
    targeted("fleet-boot-clock", "NTP", "1900-01-01")
    targeted("fleet-boot-clock", "from 2000", "2000-01-01")
    targeted("fleet-boot-clock", "datetime.min", dt.date(1, 1, 1))
    assert "synced clock" in hint_of("fleet-boot-clock", dt.date.today().isoformat())
    assert hint_of("fleet-boot-clock", "1980-01-06") == EXERCISES["fleet-boot-clock"].hint
    assert "YYYY-MM-DD" in hint_of("fleet-boot-clock", "1st January 1970")


def test_two_names(fleet_lab: Lab) -> None:
    assert check("fleet-two-names", ["kitchen-thermostat", "garage-door"], lab=fleet_lab).correct
    assert check("fleet-two-names", ("a_b.c@d", "x1")).correct
    targeted("fleet-two-names", "has a space", ["kitchen thermostat", "garage"])
    targeted("fleet-two-names", "folder path", ["home/kitchen", "garage"])
    targeted("fleet-two-names", "wildcards", ["sensor+1", "garage"])
    targeted("fleet-two-names", "wildcards", ["garage", "sensor#1"])
    targeted("fleet-two-names", "starts with '-'", ["-sensor", "garage"])
    targeted("fleet-two-names", "at most 64", ["s" * 65, "garage"])
    targeted("fleet-two-names", "already", ["sensor-1", "garage"], lab=fleet_lab)
    targeted("fleet-two-names", "already", ["client", "garage"], lab=fleet_lab)  # the first client's name
    targeted("fleet-two-names", "the same", ["garage", "garage"])
    assert "exactly two" in hint_of("fleet-two-names", ["one"])
    assert "not a usable client name" in hint_of("fleet-two-names", ["garage", "café"])


def test_two_names_already_added_is_right(tmp_path: Path) -> None:
    lab = Lab(tmp_path / "pki")
    lab.build_all()
    lab.add_clients(["kitchen-thermostat", "garage-door"])
    verdict = check("fleet-two-names", ["kitchen-thermostat", "garage-door"], lab=lab)
    assert verdict.correct and "both are in your lab" in verdict.message


def test_every_listed_hint_is_reached(fleet_lab: Lab) -> None:
    """Each targeted hint of the three exercises is earned by one of these wrong answers."""
    answers = {
        "fleet-refuse": [[*REFUSED, "sensor-1"], ["sensor-2", "garden"], ["sensor-2", "sensor-3"]],
        "fleet-boot-clock": ["1900-01-01", "2000-01-01", "0001-01-01"],
        "fleet-two-names": [["a b", "c"], ["a/b", "c"], ["a+b", "c"], ["-a", "c"], ["s" * 65, "c"],
                            ["sensor-1", "c"], ["c", "c"]],
    }
    for exercise_id, wrong in answers.items():
        got = [hint_of(exercise_id, a, **({"lab": fleet_lab} if exercise_id == "fleet-two-names" else {}))
               for a in wrong]
        for hint in EXERCISES[exercise_id].hints:
            assert any(fits(g, hint) for g in got), (exercise_id, hint)
