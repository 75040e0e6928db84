"""The two mysteries of notebook 09 (who may do what): what a user sees, before anyone explains it.

* **The silent dashboard** (:func:`watch`): the dashboard (the lab's first client, ``client``) subscribes to
  ``devices/sensor-2/temperature``; ``sensor-2`` publishes a reading there. Both connect, the subscription is
  granted, the publish is acknowledged, and nothing arrives. Not a certificate problem: the broker's policy
  (``broker/acl``) lets each client read its own ``devices/<name>/#`` only. mosquitto 2.0 grants such a
  subscription and then checks ``read`` on every message on its way out (:mod:`~mqtt_pki_lab.acl`).
* **The device that cannot load its files** (:func:`open_device_mystery`): a device made its key and CSR
  (:func:`~mqtt_pki_lab.device.request`), but someone copied another device's ``client.crt`` into its folder by
  hand instead of running ``install`` (which checks exactly this). The TLS library refuses the pair before any
  connection: ``KEY_VALUES_MISMATCH``.

Each is judged as an exercise (``access-mystery-topic``, ``access-mystery-key``, in
:mod:`mqtt_pki_lab.exercises.access`): the student names the file at fault; the story comes with the right
answer, or with ``"show me"``.
"""

from __future__ import annotations

import shutil
import ssl
import tempfile
import threading
import time
from dataclasses import dataclass
from html import escape
from pathlib import Path

from . import diagram as L
from .acl import Policy, default_policy, format_policy
from .coursework import workdir
from .errors import LabError
from .steps import Lab

#: The experiment of the silent dashboard: who subscribes to what, who publishes what where.
DASHBOARD = "client"
SENSOR = "sensor-2"
READING_TOPIC = f"devices/{SENSOR}/temperature"
READING = b"21.5"
#: How long the dashboard waits for the reading after the broker acknowledged it (seconds).
QUIET_WAIT = 1.0
#: The device of the second mystery, and the folder (under the course's ``mysteries/``) standing for its disk.
DEVICE = "garage-door"
DEVICE_FOLDER = "device-garage-door"


def _pre(text: str) -> str:
    return f"<pre style='margin:0'>{escape(text)}</pre>"


@dataclass(frozen=True)
class TopicWatch:
    """What the two clients of :func:`watch` saw, as a user would read it in mosquitto_sub and mosquitto_pub."""

    broker: str
    subscriber: str
    topic_filter: str
    connected: str
    suback: str
    publisher: str
    topic: str
    published: str
    received: tuple[bytes, ...]
    waited: float

    @property
    def arrived(self) -> bool:
        """Did the subscriber get the message?"""
        return bool(self.received)

    def __str__(self) -> str:
        got = (", ".join(repr(p.decode(errors="replace")) for p in self.received) if self.received
               else f"nothing in {self.waited:.1f} s")
        return "\n".join([
            f"broker: {self.broker}, on the lab's broker/ files",
            f"{self.subscriber}: {self.connected}; SUBSCRIBE {self.topic_filter}: {self.suback}",
            f"{self.publisher}: {self.published}",
            f"{self.subscriber} received: {got}",
        ])

    def _repr_html_(self) -> str:
        return _pre(str(self))

    __repr__ = __str__


def _broker_kind() -> str:
    from .mosquitto import find_mosquitto

    return "mosquitto" if find_mosquitto() else "embedded"


def _side(root: Path, name: str) -> L.Side:
    from .export import client_role

    return client_role(root, name).side(root)


def watch(lab: Lab | str | Path, *, subscriber: str = DASHBOARD, topic_filter: str = READING_TOPIC,
          publisher: str = SENSOR, topic: str = READING_TOPIC, payload: bytes = READING, broker: str | None = None,
          policy: Policy | None = None, as_built: bool = False, timeout: float = 5.0) -> TopicWatch:
    """Start a broker on the lab's files (mosquitto when installed, else the embedded one), let ``subscriber``
    subscribe to ``topic_filter`` and ``publisher`` publish ``payload`` to ``topic`` at QoS 1, and report what
    each saw: CONNACK, SUBACK, PUBACK, and what arrived within :data:`QUIET_WAIT` seconds of the PUBACK.

    The broker enforces the lab's ``broker/acl``, or ``policy`` when given; ``as_built`` is the policy ``build``
    wrote (:func:`~mqtt_pki_lab.acl.default_policy`): the mystery shows the lab as built, whatever the student
    has granted since, without naming what it is about."""
    if as_built:
        policy = default_policy()
    from .mqtt_client import paho_client
    from .mqtt_proof import _broker_label, start_broker

    root = Lab(lab).root if not isinstance(lab, Lab) else lab.root
    sub_side, pub_side = _side(root, subscriber), _side(root, publisher)
    kind = broker or _broker_kind()
    events = {name: threading.Event() for name in ("sub-connect", "suback", "pub-connect", "puback")}
    seen: dict[str, str] = {}
    received: list[bytes] = []
    with tempfile.TemporaryDirectory(prefix="mqtt-pki-lab-policy-") as scratch:
        acl: Path | bool = True
        if policy is not None:
            acl = Path(scratch, L.ACL_FILE)
            acl.write_text(format_policy(policy))
        running = start_broker(kind, root, acl=acl)
    sub = pub = None
    try:
        sub, pub = paho_client(sub_side), paho_client(pub_side)

        def connected(who: str):
            def on_connect(client, userdata, flags, reason_code, properties) -> None:
                seen[who] = f"connected (CONNACK: {reason_code})"
                events[f"{who}-connect"].set()
            return on_connect

        def on_subscribe(client, userdata, mid, reason_codes, properties) -> None:
            code = reason_codes[0]
            seen["suback"] = f"refused ({code})" if code.is_failure else f"granted QoS {int(code.value)}"
            events["suback"].set()

        def on_publish(client, userdata, mid, reason_code, properties) -> None:
            events["puback"].set()

        sub.on_connect, pub.on_connect = connected("sub"), connected("pub")
        sub.on_subscribe, pub.on_publish = on_subscribe, on_publish
        sub.on_message = lambda client, userdata, message: received.append(bytes(message.payload))
        deadline = time.monotonic() + timeout
        sub.connect("127.0.0.1", running.port)
        sub.loop_start()
        events["sub-connect"].wait(max(0.0, deadline - time.monotonic()))
        sub.subscribe(topic_filter, qos=1)
        events["suback"].wait(max(0.0, deadline - time.monotonic()))
        pub.connect("127.0.0.1", running.port)
        pub.loop_start()
        events["pub-connect"].wait(max(0.0, deadline - time.monotonic()))
        pub.publish(topic, payload, qos=1)
        acked = events["puback"].wait(max(0.0, deadline - time.monotonic()))
        time.sleep(QUIET_WAIT)
    finally:
        for client in (sub, pub):
            if client is not None:
                client.disconnect()
                client.loop_stop()
        running.stop()
    published = (f"{seen.get('pub', 'not connected')}; PUBLISH {payload.decode(errors='replace')!r} to {topic} "
                 f"(QoS 1): {'PUBACK received' if acked else 'no PUBACK'}")
    return TopicWatch(_broker_label(kind, running), subscriber, topic_filter, seen.get("sub", "not connected"),
                      seen.get("suback", "no SUBACK"), publisher, topic, published, tuple(received), QUIET_WAIT)


# --- the device that cannot load its files -------------------------------------------------------------------

def device_mystery_folder() -> Path:
    """Where the second mystery's device folder lives: ``workdir()/mysteries/device-garage-door``."""
    from .mysteries import MYSTERY_FOLDER

    return workdir() / MYSTERY_FOLDER / DEVICE_FOLDER


def _load_pair(side: L.Side) -> str:
    """What a TLS client library says when it loads the device's certificate and key (Python's ssl: OpenSSL)."""
    context = ssl.create_default_context(cafile=str(side.ca))
    try:
        context.load_cert_chain(str(side.cert), str(side.key))
    except ssl.SSLError as error:
        return f"ssl.SSLError: {error}"
    return "loaded: the certificate and the key belong together"


class DeviceCase:
    """The broken device folder: what its owner sees, ``inspect`` for each file, never the answer."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @property
    def files(self) -> tuple[str, ...]:
        return tuple(sorted(p.name for p in self.folder.iterdir() if p.is_file()))

    def __str__(self) -> str:
        names = L.FILE_NAMES["client"]
        side = L.Side(*(self.folder / names[slot] for slot in ("trust", "crt", "key")))
        return "\n".join([
            f"the device's folder {self.folder.name}/: {'  '.join(self.files)}",
            "the device loads its files to connect (paho-mqtt: client.tls_set(ca_certs=..., certfile=..., "
            "keyfile=...)):",
            f"  {_load_pair(side)}",
            "it never reaches the broker: no TLS handshake, no CONNECT.",
        ])

    def _repr_html_(self) -> str:
        return _pre(str(self))

    def __repr__(self) -> str:
        return f"DeviceCase({str(self.folder)!r})"

    def inspect(self, file: str):
        """The facts of one file of the device folder (a key is described, never printed)."""
        from .explain import explain_file
        from .mysteries import Facts

        name = str(file).strip().replace("\\", "/").rsplit("/", 1)[-1]
        if name not in self.files:
            return f"No file {str(file)[:60]!r} here. The files: {', '.join(self.files)}."
        try:
            found = explain_file(self.folder / name)
        except LabError as error:
            return str(error)
        return Facts(name, found.kind, tuple((field, value) for field, value, _ in found.rows))


def open_device_mystery(lab: Lab) -> DeviceCase:
    """The device ``garage-door`` made its own key and CSR; its ``client.crt`` was copied by hand from
    ``sensor-2`` (with the lab's ``ca.crt``). Made once in the course's ``mysteries/`` folder, then reused."""
    from .device import request

    folder = device_mystery_folder()
    if not (folder / "client.crt").exists():
        if folder.exists():
            shutil.rmtree(folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        request(folder, DEVICE)
        shutil.copyfile(_side(lab.root, SENSOR).cert, folder / L.FILE_NAMES["client"]["crt"])
        shutil.copyfile(L.CA.file("crt").path(lab.root), folder / L.FILE_NAMES["client"]["trust"])
    return DeviceCase(folder)
