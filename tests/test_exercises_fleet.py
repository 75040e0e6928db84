"""The exercises of notebook 08 (a fleet): right answers pass, each targeted hint is reachable, garbage
gets a sentence, never a traceback."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from exercise_helpers import Explodes, check, fits, garbage_tests, hint_of, targeted

from mqtt_pki_lab.exercises import EXERCISES
from mqtt_pki_lab.exercises.fleet import PUZZLE, PUZZLE_CLOCK, puzzle_table
from mqtt_pki_lab.steps import Lab

IDS = ("fleet-refuse", "fleet-boot-clock", "fleet-two-names")
REFUSED = ["valve-b", "pump-1", "garden"]


@pytest.fixture(scope="module")
def fleet_lab(tmp_path_factory: pytest.TempPathFactory) -> Lab:
    lab = Lab(tmp_path_factory.mktemp("fleet") / "pki")
    lab.build_all()
    lab.add_clients(["sensor-1"])
    return lab


def test_registered_for_notebook_08() -> None:
    for exercise_id in IDS:
        assert EXERCISES[exercise_id].notebook == "08_a_fleet.ipynb" and EXERCISES[exercise_id].hints


test_garbage_gets_a_sentence, test_not_answered = garbage_tests(IDS)


def test_the_puzzle_has_each_kind_of_window() -> None:
    valid = [w.client for w in PUZZLE if w.valid_at(PUZZLE_CLOCK)]
    assert sorted(valid) == ["gate-2", "valve-a"]
    assert any(w.not_before > PUZZLE_CLOCK for w in PUZZLE) and any(w.not_after < PUZZLE_CLOCK for w in PUZZLE)
    assert "garden" in puzzle_table() and len(puzzle_table().splitlines()) == 3 + len(PUZZLE)
    # none of the lab's own clients (notebook 08 adds sensor-1, sensor-2, door-lock): no confusing the two
    assert not {w.client for w in PUZZLE} & {"client", "sensor-1", "sensor-2", "door-lock"}


def test_refuse() -> None:
    assert check("fleet-refuse", REFUSED).correct
    assert check("fleet-refuse", tuple(reversed(REFUSED))).correct
    assert check("fleet-refuse", "garden, valve-b, pump-1").correct
    targeted("fleet-refuse", [*REFUSED, "valve-a"], says="notBefore <= clock <= notAfter")
    targeted("fleet-refuse", ["valve-b", "garden"], says=("notBefore", "not yet valid"))
    targeted("fleet-refuse", ["valve-b", "pump-1"], says=("month and day", "not only its year"))
    targeted("fleet-refuse", ["pump-1", "garden"], says="notAfter is before the clock")
    assert "not one of the clients" in hint_of("fleet-refuse", ["sensor-1"])  # the lab's name, not the puzzle's


def test_refuse_hints_teach_the_rule_and_name_no_client() -> None:
    """A hint says which date to compare with which; finding the client is left to the student."""
    for wrong in ([*REFUSED, "valve-a"], [*REFUSED, "gate-2"], ["valve-b", "garden"], ["valve-b", "pump-1"],
                  ["pump-1", "garden"], []):
        text = hint_of("fleet-refuse", wrong)
        assert not [w.client for w in PUZZLE if w.client in text], (wrong, text)


def test_boot_clock(built_lab: Path) -> None:
    assert check("fleet-boot-clock", "1970-01-01").correct
    assert check("fleet-boot-clock", dt.date(1970, 1, 1)).correct
    assert check("fleet-boot-clock", dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)).correct
    with_cert = check("fleet-boot-clock", "1970-01-01", cert=built_lab / "broker" / "server.crt")
    assert with_cert.correct and "days later" in with_cert.message
    assert check("fleet-boot-clock", "1970-01-01", cert=Explodes()).correct  # a bad context is only left out
    targeted("fleet-boot-clock", "1900-01-01", says="NTP")
    targeted("fleet-boot-clock", "2000-01-01", says="from 2000")
    targeted("fleet-boot-clock", dt.date(1, 1, 1), says="datetime.min")
    assert "synced clock" in hint_of("fleet-boot-clock", dt.date.today().isoformat())
    assert hint_of("fleet-boot-clock", "1980-01-06") == EXERCISES["fleet-boot-clock"].hint
    assert "YYYY-MM-DD" in hint_of("fleet-boot-clock", "1st January 1970")


def test_two_names(fleet_lab: Lab) -> None:
    assert check("fleet-two-names", ["kitchen-thermostat", "garage-door"], lab=fleet_lab).correct
    assert check("fleet-two-names", ("a_b.c@d", "x1")).correct
    targeted("fleet-two-names", ["kitchen thermostat", "garage"], says="has a space")
    targeted("fleet-two-names", ["home/kitchen", "garage"], says="folder path")
    targeted("fleet-two-names", ["sensor+1", "garage"], says="wildcards")
    targeted("fleet-two-names", ["garage", "sensor#1"], says="wildcards")
    targeted("fleet-two-names", ["-sensor", "garage"], says="starts with '-'")
    targeted("fleet-two-names", ["s" * 65, "garage"], says="at most 64")
    targeted("fleet-two-names", ["sensor-1", "garage"], lab=fleet_lab, says="already")
    targeted("fleet-two-names", ["client", "garage"], lab=fleet_lab, says="already")  # the first client's name
    targeted("fleet-two-names", ["garage", "garage"], says="the same")
    assert "exactly two" in hint_of("fleet-two-names", ["one"])
    kueche = targeted("fleet-two-names", ["Küche", "garage"], says=("'Küche' has 'ü'", "ASCII letters"))
    assert hint_of("fleet-two-names", ["Küche", "garage"]).count("Küche") == 1
    assert kueche == EXERCISES["fleet-two-names"].hints[-1]
    targeted("fleet-two-names", ["garage", "café"], says="'é'")
    other = hint_of("fleet-two-names", ["garage", "door!"])   # names.py's own sentence, the name said once
    assert other.startswith("'door!' is not a usable client name") and other.count("door!") == 1
    assert other.endswith(".")


def test_two_names_already_added_is_right(tmp_path: Path) -> None:
    lab = Lab(tmp_path / "pki")
    lab.build_all()
    lab.add_clients(["kitchen-thermostat", "garage-door"])
    verdict = check("fleet-two-names", ["kitchen-thermostat", "garage-door"], lab=lab)
    assert verdict.correct and "both are in your lab" in verdict.message


def test_every_listed_hint_is_reached(fleet_lab: Lab) -> None:
    """Each targeted hint of the three exercises is earned by one of these wrong answers."""
    answers = {
        "fleet-refuse": [[*REFUSED, "valve-a"], ["valve-b", "garden"], ["valve-b", "pump-1"], ["pump-1", "garden"]],
        "fleet-boot-clock": ["1900-01-01", "2000-01-01", "0001-01-01"],
        "fleet-two-names": [["a b", "c"], ["a/b", "c"], ["a+b", "c"], ["-a", "c"], ["s" * 65, "c"],
                            ["sensor-1", "c"], ["c", "c"], ["Küche", "c"]],
    }
    for exercise_id, wrong in answers.items():
        got = [hint_of(exercise_id, a, **({"lab": fleet_lab} if exercise_id == "fleet-two-names" else {}))
               for a in wrong]
        for hint in EXERCISES[exercise_id].hints:
            assert any(fits(g, hint) for g in got), (exercise_id, hint)
