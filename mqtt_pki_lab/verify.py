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

from dataclasses import dataclass
from html import escape
from pathlib import Path

from . import diagram as L
from .checks import Check, LabFiles, run_checks
from .diagnose import Diagnosis
from .diagram import Role
from .errors import InputError
from .files import check_lab_path
from .handshake import HandshakeResult, handshake_files
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

    @property
    def handshake(self) -> HandshakeResult | None:
        """The first handshake that failed, else the first client's (None when it was not attempted)."""
        for _, result, _ in self.handshakes:
            if result is not None and not result.ok:
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
            result is not None and result.ok for _, result, _ in self.handshakes)

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
        for role, result, why in self.handshakes:
            who = "" if role == L.FIRST_CLIENT else f"[{role.folder}] "
            if result is not None:
                lines += ["  " + who + line if i == 0 else "  " + line
                          for i, line in enumerate(str(result).splitlines())]
            else:
                lines.append(f"  [skip] {who}handshake: {why}")
        if self.ok:
            extra = f" ({len(self.warnings)} warning{'s' * (len(self.warnings) != 1)})" if self.warnings else ""
            clients = len(self.handshakes)
            whose = "the client's files" if clients == 1 else f"each of the {clients} clients' files"
            lines.append(f"OK: the broker's files and {whose} work together{extra}.")
        else:
            lines.append(f"FAILED: {self.diagnosis or 'see the failed checks above'}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        colours = {"pass": "#1b7f3b", "warn": "#9a6700", "fail": "#b3261e"}
        marks = {"pass": "✔", "warn": "⚠", "fail": "✘"}
        rows = "".join(
            f"<tr><td style='color:{colours[c.status]}'>{marks[c.status]}</td><td>{escape(c.name)}</td>"
            f"<td>{escape(c.message)}</td></tr>" for c in self.checks)
        handshake = "".join(
            result._repr_html_() if result is not None else
            f"<div><i>{escape(role.label)}: handshake not attempted: {escape(why or '')}</i></div>"
            for role, result, why in self.handshakes[:3])
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


def _handshake_sides(files: LabFiles, client: Role) -> tuple[L.Side, L.Side] | str:
    """The files to handshake ``client`` with, or why the handshake cannot be attempted."""
    unusable = [f.relpath for f in (*L.BROKER.operating, client.file("trust")) if not files.has(f)]
    if unusable:
        return f"{', '.join(unusable)} missing or unreadable"
    side = client.side(files.root)
    if client.file("crt") in files.missing or client.file("key") in files.missing:
        # A client without its certificate still connects, and the broker refuses it: show that.
        side = L.Side(side.ca, None, None)  # type: ignore[arg-type]
    elif not (files.has(client.file("crt")) and files.has(client.file("key"))):
        return f"{client.file('crt').relpath} or {client.file('key').relpath} unreadable"
    return L.BROKER.side(files.root), side


def verify_lab(root: str | Path, hostname: str = DEFAULT_SERVER_NAME,
               password: bytes | str | None = None) -> VerifyReport:
    """Check the lab folder ``root`` and handshake its broker's files with every client's files.

    ``hostname`` is the name the clients connect to (it must be in server.crt's subjectAltName);
    ``password`` unlocks encrypted keys. Raises :class:`~mqtt_pki_lab.errors.InputError` only when
    ``root`` is not a folder or ``hostname`` is not a valid name; every problem with the files
    themselves is reported in the result.
    """
    root = check_lab_path(root)
    if not root.is_dir():
        raise InputError(root, "no such lab folder")
    hostname = check_host_name(hostname, "--hostname")
    files = LabFiles.load(root, password)
    checks = tuple(run_checks(files, hostname))
    handshakes = []
    for client in files.clients:
        sides = _handshake_sides(files, client)
        if isinstance(sides, str):
            handshakes.append((client, None, sides))
        else:
            handshakes.append((client, handshake_files(*sides, hostname=hostname, password=password,
                                                       client_role=client), None))
    return VerifyReport(root, hostname, checks, tuple(handshakes))
