"""Exercises of notebook 12 (your own devices): a second lab with your broker's names, and a
``mosquitto_pub`` command line a device could run.

The facts the judges hold, and where they come from:

* A client compares the name it dials with the broker certificate's subjectAltName (RFC 6125; Python's
  ``ssl`` and mosquitto's clients do): the broker's DNS name and LAN IP must both be in the SAN when
  devices use both. ``localhost``, ``127.0.0.1`` and ``::1`` are in every lab broker's SAN already.
* mosquitto_pub(1): TLS is on only when ``--cafile`` (or ``--capath``) is given; ``--cert`` and ``--key``
  are the client's own certificate and key; without ``-p`` it connects to 8883 when TLS is on, 1883
  otherwise; ``--insecure`` "disables verification of the server hostname in the server certificate";
  ``-t`` names the topic and ``-m`` the message.
* ``localhost`` (RFC 6761 §6.3) and the loopback addresses ``127.0.0.0/8`` (RFC 1122 §3.2.1.3) and ``::1``
  (RFC 4291 §2.5.3) always mean the machine that dials them: on a device, the device itself. So a device's
  command dials one of the broker's own names, never ``-h localhost``.
"""

from __future__ import annotations

import ipaddress
import shlex
from pathlib import Path
from typing import Any

from . import exercise, right

NOTEBOOK = "12_your_own_devices.ipynb"


def _root_of(answer: Any) -> Path | None:
    """The lab folder of a :class:`~mqtt_pki_lab.steps.Lab`, a :class:`~pathlib.Path` or a str; None for
    anything else.

    The Lab is asked first, by type: a path has a ``root`` attribute too (``Path("/x/y").root`` is ``"/"``,
    the root of the file system), so "whatever has a ``.root``" would judge every Path as the folder ``/``.
    """
    from ..steps import Lab

    if isinstance(answer, Lab):
        answer = answer.root
    if isinstance(answer, Path):
        return answer
    if isinstance(answer, str) and answer.strip():
        return Path(answer.strip())
    return None


def broker_san(root: Path) -> list[str] | None:
    """The names in ``root``'s broker/server.crt subjectAltName; None when it cannot be read."""
    from .. import diagram as L
    from ..certificates import host_names
    from ..pem import load_certificate

    path = L.SERVER_CERT.path(root)
    if not path.is_file():
        return None
    try:
        return host_names(load_certificate(path))
    except Exception:  # a damaged file: the hint says to build again
        return None


_OWN_LAB_HINTS = {
    "outside": "put the lab inside course.workdir() (e.g. course.workdir() / \"my-devices\"), where the course "
               "keeps its work, not {root}.",
    "course-lab": "that is your course lab (workdir()/pki). Make a second lab in a new folder, so the course's "
                  "lab stays as the notebooks expect it.",
    "not-built": "{root} has no broker certificate yet: build the lab (mine.build_all()) before checking it.",
    "only-local": "server.crt lists only the local names ({names}). Give your broker's own name: "
                  "BuildOptions(server_names=(\"mqtt.home.arpa\", \"192.168.1.50\")).",
    "name-missing": "{name!r} is not in server.crt's subjectAltName ({names}): a device dialling it would get "
                    "'Hostname mismatch'. Was the lab built before you chose the name? Build it in a new folder.",
}


@exercise("devices-own-lab", NOTEBOOK, "build a second lab with your broker's names and check it",
          hint="make a Lab in a new folder inside course.workdir() with BuildOptions(server_names=(your DNS name, "
               "your LAN IP)), build it, and pass the Lab to check.",
          hints=tuple(_OWN_LAB_HINTS.values()))
def _own_lab(answer: Any, name: str | None = None) -> Any:
    from ..coursework import workdir
    from ..errors import InputError
    from ..names import check_host_name, is_ip
    from ..profile import LOCAL_NAMES
    from ..verify import verify_lab

    root = _root_of(answer)
    if root is None:
        return f"pass your Lab (or its folder), not a {type(answer).__name__}."
    root, home = root.resolve(), workdir()
    if not root.is_relative_to(home) or root == home:
        return _OWN_LAB_HINTS["outside"].format(root=root)
    if root == home / "pki":
        return _OWN_LAB_HINTS["course-lab"]
    names = broker_san(root)
    if names is None:
        return _OWN_LAB_HINTS["not-built"].format(root=root)
    own = [n for n in names if n not in LOCAL_NAMES]
    if not own:
        return _OWN_LAB_HINTS["only-local"].format(names=", ".join(names))
    dialled = own[0]
    if name is not None:
        try:
            dialled = check_host_name(name, "name")
        except InputError as error:
            return f"name={name!r}: {error.problem}"
        if dialled not in names:
            return _OWN_LAB_HINTS["name-missing"].format(name=dialled, names=", ".join(names))
    report = verify_lab(root, hostname=dialled)
    if not report.ok:
        return f"verify {root.name} with hostname {dialled!r} fails: {report.diagnosis or 'see verify_lab'}."
    ip = "" if any(is_ip(n) for n in own) else \
        " Add the broker's LAN IP too if a device dials it by address (no local DNS)."
    return right(f"{root.name}: verify passes for {dialled!r}, and server.crt names {', '.join(own)} besides "
                 f"the local names.{ip}")


_PUB_HINTS = {
    "not-pub": "start with the program: mosquitto_pub, then its options.",
    "no-cafile": "without --cafile mosquitto_pub does not use TLS at all: it speaks plain MQTT to the port, "
                 "and the broker refuses. Give --cafile with the client's ca.crt.",
    "os-certs": "--tls-use-os-certs trusts the system's public CAs; your broker's certificate comes from your "
                "own CA. Give --cafile with the client's ca.crt.",
    "ca-key": "ca.key is the CA's secret: it never leaves ca/ and never goes near a device. --cafile takes "
              "ca.crt, the public certificate that checks the broker.",
    "cafile-not-ca": "--cafile is the CA certificate the client trusts (ca.crt), not {file}.",
    "insecure": "--insecure switches off the check that the broker's certificate names the host you dialled: "
                "anyone with a certificate from the same CA could pose as your broker. Put the name in the "
                "SAN instead, and drop --insecure.",
    "port-1883": "1883 is plain MQTT; the broker listens for TLS on 8883 (or leave -p out: mosquitto_pub uses "
                 "8883 when --cafile is given).",
    "no-cert": "the broker demands a client certificate (require_certificate true): give --cert with the "
               "client's client.crt.",
    "no-key": "give --key with the client's client.key: the certificate alone proves nothing without its key.",
    "cert-is-key": "--cert takes the certificate (client.crt) and --key the private key (client.key); yours "
                   "are swapped or wrong: --cert {cert}, --key {key}.",
    "server-files": "{file} is the broker's file: a client presents its own client.crt and client.key "
                    "(a broker certificate has serverAuth only, and the broker refuses it as a client's).",
    "two-clients": "--cert and --key come from different folders ({a} and {b}): a certificate works only with "
                   "its own key.",
    "no-host": "give -h with the broker's name: without it mosquitto_pub dials localhost, not your broker.",
    "local-host": "-h {host} reaches the broker only from the broker's own machine: on a device, {host} is the "
                  "device itself. A device dials the broker's real name or LAN IP, {where}.",
    "host-not-in-san": "-h {host}: that name is not in the broker certificate's subjectAltName ({names}), so "
                       "the client would refuse the broker ('Hostname mismatch'). Dial a name the certificate "
                       "lists.",
    "no-topic": "mosquitto_pub needs a topic (-t) and a message (-m).",
}


def _options(words: list[str]) -> tuple[dict[str, str], set[str]]:
    """The options of a mosquitto_pub command line: ``{option: value}`` and the flags without a value."""
    flags = {"--insecure", "--tls-use-os-certs", "-d", "--debug", "-r", "--retain", "-n", "--null-message",
             "-l", "--stdin-line", "-s", "--stdin-file", "--quiet"}
    long_names = {"--host": "-h", "--port": "-p", "--topic": "-t", "--message": "-m", "--qos": "-q"}
    values: dict[str, str] = {}
    seen: set[str] = set()
    i = 0
    while i < len(words):
        word = words[i]
        if "=" in word and word.startswith("--"):
            word, value = word.split("=", 1)
            values[long_names.get(word, word)] = value
        elif word in flags:
            seen.add(word)
        elif word.startswith("-") and i + 1 < len(words):
            values[long_names.get(word, word)] = words[i + 1]
            i += 1
        else:
            seen.add(word)
        i += 1
    return values, seen


@exercise("devices-pub-command", NOTEBOOK, "write the mosquitto_pub command line for a client",
          hint="mosquitto_pub -h BROKER -p 8883 --cafile .../ca.crt --cert .../client.crt --key .../client.key "
               "-t TOPIC -m MESSAGE, with the files of one client of your lab.",
          hints=tuple(_PUB_HINTS.values()))
def _pub_command(answer: Any, lab: Any = None) -> Any:
    from ..errors import InputError
    from ..names import check_host_name, is_ip
    from ..profile import LOCAL_NAMES

    if not isinstance(answer, str):
        return f"type the command line as one string (you gave a {type(answer).__name__})."
    try:
        words = shlex.split(answer)
    except ValueError as error:
        return f"the shell could not read that line ({error}): check the quotes."
    if not words or Path(words[0]).name != "mosquitto_pub":
        return _PUB_HINTS["not-pub"]
    values, flags = _options(words[1:])
    cafile, cert, key = values.get("--cafile"), values.get("--cert"), values.get("--key")
    names = [Path(p).name for p in (cafile, cert, key) if p]
    if "ca.key" in names:
        return _PUB_HINTS["ca-key"]
    if "--insecure" in flags:
        return _PUB_HINTS["insecure"]
    if cafile is None and "--capath" not in values:
        return _PUB_HINTS["os-certs" if "--tls-use-os-certs" in flags else "no-cafile"]
    if cafile is not None and Path(cafile).name != "ca.crt":
        return _PUB_HINTS["cafile-not-ca"].format(file=Path(cafile).name)
    if values.get("-p") == "1883":
        return _PUB_HINTS["port-1883"]
    if cert is None:
        return _PUB_HINTS["no-cert"]
    if key is None:
        return _PUB_HINTS["no-key"]
    for path in (cert, key):
        if Path(path).name.startswith("server."):
            return _PUB_HINTS["server-files"].format(file=Path(path).name)
    if Path(cert).name != "client.crt" or Path(key).name != "client.key":
        return _PUB_HINTS["cert-is-key"].format(cert=Path(cert).name, key=Path(key).name)
    if Path(cert).parent != Path(key).parent:
        return _PUB_HINTS["two-clients"].format(a=Path(cert).parent, b=Path(key).parent)
    host = values.get("-h")
    if host is None:
        return _PUB_HINTS["no-host"]
    try:
        host = check_host_name(host, "-h")
    except InputError as error:
        return f"-h {host}: {error.problem}"
    root = _root_of(lab)
    san = broker_san(root) if root is not None else None
    if host in LOCAL_NAMES or (is_ip(host) and ipaddress.ip_address(host).is_loopback):
        own = [n for n in san or () if n not in LOCAL_NAMES]
        where = f"one that server.crt lists ({', '.join(own)})" if own else (
            "and your lab's server.crt lists only the local names: build a lab with your broker's names "
            "(exercise 1) and use its files" if san is not None else "one that server.crt lists")
        return _PUB_HINTS["local-host"].format(host=host, where=where)
    if san is not None and host not in san:
        return _PUB_HINTS["host-not-in-san"].format(host=host, names=", ".join(san))
    if "-t" not in values or not ({"-m", "-f"} & set(values) or {"-n", "--null-message", "-l", "-s"} & flags):
        return _PUB_HINTS["no-topic"]
    return right(f"TLS with --cafile (the CA that checks the broker), the client's own --cert and --key, "
                 f"dialling {host} (a name server.crt lists), on {values.get('-p', '8883 (the default with TLS)')}. "
                 "The broker reads the certificate's CN as the username.")
