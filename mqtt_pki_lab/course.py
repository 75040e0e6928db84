"""Helpers the notebooks use, so that a lesson shows the idea and the package holds the code.

* :func:`workdir`: where the course writes (``lab-work/`` next to the notebooks, or
  ``$MQTT_PKI_LAB_WORKDIR``), never into the package or the repository's root;
* :func:`course_lab` and :func:`catch_up`: each notebook can start on its own: it runs the arrows of the
  earlier notebooks that are not done yet, so "Restart and run all" always works;
* :func:`twin`: show the ``openssl`` command of an arrow, to run in a terminal.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .diagram import DIAGRAM
from .steps import BuildOptions, Lab, StepResult, get_step
from .twins import openssl_twin

#: The course, in order: (file name, title).
NOTEBOOKS: tuple[tuple[str, str], ...] = (
    ("00_start_here.ipynb", "Start here: the picture and the plan"),
    ("01_the_ca.ipynb", "The Certificate Authority (arrows 1-2)"),
    ("02_broker_certificate.ipynb", "The broker's certificate (arrows 3-5)"),
    ("03_client_certificate.ipynb", "The client's certificate (arrows 6-8)"),
    ("04_hand_out_and_verify.ipynb", "Hand out ca.crt and verify (arrows 9-10)"),
    ("05_real_mqtt.ipynb", "Real MQTT over mutual TLS"),
    ("06_break_it.ipynb", "Break it and diagnose"),
    ("07_your_own_devices.ipynb", "Your own devices"),
)
WORKDIR_VARIABLE = "MQTT_PKI_LAB_WORKDIR"


def workdir() -> Path:
    """The course's working folder (created if needed): ``$MQTT_PKI_LAB_WORKDIR`` or ``./lab-work``."""
    folder = Path(os.environ.get(WORKDIR_VARIABLE) or "lab-work").resolve()
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def course_lab(options: BuildOptions | None = None) -> Lab:
    """The lab the course builds, in ``workdir()/pki``."""
    return Lab(workdir() / "pki", options)


def catch_up(lab: Lab, before: str | int) -> list[StepResult]:
    """Run, in order, every arrow before ``before`` that is not done yet; say what was done.

    Lets a notebook start on its own: notebook 02 needs the CA of notebook 01, and makes it if missing.
    """
    first = get_step(before).number
    done: list[StepResult] = []
    for number in range(1, first):
        step = get_step(number)
        if step.writes and lab.state().status(step) != "done":
            done.append(lab.run(step.id))
    if done:
        print("Caught up with the earlier notebooks: " + ", ".join(f"arrow {r.step.number}" for r in done))
    elif first > 1:
        print(f"Arrows 1-{first - 1} are done already: carrying on from {lab.root}")
    return done


@dataclass(frozen=True)
class Twin:
    """The openssl command of one arrow, shown as a shell snippet."""

    number: int
    title: str
    command: str

    def __str__(self) -> str:
        return f"# arrow {self.number}: {self.title}\n{self.command}"

    def _repr_markdown_(self) -> str:
        return f"**openssl twin of arrow {self.number}** ({self.title}), run from the lab folder:\n\n" \
               f"```bash\n{self.command}\n```"


def twin(step: str | int, options: BuildOptions | None = None) -> Twin:
    """The equivalent ``openssl`` command of an arrow, with the given options."""
    found = get_step(step)
    command = " && ".join(dict.fromkeys(openssl_twin(b, options or BuildOptions()) for b in DIAGRAM.plan([found])))
    return Twin(found.number, found.title, command)


@dataclass(frozen=True)
class AlreadyDone:
    """What :func:`step` shows for an arrow whose files exist already."""

    number: int
    title: str
    files: tuple[str, ...]

    def __str__(self) -> str:
        return (f"arrow {self.number} ({self.title}) is done already: {', '.join(self.files)} exist. "
                "Files are never made again behind your back (a new CA would orphan every certificate).")

    def _repr_html_(self) -> str:
        return f"<div style='border-left:5px solid #3569b5;padding:2px 8px'>{self}</div>"


def step(lab: Lab, arrow: str | int) -> StepResult | AlreadyDone:
    """Run one arrow unless its files exist already; safe to run again (a notebook may be re-run)."""
    found = get_step(arrow)
    if found.kind == "prove":
        from .handshake import prove

        return prove(lab.root, lab.options.hostname, lab.options.passphrase)
    if lab.state().status(found) == "done":
        files = tuple(f.relpath for b in DIAGRAM.plan([found]) for f in b.writes)
        return AlreadyDone(found.number, found.title, files)
    return lab.run(found.id)


def mystery_lab(lab: Lab, number: int) -> Path:
    """A broken copy of ``lab`` for exercise ``number`` of notebook 06 (made once, then reused).

    Which way it is broken is the exercise: :func:`mystery_scenario` knows, the solutions notebook tells.
    """
    from .breakit import break_lab

    out = workdir() / f"mystery-{number}"
    if not out.exists():
        break_lab(lab.root, mystery_scenario(number), out, lab.options.passphrase)
    return out


def mystery_scenario(number: int):
    """The scenario behind exercise ``number`` of notebook 06 (a fixed, spread-out pick of the catalogue)."""
    from .breakit import SCENARIOS

    return SCENARIOS[(number * 5 + 2) % len(SCENARIOS)]
