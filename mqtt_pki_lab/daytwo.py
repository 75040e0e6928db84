"""Day two on a real broker: who gets in after a revocation, and a renewal picked up with SIGHUP (notebook 10).

Both run a real broker on the lab's own ``broker/`` files, on 127.0.0.1 and a free port: mosquitto when it is
installed, else the embedded broker (pure Python), and say which one they used.

* :func:`who_gets_in` starts the broker once and sends each named client through it (connect, subscribe,
  publish at QoS 1, get the message back: :func:`~mqtt_pki_lab.mqtt_client.mqtt_round_trip`). A client on the
  broker's revocation list (``broker/crl.pem``, mosquitto's ``crlfile``) is refused in the TLS handshake; with a
  list past its nextUpdate every client is (OpenSSL's "CRL has expired", RFC 5280 §5.1.2.5, sent to the client
  as the alert ``certificate expired``: TLS has no alert for a stale list). A device that made its own key
  (notebook 09) goes through with its device folder's files (``devices``).

  **What a refused client sees.** In TLS 1.3 the client finishes its half of the handshake *before* the broker
  has checked its certificate, and paho-mqtt (like ``mosquitto_pub -d``: "sending CONNECT") writes MQTT's
  CONNECT at once; the broker checks, sends its alert and closes, never reading CONNECT. Whether the client then
  reads the alert or only a connection reset depends on timing. So for such a client :func:`broker_alert` asks
  once more the way ``openssl s_client`` does (handshake, then listen, send nothing) and the alert is reported.
* :func:`renew_and_reload` is the renewal of the broker's certificate as an operator does it: mosquitto runs,
  ``renew`` writes the new ``server.crt``, mosquitto still presents the old one until it gets SIGHUP, then the
  new one, with the same process id (mosquitto 2.0: "TLS certificates for the server are now reloaded on
  SIGHUP", its ChangeLog for 2.0.0; ``mosquitto.conf(5)``, certfile). SIGHUP reads ``cafile`` again only when
  ``crlfile`` is set (measured with 2.0.11: :mod:`~mqtt_pki_lab.rotate` says why it matters).

mosquitto reads the files in place here (when the notebook runs as root, mosquitto runs as root too: the
``user root`` line), so that a SIGHUP makes it read the lab's files again, exactly as a service would.
"""

from __future__ import annotations

import os
import signal
import socket
import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from cryptography import x509

from . import diagram as L
from .errors import InputError
from .live import presented_chain
from .mqtt_client import RoundTrip, mqtt_round_trip
from .steps import Lab

__all__ = ["Admission", "ReloadWatch", "broker_alert", "presented_certificate", "renew_and_reload", "who_gets_in"]


def _root(lab: Lab | str | Path) -> Path:
    return lab.root if isinstance(lab, Lab) else Path(lab)


def _kind(broker: str | None) -> str:
    from .mosquitto import find_mosquitto

    return broker or ("mosquitto" if find_mosquitto() else "embedded")


@dataclass(frozen=True)
class Admission:
    """Who got through a real broker and who was refused: one line per client."""

    broker: str
    trips: tuple[tuple[str, RoundTrip], ...]
    untried: tuple[str, ...] = ()
    """Clients whose key lives on their device and whose device folder was not given: not tried."""
    on_device: frozenset[str] = frozenset()
    """Clients that went through with their device folder's files."""

    @property
    def admitted(self) -> frozenset[str]:
        """The clients that made the whole round trip."""
        return frozenset(name for name, trip in self.trips if trip.ok)

    @property
    def refused(self) -> frozenset[str]:
        """The clients that did not get through."""
        return frozenset(name for name, trip in self.trips if not trip.ok)

    def __str__(self) -> str:
        width = max((len(name) for name in (*(n for n, _ in self.trips), *self.untried)), default=0)
        lines = [f"broker: {self.broker}, on the lab's broker/ files"]
        for name, trip in self.trips:
            said = "in: CONNACK, SUBACK, its message back" if trip.ok else \
                f"refused by the {trip.refused_by or 'network'} at {trip.stage}: {trip.reason}"
            lines.append(f"  {name:<{width}}  {said}" + (" (its device's files)" if name in self.on_device else ""))
        lines += [f"  {name:<{width}}  not tried: its key lives on its device (give its folder: devices=[...])"
                  for name in self.untried]
        return "\n".join(lines)

    __repr__ = __str__


def _sides(root: Path, names: Iterable[str], devices: Iterable[str | Path]
           ) -> tuple[list[tuple[str, L.Side]], list[str], set[str]]:
    """Each named client's three files (from its device folder when its key lives there), the names not tried,
    and the names whose files came from their device. Errors name the Python argument (``names``, ``devices``)."""
    from .device import device_folder, lab_role_of
    from .export import client_role
    from .steps import key_on_device

    if isinstance(names, str):
        raise InputError("names", f"give a list of client names, e.g. [{names!r}], not one string")
    held = {}
    for folder in devices:
        found = device_folder(folder, "devices")
        held[lab_role_of(root, found).name] = found.side
    sides, untried, on_device = [], [], set()
    for name in names:
        role = client_role(root, name, "names")
        if role.name in held:
            sides.append((name, held[role.name]))
            on_device.add(name)
        elif key_on_device(root, role):
            untried.append(name)
        else:
            sides.append((name, role.side(root)))
    return sides, untried, on_device


def broker_alert(port: int, files: L.Side, *, host: str = "127.0.0.1", password: bytes | str | None = None,
                 timeout: float = 3.0) -> str | None:
    """The TLS alert a broker sends a client with ``files``, read the way ``openssl s_client`` shows it: finish
    the handshake, then listen and send nothing (so no CONNECT races the broker's alert and close). OpenSSL's
    words for it (``sslv3 alert certificate revoked``), or None when the broker said nothing within
    ``timeout`` (it accepted the client and waits for CONNECT)."""
    from .mqtt_client import openssl_reason
    from .tlscontext import client_context

    context = client_context(files, password)
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw, \
                context.wrap_socket(raw, server_hostname=host) as tls:
            tls.recv(1)
    except ssl.SSLError as exc:
        return openssl_reason(exc)
    except OSError:
        return None
    return None


def _with_alert(trip: RoundTrip, port: int, files: L.Side) -> RoundTrip:
    """A refusal by the broker seen only as a reset or EOF: the alert it sends, asked again (:func:`broker_alert`)."""
    if trip.ok or trip.stage != "tls" or trip.refused_by != "broker" or "alert" in (trip.reason or ""):
        return trip
    alert = broker_alert(port, files)
    return replace(trip, reason=alert) if alert and "alert" in alert else trip


def who_gets_in(lab: Lab | str | Path, names: Iterable[str], *, devices: Iterable[str | Path] = (),
                broker: str | None = None, timeout: float = 5.0) -> Admission:
    """Start a broker on the lab's ``broker/`` files (``mosquitto`` when installed, else ``embedded``) and
    send each client of ``names`` (``client``, ``sensor-1``...) through it with its own three files.

    A client whose key lives on its device (``key-on-device.txt``, notebook 09) uses its device folder's files
    when that folder is in ``devices`` (as ``verify_lab(devices=...)``), else it is listed as not tried. A
    client refused in the handshake is reported with the broker's alert (:func:`broker_alert`). An unknown
    name is refused before any broker starts."""
    from .mqtt_proof import _broker_label, start_broker

    root = _root(lab)
    sides, untried, on_device = _sides(root, names, devices)
    kind = _kind(broker)
    running = start_broker(kind, root)
    try:
        trips = tuple((name, _with_alert(mqtt_round_trip("127.0.0.1", running.port, side, timeout=timeout),
                                         running.port, side)) for name, side in sides)
    finally:
        running.stop()
    return Admission(_broker_label(kind, running), trips, tuple(untried), frozenset(on_device))


def presented_certificate(port: int, ca: str | Path, host: str = "127.0.0.1", server_name: str = "localhost",
                          timeout: float = 5.0) -> x509.Certificate:
    """The certificate a TLS server on ``host:port`` presents, as a client sees it in the handshake.

    Seen even when the client refuses it (an expired certificate, which is the point): ``ca`` is the client's
    ``ca.crt``. What ``openssl s_client -connect host:port`` shows first in its ``Certificate chain``; the whole
    chain and the client's verdict: :func:`~mqtt_pki_lab.live.presented_chain` (which this calls).
    """
    return presented_chain(host, port, ca, server_name=server_name, timeout=timeout).leaf


def _serial(cert: x509.Certificate) -> str:
    return f"{cert.serial_number:x}"[:12]


@dataclass(frozen=True)
class ReloadWatch:
    """What a client saw of the broker's certificate before the renewal, after it, and after SIGHUP."""

    broker: str
    pid: int | None
    on_disk: str
    """The serial (first 12 hex digits) of ``broker/server.crt`` after the renewal."""
    seen: tuple[tuple[str, str], ...]
    """(moment, serial the broker presented)."""
    same_process: bool
    note: str = ""

    def __str__(self) -> str:
        lines = [f"broker: {self.broker}" + (f", process id {self.pid}" if self.pid else "")]
        lines += [f"  {moment:<36} presents serial {serial}"
                  + ("   = broker/server.crt on disk" if serial == self.on_disk else "")
                  for moment, serial in self.seen]
        if self.pid:
            lines.append(f"  the same process all along: {self.same_process}")
        if self.note:
            lines.append(self.note)
        return "\n".join(lines)

    __repr__ = __str__


def _wait(predicate, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def renew_and_reload(lab: Lab | str | Path, *, password: bytes | str | None = None) -> ReloadWatch:
    """Renew the broker's certificate under a running mosquitto, then send it SIGHUP; report what a client saw.

    mosquitto is started on the lab's broker files (read in place), a client notes the serial it presents,
    :func:`~mqtt_pki_lab.renew.renew` writes the new ``server.crt`` (same key), the client looks again (still
    the old serial: mosquitto read its files at start), then ``kill -HUP PID`` and a third look (the new
    serial, the same process id). Without mosquitto the renewal is still made, and the note says what a
    running mosquitto would need.
    """
    from .mosquitto import MosquittoBroker, find_mosquitto, running_as_root
    from .pem import load_certificate
    from .renew import renew

    root = _root(lab)
    ca = L.FIRST_CLIENT.side(root).ca
    if find_mosquitto() is None:
        result = renew(root, "broker", password=password)
        return ReloadWatch("no broker (mosquitto is not installed here)", None, f"{result.new_serial:x}"[:12],
                           (("before the renewal", f"{result.old_serial:x}"[:12]),), False,
                           "renewed on disk; a running mosquitto would present the old serial until it gets "
                           "SIGHUP (kill -HUP PID, or systemctl reload mosquitto). Install mosquitto to watch it.")
    broker = MosquittoBroker(root, run_as="root" if running_as_root() else None)
    broker.start()
    try:
        pid = broker.pid
        seen = [("before the renewal", _serial(presented_certificate(broker.port, ca)))]  # type: ignore[arg-type]
        renew(root, "broker", password=password)
        new = _serial(load_certificate(L.SERVER_CERT.path(root)))
        seen.append(("renewed on disk, no signal yet", _serial(presented_certificate(broker.port, ca))))  # type: ignore[arg-type]
        reloads = sum("Reloading config" in line for line in broker.log)
        os.kill(pid, signal.SIGHUP)  # type: ignore[arg-type]
        _wait(lambda: sum("Reloading config" in line for line in broker.log) > reloads)
        seen.append(("after kill -HUP (mosquitto reloaded)", _serial(presented_certificate(broker.port, ca))))  # type: ignore[arg-type]
        same = broker.running and broker.pid == pid
        label = f"mosquitto {broker.version}"
    finally:
        broker.stop()
    return ReloadWatch(label, pid, new, tuple(seen), same)
