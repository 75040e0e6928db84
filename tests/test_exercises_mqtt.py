"""The exercises of notebook 06 (real MQTT): right answers pass, each targeted hint is reachable, garbage
gets a sentence, never a traceback."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mqtt_pki_lab.exercises import EXERCISES, Feedback
from mqtt_pki_lab.exercises.mqtt import topic_matches, valid_filter
from mqtt_pki_lab.steps import BuildOptions, Lab

IDS = ("mqtt-topic-filter", "mqtt-not-authorised", "mqtt-require-certificate", "mqtt-tls-port", "mqtt-username")


def check(exercise_id: str, answer: object, **context: object) -> Feedback:
    """Judge with the exercise itself (importing this module registered it; no other module is loaded)."""
    return EXERCISES[exercise_id].check(answer, **context)


class Explodes:
    """An answer whose every use raises."""

    def __str__(self) -> str:
        raise RuntimeError("boom")

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("boom")

    __hash__ = None  # type: ignore[assignment]


def hint_of(exercise_id: str, answer: object, **context: object) -> str:
    verdict = check(exercise_id, answer, **context)
    assert not verdict.correct, verdict.message
    assert verdict.message.startswith("Not yet. Hint: "), verdict.message
    return verdict.message.removeprefix("Not yet. Hint: ")


def assert_targeted(exercise_id: str, answer: object, **context: object) -> str:
    """The wrong ``answer`` earns one of the exercise's listed targeted hints (not the general one)."""
    text = hint_of(exercise_id, answer, **context)
    listed = EXERCISES[exercise_id].hints
    assert any(text == h or _same_template(text, h) for h in listed), text
    return text


def _same_template(text: str, template: str) -> bool:
    """True when ``text`` is ``template`` with its ``{fields}`` filled in."""
    pattern = ".*".join(re.escape(part) for part in re.split(r"\{[^}]*\}", template))
    return re.fullmatch(pattern, text, re.DOTALL) is not None


def test_every_exercise_is_registered_for_notebook_06() -> None:
    for exercise_id in IDS:
        assert EXERCISES[exercise_id].notebook == "06_real_mqtt.ipynb"
        assert EXERCISES[exercise_id].hints


@pytest.mark.parametrize("exercise_id", IDS)
@pytest.mark.parametrize("garbage", ["", 42, [], {}, Explodes(), 3.5, b"bytes", True])
def test_garbage_gets_a_sentence(exercise_id: str, garbage: object) -> None:
    verdict = check(exercise_id, garbage)
    assert not verdict.correct and verdict.answered
    assert verdict.message.endswith((".", "?", ")")) and "Traceback" not in verdict.message


@pytest.mark.parametrize("exercise_id", IDS)
def test_ellipsis_and_none_are_not_answered(exercise_id: str) -> None:
    for answer in (..., None):
        verdict = check(exercise_id, answer)
        assert not verdict.answered and not verdict.correct


def test_topic_matching_follows_mqtt_3_1_1() -> None:
    assert topic_matches("sport/#", "sport") and topic_matches("sport/#", "sport/tennis/player1")
    assert topic_matches("sport/+/player1", "sport/tennis/player1")
    assert not topic_matches("sport/+", "sport/tennis/player1")
    assert topic_matches("+/+", "/finance") and not topic_matches("+", "/finance")
    assert not valid_filter("sport/#/player1") and not valid_filter("sport+") and not valid_filter("")


def test_topic_filter() -> None:
    assert check("mqtt-topic-filter", "devices/+/temperature").correct
    assert check("mqtt-topic-filter", " 'devices/+/temperature' ").correct
    assert "'*'" in assert_targeted("mqtt-topic-filter", "devices/*/temperature")
    assert "last character" in assert_targeted("mqtt-topic-filter", "devices/#/temperature")
    assert "leading '/'" in assert_targeted("mqtt-topic-filter", "/devices/+/temperature")
    assert "humidity" in assert_targeted("mqtt-topic-filter", "devices/#")
    assert "humidity" in assert_targeted("mqtt-topic-filter", "devices/+/+")
    assert "rooms/kitchen" in assert_targeted("mqtt-topic-filter", "+/+/temperature")
    assert "devices/kitchen/temperature" in assert_targeted("mqtt-topic-filter", "devices/sensor-1/temperature")
    assert "whole level" in hint_of("mqtt-topic-filter", "devices/sensor+/temperature")


def test_not_authorised() -> None:
    assert check("mqtt-not-authorised", 5).correct
    assert check("mqtt-not-authorised", "5").correct
    assert check("mqtt-not-authorised", "0x87").correct  # MQTT 5's reason code, explained as such
    assert "bad user name or password" in assert_targeted("mqtt-not-authorised", 4)
    assert "accepted" in assert_targeted("mqtt-not-authorised", 0)
    assert "protocol version" in assert_targeted("mqtt-not-authorised", "1")
    assert "identifier" in assert_targeted("mqtt-not-authorised", 2)
    assert "unavailable" in assert_targeted("mqtt-not-authorised", 3)
    assert "MQTT 5" in assert_targeted("mqtt-not-authorised", "0x86")
    assert "0 to 5" in assert_targeted("mqtt-not-authorised", 401)
    assert "as a number" in hint_of("mqtt-not-authorised", "five")


def test_require_certificate() -> None:
    assert check("mqtt-require-certificate", "require_certificate true").correct
    assert check("mqtt-require-certificate", "  require_certificate   true ").correct
    assert "1 as true" in check("mqtt-require-certificate", "require_certificate 1").message
    assert "Empty" in assert_targeted("mqtt-require-certificate", "require_certificate")
    assert "default" in assert_targeted("mqtt-require-certificate", "require_certificate false")
    assert "no '='" in assert_targeted("mqtt-require-certificate", "require_certificate = true")
    assert "lower case" in assert_targeted("mqtt-require-certificate", "require_certificate yes")
    assert "lower case" in assert_targeted("mqtt-require-certificate", "require_certificate True")
    assert "demands nothing" in assert_targeted("mqtt-require-certificate", "use_identity_as_username true")
    assert "usernames" in assert_targeted("mqtt-require-certificate", "allow_anonymous false")
    assert "which CA" in assert_targeted("mqtt-require-certificate", "cafile /etc/mosquitto/ca.crt")
    general = hint_of("mqtt-require-certificate", "tls_version tlsv1.2")
    assert general == EXERCISES["mqtt-require-certificate"].hint


def test_tls_port() -> None:
    assert check("mqtt-tls-port", 8883).correct and check("mqtt-tls-port", " 8883 ").correct
    assert "plain MQTT" in assert_targeted("mqtt-tls-port", 1883)
    assert "HTTPS" in assert_targeted("mqtt-tls-port", "443")
    assert "not a registered" in assert_targeted("mqtt-tls-port", 8884)
    assert hint_of("mqtt-tls-port", 8080) == EXERCISES["mqtt-tls-port"].hint
    assert "as a number" in hint_of("mqtt-tls-port", "port 8883")


def test_username_reads_the_lab(tmp_path: Path) -> None:
    lab = Lab(tmp_path / "pki", BuildOptions(client_name="dashboard"))
    lab.build_all()
    assert check("mqtt-username", "dashboard", lab=lab).correct
    assert not check("mqtt-username", "client", lab=lab).correct
    assert check("mqtt-username", "client").correct  # without a lab: the course's default name
    assert "file's name" in assert_targeted("mqtt-username", "client.crt", lab=lab)
    assert "issuer" in assert_targeted("mqtt-username", "MQTT Lab Root CA", lab=lab)
    assert "organisation" in assert_targeted("mqtt-username", "O=mqtt-pki-lab", lab=lab)
    assert "after CN=" in assert_targeted("mqtt-username", "CN=dashboard", lab=lab)
    assert "after CN=" in assert_targeted("mqtt-username", "common name", lab=lab)


def test_every_listed_hint_is_reached() -> None:
    """The tests above reach each hint listed for these exercises (a new hint needs a new test line)."""
    reached = {
        "mqtt-topic-filter": ["devices/*/temperature", "devices/#/temperature", "/devices/+/temperature",
                              "devices/#", "devices/sensor-1/temperature"],
        "mqtt-not-authorised": [0, 1, 2, 3, 4, "0x86", 401],
        "mqtt-require-certificate": ["require_certificate", "require_certificate false",
                                     "require_certificate = true", "require_certificate yes",
                                     "use_identity_as_username true", "allow_anonymous false", "cafile x"],
        "mqtt-tls-port": [1883, 443, 8884],
        "mqtt-username": ["client.crt", "MQTT Lab Root CA", "O=mqtt-pki-lab", "CN=client"],
    }
    for exercise_id, answers in reached.items():
        got = {hint_of(exercise_id, a) for a in answers}
        for hint in EXERCISES[exercise_id].hints:
            assert any(g == hint or _same_template(g, hint) for g in got), (exercise_id, hint)
