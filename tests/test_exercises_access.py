"""The exercises of notebook 09 (who may do what): right answers pass, each targeted hint is reachable,
garbage gets a sentence, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from exercise_helpers import check, garbage_tests, targeted

from mqtt_pki_lab.exercises import EXERCISES
from mqtt_pki_lab.exercises.access import predict_questions, predict_truth
from mqtt_pki_lab.keys import generate_key
from mqtt_pki_lab.steps import Lab

IDS = ("access-predict", "access-rule", "device-key-where", "p12-load", "access-mystery-topic", "access-mystery-key")

test_garbage_gets_a_sentence, test_not_answered = garbage_tests(IDS)
# csr-proves is a typed quiz question: its feedback on garbage names the choices instead of "Not yet."
test_quiz_garbage_gets_a_sentence, test_quiz_not_answered = garbage_tests(("csr-proves",), opening=None)


def test_they_belong_to_notebook_09() -> None:
    assert {EXERCISES[i].notebook for i in (*IDS, "csr-proves")} == {"09_who_may_do_what.ipynb"}


def test_predict_follows_the_policy() -> None:
    truth = predict_truth()
    assert list(truth) == predict_questions()
    assert list(truth.values()) == [True, True, False, False, True, False]
    assert check("access-predict", truth).correct
    for key, allowed in truth.items():
        flipped = dict(truth, **{key: not allowed})
        topic = key.split(" ", 1)[1]
        says = "own subtree" if "sensor-2" in topic else ("Does that match" if topic.startswith("devices/")
                                                          else "shared")
        targeted("access-predict", flipped, says=says)
    targeted("access-predict", {"publish x": True}, says="Missing: 'publish devices/sensor-2/temperature'")
    targeted("access-predict", dict.fromkeys(truth, "yes"), says="is 'yes'")
    targeted("access-predict", [True] * 6, says="You gave a list")
    assert not check("access-predict", dict.fromkeys(truth, ...)).answered
    assert "still `...`" in check("access-predict", dict(truth, **{next(iter(truth)): ...})).message


@pytest.mark.parametrize("rule", ["topic read devices/+/temperature", "  topic  read devices/+/temperature "])
def test_rule_right(rule: str) -> None:
    assert check("access-rule", rule).correct


@pytest.mark.parametrize(("rule", "says"), [
    ("pattern read devices/+/temperature", "`pattern` lines are for every client"),
    ("topic readwrite devices/+/temperature", "publish"),
    ("topic write devices/+/temperature", "could send readings but still receive none"),
    ("topic subscribe devices/+/temperature", "'subscribe' is not a word"),
    ("Topic read devices/+/temperature", "'Topic' is not a word"),
    ("topic deny devices/+/temperature", "refuses"),
    ("topic read devices/#/temperature", "'#' must be a whole level"),
    ("topic read devices/%u/temperature", "%u is filled in only"),
    ("topic read devices/sensor-1/temperature", "does not match devices/sensor-2/temperature"),
    ("topic read devices/#", "also matches devices/sensor-2/commands"),
    ("topic read devices/+/temperature/#", "also matches devices/sensor-2/temperature/raw"),
    ("topic read +/+/temperature", "also matches shared/x/temperature"),
    ("read devices/+/temperature", "three words"),
    (42, "one line of text"),
])
def test_rule_hints(rule: object, says: str) -> None:
    targeted("access-rule", rule, says=says)


def test_device_key_where() -> None:
    assert check("device-key-where", "client.key").correct
    assert check("device-key-where", "clients/sensor-2/client.key").correct
    targeted("device-key-where", "key-on-device.txt", says="other way round")
    targeted("device-key-where", "client.csr", says="client.csr is in both folders")
    targeted("device-key-where", "ca.crt", says="ca.crt is in both folders")
    targeted("device-key-where", "server.key", says="in neither folder")
    targeted("device-key-where", 3, says="one file name")


@pytest.mark.parametrize(("answer", "says"), [
    ("client/client.crt", "the broker verified the certificates"),
    ("clients/sensor-2/client.crt", "the broker verified the certificates"),
    ("broker/ca.crt", "every TLS handshake succeeded"),
    ("broker/server.key", "a wrong key"),
    ("mosquitto.conf", "only points at the file"),
    ("passwords.txt", "not a file of the lab"),
])
def test_mystery_topic_hints(answer: str, says: str) -> None:
    targeted("access-mystery-topic", answer, says=says)


def test_mystery_topic_answer_and_show_me() -> None:
    assert check("access-mystery-topic", "broker/acl").correct
    assert check("access-mystery-topic", "./acl").correct
    assert check("access-mystery-topic", "/tmp/x/lab-work/pki/broker/acl").correct
    shown = check("access-mystery-topic", "show me")
    assert not shown.correct and "broker/acl, the broker's policy" in shown.message


@pytest.mark.parametrize(("answer", "says"), [
    ("client.key", "inspect client.csr too"),
    ("clients/sensor-2/client.crt", "a file of the lab, not of the device"),
    ("ca.crt", "only checks the broker"),
    ("client.csr", "not used to connect"),
    ("server.crt", "not in the device's folder"),
])
def test_mystery_key_hints(answer: str, says: str) -> None:
    targeted("access-mystery-key", answer, says=says)


def test_mystery_key_answer() -> None:
    assert check("access-mystery-key", "client.crt").correct
    assert check("access-mystery-key", "mysteries/device-garage-door/client.crt").correct
    assert "KEY_VALUES_MISMATCH" in check("access-mystery-key", "show me").message


def test_csr_proves() -> None:
    assert check("csr-proves", "key").correct
    assert "anyone can type" in check("csr-proves", "device").message
    assert "CA's job" in check("csr-proves", "Name").message
    assert "not one of the choices" in check("csr-proves", "door-lock").message


def test_p12_load(tmp_path: Path) -> None:
    lab = Lab(tmp_path / "pki")
    lab.build_all()
    key = serialization.load_pem_private_key((lab.root / "client" / "client.key").read_bytes(), None)
    from cryptography import x509

    cert = x509.load_pem_x509_certificate((lab.root / "client" / "client.crt").read_bytes())
    ca = x509.load_pem_x509_certificate((lab.root / "ca" / "ca.crt").read_bytes())
    data = pkcs12.serialize_key_and_certificates(b"client", key, cert, [ca],
                                                 serialization.BestAvailableEncryption(b"pw"))
    loaded = pkcs12.load_key_and_certificates(data, b"pw")
    assert check("p12-load", loaded).correct
    targeted("p12-load", data, says="raw bytes")
    targeted("p12-load", (None, cert, [ca]), says="no key")
    targeted("p12-load", (generate_key("ec-p256"), cert, [ca]), says="do not belong together")
    targeted("p12-load", (key, cert, []), says="CA certificates are missing")
    targeted("p12-load", cert, says="whole result")
