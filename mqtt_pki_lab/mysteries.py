"""Break-it as a student meets it: a broken lab, what a user sees, "which arrow?", then the answer.

A *mystery* is a broken copy of the student's lab (:func:`~mqtt_pki_lab.breakit.break_lab`) shown the way
a user meets a broken deployment: the raw errors of the tools, nothing interpreted.

* the client and the broker of the in-memory handshake, in OpenSSL's words
  (:func:`~mqtt_pki_lab.breakit.raw_errors`);
* ``mosquitto_pub``'s one line and mosquitto's log, from a real mosquitto on 127.0.0.1 and a free port
  when both programs are installed (:func:`mosquitto_run`), else the line mosquitto_pub 2.0.11 prints for
  that kind of failure (:data:`MOSQUITTO_PUB_WORDS`, checked against a real run by the tests);
* ``openssl verify -x509_strict`` for each side's certificate;
* on request, :meth:`Case.inspect` lists one file's facts (a key is described, never printed).

The student names the arrow (1-10) at fault; :func:`judge_arrow` answers with a hint written for *that*
wrong arrow, and reveals the answer (what happened, why, the fix, and verify's own diagnosis) only when
the answer is right, after :data:`TRIES_BEFORE_REVEAL` wrong tries, or when asked (``"show me"``).
Nothing shown before that names the arrow at fault, the scenario or verify's diagnosis: the tests check
it for every mystery.

>>> case = open_mystery(lab, 1)        # doctest: +SKIP
>>> case                               # the evidence                 # doctest: +SKIP
>>> case.inspect("client/client.crt")  # one file's facts             # doctest: +SKIP
>>> course.check("mystery-1", 8)       # the exercise: Right, or a hint  # doctest: +SKIP
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import diagram as L
from .diagram import ARROW_TITLES
from .exercises import Feedback, normalise, wants_answer

if TYPE_CHECKING:
    from .breakit import RawErrors, Scenario, SideError, VerifyRun
    from .steps import Lab

#: Wrong answers a student may give before the answer is shown anyway.
TRIES_BEFORE_REVEAL = 3
#: The folder under the course's work folder where the mysteries' broken copies live.
MYSTERY_FOLDER = "mysteries"
HOSTNAME = "localhost"


@dataclass(frozen=True)
class Mystery:
    """One mystery of notebook 07: a scenario of the catalogue, its lesson, and hints per wrong arrow."""

    number: int
    scenario: str
    """The id of the :class:`~mqtt_pki_lab.breakit.Scenario` that breaks the copy."""
    arrow: int
    """The arrow at fault: the scenario's expected arrow, and verify's (the tests check all three agree)."""
    file: str
    """The file at fault, relative to the lab folder."""
    lesson: str
    """The notebook that teaches what it takes to solve it."""
    happened: str
    why: str
    fix: str
    hint: str
    """The general hint, for a wrong arrow without its own."""
    hints: Mapping[int, str] = field(default_factory=dict)
    """A hint for each wrong arrow that needs its own (the arrow of the right file's neighbour, a box on
    the wrong side, a copy of the right file...)."""
    asks_file: bool = False
    """True when notebook 07 also asks for the file at fault (exercise ``mystery-N-file``). Then neither
    exercise's "Right" gives the other's answer away: the whole story comes with the one asked second."""
    file_first: bool = False
    """True when the notebook asks for the file before the arrow (the odd one out is found by comparing
    files; the arrow follows from it)."""

    @property
    def exercise(self) -> str:
        """The id of its exercise: ``course.check("mystery-1", answer)``."""
        return f"mystery-{self.number}"

    def hint_for(self, arrow: int) -> str:
        """The hint a wrong ``arrow`` earns."""
        return self.hints.get(arrow) or (NO_FILE_HINT if arrow == L.HANDSHAKE_ARROW else self.hint)


#: The hint for arrow 10 wherever it is wrong: the handshake writes nothing.
NO_FILE_HINT = ("arrow 10 makes no file: the handshake only shows the problem. Which earlier arrow made the "
                "file that the side that refused stumbled on?")
_DEPTH = ("openssl verify counts from the certificate it checks: depth 0 is that certificate, depth 1 the CA "
          "that signed it.")

MYSTERIES: tuple[Mystery, ...] = (
    Mystery(
        1, "client-expired", 8, "client/client.crt", "05_hand_out_and_prove.ipynb",
        "client.crt was signed for 30 days, a year ago: today is past its notAfter.",
        "Every TLS peer checks the other side's validity window against its own clock (RFC 5280 §4.1.2.5). "
        "The broker checks the client's certificate, so the broker refused; the CA and the key are fine.",
        "Have the CA sign client.csr again with a current validity period (arrow 8) and give the client the new "
        "client.crt; client.key and client.csr can stay.",
        "read the broker's words: which side refused, and what does it say about the certificate it was shown?",
        {6: "client.key is fine: a key has no dates. Which arrow gave client.crt its dates (inspect it)?",
         7: "client.csr carries no dates: the CA chooses notBefore and notAfter when it signs.",
         5: "right kind of arrow (the CA signing), wrong side: the broker refused the certificate the client "
            "showed it, not its own.",
         2: "ca.crt is still valid: " + _DEPTH + " Where is the error?",
         9: "broker/ca.crt is the right CA: openssl verify found the issuer and complained about something "
            "else. Read its words."}),
    Mystery(
        2, "client-trusts-wrong-ca", 9, "client/ca.crt", "05_hand_out_and_prove.ipynb",
        "client/ca.crt is the certificate of another CA (a copy from another project), not the lab's ca.crt.",
        "The client trusts exactly the CA in its own ca.crt. server.crt was signed by the lab's CA, so the client "
        "cannot build a chain to anything it trusts and refuses; the broker, whose ca.crt is right, accepts the "
        "client. One wrong copy breaks one direction only.",
        "Copy ca/ca.crt to client/ca.crt (arrow 9); no certificate needs signing again.",
        "the client refused the broker. What does a side check the other side's certificate against?",
        {5: "server.crt is signed by the lab's CA (inspect its issuer and compare it with ca/ca.crt's subject). "
            "The client checks it against something else.",
         8: "client.crt passes: the broker accepted it (openssl verify against broker/ca.crt says OK). The "
            "client is the side that refused: what did it use to check the broker?",
         2: "ca/ca.crt is the lab's CA and the broker trusts it: compare the subjects of ca/ca.crt and "
            "client/ca.crt.",
         1: "ca.key is where it belongs and signed both leaves. Compare the subjects of ca/ca.crt and "
            "client/ca.crt."}, asks_file=True),
    Mystery(
        3, "server-name-missing", 5, "broker/server.crt", "03_broker_certificate.ipynb",
        "The CA signed server.csr but dropped the names it asked for: server.crt's subjectAltName lists only "
        "mqtt.example.com, and the client dials localhost.",
        "A client compares the name it dialled with the DNS and IP names in the broker's subjectAltName (RFC 6125, "
        "now RFC 9525; the CN is not used when there is a SAN). openssl verify without -verify_hostname does not "
        "check names, so it says OK. `openssl x509 -req` copies no extension from a CSR unless told to: the "
        "CA writes every one itself, and here it wrote the wrong names.",
        "Have the CA sign server.csr again and write the names it approved itself (arrow 5): the lab's profile "
        "does, and so does `-extfile` with `subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1` in the openssl "
        "twin (`course.twin(5)`). Never copy a CSR's extensions blindly: the CA decides every name (notebook "
        "03). Or connect with a name the certificate lists.",
        "read the client's words: what is wrong with the certificate the broker showed it?",
        {4: "inspect broker/server.csr: which names does it ask for? The request is right: look at what the CA "
            "made of it.",
         3: "a key carries no names: names live in the CSR and the certificate.",
         9: "client/ca.crt is the right CA: openssl verify of server.crt against it says OK. The client "
            "refused for another reason: read its words.",
         8: "the client refused, and it complains about the broker's certificate, not its own.",
         2: "the CA certificate is fine (openssl verify: OK). The name the client complains about is in "
            "another certificate."}),
    Mystery(
        4, "key-mismatch", 6, "client/client.key", "01_foundations.ipynb",
        "client.key was generated again after client.csr and client.crt were made from the old key.",
        "A certificate binds a name to one public key; the client proves it is that name with the matching "
        "private key. OpenSSL checks that the certificate and the key belong together when it loads them "
        "(`key values mismatch`), so the client fails before it sends a byte, and the broker only sees a "
        "connection that ends. openssl verify does not look at keys, so it says OK.",
        "Put the old client.key back, or make client.csr from the new key (arrow 7) and have the CA sign it "
        "(arrow 8).",
        "the client failed on its own files before it talked to anybody. Compare the key fingerprints of "
        "client.key, client.csr and client.crt (inspect).",
        {8: "client.crt is what the CA signed, and openssl verify accepts it. Compare the key fingerprints of "
            "client.key, client.csr and client.crt: which one is the odd one out?",
         7: "client.csr and client.crt carry the same public key (compare their key fingerprints): the odd one "
            "out is another file.",
         9: "no certificate was checked by anybody: the client never reached the broker.",
         5: "the broker's files are fine: the client never reached the broker.",
         2: "the CA's files are fine: the client failed on its own files before any certificate was checked.",
         3: "server.key is the broker's; the side that cannot start is the client."}, asks_file=True,
        file_first=True),
    Mystery(
        5, "ca-without-keycertsign", 2, "ca/ca.crt", "02_the_ca.ipynb",
        "ca.crt was made again from the same ca.key, without keyUsage keyCertSign, and handed out.",
        "A CA certificate must say that its key may sign certificates: keyUsage keyCertSign (RFC 5280 "
        "§4.2.1.3). Verifiers refuse every chain through a CA certificate that lacks it: both leaves fail, at "
        "depth 1, the CA. " + _DEPTH,
        "Make ca.crt again from ca.key with the lab's CA profile (arrow 2) and hand it out (arrow 9); the leaves "
        "stay valid (same key, same name).",
        "both certificates fail openssl verify the same way. " + _DEPTH,
        {9: "the copies are identical to ca/ca.crt (compare fingerprints): handing out copied the problem, it "
            "did not make it.",
         1: "ca.key is fine: the leaves' signatures still check out. Inspect ca/ca.crt: what does it allow "
            "its key to do?",
         5: "server.crt is not alone: client.crt fails the same way, at depth 1. " + _DEPTH,
         8: "client.crt is not alone: server.crt fails the same way, at depth 1. " + _DEPTH}),
    Mystery(
        6, "weak-rsa-key", 3, "broker/server.key", "03_broker_certificate.ipynb",
        "server.key is a 1024-bit RSA key; server.csr and server.crt were made from it and properly signed "
        "(the lab's own CA refuses such a key: a careless CA signed it).",
        "OpenSSL's security level 2 refuses RSA keys below 2048 bits (`ee key too small`; "
        "SSL_CTX_set_security_level(3)). Python's ssl module uses level 2 since 3.10, and Debian builds OpenSSL "
        "3.0 with level 2 as default, so mosquitto 2.0.11 refuses its own certificate and never starts. "
        "openssl verify checks signatures and dates, not key sizes (unless -auth_level is given): it says OK.",
        "Generate server.key again with a strong key type: EC P-256 or RSA 2048+ (arrow 3), make server.csr "
        "from it (arrow 4) and have it signed (arrow 5).",
        "the broker failed on its own files before any client came. 'ee' means end entity: the leaf "
        "certificate the broker loads. Inspect the broker's files.",
        {5: "the CA signed what it was given, and the signature checks out (openssl verify: OK). The problem "
            "was made before the CSR: inspect broker/server.key.",
         4: "server.csr only carries the public half of the key it was made from: the weakness comes from the "
            "arrow that made that key.",
         1: "'ee' (end entity) is a leaf, not the CA: the weak key is the one the broker loads.",
         2: "'ee' (end entity) is a leaf, not the CA: the weak key is the one the broker loads.",
         6: "the client never reached a broker: the broker stopped on its own files.",
         8: "the client never reached a broker: the broker stopped on its own files.",
         9: "ca.crt holds no private key: the broker stopped on the key of its own certificate."}),
    Mystery(
        7, "server-cert-as-client", 8, "client/client.crt", "04_client_certificate.ipynb",
        "client.crt and client.key are copies of the broker's server.crt and server.key: the client's own key "
        "was overwritten, and the broker's private key now exists twice.",
        "extendedKeyUsage says what a certificate is for (RFC 5280 §4.2.1.12): server.crt says serverAuth only, "
        "and a broker asks a client for clientAuth, so it refuses (`unsuitable certificate purpose`). Even if it "
        "did not, mosquitto would take the certificate's CN (the broker's name) as the MQTT username.",
        "Give the client its own identity again: its own key was overwritten, so it makes a new client.key "
        "(arrow 6) and client.csr (arrow 7), and the CA signs that as a client certificate, clientAuth (arrow "
        "8). Then re-key the broker: server.key has left the broker's folder, so treat it as leaked (whoever "
        "holds a copy can pose as the broker; notebook 04's key custody): the broker makes a new server.key, "
        "server.csr and server.crt (arrows 3-5), and the copies in client/ are deleted.",
        "the broker refused the certificate the client showed it. Inspect that certificate: whose is it, and "
        "what is it for?",
        {5: "server.crt is a fine broker certificate: the broker presents it and the client accepts it. The "
            "refused certificate is the one the client presented: inspect client/client.crt.",
         6: "client.key is not the client's own key either (compare its key fingerprint with the broker's "
            "files), but a private key is never sent: the broker refused the certificate the client showed it. "
            "What is that certificate made for?",
         7: "the request was fine: inspect client/client.csr and client/client.crt, and compare their "
            "subjects and key fingerprints. Which of the two does not come from the client?",
         9: "the broker trusts the right CA: the certificate it refused is signed by the lab's CA. What is "
            "it made for?"}),
    Mystery(
        8, "server-not-yet-valid", 5, "broker/server.crt", "05_hand_out_and_prove.ipynb",
        "The CA's clock was 30 days ahead: server.crt's notBefore is in the future.",
        "A certificate is valid from notBefore to notAfter, checked against the verifier's own clock (RFC 5280 "
        "§4.1.2.5): a CA with a clock ahead, or a device whose clock is behind (no battery-backed clock, no NTP "
        "yet), meets 'not yet valid'. The lab starts notBefore a few minutes in the past for that reason.",
        "Have the CA sign server.csr again with a window that starts now (arrow 5), and set the CA's clock "
        "right (NTP).",
        "read the client's words: what does it say about the certificate the broker showed it? Inspect its "
        "validity.",
        {8: "right kind of arrow (the CA signing), wrong side: the client refused the broker's certificate.",
         4: "a CSR carries no dates: the CA sets notBefore and notAfter when it signs.",
         3: "a key carries no dates: the CA sets notBefore and notAfter when it signs.",
         2: "ca.crt is valid now: " + _DEPTH + " Where is the error?",
         9: "client/ca.crt is the right CA: the error is about dates, not trust."}),
    Mystery(
        9, "broker-trusts-wrong-ca", 9, "broker/ca.crt", "05_hand_out_and_prove.ipynb",
        "broker/ca.crt is the certificate of another CA, not the lab's ca.crt.",
        "The broker checks each client's certificate against its own ca.crt (mosquitto's cafile with "
        "require_certificate true). client.crt was signed by the lab's CA, which the broker does not trust, so "
        "the broker refuses; the client, whose ca.crt is right, accepted the broker.",
        "Copy ca/ca.crt to broker/ca.crt (arrow 9); no certificate needs signing again.",
        "this time the broker refused. What does the broker check the client's certificate against?",
        {8: "client.crt is signed by the lab's CA (inspect its issuer, compare with ca/ca.crt): the broker checks "
            "it against something else.",
         2: "ca/ca.crt is the lab's CA and the client trusts it: compare ca/ca.crt with the broker's copy.",
         1: "ca.key is where it belongs and signed both leaves: compare ca/ca.crt with the broker's copy.",
         5: "the client accepted the broker's certificate: it was the broker that refused."}),
)
MYSTERY_BY_NUMBER: dict[int, Mystery] = {m.number: m for m in MYSTERIES}
MYSTERY_BY_SCENARIO: dict[str, Mystery] = {m.scenario: m for m in MYSTERIES}

#: A hint for the scenarios of the catalogue that are not mysteries, where the general rule ("the file at
#: fault is in that box") would point the wrong way or say too little.
SCENARIO_HINTS: dict[str, str] = {
    "ca-key-leaked": "nothing fails: the handshake passes. List the files of each folder: is there a file where "
                     "it must never be? Name the arrow that made that file.",
    "ca-regenerated": "both sides refuse, and neither leaf chains to ca/ca.crt any more. Compare the "
                      "authorityKeyIdentifier of server.crt with the subjectKeyIdentifier of ca/ca.crt "
                      "(inspect): which certificate is new?",
    "ca-basic-constraints-not-critical": "both certificates fail strict verification at depth 1: "
                                         "the CA's own certificate. Inspect ca/ca.crt's basicConstraints.",
    "client-no-certificate": "the broker says the client showed no certificate: list the client's files.",
    "client-cert-foreign-ca": "the broker does not know who signed client.crt: inspect its issuer and "
                              "compare it with ca/ca.crt.",
    "client-cert-as-server": "the client refused the certificate the broker showed it: inspect "
                             "broker/server.crt: whose is it, and what is it for?",
    "server-without-intermediate": "depth 0 is the broker's own certificate: the client found nothing that links it "
                                   "to the root it trusts. Inspect broker/server.crt: who issued it, and what "
                                   "follows the leaf in the file?",
    "intermediate-in-broker-trust": "Python accepted, mosquitto refused: openssl verify stopped at depth 1 with no "
                                    "issuer for it. Which certificate is at depth 1, and which file did the broker "
                                    "take it from? Compare broker/ca.crt with ca/ca.crt.",
}
_SIDE_HINT = ("the file at fault is in {place}; read which side refused, and which file that side "
              "checked the other side with.")


# --- answers ----------------------------------------------------------------------------------------------

class Reveal(Feedback):
    """A verdict that shows the answer: paragraphs (what happened, why, fix, verify's diagnosis) in HTML."""

    def _repr_html_(self) -> str:
        colour = "#1b7f3b" if self.correct else "#9a6700"
        mark = "✔ " if self.correct else ""
        paragraphs = "".join(f"<p style='margin:2px 0'>{escape(p)}</p>" for p in self.message.split("\n") if p)
        return f"<div style='border-left:5px solid {colour};padding:2px 8px'>{mark}{paragraphs}</div>"


def parse_arrow(answer: Any) -> int | str:
    """The arrow number in ``answer`` (``5``, ``"5"``, ``"arrow 5"``, ``5.0``), or a sentence saying why
    it is not one. Never raises, whatever ``answer`` is."""
    ask = f"Answer with the number of an arrow of the diagram, 1 to {max(ARROW_TITLES)} (e.g. 4)"
    if isinstance(answer, bool):
        return f"{ask}, not {answer}."
    if isinstance(answer, float):
        if not answer.is_integer():
            return f"{ask}: arrows have whole numbers, and {answer!r} is not one."
        answer = int(answer)
    if isinstance(answer, str):
        match = re.fullmatch(r"(?:arrow\s*)?#?\s*(\d{1,3})", normalise(answer))
        if match is None:
            return f"{ask}; {answer[:40]!r} is not a number." if answer.strip() else f"{ask}; the answer is empty."
        answer = int(match.group(1))
    if isinstance(answer, int):  # the arrows, and the day-two steps (11 revoke, 12 renew...) of the same model
        return answer if L.step_title(answer) is not None else f"{ask}; there is no arrow {answer}."
    return f"{ask}, not a {type(answer).__name__}."


def answer_text(scenario: str | Scenario, folder: Path | None = None, hostname: str = HOSTNAME) -> str:
    """The answer to a broken lab, in paragraphs: the arrow and file, what happened, why, the fix, and
    verify's diagnosis of ``folder`` when the broken copy is there to verify."""
    from .breakit import get_scenario

    found = get_scenario(scenario)
    mystery = MYSTERY_BY_SCENARIO.get(found.id)
    arrow = found.expected.arrow
    what = "Arrow" if arrow in ARROW_TITLES else "Day-two step"
    lines = [f"{what} {arrow} ({L.step_title(arrow)}), file {found.expected.file}."]
    if mystery is not None:
        lines += [f"What happened: {mystery.happened}", f"Why: {mystery.why}", f"Fix: {mystery.fix}"]
    else:
        lines.append(f"What happened: {found.breaks}")
    if folder is not None and Path(folder).is_dir():
        from .verify import verify_lab

        diagnosis = found.expected.judged(verify_lab(folder, hostname))[0]
        if diagnosis is not None:
            lines.append(f"verify says: {diagnosis}")
    return "\n".join(lines)


def hint_for(scenario: str | Scenario, arrow: int) -> str:
    """The hint a wrong ``arrow`` earns for a broken lab: the mystery's own, else one for the scenario,
    else where the file at fault is."""
    from .breakit import get_scenario

    found = get_scenario(scenario)
    mystery = MYSTERY_BY_SCENARIO.get(found.id)
    if mystery is not None:
        return mystery.hint_for(arrow)
    if arrow == L.HANDSHAKE_ARROW:
        return NO_FILE_HINT
    if found.id in SCENARIO_HINTS:
        return SCENARIO_HINTS[found.id]
    folder = found.expected.file.split("/")[0]
    place = {"ca": "the CA's box", "broker": "the broker's box", "client": "the client's box"}.get(
        folder, f"the box of {folder}/")
    return _SIDE_HINT.format(place=place)


def judge_arrow(scenario: str | Scenario, answer: Any, *, tries: int = 0, folder: Path | None = None,
                hostname: str = HOSTNAME) -> Feedback:
    """Judge ``answer`` (an arrow number) as the diagnosis of a broken lab; never raises.

    ``tries`` is how many wrong answers came before this one: at :data:`TRIES_BEFORE_REVEAL` the answer
    is shown with the hint. ``"show me"`` shows it at once. Garbage gets a sentence and costs no try.
    """
    from .breakit import get_scenario

    found = get_scenario(scenario)
    if wants_answer(answer):
        return Reveal(False, "Here is the answer.\n" + answer_text(found, folder, hostname))
    picked = parse_arrow(answer)
    if isinstance(picked, str):
        return Feedback(False, picked)
    if picked == found.expected.arrow:
        return Reveal(True, "Right. " + answer_text(found, folder, hostname))
    message = f"Not arrow {picked}. Hint: {hint_for(found, picked)}"
    if tries + 1 >= TRIES_BEFORE_REVEAL:
        return Reveal(False, f"{message}\nAfter {tries + 1} tries, here is the answer.\n"
                             + answer_text(found, folder, hostname))
    return Feedback(False, message)


def counts_as_try(answer: Any, verdict: Feedback) -> bool:
    """True when ``answer`` was a wrong arrow: garbage and "show me" cost no try."""
    return not verdict.correct and isinstance(parse_arrow(answer), int)


def get_mystery(number: Any) -> Mystery:
    """The mystery numbered ``number`` (raises KeyError for no such mystery)."""
    return MYSTERY_BY_NUMBER[int(number)]


# --- the file at fault, and the key type (exercises that take text) ----------------------------------------

def lab_file_names() -> tuple[str, ...]:
    """Every file of the diagram's lab, as ``folder/name``."""
    return tuple(f.relpath for f in L.ALL_FILES)


#: The hint for a bare file name: notebook 07 asks for ``folder/name``, because the lab's names repeat.
BARE_NAME_HINT = ("write the file with its folder, as folder/name (e.g. broker/server.crt): the lab's names "
                  "repeat across folders (ca.crt is in three, and a fleet has a client.key per device).")


def judge_file(number: int, answer: Any, folder: Path | None = None) -> Feedback | str:
    """Judge the file at fault of mystery ``number``, written ``folder/name`` (``"client/ca.crt"``): a hint
    (str) when wrong.

    A bare name (``client.key``) earns :data:`BARE_NAME_HINT`, or for ``ca.crt`` the list of its folders. A
    wrong file gets the hint of the arrow that makes it, or a hint for the right arrow's other file. The
    right file reveals the whole answer (with verify's diagnosis of ``folder``) when the arrow was asked
    first; when the file is asked first (:attr:`Mystery.file_first`) it names no arrow.
    """
    mystery = get_mystery(number)
    if not isinstance(answer, (str, Path)):
        return Feedback(False, f"Answer with a file name as text, e.g. \"{L.SERVER_CERT.relpath}\".")
    text = normalise(str(answer)).removeprefix("./").removeprefix("pki/")
    names = lab_file_names()
    if "/" not in text:
        holders = [n for n in names if n.split("/")[-1] == text]
        if len(holders) > 1:
            folders = ", ".join(h.split("/")[0] + "/" for h in holders)
            return f"{text} is in {len(holders)} folders ({folders}): which copy? Write folder/name."
        if holders:
            return BARE_NAME_HINT
    if text == mystery.file:
        if mystery.file_first:
            return Feedback(True, f"Right: {mystery.file} is the odd one out. Which arrow made it? The next "
                                  "exercise asks, and its answer tells what happened, why, and the fix.")
        return Reveal(True, "Right. " + answer_text(mystery.scenario, folder))
    by_name = {f.relpath: f for f in L.ALL_FILES}
    if text not in by_name:
        return Feedback(False, f"{str(answer)[:40]!r} is not a file of the lab. Write folder/name, one of: "
                               f"{', '.join(names)}.")
    arrow = L.arrow_of(by_name[text])
    if arrow == mystery.arrow:
        return ("right arrow, other file: " + ("which side refused? Each side checks the other with its own "
                                               "copy." if text.endswith("ca.crt") else
                                               "which of the files that arrow makes did the error name?"))
    return mystery.hint_for(arrow)


def answer_file(number: int, answer: Any) -> Feedback | str:
    """The judge of exercise ``mystery-N-file``: :func:`judge_file` on the mystery's broken copy."""
    folder = mystery_folder(number)
    return judge_file(number, answer, folder if folder.is_dir() else None)


# Exercise ``mystery-6-key-type``: the lab's key types (mqtt_pki_lab.keys.KEY_TYPES), the spellings of each
# that OpenSSL and the RFCs use, and the answers that earn a hint of their own.
#: Other spellings of the lab's key types, compared without spaces, hyphens, underscores, colons, "bit(s)"
#: and "key": P-256 is NIST's name (FIPS 186-4), secp256r1 the SEC 2 and TLS name
#: (RFC 8446 §4.2.7), prime256v1 OpenSSL's; likewise for P-384.
KEY_TYPE_SPELLINGS: dict[str, str] = {
    **dict.fromkeys(("ecp256", "p256", "nistp256", "secp256r1", "prime256v1", "ecdsap256", "ecdsasecp256r1",
                     "ecsecp256r1", "ecprime256v1", "ecdsa256"), "ec-p256"),
    **dict.fromkeys(("ecp384", "p384", "nistp384", "secp384r1", "ecdsap384", "ecdsasecp384r1", "ecsecp384r1",
                     "ecdsa384"), "ec-p384"),
    **{f"rsa{bits}": f"rsa-{bits}" for bits in (2048, 3072, 4096)},
    **{f"{bits}rsa": f"rsa-{bits}" for bits in (2048, 3072, 4096)},
    "ed25519": "ed25519", "eddsa25519": "ed25519", "eddsaed25519": "ed25519",
}
#: Key types below OpenSSL's security level 2 (112 bits: RSA under 2048 bits, elliptic curves under 224).
WEAK_KEY_TYPES = ("rsa-1024", "rsa-512", "rsa-1536", "p-192", "secp192r1", "prime192v1")
_KEY_TYPE_HINTS: dict[str, str] = {
    "ec": "which curve? The lab has two: ec-p256 (P-256) and ec-p384 (P-384).",
    "ecdsa": "which curve? The lab has two: ec-p256 (P-256) and ec-p384 (P-384).",
    "rsa": "how many bits? RSA needs 2048 or more at OpenSSL's security level 2: rsa-2048, rsa-3072 or "
           "rsa-4096.",
    **dict.fromkeys(("x25519", "curve25519"), "X25519 (Curve25519) is for key exchange (RFC 7748): it cannot "
                                              "sign. Its signing sibling is ed25519 (RFC 8032)."),
}


def key_type_names() -> tuple[str, ...]:
    """The lab's key type names (:data:`mqtt_pki_lab.keys.KEY_TYPES`), as notebook 07 lists them."""
    from .keys import KEY_TYPES

    return tuple(KEY_TYPES)


def _compact(text: str) -> str:
    return re.sub(r"[\s\-_:/]|bits?|key", "", normalise(text))


def judge_key_type(answer: Any) -> Feedback | str:
    """Judge a key type to make server.key again with (mystery 6): any of the lab's key types will do, in
    the lab's spelling (``ec-p256``) or a common one (``P-256``, ``prime256v1``, ``RSA 2048``)."""
    from .keys import KEY_TYPES

    names = ", ".join(KEY_TYPES)
    if not isinstance(answer, str):
        return Feedback(False, f"Answer with a key type as text, one of: {names}.")
    text = normalise(answer)
    compact = _compact(answer)
    name = text if text in KEY_TYPES else KEY_TYPE_SPELLINGS.get(compact)
    if name is not None:
        spelled = name if text == name else f"{answer.strip()[:40]}, the lab's {name}"
        return Feedback(True, f"Right: {spelled} ({KEY_TYPES[name].about}). Then make server.csr from it and "
                              "have it signed.")
    if compact in _KEY_TYPE_HINTS:
        return _KEY_TYPE_HINTS[compact]
    curve = re.fullmatch(r"(?:ec|ecdsa)?(?:p|nistp|secp|prime)(\d{3})(?:r1|v1)?", compact)
    if curve and int(curve.group(1)) < 224:
        return (f"a {curve.group(1)}-bit curve is below 224 bits: OpenSSL's security level 2 (Python's ssl "
                "default, and Debian's OpenSSL) refuses elliptic-curve keys under 224 bits.")
    rsa_bits = re.fullmatch(r"rsa(\d+)|(\d+)rsa", compact)
    if rsa_bits:
        bits = int(rsa_bits.group(1) or rsa_bits.group(2))
        if bits < 2048:
            return (f"RSA {bits} is below 2048 bits: OpenSSL's security level 2 (Python's ssl default, and "
                    "Debian's OpenSSL) refuses it, as it refused the 1024-bit key.")
        return f"the lab makes RSA keys of 2048, 3072 or 4096 bits; choose one of: {names}."
    return f"{answer[:40]!r} is not a key type of the lab; choose one of: {names}."


# --- mosquitto: what mosquitto_pub and the broker's log say -------------------------------------------------

#: What mosquitto_pub 2.0.11 prints for each kind of failure of the in-memory handshake, seen on Debian 12 (the
#: tests compare it with a real run for every mystery). The wording depends on timing: a refusal that arrives
#: while mosquitto_pub is still in its connect call gives "Unable to connect (...)", one that arrives later, in
#: its network loop, "Error: ...". "A TLS error occurred" means mosquitto_pub's own TLS refused (or could not
#: start); "connection was lost" or "Protocol error" mean the broker hung up on it. The first line of each is
#: what is shown when mosquitto is not installed: the one seen most often (a broker that refuses the client's
#: certificate gave "Protocol error" in 46 of 62 runs over eight scenarios, "The connection was lost." in the rest).
MOSQUITTO_PUB_WORDS: dict[str, tuple[str, ...]] = {
    "client cannot start": ("Unable to connect (A TLS error occurred.).",),
    "broker cannot start": ("Error: Connection refused",),
    "client refused": ("Error: A TLS error occurred.", "Unable to connect (A TLS error occurred.)."),
    "broker refused": ("Error: Protocol error", "Error: The connection was lost."),
    "no error": ("",),
}
_LOG_LINE = re.compile(r"OpenSSL Error|Error|Unable|failed|disconnected|New client connected")


@dataclass(frozen=True)
class MosquittoRun:
    """``mosquitto_pub`` against mosquitto on the broken lab's files, and mosquitto's log of it."""

    command: str
    """The mosquitto_pub line, as typed in the lab folder."""
    output: str
    """What mosquitto_pub printed ('' when it published)."""
    broker_log: tuple[str, ...]
    """mosquitto's lines about the connection, or about why it did not start."""
    real: bool
    """True when it ran here; False when mosquitto is not installed (``output`` from the mapping)."""

    def __str__(self) -> str:
        said = self.output or "(nothing: the message was published)"
        source = "" if self.real else " (mosquitto is not installed here: the line mosquitto_pub 2.0.11 prints)"
        lines = [f"$ {self.command}", said + source]
        if self.broker_log:
            lines += ["mosquitto's log:", *(f"  {line}" for line in self.broker_log)]
        return "\n".join(lines)


def failure_kind(raw: RawErrors) -> str:
    """The kind of failure (a key of :data:`MOSQUITTO_PUB_WORDS`): which side refused or could not start."""
    for side in (raw.client, raw.broker):
        if side.words is not None and side.role in ("cannot start", "refused"):
            return f"{side.side} {side.role}"
    return "no error"


def mosquitto_failure_kind(raw: RawErrors, password: bytes | str | None = None) -> str:
    """The kind of failure a real mosquitto and mosquitto_pub meet on ``raw``'s lab: :func:`failure_kind`, except
    where the lab's handshake passes only because it sets ``VERIFY_X509_PARTIAL_CHAIN`` (strict as Python 3.13's
    default context). mosquitto 2.0.11 and mosquitto_pub keep OpenSSL's default, which takes only a self-signed
    certificate of the CA file as a trust anchor (an intermediate alone in ``ca.crt`` is no anchor), so the
    handshake is run once more with that flag off, and the side that refuses then names the kind."""
    import ssl

    from .handshake import handshake_contexts
    from .tlscontext import broker_context, client_context

    kind = failure_kind(raw)
    if kind != "no error":
        return kind
    client = L.FIRST_CLIENT.side(raw.folder)
    if not client.cert.exists():
        client = L.Side(client.ca, None, None)  # type: ignore[arg-type]
    try:
        contexts = broker_context(L.BROKER.side(raw.folder), password), client_context(client, password)
    except (ssl.SSLError, OSError, ValueError):
        return kind
    for context in contexts:
        context.verify_flags &= ~ssl.VERIFY_X509_PARTIAL_CHAIN
    result = handshake_contexts(*contexts, raw.hostname)
    return kind if result.ok else f"{result.refused_by or 'client'} refused"


def _pub_args(folder: Path, hostname: str, port: int | str) -> list[str]:
    args = ["-h", hostname, "-p", str(port), "--cafile", "client/ca.crt"]
    if (folder / "client" / "client.crt").exists():
        args += ["--cert", "client/client.crt", "--key", "client/client.key"]
    return [*args, "-t", "lab/mystery", "-m", "hello", "-q", "1"]


def mosquitto_run(folder: Path, raw: RawErrors, hostname: str = HOSTNAME, password: bytes | str | None = None
                  ) -> MosquittoRun:
    """Start mosquitto on ``folder``'s broker files (127.0.0.1, a free port), publish once with
    ``mosquitto_pub`` and the client's files, and keep what each printed. Without mosquitto, the line
    from :data:`MOSQUITTO_PUB_WORDS` for the kind of failure mosquitto would meet (:func:`mosquitto_failure_kind`;
    ``password`` opens the lab's keys for it)."""
    from .breakit import run_tool
    from .errors import LabError
    from .mosquitto import MosquittoBroker, find_mosquitto, free_port

    program, pub = find_mosquitto(), shutil.which("mosquitto_pub")
    if program is None or pub is None:
        shown = _pub_args(folder, hostname, "PORT")
        return MosquittoRun("mosquitto_pub " + " ".join(shown),
                            MOSQUITTO_PUB_WORDS[mosquitto_failure_kind(raw, password)][0], (), False)
    broker = MosquittoBroker(folder, program=program)
    try:
        try:
            broker.start()
            port = broker.port or free_port()
        except LabError:
            port = free_port()  # mosquitto stopped at start: nothing listens there
        args = _pub_args(folder, hostname, port)
        output, _ = run_tool("mosquitto_pub", pub, args, folder, timeout=20)
        deadline = time.monotonic() + 2
        while broker.running and time.monotonic() < deadline and not any(
                "disconnected" in line for line in broker.log):
            time.sleep(0.02)  # mosquitto logs the end of the connection a moment after the client exits
    finally:
        broker.stop()
    log = tuple(line for line in broker.log if _LOG_LINE.search(line) and "listen socket" not in line)
    shown = _pub_args(folder, hostname, "PORT")  # the port changes at every run
    return MosquittoRun("mosquitto_pub " + " ".join(shown), output, log, True)


# --- a mystery on disk: the evidence, inspect, the answer ---------------------------------------------------

def _first_error(run: VerifyRun) -> str:
    """One line for one ``openssl verify`` run: ``OK``, or its first ``error N at D depth lookup`` line."""
    if run.output is None:
        return "(openssl is not installed here)"
    lines = run.output.splitlines()
    if run.exit_code == 0:
        return lines[-1].split(": ")[-1] if lines else "OK"
    errors = [line for line in lines if re.match(r"error \d+ at \d+ depth", line)]
    if not errors:
        return lines[-1] if lines else "(no output)"
    return errors[0] + (f" (+{len(errors) - 1} more)" if len(errors) > 1 else "")


def _log_line(log: tuple[str, ...]) -> str:
    """The line of mosquitto's log that says most: its OpenSSL error when there is one."""
    if not log:
        return "(nothing about this connection)"
    picked = next((line for line in log if "OpenSSL Error" in line), log[0])
    return picked + (f" (+{len(log) - 1} more)" if len(log) > 1 else "")


def _side(side: SideError) -> str:
    return str(side) if side.words is None else f"{side.side} {side.role}: {side.words}"


@dataclass(frozen=True)
class Evidence:
    """Everything a user sees of a broken lab, raw: no arrow, no file at fault, no fix.

    Shown one line per tool and side (each side's error, mosquitto_pub, mosquitto's log, each openssl
    verify); :meth:`details` gives the commands as typed and every line of their output.
    """

    raw: RawErrors
    mosquitto: MosquittoRun | None
    files: tuple[str, ...]

    def __str__(self) -> str:
        rows: list[tuple[str, str]] = [("Python ssl", _side(self.raw.client)), ("", _side(self.raw.broker))]
        if self.mosquitto is not None:
            said = self.mosquitto.output or "(nothing: the message was published)"
            if not self.mosquitto.real:
                said += " (mosquitto is not installed here: the line mosquitto_pub 2.0.11 prints)"
            rows.append(("mosquitto_pub", said))
            if self.mosquitto.real:
                rows.append(("mosquitto log", _log_line(self.mosquitto.broker_log)))
        for number, run in enumerate(self.raw.verify_runs):
            # "openssl verify [options] -CAfile TRUST CERT": the last two words name the files.
            trust, cert = run.command.split()[-2:]
            rows.append(("openssl verify" if number == 0 else "", f"{cert} (CAfile {trust}): {_first_error(run)}"))
        width = max(len(tool) for tool, _ in rows)
        lines = [f"The client connects to {self.raw.hostname!r}.",
                 *(f"{tool:<{width}}  {text}" for tool, text in rows)]
        if set(self.files) != set(lab_file_names()):
            lines.append("Files: " + ", ".join(self.files))
        lines.append('Everything each tool printed: .details() · one file\'s facts: .inspect("folder/name")')
        return "\n".join(lines)

    def details(self) -> Details:
        """The evidence in full: the commands as typed, every line each tool printed, and the files."""
        parts = [f"The client connects to {self.raw.hostname!r}.",
                 "In-memory handshake (Python's ssl, strict as 3.13):", f"  {self.raw.client}",
                 f"  {self.raw.broker}"]
        if self.mosquitto is not None:
            parts += ["mosquitto_pub against mosquitto on these files:",
                      *(f"  {line}" for line in str(self.mosquitto).splitlines())]
        parts += ["openssl verify:", *(f"  {line}" for run in self.raw.verify_runs for line in str(run).splitlines())]
        parts.append("Files: " + ", ".join(self.files))
        return Details("\n".join(parts))

    def _repr_html_(self) -> str:
        # One block of monospace text, as a terminal shows logs; kept short for the notebook's output.
        return _pre(str(self))


def _pre(text: str) -> str:
    return (f"<div style='border-left:6px solid #6b7280;padding:2px 8px'>"
            f"<pre style='white-space:pre-wrap;margin:0'>{escape(text)}</pre></div>")


class Details(str):
    """The whole evidence as text (:meth:`Evidence.details`), shown in a notebook as a terminal would."""

    __slots__ = ()

    def _repr_html_(self) -> str:
        return _pre(str(self))


@dataclass(frozen=True)
class Facts:
    """The facts of one file (field and value, as ``mqtt-pki-lab inspect`` lists them), without the
    explanations: in a mystery the student works out what they mean."""

    file: str
    kind: str
    rows: tuple[tuple[str, str], ...]

    def __str__(self) -> str:
        width = max((len(k) for k, _ in self.rows), default=0)
        return "\n".join([f"{self.file}: {self.kind}", *(f"  {k:<{width}}  {v}" for k, v in self.rows)])

    def _repr_html_(self) -> str:
        return _pre(str(self))


def gather_evidence(folder: str | Path, hostname: str = HOSTNAME, password: bytes | str | None = None,
                    *, mosquitto: bool = True) -> Evidence:
    """The evidence of the broken lab in ``folder`` (:class:`Evidence`); ``mosquitto`` False skips the
    real broker (a few hundred milliseconds)."""
    from .breakit import raw_errors

    raw = raw_errors(folder, hostname, password)
    run = mosquitto_run(raw.folder, raw, hostname, password) if mosquitto else None
    return Evidence(raw, run, list_files(raw.folder))


def list_files(folder: Path) -> tuple[str, ...]:
    """The regular files in a lab folder, as ``folder/name`` (what ``ls -R`` would show a user)."""
    return tuple(sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                        if p.is_file() and not p.is_symlink()))


class Case:
    """A broken lab on disk, as a student works on it: the evidence, ``inspect``, then an answer.

    ``scenario`` stays in the object (for the judge) and is never shown: ``repr`` and the evidence name
    only the folder.
    """

    def __init__(self, folder: str | Path, scenario: str | Scenario, *, hostname: str = HOSTNAME,
                 password: bytes | str | None = None, mosquitto: bool = True) -> None:
        from .breakit import get_scenario

        self.folder = Path(folder)
        self._scenario = get_scenario(scenario)
        self.hostname = hostname
        self.password = password
        self.mosquitto = mosquitto
        self.tries = 0
        self.revealed = False
        self._evidence: Evidence | None = None

    @property
    def evidence(self) -> Evidence:
        """What a user sees (gathered once)."""
        if self._evidence is None:
            self._evidence = gather_evidence(self.folder, self.hostname, self.password, mosquitto=self.mosquitto)
        return self._evidence

    def inspect(self, file: str) -> Facts | str:
        """The facts of one file of the broken lab (``"broker/server.crt"``): subject, issuer, validity,
        key, extensions... (:func:`~mqtt_pki_lab.explain.explain_file` without its explanations). A key is
        described (type, fingerprint, permissions), never printed."""
        from .errors import LabError
        from .explain import explain_file

        name = normalise(str(file)).removeprefix("./")
        files = list_files(self.folder)
        if name not in files:
            return f"No file {str(file)[:60]!r} here. The files: {', '.join(files)}."
        try:
            found = explain_file(self.folder / name, self.password)
        except LabError as error:
            return str(error)
        return Facts(name, found.kind, tuple((field, value) for field, value, _ in found.rows))

    def answer(self, arrow: Any) -> Feedback:
        """Judge an arrow as this lab's diagnosis; counts the wrong tries, reveals after enough of them."""
        verdict = judge_arrow(self._scenario, arrow, tries=self.tries, folder=self.folder, hostname=self.hostname)
        self.revealed |= isinstance(verdict, Reveal)
        self.tries += counts_as_try(arrow, verdict)
        return verdict

    def __repr__(self) -> str:
        return f"Case({str(self.folder)!r})"

    def details(self) -> Details:
        """The evidence in full (:meth:`Evidence.details`): the commands and every line of their output."""
        return self.evidence.details()

    def __str__(self) -> str:
        return str(self.evidence)

    def _repr_html_(self) -> str:
        return self.evidence._repr_html_()


def mystery_folder(number: int) -> Path:
    """Where mystery ``number``'s broken copy lives: ``workdir()/mysteries/mystery-N``."""
    from .coursework import workdir

    return workdir() / MYSTERY_FOLDER / f"mystery-{int(number)}"


def open_mystery(lab: Lab, number: int, *, mosquitto: bool = True) -> Case:
    """Mystery ``number`` of notebook 07 on a broken copy of ``lab`` (made once, then reused)."""
    from .breakit import break_lab

    mystery = get_mystery(number)
    out = mystery_folder(number)
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        break_lab(lab.root, mystery.scenario, out, lab.options.passphrase)
    return Case(out, mystery.scenario, hostname=lab.options.hostname, password=lab.options.passphrase,
                mosquitto=mosquitto)


_TRIES: dict[int, int] = {}


def answer_mystery(number: int, answer: Any) -> Feedback:
    """The judge of exercise ``mystery-N``: the arrow at fault, with tries counted in this kernel."""
    mystery = get_mystery(number)
    folder = mystery_folder(number)
    verdict = judge_arrow(mystery.scenario, answer, tries=_TRIES.get(number, 0),
                          folder=folder if folder.is_dir() else None)
    _TRIES[number] = _TRIES.get(number, 0) + counts_as_try(answer, verdict)
    if verdict.correct and mystery.asks_file and not mystery.file_first:
        # The file is the next exercise's answer: name only the arrow, the whole story comes with the file.
        return Feedback(True, f"Right: arrow {mystery.arrow} ({ARROW_TITLES[mystery.arrow]}). Now the file at "
                              "fault: the next exercise asks it, and its answer tells what happened, why, and "
                              "the fix.")
    return verdict
