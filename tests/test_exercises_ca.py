"""The exercises of notebook 02 (the CA): right answers pass, every targeted hint is earned, garbage gets a sentence.

A real lab is built once (arrows 1-5, so the broker's certificate exists for the "wrong file" hint); the
student's reading of ``ca.crt`` is played with ``cryptography`` as the notebook's solution does it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from exercise_helpers import assert_every_hint_reached, garbage_tests, message_of

from mqtt_pki_lab.ca import create_ca_certificate
from mqtt_pki_lab.diagram import CA_CERT, CA_KEY
from mqtt_pki_lab.exercises import EXERCISES, check, load_all
from mqtt_pki_lab.exercises.ca import key_usage_bits, other_ca_certificate
from mqtt_pki_lab.explain import explain_file
from mqtt_pki_lab.keys import public_key_fingerprint
from mqtt_pki_lab.pem import load_certificate
from mqtt_pki_lab.steps import Lab

load_all()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Lab:
    made = Lab(tmp_path_factory.mktemp("ca-exercises") / "pki")
    list(made.build(through=5))
    return made


@pytest.fixture(scope="module")
def ca_cert(lab: Lab) -> x509.Certificate:
    return load_certificate(lab.path(CA_CERT))


def fingerprint(public_key: Any) -> str:
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


# --- ca-lifetime ----------------------------------------------------------------------------------------------

def test_ca_lifetime_right(ca_cert: x509.Certificate) -> None:
    lifetime = ca_cert.not_valid_after_utc - ca_cert.not_valid_before_utc
    assert lifetime == dt.timedelta(days=3650, minutes=5)  # the lab's default, backdated five minutes
    for answer in (lifetime.days, 3650, "3650", lifetime):
        assert check("ca-lifetime", answer, cert=ca_cert).correct, answer
    assert check("ca-lifetime", 3650).correct  # without the certificate: the lab's default


def test_ca_lifetime_follows_the_certificate_read() -> None:
    short = create_ca_certificate(ec.generate_private_key(ec.SECP256R1()), days=30)
    assert check("ca-lifetime", 30, cert=short).correct
    assert not check("ca-lifetime", 3650, cert=short).correct


def test_ca_lifetime_hints(ca_cert: x509.Certificate) -> None:
    lifetime = ca_cert.not_valid_after_utc - ca_cert.not_valid_before_utc
    messages = [message_of(a, "ca-lifetime", cert=ca_cert) for a in (
        3650.0035,                                    # total_seconds() / 86400: the backdating
        10,                                           # years
        3652,                                         # calendar years with leap days
        365,                                          # a leaf's lifetime
        36500,                                        # the lab's cap for a CA
        3649,                                         # days left, as explain_file says
        -3650,                                        # the subtraction the wrong way round
        ca_cert.not_valid_after_utc,                  # a date
        "ten years",                                  # not a number
    )]
    assert_every_hint_reached("ca-lifetime", messages)
    assert "3650 days and 5 minutes" in message_of(lifetime.total_seconds() / 86400, "ca-lifetime", cert=ca_cert)
    assert "3650 days and 5 minutes" in message_of(3651, "ca-lifetime", cert=ca_cert)


# --- ca-basic-constraints --------------------------------------------------------------------------------------

def reads(first: str = "critical", second: str = "path_length", wrap: str = "pair") -> Any:
    """A student's basic_constraints(cert): reads `first` (critical, ca) and `second` from cert's extension."""
    def basic_constraints(cert: x509.Certificate) -> Any:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
        if wrap == "extension":
            return bc
        if wrap == "value":
            return bc.value
        values = {"critical": bc.critical, "ca": bc.value.ca, "path_length": bc.value.path_length}
        return (values[first], values[second]) if wrap == "pair" else (values[second], values[first])
    return basic_constraints


def test_ca_basic_constraints_right(ca_cert: x509.Certificate) -> None:
    assert check("ca-basic-constraints", reads(), cert=ca_cert).correct
    bc = ca_cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert (bc.critical, bc.value.ca, bc.value.path_length) == (True, True, 0)   # critical and ca: both True
    lax = other_ca_certificate().extensions.get_extension_for_class(x509.BasicConstraints)
    assert (lax.critical, lax.value.ca, lax.value.path_length) == (False, True, None)   # there they differ


def test_ca_basic_constraints_reading_ca_for_critical_does_not_pass(ca_cert: x509.Certificate) -> None:
    """(bc.value.ca, path_length) used to pass: .ca and .critical are both True on the lab's CA."""
    hint = message_of(reads(first="ca"), "ca-basic-constraints", cert=ca_cert)
    assert "bc.critical" in hint and ".ca" in hint
    typed = message_of(lambda cert: (True, 0), "ca-basic-constraints", cert=ca_cert)   # the answer typed in
    assert "read both values from `cert`" in typed
    assert "your function itself" in message_of((True, 0), "ca-basic-constraints", cert=ca_cert)


def test_ca_basic_constraints_unfinished_is_not_an_attempt(ca_cert: x509.Certificate) -> None:
    def basic_constraints(cert: x509.Certificate) -> Any:
        return ...
    feedback = check("ca-basic-constraints", basic_constraints, cert=ca_cert)
    assert not feedback.correct and not feedback.answered


def test_ca_basic_constraints_hints(ca_cert: x509.Certificate) -> None:
    messages = [message_of(a, "ca-basic-constraints", **c) for a, c in (
        ((True, 0), {"cert": ca_cert}),
        (reads(), {}),
        (lambda cert: True, {"cert": ca_cert}),
        (reads(wrap="extension"), {"cert": ca_cert}),
        (reads(wrap="value"), {"cert": ca_cert}),
        (lambda cert: (False, 0), {"cert": ca_cert}),
        (lambda cert: (True, None), {"cert": ca_cert}),
        (lambda cert: (True, 1), {"cert": ca_cert}),
        (reads(second="ca"), {"cert": ca_cert}),
        (reads(wrap="swapped"), {"cert": ca_cert}),
        (reads(first="ca"), {"cert": ca_cert}),
        (lambda cert: (True, 0), {"cert": ca_cert}),
        (lambda cert: (cert.extensions.get_extension_for_class(x509.BasicConstraints).critical, 0),
         {"cert": ca_cert}),
    )]
    assert_every_hint_reached("ca-basic-constraints", messages)


# --- ca-key-usage ---------------------------------------------------------------------------------------------

def test_ca_key_usage_right(ca_cert: x509.Certificate) -> None:
    ku = ca_cert.extensions.get_extension_for_class(x509.KeyUsage).value
    bits = key_usage_bits(ku)
    assert bits == {"digital_signature", "key_cert_sign", "crl_sign"}  # what the lab's CA really has
    for answer in (sorted(bits), "keyCertSign, cRLSign, digitalSignature", "digitalSignature keyCertSign cRLSign",
                   ("Key Cert Sign", "CRL sign", "digital signature")):
        assert check("ca-key-usage", answer, cert=ca_cert).correct, answer


def test_ca_key_usage_hints(ca_cert: x509.Certificate) -> None:
    ku = ca_cert.extensions.get_extension_for_class(x509.KeyUsage)
    messages = [message_of(a, "ca-key-usage", cert=ca_cert) for a in (
        ["keyCertSign", "cRLSign"],                                           # what the old course said
        ["digital_signature", "crl_sign"],
        ["digital_signature", "key_cert_sign", "crl_sign", "key_encipherment"],
        ku, ["sign"], 42)]
    assert_every_hint_reached("ca-key-usage", messages)


# --- ca-key-matches -------------------------------------------------------------------------------------------

def test_ca_key_matches_right(lab: Lab, ca_cert: x509.Certificate) -> None:
    ca_key = serialization.load_pem_private_key(lab.path(CA_KEY).read_bytes(), password=None)
    from_cert, from_key = fingerprint(ca_cert.public_key()), fingerprint(ca_key.public_key())
    assert from_cert == from_key
    assert check("ca-key-matches", (from_cert, from_key), lab=lab).correct
    shown = public_key_fingerprint(ca_cert.public_key())   # explain_file's colon form is accepted too
    assert f"key fingerprint  {shown}" in str(explain_file(lab.path(CA_KEY)))
    assert check("ca-key-matches", [shown, from_key.upper()], lab=lab.root).correct


def test_ca_key_matches_hints(lab: Lab, ca_cert: x509.Certificate) -> None:
    ca_key = serialization.load_pem_private_key(lab.path(CA_KEY).read_bytes(), password=None)
    good = fingerprint(ca_cert.public_key())
    pem = ca_cert.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    private_der = ca_key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption())
    server = load_certificate(lab.root / "broker" / "server.crt")
    sha1 = hashlib.sha1(b"x").hexdigest()
    messages = [
        message_of("abc", "ca-key-matches", lab=lab),
        message_of((good, good), "ca-key-matches"),
        message_of((ca_cert.fingerprint(hashes.SHA256()).hex(), good), "ca-key-matches", lab=lab),
        message_of((hashlib.sha256(pem).hexdigest(), good), "ca-key-matches", lab=lab),
        message_of((good, hashlib.sha256(private_der).hexdigest()), "ca-key-matches", lab=lab),
        message_of((sha1, sha1), "ca-key-matches", lab=lab),
        message_of((server.fingerprint(hashes.SHA256()).hex(), good), "ca-key-matches", lab=lab),
        message_of((good, "ab" * 32), "ca-key-matches", lab=lab),
        message_of((good, "not hex!"), "ca-key-matches", lab=lab),
    ]
    assert_every_hint_reached("ca-key-matches", messages)
    assert "broker/server.crt" in message_of((fingerprint(server.public_key()), good), "ca-key-matches", lab=lab)
    key_file = hashlib.sha256(lab.path(CA_KEY).read_bytes()).hexdigest()   # `sha256sum ca/ca.key`
    cert_file = hashlib.sha256(lab.path(CA_CERT).read_bytes()).hexdigest()
    assert "PRIVATE" in message_of((good, key_file), "ca-key-matches", lab=lab)
    assert "whole certificate" in message_of((cert_file, good), "ca-key-matches", lab=lab)


# --- ca-signs-with (a typed quiz question) -------------------------------------------------------------------

def test_ca_signs_with_is_typed_and_hints_each_wrong_file() -> None:
    assert check("ca-signs-with", "ca.key").correct
    assert check("ca-signs-with", "ca/ca.key").correct   # a path, as notebook 00 accepts: used to be "not a choice"
    assert "ca.crt is public" in message_of("ca/ca.crt", "ca-signs-with")
    assert "not one of the choices" in message_of("ca/other.key", "ca-signs-with")
    hints = {message_of(f, "ca-signs-with") for f in ("ca.crt", "server.key", "server.csr")}
    assert len(hints) == 3 and all("Hint:" in h for h in hints)
    assert EXERCISES["ca-signs-with"].notebook == "02_the_ca.ipynb"


# --- every exercise: garbage gets a sentence, `...` is not an attempt -----------------------------------------

IDS = ("ca-lifetime", "ca-basic-constraints", "ca-key-usage", "ca-key-matches", "ca-signs-with")


@pytest.fixture(scope="module")
def contexts(lab: Lab, ca_cert: x509.Certificate) -> dict[str, dict[str, Any]]:
    return {"ca-lifetime": {"cert": ca_cert}, "ca-basic-constraints": {"cert": ca_cert},
            "ca-key-usage": {"cert": ca_cert}, "ca-key-matches": {"lab": lab}, "ca-signs-with": {}}


test_garbage_gets_a_sentence_never_a_traceback, test_the_placeholder_is_not_answered_yet = garbage_tests(
    IDS[:-1], "contexts", judge=check)
# ca-signs-with is a typed quiz question: its feedback on garbage names the choices instead of "Not yet."
test_quiz_garbage_gets_a_sentence, test_quiz_placeholder_is_not_answered_yet = garbage_tests(
    IDS[-1:], "contexts", judge=check, opening=None)


def test_the_exercises_belong_to_notebook_02(contexts: dict[str, dict[str, Any]]) -> None:
    assert set(contexts) == set(IDS)
    for exercise in IDS:
        assert EXERCISES[exercise].notebook == "02_the_ca.ipynb"


def test_fingerprints_left_as_placeholders_are_not_an_attempt(lab: Lab) -> None:
    for answer in ((..., ...), ("ab" * 32, ...), (None, "ab" * 32)):
        feedback = check("ca-key-matches", answer, lab=lab)
        assert not feedback.correct and not feedback.answered


@pytest.mark.parametrize("notebook", ["02_the_ca.ipynb", "solutions/02_the_ca_solutions.ipynb"])
def test_the_notebooks_fingerprint_helper_says_pass_the_public_key(notebook: str, lab: Lab,
                                                                    ca_cert: x509.Certificate) -> None:
    """fingerprint(ca_cert) and fingerprint(ca_key), the natural wrong tries of exercise 4, used to end in a raw
    traceback inside the helper; the helper now type-checks and says what to pass."""
    import json
    from pathlib import Path

    cells = json.loads((Path(__file__).parent.parent / "notebooks" / notebook).read_text())["cells"]
    source = next("".join(c["source"]) for c in cells
                  if c["cell_type"] == "code" and "def fingerprint" in "".join(c["source"]))
    namespace: dict[str, Any] = {"lab": lab, "CA_KEY": CA_KEY}
    exec(compile(source, notebook, "exec"), namespace)   # the cell as the notebook runs it
    helper, ca_key = namespace["fingerprint"], namespace["ca_key"]
    assert helper(ca_cert.public_key()) == helper(ca_key.public_key()) == fingerprint(ca_cert.public_key())
    for wrong in (ca_cert, ca_key, "ca.crt"):
        with pytest.raises(TypeError, match=r"pass its \.public_key\(\)"):
            helper(wrong)
