"""Exercises of notebooks 00 and 01: the right answer passes, every targeted hint is earned, garbage gets a sentence.

Each wrong answer below is one a student is likely to give; together they must reach every hint the exercise
lists (``Exercise.hints``), so no hint is dead text and none is missing from the catalogue teachers read.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from exercise_helpers import assert_every_hint_reached, garbage_tests, message_of

from mqtt_pki_lab.exercises import EXERCISES, check, load_all
from mqtt_pki_lab.exercises.foundations import (
    PUZZLE_NAMES,
    PUZZLE_ROOT,
    certificate_for_next_cells,
    chain_puzzle,
    has_placeholder,
    issued_by,
    verify_with_unknown_extension,
)

load_all()

KEY = ec.generate_private_key(ec.SECP256R1())
OTHER_KEY = ec.generate_private_key(ec.SECP256R1())
MESSAGE = b"sensor-1: temperature 21.5 C"


def builder_function(*, subject: bool = True, issuer: str = "self", public: str = "public", signer: str = "key",
                     hash_: Any = None, name_as_text: bool = False) -> Callable[[Any, str], x509.Certificate]:
    """A student's make_certificate, right or wrong in one chosen way."""
    def make_certificate(key: Any, common_name: str) -> x509.Certificate:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        other = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Bob")])
        now = dt.datetime.now(dt.timezone.utc)
        builder = x509.CertificateBuilder()
        if subject:
            builder = builder.subject_name(common_name if name_as_text else name)  # type: ignore[arg-type]
        if issuer == "self":
            builder = builder.issuer_name(name)
        elif issuer == "other":
            builder = builder.issuer_name(other)
        chosen = {"public": key.public_key(), "private": key, "other": OTHER_KEY.public_key()}[public]
        builder = (builder.public_key(chosen)
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now).not_valid_after(now + dt.timedelta(days=30)))
        signing = {"key": key, "public": key.public_key(), "other": OTHER_KEY}[signer]
        return builder.sign(signing, hash_ if hash_ is not None else hashes.SHA256())
    return make_certificate


def unfinished(key: Any, common_name: str) -> x509.Certificate:
    """make_certificate as the notebook hands it out: with `...` still in it."""
    return x509.CertificateBuilder().subject_name(...).sign(key, hashes.SHA256())  # type: ignore[arg-type]


# --- 00: secret-files ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("answer", [["ca.key", "server.key", "client.key"], ("client.key", "ca.key", "server.key"),
                                    "ca.key, server.key, client.key", "ca/ca.key broker/server.key client/client.key",
                                    ["CA.KEY", " server.key", "client.key "]])
def test_secret_files_right(answer: Any) -> None:
    assert check("secret-files", answer).correct


def test_secret_files_hints() -> None:
    messages = [message_of(a, "secret-files") for a in (
        ["ca.key", "ca.crt", "server.key", "client.key"],       # a certificate is public
        ["ca.key", "server.key", "client.key", "client.csr"],   # a CSR is public
        ["ca.key"],                                              # forgot the broker's and client's keys
        ["server.key", "client.key"],                            # forgot the CA's key
        42,                                                      # not a list
    )]
    assert_every_hint_reached("secret-files", messages)
    assert "'server.pem' is not a file of the diagram" in message_of(["server.pem"], "secret-files")


# --- 01: sign-a-message -----------------------------------------------------------------------------------------

def test_sign_a_message_right_and_with_a_private_key_as_context() -> None:
    signature = KEY.sign(MESSAGE, ec.ECDSA(hashes.SHA256()))
    assert check("sign-a-message", signature, message=MESSAGE, public_key=KEY.public_key()).correct
    assert check("sign-a-message", signature, message=MESSAGE, public_key=KEY).correct


def test_sign_a_message_hints() -> None:
    public = KEY.public_key()
    good = KEY.sign(MESSAGE, ec.ECDSA(hashes.SHA256()))
    messages = [
        message_of(good, "sign-a-message"),                                              # no context
        message_of(KEY, "sign-a-message", message=MESSAGE, public_key=public),
        message_of(MESSAGE, "sign-a-message", message=MESSAGE, public_key=public),
        message_of(good.hex(), "sign-a-message", message=MESSAGE, public_key=public),
        message_of(KEY.sign(MESSAGE, ec.ECDSA(hashes.SHA384())), "sign-a-message", message=MESSAGE,
                   public_key=public),
        message_of(OTHER_KEY.sign(MESSAGE, ec.ECDSA(hashes.SHA256())), "sign-a-message", message=MESSAGE,
                   public_key=public),
        message_of(42, "sign-a-message", message=MESSAGE, public_key=public),
    ]
    assert_every_hint_reached("sign-a-message", messages)
    assert "SHA512" in message_of(KEY.sign(MESSAGE, ec.ECDSA(hashes.SHA512())), "sign-a-message", message=MESSAGE,
                                  public_key=public)


# --- 01: tampered-message ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("answer", ["InvalidSignature", "cryptography.exceptions.InvalidSignature", InvalidSignature,
                                    InvalidSignature(), " invalidsignature "])
def test_tampered_right(answer: Any) -> None:
    assert check("tampered-message", answer, tampered=MESSAGE.replace(b"21", b"91"), message=MESSAGE).correct


def test_tampered_hints() -> None:
    changed = MESSAGE.replace(b"21", b"91")
    messages = [
        message_of("InvalidSignature", "tampered-message", tampered=MESSAGE, message=MESSAGE),
        message_of("InvalidSignature", "tampered-message", tampered=[1], message=MESSAGE),
        message_of("TypeError", "tampered-message", tampered="text", message=MESSAGE),
        message_of("TypeError", "tampered-message", tampered=..., message=MESSAGE),
        message_of("ValueError", "tampered-message", tampered=changed, message=MESSAGE),
        message_of("accepted", "tampered-message", tampered=changed, message=MESSAGE),
        message_of("VerificationError", "tampered-message", tampered=changed, message=MESSAGE),
        message_of(Exception, "tampered-message", tampered=changed, message=MESSAGE),
    ]
    assert_every_hint_reached("tampered-message", messages)
    assert "TypeError means" in message_of("TypeError", "tampered-message", tampered=[1], message=MESSAGE)


def test_tampered_as_text_is_told_bytes_not_text() -> None:
    """verify() raises TypeError for a str; the hint used to ask whether `tampered` was still `...`."""
    for name in ("TypeError", "InvalidSignature"):
        hint = message_of(name, "tampered-message", tampered="sensor-1: temperature 91.5 C", message=MESSAGE)
        assert "bytes, not text" in hint and "b'...'" in hint and "still `...`" not in hint


# --- 01: self-signed-cert ---------------------------------------------------------------------------------------

def test_self_signed_cert_right_as_a_function_and_as_a_certificate() -> None:
    make = builder_function()
    assert check("self-signed-cert", make, key=KEY, name="Ada").correct
    assert check("self-signed-cert", make(KEY, "Ada"), key=KEY, name="Ada").correct
    assert not has_placeholder(make)


def test_self_signed_cert_unfinished_is_not_an_attempt() -> None:
    assert has_placeholder(unfinished)
    feedback = check("self-signed-cert", unfinished, key=KEY, name="Ada")
    assert not feedback.correct and not feedback.answered and "`...`" in feedback.message


def test_self_signed_cert_hints() -> None:
    def ask(answer: Any, **context: Any) -> str:
        return message_of(answer, "self-signed-cert", **{"key": KEY, "name": "Ada", **context})

    messages = [
        message_of(builder_function(), "self-signed-cert"),                    # no context
        ask(builder_function(name_as_text=True)),
        ask(builder_function(public="private")),
        ask(builder_function(signer="public")),
        ask(builder_function(hash_=hashes.SHA256)),                            # the class, not an object
        ask(builder_function(issuer="none")),
        ask(lambda key, name: None),
        ask(builder_function(public="other")),
        ask(lambda key, name: builder_function()(key, "Bob")),
        ask(builder_function(issuer="other")),
        ask(builder_function(signer="other")),
        ask(lambda key, name: builder_function()(KEY, name)),                 # the notebook's my_key, not `key`
        ask(lambda key, name: builder_function()(key, "Ada")),                # a fixed name
    ]
    assert_every_hint_reached("self-signed-cert", messages)


def test_self_signed_cert_must_use_its_arguments() -> None:
    """A builder that uses the notebook's key or a fixed name used to pass: it is called again with a fresh
    key and another name."""
    def uses_global_key(key: Any, common_name: str) -> x509.Certificate:
        return builder_function()(KEY, common_name)

    def half_global(key: Any, common_name: str) -> x509.Certificate:   # binds `key`, but signs with KEY
        return _signed_by(KEY, key, common_name)

    def fixed_name(key: Any, common_name: str) -> x509.Certificate:
        return builder_function()(key, "Ada")

    assert "ignores its `key` argument" in message_of(uses_global_key, "self-signed-cert", key=KEY, name="Ada")
    assert "my_key's public half" in message_of(uses_global_key, "self-signed-cert", key=KEY, name="Ada")
    assert "ignores its `key` argument" in message_of(half_global, "self-signed-cert", key=KEY, name="Ada")
    assert "ignores its `common_name` argument" in message_of(fixed_name, "self-signed-cert", key=KEY, name="Ada")
    assert check("self-signed-cert", builder_function(), key=KEY, name="Ada").correct


def _signed_by(signer: Any, key: Any, common_name: str) -> x509.Certificate:
    """A certificate binding ``common_name`` to ``key``, but signed with ``signer``."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.timezone.utc)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=30)).sign(signer, hashes.SHA256()))


def test_certificate_for_next_cells_keeps_a_right_answer_and_replaces_an_unfinished_one(
        capsys: pytest.CaptureFixture[str]) -> None:
    make = builder_function()
    mine = certificate_for_next_cells(make, KEY, "Ada")
    assert mine.subject == mine.issuer and mine.public_key() == KEY.public_key()
    assert capsys.readouterr().out == ""
    example = certificate_for_next_cells(unfinished, KEY, "Ada")
    assert example.public_key() == KEY.public_key() and issued_by(example, example)
    assert example.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "Ada"
    assert "not finished" in capsys.readouterr().out
    anything = certificate_for_next_cells(..., ..., "Ada")  # even with nothing usable, the next cells get one
    assert issued_by(anything, anything)


# --- 01: issued-by-root -----------------------------------------------------------------------------------------

def test_chain_puzzle_has_one_genuine_leaf_and_both_names_the_root() -> None:
    seen = set()
    for seed in range(8):
        root, candidates = chain_puzzle(seed)
        assert set(candidates) == set(PUZZLE_NAMES)
        assert all(c.issuer == root.subject for c in candidates.values())
        genuine = [n for n, c in candidates.items() if issued_by(c, root)]
        assert len(genuine) == 1
        seen.add(genuine[0])
        assert check("issued-by-root", genuine[0], root=root, candidates=candidates).correct
        assert check("issued-by-root", candidates[genuine[0]], root=root, candidates=candidates).correct
    assert seen == set(PUZZLE_NAMES), "the genuine leaf is not always the same one"


def test_issued_by_root_hints() -> None:
    for seed in range(50):
        root, candidates = chain_puzzle(seed)
        if not issued_by(candidates["sensor-a.example"], root):
            break
    messages = [
        message_of("sensor-b.example", "issued-by-root"),
        message_of("sensor-a.example", "issued-by-root", root=root, candidates=candidates),
        message_of(list(PUZZLE_NAMES), "issued-by-root", root=root, candidates=candidates),
        message_of(PUZZLE_ROOT, "issued-by-root", root=root, candidates=candidates),
    ]
    assert_every_hint_reached("issued-by-root", messages)
    assert "one of the candidates' names" in message_of("sensor-c", "issued-by-root", root=root, candidates=candidates)


# --- 01: critical-unknown ---------------------------------------------------------------------------------------

def test_critical_unknown() -> None:
    assert check("critical-unknown", "reject").correct
    assert check("critical-unknown", " Refuse ").correct
    messages = [message_of(a, "critical-unknown") for a in ("accept", "ignore", "warn", "it depends")]
    assert_every_hint_reached("critical-unknown", messages)
    assert "accept" in message_of(True, "critical-unknown")


def test_a_verifier_refuses_an_unknown_critical_extension_and_ignores_a_non_critical_one() -> None:
    refused = verify_with_unknown_extension(critical=True)
    assert refused.startswith("refused:") and "critical" in refused and "\n" not in refused
    assert verify_with_unknown_extension(critical=False) == "accepted"


# --- every exercise: garbage gets a sentence, `...` is not an attempt -------------------------------------------

CONTEXTS: dict[str, dict[str, Any]] = {
    "secret-files": {},
    "sign-a-message": {"message": MESSAGE, "public_key": KEY.public_key()},
    "tampered-message": {"tampered": b"x", "message": MESSAGE},
    "self-signed-cert": {"key": KEY, "name": "Ada"},
    "issued-by-root": dict(zip(("root", "candidates"), chain_puzzle(1), strict=True)),
    "critical-unknown": {},
}


test_garbage_gets_a_sentence_never_a_traceback, test_the_placeholder_is_not_answered_yet = garbage_tests(
    sorted(CONTEXTS), CONTEXTS, judge=check)


def test_each_exercise_belongs_to_its_notebook_and_lists_its_hints() -> None:
    assert EXERCISES["secret-files"].notebook == "00_start_here.ipynb"
    for exercise in ("sign-a-message", "tampered-message", "self-signed-cert", "issued-by-root", "critical-unknown"):
        assert EXERCISES[exercise].notebook == "01_foundations.ipynb"
        assert len(EXERCISES[exercise].hints) >= 3
    with pytest.raises(InvalidSignature):  # the fact notebook 01 teaches, checked against the library itself
        KEY.public_key().verify(KEY.sign(MESSAGE, ec.ECDSA(hashes.SHA256())), MESSAGE + b"!",
                                ec.ECDSA(hashes.SHA256()))
