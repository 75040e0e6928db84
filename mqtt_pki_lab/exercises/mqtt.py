"""Exercises of notebook 06 (real MQTT): topic filters, CONNACK codes, mosquitto.conf, the TLS port.

The facts the judges hold, and where they come from:

* **Topic filters** (MQTT 3.1.1 §4.7, MQTT 5.0 §4.7): levels are separated by ``/``; ``+`` matches exactly
  one level, ``#`` matches any number of levels (the parent too) and must be the last character of the
  filter. There is no ``*``. A leading ``/`` makes an empty first level, so ``/devices/...`` is another
  topic tree than ``devices/...``.
* **CONNACK** (MQTT 3.1.1 §3.2.2.3): return code 0 accepted, 1 unacceptable protocol version, 2 identifier
  rejected, 3 server unavailable, 4 bad user name or password, 5 not authorized. MQTT 5.0 (§3.2.2.2) has
  reason codes instead: 0x86 (134) bad user name or password, 0x87 (135) not authorized.
* **mosquitto.conf** (the mosquitto.conf(5) man page): one setting per line, ``name value`` separated by
  whitespace, no ``=``; booleans are ``true`` / ``false`` (mosquitto 2.0 also takes ``1`` / ``0``, and
  refuses ``yes`` or ``True``: "Invalid require_certificate value").
* **Ports** (IANA's service name registry): 1883 is ``mqtt`` (plain TCP), 8883 is ``secure-mqtt``
  (MQTT over TLS).
"""

from __future__ import annotations

from typing import Any

from . import exercise, right

NOTEBOOK = "06_real_mqtt.ipynb"

#: Topics the sensors of exercise ``mqtt-topic-filter`` publish: the filter must match exactly the first two.
WANTED_TOPICS = ("devices/sensor-1/temperature", "devices/kitchen/temperature")
UNWANTED_TOPICS = ("devices/sensor-1/humidity", "devices/kitchen/temperature/raw", "rooms/kitchen/temperature",
                   "devices/temperature")


def topic_matches(topic_filter: str, topic: str) -> bool:
    """True when ``topic`` matches ``topic_filter`` by the rules of MQTT 3.1.1 §4.7.

    ``+`` matches exactly one level (an empty one too); ``#`` matches the rest of the topic, including the
    parent level itself (``sport/#`` matches ``sport``). A filter with a misplaced wildcard matches nothing.
    """
    if not valid_filter(topic_filter):
        return False
    wanted, levels = topic_filter.split("/"), topic.split("/")
    for i, part in enumerate(wanted):
        if part == "#":
            return True
        if i >= len(levels) or (part != "+" and part != levels[i]):
            return False
    return len(wanted) == len(levels)


def valid_filter(topic_filter: str) -> bool:
    """True for a well-formed filter: ``#`` only as the whole last level, ``+`` only as a whole level."""
    if not topic_filter:
        return False
    parts = topic_filter.split("/")
    for i, part in enumerate(parts):
        if "#" in part and (part != "#" or i != len(parts) - 1):
            return False
        if "+" in part and part != "+":
            return False
    return True


_FILTER_HINTS = {
    "star": "MQTT has no '*'. The wildcard for exactly one level is '+' (MQTT 3.1.1 §4.7.1.3).",
    "hash-middle": "'#' must be the last character of a filter: it swallows every level after it "
                   "(MQTT 3.1.1 §4.7.1.2). For exactly one level in the middle, use '+'.",
    "leading-slash": "a leading '/' makes an empty first level: '/devices/...' is another topic tree than "
                     "'devices/...'. Start with 'devices'.",
    "sub-topics": "the '/#' at the end also delivers every sub-topic, such as {extra}. The dashboard wants the "
                  "temperature topic itself, not its sub-topics: drop the '/#'.",
    "too-broad": "your filter also matches topics that are not a sensor's temperature (e.g. {extra}). "
                 "Pin the levels you know and wildcard only the sensor's name.",
    "too-narrow": "your filter misses {missing}: it must match every sensor, whatever its name. Which "
                  "wildcard stands for exactly one level?",
}


@exercise("mqtt-topic-filter", NOTEBOOK, "write the topic filter matching every sensor's temperature",
          hint="sensors publish to devices/<name>/temperature; one level of the topic changes from sensor to "
               "sensor. Which wildcard matches exactly one level?",
          hints=tuple(_FILTER_HINTS.values()))
def _topic_filter(answer: Any) -> Any:
    if not isinstance(answer, str):
        return f"type the filter as a string, e.g. \"devices/sensor-1/temperature\" (you gave a " \
               f"{type(answer).__name__})."
    text = answer.strip().strip("'\"`")
    if "*" in text:
        return _FILTER_HINTS["star"]
    if "#" in text and not valid_filter(text):
        return _FILTER_HINTS["hash-middle"]
    if text.startswith("/"):
        return _FILTER_HINTS["leading-slash"]
    if not valid_filter(text):
        return "that is not a valid topic filter: '+' and '#' must each fill a whole level (between slashes)."
    extra = [t for t in UNWANTED_TOPICS if topic_matches(text, t)]
    missing = [t for t in WANTED_TOPICS if not topic_matches(text, t)]
    if missing:
        return _FILTER_HINTS["too-narrow"].format(missing=missing[0])
    base = text[:-2]
    if extra and text.endswith("/#") and all(topic_matches(base, t) for t in WANTED_TOPICS) \
            and not any(topic_matches(base, t) for t in UNWANTED_TOPICS):
        return _FILTER_HINTS["sub-topics"].format(extra=extra[0])
    if extra:
        return _FILTER_HINTS["too-broad"].format(extra=extra[0])
    return right(f"{text!r}: '+' matches one level, so every devices/<name>/temperature and nothing else. "
                 "'devices/#' would also deliver humidity and every deeper topic.")


_CONNACK_MEANING = {
    0: "0 means 'connection accepted'.",
    1: "1 means 'unacceptable protocol version'.",
    2: "2 means 'identifier rejected' (the client id).",
    3: "3 means 'server unavailable'.",
    4: "4 is 'bad user name or password': the broker could not authenticate who you are. 'Not authorised' "
       "means it knows who you are, and you may not connect. Look one code further.",
    134: "0x86 (134) is MQTT 5's 'bad user name or password': close, but not 'not authorized'.",
    135: "0x87 (135) is MQTT 5's reason code for 'not authorized' (MQTT 5.0 §3.2.2.2); the question asks for "
         "MQTT 3.1.1's return code, the one this course's client receives: a number from 0 to 5.",
}
_CONNACK_HINTS = (*_CONNACK_MEANING.values(),
                  "a CONNACK return code is a small number (MQTT 3.1.1 §3.2.2.3, table 3.1): 0 to 5.")


def _as_code(answer: Any) -> int | None:
    """A return code typed as 5, "5", "0x05" or "0x87"; None when it is not a whole number."""
    if isinstance(answer, bool):
        return None
    if isinstance(answer, int):
        return answer
    if isinstance(answer, str):
        text = answer.strip().lower()
        try:
            return int(text, 16) if text.startswith("0x") else int(text)
        except ValueError:
            return None
    return None


@exercise("mqtt-not-authorised", NOTEBOOK, "give the CONNACK return code for 'not authorised'",
          hint="a CONNACK return code is a small number (MQTT 3.1.1 §3.2.2.3, table 3.1): 0 to 5.",
          hints=_CONNACK_HINTS)
def _not_authorised(answer: Any) -> Any:
    code = _as_code(answer)
    if code is None:
        return "type the return code as a number, e.g. 0 (which means 'accepted')."
    if code == 5:
        return right("CONNACK 5, 'not authorized' (MQTT 3.1.1 §3.2.2.3). mosquitto sends it, for one, when "
                     "require_certificate is on but use_identity_as_username is not, allow_anonymous is left "
                     "at its default (false) and the client sends no username; in MQTT 5 the same refusal is "
                     "reason code 0x87 (135).")
    if code in _CONNACK_MEANING:
        return _CONNACK_MEANING[code]
    return _CONNACK_HINTS[-1]


_CONF_HINTS = {
    "no-value": "a setting needs its value: mosquitto stops with 'Empty require_certificate value in "
                "configuration'. Which boolean turns it on?",
    "false": "false is the default: TLS then only encrypts, and any client connects without a certificate.",
    "equals": "mosquitto.conf has no '=': a line is 'name value', separated by a space. mosquitto would say "
              "'Invalid require_certificate value (=)'.",
    "bad-bool": "mosquitto's booleans are true and false, in lower case; 'yes' or 'True' stops it with "
                "'Invalid require_certificate value'.",
    "identity": "use_identity_as_username reads the CN of a certificate the client *has* presented; it "
                "demands nothing. Which setting makes the certificate compulsory?",
    "anonymous": "allow_anonymous is about MQTT usernames, not certificates. Look for the TLS setting of the "
                 "listener in the man page's 'Certificate based SSL/TLS Support'.",
    "cafile": "cafile says which CA the broker trusts to check a client's certificate; it does not make the "
              "certificate compulsory.",
}


@exercise("mqtt-require-certificate", NOTEBOOK, "complete the mosquitto.conf line that demands a client "
                                                 "certificate",
          hint="look at the exported mosquitto.conf above: which line says that a client must present a "
               "certificate? Write it as 'name value'.",
          hints=tuple(_CONF_HINTS.values()))
def _require_certificate(answer: Any) -> Any:
    if not isinstance(answer, str):
        return f"type the line as a string, e.g. \"allow_anonymous false\" (you gave a {type(answer).__name__})."
    words = answer.strip().strip("'\"`").split()
    if not words:
        return "the line is empty: type a setting and its value, e.g. \"allow_anonymous false\"."
    name, values = words[0], words[1:]
    if "=" in answer:
        return _CONF_HINTS["equals"]
    if name == "use_identity_as_username":
        return _CONF_HINTS["identity"]
    if name == "allow_anonymous":
        return _CONF_HINTS["anonymous"]
    if name in ("cafile", "capath"):
        return _CONF_HINTS["cafile"]
    if name != "require_certificate":
        return None  # the general hint
    if not values:
        return _CONF_HINTS["no-value"]
    if len(values) > 1:
        return "one value only: 'require_certificate' and then a single boolean."
    if values[0] in ("false", "0"):
        return _CONF_HINTS["false"]
    if values[0] not in ("true", "1"):
        return _CONF_HINTS["bad-bool"]
    note = "" if values[0] == "true" else " (mosquitto 2.0 reads 1 as true; 'true' says it more plainly)"
    return right(f"require_certificate true{note}: the TLS handshake fails unless the client presents a "
                 "certificate signed by cafile (mosquitto.conf(5)). Then use_identity_as_username turns its "
                 "CN into the MQTT username.")


_PORT_HINTS = {
    1883: "1883 is plain MQTT (IANA: 'mqtt'): everything, passwords included, crosses the network readable. "
          "The port for MQTT over TLS is registered separately.",
    443: "443 is HTTPS. MQTT over WebSockets can share it, but the port IANA registered for MQTT over TLS "
         "('secure-mqtt') is another one.",
    8884: "8884 is not a registered MQTT port (test.mosquitto.org happens to use it for a listener that wants a "
          "client certificate). Which port did IANA register as 'secure-mqtt'?",
}


@exercise("mqtt-tls-port", NOTEBOOK, "give the port number of MQTT over TLS",
          hint="IANA registered two ports for MQTT: 'mqtt' for plain TCP and 'secure-mqtt' for TLS. The exported "
               "mosquitto.conf's listener line shows the one the course uses.",
          hints=tuple(_PORT_HINTS.values()))
def _tls_port(answer: Any) -> Any:
    port = _as_code(answer)
    if port is None or (isinstance(answer, str) and not answer.strip().isdigit()):
        return "type the port as a number, e.g. 1883 (the port of plain MQTT)."
    if port == 8883:
        return right("8883, IANA's 'secure-mqtt'. A broker may listen anywhere, but clients and firewalls "
                     "expect 8883 for MQTT over TLS, and the exported mosquitto.conf uses it.")
    return _PORT_HINTS.get(port)


def _first_client_cn(lab: Any) -> str:
    """The Common Name in the lab's ``client/client.crt`` (the default client name when it cannot be read)."""
    from .. import diagram as L
    from ..certificates import common_name
    from ..pem import load_certificate
    from ..profile import DEFAULT_CLIENT_NAME

    root = getattr(lab, "root", lab)
    try:
        return common_name(load_certificate(L.CLIENT_CERT.path(root))) or DEFAULT_CLIENT_NAME
    except Exception:  # no lab given, or its certificate cannot be read: the course's default name
        return DEFAULT_CLIENT_NAME


_USERNAME_HINTS = {
    "file": "that is the file's name; the broker never sees file names. It reads a field *inside* the "
            "certificate the client presents.",
    "issuer": "that is the issuer, the CA that signed the certificate; every client shares it. The username "
              "must tell clients apart: it comes from the certificate's subject.",
    "organisation": "O=mqtt-pki-lab is the organisation, the same in every certificate of the lab; the "
                    "username must tell clients apart. Which other field of the subject names the client?",
    "cn-label": "right field, now its value: what does client/client.crt's subject say after CN=?",
}


@exercise("mqtt-username", NOTEBOOK, "give the MQTT username the broker sees for your first client",
          hint="with use_identity_as_username true, mosquitto takes the Common Name (CN) of the client's "
               "certificate as its username. Look at client/client.crt's subject (explain_file, or the "
               "broker's log line 'client certificate CN=...').",
          hints=tuple(_USERNAME_HINTS.values()))
def _username(answer: Any, lab: Any = None) -> Any:
    from ..profile import DEFAULT_CA_NAME

    if not isinstance(answer, str):
        return f"type the username as a string (you gave a {type(answer).__name__})."
    text = answer.strip().strip("'\"`")
    expected = _first_client_cn(lab)
    if text == expected:
        return right(f"{expected!r}: the Common Name of client/client.crt. The username a client types is "
                     "ignored; an ACL (a later lesson) grants topics to this name.")
    if text.lower() in ("client.crt", "client/client.crt", "client.key", "ca.crt"):
        return _USERNAME_HINTS["file"]
    if text.lower() in (DEFAULT_CA_NAME.lower(), "cn=" + DEFAULT_CA_NAME.lower()):
        return _USERNAME_HINTS["issuer"]
    if text.lower() in ("mqtt-pki-lab", "o=mqtt-pki-lab"):
        return _USERNAME_HINTS["organisation"]
    if text.lower() in ("cn", "common name", "commonname", "the common name") or text == f"CN={expected}":
        return _USERNAME_HINTS["cn-label"]
    return None
