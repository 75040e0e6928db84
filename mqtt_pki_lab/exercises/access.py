"""Exercises of notebook 09 (who may do what): the broker's policy, keys born on the device, exports.

The facts the judges hold, and where they come from:

* TLS proves *who* a client is; with mosquitto's ``use_identity_as_username true`` its certificate's Common Name
  becomes its MQTT username. The policy (``broker/acl``, mosquitto's ``acl_file`` format, ``man
  mosquitto.conf``) says *what* that username may do. The lab's default: ``pattern readwrite devices/%u/#`` and
  ``pattern read shared/#`` (:func:`mqtt_pki_lab.acl.default_policy`); the answers here come from
  :func:`mqtt_pki_lab.acl.may`, the decision mosquitto 2.0 makes.
* In a rule, ``+`` is one whole level and ``#`` the last level only (MQTT 3.1.1 §4.7); ``read`` is receiving,
  ``write`` is publishing. ``topic`` lines apply to the user named by the ``user`` line above them.
* A CSR (RFC 2986) is signed with the key whose public half it carries: it proves that the sender holds that
  key, nothing about the name it asks for. Only the CSR travels to the CA; the certificate and ``ca.crt``
  travel back; the private key never moves.
* A PKCS#12 file (RFC 7292) holds a key, its certificate and the CA chain under one passphrase;
  :func:`cryptography.hazmat.primitives.serialization.pkcs12.load_key_and_certificates` reads it back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import exercise, reveal, right, typed_path, wants_answer

NOTEBOOK = "09_who_may_do_what.ipynb"

#: Exercise ``access-predict``: what sensor-2 tries under the lab's default policy (action, topic).
PREDICT: tuple[tuple[str, str], ...] = (
    ("publish", "devices/sensor-2/temperature"),
    ("receive", "devices/sensor-2/commands"),
    ("publish", "devices/client/commands"),
    ("receive", "devices/client/temperature"),
    ("receive", "shared/announcements"),
    ("publish", "shared/announcements"),
)
#: Who tries them.
PREDICT_USER = "sensor-2"
_ACTION = {"publish": "write", "receive": "read"}


def predict_questions() -> list[str]:
    """The keys of the answer dictionary, in order: ``"publish devices/sensor-2/temperature"``..."""
    return [f"{action} {topic}" for action, topic in PREDICT]


def predict_truth() -> dict[str, bool]:
    """What the default policy allows sensor-2, as mosquitto decides it (:func:`mqtt_pki_lab.acl.may`)."""
    from ..acl import default_policy, may

    policy = default_policy()
    return {f"{action} {topic}": may(policy, PREDICT_USER, topic, _ACTION[action]) for action, topic in PREDICT}


_PREDICT_HINTS = {
    "own": "{key!r}: pattern lines fill %u with the client's own username. For sensor-2, devices/%u/# is "
           "devices/sensor-2/#: its own subtree, read and write.",
    "other": "{key!r}: for sensor-2, devices/%u/# becomes devices/sensor-2/#. Does that match this topic? And does "
             "any other line of broker/acl? What no line grants is refused.",
    "shared-read": "{key!r}: `pattern read shared/#` lets every client receive what is published under shared/.",
    "shared-write": "{key!r}: the shared/# line grants `read` only: receiving, not publishing.",
    "shape": "`allowed` must keep its six keys as the cell has them, each with the value True (allowed) or False "
             "(refused).{detail}",
}


@exercise("access-predict", NOTEBOOK, "predict what sensor-2 may publish and receive under the default policy",
          hint="read broker/acl line by line with sensor-2 in place of %u: a line grants read (receive), write "
               "(publish) or both; anything not granted is refused.",
          hints=tuple(_PREDICT_HINTS.values()))
def _predict(answer: Any) -> Any:
    truth = predict_truth()
    if not isinstance(answer, dict):
        return _PREDICT_HINTS["shape"].format(detail=f" You gave a {type(answer).__name__}.")
    missing = [k for k in truth if k not in answer]
    if missing or len(answer) != len(truth):
        detail = f" Missing: {missing[0]!r}." if missing else " It has keys the cell did not have."
        return _PREDICT_HINTS["shape"].format(detail=detail)
    given = {str(k): v for k, v in answer.items()}
    if all(v is Ellipsis for v in given.values()):
        from . import Feedback

        return Feedback(False, "Not answered yet: replace each ... with True or False and run the cell again.",
                        answered=False)
    if any(v is Ellipsis for v in given.values()):
        return "some answers are still `...`: replace each with True or False."
    odd = next((k for k, v in given.items() if not isinstance(v, bool)), None)
    if odd is not None:
        return _PREDICT_HINTS["shape"].format(detail=f" {odd!r} is {given[odd]!r}.")
    for key, allowed in truth.items():
        if given[key] == allowed:
            continue
        action, topic = key.split(" ", 1)
        if topic.startswith(f"devices/{PREDICT_USER}/"):
            return _PREDICT_HINTS["own"].format(key=key)
        if topic.startswith("devices/"):
            return _PREDICT_HINTS["other"].format(key=key)
        return _PREDICT_HINTS["shared-read" if action == "receive" else "shared-write"].format(key=key)
    return right("sensor-2 may use its own subtree both ways and read shared/; another device's topics are "
                 "refused both ways. The username in %u is the CN of the certificate the broker verified, so "
                 "a device cannot claim another's subtree without that device's key.")


#: Exercise ``access-rule``: the dashboard (user ``client``) must read every device's temperature, nothing more.
RULE_USER = "client"
RULE_TOPICS_YES = ("devices/sensor-1/temperature", "devices/sensor-2/temperature", "devices/door-lock/temperature")
RULE_TOPICS_NO = ("devices/sensor-2/commands", "devices/sensor-2/temperature/raw", "shared/x/temperature")

_RULE_HINTS = {
    "not-text": "give the rule as one line of text, e.g. \"topic read devices/...\".",
    "words": "a rule under `user client` has three words: `topic`, the access (read, write or readwrite) and "
             "the topic filter.",
    "pattern": "`pattern` lines are for every client (with %u for each one's name). This rule is for the "
               "dashboard only: the line under `user client` starts with `topic`.",
    "access": "the dashboard only receives temperatures: the access is `read` (`readwrite` would also let it "
              "publish, e.g. fake readings in another device's name).",
    "write": "`write` is publishing: with it the dashboard could send readings but still receive none. Receiving "
             "is `read`.",
    "keyword": "{word!r} is not a word of mosquitto's acl_file: a line is `topic ACCESS FILTER`, ACCESS one of read, "
               "write, readwrite or deny, all in lower case (mosquitto compares them exactly).",
    "deny": "`deny` refuses; the dashboard needs to be allowed to receive.",
    "bad-filter": "{problem}",
    "percent": "%u is filled in only in `pattern` lines, and would be the dashboard's own name anyway. Name "
               "the devices' level with a wildcard.",
    "misses": "your filter does not match {topic}: one level of the topic changes from device to device; "
              "`+` matches exactly one level.",
    "too-broad": "your filter also matches {topic}: the dashboard must read temperatures only, not the "
                 "devices' commands or sub-topics.",
}


@exercise("access-rule", NOTEBOOK, "write the ACL line that lets the dashboard read every device's temperature",
          hint="a line under `user client` reads `topic ACCESS FILTER`; devices publish to "
               "devices/<name>/temperature, and `+` stands for one whole level.",
          hints=tuple(_RULE_HINTS.values()))
def _rule(answer: Any) -> Any:
    from ..acl import check_pattern, topic_matches
    from ..errors import InputError

    if not isinstance(answer, str):
        return _RULE_HINTS["not-text"]
    words = answer.split()
    if len(words) != 3:
        return _RULE_HINTS["words"]
    if words[0] not in ("topic", "pattern"):
        return _RULE_HINTS["keyword"].format(word=words[0])
    kind, access, topic = words
    if kind == "pattern":
        return _RULE_HINTS["pattern"]
    if access == "deny":
        return _RULE_HINTS["deny"]
    if access not in ("read", "write", "readwrite"):
        return _RULE_HINTS["keyword"].format(word=access)
    if "%u" in topic or "%c" in topic:
        return _RULE_HINTS["percent"]
    try:
        check_pattern(topic, "rule", for_one=True)
    except InputError as error:
        return _RULE_HINTS["bad-filter"].format(problem=error.problem)
    for wanted in RULE_TOPICS_YES:
        if not topic_matches(topic, wanted):
            return _RULE_HINTS["misses"].format(topic=wanted)
    for unwanted in RULE_TOPICS_NO:
        if topic_matches(topic, unwanted):
            return _RULE_HINTS["too-broad"].format(topic=unwanted)
    if access == "write":
        return _RULE_HINTS["write"]
    if access != "read":
        return _RULE_HINTS["access"]
    return right(f"`user client` then `{answer.strip()}`: one rule for one username, the least it needs. "
                 "mosquitto reads it at start (and again on SIGHUP); the embedded broker asks the same file.")


#: Exercise ``device-key-where``: the file ``clients/sensor-2/`` has and ``clients/thermostat/`` does not.
_WHERE_HINTS = {
    "note": "key-on-device.txt is the other way round: thermostat/ has it and sensor-2/ does not. It is the "
            "lab's note that the key lives on the device.",
    "same": "{name} is in both folders: the CA signed both devices' CSRs and handed both a ca.crt.",
    "unknown": "{name!r} is in neither folder: list both with sorted(p.name for p in folder.iterdir()).",
    "not-text": "give one file name as text, e.g. \"client.csr\".",
}


@exercise("device-key-where", NOTEBOOK, "name the file the lab holds for sensor-2 but not for the thermostat",
          hint="compare the two folders' file lists: the thermostat made one of its files itself, on the device.",
          hints=tuple(_WHERE_HINTS.values()))
def _key_where(answer: Any) -> Any:
    if not isinstance(answer, str | Path):
        return _WHERE_HINTS["not-text"]
    name = Path(str(answer).strip()).name
    if name == "client.key":
        return right("clients/thermostat/ holds the CSR, the certificate and ca.crt, all public: the lab, and "
                     "whoever can read it, cannot impersonate the thermostat. sensor-2's key was made here and "
                     "would have to be copied to its device: a secret that then exists twice.")
    if name == "key-on-device.txt":
        return _WHERE_HINTS["note"]
    if name in ("client.csr", "client.crt", "ca.crt"):
        return _WHERE_HINTS["same"].format(name=name)
    return _WHERE_HINTS["unknown"].format(name=str(answer).strip()[:60])


_P12_HINTS = {
    "bytes": "that is the file's raw bytes. Load them: pkcs12.load_key_and_certificates(data, passphrase.encode()) "
             "(the password is bytes).",
    "shape": "pass the whole result of load_key_and_certificates: a tuple (key, certificate, CA certificates).",
    "no-key": "the tuple has no key: was the file exported without one? Use the p12 made above.",
    "mismatch": "the key and the certificate in your tuple do not belong together: did you mix two files?",
    "no-ca": "the CA certificates are missing: the device needs ca.crt to check the broker. Use the p12 made "
             "above (it holds the chain).",
}


@exercise("p12-load", NOTEBOOK, "load the PKCS#12 file back with its passphrase",
          hint="read the file's bytes, then call pkcs12.load_key_and_certificates(data, passphrase) with the "
               "passphrase as bytes.",
          hints=tuple(_P12_HINTS.values()), kind="code")
def _p12(answer: Any) -> Any:
    from cryptography import x509

    from ..certificates import common_name, is_ca
    from ..keys import public_key_fingerprint

    if isinstance(answer, bytes | bytearray):
        return _P12_HINTS["bytes"]
    if not isinstance(answer, tuple) or len(answer) != 3:
        return _P12_HINTS["shape"]
    key, cert, extra = answer
    if key is None:
        return _P12_HINTS["no-key"]
    if not isinstance(cert, x509.Certificate) or not isinstance(extra, list):
        return _P12_HINTS["shape"]
    if public_key_fingerprint(key.public_key()) != public_key_fingerprint(cert.public_key()):
        return _P12_HINTS["mismatch"]
    if not any(isinstance(c, x509.Certificate) and is_ca(c) for c in extra):
        return _P12_HINTS["no-ca"]
    return right(f"One file, one passphrase: the key, CN={common_name(cert)}'s certificate and the CA certificate "
                 "it trusts. That is what an Android or Java client imports into its keystore.")


# --- the two mysteries (mqtt_pki_lab.access_mysteries) ----------------------------------------------------------

_TOPIC_STORY = ("broker/acl, the broker's policy. Both clients proved who they are (CONNACK: Success), the "
                "subscription was granted and the reading acknowledged: the certificates did their job. Then, for "
                "each message on its way out, mosquitto asks the policy whether the subscriber may `read` its topic. "
                "The dashboard (username client) may read devices/client/# (`pattern readwrite devices/%u/#`) and "
                "shared/# (`pattern read shared/#`), nothing of sensor-2's, so the reading is dropped without a "
                "word (MQTT 3.1.1 has no way to say so). Fix: a rule for the dashboard in broker/acl, which exercise 2 "
                "below asks you to write.")
_TOPIC_HINTS = {
    "certificate": "{file} is fine: the broker verified the certificates and answered CONNACK: Success to both "
                   "clients. A certificate says who a client is; what decides what that client may receive?",
    "trust": "{file} is fine: every TLS handshake succeeded, so each side trusted the other's certificate. The "
             "problem starts after the CONNECT.",
    "key": "{file} is fine: a wrong key would have stopped the TLS handshake; both clients connected.",
    "conf": "close: mosquitto.conf only points at the file that holds the rules (acl_file ...). Which file is that?",
    "unknown": "{file!r} is not a file of the lab's broker or clients. List them with sorted(p.relative_to(lab.root)"
               ".as_posix() for p in lab.root.rglob('*') if p.is_file()).",
}


@exercise("access-mystery-topic", NOTEBOOK, "name the file that keeps the reading from the dashboard",
          hint="both connected and the broker acknowledged the reading: the certificates did their job. Which file "
               "does the broker read to decide what each username may receive?",
          hints=tuple(_TOPIC_HINTS.values()))
def _mystery_topic(answer: Any) -> Any:
    typed = typed_path(answer)
    if typed is None:
        return "give the file's path inside the lab folder as text, e.g. \"broker/server.crt\"."
    if wants_answer(answer):
        return reveal(_TOPIC_STORY)
    name = typed.rsplit("/", 1)[-1]
    if typed in ("broker/acl", "acl") or typed.endswith("/broker/acl"):
        return right(_TOPIC_STORY)
    if name in ("mosquitto.conf", "acl_file"):
        return _TOPIC_HINTS["conf"]
    if name in ("client.crt", "server.crt", "client.csr", "server.csr"):
        return _TOPIC_HINTS["certificate"].format(file=typed)
    if name == "ca.crt":
        return _TOPIC_HINTS["trust"].format(file=typed)
    if name in ("client.key", "server.key", "ca.key"):
        return _TOPIC_HINTS["key"].format(file=typed)
    return _TOPIC_HINTS["unknown"].format(file=str(answer).strip()[:60])


_KEY_STORY = ("client.crt. It is sensor-2's certificate (inspect it: CN=sensor-2), copied by hand: it carries "
              "sensor-2's public key, and this device's client.key is the private half of another one. OpenSSL "
              "refuses to load a pair that does not belong together (KEY_VALUES_MISMATCH), before any connection. "
              "The key is right, it was born here; the certificate must be made for it. Fix: send this device's "
              "client.csr to the CA (mqtt-pki-lab sign LAB client.csr), then `mqtt-pki-lab install` what comes "
              "back: install compares the certificate's public key with the device's key, and would have refused "
              "this copy.")
_KEY_HINTS = {
    "key": "inspect client.csr too: this device made it from client.key, for CN=garage-door. Compare its key "
           "fingerprint with client.key's and with client.crt's: which of the three is the odd one out?",
    "ca": "ca.crt only checks the broker, later, during the handshake. The error comes earlier, when the device "
          "loads its own certificate and key.",
    "csr": "client.csr is not used to connect: its job ended when it was sent to the CA.",
    "unknown": "{file!r} is not in the device's folder: its files are ca.crt, client.crt, client.csr, client.key.",
    "lab": "{file!r} is a file of the lab, not of the device: which file of the device's own folder is wrong?",
}


@exercise("access-mystery-key", NOTEBOOK, "name the file of the device folder that is wrong",
          hint="the error says the key and the certificate do not belong together. inspect both and compare the "
               "public key fingerprints: which one was not made for this device?",
          hints=tuple(_KEY_HINTS.values()))
def _mystery_key(answer: Any) -> Any:
    typed = typed_path(answer)
    if typed is None:
        return "give a file name of the device's folder as text, e.g. \"client.csr\"."
    if wants_answer(answer):
        return reveal(_KEY_STORY)
    folder, _, name = typed.rpartition("/")
    if folder and not folder.endswith(("device-garage-door", "mysteries/device-garage-door")):
        return _KEY_HINTS["lab"].format(file=str(answer).strip()[:60])
    if name == "client.crt":
        return right(_KEY_STORY)
    if name == "client.key":
        return _KEY_HINTS["key"]
    if name == "ca.crt":
        return _KEY_HINTS["ca"]
    if name == "client.csr":
        return _KEY_HINTS["csr"]
    return _KEY_HINTS["unknown"].format(file=str(answer).strip()[:60])
