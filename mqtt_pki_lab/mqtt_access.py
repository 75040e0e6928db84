"""Who may do what, proved on a real broker: a client cannot use another device's topics.

The broker's policy (``broker/acl``, :mod:`~mqtt_pki_lab.acl`) says what each client may read and write; this
module checks that a running broker does what the policy says. Every client of the lab is connected at once
(paho-mqtt, its own three files), and each one, ``A``, is paired with the next client, ``B`` (the *other
device*; the last is paired with the first):

1. ``B`` subscribes to its own ``devices/B/#``; ``A`` subscribes to ``devices/B/#`` too (the SUBACK is kept);
2. ``A`` publishes at QoS 1 to ``devices/B/from-A-…``: did ``B``, who may read there, get it?
3. ``B`` publishes a marker at QoS 1 to ``devices/B/marker-…``: did ``A``'s subscription deliver it?

Each observation is compared with the policy's answer (:func:`~mqtt_pki_lab.acl.may`): ``A``'s message must
reach ``B`` exactly when ``A`` may write there and ``B`` may read it; ``B``'s marker must reach ``A`` exactly
when ``A`` may read it. Under the default policy both must fail. Silence is only meaningful once the broker has
handled what was sent: ``B``'s marker is sent after ``A``'s message was acknowledged, and the wait ends when
``B`` got its own marker, then a short grace period (:data:`GRACE`).

A lab with **one client** has no other device to watch: the client then subscribes to
``devices/another-device/#`` and publishes there itself. Nothing may come back, which proves that the broker
refused the publish, the delivery or both, but not which: add a second client to prove each (the report says so).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

from . import diagram as L
from .acl import Policy, may
from .mqtt_client import OWN_TOPIC_PREFIX, paho_client

#: How long to keep listening after the last expected message arrived (seconds).
GRACE = 0.25
#: The made-up device whose topics a lone client tries.
NOBODY = "another-device"


@dataclass(frozen=True)
class AccessProof:
    """What one client tried on another device's topics, what the policy says, and what the broker did."""

    client: str
    """The client's username (its certificate's Common Name)."""
    other: str
    """The device whose topics it tried: the next client of the lab, or :data:`NOBODY` when alone."""
    alone: bool
    publish_topic: str
    read_filter: str
    may_publish: bool
    """The policy: the client may write ``publish_topic`` *and* the watcher may read it."""
    may_read: bool
    """The policy: the client may read the other device's messages."""
    delivered: bool
    """The other device got the client's message (alone: it came back to the client)."""
    received: bool
    """The client got the other device's message (alone: the same as ``delivered``)."""
    suback: str
    problem: str | None = None
    """Why nothing could be proved (a client could not connect or subscribe)."""

    @property
    def passed(self) -> bool:
        """Did the broker do exactly what the policy says?"""
        if self.problem is not None:
            return False
        if self.alone:
            return self.delivered == (self.may_publish and self.may_read)
        return self.delivered == self.may_publish and self.received == self.may_read

    @property
    def summary(self) -> str:
        """One sentence: what the client may or may not do there, with the proof in a few words."""
        if self.problem is not None:
            return f"{self.client}: not proved: {self.problem}"
        area = self.read_filter
        if self.alone:
            words = "came back" if self.delivered else "nothing came back"
            allowed = self.may_publish and self.may_read
            text = (f"{self.client} {'may' if allowed else 'may not'} use {area} (this lab has one client: it "
                    f"published there and subscribed there itself, SUBACK {self.suback}; {words}"
                    + ("" if allowed else ": the broker refused the publish, the delivery or both; add a second "
                                          "client to prove each") + ")")
        else:
            got = "got it" if self.delivered else "got nothing"
            came = "delivered" if self.received else "nothing delivered"
            marker = f"{self.read_filter.removesuffix('#')}marker-…"
            text = (f"{self.client} {'may' if self.may_publish else 'may not'} publish to {self.publish_topic} "
                    f"({self.other} {got}) {'and may' if self.may_read else 'nor'} receive "
                    f"{self.other}'s message on {marker} (subscribed to {area}: SUBACK {self.suback}, {came})")
        return text if self.passed else f"{text}: NOT what broker/acl says"

    def __str__(self) -> str:
        return f"[{'PASS' if self.passed else 'FAIL'}] {self.summary}"

    def html_row(self) -> str:
        """A row for the MQTT check's table (mark, client, the sentence)."""
        mark = ("&#10004;", "#1b7f3b") if self.passed else ("&#10008;", "#b3261e")
        return (f"<tr><td style='color:{mark[1]};font-weight:bold'>{mark[0]}</td><td><b>{escape(self.client)}</b>"
                f"</td><td colspan='2'>{escape(self.summary)}</td></tr>")


class _Peer:
    """One connected client: its paho client and what it saw."""

    def __init__(self, name: str, files: L.Side, password: bytes | str | None) -> None:
        self.name = name
        self.client = paho_client(files, password=password if password is not None else b"")
        self.changed = threading.Condition()
        self.connected: bool | None = None
        self.subacks: dict[int, str] = {}
        self.acked: set[int] = set()
        self.payloads: set[bytes] = set()
        client = self.client
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_publish = self._on_publish
        client.on_message = self._on_message

    def _note(self, change: Any) -> None:
        with self.changed:
            change()
            self.changed.notify_all()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        self._note(lambda: setattr(self, "connected", not reason_code.is_failure))

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        code = reason_codes[0]
        text = f"refused ({code})" if code.is_failure else f"granted QoS {int(code.value)}"
        self._note(lambda: self.subacks.__setitem__(mid, text))

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        self._note(lambda: self.acked.add(mid))

    def _on_message(self, client, userdata, message) -> None:
        self._note(lambda: self.payloads.add(bytes(message.payload)))

    def wait(self, done: Any, deadline: float) -> bool:
        """Wait until ``done()`` is true; False when ``deadline`` passes first."""
        with self.changed:
            while not done():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.changed.wait(remaining)
            return True


def _other_name(names: Sequence[str]) -> str:
    other = NOBODY
    while other in names:
        other += "-x"
    return other


def prove_access(host: str, port: int, clients: Sequence[tuple[str, L.Side]], policy: Policy, *,
                 password: bytes | str | None = None, timeout: float = 5.0) -> tuple[AccessProof, ...]:
    """For each ``(username, files)`` client, try another device's topics on the broker at ``host:port``.

    Returns one :class:`AccessProof` per client, in order. Never raises for what the broker does: a client that
    cannot connect is a proof with a ``problem``.
    """
    if not clients:
        return ()
    names = [name for name, _ in clients]
    alone = len(clients) == 1
    run = uuid.uuid4().hex[:8]
    peers = [_Peer(name, files, password) for name, files in clients]
    deadline = time.monotonic() + timeout
    try:
        problems = _connect(peers, host, port, deadline)
        others = [_other_name(names)] if alone else names[1:] + names[:1]
        own_subs = {p.name: p.client.subscribe(f"{OWN_TOPIC_PREFIX}/{p.name}/#", qos=1)[1] for p in peers}
        their_subs = {p.name: p.client.subscribe(f"{OWN_TOPIC_PREFIX}/{o}/#", qos=1)[1]
                      for p, o in zip(peers, others, strict=True)}
        for p in peers:
            wanted = {own_subs[p.name], their_subs[p.name]}
            if p.name not in problems and not p.wait(lambda p=p, w=wanted: w <= set(p.subacks), deadline):
                problems[p.name] = "no SUBACK from the broker"
        sent = {p.name: (f"{OWN_TOPIC_PREFIX}/{o}/from-{p.name}-{run}", f"from {p.name} {run}".encode())
                for p, o in zip(peers, others, strict=True)}
        _publish_all(peers, sent, deadline)
        markers = {p.name: (f"{OWN_TOPIC_PREFIX}/{p.name}/marker-{run}", f"marker {p.name} {run}".encode())
                   for p in peers}
        _publish_all(peers, markers, deadline)
        for p in peers:  # the broker has handled what came before each marker
            if p.name not in problems and may(policy, p.name, markers[p.name][0], "read"):
                p.wait(lambda p=p: markers[p.name][1] in p.payloads, deadline)
        time.sleep(GRACE)
        proofs = []
        for i, (peer, other) in enumerate(zip(peers, others, strict=True)):
            watcher = peer if alone else peers[(i + 1) % len(peers)]
            topic, payload = sent[peer.name]
            proofs.append(AccessProof(
                peer.name, other, alone, topic, f"{OWN_TOPIC_PREFIX}/{other}/#",
                may(policy, peer.name, topic, "write") and may(policy, watcher.name, topic, "read"),
                may(policy, peer.name, markers[other][0] if not alone else topic, "read"),
                payload in watcher.payloads,
                (payload if alone else markers[other][1]) in peer.payloads,
                peer.subacks.get(their_subs[peer.name], "none"),
                problems.get(peer.name) or (None if alone else problems.get(watcher.name))))
        return tuple(proofs)
    finally:
        for p in peers:
            p.client.disconnect()
            p.client.loop_stop()


def _connect(peers: list[_Peer], host: str, port: int, deadline: float) -> dict[str, str]:
    """Connect every client; the names of those that could not, with why."""
    problems: dict[str, str] = {}
    for p in peers:
        try:
            p.client.connect(host, port, keepalive=30)
        except OSError as exc:  # ssl.SSLError is an OSError
            problems[p.name] = f"cannot connect: {exc}"
            continue
        p.client.loop_start()
    for p in peers:
        if p.name not in problems and not (p.wait(lambda p=p: p.connected is not None, deadline) and p.connected):
            problems[p.name] = "the broker did not accept its connection"
    return problems


def _publish_all(peers: list[_Peer], messages: dict[str, tuple[str, bytes]], deadline: float) -> None:
    """Each client publishes its message at QoS 1; return when the broker acknowledged them all (or time is up)."""
    mids = {p.name: p.client.publish(*messages[p.name], qos=1).mid for p in peers}
    for p in peers:
        p.wait(lambda p=p: mids[p.name] in p.acked, deadline)
