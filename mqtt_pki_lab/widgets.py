"""Widgets for the notebooks: a button per arrow of the diagram, the graph, verify, break-it, self-checks.

The widgets are thin. Every button calls one plain function of the API (``Lab.run``, ``verify_lab``,
``break_lab``, ``trust_graph``, ``exercises.check``) that the tests call too, and keeps what it got in
attributes (``last``, ``history``) so a test can click a button without a browser or a kernel::

    panel = StepPanel("pki", steps=["ca-key", "ca-cert"])
    panel.buttons["ca-key"].click()          # makes pki/ca/ca.key, redraws the graph
    panel.last                               # the StepResult of that click
    panel.buttons["handshake"].click()       # arrow 10: the handshake of every client with the broker

Errors never escape a callback (in JupyterLab they would vanish into the log console): a
:class:`~mqtt_pki_lab.errors.LabError` becomes a message in the panel that names the file and the problem.
Private keys are never shown: a result shows the file, SECRET or PUBLIC, and a fingerprint.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable
from html import escape
from pathlib import Path
from typing import Any

import ipywidgets as w

from .diagram import ARROW_TITLES, BUILD_STEPS, DIAGRAM, STEPS, Step
from .errors import LabError
from .exercises import QUESTIONS, Feedback, check
from .keys import KEY_TYPES
from .steps import BuildOptions, Lab, StepResult, get_step

_STYLE = {"done": "success", "ready": "info", "blocked": ""}
_SVG_START = re.compile(r"<svg[\s>]")


def svg_html(svg: str) -> str:
    """An SVG document made fit for an HTML widget: no XML prolog or DOCTYPE, and scaled to fit its width."""
    match = _SVG_START.search(svg)
    if not match:
        return svg
    return '<svg style="max-width:100%;height:auto"' + svg[match.start() + 4:]


def _shown(path: Path) -> str:
    """A folder as a student would name it: relative to the notebook's folder when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _error_html(error: Exception) -> str:
    return (f"<div style='border-left:5px solid #b3261e;padding:2px 8px'><b>Not done:</b> "
            f"{escape(str(error))}</div>")


def _names(text: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in text.replace(";", ",").split(",") if n.strip())


class StepPanel:
    """One button per arrow of the diagram, the inputs the arrows take, the result and the live graph.

    ``steps`` limits the panel to some arrows (ids or numbers), e.g. a notebook about the broker shows
    3, 4 and 5. A button is enabled when the files its arrow reads exist, and turns green once done.
    """

    def __init__(self, root: str | Path = "pki", *, steps: Iterable[str | int] | None = None,
                 options: BuildOptions | None = None, hostname: str = "localhost", graph: bool = True) -> None:
        self.root = Path(root)
        self.steps: list[Step] = [get_step(s) for s in steps] if steps is not None else list(STEPS)
        options = options or BuildOptions()
        self.hostname = hostname
        self.last: Any = None
        """What the last click produced: a StepResult (a list of them for the handshake of several clients, or
        for the remaining arrows), a VerifyReport, or the LabError it met."""
        self.history: list[Any] = []
        self.proof: Any = None
        """The latest handshake(s) or verify result, drawn on the graph."""

        self.key_type = w.Dropdown(options=list(KEY_TYPES), value=options.key_type, description="key type")
        self.server_names = w.Text(value=", ".join(options.server_names), description="broker names",
                                   placeholder="mqtt.example.com, 192.0.2.10")
        self.client_name = w.Text(value=options.client_name, description="client name")
        self.days = w.BoundedIntText(value=options.days, min=1, max=397, description="days")
        self.buttons: dict[str, w.Button] = {}
        for step in self.steps:
            button = w.Button(description=f"{step.number}. {step.title}", tooltip=step.why,
                              layout=w.Layout(width="auto"))
            button.on_click(self._on_step(step))
            self.buttons[step.id] = button
        self.run_rest = w.Button(description="run the remaining arrows", icon="forward",
                                 layout=w.Layout(width="auto"))
        self.run_rest.on_click(lambda _: self.run_all())
        self.verify_button = w.Button(description="verify: checks + handshake", icon="check",
                                      layout=w.Layout(width="auto"))
        self.verify_button.on_click(lambda _: self.verify())
        self.progress = w.IntProgress(min=0, max=1, value=0, description="working",
                                      layout=w.Layout(visibility="hidden"))
        self.status = w.HTML()
        self.output = w.HTML()
        self.graph_view = w.HTML() if graph else None
        self.widget = w.VBox([
            w.HTML(f"<b>Lab folder:</b> <code>{escape(_shown(self.root))}</code>"),
            w.HBox(self._inputs()),
            w.HBox(list(self.buttons.values()), layout=w.Layout(flex_flow="row wrap")),
            w.HBox([self.run_rest, self.verify_button, self.progress]),
            self.status, self.output, *([self.graph_view] if self.graph_view is not None else []),
        ])
        self.refresh()

    # -- inputs ------------------------------------------------------------------------------------------
    def _inputs(self) -> list[w.Widget]:
        ids = {s.id for s in self.steps}
        shown: list[w.Widget] = []
        if ids & {"ca-key", "server-key", "client-key"}:
            shown.append(self.key_type)
        if ids & {"server-csr", "handshake"}:
            shown.append(self.server_names)
        if "client-csr" in ids:
            shown.append(self.client_name)
        if ids & {"server-cert", "client-cert"}:
            shown.append(self.days)
        return shown

    def options(self) -> BuildOptions:
        """The options the inputs describe, checked (raises LabError on a bad input)."""
        return BuildOptions(key_type=self.key_type.value, server_names=_names(self.server_names.value),
                            client_name=self.client_name.value.strip(), days=int(self.days.value)).check()

    def lab(self) -> Lab:
        """The lab folder with the options of the inputs."""
        return Lab(self.root, self.options())

    # -- actions (what the buttons call) ------------------------------------------------------------------
    def _record(self, outcome: Any) -> Any:
        self.last = outcome
        self.history.append(outcome)
        return outcome

    def _on_step(self, step: Step) -> Callable[[w.Button], None]:
        return lambda _button: self.run_step(step.id)

    def run_step(self, step: str | int) -> StepResult | list[StepResult] | LabError:
        """Run one arrow (what its button does); show the result, redraw the graph.

        Arrows 1-9 make the diagram's files (:meth:`Lab.run`). Arrow 10 writes nothing: it runs the mutual-TLS
        handshake (:func:`mqtt_pki_lab.handshake.prove`) of each client of the lab with the broker; with one
        client the result is its StepResult (the HandshakeResult in ``detail``), with more a list of them.
        """
        target = get_step(step)
        slow = self.key_type.value.startswith("rsa-4096") and target.id.endswith("key")
        self._busy(1, f"step {target.number}: {target.title}" + (" (RSA 4096: a few seconds)" if slow else ""))
        try:
            if target.kind == "prove":
                result: StepResult | list[StepResult] | LabError = self.prove()
            else:
                result = self.lab().run(target.id)
                self.output.value = result._repr_html_()
        except LabError as error:
            result = error
            self.output.value = _error_html(error)
        finally:
            self._done()
        self.refresh()
        return self._record(result)

    def prove(self) -> StepResult | list[StepResult]:
        """Arrow 10: the handshake of every client's files with the broker's; drawn on the graph."""
        from .handshake import prove
        from .steps import discover_roles

        clients = discover_roles(self.root).clients if self.root.is_dir() else DIAGRAM.clients
        results = [prove(self.root, self._hostname(), client=c) for c in clients]
        self.output.value = "".join(
            (f"<div><b>{escape(r.role.label if r.role else 'the client')}</b></div>" if len(results) > 1 else "")
            + r._repr_html_() for r in results)
        self.proof = results[0].detail if len(results) == 1 else results
        return results[0] if len(results) == 1 else results

    def run_all(self) -> list[StepResult] | LabError:
        """Run every arrow (1-9) not done yet, in order, showing progress; stop at the first problem."""
        try:
            lab = self.lab()
        except LabError as error:
            self.output.value = _error_html(error)
            return self._record(error)
        state = lab.state()
        todo = [s for s in BUILD_STEPS if state.status(s) != "done"]
        # Further clients (clients/NAME/) an interrupted add-client left unfinished: their arrows 6-9.
        further = [b for b in state.roles.plan(BUILD_STEPS) if b.role not in DIAGRAM.all
                   and state.status_of(b) != "done"]
        results: list[StepResult] = []
        self._busy(max(1, len(todo) + len(further)), "running the remaining arrows")
        try:
            for step in todo:
                self.status.value = f"<i>step {step.number}: {escape(step.title)}…</i>"
                results.append(lab.run(step.id))
                self.progress.value += 1
            for bound in further:
                self.status.value = f"<i>step {bound.number}: {escape(bound.title)}…</i>"
                results.append(lab.run(bound.step, bound.role))
                self.progress.value += 1
        except LabError as error:
            self.output.value = _error_html(error)
            self._done()
            self.refresh()
            return self._record(error)
        self._done()
        self.output.value = "".join(r._repr_html_() for r in results) or "<i>every arrow was already done</i>"
        self.refresh()
        return self._record(results)

    def verify(self) -> Any:
        """Run ``verify_lab`` on the folder (checks + handshake) and draw its outcome on the graph."""
        from .verify import verify_lab

        try:
            report = verify_lab(self.root, hostname=self._hostname())
        except LabError as error:
            self.output.value = _error_html(error)
            return self._record(error)
        self.proof = report
        self.output.value = report._repr_html_()
        self.refresh()
        return self._record(report)

    def _hostname(self) -> str:
        names = _names(self.server_names.value)
        return names[0] if names else self.hostname

    # -- display --------------------------------------------------------------------------------------------
    def _busy(self, steps: int, text: str) -> None:
        self.progress.max, self.progress.value = steps, 0
        self.progress.layout.visibility = "visible"
        self.status.value = f"<i>{escape(text)}…</i>"
        for button in (*self.buttons.values(), self.run_rest, self.verify_button):
            button.disabled = True

    def _done(self) -> None:
        self.progress.value = self.progress.max
        self.progress.layout.visibility = "hidden"
        self.status.value = ""

    def refresh(self) -> None:
        """Enable each button whose inputs exist, colour the done ones, redraw the graph."""
        state = Lab(self.root).state() if self.root.is_dir() else None
        for step in self.steps:
            status = state.status(step) if state is not None else ("ready" if not step.reads else "blocked")
            button = self.buttons[step.id]
            button.disabled = status == "blocked"
            button.button_style = _STYLE[status]
            button.icon = "check" if status == "done" else ""
        self.run_rest.disabled = state is not None and state.complete
        self.verify_button.disabled = state is None or not state.complete
        if self.graph_view is not None:
            self.graph_view.value = svg_html(self.graph().svg())

    def graph(self) -> Any:
        """The trust-chain graph of the folder now, with the latest proof drawn on it."""
        from .graph import trust_graph

        return trust_graph(self.root, self.proof)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)


class BreakItPanel:
    """Break-it in student mode: a broken copy of the lab, what a user sees, "which arrow?", then the answer.

    Pick a mystery of notebook 07 or a random way from the whole catalogue; the panel breaks a copy of
    ``source`` in ``workdir`` (``broken-N``) and shows only the evidence
    (:class:`~mqtt_pki_lab.mysteries.Evidence`: each side's raw error, ``mosquitto_pub`` and mosquitto's
    log, ``openssl verify``). *inspect* explains one file. The answer, with verify's diagnosis, comes only
    after a right arrow, after :data:`~mqtt_pki_lab.mysteries.TRIES_BEFORE_REVEAL` wrong ones, or *show me*.
    Every button calls a function of :mod:`mqtt_pki_lab.mysteries` that the tests call too.
    """

    def __init__(self, source: str | Path, workdir: str | Path, *, seed: int | None = None,
                 mosquitto: bool = True, hostname: str = "localhost") -> None:
        from .breakit import SCENARIOS
        from .mysteries import MYSTERIES

        self.source, self.workdir = Path(source), Path(workdir)
        self.hostname = hostname
        self.mosquitto = mosquitto
        self.scenario: Any = None
        """The scenario behind the current copy: kept for the judge, never shown before the answer."""
        self.case: Any = None
        """The :class:`~mqtt_pki_lab.mysteries.Case` being diagnosed."""
        self.broken: Path | None = None
        self.feedback: Feedback | None = None
        self._random = random.Random(seed)
        self._scenarios = SCENARIOS
        self._mysteries = {m.number: m for m in MYSTERIES}
        self.choice = w.Dropdown(options=[("a random breakage (whole catalogue)", 0)]
                                 + [(f"mystery {m.number}", m.number) for m in MYSTERIES],
                                 value=0, description="break", layout=w.Layout(width="auto"))
        self.break_button = w.Button(description="break a copy", icon="bolt", layout=w.Layout(width="auto"))
        self.break_button.on_click(lambda _: self.break_copy())
        self.file = w.Dropdown(options=[], description="file", layout=w.Layout(width="auto"), disabled=True)
        self.inspect_button = w.Button(description="inspect", icon="search", disabled=True)
        self.inspect_button.on_click(lambda _: self.inspect())
        self.answer = w.Dropdown(options=[(f"{n}. {t}", n) for n, t in ARROW_TITLES.items()],
                                 description="arrow at fault", layout=w.Layout(width="auto"), disabled=True)
        self.check_button = w.Button(description="check my answer", disabled=True)
        self.check_button.on_click(lambda _: self.check_answer())
        self.show_button = w.Button(description="show me", disabled=True)
        self.show_button.on_click(lambda _: self.check_answer("show me"))
        self.output = w.HTML()
        self.inspect_view = w.HTML()
        self.feedback_view = w.HTML()
        self.widget = w.VBox([w.HBox([self.choice, self.break_button]), self.output,
                              w.HBox([self.file, self.inspect_button]), self.inspect_view,
                              w.HBox([self.answer, self.check_button, self.show_button]), self.feedback_view])

    def break_copy(self, which: str | int | None = None) -> Any:
        """Break a copy: ``which`` is a mystery number, a scenario id, or 0/None for a random one from the
        catalogue (default: the dropdown's choice). Shows the evidence; returns it (or the LabError)."""
        from .breakit import break_lab, get_scenario
        from .mysteries import Case

        chosen = self.choice.value if which is None else which
        try:
            if isinstance(chosen, int) and chosen in self._mysteries:
                self.scenario = get_scenario(self._mysteries[chosen].scenario)
            elif isinstance(chosen, str) and chosen:
                self.scenario = get_scenario(chosen)
            else:
                self.scenario = self._random.choice([s for s in self._scenarios if s.fits(self.source)])
            self.workdir.mkdir(parents=True, exist_ok=True)
            number = 1 + sum(1 for _ in self.workdir.glob("broken-*"))
            self.broken = break_lab(self.source, self.scenario, self.workdir / f"broken-{number}")
            self.case = Case(self.broken, self.scenario, hostname=self.hostname, mosquitto=self.mosquitto)
            evidence = self.case.evidence
        except LabError as error:
            self.output.value = _error_html(error)
            return error
        self.feedback = None
        self.feedback_view.value = self.inspect_view.value = ""
        self.output.value = (f"<p>Broke a copy in <code>{escape(_shown(self.broken))}</code>. Which side refused, "
                             "and what did it say? Inspect the files, then name the arrow at fault.</p>"
                             + evidence._repr_html_())
        self.file.options = list(evidence.files)
        for widget in (self.file, self.inspect_button, self.answer, self.check_button, self.show_button):
            widget.disabled = False
        return evidence

    def inspect(self, file: str | None = None) -> Any:
        """Explain one file of the broken copy (the dropdown's, or ``file``); a key is described only."""
        if self.case is None:
            self.inspect_view.value = "<i>Break a copy first.</i>"
            return None
        found = self.case.inspect(file if file is not None else str(self.file.value))
        self.inspect_view.value = found._repr_html_() if hasattr(found, "_repr_html_") else \
            f"<div>{escape(str(found))}</div>"
        return found

    def check_answer(self, arrow: Any = None) -> Feedback:
        """Judge the chosen arrow (or ``arrow``; ``"show me"`` shows the answer) for the current copy."""
        if self.case is None:
            self.feedback = Feedback(False, "Break a copy first, then diagnose it.")
        else:
            self.feedback = self.case.answer(arrow if arrow is not None else self.answer.value)
        self.feedback_view.value = self.feedback._repr_html_()
        return self.feedback

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)


class Quiz:
    """A self-check question: pick an answer, press check, get a verdict or a hint."""

    def __init__(self, question_id: str) -> None:
        self.question = QUESTIONS[question_id]
        many = len(self.question.answers) > 1
        if many:
            self.choices: w.Widget = w.SelectMultiple(options=self.question.choices, rows=len(self.question.choices))
        else:
            self.choices = w.RadioButtons(options=self.question.choices, value=None)
        self.button = w.Button(description="check")
        self.button.on_click(lambda _: self.check())
        self.feedback: Feedback | None = None
        self.view = w.HTML()
        hint = " (pick every right answer)" if many else ""
        self.widget = w.VBox([w.HTML(f"<b>Check yourself:</b> {escape(self.question.prompt)}{hint}"),
                              self.choices, self.button, self.view])

    def check(self) -> Feedback:
        """Judge the current selection (what the button does)."""
        self.feedback = check(self.question.id, self.choices.value)
        self.view.value = self.feedback._repr_html_()
        return self.feedback

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)
