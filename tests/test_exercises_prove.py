"""The exercises of notebook 05 (hand out ca.crt and prove it): right answers pass, each targeted hint is
reached by a wrong answer that earns it, garbage gets a sentence. The right answers are read from a real
transcript, so the exercises cannot drift from what the handshake really does."""

from __future__ import annotations

from pathlib import Path

from exercise_helpers import check, garbage_tests, targeted

from mqtt_pki_lab.exercises import EXERCISES
from mqtt_pki_lab.exercises.prove import BROKER_FLIGHT, CLIENT_MESSAGES
from mqtt_pki_lab.handshake import handshake_transcript

IDS = ("broker-flight", "proof-of-key", "client-messages", "trust-fix")


def test_the_exercises_belong_to_notebook_05() -> None:
    for exercise_id in IDS:
        assert EXERCISES[exercise_id].notebook == "05_hand_out_and_prove.ipynb"
        assert len(EXERCISES[exercise_id].hints) >= 4


def test_the_answers_are_what_the_real_handshake_does(built_lab: Path) -> None:
    transcript = handshake_transcript(built_lab)
    assert tuple(transcript.sent_by("broker")) == BROKER_FLIGHT
    assert tuple(transcript.sent_by("client")) == CLIENT_MESSAGES
    assert check("broker-flight", transcript.sent_by("broker")).correct
    assert check("broker-flight", [m for m in transcript.handshake if m.sender == "broker"]).correct
    assert check("client-messages", transcript.sent_by("client")).correct
    assert check("client-messages", [m.name for m in transcript.handshake if m.sender == "client"]).correct
    assert targeted("client-messages", transcript).startswith("that is the transcript object")
    assert targeted("client-messages", transcript.sender_of("CertificateRequest")).startswith("that is who sent")
    assert targeted("client-messages", transcript.sender_of("Finished")).startswith("that is who sent")  # "both"


def test_broker_needs_accepts_paths_as_notebook_00_does() -> None:
    """broker/server.crt used to be "not one of the choices" while notebook 00 accepted paths."""
    from mqtt_pki_lab.exercises import QUESTIONS

    question = QUESTIONS["broker-needs"]
    assert question.notebook == "05_hand_out_and_prove.ipynb"
    assert question.check(["broker/ca.crt", "broker/server.key", "broker/server.crt"]).correct
    assert question.check(["ca.crt", "server.key", "server.crt"]).correct
    wrong = question.check(["ca/ca.key", "broker/server.key", "broker/server.crt"])
    assert not wrong.correct and "ca.key never leaves ca/" in wrong.message
    assert "not one of the choices" in question.check(["broker/mosquitto.conf"]).message


def test_broker_flight_accepts_typed_spellings() -> None:
    assert check("broker-flight", "ServerHello, EncryptedExtensions, CertificateRequest, Certificate, "
                                  "CertificateVerify, Finished").correct
    assert check("broker-flight", "server_hello -> encrypted_extensions -> certificate_request -> certificate "
                                  "-> certificate_verify -> finished").correct


def test_broker_flight_targeted_hints_cover_the_list() -> None:
    flight = list(BROKER_FLIGHT)
    reached = {
        targeted("broker-flight", ["ServerHello", "ServerKeyExchange", "ServerHelloDone"]),
        targeted("broker-flight", ["ServerHello", "ChangeCipherSpec", *flight[1:]]),
        targeted("broker-flight", [n for n in flight if n != "CertificateRequest"]),
        targeted("broker-flight", ["ServerHello", "EncryptedExtensions", "CertificateRequest", "CertificateVerify",
                                   "Certificate", "Finished"]),
        targeted("broker-flight", flight[:-1]),
        targeted("broker-flight", flight[1:]),
        targeted("broker-flight", ["ClientHello", *flight]),
        targeted("broker-flight", [*flight, "NewSessionTicket"]),
        targeted("broker-flight", ["ServerHello", "CertificateRequest", "EncryptedExtensions", "Certificate",
                                   "CertificateVerify", "Finished"]),
        targeted("broker-flight", ["ServerHello", "EncryptedExtensions", "Certificate", "CertificateRequest",
                                   "CertificateVerify", "Finished"]),
    }
    assert reached == set(EXERCISES["broker-flight"].hints)


def test_proof_of_key() -> None:
    assert check("proof-of-key", "CertificateVerify").correct
    assert check("proof-of-key", " certificate_verify ").correct
    reached = {targeted("proof-of-key", a) for a in
               ("Certificate", "Finished", "ServerHello", "CertificateRequest", "ClientHello")}
    assert reached == set(EXERCISES["proof-of-key"].hints)


def test_client_messages_targeted_hints_cover_the_list(built_lab: Path) -> None:
    transcript = handshake_transcript(built_lab)
    reached = {
        targeted("client-messages", list(BROKER_FLIGHT)),
        targeted("client-messages", ["Certificate", "CertificateVerify", "Finished"]),
        targeted("client-messages", "broker"),
        targeted("client-messages", transcript),
        targeted("client-messages", [*CLIENT_MESSAGES, "NewSessionTicket"]),
    }
    assert reached == set(EXERCISES["client-messages"].hints)


def test_trust_fix() -> None:
    for answer in ("client/ca.crt", "./client/ca.crt", "pki/client/ca.crt", " CLIENT/CA.CRT "):
        assert check("trust-fix", answer).correct
    reached = {targeted("trust-fix", a) for a in
               ("ca/ca.crt", "broker/server.crt", "broker/ca.crt", "ca/ca.key", "client/client.crt", "ca.crt")}
    assert reached == set(EXERCISES["trust-fix"].hints)


test_garbage_gets_a_sentence, test_the_placeholder_is_not_answered = garbage_tests(IDS)
