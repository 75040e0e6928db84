"""The exercises of notebook 06 (real MQTT): right answers pass, each targeted hint is reachable, garbage
gets a sentence, never a traceback."""

from __future__ import annotations

from pathlib import Path

from exercise_helpers import check, fits, garbage_tests, hint_of, targeted

from mqtt_pki_lab.exercises import EXERCISES
from mqtt_pki_lab.exercises.mqtt import _CONNACK_MEANING, topic_matches, valid_filter
from mqtt_pki_lab.steps import BuildOptions, Lab

IDS = ("mqtt-topic-filter", "mqtt-not-authorised", "mqtt-require-certificate", "mqtt-tls-port", "mqtt-username")


def test_every_exercise_is_registered_for_notebook_06() -> None:
    for exercise_id in IDS:
        assert EXERCISES[exercise_id].notebook == "06_real_mqtt.ipynb"
        assert EXERCISES[exercise_id].hints


test_garbage_gets_a_sentence, test_ellipsis_and_none_are_not_answered = garbage_tests(IDS)


def test_topic_matching_follows_mqtt_3_1_1() -> None:
    assert topic_matches("sport/#", "sport") and topic_matches("sport/#", "sport/tennis/player1")
    assert topic_matches("sport/+/player1", "sport/tennis/player1")
    assert not topic_matches("sport/+", "sport/tennis/player1")
    assert topic_matches("+/+", "/finance") and not topic_matches("+", "/finance")
    assert not valid_filter("sport/#/player1") and not valid_filter("sport+") and not valid_filter("")


def test_topic_filter() -> None:
    assert check("mqtt-topic-filter", "devices/+/temperature").correct
    assert check("mqtt-topic-filter", " 'devices/+/temperature' ").correct
    targeted("mqtt-topic-filter", "devices/*/temperature", says="'*'")
    targeted("mqtt-topic-filter", "devices/#/temperature", says="last character")
    targeted("mqtt-topic-filter", "/devices/+/temperature", says="leading '/'")
    targeted("mqtt-topic-filter", "devices/#", says="humidity")
    targeted("mqtt-topic-filter", "devices/+/temperature/#", says="devices/kitchen/temperature/raw")
    assert "not its sub-topics" in hint_of("mqtt-topic-filter", "devices/+/temperature/#")
    targeted("mqtt-topic-filter", "devices/+/+", says="humidity")
    targeted("mqtt-topic-filter", "+/+/temperature", says="rooms/kitchen")
    targeted("mqtt-topic-filter", "devices/sensor-1/temperature", says="devices/kitchen/temperature")
    assert "whole level" in hint_of("mqtt-topic-filter", "devices/sensor+/temperature")


def test_not_authorised() -> None:
    assert check("mqtt-not-authorised", 5).correct
    assert check("mqtt-not-authorised", "5").correct
    for mqtt5 in ("0x87", 135, "135"):  # MQTT 5's reason code: the question asks for MQTT 3.1.1's
        assert hint_of("mqtt-not-authorised", mqtt5) == _CONNACK_MEANING[135]
    targeted("mqtt-not-authorised", 135, says="the question asks for MQTT 3.1.1's return code")
    targeted("mqtt-not-authorised", 4, says="bad user name or password")
    targeted("mqtt-not-authorised", 0, says="accepted")
    targeted("mqtt-not-authorised", "1", says="protocol version")
    targeted("mqtt-not-authorised", 2, says="identifier")
    targeted("mqtt-not-authorised", 3, says="unavailable")
    targeted("mqtt-not-authorised", "0x86", says="MQTT 5")
    targeted("mqtt-not-authorised", 401, says="0 to 5")
    assert "as a number" in hint_of("mqtt-not-authorised", "five")


def test_require_certificate() -> None:
    assert check("mqtt-require-certificate", "require_certificate true").correct
    assert check("mqtt-require-certificate", "  require_certificate   true ").correct
    assert "1 as true" in check("mqtt-require-certificate", "require_certificate 1").message
    targeted("mqtt-require-certificate", "require_certificate", says="Empty")
    targeted("mqtt-require-certificate", "require_certificate false", says="default")
    targeted("mqtt-require-certificate", "require_certificate = true", says="no '='")
    targeted("mqtt-require-certificate", "require_certificate yes", says="lower case")
    targeted("mqtt-require-certificate", "require_certificate True", says="lower case")
    targeted("mqtt-require-certificate", "use_identity_as_username true", says="demands nothing")
    targeted("mqtt-require-certificate", "allow_anonymous false", says="usernames")
    targeted("mqtt-require-certificate", "cafile /etc/mosquitto/ca.crt", says="which CA")
    general = hint_of("mqtt-require-certificate", "tls_version tlsv1.2")
    assert general == EXERCISES["mqtt-require-certificate"].hint


def test_tls_port() -> None:
    assert check("mqtt-tls-port", 8883).correct and check("mqtt-tls-port", " 8883 ").correct
    targeted("mqtt-tls-port", 1883, says="plain MQTT")
    targeted("mqtt-tls-port", "443", says="HTTPS")
    targeted("mqtt-tls-port", 8884, says="not a registered")
    assert hint_of("mqtt-tls-port", 8080) == EXERCISES["mqtt-tls-port"].hint
    assert "as a number" in hint_of("mqtt-tls-port", "port 8883")


def test_username_reads_the_lab(tmp_path: Path) -> None:
    lab = Lab(tmp_path / "pki", BuildOptions(client_name="dashboard"))
    lab.build_all()
    assert check("mqtt-username", "dashboard", lab=lab).correct
    assert not check("mqtt-username", "client", lab=lab).correct
    assert check("mqtt-username", "client").correct  # without a lab: the course's default name
    targeted("mqtt-username", "client.crt", lab=lab, says="file's name")
    targeted("mqtt-username", "MQTT Lab Root CA", lab=lab, says="issuer")
    targeted("mqtt-username", "O=mqtt-pki-lab", lab=lab, says="organisation")
    targeted("mqtt-username", "CN=dashboard", lab=lab, says="after CN=")
    targeted("mqtt-username", "common name", lab=lab, says="after CN=")


def test_every_listed_hint_is_reached() -> None:
    """The tests above reach each hint listed for these exercises (a new hint needs a new test line)."""
    reached = {
        "mqtt-topic-filter": ["devices/*/temperature", "devices/#/temperature", "/devices/+/temperature",
                              "devices/#", "devices/sensor-1/temperature", "devices/+/temperature/#"],
        "mqtt-not-authorised": [0, 1, 2, 3, 4, "0x86", "0x87", 401],
        "mqtt-require-certificate": ["require_certificate", "require_certificate false",
                                     "require_certificate = true", "require_certificate yes",
                                     "use_identity_as_username true", "allow_anonymous false", "cafile x"],
        "mqtt-tls-port": [1883, 443, 8884],
        "mqtt-username": ["client.crt", "MQTT Lab Root CA", "O=mqtt-pki-lab", "CN=client"],
    }
    for exercise_id, answers in reached.items():
        got = {hint_of(exercise_id, a) for a in answers}
        for hint in EXERCISES[exercise_id].hints:
            assert any(fits(g, hint) for g in got), (exercise_id, hint)
