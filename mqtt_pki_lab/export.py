"""Take the working configuration home: a mosquitto.conf and a ready client, for the lab's files.

* :func:`mosquitto_conf_text` is a complete ``mosquitto.conf`` with absolute paths to the broker's
  three files; ``mosquitto -c mosquitto.conf`` runs it unchanged.
* :func:`paho_snippet` is a small paho-mqtt 2.x program for a client's three files: it connects,
  subscribes, publishes at QoS 1 and prints its own message when it comes back.
* :func:`client_commands` are the matching ``mosquitto_sub`` / ``mosquitto_pub`` command lines.

The client is the lab's first one (``client/``) unless ``client`` names another: ``sensor-1`` selects
``clients/sensor-1/``. Every value that goes into a generated file is checked first: a port is a port,
``--bind`` is one address or host name, and no path may hold whitespace, so nothing a user types can add
a line of configuration of its own.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from . import diagram as L
from .acl import policy_file_for
from .certificates import common_name, host_names
from .crl import checked_broker_crl
from .errors import InputError
from .mosquitto import check_bind, check_port
from .mqtt_client import check_side_files
from .names import check_client_name, check_host_name
from .pem import load_certificate
from .steps import Lab

DEFAULT_PORT = 8883
#: The last level of the round trip's default topic: ``devices/<the client's username>/hello``, a topic the lab's
#: default policy (``broker/acl``: ``pattern readwrite devices/%u/#``) lets that client read and write.
DEFAULT_TOPIC_LEVEL = "hello"
DEFAULT_MESSAGE = "hello over mutual TLS"
#: What ``export client --only`` may print: both, the paho-mqtt program, or the shell lines.
PARTS = ("all", "python", "shell")


def _absolute(side: L.Side) -> L.Side:
    return L.Side(side.ca.resolve(), side.cert.resolve(), side.key.resolve())


def client_role(root: str | Path, client: str | None = None, where: str = "--client") -> L.Role:
    """The client of the lab ``root`` called ``client``: None is the first client (``client/``).

    A name is looked up as a folder name (``clients/NAME/``) and as an MQTT username (the Common Name
    in a client's certificate, so the first client answers to its own name too). ``where`` is the
    option or argument that gave the name, for the error message.
    """
    if client is None:
        return L.FIRST_CLIENT
    check_client_name(client, where)
    lab = Lab(root)
    found = lab.roles.client(client) or lab.client_names().get(client)
    if found is None:
        known = ", ".join(sorted(lab.client_names())) or "none"
        raise InputError(where, f"the lab {str(root)!r} has no client {client!r} (its clients: {known})")
    return found


def key_owner(path: Path) -> str | None:
    """The account that owns ``path`` (its numeric id when the account has no name); None off POSIX."""
    try:
        import pwd
    except ImportError:  # Windows: mosquitto has no `user` setting there
        return None
    uid = path.stat().st_uid
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def mosquitto_conf_text(root: str | Path, port: int = DEFAULT_PORT, bind: str | None = None,
                        client: str | None = None) -> str:
    """A ``mosquitto.conf`` for the lab folder ``root``: mutual TLS on ``port`` (every interface, or ``bind``).

    ``bind`` is one IP address or host name (checked: see :func:`~mqtt_pki_lab.mosquitto.check_bind`).
    ``client`` only changes the comment that tells how to get that client ready.
    When ``server.key`` belongs to an ordinary user, a ``user`` line names that user: mosquitto started
    by that user reads its files directly, and started as root it switches to that user before reading
    them. A key owned by root gets no ``user`` line but a warning: see :mod:`mqtt_pki_lab.mosquitto`.
    """
    from . import __version__
    from .mosquitto import mosquitto_conf, refuse_encrypted_key

    port, bind = check_port(port), check_bind(bind)
    role = client_role(root, client)
    side = _absolute(L.BROKER.side(root))
    check_side_files(side, L.BROKER)
    refuse_encrypted_key(side.key)
    crl = checked_broker_crl(side)  # a damaged list, or another CA's, is named: mosquitto would refuse everybody
    acl = policy_file_for(side)  # broker/acl, checked: a line mosquitto would refuse is named now
    body = mosquitto_conf(side, port, bind=bind, user=None, crl=crl, acl=acl)  # checks every path first
    owner = key_owner(side.key)
    which = f" --client {shlex.quote(client)}" if client is not None and role != L.FIRST_CLIENT else ""
    lab = side.ca.parent.parent  # the lab folder, resolved: its path passed the whitespace check above
    head = [
        f"# mosquitto.conf for the MQTT PKI in {lab} (made by mqtt-pki-lab {__version__})",
        "# Start it:   mosquitto -c mosquitto.conf",
        f"# Clients connect to port {port} with TLS and their own certificate; get one ready with:",
        f"#   mqtt-pki-lab export client {shlex.quote(str(lab))} --port {port}{which}",
        "#",
        "# Who runs it: mosquitto must be able to read server.key (0600). Started by the key's owner it",
        "# reads it directly. Started as root, it first switches to the user on the `user` line (default:",
        "# mosquitto) and only then reads the key.",
    ]
    user = None
    if owner is None:
        head += ["# On Windows, run mosquitto as the user who owns these files."]
    elif owner in ("root", "0"):
        head += ["# WARNING: server.key belongs to root. Started as root, mosquitto would become the user",
                 "# 'mosquitto' and fail with 'Unable to load server key file ... Permission denied'.",
                 f"# Give the files to the user that runs it, e.g.: chown -R mosquitto: {side.key.parent}",
                 "# and add the line: user mosquitto"]
    else:
        user = owner
        head += [f"# server.key belongs to {owner!r}: this file says `user {owner}`."]
    head += crl_comment(crl, lab)
    head += acl_comment(acl, lab)
    if user is not None:
        body = mosquitto_conf(side, port, bind=bind, user=user, crl=crl, acl=acl)
    return "\n".join(head) + "\n\n" + body


def acl_comment(acl: Path | None, lab: Path) -> list[str]:
    """The comment lines about ``acl_file``: which policy mosquitto enforces, or how to make one when the lab
    (made by an older version) has none. This export never writes into the lab."""
    if acl is None:
        return ["#",
                f"# No {L.BROKER.folder}/{L.ACL_FILE} in this lab (made by an older version), so no acl_file line: "
                "every client",
                "# may read and write every topic. Make the default policy (each client: devices/<its name>/#,",
                f"# and read shared/#) with: mqtt-pki-lab acl {shlex.quote(str(lab))} --reset, then export this "
                "file again."]
    return ["#",
            f"# acl_file: {L.BROKER.folder}/{L.ACL_FILE}, who may read and write which topics (mosquitto's acl_file "
            "format).",
            f"# Show or change it: mqtt-pki-lab acl {shlex.quote(str(lab))}. mosquitto reads it at start and on "
            "SIGHUP;",
            "# it warns that shared/# contains no %u or %c: expected, that rule is for every client."]


def crl_comment(crl: Path | None, lab: Path) -> list[str]:
    """The comment lines a ``mosquitto.conf`` with ``crlfile`` gets: what the list is, when mosquitto reads it,
    and its deadline (a warning when it has passed already). None: no lines."""
    if crl is None:
        return []
    import datetime as dt

    from .crl import load_crl

    deadline = load_crl(crl).next_update_utc
    lines = ["#",
             "# crlfile: broker/crl.pem, the CA's revocation list (mqtt-pki-lab revoke): mosquitto refuses the",
             "# clients it lists. It reads the file at start and again on SIGHUP (kill -HUP PID)."]
    if deadline is None:
        return lines
    lines += [f"# Its nextUpdate is {deadline:%Y-%m-%d %H:%M} UTC: after that mosquitto refuses EVERY client, so sign",
              f"# it again before then: mqtt-pki-lab crl {shlex.quote(str(lab))} --refresh"]
    if deadline <= dt.datetime.now(dt.timezone.utc):
        lines.append("# WARNING: that date has passed: as it is, mosquitto will refuse every client.")
    return lines


def server_name(root: str | Path) -> str:
    """The name clients should connect to: the first name in ``broker/server.crt``'s subjectAltName.

    That is the broker's first ``--server-name`` (a DNS name or an IP address); a certificate with no
    SAN falls back to its Common Name. A missing or damaged ``server.crt`` is an :class:`InputError`
    naming it: give the host yourself (``--host``), or build the broker's certificate (arrow 5).
    """
    path = L.SERVER_CERT.path(root)
    if not path.is_file():
        raise InputError(path, "missing: the broker's certificate, which says the name clients connect to. "
                               f"Build the lab first (mqtt-pki-lab build {root}), or give the name with --host")
    cert = load_certificate(path)  # explains a damaged file or one that is not a certificate
    names = host_names(cert)
    return names[0] if names else (common_name(cert) or "localhost")


def _client_files(root: str | Path, client: str | None = None) -> L.Side:
    role = client_role(root, client)
    side = _absolute(role.side(root))
    check_side_files(side, role)
    return side


def default_topic(root: str | Path, client: str | None = None) -> str:
    """The round trip's topic unless told: ``devices/<the client's username>/hello``.

    The username is the Common Name of the client's certificate (``use_identity_as_username``), and the lab's
    default policy lets every client read and write ``devices/<its username>/#``.
    """
    side = _client_files(root, client)
    name = common_name(load_certificate(side.cert)) or client_role(root, client).name
    return f"devices/{name}/{DEFAULT_TOPIC_LEVEL}"


def client_commands(root: str | Path, host: str, port: int = DEFAULT_PORT, topic: str | None = None,
                    message: str = DEFAULT_MESSAGE, client: str | None = None) -> tuple[list[str], list[str]]:
    """``mosquitto_sub`` (waits for one message) and ``mosquitto_pub`` argument lists for a client's files.

    ``client`` selects ``clients/NAME/`` (default: the first client, ``client/``); ``topic`` defaults to
    :func:`default_topic`.
    """
    host, port = check_host_name(host, "--host"), check_port(port)
    side = _client_files(root, client)
    topic = default_topic(root, client) if topic is None else topic
    tls = ["-h", host, "-p", str(port), "--cafile", str(side.ca), "--cert", str(side.cert), "--key", str(side.key)]
    sub = ["mosquitto_sub", *tls, "-t", topic, "-q", "1", "-C", "1", "-v"]
    pub = ["mosquitto_pub", *tls, "-t", topic, "-q", "1", "-m", message]
    return sub, pub


def paho_snippet(root: str | Path, host: str, port: int = DEFAULT_PORT, topic: str | None = None,
                 message: str = DEFAULT_MESSAGE, client: str | None = None) -> str:
    """A complete paho-mqtt 2.x program for a client's files (round trip at QoS 1, then exit).

    Every value is written as a Python literal (``repr``), so no path or name can break the program.
    ``topic`` defaults to :func:`default_topic`.
    """
    host, port = check_host_name(host, "--host"), check_port(port)
    role = client_role(root, client)
    side = _client_files(root, client)
    topic = default_topic(root, client) if topic is None else topic
    return f'''"""MQTT over mutual TLS with paho-mqtt 2.x, as {role.label} of the lab (its three files below).

The broker takes the Common Name of CERTFILE as this client's MQTT username.
"""
import ssl

import paho.mqtt.client as mqtt

HOST, PORT, TOPIC = {host!r}, {port}, {topic!r}
CAFILE = {str(side.ca)!r}
CERTFILE = {str(side.cert)!r}
KEYFILE = {str(side.key)!r}

# Trust only our CA, check the broker's name, present our certificate; strict X.509 as in Python 3.13.
context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=CAFILE)
context.load_cert_chain(CERTFILE, KEYFILE)
context.verify_flags |= ssl.VERIFY_X509_STRICT | ssl.VERIFY_X509_PARTIAL_CHAIN
context.minimum_version = ssl.TLSVersion.TLSv1_2


def on_connect(client, userdata, flags, reason_code, properties):
    # With TLS 1.3 a broker that refuses our certificate lets connect() return: only CONNACK proves we are in.
    print("CONNACK:", reason_code)
    if not reason_code.is_failure:
        client.subscribe(TOPIC, qos=1)


def on_subscribe(client, userdata, mid, reason_code_list, properties):
    client.publish(TOPIC, {message!r}, qos=1)


def on_message(client, userdata, message):
    print("received:", message.topic, message.payload.decode())
    client.disconnect()


def on_disconnect(client, userdata, flags, reason_code, properties):
    print("disconnected:", reason_code)


client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311, reconnect_on_failure=False)
client.tls_set_context(context)
client.on_connect, client.on_subscribe = on_connect, on_subscribe
client.on_message, client.on_disconnect = on_message, on_disconnect
client.connect(HOST, PORT)
client.loop_forever()
'''


def client_shell_text(root: str | Path, host: str, port: int = DEFAULT_PORT, topic: str | None = None,
                      client: str | None = None) -> str:
    """The ``mosquitto_sub`` and ``mosquitto_pub`` command lines, with comments."""
    role = client_role(root, client)
    sub, pub = client_commands(root, host, port, topic, client=client)
    return "\n".join([
        f"# mosquitto-clients, with the files of {role.label}. In one terminal, wait for one message:",
        shlex.join(sub),
        "# in another terminal, send it:",
        shlex.join(pub),
    ]) + "\n"


def client_text(root: str | Path, host: str | None = None, port: int = DEFAULT_PORT, topic: str | None = None,
                part: str = "all", client: str | None = None) -> str:
    """What ``mqtt-pki-lab export client`` prints: the paho program, the shell lines, or both.

    ``client`` names the client (``sensor-1`` for ``clients/sensor-1/``; default the first, ``client/``).
    Without ``host``, the name comes from ``broker/server.crt`` (:func:`server_name`).
    """
    if part not in PARTS:
        raise InputError("--only", f"{part!r}: choose one of {', '.join(PARTS)}")
    port = check_port(port)
    _client_files(root, client)  # the client's files first: they are what this export is about
    host = server_name(root) if host is None else host
    python = paho_snippet(root, host, port, topic, client=client)
    shell = client_shell_text(root, host, port, topic, client=client)
    if part == "python":
        return python
    if part == "shell":
        return shell
    return (f"# ===== paho-mqtt: save as mqtt_client.py, run: python mqtt_client.py =====\n{python}\n"
            f"# ===== mosquitto_sub / mosquitto_pub =====\n{shell}")
