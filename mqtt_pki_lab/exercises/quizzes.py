"""Multiple-choice questions (the widgets' :class:`~mqtt_pki_lab.widgets.Quiz`) and the break-it diagnosis.

Each question is also an exercise of :func:`mqtt_pki_lab.exercises.check` (kind ``choice``): a wrong choice
gets the hint written for it, when there is one. The answers live here, apart from the notebooks.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

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
        """Judge an answer (one choice, or several for multi-answer questions)."""
        picked = _normalise(answer)
        unknown = sorted(picked - {c.lower() for c in self.choices})
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


def _q(id: str, prompt: str, choices: Iterable[str], answers: Iterable[str], hint: str, explanation: str
       ) -> Question:
    return Question(id, prompt, tuple(choices), frozenset(answers), hint, explanation)


QUESTIONS: dict[str, Question] = {q.id: q for q in (
    _q("secret-files", "Which files of the diagram are SECRET?",
       ("ca.key", "ca.crt", "server.key", "server.csr", "server.crt", "client.key", "client.csr", "client.crt"),
       ("ca.key", "server.key", "client.key"),
       "a file is secret when holding it lets you *be* somebody. Which files are private keys?",
       "The three private keys. Certificates and CSRs only carry public keys and can be shown to anyone."),
    _q("ca-signs-with", "Which file does the CA use to sign server.csr?",
       ("ca.key", "ca.crt", "server.key", "server.csr"), ("ca.key",),
       "signing needs a private key; and it is the CA that signs, not the broker.",
       "ca.key signs; ca.crt is what others use to check that signature."),
    _q("self-signed", "Who signed ca.crt?",
       ("the CA itself (ca.key)", "the broker", "a public CA", "nobody"), ("the CA itself (ca.key)",),
       "look at ca.crt's issuer and subject: are they different?",
       "It is self-signed: issuer = subject. That is why it has to be handed out and trusted explicitly."),
    _q("csr-contents", "What does server.csr carry to the CA?",
       ("the broker's private key", "the broker's public key and names", "ca.crt", "the client's key"),
       ("the broker's public key and names",),
       "the CSR is sent to someone else. Would you send your secret?",
       "The public key and the names the broker asks for, signed with server.key to prove it holds it."),
    _q("san-why", "Why does server.crt list localhost and 127.0.0.1 in its subjectAltName?",
       ("so clients that dial those names accept it", "to encrypt the traffic", "so the CA can find it",
        "it is required by MQTT"),
       ("so clients that dial those names accept it",),
       "what does a client compare with the name it connected to?",
       "A client checks that the broker's certificate lists the name it dialled; otherwise: hostname mismatch."),
    _q("broker-needs", "Which three files does the broker need to operate?",
       ("ca.crt", "ca.key", "server.key", "server.csr", "server.crt", "client.crt"),
       ("ca.crt", "server.key", "server.crt"),
       "look at the bottom of the broker's box in the diagram; the CA's secret is not among them.",
       "ca.crt to verify clients, server.crt as its public ID, server.key as its secret ID."),
    _q("client-eku", "Which extendedKeyUsage must client.crt have for mutual TLS?",
       ("serverAuth", "clientAuth", "codeSigning", "none"), ("clientAuth",),
       "the broker checks that the certificate is meant for a TLS client.",
       "clientAuth only: a client certificate cannot then pretend to be a broker."),
    _q("mqtt-username", "With use_identity_as_username, what becomes the client's MQTT username?",
       ("the Common Name of client.crt", "the file name", "the CA's name", "the serial number"),
       ("the Common Name of client.crt",),
       "mosquitto reads it from the certificate's subject.",
       "The client certificate's Common Name: the name given with --client-name."),
    _q("new-ca-effect", "What happens to server.crt and client.crt if you make a new CA (new ca.key)?",
       ("nothing", "they are orphaned: nobody trusting the new ca.crt accepts them",
        "they are re-signed automatically", "they expire"),
       ("they are orphaned: nobody trusting the new ca.crt accepts them",),
       "who signed server.crt, and which key does the new ca.crt carry?",
       "They were signed by the old ca.key: peers that trust the new ca.crt refuse them. That is why "
       "build refuses to replace a CA without --force."),
)}


def check_diagnosis(scenario: object, arrow: int | str | None) -> Feedback:
    """Judge a student's diagnosis of a broken lab: which arrow of the diagram went wrong?

    ``scenario`` is a :class:`~mqtt_pki_lab.breakit.Scenario` (or its id). A wrong answer gets a hint that
    points at the right box of the diagram without giving the answer away.
    """
    from ..breakit import get_scenario
    from ..diagram import ARROW_TITLES, CLIENTS_FOLDER

    found = get_scenario(scenario)  # type: ignore[arg-type]
    expected = found.expected
    try:
        picked = int(str(arrow).split(".")[0]) if arrow is not None else None
    except ValueError:
        picked = None
    if picked not in ARROW_TITLES:
        return Feedback(False, f"Answer with the number of an arrow, 1 to {max(ARROW_TITLES)}.")
    if picked == expected.arrow:
        return Feedback(True, f"Right: arrow {picked} ({ARROW_TITLES[picked]}), file {expected.file}. "
                              f"What happened: {found.breaks}")
    folder = expected.file.split("/")[0]
    place = {"ca": "the CA's box", "broker": "the broker's box", "client": "the client's box",
             CLIENTS_FOLDER: f"the box of client {expected.file.split('/')[1]!r}"}.get(folder, "one of the boxes")
    return Feedback(False, f"Not arrow {picked}. Hint: the file at fault is in {place}; read which side "
                           "refused and what the checks say about the files there.")


def _register(question: Question) -> None:
    exercise(question.id, question.notebook, question.prompt, hint=question.hint,
             hints=tuple(question.wrong.values()), kind="choice")(lambda answer: question.check(answer))


for _question in QUESTIONS.values():
    _register(_question)
