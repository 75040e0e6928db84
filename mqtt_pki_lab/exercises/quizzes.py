"""Multiple-choice questions (the widgets' :class:`~mqtt_pki_lab.widgets.Quiz`) and the break-it diagnosis.

Each question is also an exercise of :func:`mqtt_pki_lab.exercises.check` (kind ``choice``): a wrong choice
gets the hint written for it, when there is one. The answers live here, apart from the notebooks.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from . import Feedback, exercise


@dataclass(frozen=True)
class Question:
    """A multiple-choice question about one arrow of the diagram."""

    id: str
    prompt: str
    choices: tuple[str, ...]
    answers: frozenset[str]
    """Every choice that is right (all of them must be picked when there are several)."""
    hint: str
    explanation: str
    notebook: str = ""
    """The notebook that asks it."""
    wrong: dict[str, str] = field(default_factory=dict)
    """Hints for particular wrong choices (lower case), chosen over :attr:`hint`."""

    def check(self, answer: str | Iterable[str] | None) -> Feedback:
        """Judge an answer (one choice, or several for multi-answer questions).

        A path whose last part is a choice counts as that choice (``ca/ca.key`` is ``ca.key``), as in the
        typed exercises, when the choices are file names.
        """
        choices = {c.lower() for c in self.choices}

        def as_choice(typed: str) -> str:
            last = typed.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
            return last if typed not in choices and last in choices else typed

        picked = {as_choice(p) for p in _normalise(answer)}
        unknown = sorted(picked - choices)
        if not picked or unknown:
            what = f"{', '.join(unknown)!s} is not one of the choices. " if unknown else "No answer given. "
            return Feedback(False, f"{what}Choose from: {', '.join(self.choices)}.")
        if picked == {a.lower() for a in self.answers}:
            return Feedback(True, f"Right. {self.explanation}")
        targeted = [self.wrong[p] for p in sorted(picked) if p in self.wrong]
        return Feedback(False, f"Not quite. Hint: {targeted[0] if targeted else self.hint}")


def _normalise(answer: str | Iterable[str] | None) -> set[str]:
    if answer is None:
        return set()
    items = [answer] if isinstance(answer, str) else list(answer)
    return {str(a).strip().lower() for a in items if str(a).strip()}


QUESTIONS: dict[str, Question] = {q.id: q for q in (
    # "secret-files" (00) is now a typed exercise in foundations.py; "self-signed" (01) is taught by notebook
    # 01's certificate builder and notebook 02's field-by-field reading of ca.crt.
    Question("ca-signs-with", "Which file does the CA use to sign server.csr?",
             ("ca.key", "ca.crt", "server.key", "server.csr"), frozenset({"ca.key"}),
             "signing needs a private key; and it is the CA that signs, not the broker.",
             "ca.key signs; ca.crt is what others use to check that signature.",
             notebook="02_the_ca.ipynb",
             wrong={"ca.crt": "ca.crt is public: everybody has a copy, so it cannot prove anything. It is what "
                              "others use to *check* the CA's signature; signing needs the CA's private key.",
                    "server.key": "server.key is the broker's own secret, and it never leaves broker/. The CA "
                                  "signs with its own key.",
                    "server.csr": "server.csr is what gets signed (the broker's request), not what signs it."}),
    Question("broker-needs", "Which three files does the broker need to operate?",
             ("ca.crt", "ca.key", "server.key", "server.csr", "server.crt", "client.crt"),
             frozenset({"ca.crt", "server.key", "server.crt"}),
             "look at the bottom of the broker's box in the diagram; the CA's secret is not among them.",
             "ca.crt to verify clients, server.crt as its public ID, server.key as its secret ID.",
             notebook="05_hand_out_and_prove.ipynb",
             wrong={"ca.key": "ca.key never leaves ca/: checking a client's certificate needs only the CA's "
                              "*public* certificate, ca.crt.",
                    "server.csr": "the CSR's job ended when the CA signed it; the broker never sends it again.",
                    "client.crt": "each client presents its own certificate in the handshake; the broker keeps "
                                  "none of them, only the CA's certificate to check them with."}),
    Question("csr-proves", "A validly signed CSR asks for CN=door-lock. What has it proved? (key: the sender holds "
             "the private key of the public key inside it; device: the sender is door-lock; name: the sender may "
             "use the name door-lock; checked: the CA has checked the sender)",
             ("key", "device", "name", "checked"), frozenset({"key"}),
             "the CSR is signed with a key: what can a signature prove about whoever made it?",
             "A CSR's signature (RFC 2986) proves possession of the key, and nothing about the name it asks for: "
             "anyone can write any name into a CSR. The CA must learn by other means that the request really "
             "comes from door-lock (handed over in person, on a provisioning bench, or sent by a device the CA "
             "already trusts) before it signs that name.",
             notebook="09_who_may_do_what.ipynb",
             wrong={"device": "anyone can type CN=door-lock into a CSR made with their own key; the signature only "
                              "ties the request to that key.",
                    "name": "a CSR is a request, not a permission: deciding who may have a name is the CA's job, "
                            "before it signs.",
                    "checked": "the CSR is made before the CA sees it; checking the sender is what the CA must do "
                               "next, by other means."}),
)}


def check_diagnosis(scenario: object, arrow: object, folder: str | Path | None = None) -> Feedback:
    """Judge a student's diagnosis of a broken lab: which arrow of the diagram went wrong?

    ``scenario`` is a :class:`~mqtt_pki_lab.breakit.Scenario` (or its id), ``folder`` the broken copy (then
    the answer quotes verify's diagnosis of it). A wrong arrow gets the hint written for it
    (:func:`mqtt_pki_lab.mysteries.hint_for`): never the answer, and never a box on the wrong side; a right
    one gets what happened, why and the fix. Anything that is not an arrow gets a sentence.
    """
    from ..mysteries import judge_arrow

    return judge_arrow(scenario, arrow, folder=Path(folder) if folder is not None else None)


def _register(question: Question) -> None:
    exercise(question.id, question.notebook, question.prompt, hint=question.hint,
             hints=tuple(question.wrong.values()), kind="choice")(lambda answer: question.check(answer))


for _question in QUESTIONS.values():
    _register(_question)
