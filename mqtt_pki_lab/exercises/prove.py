"""Exercises of notebook 05 (hand out ``ca.crt`` and prove it, arrows 9-10): the TLS 1.3 handshake.

* ``broker-flight``: type the broker's messages, from ServerHello to its Finished, in order (RFC 8446 §2);
* ``proof-of-key``: which message proves that the broker holds ``server.key`` (CertificateVerify);
* ``client-messages``: read the transcript object to list the messages the client sent;
* ``trust-fix``: after the raw errors of a client that trusts another CA, name the file to fix.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from . import Feedback, exercise, normalise, right

NOTEBOOK = "05_hand_out_and_prove.ipynb"

#: The broker's flight in a TLS 1.3 handshake with a client certificate (RFC 8446 §2, §4.3.2).
BROKER_FLIGHT = ("ServerHello", "EncryptedExtensions", "CertificateRequest", "Certificate", "CertificateVerify",
                 "Finished")
CLIENT_MESSAGES = ("ClientHello", "Certificate", "CertificateVerify", "Finished")
_TLS12 = {"serverhellodone": "ServerHelloDone", "serverkeyexchange": "ServerKeyExchange",
          "clientkeyexchange": "ClientKeyExchange", "changecipherspec": "ChangeCipherSpec"}


def _message_names(answer: Any) -> list[str] | None:
    """The answer as message names without spaces or underscores (``server_hello`` -> ``serverhello``)."""
    if isinstance(answer, str):
        answer = [p for p in re.split(r"[,;\n]+|\s*(?:->|→)\s*", answer) if p.strip()]
    if not isinstance(answer, Iterable) or isinstance(answer, (bytes, dict)):
        return None
    names: list[str] = []
    for item in answer:
        name = getattr(item, "name", item)  # a TlsMessage of the transcript is fine too
        if not isinstance(name, str):
            return None
        names.append(re.sub(r"[\s_\-\"'`]", "", name).lower())
    return names


# --- broker-flight ------------------------------------------------------------------------------------------------

_FLIGHT_TLS12 = ("{name} is a TLS 1.2 message; TLS 1.3 has no such message (RFC 8446 §4: the key share rides in "
                 "the hellos, and everything after ServerHello is encrypted).")
_FLIGHT_CCS = ("ChangeCipherSpec is sent in TLS 1.3 only to please old middleboxes (RFC 8446 Appendix D.4); it "
               "is not a handshake message. Leave it out.")
_FLIGHT_NO_REQUEST = ("the broker must *ask* for the client's certificate, or the client sends none: which "
                      "message makes the TLS mutual?")
_FLIGHT_VERIFY_FIRST = ("CertificateVerify is a signature checked with the public key in the Certificate: the "
                        "certificate has to come first.")
_FLIGHT_FINISHED = "Finished closes the broker's flight: it is a MAC over every message before it."
_FLIGHT_HELLO = "the broker's flight starts with ServerHello, its answer to the ClientHello."
_FLIGHT_CLIENT = "ClientHello is the client's message; list only what the broker sends, from ServerHello on."
_FLIGHT_SESSION = ("NewSessionTicket comes after the handshake (a ticket to resume later); the broker's flight "
                   "ends with Finished.")
_FLIGHT_EE = ("EncryptedExtensions comes right after ServerHello: the first message under the new keys, it "
              "completes the hello with the settings that did not need to travel in clear (RFC 8446 §4.3.1).")
_FLIGHT_REQUEST_LATE = ("the broker asks for the client's certificate before it presents its own: "
                        "CertificateRequest follows EncryptedExtensions (RFC 8446 §4.3.2).")
_FLIGHT_GENERAL = ("list the broker's messages in order, from ServerHello to Finished, e.g. "
                   "[\"ServerHello\", ...]: six of them.")


@exercise("broker-flight", NOTEBOOK, "type the broker's TLS 1.3 messages, ServerHello to Finished, in order",
          hint=_FLIGHT_GENERAL,
          hints=(_FLIGHT_TLS12, _FLIGHT_CCS, _FLIGHT_NO_REQUEST, _FLIGHT_VERIFY_FIRST,
                 _FLIGHT_FINISHED, _FLIGHT_HELLO, _FLIGHT_CLIENT, _FLIGHT_SESSION, _FLIGHT_EE, _FLIGHT_REQUEST_LATE))
def _broker_flight(answer: Any) -> Feedback | str:
    names = _message_names(answer)
    if not names:
        return _FLIGHT_GENERAL
    for name in names:
        if name == "changecipherspec":
            return _FLIGHT_CCS
        if name in _TLS12:
            return _FLIGHT_TLS12.format(name=_TLS12[name])
    if "clienthello" in names:
        return _FLIGHT_CLIENT
    if "newsessionticket" in names:
        return _FLIGHT_SESSION
    expected = [n.lower() for n in BROKER_FLIGHT]
    if names == expected:
        return right("ServerHello (in clear), then, encrypted: EncryptedExtensions, CertificateRequest, "
                     "Certificate, CertificateVerify, Finished (RFC 8446 §2). The broker proves who it is "
                     "before the client says anything about itself.")
    if "certificaterequest" not in names:
        return _FLIGHT_NO_REQUEST
    if "certificateverify" in names and "certificate" in names and \
            names.index("certificateverify") < names.index("certificate"):
        return _FLIGHT_VERIFY_FIRST
    if names[0] != "serverhello":
        return _FLIGHT_HELLO
    if names[-1] != "finished":
        return _FLIGHT_FINISHED
    if "encryptedextensions" in names and names.index("encryptedextensions") != 1:
        return _FLIGHT_EE
    if "certificate" in names and names.index("certificaterequest") > names.index("certificate"):
        return _FLIGHT_REQUEST_LATE
    return _FLIGHT_GENERAL


# --- proof-of-key -------------------------------------------------------------------------------------------------

_KEY_CERTIFICATE = ("the Certificate message carries server.crt, which is public: anyone who has seen it once can "
                    "send a copy. Which message needs server.key itself?")
_KEY_FINISHED = ("Finished is a MAC made with keys from the key exchange: it proves nobody altered the messages, "
                 "but an impostor could compute it too. Which message is a *signature* with server.key?")
_KEY_HELLO = ("ServerHello carries a fresh key share for this connection, not server.key; it proves nothing "
              "about who sent it.")
_KEY_REQUEST = "CertificateRequest is the broker asking the *client* for a certificate."
_KEY_CLIENT = "that is the client's message; the question is about the broker's key."
_KEY_GENERAL = "type the name of one message of the handshake, e.g. ServerHello."


@exercise("proof-of-key", NOTEBOOK, "name the message that proves the broker holds server.key",
          hint=_KEY_GENERAL, hints=(_KEY_CERTIFICATE, _KEY_FINISHED, _KEY_HELLO, _KEY_REQUEST, _KEY_CLIENT))
def _proof_of_key(answer: Any) -> Feedback | str:
    names = _message_names([answer] if isinstance(answer, str) or hasattr(answer, "name") else answer)
    if not names or len(names) != 1:
        return _KEY_GENERAL
    name = names[0]
    if name == "certificateverify":
        return right("CertificateVerify: a signature with server.key over the whole handshake so far (RFC 8446 "
                     "§4.4.3). The transcript includes the client's fresh random, so it cannot be replayed from "
                     "an earlier connection: only the holder of server.key can produce it, now.")
    return {"certificate": _KEY_CERTIFICATE, "finished": _KEY_FINISHED, "serverhello": _KEY_HELLO,
            "certificaterequest": _KEY_REQUEST, "clienthello": _KEY_CLIENT,
            "encryptedextensions": _KEY_HELLO}.get(name, _KEY_GENERAL)


# --- client-messages ----------------------------------------------------------------------------------------------

_CLIENT_BROKER = ("those are (some of) the broker's messages. Keep the ones whose sender is \"client\":"
                  " transcript.sent_by(\"client\"), or [m.name for m in transcript.handshake"
                  " if m.sender == \"client\"].")
_CLIENT_NO_HELLO = "the client speaks first: its ClientHello opens the handshake."
_CLIENT_SENDER = "that is who sent one message; the question asks for the names of every message the client sent."
_CLIENT_OBJECT = ("that is the transcript object itself; ask it: transcript.sent_by(\"client\"), or loop over "
                  "transcript.handshake and keep m.name where m.sender == \"client\".")
_CLIENT_SESSION = "NewSessionTicket comes from the broker, after the handshake."
_CLIENT_GENERAL = "give a list of message names, in the order the client sent them."


@exercise("client-messages", NOTEBOOK, "list the messages the client sent, from the transcript", hint=_CLIENT_GENERAL,
          hints=(_CLIENT_BROKER, _CLIENT_NO_HELLO, _CLIENT_SENDER, _CLIENT_OBJECT, _CLIENT_SESSION), kind="code")
def _client_messages(answer: Any) -> Feedback | str:
    if hasattr(answer, "messages") and hasattr(answer, "sent_by"):
        return _CLIENT_OBJECT
    if isinstance(answer, str) and normalise(answer) in ("client", "broker", "both"):
        return _CLIENT_SENDER
    names = _message_names(answer)
    if not names:
        return _CLIENT_GENERAL
    if names == [n.lower() for n in CLIENT_MESSAGES]:
        return right("ClientHello, then (encrypted) Certificate, CertificateVerify, Finished: the client proves "
                     "who it is only after it has checked the broker, and only because the broker asked.")
    if "newsessionticket" in names:
        return _CLIENT_SESSION
    if any(n in names for n in ("serverhello", "encryptedextensions", "certificaterequest")):
        return _CLIENT_BROKER
    if "clienthello" not in names:
        return _CLIENT_NO_HELLO
    return _CLIENT_GENERAL


# --- trust-fix ----------------------------------------------------------------------------------------------------

_FIX_CA = ("ca/ca.crt is the CA's own certificate, and it is fine: the broker's certificate was signed by it. "
           "It is the *copy* one side holds that is not the same.")
_FIX_SERVER = ("broker/server.crt was signed by your CA, as it should be; nothing in the broker's box changed. "
               "Which side refused, and which file tells that side whom to trust?")
_FIX_BROKER_CA = ("broker/ca.crt tells the *broker* whom to trust. Read the errors again: which side refused "
                  "the other's certificate?")
_FIX_KEY = "no key is involved: keys prove possession, the trust question is answered by a CA certificate."
_FIX_CLIENT_CRT = "client/client.crt was never checked: the client refused before it sent it."
_FIX_WHICH = "there are three ca.crt files: ca/ca.crt, broker/ca.crt and client/ca.crt. Which one is wrong?"
_FIX_GENERAL = "type the path of one file in the lab, e.g. broker/server.crt."


@exercise("trust-fix", NOTEBOOK, "name the file to fix when the client trusts another CA", hint=_FIX_GENERAL,
          hints=(_FIX_CA, _FIX_SERVER, _FIX_BROKER_CA, _FIX_KEY, _FIX_CLIENT_CRT, _FIX_WHICH))
def _trust_fix(answer: Any) -> Feedback | str:
    if not isinstance(answer, str) or not answer.strip():
        return _FIX_GENERAL
    path = normalise(answer).removeprefix("./").removeprefix("pki/")
    if path == "client/ca.crt":
        return right("client/ca.crt: the client refused (\"certificate verify failed\") because its copy of the "
                     "CA's certificate is not the CA that signed server.crt. Copy ca/ca.crt there again (arrow "
                     "9); the broker only saw an alert (\"unknown ca\").")
    if path.endswith(".key"):
        return _FIX_KEY
    return {"ca/ca.crt": _FIX_CA, "ca.crt": _FIX_WHICH, "broker/server.crt": _FIX_SERVER, "server.crt": _FIX_SERVER,
            "broker/ca.crt": _FIX_BROKER_CA, "client/client.crt": _FIX_CLIENT_CRT,
            "client.crt": _FIX_CLIENT_CRT}.get(path, _FIX_GENERAL)


__all__ = ["BROKER_FLIGHT", "CLIENT_MESSAGES"]
