"""The exercises of notebook 10 (day two): right answers pass, each targeted hint is reachable, garbage gets a
sentence, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from exercise_helpers import check, garbage_tests, targeted

from mqtt_pki_lab.exercises import EXERCISES
from mqtt_pki_lab.exercises.daytwo import NOTEBOOK
from mqtt_pki_lab.steps import Lab

IDS = ("revoke-reason", "crl-stale-refused", "renew-signal", "daytwo-mystery-revoked", "daytwo-mystery-stale",
       "daytwo-mystery-reload", "daytwo-mystery-old-root")

test_garbage_gets_a_sentence, test_not_answered = garbage_tests(IDS)


def test_they_belong_to_notebook_10() -> None:
    assert NOTEBOOK == "10_day_two.ipynb"
    assert {EXERCISES[i].notebook for i in IDS} == {NOTEBOOK}


@pytest.mark.parametrize("answer", ["keyCompromise", "key compromise", "KEY_COMPROMISE"])
def test_the_reason_of_a_stolen_device(answer: str) -> None:
    assert check("revoke-reason", answer).correct


def test_every_reason_hint_is_earned() -> None:
    for answer, says in (("unspecified", "writes no reason"), ("cessationOfOperation", "retired"),
                         ("superseded", "replaces"), ("affiliationChanged", "owner"),
                         ("privilegeWithdrawn", "not why"), ("certificateHold", "temporary"),
                         ("cACompromise", "CA's key"), ("stolen", "not a reason code"), (7, "as text")):
        targeted("revoke-reason", answer, says=says)
    # A guess that is no reason code gets a nudge, not the list of codes with the answer in it.
    assert "keyCompromise" not in check("revoke-reason", "stolen").message


@pytest.fixture
def course_lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A course lab in a work folder of its own, with the lesson's clients; returns their names."""
    monkeypatch.setenv("MQTT_PKI_LAB_WORKDIR", str(tmp_path))
    lab = Lab(tmp_path / "pki")
    lab.build_all()
    lab.add_clients(["sensor-1", "stolen-sensor"])
    return ["client", "sensor-1", "stolen-sensor"]


def test_a_stale_list_refuses_everyone(course_lab: list[str]) -> None:
    for right_answer in ("everyone", "All", set(course_lab), list(course_lab)):
        assert check("crl-stale-refused", right_answer).correct, right_answer
    targeted("crl-stale-refused", {"stolen-sensor"}, says="current")
    targeted("crl-stale-refused", "nobody", says="not ignored")
    targeted("crl-stale-refused", set(), says="not ignored")
    targeted("crl-stale-refused", {"client", "stolen-sensor"}, says="You left out: sensor-1")
    targeted("crl-stale-refused", {"client", "thermostat"}, says="thermostat is not a client")
    targeted("crl-stale-refused", 3, says="as a set of strings")


@pytest.mark.parametrize("answer", ["SIGHUP", "HUP", "sighup", 1, "kill -HUP 1234", "kill -s HUP 1234",
                                    "kill -1 1234", "systemctl reload mosquitto"])
def test_the_reload_signal(answer: object) -> None:
    assert check("renew-signal", answer).correct, answer


def test_every_signal_hint_is_earned() -> None:
    for answer, says in (("SIGTERM", "stops mosquitto"), ("kill 1234", "stops mosquitto"), ("kill -9 1234", "SIGKILL"),
                         ("systemctl restart mosquitto", "drops every"), ("SIGUSR1", "persistence"),
                         ("USR2", "subscription tree"), ("SIGINT", "Ctrl-C"), ("wake up", "signal's name")):
        targeted("renew-signal", answer, says=says)


def test_the_step_mysteries() -> None:
    assert check("daytwo-mystery-revoked", 11).correct and check("daytwo-mystery-revoked", "11").correct
    assert check("daytwo-mystery-reload", 12).correct
    for wrong, says in ((8, "openssl verify says OK"), (9, "accepted the broker"), (6, "proved its key"),
                        (10, "makes nothing"), (12, "renewal"), (5, "broker's files are fine")):
        targeted("daytwo-mystery-revoked", wrong, says=says)
    for wrong, says in ((5, "Compare its serial"), (3, "kept it"), (4, "only asked"), (9, "did not change"),
                        (10, "makes nothing"), (11, "nothing was revoked"), (8, "client's own certificate")):
        targeted("daytwo-mystery-reload", wrong, says=says)
    # The answer is never given by a wrong try; "show me" gives it, and it is not counted as right.
    assert "step 11" not in check("daytwo-mystery-revoked", 8).message
    shown = check("daytwo-mystery-reload", "show me")
    assert not shown.correct and "kill -HUP" in shown.message
    assert "day-two step" in check("daytwo-mystery-revoked", 99).message


def test_the_file_mysteries() -> None:
    assert check("daytwo-mystery-stale", "broker/crl.pem").correct
    assert check("daytwo-mystery-old-root", "client/ca.crt").correct
    for wrong, says in (("ca/crl.pem", "CA's record"), ("client/client.crt", "every client is refused"),
                        ("broker/ca.crt", "unchanged"), ("broker/server.crt", "accepted the broker's"),
                        ("client/client.key", "wrong key"), ("nowhere.txt", "not a file"), (3, "as text")):
        targeted("daytwo-mystery-stale", wrong, says=says)
    for wrong, says in (("broker/server.crt", "good certificate of the new root"),
                        ("client/client.crt", "client is the side that refused"), ("broker/ca.crt", "both roots"),
                        ("ca/ca.crt", "stays in ca/"), ("ca-next/ca.crt", "stays in ca/"),
                        ("client/client.key", "keys do not change"), ("x", "not a file"), (3, "as text"),
                        ("ca.crt", "give the folder too")):
        targeted("daytwo-mystery-old-root", wrong, says=says)
    assert "m4.inspect" in check("daytwo-mystery-old-root", "x").message  # where the files are listed
    assert "client/ca.crt" in check("daytwo-mystery-old-root", "show me").message
