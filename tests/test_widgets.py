"""Widget callbacks, in process: a click makes the files, updates the state and the graph.

ipywidgets' ``Button.click()`` fires the callbacks without a kernel or a browser; the browser test
(tests/test_browser.py) checks the same panel renders and responds in a real JupyterLab.
"""

from __future__ import annotations

import shutil
from html import unescape
from pathlib import Path

import pytest

pytest.importorskip("ipywidgets", reason="the lab extra is not installed (pip install -e '.[lab]')")

from mqtt_pki_lab import diagram as L
from mqtt_pki_lab.errors import LabError
from mqtt_pki_lab.exercises import QUESTIONS, check, check_diagnosis
from mqtt_pki_lab.steps import StepResult
from mqtt_pki_lab.widgets import BreakItPanel, Quiz, StepPanel, svg_html


def test_a_click_makes_the_file_updates_state_and_graph(tmp_path: Path) -> None:
    panel = StepPanel(tmp_path / "pki", steps=["ca-key", "ca-cert"])
    assert list(panel.buttons) == ["ca-key", "ca-cert"]
    assert not panel.buttons["ca-key"].disabled and panel.buttons["ca-cert"].disabled
    before = panel.graph_view.value
    panel.buttons["ca-key"].click()
    assert isinstance(panel.last, StepResult)
    assert (tmp_path / "pki" / "ca" / "ca.key").stat().st_mode & 0o777 == 0o600
    assert panel.buttons["ca-key"].button_style == "success" and not panel.buttons["ca-cert"].disabled
    assert panel.graph_view.value != before and panel.graph_view.value.startswith("<svg style=\"max-width:100%")
    assert "ca/ca.key" in panel.output.value and "SECRET" in panel.output.value
    assert "PRIVATE KEY" not in panel.output.value


def test_inputs_flow_into_the_files(tmp_path: Path) -> None:
    panel = StepPanel(tmp_path / "pki")
    panel.key_type.value = "ed25519"
    panel.server_names.value = "mqtt.example.com, 192.0.2.10"
    panel.client_name.value = "sensor-7"
    panel.days.value = 30
    results = panel.run_all()
    assert [r.step.number for r in results] == list(range(1, 10))
    text = (tmp_path / "pki" / "broker" / "server.csr").read_text()
    from mqtt_pki_lab.pem import load_certificate

    server = load_certificate(tmp_path / "pki" / "broker" / "server.crt")
    assert "mqtt.example.com" in server.subject.rfc4514_string() and text
    client = load_certificate(tmp_path / "pki" / "client" / "client.crt")
    assert "CN=sensor-7" in client.subject.rfc4514_string()
    assert (client.not_valid_after_utc - client.not_valid_before_utc).days <= 31
    assert panel.progress.value == panel.progress.max == 9
    assert panel.run_rest.disabled and not panel.verify_button.disabled


def test_bad_input_becomes_a_message_not_an_exception(tmp_path: Path) -> None:
    panel = StepPanel(tmp_path / "pki")
    panel.server_names.value = "bad name!"
    panel.buttons["ca-key"].click()
    assert isinstance(panel.last, LabError)
    assert "not a valid host name" in panel.output.value
    assert not (tmp_path / "pki" / "ca" / "ca.key").exists()
    assert not panel.buttons["ca-key"].disabled  # usable again after the error


def test_verify_and_handshake_buttons_colour_the_graph(lab_copy: Path) -> None:
    panel = StepPanel(lab_copy)
    assert panel.run_rest.disabled
    panel.verify_button.click()
    assert panel.last.ok
    assert "#1b7f3b" in panel.graph_view.value  # the green of a verified file / passed handshake
    panel.buttons["handshake"].click()
    assert panel.last.ok and panel.proof.ok
    (lab_copy / "client" / "ca.crt").write_bytes((lab_copy / "broker" / "server.crt").read_bytes())
    panel.verify()
    assert not panel.last.ok and "#b3261e" in panel.graph_view.value  # red: failed


def test_break_it_panel_shows_raw_errors_and_reveals_only_after_an_answer(built_lab: Path, tmp_path: Path) -> None:
    import re

    from mqtt_pki_lab.mysteries import TRIES_BEFORE_REVEAL, Evidence, Reveal

    panel = BreakItPanel(built_lab, tmp_path / "exercises", seed=3, mosquitto=False)
    assert panel.check_answer(5).message == "Break a copy first, then diagnose it."
    evidence = panel.break_copy()  # a random breakage from the whole catalogue
    assert isinstance(evidence, Evidence) and panel.scenario is not None
    scenario = panel.scenario
    shown = panel.output.value
    for secret in (scenario.id, scenario.title, scenario.breaks):
        assert secret not in shown
    assert not re.search(r"arrow\s*\d", shown, re.IGNORECASE) and "Diagnosis" not in shown
    assert "openssl verify" in shown and not panel.check_button.disabled
    assert list(panel.file.options) == list(evidence.files)
    panel.file.value = "ca/ca.key"
    panel.inspect_button.click()
    assert "SECRET" in panel.inspect_view.value and "PRIVATE KEY" not in panel.inspect_view.value
    wrong = [a for a in range(1, 11) if a != scenario.expected.arrow]
    panel.answer.value = wrong[0]
    panel.check_button.click()
    assert not panel.feedback.correct and "Hint" in panel.feedback_view.value
    assert "What happened" not in panel.feedback_view.value
    for arrow in wrong[1:TRIES_BEFORE_REVEAL]:
        panel.check_answer(arrow)
    assert isinstance(panel.feedback, Reveal) and scenario.expected.file in panel.feedback_view.value
    assert (tmp_path / "exercises" / "broken-1").is_dir()

    panel.choice.value = 1  # mystery 1 of notebook 07
    panel.break_button.click()
    assert (tmp_path / "exercises" / "broken-2").is_dir() and panel.scenario.id == "client-expired"
    panel.show_button.click()
    assert isinstance(panel.feedback, Reveal) and not panel.feedback.correct and "verify says" in panel.feedback.message
    panel.break_copy("client-trusts-wrong-ca")
    assert panel.check_answer(9).correct and "client/ca.crt" in panel.feedback_view.value
    assert panel.inspect("nope/file").startswith("No file")


def test_quiz_widget_and_every_question_has_its_answers_among_choices() -> None:
    for question in QUESTIONS.values():
        assert question.answers <= set(question.choices), question.id
        assert check(question.id, sorted(question.answers)).correct
        wrong = next(c for c in question.choices if c not in question.answers)
        feedback = check(question.id, wrong)
        assert not feedback.correct and feedback.message.startswith("Not quite. Hint:")
    quiz = Quiz("ca-signs-with")
    quiz.choices.value = "ca.crt"
    quiz.button.click()
    assert not quiz.feedback.correct
    quiz.choices.value = "ca.key"
    quiz.button.click()
    assert quiz.feedback.correct and "Right" in quiz.view.value


@pytest.mark.parametrize("question_id", sorted(QUESTIONS))
def test_every_question_is_asked_and_has_a_hint_for_each_wrong_choice(question_id: str) -> None:
    from mqtt_pki_lab.course import NOTEBOOKS
    from mqtt_pki_lab.exercises import EXERCISES

    question = QUESTIONS[question_id]
    assert question.notebook in {name for name, _ in NOTEBOOKS} and EXERCISES[question_id].notebook == question.notebook
    assert check(question_id, sorted(question.answers)).correct
    assert set(question.wrong) == {c.lower() for c in question.choices} - {a.lower() for a in question.answers}
    for choice, hint in question.wrong.items():
        assert check(question_id, choice).message == f"Not quite. Hint: {hint}"


def test_answers_that_are_not_choices_get_guidance_not_errors() -> None:
    assert "not one of the choices" in check("ca-signs-with", "my.key").message
    assert "Not answered yet" in check("ca-signs-with", ...).message
    assert "your answer is None" in check("ca-signs-with", None).message
    assert "No answer given" in check("ca-signs-with", []).message
    assert "There is no exercise 'nope'" in check("nope", "x").message
    assert "number of an arrow" in check_diagnosis("client-expired", "eleven").message


def test_svg_html_strips_the_prolog() -> None:
    assert svg_html('<?xml version="1.0"?>\n<!DOCTYPE svg>\n<svg width="1"></svg>') == \
        '<svg style="max-width:100%;height:auto" width="1"></svg>'


def test_layout_files_all_appear_in_the_panel_graph(tmp_path: Path) -> None:
    panel = StepPanel(tmp_path / "pki")
    for file in L.ALL_FILES:
        assert file.name in panel.graph_view.value


def test_handshake_button_proves_every_client_and_the_graph_draws_them(lab_copy: Path) -> None:
    from mqtt_pki_lab.steps import Lab

    Lab(lab_copy).add_clients(["sensor-1", "sensor-2"])
    panel = StepPanel(lab_copy)
    panel.buttons["handshake"].click()
    results = panel.last
    assert [r.role.folder for r in results] == ["client", "clients/sensor-1", "clients/sensor-2"]
    assert all(isinstance(r, StepResult) and r.ok and r.detail.ok for r in results)
    graph = panel.graph()
    assert [e.client.folder for e in graph.handshakes] == [r.role.folder for r in results]
    assert "MQTT Client sensor-2" in unescape(panel.graph_view.value)  # dot writes - as &#45;
    assert "client &#x27;sensor-1&#x27;" in panel.output.value
    # An interrupted add-client (a key and nothing else): "run the remaining arrows" finishes it.
    unfinished = L.client_role("sensor-3")
    unfinished.file("key").path(lab_copy).parent.mkdir(parents=True)
    shutil.copy(lab_copy / "client" / "client.key", unfinished.file("key").path(lab_copy))
    panel.refresh()
    assert not panel.run_rest.disabled
    done = panel.run_all()
    assert [(r.step.number, r.role) for r in done] == [(n, unfinished) for n in (7, 8, 9)]
    assert panel.run_rest.disabled and all(unfinished.file(s).path(lab_copy).is_file() for s in unfinished.slots)
