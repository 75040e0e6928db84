"""Prove it or explain it: check every file of a lab folder, then run the mutual-TLS handshake.

``verify_lab("pki")`` answers the question the diagram ends with: do the broker's three files and the
client's three files really work together? It runs the checks of :mod:`mqtt_pki_lab.checks` (which
look at the files and can name the exact file at fault), then the in-memory handshake of
:mod:`mqtt_pki_lab.handshake` (which proves it with real TLS, strict as Python 3.13). The report's
:attr:`VerifyReport.diagnosis` is the most specific explanation: the first failing check's, or, when
every check passes and TLS still refuses, the handshake's own.

>>> report = verify_lab("pki")      # doctest: +SKIP
>>> report.ok                       # doctest: +SKIP
True
>>> print(report)                   # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from html import escape
from pathlib import Path

from . import diagram as L
from .checks import Check, LabFiles, check_device_rotation, run_checks
from .crl import revoked_clients
from .device import device_folder, lab_role_of
from .diagnose import Diagnosis
from .diagram import Role
from .errors import InputError
from .files import check_lab_path
from .handshake import HandshakeResult, chain_gaps, handshake_files
from .live import Presented, check_live, parse_address, presented_chain
from .names import check_host_name
from .profile import DEFAULT_SERVER_NAME


@dataclass(frozen=True)
class VerifyReport:
    """What ``verify`` found: every check, the handshake, and the diagnosis when something is wrong."""

    root: Path
    hostname: str
    checks: tuple[Check, ...]
    handshakes: tuple[tuple[Role, HandshakeResult | None, str | None], ...]
    """Per client: the handshake with the broker's files, or None and why it was not attempted."""
    on_device: frozenset[Role] = frozenset()
    """Clients whose handshake was not attempted because a key is held by a device and its folder was not
    given (``--device``): not a failure, the lab cannot prove what it does not hold."""
    devices: tuple[tuple[Role, Path], ...] = ()
    """The device folders whose own files were used (``--device``), with the lab role each one is."""
    revoked: frozenset[Role] = frozenset()
    """Clients on the broker's revocation list (``mqtt-pki-lab revoke``): their handshake must be *refused*
    ("certificate revoked"), and that refusal is a pass."""
    live: Presented | None = None
    """With ``live=``: what the running broker presented (its row is the ``live broker`` check)."""

    def refused_as_revoked(self, role: Role, result: HandshakeResult | None) -> bool:
        """True when ``role`` is revoked and the broker refused it for that reason, as it must."""
        return (role in self.revoked and result is not None and not result.ok and result.diagnosis is not None
                and result.diagnosis.code == "revoked")

    @property
    def handshake(self) -> HandshakeResult | None:
        """The first handshake that failed, else the first client's (None when it was not attempted)."""
        for role, result, _ in self.handshakes:
            if result is not None and not result.ok and not self.refused_as_revoked(role, result):
                return result
        return self.handshakes[0][1] if self.handshakes else None

    @property
    def skipped(self) -> str | None:
        """Why a handshake was not attempted, when one was not."""
        return next((f"{role.label}: {why}" for role, result, why in self.handshakes if result is None), None)

    @property
    def ok(self) -> bool:
        """True when no check failed and every client's handshake passed (warnings are allowed)."""
        return all(c.ok for c in self.checks) and bool(self.handshakes) and all(
            (result is not None and result.ok) or (result is None and role in self.on_device)
            or self.refused_as_revoked(role, result) for role, result, _ in self.handshakes)

    @property
    def failures(self) -> list[Check]:
        """The checks that failed."""
        return [c for c in self.checks if c.status == "fail"]

    @property
    def warnings(self) -> list[Check]:
        """The checks that passed with a warning."""
        return [c for c in self.checks if c.status == "warn"]

    @property
    def diagnosis(self) -> Diagnosis | None:
        """The most specific explanation of what is wrong, or None when everything holds."""
        for check in self.failures:
            if check.diagnosis is not None:
                return check.diagnosis
        if self.handshake is not None and not self.handshake.ok:
            return self.handshake.diagnosis  # type: ignore[return-value]
        return None

    def __str__(self) -> str:
        lines = [f"Verifying the MQTT PKI in {self.root} (the client connects to {self.hostname!r})"]
        lines += ["  " + line for check in self.checks for line in str(check).splitlines()]
        used = dict(self.devices)
        for role, result, why in self.handshakes:
            who = "" if role == L.FIRST_CLIENT else f"[{role.folder}] "
            if role in used:
                who = f"[{role.folder}: the device's files in {used[role]}] "
            if self.refused_as_revoked(role, result):
                lines.append(f"  {who}handshake refused, as it must be: {result.reason} (revoked: nothing to fix)")
            elif result is not None:
                lines += ["  " + who + line if i == 0 else "  " + line
                          for i, line in enumerate(str(result).splitlines())]
            else:
                lines.append(f"  [skip] {who}handshake: {why}")
        if self.ok:
            extra = f" ({len(self.warnings)} warning{'s' * (len(self.warnings) != 1)})" if self.warnings else ""
            clients = len(self.handshakes) - len(self.revoked)  # a revoked client's files must not work
            whose = "the client's files" if clients == 1 else f"each of the {clients} clients' files"
            if self.on_device:
                whose += (f" ({len(self.on_device)} device{'s' * (len(self.on_device) != 1)} not handshaken: "
                          "the keys are on the devices; add --device DEVICE_DIR)")
            count = len(self.revoked)
            revoked = (f"; {count} revoked client{'s are' if count != 1 else ' is'} refused, as "
                       f"{'they' if count != 1 else 'it'} must be") if count else ""
            live = f"; the broker running at {self.live.address} presents them" if self.live else ""
            lines.append(f"OK: the broker's files and {whose} work together{extra}{revoked}{live}.")
        else:
            lines.append(f"FAILED: {self.diagnosis or 'see the failed checks above'}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        colours = {"pass": "#1b7f3b", "warn": "#9a6700", "fail": "#b3261e"}
        marks = {"pass": "✔", "warn": "⚠", "fail": "✘"}
        rows = "".join(
            f"<tr><td style='color:{colours[c.status]}'>{marks[c.status]}</td><td>{escape(c.name)}</td>"
            f"<td>{escape(c.message)}</td></tr>" for c in self.checks)
        def shown(role: Role, result: HandshakeResult | None, why: str | None) -> str:
            if self.refused_as_revoked(role, result):
                return (f"<div style='color:{colours['pass']}'>✔ {escape(role.label)}: handshake refused, as it must "
                        f"be: {escape(result.reason or '')} (revoked: nothing to fix)</div>")
            if result is None:
                return f"<div><i>{escape(role.label)}: handshake not attempted: {escape(why or '')}</i></div>"
            return result._repr_html_()

        handshake = "".join(shown(*row) for row in self.handshakes[:3])
        if len(self.handshakes) > 3:
            passed = sum(1 for _, r, _ in self.handshakes[3:] if r is not None and r.ok)
            handshake += f"<div>… and {len(self.handshakes) - 3} more clients ({passed} passed)</div>"
        colour, verdict = (colours["pass"], "the broker's files and the client's files work together") \
            if self.ok else (colours["fail"], "FAILED")
        diagnosis = self.diagnosis
        box = "" if diagnosis is None else (
            f"<div style='margin-top:6px;padding:4px 8px;background:#fdecea'><b>Diagnosis:</b> "
            f"{diagnosis._repr_html_()}</div>")
        return (f"<div style='border-left:6px solid {colour};padding:4px 10px'>"
                f"<b style='color:{colour}'>verify {escape(str(self.root))}: {verdict}</b> "
                f"<span>(client connects to <code>{escape(self.hostname)}</code>)</span>"
                f"<table>{rows}</table>{handshake}{box}</div>")


def _handshake_sides(files: LabFiles, client: Role, broker: L.Side | None = None,
                     device: L.Side | None = None) -> tuple[L.Side, L.Side] | str:
    """The files to handshake ``client`` with, or why the handshake cannot be attempted. ``broker`` and
    ``device``: a device folder's own files (``--device``) instead of the lab's, for that side."""
    needed = (*(() if broker else L.BROKER.operating), *(() if device else (client.file("trust"),)))
    unusable = [f.relpath for f in needed if not files.has(f)]
    if unusable:
        return f"{', '.join(unusable)} missing or unreadable"
    side = client.side(files.root)
    if device is not None:
        side = device
    elif client.file("crt") in files.missing or client.file("key") in files.missing:
        # A client without its certificate still connects, and the broker refuses it: show that.
        side = L.Side(side.ca, None, None)  # type: ignore[arg-type]
    elif not (files.has(client.file("crt")) and files.has(client.file("key"))):
        return f"{client.file('crt').relpath} or {client.file('key').relpath} unreadable"
    return broker or L.BROKER.side(files.root), side


def _on_device_skip(files: LabFiles, client: Role, broker_given: bool) -> str | None:
    """Why ``client``'s handshake cannot be made from the lab alone (a key held by a device), or None."""
    if L.BROKER in files.on_device and not broker_given:
        return (f"{L.SERVER_KEY.relpath} is held by the broker's own machine: prove it with "
                f"mqtt-pki-lab verify {files.root} --device BROKER_DIR")
    if client in files.on_device:
        return (f"{client.file('key').relpath} is held by the device, not the lab: prove it with "
                f"mqtt-pki-lab verify {files.root} --device DEVICE_DIR")
    return None


def verify_lab(root: str | Path, hostname: str = DEFAULT_SERVER_NAME,
               password: bytes | str | None = None, devices: Iterable[str | Path] = (),
               live: str | tuple[str, int] | None = None) -> VerifyReport:
    """Check the lab folder ``root`` and handshake its broker's files with every client's files.

    ``hostname`` is the name the clients connect to (it must be in server.crt's subjectAltName);
    ``password`` unlocks encrypted keys. ``devices``: folders of devices whose key was born there
    (:mod:`~mqtt_pki_lab.device`); their own three files are handshaken instead of the lab's (a client's with
    the broker's, a broker's with every client's). Without them, such a client is checked but not handshaken,
    which is not a failure. ``live``: a running broker (``"HOST:PORT"`` or ``(host, port)``) to connect to as
    the first client does (its ``ca.crt``, the name ``hostname``): the ``live broker`` check says whether it
    presents ``broker/server.crt`` or still the certificate it loaded before a renewal
    (:func:`~mqtt_pki_lab.live.check_live`). Raises :class:`~mqtt_pki_lab.errors.InputError` only when
    ``root`` is not a folder, ``hostname`` is not a valid name, a device folder is not one of this lab's
    devices, or nothing speaks TLS at ``live``; every problem with the files themselves is reported in the
    result.
    """
    root = check_lab_path(root)
    if not root.is_dir():
        raise InputError(root, "no such lab folder")
    hostname = check_host_name(hostname, "--hostname")
    given = {lab_role_of(root, found): found for found in (device_folder(d) for d in devices)}
    address = parse_address(live) if live is not None else None
    files = LabFiles.load(root, password)
    checks = (*run_checks(files, hostname),  # a CA rotation: a device that never received the new root
              *check_device_rotation(files, {role: found.side for role, found in given.items()}))
    presented = _presented(files, address, hostname, password) if address else None
    checks += (check_live(files, presented),) if presented else ()
    handshakes = []
    excused = set()
    broker = given[L.BROKER].side if L.BROKER in given else None
    for client in files.clients:
        device = given[client].side if client in given else None
        skip = None if device is not None else _on_device_skip(files, client, broker is not None)
        sides = skip or _handshake_sides(files, client, broker, device)
        if skip is not None:
            excused.add(client)
        if isinstance(sides, str):
            handshakes.append((client, None, sides))
        else:
            handshakes.append((client, handshake_files(*sides, hostname=hostname, password=password, client_role=client,
                                                       gaps=chain_gaps(*sides, files.intermediate)), None))
    return VerifyReport(root, hostname, checks, tuple(handshakes), frozenset(excused),
                        tuple((role, found.folder) for role, found in given.items()),
                        revoked=frozenset(revoked_clients(root)), live=presented)


def _presented(files: LabFiles, address: tuple[str, int], hostname: str,
               password: bytes | str | None) -> Presented:
    """What the broker at ``address`` presents to the lab's first client (its ca.crt, and its certificate
    when the lab holds it); only looked at when the lab has no readable client/ca.crt."""
    client = L.FIRST_CLIENT
    trust = client.file("trust")
    ca = trust.path(files.root) if files.has(trust) else None
    own = files.has(client.file("crt")) and files.has(client.file("key"))
    return presented_chain(*address, ca, server_name=hostname, client=client.side(files.root) if own else None,
                           password=password)
