"""Break-it in student mode: the mysteries show raw errors only, name the arrow only after an answer,
earn every targeted hint with the wrong answer it is written for, and never raise on garbage."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
from conftest import REPO

from mqtt_pki_lab import diagram as L
from mqtt_pki_lab import mysteries as M
from mqtt_pki_lab.breakit import SCENARIOS, break_lab, get_scenario, raw_errors
from mqtt_pki_lab.exercises import EXERCISES, Feedback, check_diagnosis
from mqtt_pki_lab.exercises import breakit as _registers_the_exercises  # noqa: F401
from mqtt_pki_lab.mosquitto import find_mosquitto
from mqtt_pki_lab.verify import verify_lab

NUMBERS = [m.number for m in M.MYSTERIES]
GARBAGE = [None, "", "abc", 99, [], -1, 3.5, object(), True, "11", {"arrow": 5}, b"5", float("nan")]


@pytest.fixture(scope="module")
def broken(built_lab: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """Every mystery's broken copy of the session's lab, made once for this module."""
    folder = tmp_path_factory.mktemp("mysteries")
    return {m.number: break_lab(built_lab, m.scenario, folder / f"mystery-{m.number}") for m in M.MYSTERIES}


@pytest.fixture(scope="module")
def evidence(broken: dict[int, Path]) -> dict[int, M.Evidence]:
    return {n: M.gather_evidence(folder) for n, folder in broken.items()}


def test_at_least_eight_mysteries_each_from_a_lesson_and_numbered_in_order() -> None:
    assert len(M.MYSTERIES) >= 8 and list(range(1, len(NUMBERS) + 1)) == NUMBERS
    assert len({m.scenario for m in M.MYSTERIES}) == len(M.MYSTERIES)
    lessons = {"01_foundations.ipynb", "02_the_ca.ipynb", "03_broker_certificate.ipynb",
               "04_client_certificate.ipynb", "05_hand_out_and_prove.ipynb"}
    assert {m.lesson for m in M.MYSTERIES} == lessons, "every lesson before the MQTT one has a mystery"
    weak = M.MYSTERY_BY_SCENARIO["weak-rsa-key"]
    assert "security level 2" in weak.why and "2048" in weak.why


@pytest.mark.parametrize("number", NUMBERS)
def test_one_arrow_per_mystery_the_same_everywhere(number: int, broken: dict[int, Path]) -> None:
    mystery = M.get_mystery(number)
    expected = get_scenario(mystery.scenario).expected
    diagnosis = verify_lab(broken[number]).diagnosis
    assert diagnosis is not None
    assert mystery.arrow == expected.arrow == diagnosis.arrow
    assert mystery.file == expected.file == diagnosis.file
    for text in (mystery.happened, mystery.why, mystery.hint, *mystery.hints.values()):
        assert not re.search(rf"arrow {mystery.arrow}\b", text), text
    assert mystery.arrow not in mystery.hints, "no hint for the right answer"


@pytest.mark.parametrize("number", NUMBERS)
def test_the_evidence_is_raw_real_and_gives_nothing_away(number: int, broken: dict[int, Path],
                                                         evidence: dict[int, M.Evidence]) -> None:
    mystery, shown = M.get_mystery(number), evidence[number]
    scenario = get_scenario(mystery.scenario)
    diagnosis = verify_lab(broken[number]).diagnosis
    assert diagnosis is not None
    text = (str(shown) + shown._repr_html_() + repr(M.Case(broken[number], scenario)) + shown.details()
            + shown.details()._repr_html_())
    for secret in (scenario.id, scenario.title, scenario.breaks, str(diagnosis), diagnosis.problem,
                   diagnosis.fix, mystery.happened, mystery.why, mystery.fix):
        assert secret not in text, secret
    assert not re.search(r"arrow\s*#?\d", text, re.IGNORECASE), "no arrow number before the answer"
    assert "PRIVATE KEY" not in text
    # Real errors: every mystery fails somewhere, in OpenSSL's own words.
    raw = shown.raw
    assert not raw.handshake_ok
    said = [side for side in (raw.client, raw.broker) if side.words]
    assert said and all(side.role in ("refused", "was told", "cannot start") for side in said)
    assert len(raw.verify_runs) == 2
    if raw.verify_runs[0].output is not None:
        assert all(run.command.startswith("openssl verify -x509_strict -purpose ") for run in raw.verify_runs)
        assert all(run.output and run.exit_code is not None for run in raw.verify_runs)
    # Short: one line per tool and side, the whole outputs on demand.
    assert len(str(shown).splitlines()) <= 9, str(shown)
    assert all(run.command in shown.details() for run in raw.verify_runs)
    assert "openssl verify" in str(shown) and ".details()" in str(shown)
    run = shown.mosquitto
    assert run is not None and run.command.startswith("mosquitto_pub -h localhost -p PORT --cafile client/ca.crt")
    kind = M.mosquitto_failure_kind(raw)
    if find_mosquitto() is not None:
        assert run.real and run.broker_log, "mosquitto ran on the broken files and logged the attempt"
        assert run.output in M.MOSQUITTO_PUB_WORDS[kind], "the documented mapping agrees with a real run"
    else:
        assert not run.real and run.output == M.MOSQUITTO_PUB_WORDS[kind][0]


def test_a_working_lab_shows_no_error(built_lab: Path) -> None:
    raw = raw_errors(built_lab)
    assert raw.handshake_ok and str(raw.client) == "client: no error"
    if raw.verify_runs[0].output is not None:
        assert [r.exit_code for r in raw.verify_runs] == [0, 0]
        assert all(r.output.endswith(": OK") for r in raw.verify_runs)  # type: ignore[union-attr]
    run = M.mosquitto_run(built_lab, raw)
    assert run.output == "" and "published" in str(run)


def test_side_errors_name_the_side_that_could_not_start(broken: dict[int, Path]) -> None:
    raw = raw_errors(broken[4])  # key-mismatch: the client fails on its own files
    assert raw.client.role == "cannot start" and "KEY_VALUES_MISMATCH" in str(raw.client.words)
    assert raw.broker.words is None and "never sent a byte" in raw.broker.role
    raw = raw_errors(broken[6])  # weak key: the broker fails on its own files
    assert raw.broker.role == "cannot start" and "ee key too small" in str(raw.broker.words)
    assert "_ssl.c" not in str(raw.broker.words)


@pytest.mark.parametrize("number", NUMBERS)
def test_the_right_arrow_reveals_verify_s_diagnosis(number: int, broken: dict[int, Path]) -> None:
    mystery = M.get_mystery(number)
    verdict = M.judge_arrow(mystery.scenario, mystery.arrow, folder=broken[number])
    assert verdict.correct and isinstance(verdict, M.Reveal)
    diagnosis = verify_lab(broken[number]).diagnosis
    for part in (f"Arrow {mystery.arrow} ", mystery.file, mystery.happened, mystery.why, mystery.fix,
                 f"verify says: {diagnosis}"):
        assert part in verdict.message, part
    assert "<p" in verdict._repr_html_()
    assert M.judge_arrow(mystery.scenario, f"arrow {mystery.arrow}").correct
    assert M.judge_arrow(mystery.scenario, float(mystery.arrow)).correct


@pytest.mark.parametrize("number", NUMBERS)
def test_every_targeted_hint_is_earned_by_its_wrong_arrow(number: int, monkeypatch: pytest.MonkeyPatch) -> None:
    mystery = M.get_mystery(number)
    registered = EXERCISES[mystery.exercise]
    earned = set()
    for arrow in L.ARROW_TITLES:
        if arrow == mystery.arrow:
            continue
        monkeypatch.setattr(M, "_TRIES", {})  # a first try each time: a hint, not yet the answer
        verdict = registered.judge(arrow)
        assert isinstance(verdict, Feedback) and not verdict.correct
        assert verdict.message == f"Not arrow {arrow}. Hint: {mystery.hint_for(arrow)}"
        assert not re.search(rf"\barrow {mystery.arrow}\b", verdict.message.split("Hint:")[1], re.IGNORECASE)
        assert mystery.file not in verdict.message or arrow in mystery.hints
        earned.add(mystery.hint_for(arrow))
    assert set(registered.hints) == earned
    assert set(mystery.hints.values()) <= earned, "every hint written for an arrow is reachable"
    assert M.NO_FILE_HINT in earned, "arrow 10 writes nothing, and says so"


def test_wrong_tries_then_the_answer_and_show_me() -> None:
    mystery = M.get_mystery(3)
    first = M.judge_arrow(mystery.scenario, 4, tries=0)
    assert not first.correct and not isinstance(first, M.Reveal) and "Here is" not in first.message
    third = M.judge_arrow(mystery.scenario, 4, tries=M.TRIES_BEFORE_REVEAL - 1)
    assert isinstance(third, M.Reveal) and not third.correct and mystery.fix in third.message
    shown = M.judge_arrow(mystery.scenario, "Show me")
    assert isinstance(shown, M.Reveal) and not shown.correct and mystery.happened in shown.message


def test_the_exercise_counts_tries_in_the_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(M, "_TRIES", {})
    judge = EXERCISES["mystery-2"].judge
    assert not isinstance(judge(5), M.Reveal) and not isinstance(judge("abc"), M.Reveal)
    assert M._TRIES == {2: 1}, "garbage costs no try"
    judge(8)
    assert isinstance(judge(1), M.Reveal)


@pytest.mark.parametrize("exercise_id", ["mystery-1", "mystery-4-file", "mystery-6-key-type"])
@pytest.mark.parametrize("answer", GARBAGE, ids=repr)
def test_garbage_gets_a_sentence_never_a_traceback(exercise_id: str, answer: object) -> None:
    verdict = EXERCISES[exercise_id].check(answer)
    assert isinstance(verdict, Feedback) and not verdict.correct
    assert verdict.message.endswith((".", "?")) and "Traceback" not in verdict.message
    assert "raised" not in verdict.message, "the judge handles garbage itself"


def test_the_file_at_fault_exercise() -> None:
    asked = [m.number for m in M.MYSTERIES if m.asks_file]
    assert asked and {f"mystery-{n}-file" for n in asked} == {e for e in EXERCISES if e.endswith("-file")}
    check = {n: EXERCISES[f"mystery-{n}-file"].check for n in asked}
    assert check[2]("client/ca.crt").correct and check[2]("pki/client/ca.crt").correct
    bare = check[4]("client.key")  # the notebook asks for folder/name, and says so
    assert not bare.correct and bare.message == f"Not yet. Hint: {M.BARE_NAME_HINT}"
    assert "folder/name" in check[2]("server.crt").message
    assert "which copy" in check[2]("ca.crt").message
    assert "right arrow, other file" in check[2]("broker/ca.crt").message
    assert M.get_mystery(4).hints[8] in check[4]("client/client.crt").message
    assert "not a file of the lab" in check[4]("server.pem").message
    assert M.judge_file(3, "broker/server.crt").correct  # type: ignore[union-attr]
    assert M.judge_file(3, "broker/server.csr") == M.get_mystery(3).hints[4]
    for number in asked:
        registered = EXERCISES[f"mystery-{number}-file"]
        names = M.lab_file_names()
        earned = {M.judge_file(number, name) for name in (*names, *(n.split("/")[-1] for n in names))}
        assert set(registered.hints) == {h for h in earned if isinstance(h, str)}
        assert registered.check(M.get_mystery(number).file).correct


@pytest.mark.parametrize(("answer", "name"), [
    ("ec-p256", "ec-p256"), ("P-256", "ec-p256"), ("EC P-256", "ec-p256"), ("ecdsa p256", "ec-p256"),
    ("prime256v1", "ec-p256"), ("secp256r1", "ec-p256"), ("NIST P-256", "ec-p256"), ("P-384", "ec-p384"),
    ("secp384r1", "ec-p384"), ("RSA 2048", "rsa-2048"), ("rsa:3072", "rsa-3072"), ("4096-bit RSA", "rsa-4096"),
    ("Ed25519", "ed25519"), ("ed-25519", "ed25519"), ("ED 25519", "ed25519")])
def test_the_key_type_exercise_takes_the_common_spellings(answer: str, name: str) -> None:
    from mqtt_pki_lab.keys import KEY_TYPES

    verdict = EXERCISES["mystery-6-key-type"].check(answer)
    assert verdict.correct and name in verdict.message and KEY_TYPES[name].about in verdict.message


def test_the_key_type_exercise_hints() -> None:
    from mqtt_pki_lab.exercises.breakit import KEY_TYPE_MISTAKES

    check = EXERCISES["mystery-6-key-type"].check
    assert "security level 2" in check("rsa-1024").message and "1024" in check("RSA 1024 bits").message
    assert "224 bits" in check("P-192").message and "224 bits" in check("prime192v1").message
    assert "which curve" in check("EC").message and "which curve" in check("ECDSA").message
    assert "how many bits" in check("RSA").message
    assert "key exchange" in check("X25519").message and "ed25519" in check("curve25519").message
    assert "2048, 3072 or 4096" in check("rsa-4097").message
    assert "not a key type of the lab" in check("P-224").message  # allowed by OpenSSL, not made by the lab
    listed = EXERCISES["mystery-6-key-type"].hints
    assert set(listed) == {M.judge_key_type(a) for a in KEY_TYPE_MISTAKES}
    for answer in KEY_TYPE_MISTAKES:
        verdict = check(answer)
        assert not verdict.correct and verdict.message.removeprefix("Not yet. Hint: ") in listed, answer


def test_the_key_type_question_lists_the_lab_s_key_types() -> None:
    from mqtt_pki_lab.keys import KEY_TYPES

    for path in (REPO / "notebooks" / "07_break_it.ipynb",
                 REPO / "notebooks" / "solutions" / "07_break_it_solutions.ipynb"):
        cells = json.loads(path.read_text())["cells"]
        question = next("".join(c["source"]) for c in cells if "**key type**" in "".join(c["source"]))
        assert re.findall(r"`([a-z0-9-]+)`", question.split(" are ")[1].split(";")[0]) == list(KEY_TYPES)


def test_a_right_arrow_does_not_give_the_next_file_away(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(M, "_TRIES", {})
    two = M.get_mystery(2)
    assert two.asks_file and not two.file_first
    arrow = EXERCISES["mystery-2"].check(two.arrow)
    assert arrow.correct and not isinstance(arrow, M.Reveal)
    assert "client/" not in arrow.message and "broker/" not in arrow.message  # which copy: the next answer
    assert two.happened not in arrow.message and two.fix not in arrow.message
    file = EXERCISES["mystery-2-file"].check(two.file)  # then the whole story
    assert file.correct and isinstance(file, M.Reveal)
    for part in (two.file, two.happened, two.why, two.fix):
        assert part in file.message
    four = M.get_mystery(4)  # the odd one out is found first, then the arrow that made it
    assert four.asks_file and four.file_first
    file = EXERCISES["mystery-4-file"].check(four.file)
    assert file.correct and not re.search(rf"\barrow {four.arrow}\b", file.message, re.IGNORECASE)
    assert four.why not in file.message
    arrow = EXERCISES["mystery-4"].check(four.arrow)
    assert arrow.correct and isinstance(arrow, M.Reveal) and four.fix in arrow.message


def test_mystery_texts_keep_the_lessons_of_03_and_04() -> None:
    three = M.get_mystery(3)  # 03: the CA decides every name, it never copies a CSR's extensions blindly
    assert "-copy_extensions copy" not in three.why + three.fix
    assert "-extfile" in three.fix and "subjectAltName=DNS:localhost" in three.fix
    seven = M.get_mystery(7)  # 04: a private key that left its box has leaked
    assert "server.key" in seven.fix and "leaked" in seven.fix and "arrows 3-5" in seven.fix
    assert "matches client.crt" not in seven.hints[6] and "not the client's own key" in seven.hints[6]


def test_notebook_07_asks_the_file_where_the_mystery_says() -> None:
    cells = json.loads((REPO / "notebooks" / "07_break_it.ipynb").read_text())["cells"]
    calls = re.findall(r'course\.check\("(mystery-[\w-]+)"', "\n".join("".join(c["source"]) for c in cells))
    for mystery in M.MYSTERIES:
        if mystery.asks_file:
            first, second = ((f"{mystery.exercise}-file", mystery.exercise) if mystery.file_first
                             else (mystery.exercise, f"{mystery.exercise}-file"))
            assert calls.index(first) + 1 == calls.index(second), mystery.number


@pytest.mark.parametrize("scenario", [s.id for s in SCENARIOS])
def test_check_diagnosis_for_every_scenario_of_the_catalogue(scenario: str) -> None:
    expected = get_scenario(scenario).expected
    assert check_diagnosis(scenario, expected.arrow).correct
    for arrow in L.ARROW_TITLES:
        if arrow != expected.arrow:
            verdict = check_diagnosis(scenario, arrow)
            assert not verdict.correct and verdict.message.startswith(f"Not arrow {arrow}. Hint: ")
            assert not re.search(rf"\barrow {expected.arrow}\b", verdict.message.split("Hint:")[1], re.I)
    assert "number of an arrow" in check_diagnosis(scenario, "eleven").message


def test_the_hints_that_pointed_the_wrong_way_are_fixed() -> None:
    leaked = check_diagnosis("ca-key-leaked", 9).message
    assert "broker's box" not in leaked and "never be" in leaked  # the file is in broker/, the arrow is the CA's
    regenerated = check_diagnosis("ca-regenerated", 9).message
    assert "which side refused" not in regenerated and "new" in regenerated  # both sides refuse


def test_a_case_inspects_only_its_own_files(broken: dict[int, Path]) -> None:
    case = M.Case(broken[4], "key-mismatch", mosquitto=False)
    explained = case.inspect("client/client.key")
    assert "SECRET" in str(explained) and "PRIVATE KEY" not in str(explained)
    assert "fingerprint" in str(case.inspect("client/client.crt"))
    assert str(case.inspect("../pki/ca/ca.key")).startswith("No file")
    assert case.evidence.mosquitto is None
    assert not case.answer(8).correct and case.tries == 1
    assert not case.answer("abc").correct and case.tries == 1
    assert case.answer(6).correct and case.revealed


def _solution_answers(path: Path) -> list[tuple[str, object]]:
    """(exercise id, answer) for every checked exercise of a notebook whose answer is between the markers."""
    found = []
    for cell in json.loads(path.read_text())["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] != "code" or "### BEGIN SOLUTION" not in source:
            continue
        solution = source.split("### BEGIN SOLUTION")[1].split("### END SOLUTION")[0]
        values = {t.id: ast.literal_eval(n.value) for n in ast.parse(solution).body
                  if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
        for call in re.finditer(r"course\.check\(\"([\w-]+)\", (\w+)\)", source):
            found.append((call.group(1), values[call.group(2)]))
    return found


def test_notebook_07_and_its_solutions() -> None:
    student = REPO / "notebooks" / "07_break_it.ipynb"
    solutions = REPO / "notebooks" / "solutions" / "07_break_it_solutions.ipynb"
    answers = _solution_answers(solutions)
    asked = {f"mystery-{n}" for n in NUMBERS}
    assert asked <= {exercise_id for exercise_id, _ in answers}, "every mystery is asked"
    assert any(not isinstance(answer, int) for _, answer in answers), "one answer is not a number"
    for exercise_id, answer in answers:
        assert EXERCISES[exercise_id].judge(answer).correct, (exercise_id, answer)
    cells = json.loads(student.read_text())["cells"]
    for cell in cells:
        assert not cell.get("outputs") and cell.get("execution_count") is None
        assert "### BEGIN SOLUTION" not in "".join(cell["source"])
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    assert code.count(" = ...") == len(answers), "one placeholder per answer of the solutions"
    assert "course.setup(before=" in code and "BreakItPanel(" in code
