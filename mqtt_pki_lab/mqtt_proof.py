"""Real MQTT over mutual TLS: the good client gets through, the intruders do not.

The in-memory handshake (arrow 10) proves the TLS part. This check runs a real broker on the broker's
three files (the embedded amqtt broker, or mosquitto) and sends real MQTT through it with paho-mqtt:

1. **every good client** of the lab (``client/``, then each ``clients/NAME/``, with its own ``ca.crt``,
   ``client.crt`` and ``client.key``) subscribes, publishes at QoS 1 and gets its own message back;
2. **a client with no certificate** must be refused by the broker;
3. **a client whose certificate comes from another CA** (same name, signed by an intruder's CA) must be
   refused by the broker;
4. **a client that trusts another CA** (right certificate, wrong ``ca.crt``) must refuse the broker.

The three intruders are tried once, with the first client's files: what they prove is about the broker
and the CA, not about one device. Each refusal is explained in the words of ``mqtt-pki-lab verify``
(:func:`~mqtt_pki_lab.diagnose.diagnose_tls_failure`), naming the files of the client that was used, and
using the broker's own reason when the broker refused. The intruders' files are made in a temporary
folder, removed at the end (or, when the check was killed, by the next check:
:func:`remove_stale_intruders`); nothing is written to the lab.

>>> report = mqtt_check("pki", broker="embedded")   # doctest: +SKIP
>>> report.ok, [o.passed for o in report.outcomes]  # doctest: +SKIP
(True, [True, True, True, True])
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from html import escape
from pathlib import Path
from typing import Literal

from cryptography import x509

from . import diagram as L
from .acl import policy_file_for, read_policy_file
from .certificates import common_name
from .crl import broker_crl, revoked_clients
from .device import device_folder, lab_role_of
from .diagnose import Diagnosis, diagnose_tls_failure
from .errors import InputError
from .handshake import chain_gaps, handshake_files, lab_intermediate
from .mqtt_access import AccessProof, prove_access
from .mqtt_client import RoundTrip, check_side_files, mqtt_round_trip
from .rotate import rotating, rotation_note
from .steps import Lab, key_on_device
from .tlscontext import side_paths

BrokerKind = Literal["embedded", "mosquitto"]
BROKERS: tuple[str, ...] = ("embedded", "mosquitto")
#: The intruder CA's name: visibly not the lab's.
INTRUDER_CA_NAME = "Intruder CA (not yours)"
Expect = Literal["through", "broker", "client"]
#: All mosquitto logs when it refuses a client certificate for any reason (foreign CA, expired, wrong EKU).
BARE_VERIFY_FAILURE = "certificate verify failed"
#: The longest a single client may take for its round trip, in seconds (``--timeout``).
MAX_TIMEOUT = 300.0
GOOD_CLIENT = "good client"
#: A client of the lab on the broker's revocation list (``mqtt-pki-lab revoke``): the broker must refuse it.
REVOKED_CLIENT = "revoked client"


@dataclass(frozen=True)
class MqttOutcome:
    """One client's attempt, what we expected of it, and what it means."""

    name: str
    """``good client`` (once per client of the lab), ``no certificate``, ``certificate from another CA``,
    ``trusts another CA``."""
    uses: str
    """The files this client used."""
    expect: Expect
    """``through``, or the side that must refuse: ``broker`` / ``client``."""
    trip: RoundTrip
    broker_reason: str | None = None
    """The broker's own reason for refusing (mosquitto's log, the embedded broker's TLS layer)."""
    detail: str | None = None
    """OpenSSL's full words for the same files, from the in-memory handshake, when the broker's are bare
    (mosquitto logs only ``certificate verify failed``)."""
    diagnosis: Diagnosis | None = field(default=None, compare=False)
    client: L.Role = L.FIRST_CLIENT
    """The lab client whose files were used (the intruders use the first client's)."""
    rotation: str | None = None
    """During a CA rotation: which root signed this client's certificate and which roots its ca.crt holds
    (:func:`~mqtt_pki_lab.rotate.rotation_note`), e.g. "still trusts only the old root"."""

    @property
    def passed(self) -> bool:
        """Did it go as a working PKI requires?"""
        if self.expect == "through":
            return self.trip.ok
        if self.name == REVOKED_CLIENT and (self.diagnosis is None or self.diagnosis.code != "revoked"):
            return False  # refused, but not *because* it is revoked (a stale list refuses everybody)
        return not self.trip.ok and self.trip.refused_by == self.expect

    @property
    def reason(self) -> str | None:
        """The best words for the failure: the refusing broker's own, else the client's."""
        if self.trip.refused_by == "broker" and self.broker_reason:
            if self.detail:
                return f"{self.broker_reason} (the same files in memory: {self.detail})"
            return self.broker_reason
        return self.trip.reason

    @property
    def expectation(self) -> str:
        return "gets through" if self.expect == "through" else f"refused by the {self.expect}"

    @property
    def verdict(self) -> str:
        """One line: what happened, compared with what had to happen."""
        if self.trip.ok:
            happened = "got through (CONNACK, SUBACK, its QoS 1 message came back)"
        elif self.trip.refused_by:
            happened = f"refused by the {self.trip.refused_by}: {self.reason}"
        else:
            happened = f"failed at {self.trip.stage}: {self.reason}"
        if self.passed:
            return happened
        if self.expect == "through":
            return f"{happened}; it had to get through"
        if self.trip.ok:
            return f"{happened}: the broker let an intruder in! It had to be refused by the {self.expect}"
        if self.name == REVOKED_CLIENT:
            return f"{happened}; it had to be refused because it is revoked ('certificate revoked'), not otherwise"
        return f"{happened}; it had to be refused by the {self.expect}"

    @property
    def explanation(self) -> str | None:
        """Why it went as it did, in the diagnosis's words. An intruder refused as it must be gets the reason
        only: there is nothing to fix; a failure gets the arrow at fault and the fix."""
        if self.diagnosis is None:
            return None
        if self.passed:
            return f"why refused: {self.diagnosis.problem} (refused is the right outcome: nothing to fix)"
        return str(self.diagnosis)

    def __str__(self) -> str:
        text = f"[{'PASS' if self.passed else 'FAIL'}] {self.name} ({self.uses}): {self.verdict}"
        if self.explanation is not None:
            text += f"\n       {self.explanation}"
        if self.rotation is not None:
            text += f"\n       CA rotation: {self.rotation}"
        return text


@dataclass(frozen=True)
class MqttCheckReport:
    """The whole check: which broker, where, and each client's outcome."""

    broker: str
    """``embedded (amqtt 0.12.1)`` or ``mosquitto 2.0.11``."""
    host: str
    port: int | None
    outcomes: tuple[MqttOutcome, ...]
    broker_log: tuple[str, ...] = field(default=(), repr=False)
    seconds: float = 0.0
    notes: tuple[str, ...] = ()
    """What the broker runner did that a user should know (mosquitto started by root, for one)."""
    access: tuple[AccessProof, ...] = ()
    """Who may do what (``broker/acl``): per client, another device's topics tried on the same broker
    (:mod:`~mqtt_pki_lab.mqtt_access`); empty when the lab has no policy."""

    @property
    def ok(self) -> bool:
        """True when every good client got through, every intruder was refused, and the broker did what the
        policy says."""
        return bool(self.outcomes) and all(o.passed for o in (*self.outcomes, *self.access))

    @property
    def failures(self) -> tuple[MqttOutcome, ...]:
        return tuple(o for o in self.outcomes if not o.passed)

    def access_text(self) -> str:
        """Only who may do what: a line for the good clients' own topics, then each client's proof on another
        device's topics (what a lesson on the policy shows; ``str()`` gives everything)."""
        good = [o for o in self.outcomes if o.expect == "through"]
        own = (f"{sum(o.passed for o in good)} of {len(good)} clients used their own devices/NAME/... "
               f"with {self.broker}")
        notes = [f"note: {n}" for n in self.notes]
        return "\n".join([own, *notes, *(str(a) for a in self.access)]) if self.access else \
            "\n".join([f"{own}; the lab has no policy", *notes])

    def __str__(self) -> str:
        head = (f"MQTT over mutual TLS with {self.broker} on {self.host}:{self.port}: "
                f"{'PASSED' if self.ok else 'FAILED'} ({self.seconds:.2f} s)")
        access = ["  who may do what (broker/acl; each good client's round trip above used its own "
                  "devices/NAME/...):", *(f"  {a}" for a in self.access)] if self.access else []
        return "\n".join([head, *(f"  note: {n}" for n in self.notes), *(f"  {o}" for o in self.outcomes), *access])

    def _repr_html_(self) -> str:
        colour = "#1b7f3b" if self.ok else "#b3261e"
        rows = []
        for o in self.outcomes:
            mark = ("&#10004;", "#1b7f3b") if o.passed else ("&#10008;", "#b3261e")
            diagnosis = f"<br><small>{escape(o.explanation)}</small>" if o.explanation is not None else ""
            rows.append(f"<tr><td style='color:{mark[1]};font-weight:bold'>{mark[0]}</td>"
                        f"<td><b>{escape(o.name)}</b><br><small>{escape(o.uses)}</small></td>"
                        f"<td>{escape(o.expectation)}</td><td>{escape(o.verdict)}{diagnosis}</td></tr>")
        if self.access:
            rows.append("<tr><th></th><th colspan='3' style='text-align:left'>who may do what (broker/acl)</th></tr>")
            rows += [a.html_row() for a in self.access]
        title = f"MQTT over mutual TLS with {self.broker}: {'passed' if self.ok else 'FAILED'}"
        return (f"<div style='border-left:6px solid {colour};padding:4px 10px'>"
                f"<b style='color:{colour}'>{escape(title)}</b> <small>({escape(self.host)}:{self.port}, "
                f"{self.seconds:.2f} s)</small><table><tr><th></th><th style='text-align:left'>client</th>"
                f"<th style='text-align:left'>must be</th><th style='text-align:left'>what happened</th></tr>"
                f"{''.join(rows)}</table>{''.join(f'<small>note: {escape(n)}</small><br>' for n in self.notes)}</div>")


#: The temporary folder of a check's intruders is ``INTRUDER_PREFIX`` + the process id + ``-`` + a random part.
INTRUDER_PREFIX = "mqtt-pki-lab-intruder-"
_INTRUDER_FOLDER = re.compile(re.escape(INTRUDER_PREFIX) + r"(\d+)-")


def remove_stale_intruders(folder: str | Path | None = None) -> list[Path]:
    """Remove the intruders' folders that killed checks left behind (their process is gone); return them.

    A check killed with SIGKILL cannot remove its own temporary folder (a throwaway CA and client key, never
    the lab's): the next check does. Only folders of this user whose process no longer runs are removed; links
    are never followed.
    """
    removed = []
    base = Path(folder) if folder is not None else Path(tempfile.gettempdir())
    try:
        entries = list(os.scandir(base))
    except OSError:
        return removed
    for entry in entries:
        found = _INTRUDER_FOLDER.match(entry.name)
        try:
            if not found or not entry.is_dir(follow_symlinks=False) or entry.stat(
                    follow_symlinks=False).st_uid != os.getuid():
                continue
        except OSError:
            continue
        if _process_alive(int(found.group(1))):
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        removed.append(Path(entry.path))
    return removed


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def make_intruder(folder: Path, client_name: str) -> L.Side:
    """An intruder's own CA and a client certificate it signed for ``client_name`` (the lab client's name).

    Returns the intruder's files as a :class:`~mqtt_pki_lab.diagram.Side` (``ca`` = the intruder's CA).
    The name is right, the CA is wrong: a broker that trusts only the lab's CA must refuse it.
    """
    from .ca import create_ca_certificate
    from .csr import create_csr
    from .keys import generate_key, save_key
    from .pem import save_pem
    from .sign import sign_csr

    ca_key, key = generate_key(), generate_key()
    ca_cert = create_ca_certificate(ca_key, INTRUDER_CA_NAME)
    cert = sign_csr(create_csr(key, "client", [client_name]), ca_cert, ca_key, "client")
    side = L.Side(folder / "intruder-ca.crt", folder / "intruder-client.crt", folder / "intruder-client.key")
    save_pem(ca_cert, side.ca)
    save_pem(cert, side.cert)
    save_key(key, side.key)
    return side


def _client_name(cert_path: Path) -> str:
    """The client's name (its certificate's Common Name), which the intruder copies."""
    from .pem import load_certificate  # explains a file that is not a certificate

    return common_name(load_certificate(cert_path)) or "client"


def check_timeout(timeout: object, where: str = "--timeout") -> float:
    """A round trip's time limit: a finite number of seconds, more than 0 and at most :data:`MAX_TIMEOUT`."""
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise InputError(where, f"{timeout!r} is not a number of seconds")
    if not math.isfinite(timeout):
        raise InputError(where, f"{timeout!r} is not a number of seconds one can wait (give e.g. 5)")
    if timeout <= 0:
        raise InputError(where, f"{timeout:g} s: give a positive number of seconds (e.g. 5)")
    if timeout > MAX_TIMEOUT:
        raise InputError(where, f"{timeout:g} s is longer than a client may wait here (at most "
                                f"{MAX_TIMEOUT:g} s); on one machine a round trip takes milliseconds")
    return float(timeout)


def require_libraries(broker: str) -> None:
    """Raise :class:`InputError` when paho-mqtt (or, for the embedded broker, amqtt) is not installed."""
    missing = []
    try:
        import paho.mqtt.client  # noqa: F401
    except ImportError:
        missing.append("paho-mqtt")
    if broker == "embedded":
        try:
            import amqtt.broker  # noqa: F401
        except ImportError:
            missing.append("amqtt")
    if missing:
        raise InputError("mqtt", f"{' and '.join(missing)} not installed: pip install --upgrade "
                                 "mqtt-pki-lab (it brings paho-mqtt and amqtt)")


def start_broker(kind: str, root: str | Path | L.Side, *, host: str = "127.0.0.1",
                 password: bytes | str | None = None, acl: str | Path | bool = True):
    """Start the ``embedded`` or ``mosquitto`` broker on the lab's broker files (or on a
    :class:`~mqtt_pki_lab.diagram.Side`: any broker's three files); returns it running. ``acl`` is the policy
    it enforces (default: ``broker/acl`` beside ``server.crt``; see :func:`~mqtt_pki_lab.acl.policy_file_for`)."""
    if kind == "embedded":
        from .broker_embedded import EmbeddedBroker

        return EmbeddedBroker(root, host=host, password=password, acl=acl).start()
    if kind == "mosquitto":
        from .mosquitto import MosquittoBroker

        return MosquittoBroker(root, host=host, acl=acl).start()
    raise InputError("--broker", f"unknown broker {kind!r}; choose one of: {', '.join(BROKERS)}")


def _broker_label(kind: str, broker) -> str:
    if kind == "embedded":
        import amqtt

        return f"the embedded broker (amqtt {amqtt.__version__})"
    return f"mosquitto {broker.version}"


def _in_memory_reason(broker_files: L.Side, client_files: L.Side, host: str,
                      password: bytes | str | None, client: L.Role, gaps: frozenset[str] = frozenset()) -> str | None:
    """What the in-memory handshake of the same files says, when the broker refused them too."""
    result = handshake_files(broker_files, client_files, host, password, client_role=client, gaps=gaps)
    return result.reason if not result.ok and result.refused_by == "broker" else None


@dataclass(frozen=True)
class _Plan:
    """One attempt to make: who, with which files, and what must happen."""

    name: str
    uses: str
    expect: Expect
    files: L.Side
    client: L.Role
    rotation: str | None = None


def _attempt(broker, broker_files: L.Side, plan: _Plan, *, host: str, password: bytes | str | None,
             timeout: float, intermediate: x509.Certificate | None = None) -> MqttOutcome:
    """Make one attempt of ``plan`` against the running broker, and diagnose a refusal (``intermediate``: the
    lab's intermediate CA, when it has one: a side whose file lacks it is diagnosed as a missing chain)."""
    gaps = chain_gaps(broker_files, plan.files, intermediate)
    seen = len(broker.refusals)
    trip = mqtt_round_trip(host, broker.port, plan.files, password=password, timeout=timeout)
    broker_reason = detail = None
    if trip.refused_by == "broker":
        deadline = time.monotonic() + 1.0  # the broker may log its reason a moment after hanging up
        while len(broker.refusals) <= seen and time.monotonic() < deadline:
            time.sleep(0.002)
        refusals = broker.refusals
        broker_reason = refusals[seen] if len(refusals) > seen else None
        if broker_reason == BARE_VERIFY_FAILURE:
            detail = _in_memory_reason(broker_files, plan.files, host, password, plan.client, gaps)
    outcome = MqttOutcome(plan.name, plan.uses, plan.expect, trip, broker_reason, detail, client=plan.client,
                          rotation=plan.rotation)
    if trip.ok:
        return outcome
    if trip.refused_by is None and trip.stage in ("tcp", "connack", "subscribe", "message"):
        return outcome  # nobody refused: not a TLS matter, the verdict says what happened
    refuser = trip.refused_by
    diagnosis = diagnose_tls_failure(outcome.reason or "", refuser, hostname=host, client=plan.client,
                                     chain={"broker": "client", "client": "broker"}.get(refuser or "") in gaps)
    return MqttOutcome(plan.name, plan.uses, plan.expect, trip, broker_reason, detail, diagnosis, plan.client,
                       plan.rotation)


def _plan(root: Path, clients: dict[L.Role, L.Side], intruder: L.Side,
          revoked: Iterable[L.Role] = ()) -> list[_Plan]:
    """Every good client once (with its files: the lab's, or its device's), then the three intruders (with the
    first client's files). A client on the broker's revocation list (``revoked``) is no longer a good client:
    the broker must refuse it."""
    gone = set(revoked)

    def rel(path: Path) -> str:
        return path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)

    plans = [_Plan(REVOKED_CLIENT if role in gone else GOOD_CLIENT, ", ".join(rel(p) for p in (side.ca, side.cert,
                   side.key)), "broker" if role in gone else "through", side, role) for role, side in clients.items()]
    if rotating(root):  # per client: which root it depends on (the old one, the new one, both)
        plans = [replace(p, rotation=rotation_note(root, p.files, p.client)) for p in plans]
    first = L.FIRST_CLIENT
    own = first.side(root)
    return [
        *plans,
        _Plan("no certificate", f"{rel(own.ca)} only", "broker", side_paths(own.ca, None, None), first),
        _Plan("certificate from another CA", f"{rel(own.ca)} + a client.crt signed by {INTRUDER_CA_NAME!r}",
              "broker", side_paths(own.ca, intruder.cert, intruder.key), first),
        _Plan("trusts another CA", f"{rel(own.cert)}, {rel(own.key)} + {INTRUDER_CA_NAME!r} as ca.crt",
              "client", side_paths(intruder.ca, own.cert, own.key), first),
    ]


@contextlib.contextmanager
def _sigterm_unwinds():
    """While the check runs, SIGTERM raises SystemExit (exit status 143) instead of ending the process on the
    spot, so the broker is stopped and the intruders' folder removed. Only in the main thread, and only when
    nobody else handles SIGTERM; the previous handler comes back afterwards."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        yield
        return

    def unwind(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, unwind)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _device_sides(root: Path, clients: tuple[L.Role, ...], devices: Iterable[str | Path]
                  ) -> tuple[L.Side, dict[L.Role, L.Side], list[str]]:
    """The broker's files and each client's to use: the lab's, or a device folder's own (``--device``) for a role
    whose key was born on its device; such a client without its folder is left out, with a note."""
    given = {lab_role_of(root, found): found.side for found in (device_folder(d) for d in devices)}
    if key_on_device(root, L.BROKER) and L.BROKER not in given:
        raise InputError(L.SERVER_KEY.path(root), "is held by the broker's own machine (its key was born there): "
                                                  "give that machine's folder with --device BROKER_DIR")
    broker_files = given.get(L.BROKER, L.BROKER.side(root))
    sides, notes = {}, []
    for role in clients:
        if role in given:
            sides[role] = given[role]
        elif key_on_device(root, role):
            notes.append(f"{role.folder}: its key is held by its device, not tried (add --device DEVICE_DIR)")
        else:
            sides[role] = role.side(root)
    return broker_files, sides, notes


def mqtt_check(root: str | Path = "pki", broker: BrokerKind | str = "embedded", *, host: str = "127.0.0.1",
               password: bytes | str | None = None, timeout: float = 5.0,
               devices: Iterable[str | Path] = ()) -> MqttCheckReport:
    """Run a real broker on the lab's broker files and send every client, then the intruders, through it.

    ``broker`` is ``embedded`` (amqtt, pure Python) or ``mosquitto`` (the program must be installed).
    Every client of the lab (``client/`` and each ``clients/NAME/``, as
    :attr:`~mqtt_pki_lab.steps.Lab.roles` finds them) makes its own round trip; the three intruders
    follow. ``password`` unlocks encrypted keys (embedded broker only: mosquitto cannot take one).
    ``timeout`` is each round trip's limit in seconds (more than 0, at most :data:`MAX_TIMEOUT`).
    ``devices``: folders of devices whose key was born there (:mod:`~mqtt_pki_lab.device`): their own three
    files take the place of the lab's (a broker's folder runs the broker). Raises
    :class:`~mqtt_pki_lab.errors.LabError` for bad options, missing files or a broker that cannot start;
    a refusal is never an exception, it is an outcome.
    """
    started = time.monotonic()
    timeout = check_timeout(timeout)
    if broker not in BROKERS:
        raise InputError("--broker", f"unknown broker {broker!r}; choose one of: {', '.join(BROKERS)}")
    require_libraries(broker)
    lab = Lab(root)  # checks the folder: not a file, not a link
    root = lab.root
    broker_files, clients, notes = _device_sides(root, lab.roles.clients, devices)
    check_side_files(broker_files, L.BROKER, password)
    for role, side in clients.items():
        check_side_files(side, role, password)
    remove_stale_intruders()
    with _sigterm_unwinds(), tempfile.TemporaryDirectory(prefix=f"{INTRUDER_PREFIX}{os.getpid()}-") as tmp:
        intruder = make_intruder(Path(tmp), _client_name(L.FIRST_CLIENT.side(root).cert))
        policy_file = policy_file_for(L.BROKER.side(root))  # the lab's policy, whichever files run the broker
        policy = read_policy_file(policy_file) if policy_file is not None else None
        running = start_broker(broker, broker_files, host=host, password=password, acl=policy_file or False)
        try:
            crl = broker_crl(broker_files)  # the list the broker enforces: its clients must be refused
            revoked = revoked_clients(root, path=crl) if crl is not None else {}
            intermediate = lab_intermediate(root)
            outcomes = tuple(_attempt(running, broker_files, plan, host=host, password=password, timeout=timeout,
                                      intermediate=intermediate) for plan in _plan(root, clients, intruder, revoked))
            good = [(_client_name(clients[o.client].cert), clients[o.client]) for o in outcomes
                    if o.name == GOOD_CLIENT and o.passed]
            access = () if policy is None else prove_access(host, running.port, good, policy, password=password,
                                                            timeout=timeout)
        finally:
            running.stop()
    if policy is None:
        notes.append(f"no {L.BROKER.folder}/{L.ACL_FILE} (a lab made by an older version): every client may use "
                     f"every topic; make the default policy with: mqtt-pki-lab acl {root} --reset")
    return MqttCheckReport(_broker_label(broker, running), host, running.port, outcomes, tuple(running.log),
                           time.monotonic() - started, (*getattr(running, "notes", ()), *notes), access)
