"""Exercises of notebook 10 (day two): revocation, a stale list, a renewal the broker must read, the mysteries.

The facts the judges hold, and where they come from:

* A CRL entry may carry a reason code (RFC 5280 §5.3.1); the lab offers ``unspecified`` (no code),
  ``keyCompromise``, ``affiliationChanged``, ``superseded``, ``cessationOfOperation`` and ``privilegeWithdrawn``
  (:data:`mqtt_pki_lab.crl.REASONS`). A stolen device's key is in someone else's hands: ``keyCompromise``.
* OpenSSL, so mosquitto and Python's ``ssl``, refuses every certificate it checks against a CRL whose nextUpdate
  has passed ("CRL has expired"): with mosquitto's ``crlfile`` that is every client (checked with mosquitto
  2.0.11 and OpenSSL 3.0, tests/test_mqtt_revoke.py).
* mosquitto 2.0 reads ``certfile`` and ``keyfile`` again on SIGHUP (``man 8 mosquitto``, SIGNALS;
  ``mosquitto.conf(5)``, certfile; its 2.0.0 ChangeLog), and ``crlfile`` (its 1.6.5 ChangeLog: "Fix CRL file not
  being reloaded on HUP"); with ``crlfile`` set it rebuilds the whole TLS context, ``cafile`` included, without
  it ``cafile`` is read only at start (measured with 2.0.11, tests/test_mqtt_renew.py). Debian's unit reloads
  with ``kill -HUP``. SIGTERM stops it, SIGUSR1 writes its persistence database, SIGUSR2 logs its subscription
  tree.
"""

from __future__ import annotations

import re
from typing import Any

from . import Verdict, exercise, normalise, reveal, right, typed_path, wants_answer

NOTEBOOK = "10_day_two.ipynb"
#: What a student types to see the story without guessing further (as in notebooks 07 and 09).


# --- revoke-reason ------------------------------------------------------------------------------------------

_REASON_HINTS = {
    "unspecified": "`unspecified` writes no reason at all (RFC 5280 says to leave the code out then). Someone "
                   "else holds this device's key: which reason says exactly that?",
    "cessationOfOperation": "cessationOfOperation is for a device retired on purpose. This one was stolen: what "
                            "about its private key?",
    "superseded": "superseded means a new certificate replaces this one. Here nobody replaces it: the thief holds "
                  "the key.",
    "affiliationChanged": "affiliationChanged is a change of name or owner. A theft is about the key: who else "
                          "may hold it now?",
    "privilegeWithdrawn": "privilegeWithdrawn says the device may no longer connect, not why. RFC 5280 has a "
                          "reason for a key in the wrong hands.",
    "certificateHold": "certificateHold is a temporary hold that can be lifted; the lab does not offer it (its "
                       "revocations are final), and a stolen key does not come back.",
    "cACompromise": "cACompromise is about a CA's key. The stolen key is the device's own.",
    "unknown": "{answer!r} is not a reason code of RFC 5280 §5.3.1 (crl.REASONS lists the ones the lab offers, "
               "by their RFC names). A thief holds the device, and with it something secret: which reason is "
               "about that?",
    "not-text": "give the reason's RFC 5280 name as text, e.g. \"superseded\".",
}


def _reason_name(answer: str) -> str:
    """``"key compromise"``, ``"key_compromise"``, ``"KeyCompromise"`` -> ``keycompromise``."""
    return re.sub(r"[\s_\-]", "", answer.strip().strip("'\"`")).lower()


@exercise("revoke-reason", NOTEBOOK, "the RFC 5280 reason code for revoking a stolen device",
          hint="RFC 5280 §5.3.1 lists why a certificate is revoked; for a stolen device, think of its private key.",
          hints=tuple(_REASON_HINTS.values()))
def _reason(answer: Any) -> Verdict:
    from ..crl import REASONS

    if not isinstance(answer, str):
        return _REASON_HINTS["not-text"]
    name = _reason_name(answer)
    known = {_reason_name(k): k for k in (*REASONS, "certificateHold", "cACompromise")}
    found = known.get(name)
    if found == "keyCompromise":
        return right("keyCompromise: the private key is, or may be, in someone else's hands. The reason goes into "
                     "the list (RFC 5280 §5.3.1) so that whoever reads it knows why; the broker refuses the "
                     "certificate whatever the reason.")
    if found is not None:
        return _REASON_HINTS[found]
    return _REASON_HINTS["unknown"].format(answer=answer.strip()[:40])


# --- crl-stale-refused ----------------------------------------------------------------------------------------

_STALE_HINTS = {
    "only-revoked": "that is what a *current* list does. Past its nextUpdate OpenSSL cannot know whether the list "
                    "is still true, so it fails every certificate it checks against it. Whose certificates does "
                    "the broker check against broker/crl.pem?",
    "nobody": "a stale list is not ignored: OpenSSL treats it as an error (\"CRL has expired\") for each "
              "certificate it checks with it.",
    "some": "the broker checks every client's certificate against the same list: a stale list fails them all "
            "alike, revoked or not. You left out: {missing}.",
    "extra": "{extra} is not a client of the lab (its clients: {clients}).",
    "not-names": "give the names of the clients mosquitto refuses, as a set of strings, e.g. {\"client\"}, or "
                 "\"everyone\" / \"nobody\".",
}
_EVERYONE = frozenset({"everyone", "every client", "all", "all clients", "all of them", "everybody"})
_NOBODY = frozenset({"nobody", "none", "no one", "noone", "no client"})


def _lab_clients() -> list[str]:
    from ..coursework import workdir
    from ..steps import Lab

    return [role.name for role in Lab(workdir() / "pki").roles.clients]


@exercise("crl-stale-refused", NOTEBOOK, "which clients mosquitto refuses once the revocation list is stale",
          hint="the broker checks each client's certificate against broker/crl.pem; what does OpenSSL do with a list "
               "whose nextUpdate has passed?",
          hints=tuple(_STALE_HINTS.values()))
def _stale(answer: Any, *, revoked: str = "stolen-sensor") -> Verdict:
    clients = _lab_clients()
    story = ("every client: OpenSSL fails each certificate it checks against a list past its nextUpdate (\"CRL "
             "has expired\"), and with crlfile mosquitto checks every client. Each is then sent the alert "
             "\"certificate expired\" (TLS has no alert for a stale list), although no certificate expired. A "
             "forgotten `mqtt-pki-lab crl DIR --refresh` shuts the whole fleet out: sign it again well before "
             "nextUpdate (verify warns 7 days ahead, `status --expiring N` lists it).")
    if isinstance(answer, str):
        typed = normalise(answer)
        if typed in _EVERYONE:
            return right(story)
        if typed in _NOBODY:
            return _STALE_HINTS["nobody"]
        answer = {answer.strip()}
    if not isinstance(answer, set | frozenset | list | tuple) or not all(isinstance(n, str) for n in answer):
        return _STALE_HINTS["not-names"]
    names = {n.strip() for n in answer}
    if not names:
        return _STALE_HINTS["nobody"]
    extra = sorted(names - set(clients))
    if extra:
        return _STALE_HINTS["extra"].format(extra=extra[0][:40], clients=", ".join(clients))
    if names == set(clients):
        return right(story)
    if names == {revoked}:
        return _STALE_HINTS["only-revoked"]
    return _STALE_HINTS["some"].format(missing=", ".join(sorted(set(clients) - names)))


# --- renew-signal -----------------------------------------------------------------------------------------------

_SIGNAL_HINTS = {
    "term": "SIGTERM (kill PID) stops mosquitto: every connected client is dropped, and it serves nobody until "
            "started again. Which signal makes it read its files while it keeps running?",
    "kill": "SIGKILL ends mosquitto at once, without even a clean shutdown; nothing is reloaded.",
    "restart": "a restart works, but drops every connected client. mosquitto 2.0 can read server.crt and "
               "server.key again without that: which signal (man 8 mosquitto, SIGNALS)?",
    "usr1": "SIGUSR1 makes mosquitto write its persistence database to disk; it reads no file.",
    "usr2": "SIGUSR2 makes mosquitto log its subscription tree; it reads no file.",
    "int": "SIGINT stops mosquitto, as Ctrl-C does.",
    "unknown": "{answer!r}: give a signal's name (e.g. \"SIGTERM\") or the command that sends it.",
}
_SIGNALS = {"hup": "hup", "1": "hup", "sighup": "hup", "term": "term", "15": "term", "sigterm": "term",
            "kill": "kill", "9": "kill", "sigkill": "kill", "usr1": "usr1", "sigusr1": "usr1", "10": "usr1",
            "usr2": "usr2", "sigusr2": "usr2", "12": "usr2", "int": "int", "sigint": "int", "2": "int"}


def _signal_of(answer: str) -> str | None:
    """The signal an answer names: ``SIGHUP``, ``HUP``, ``kill -HUP 1234``, ``systemctl reload mosquitto``."""
    typed = normalise(answer)
    if re.search(r"\breload\b", typed):
        return "hup"  # Debian's mosquitto.service: ExecReload=/bin/kill -HUP $MAINPID
    if re.search(r"\brestart\b|\bstop\b", typed):
        return "restart"
    flag = re.search(r"(?:^|\s)-(?:s\s+)?(\w+)", typed)
    word = flag.group(1) if flag and typed.startswith(("kill", "pkill")) else (
        "term" if re.fullmatch(r"kill(\s+\$?\w+)?", typed) else typed.split()[0] if typed else "")
    return _SIGNALS.get(word.removeprefix("-"))


@exercise("renew-signal", NOTEBOOK, "the signal that makes a running mosquitto read its renewed certificate",
          hint="man 8 mosquitto, SIGNALS: one signal makes mosquitto read its configuration (and certificates) "
               "again while it keeps running.",
          hints=tuple(_SIGNAL_HINTS.values()))
def _signal(answer: Any) -> Verdict:
    if isinstance(answer, int) and not isinstance(answer, bool):
        answer = str(answer)
    if not isinstance(answer, str):
        return _SIGNAL_HINTS["unknown"].format(answer=str(answer)[:40])
    found = _signal_of(answer)
    if found == "hup":
        return right("SIGHUP (kill -HUP PID; `systemctl reload mosquitto` sends it on Debian). mosquitto 2.0 reads "
                     "certfile, keyfile and crlfile again and keeps its process and its connected clients; new "
                     "connections get the new certificate. With crlfile set (as in this lab) it builds its whole TLS "
                     "context anew, cafile included; without crlfile a new ca.crt needs a restart.")
    if found is not None:
        return _SIGNAL_HINTS[found]
    return _SIGNAL_HINTS["unknown"].format(answer=answer.strip()[:40])


# --- the mysteries (mqtt_pki_lab.daytwo_mysteries) ---------------------------------------------------------------

def _judge_step(answer: Any, step: int, story: str, hints: dict[int, str], other: str) -> Verdict:
    """A step mystery: ``step`` is right (the story follows), a known wrong step earns its hint, another
    ``other``; "show me" shows the story; what is not a step number gets a sentence."""
    from ..mysteries import parse_arrow

    if wants_answer(answer):
        return reveal(story)
    picked = parse_arrow(answer)
    if isinstance(picked, str):
        return picked.replace("1 to 10", "1 to 10, or a day-two step (11 revoke, 12 renew)")
    return right(story) if picked == step else hints.get(picked, other)


_REVOKED_STORY = ("step 11, revoke. The CA put client.crt on its revocation list (reason keyCompromise: somebody "
                  "typed `revoke pki client` for the stolen device) and the broker checks broker/crl.pem: OpenSSL "
                  "says \"certificate revoked\" and the client is told so by an alert. Its files are all valid, "
                  "and openssl verify says OK because it checks no list unless told to (-crl_check -CRLfile "
                  "broker/crl.pem). A device already connected when the list changed stays connected: only new "
                  "handshakes are checked, so restart the broker to cut it off at once. Revocation is final: if the "
                  "wrong device was revoked, it gets a new key and certificate under a new name (add-client), and "
                  "the stolen one is revoked too.")
_REVOKED_HINTS = {
    8: "client.crt is valid: openssl verify says OK, and the broker knows whose it is. It refused it anyway: "
       "what does the client's alert say?",
    9: "client/ca.crt is right: the client accepted the broker. The broker refused the client.",
    6: "client.key matches client.crt (the client sent its certificate and proved its key).",
    10: "step 10 makes nothing: the handshake only shows the refusal. Which step makes the list that refused it?",
    12: "a renewal gives a new serial; nothing was renewed here, and the lab will not renew a revoked certificate.",
    5: "the broker's files are fine: the client accepted the broker's certificate.",
}


@exercise("daytwo-mystery-revoked", NOTEBOOK, "day-two mystery 1: the step (1-12) at fault",
          hint="read the alert the client was told, and remember which day-two step writes broker/crl.pem.",
          hints=tuple(_REVOKED_HINTS.values()))
def _mystery_revoked(answer: Any) -> Verdict:
    return _judge_step(answer, 11, _REVOKED_STORY, _REVOKED_HINTS, "look at which side refused, and which file that "
                       "side read besides the three files of the diagram.")


_STALE_STORY = ("broker/crl.pem. Its nextUpdate passed yesterday (`mqtt-pki-lab crl` of the copy says STALE): the "
                "list was signed 31 days ago with the lab's 30-day window and never again. OpenSSL then fails every "
                "certificate it checks against it (\"CRL has expired\"), so the broker refuses every client, revoked "
                "or not, and sends each the alert \"certificate expired\": TLS has no alert for a stale list, and "
                "OpenSSL picks that one, though no certificate expired. Fix: sign it again (mqtt-pki-lab crl DIR "
                "--refresh writes ca/crl.pem and broker/crl.pem), then SIGHUP mosquitto; and refresh it on a "
                "schedule, well before nextUpdate (`mqtt-pki-lab status DIR --expiring 7` exits 1 in time, for "
                "cron).")
_STALE_FILE_HINTS = {
    "record": "ca/crl.pem is stale too, but it is the CA's record: which copy does the broker read (crlfile)?",
    "leaf": "{file} is fine, and it cannot explain why every client is refused at once. What do all of their "
            "handshakes go through on the broker's side?",
    "trust": "{file} is unchanged: every ca.crt is the lab's CA. The broker said something else: read its words.",
    "server": "{file} is fine: the clients accepted the broker's certificate. The broker refused them.",
    "key": "{file} is fine: a wrong key stops a side before it talks; here the broker refused each client.",
    "unknown": "{file!r} is not a file of the copy. Its broker folder holds acl, ca.crt, crl.pem, server.crt, "
               "server.csr, server.key.",
    "not-text": "give the file's path inside the lab folder as text, e.g. \"broker/server.crt\".",
}


@exercise("daytwo-mystery-stale", NOTEBOOK, "day-two mystery 2: the file at fault when every client is refused",
          hint="the broker refused every client with the same words. Which file does the broker check every client "
               "against, besides ca.crt?",
          hints=tuple(_STALE_FILE_HINTS.values()))
def _mystery_stale(answer: Any) -> Verdict:
    typed = typed_path(answer) if isinstance(answer, str) else None
    if typed is None:
        return _STALE_FILE_HINTS["not-text"]
    if wants_answer(answer):
        return reveal(_STALE_STORY)
    name = typed.rsplit("/", 1)[-1]
    if typed == "broker/crl.pem":
        return right(_STALE_STORY)
    if typed in ("ca/crl.pem", "crl.pem"):
        return _STALE_FILE_HINTS["record"]
    if name in ("client.crt", "client.csr"):
        return _STALE_FILE_HINTS["leaf"].format(file=typed)
    if name == "ca.crt":
        return _STALE_FILE_HINTS["trust"].format(file=typed)
    if name in ("server.crt", "server.csr"):
        return _STALE_FILE_HINTS["server"].format(file=typed)
    if name.endswith(".key"):
        return _STALE_FILE_HINTS["key"].format(file=typed)
    return _STALE_FILE_HINTS["unknown"].format(file=str(answer).strip()[:60])


_RELOAD_STORY = ("step 12, renew, half done. The renewal wrote a good broker/server.crt (valid for a year; the "
                 "expired one is in backups/), but mosquitto read its certfile when it started and keeps that "
                 "certificate in memory: it still presents the old serial, and the client refuses it as expired. "
                 "The files are right (verify of the folder passes; `verify --live HOST:PORT` also asks the running "
                 "broker, and names step 12): the running process is not. Fix: kill -HUP "
                 "<mosquitto's pid> (systemctl reload mosquitto): mosquitto 2.0 reads certfile and keyfile again, "
                 "keeps its connected clients, and new connections get the new certificate.")
_RELOAD_HINTS = {
    5: "arrow 5 made a certificate, and the renewal made a new one: broker/server.crt on disk is valid (openssl "
       "x509 says so). Compare its serial with the serial the broker presents.",
    3: "server.key is fine: the renewal kept it, and the handshake got as far as the certificate's dates.",
    4: "server.csr only asked for a certificate: the renewal made a new one from it. Which certificate is the "
       "broker showing?",
    9: "ca.crt did not change, and the client found the broker's issuer: it refused the certificate's dates.",
    10: "step 10 makes nothing: it shows the problem. The serial the broker presents is not the one on disk: "
        "which step ends with the broker reading the new file?",
    11: "nothing was revoked: the client refused the broker's certificate as expired.",
    8: "the client's own certificate is fine: the client refused the broker's.",
}


@exercise("daytwo-mystery-reload", NOTEBOOK, "day-two mystery 3: the step (1-12) left half done",
          hint="compare the serial and end date the broker presents with those of broker/server.crt on disk. "
               "Which step wrote the file, and what must a running broker do before it uses it?",
          hints=tuple(_RELOAD_HINTS.values()))
def _mystery_reload(answer: Any) -> Verdict:
    return _judge_step(answer, 12, _RELOAD_STORY, _RELOAD_HINTS, "the file on disk is new and valid; the broker "
                       "presents something else. What did the operator do just before, and what is its last part?")


_OLD_ROOT_STORY = ("client/ca.crt. During a rotation every side must trust both roots before anything is signed by "
                   "the new one (step 16 hands out the bundle). This client's ca.crt holds only the old root, and the "
                   "broker now presents a certificate of the new root (step 17): the client cannot build a chain to "
                   "anything it trusts (\"unable to get local issuer certificate\") and hangs up. The broker accepts "
                   "the client: its bundle holds both roots. Fix: hand the client the bundle (mqtt-pki-lab rotate DIR "
                   "reissue client writes it into a ca.crt that lacks the new root; a device that holds its own "
                   "files: install the new client.crt and ca.crt there). "
                   "finish refuses to retire the old root while a side still depends on it.")
_OLD_ROOT_HINTS = {
    "server": "{file} is a good certificate of the new root (inspect its issuer): the clients that have the bundle "
              "accept it. What did this client check it against?",
    "leaf": "{file} was re-issued by the new root and the broker accepted it: the broker holds the bundle. The client "
            "is the side that refused.",
    "broker-trust": "broker/ca.crt holds both roots (inspect it: two certificates), so the broker accepted the "
                    "client. The client refused the broker.",
    "root": "{file} is the root it should be (the old one stays in ca/ until the rotation finishes). Which copy of "
            "the roots did the client read?",
    "key": "{file} is fine: keys do not change in a rotation (same keys, new certificates).",
    "unknown": "{file!r} is not a file of the copy (m4.inspect(\"x\") lists its files).",
    "which-trust": "every side has its own ca.crt: give the folder too (client/ca.crt, broker/ca.crt, "
                   "ca/ca.crt...). Which side refused, and which copy did it read?",
    "not-text": "give the file's path inside the lab folder as text, e.g. \"broker/server.crt\".",
}


@exercise("daytwo-mystery-old-root", NOTEBOOK, "day-two mystery 4: the file that keeps the client out mid-rotation",
          hint="the client refused the broker. Which file does a client check the broker's certificate against, and "
               "which roots does this client's copy hold (inspect it)?",
          hints=tuple(_OLD_ROOT_HINTS.values()))
def _mystery_old_root(answer: Any) -> Verdict:
    typed = typed_path(answer) if isinstance(answer, str) else None
    if typed is None:
        return _OLD_ROOT_HINTS["not-text"]
    if wants_answer(answer):
        return reveal(_OLD_ROOT_STORY)
    name = typed.rsplit("/", 1)[-1]
    if typed == "client/ca.crt":
        return right(_OLD_ROOT_STORY)
    if typed == "broker/ca.crt":
        return _OLD_ROOT_HINTS["broker-trust"]
    if typed == "ca.crt":
        return _OLD_ROOT_HINTS["which-trust"]
    if typed in ("ca/ca.crt", "ca-next/ca.crt"):
        return _OLD_ROOT_HINTS["root"].format(file=typed)
    if name in ("server.crt", "server.csr"):
        return _OLD_ROOT_HINTS["server"].format(file=typed)
    if name in ("client.crt", "client.csr"):
        return _OLD_ROOT_HINTS["leaf"].format(file=typed)
    if name.endswith(".key"):
        return _OLD_ROOT_HINTS["key"].format(file=typed)
    return _OLD_ROOT_HINTS["unknown"].format(file=str(answer).strip()[:60])
