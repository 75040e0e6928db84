"""Helpers the notebooks use, so that a lesson shows the idea and the package holds the code.

* :func:`workdir`: where the course writes (``lab-work/`` next to the notebooks, or
  ``$MQTT_PKI_LAB_WORKDIR``), never into the package or the repository's root;
* :func:`course_lab` and :func:`catch_up`: each notebook can start on its own: it runs the arrows of the
  earlier notebooks that are not done yet, so "Restart and run all" always works;
* :func:`step`: run one arrow unless it is done (arrow 10: the mutual-TLS handshake, through
  :mod:`~mqtt_pki_lab.handshake`);
* :func:`check`: judge a student's answer to an exercise (:mod:`mqtt_pki_lab.exercises`);
* :func:`twin`: show the ``openssl`` command of an arrow, to run in a terminal.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import diagram as L
from .coursework import workdir
from .diagram import DIAGRAM, FIRST_CLIENT, Role, bind
from .errors import InputError
from .exercises import check
from .steps import BuildOptions, Lab, StepResult, get_step
from .twins import openssl_twin

__all__ = ["NOTEBOOKS", "AlreadyDone", "Twin", "catch_up", "check", "course_lab", "diagram", "setup", "step",
           "trust", "twin", "workdir"]

#: The course, in order: (file name, title).
NOTEBOOKS: tuple[tuple[str, str], ...] = (
    ("00_start_here.ipynb", "Start here: the picture and the plan"),
    ("01_foundations.ipynb", "Foundations: key pairs, signatures, certificates, trust"),
    ("02_the_ca.ipynb", "The Certificate Authority (arrows 1-2)"),
    ("03_broker_certificate.ipynb", "The broker's certificate (arrows 3-5)"),
    ("04_client_certificate.ipynb", "The client's certificate (arrows 6-8)"),
    ("05_hand_out_and_prove.ipynb", "Hand out ca.crt and prove it: the TLS 1.3 handshake (arrows 9-10)"),
    ("06_real_mqtt.ipynb", "Real MQTT over mutual TLS"),
    ("07_break_it.ipynb", "Break it: diagnose what a user sees"),
    ("08_a_fleet.ipynb", "A fleet: many clients, and devices without a clock"),
    ("09_who_may_do_what.ipynb", "Who may do what: ACLs, keys born on the device, exports"),
    ("10_day_two.ipynb", "Day two: revoke, keep the list fresh, renew, rotate the root"),
    ("11_a_longer_chain.ipynb", "A longer chain: an intermediate CA, the root key offline"),
    ("12_your_own_devices.ipynb", "Your own devices"),
)


def setup(before: str | int | None = None, options: BuildOptions | None = None) -> Lab:
    """The student's one lab (``workdir()/pki``), with every arrow before ``before`` done.

    The first code cell of every notebook calls it, so a notebook runs on its own: what earlier notebooks
    would have made is made now, and said in one line (nothing is said when there was nothing to do).
    """
    lab = course_lab(options)
    if before is not None:
        catch_up(lab, before, quiet=True)
    _catch_up_policy(lab)
    return lab


def _catch_up_policy(lab: Lab) -> None:
    """A lab made before the lab wrote ``broker/acl`` gets the default policy once, said in one line."""
    from .acl import policy_path, reset_policy

    if L.SERVER_CERT.path(lab.root).exists() and not policy_path(lab).exists():
        reset_policy(lab)
        print(f"made {policy_path(lab).relative_to(lab.root)}: the default policy (each client its own "
              "devices/NAME/#; everyone may read shared/#)")


def diagram(lab: Lab | str | Path, result: object = None) -> object:
    """The diagram view of the lab: the seed's boxes, each file made or not, the numbered arrows."""
    from .graph import diagram_view

    return diagram_view(lab, result)


def trust(lab: Lab | str | Path, result: object = None) -> object:
    """The trust view of the lab: who signed whom, what each side trusts, the handshake (``result``)."""
    from .graph import trust_view

    return trust_view(lab, result)


def course_lab(options: BuildOptions | None = None) -> Lab:
    """The lab the course builds, in ``workdir()/pki``."""
    return Lab(workdir() / "pki", options)


def catch_up(lab: Lab, before: str | int, *, quiet: bool = False) -> list[StepResult]:
    """Run, in order, every arrow before ``before`` that is not done yet; say what was done.

    Lets a notebook start on its own: the broker's notebook needs the CA, and makes it if missing.
    ``quiet``: say nothing when there was nothing to do.
    """
    first = get_step(before).number
    if first <= 1:
        return []  # nothing comes before arrow 1: nothing to catch up with, nothing to say
    done: list[StepResult] = []
    for number in range(1, first):
        step = get_step(number)
        if step.writes and lab.state().status(step) != "done":
            done.append(lab.run(step.id))
    if done:
        print("Caught up with the earlier notebooks: " + ", ".join(f"arrow {r.step.number}" for r in done))
    elif not quiet:
        arrows = "Arrow 1 is" if first == 2 else f"Arrows 1-{first - 1} are"
        print(f"{arrows} done already: carrying on from {lab.root}")
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


def twin(step: str | int, options: BuildOptions | None = None, role: Role | None = None) -> Twin:
    """The equivalent ``openssl`` command of an arrow, with the given options.

    ``role`` is the role it is done for (a further client, say); by default the diagram's own roles the arrow
    is done for (arrow 9: the broker and the client; arrow 10: the diagram's client).
    """
    found = get_step(step)
    roles = [role] if role is not None else [r for r in DIAGRAM.all if found.applies_to(r)]
    bound = [bind(found, r) for r in roles]
    command = " && ".join(dict.fromkeys(openssl_twin(b, options or BuildOptions()) for b in bound))
    return Twin(found.number, bound[0].title if role is not None else found.title, command)


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


def step(lab: Lab, arrow: str | int, client: Role | None = None) -> StepResult | AlreadyDone:
    """Run one arrow unless its files exist already; safe to run again (a notebook may be re-run).

    Arrow 10 writes nothing: it runs the mutual-TLS handshake of ``client``'s files (default: the diagram's
    ``client/``) with the broker's (:func:`mqtt_pki_lab.handshake.prove`) and returns a step result whose
    ``detail`` is the :class:`~mqtt_pki_lab.handshake.HandshakeResult`, which
    :func:`~mqtt_pki_lab.graph.trust_graph` draws. ``client`` also picks a further client for arrows 6-9.
    """
    found = get_step(arrow)
    if found.kind == "prove":
        from .handshake import prove

        return prove(lab.root, lab.options.hostname, lab.options.passphrase, client or FIRST_CLIENT)
    state = lab.state()
    if client is not None:
        if not found.applies_to(client):
            raise InputError("arrow", f"arrow {found.number} ({found.title}) is not done for {client.label}")
        bound = bind(found, client)
        if state.status_of(bound) == "done":
            return AlreadyDone(found.number, bound.title, tuple(f.relpath for f in bound.writes))
        return lab.run(found.id, client)
    if state.status(found) == "done":
        files = tuple(f.relpath for b in DIAGRAM.plan([found]) for f in b.writes)
        return AlreadyDone(found.number, found.title, files)
    return lab.run(found.id)
