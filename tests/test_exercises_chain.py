"""The exercises of notebook 11 (a longer chain): right answers pass, each targeted hint is reachable, garbage gets
a sentence, never a traceback, and a dict still holding ``...`` is "not answered yet"."""

from __future__ import annotations

from pathlib import Path

import pytest
from exercise_helpers import check, garbage_tests, targeted

import mqtt_pki_lab.exercises.chain  # noqa: F401  (registers the exercises)
from mqtt_pki_lab import mysteries as M
from mqtt_pki_lab.exercises import EXERCISES
from mqtt_pki_lab.exercises.chain import NOTEBOOK, kind_of
from mqtt_pki_lab.pem import load_certificates

IDS = ("chain-pathlen", "chain-order", "chain-files", "chain-mystery-missing", "chain-mystery-trust")

test_garbage_gets_a_sentence, test_the_placeholder_is_not_answered = garbage_tests(IDS)


def test_they_belong_to_notebook_11() -> None:
    assert NOTEBOOK == "11_a_longer_chain.ipynb"
    assert {EXERCISES[i].notebook for i in IDS} == {NOTEBOOK}


@pytest.mark.parametrize("exercise_id", ["chain-pathlen", "chain-files"])
def test_a_dict_that_still_holds_the_placeholder_is_not_answered(exercise_id: str) -> None:
    answer = {"root": ..., "intermediate": ...} if exercise_id == "chain-pathlen" else \
        {"client.crt": ..., "ca.crt": ["root"]}
    verdict = check(exercise_id, answer)
    assert not verdict.correct and not verdict.answered and "Not answered yet" in verdict.message


@pytest.mark.parametrize("answer", [{"root": 1, "intermediate": 0}, {"Root CA": 1, "Intermediate": 0}, (1, 0), [1, 0]])
def test_the_two_limits(answer: object) -> None:
    verdict = check("chain-pathlen", answer)
    assert verdict.correct and verdict.message.startswith("Right. The root 1")


def test_every_pathlen_hint_is_earned() -> None:
    for answer, says in (((0, 0), "no CA may stand below"), ((2, 0), "2 works"), ((1, 1), "with 1"),
                         ((1, None), "no limit"), ((-1, 0), "0 or more"), ("1 and 0", "two whole numbers"),
                         ((True, 0), "two whole numbers"), ({"root": 1}, "two whole numbers")):
        targeted("chain-pathlen", answer, says=says)


def test_the_chain_the_broker_presents(chain_lab_path: Path) -> None:
    right = ("leaf, intermediate", ["leaf", "intermediate"], ["localhost", "MQTT Lab Intermediate CA"],
             ["CN=localhost,O=mqtt-pki-lab", "CN=MQTT Lab Intermediate CA,O=mqtt-pki-lab"], "server.crt then "
             "intermediate.crt", load_certificates(chain_lab_path / "broker/server.crt"))
    for answer in right:
        assert check("chain-order", answer).correct, answer
    for answer, says in ((["intermediate", "leaf"], "MUST come first"), (["leaf", "intermediate", "root"], "anchor"),
                         (["leaf"], "count the certificates"), (["intermediate"], "missing from your list"),
                         (["client", "intermediate"], "client's certificate"), (["leaf", "leaf"], "once"),
                         (["leaf", "server", "intermediate"], "once"), ("", "empty"),
                         (["leaf", "banana"], "does not name"), (7, "give a list")):
        targeted("chain-order", answer, says=says)


def test_kind_of_reads_words_and_certificates(chain_lab_path: Path) -> None:
    assert [kind_of(c) for c in load_certificates(chain_lab_path / "broker/server.crt")] == ["leaf", "intermediate"]
    assert [kind_of(c) for c in load_certificates(chain_lab_path / "ca/ca.crt")] == ["root"]
    assert (kind_of("ca.crt"), kind_of("MQTT Lab Root CA"), kind_of("client.crt"), kind_of(3)) == \
        ("root", "root", "client", None)


def test_which_file_holds_what() -> None:
    for answer in ({"client.crt": ["leaf", "intermediate"], "ca.crt": ["root"]},
                   {"clients/sensor-9/client.crt": "client, intermediate", "ca.crt": "root"}):
        assert check("chain-files", answer).correct, answer
    good = ["leaf", "intermediate"]
    for answer, says in (({"client.crt": good, "ca.crt": ["intermediate"]}, "signed itself"),
                         ({"client.crt": good, "ca.crt": ["root", "intermediate"]}, "does not belong there"),
                         ({"client.crt": good, "ca.crt": ["leaf", "root"]}, "ca.crt holds CAs"),
                         ({"client.crt": ["leaf", "intermediate", "root"], "ca.crt": []}, "empty"),
                         ({"client.crt": ["leaf", "intermediate", "root"], "ca.crt": ["root"]}, "need not travel"),
                         ({"client.crt": ["leaf"], "ca.crt": ["root"]}, "What must follow the leaf"),
                         ({"client.crt": ["intermediate", "leaf"], "ca.crt": ["root"]}, "comes first"),
                         ({"client.crt": ["intermediate"], "ca.crt": ["root"]}, "each CA certificate"),
                         ({"client.crt": good, "ca.crt": ["intermediate", "intermediate"]}, "already its own"),
                         ({"client.crt": good}, "two files"), (["leaf"], "two files")):
        targeted("chain-files", answer, says=says)
    # The hint for an intermediate alone in ca.crt must not tell mystery 2 (notebook 11's later exercise) ahead.
    early = check("chain-files", {"client.crt": good, "ca.crt": ["intermediate"]}).message
    assert not any(words in early for words in ("issuer certificate", "mosquitto", "openssl", "PARTIAL")), early


def test_mystery_1_wants_arrow_5() -> None:
    assert check("chain-mystery-missing", 5).correct and check("chain-mystery-missing", "arrow 5").correct
    story = check("chain-mystery-missing", 5).message
    assert "intermediate" in story and "unable to get local issuer certificate" in story
    for step, says in ((8, "client.crt is fine"), (9, "root alone"), (2, "depth 0"), (3, "server.key"),
                       (4, "server.csr"), (13, "intermediate's key"), (14, "intermediate's CSR"),
                       (15, "pathLen 0"), (10, "no file"), (16, "which side refused")):
        hint = check("chain-mystery-missing", step).message
        assert hint.startswith("Not yet. Hint: ") and says in hint, (step, hint)
        assert "arrow 5" not in hint and "step 5" not in hint, hint
    assert "13-15" in check("chain-mystery-missing", "twenty").message
    assert "11-18" not in check("chain-mystery-missing", "twenty").message  # the exercise asks 1-10 or 13-15
    assert "the intermediate CA signing server.csr" in story and "mqtt-pki-lab break DIR server-without" in story
    shown = check("chain-mystery-missing", "show me")
    assert not shown.correct and shown.message.startswith("The answer: Arrow 5")


def test_every_listed_mystery_1_hint_is_reachable() -> None:
    listed = set(EXERCISES["chain-mystery-missing"].hints)
    earned = {check("chain-mystery-missing", n).message.removeprefix("Not yet. Hint: ") for n in range(1, 19)
              if n != 5}
    assert listed <= earned | {M.NO_FILE_HINT}
    assert M.NO_FILE_HINT in listed


def test_mystery_2_wants_the_brokers_ca_crt() -> None:
    for answer in ("broker/ca.crt", " ./Broker/CA.crt "):
        assert check("chain-mystery-trust", answer).correct, answer
    story = check("chain-mystery-trust", "broker/ca.crt").message
    assert "PARTIAL_CHAIN" in story and "unable to get issuer certificate" in story
    assert "Python 3.11's default context" in story and "mqtt-pki-lab break DIR intermediate-in-broker-trust" in story
    for answer, says in (("client/client.crt", "half of the mistake"), ("intermediate/intermediate.crt", "good "
                         "certificate"), ("ca/ca.crt", "Compare the broker's copy"),
                         ("client/ca.crt", "Compare the broker's copy"), ("broker/server.crt", "accepted the broker"),
                         ("broker/acl", "accepted the broker"), ("client/client.key", "wrong key"),
                         ("nowhere/file", "not a file of the copy"), (3, "as text")):
        targeted("chain-mystery-trust", answer, says=says)
    shown = check("chain-mystery-trust", "show me")
    assert not shown.correct and shown.message.startswith("The answer: broker/ca.crt")


@pytest.fixture(scope="module")
def chain_lab_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mqtt_pki_lab.steps import BuildOptions, Lab

    root = tmp_path_factory.mktemp("chain") / "pki"
    Lab(root, BuildOptions(intermediate=True)).build_all()
    return root
