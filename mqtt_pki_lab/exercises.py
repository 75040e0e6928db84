"""Self-check questions for the course: a wrong answer gets a hint, never a traceback.

The answers live here, apart from the notebooks that ask the questions, so a student reading a notebook
does not see them, and the tests can check every question has a right answer among its choices.

>>> print(check("secret-files", "ca.crt"))           # doctest: +ELLIPSIS
Not quite. Hint: ...
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from html import escape


@dataclass(frozen=True)
class Feedback:
    """The verdict on one answer: right or not, and what to think about next."""

    correct: bool
    message: str

    def __str__(self) -> str:
        return self.message

    def __bool__(self) -> bool:
        return self.correct

    def _repr_html_(self) -> str:
        colour = "#1b7f3b" if self.correct else "#9a6700"
        return f"<div style='border-left:5px solid {colour};padding:2px 8px'>{escape(self.message)}</div>"


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

    def check(self, answer: str | Iterable[str] | None) -> Feedback:
        """Judge an answer (one choice, or several for multi-answer questions)."""
        picked = _normalise(answer)
        unknown = sorted(picked - {c.lower() for c in self.choices})
        if not picked or unknown:
            what = f"{', '.join(unknown)!s} is not one of the choices. " if unknown else "No answer given. "
            return Feedback(False, f"{what}Choose from: {', '.join(self.choices)}.")
        if picked == {a.lower() for a in self.answers}:
            return Feedback(True, f"Right. {self.explanation}")
        return Feedback(False, f"Not quite. Hint: {self.hint}")


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


def check(question_id: str, answer: str | Iterable[str] | None) -> Feedback:
    """Judge an answer to one of :data:`QUESTIONS`; an unknown question id is explained too."""
    question = QUESTIONS.get(question_id)
    if question is None:
        return Feedback(False, f"There is no question {question_id!r}; questions: {', '.join(QUESTIONS)}.")
    return question.check(answer)


def check_diagnosis(scenario: object, arrow: int | str | None) -> Feedback:
    """Judge a student's diagnosis of a broken lab: which arrow of the diagram went wrong?

    ``scenario`` is a :class:`~mqtt_pki_lab.breakit.Scenario` (or its id). A wrong answer gets a hint that
    points at the right box of the diagram without giving the answer away.
    """
    from .breakit import get_scenario
    from .diagnose import ARROW_TITLES

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
    role = expected.file.split("/")[0]
    place = {"ca": "the CA's box", "broker": "the broker's box", "client": "the client's box"}[role]
    return Feedback(False, f"Not arrow {picked}. Hint: the file at fault is in {place}; read which side "
                           "refused and what the checks say about the files there.")
