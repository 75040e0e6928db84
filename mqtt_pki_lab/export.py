"""Take the working configuration home: a mosquitto.conf and a ready client, for the lab's files.

* :func:`mosquitto_conf_text` is a complete ``mosquitto.conf`` with absolute paths to the broker's
  three files; ``mosquitto -c mosquitto.conf`` runs it unchanged.
* :func:`paho_snippet` is a small paho-mqtt 2.x program for the client's three files: it connects,
  subscribes, publishes at QoS 1 and prints its own message when it comes back.
* :func:`client_commands` are the matching ``mosquitto_sub`` / ``mosquitto_pub`` command lines.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID

from . import layout as L
from .errors import InputError
from .mqtt_client import check_side_files

DEFAULT_PORT = 8883
DEFAULT_TOPIC = "lab/hello"
DEFAULT_MESSAGE = "hello over mutual TLS"


def _absolute(side: L.Side) -> L.Side:
    return L.Side(side.ca.resolve(), side.cert.resolve(), side.key.resolve())


def _check_port(port: int) -> int:
    if not 1 <= port <= 65535:
        raise InputError("--port", f"{port} is not a TCP port (1-65535)")
    return port


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


def mosquitto_conf_text(root: str | Path, port: int = DEFAULT_PORT, bind: str | None = None) -> str:
    """A ``mosquitto.conf`` for the lab folder ``root``: mutual TLS on ``port`` (every interface, or ``bind``).

    When ``server.key`` belongs to an ordinary user, a ``user`` line names that user: mosquitto started
    by that user reads its files directly, and started as root it switches to that user before reading
    them. A key owned by root gets no ``user`` line but a warning: see :mod:`mqtt_pki_lab.mosquitto`.
    """
    from . import __version__
    from .mosquitto import mosquitto_conf, refuse_encrypted_key

    side = _absolute(L.side(root, "broker"))
    check_side_files(side, "broker")
    refuse_encrypted_key(side.key)
    owner = key_owner(side.key)
    head = [
        f"# mosquitto.conf for the MQTT PKI in {Path(root).resolve()} (made by mqtt-pki-lab {__version__})",
        "# Start it:   mosquitto -c mosquitto.conf",
        f"# Clients connect to port {_check_port(port)} with TLS and their own certificate; get one ready with:",
        f"#   mqtt-pki-lab export client {shlex.quote(str(Path(root)))} --port {port}",
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
    return "\n".join(head) + "\n\n" + mosquitto_conf(side, port, bind=bind, user=user)


def server_name(root: str | Path) -> str:
    """The name clients should connect to: the first DNS name of ``server.crt`` (its CN)."""
    cert = x509.load_pem_x509_certificate(L.SERVER_CERT.path(root).read_bytes())
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = san.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        names = []
    if names:
        return names[0]
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(cns[0].value) if cns else "localhost"


def _client_files(root: str | Path) -> L.Side:
    side = _absolute(L.side(root, "client"))
    check_side_files(side, "client")
    return side


def client_commands(root: str | Path, host: str, port: int = DEFAULT_PORT, topic: str = DEFAULT_TOPIC,
                    message: str = DEFAULT_MESSAGE) -> tuple[list[str], list[str]]:
    """``mosquitto_sub`` (waits for one message) and ``mosquitto_pub`` argument lists for the client's files."""
    side = _client_files(root)
    tls = ["-h", host, "-p", str(_check_port(port)), "--cafile", str(side.ca), "--cert", str(side.cert),
           "--key", str(side.key)]
    sub = ["mosquitto_sub", *tls, "-t", topic, "-q", "1", "-C", "1", "-v"]
    pub = ["mosquitto_pub", *tls, "-t", topic, "-q", "1", "-m", message]
    return sub, pub


def paho_snippet(root: str | Path, host: str, port: int = DEFAULT_PORT, topic: str = DEFAULT_TOPIC,
                 message: str = DEFAULT_MESSAGE) -> str:
    """A complete paho-mqtt 2.x program for the client's files (round trip at QoS 1, then exit)."""
    side = _client_files(root)
    return f'''"""MQTT over mutual TLS with paho-mqtt 2.x, using the client's files from {side.ca.parent}."""
import ssl

import paho.mqtt.client as mqtt

HOST, PORT, TOPIC = {host!r}, {_check_port(port)}, {topic!r}

# Trust only our CA, check the broker's name, present our certificate; strict X.509 as in Python 3.13.
context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile={str(side.ca)!r})
context.load_cert_chain({str(side.cert)!r}, {str(side.key)!r})
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


def client_shell_text(root: str | Path, host: str, port: int = DEFAULT_PORT, topic: str = DEFAULT_TOPIC) -> str:
    """The ``mosquitto_sub`` and ``mosquitto_pub`` command lines, with comments."""
    sub, pub = client_commands(root, host, port, topic)
    return "\n".join([
        "# mosquitto-clients, with the client's files. In one terminal, wait for one message:",
        shlex.join(sub),
        "# in another terminal, send it:",
        shlex.join(pub),
    ]) + "\n"


def client_text(root: str | Path, host: str | None = None, port: int = DEFAULT_PORT, topic: str = DEFAULT_TOPIC,
                part: str = "all") -> str:
    """What ``mqtt-pki-lab export client`` prints: the paho program, the shell lines, or both."""
    host = host or server_name(root)
    python = paho_snippet(root, host, port, topic)
    shell = client_shell_text(root, host, port, topic)
    if part == "python":
        return python
    if part == "shell":
        return shell
    return (f"# ===== paho-mqtt: save as mqtt_client.py, run: python mqtt_client.py =====\n{python}\n"
            f"# ===== mosquitto_sub / mosquitto_pub =====\n{shell}")

