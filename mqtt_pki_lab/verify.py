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

from . import layout as L
from .checks import Check, LabFiles, run_checks
from .diagnose import Diagnosis
from .errors import InputError
from .handshake import HandshakeResult, handshake_files
from .profile import DEFAULT_SERVER_NAME, check_name


@dataclass(frozen=True)
class VerifyReport:
    """What ``verify`` found: every check, the handshake, and the diagnosis when something is wrong."""

    root: Path
    hostname: str
    checks: tuple[Check, ...]
    handshake: HandshakeResult | None
    """The handshake's result, or None when the files needed for it are missing or unreadable."""
    skipped: str | None = None
    """Why the handshake was not attempted, when it was not."""

    @property
    def ok(self) -> bool:
        """True when no check failed and the handshake passed (warnings are allowed)."""
        return all(c.ok for c in self.checks) and self.handshake is not None and self.handshake.ok

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
        if self.handshake is not None:
            lines += ["  " + line for line in str(self.handshake).splitlines()]
        else:
            lines.append(f"  [skip] handshake: {self.skipped}")
        if self.ok:
            extra = f" ({len(self.warnings)} warning{'s' * (len(self.warnings) != 1)})" if self.warnings else ""
            lines.append(f"OK: the broker's files and the client's files work together{extra}.")
        else:
            lines.append(f"FAILED: {self.diagnosis or 'see the failed checks above'}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        colours = {"pass": "#1b7f3b", "warn": "#9a6700", "fail": "#b3261e"}
        marks = {"pass": "✔", "warn": "⚠", "fail": "✘"}
        rows = "".join(
            f"<tr><td style='color:{colours[c.status]}'>{marks[c.status]}</td><td>{escape(c.name)}</td>"
            f"<td>{escape(c.message)}</td></tr>" for c in self.checks)
        if self.handshake is not None:
            handshake = self.handshake._repr_html_()
        else:
            handshake = f"<div><i>handshake not attempted: {escape(self.skipped or '')}</i></div>"
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


def _handshake_sides(files: LabFiles) -> tuple[L.Side, L.Side] | str:
    """The files to handshake with, or why the handshake cannot be attempted."""
    unusable = [f.relpath for f in (*L.OPERATING_FILES["broker"], L.CLIENT_CA) if not files.has(f)]
    if unusable:
        return f"{', '.join(unusable)} missing or unreadable"
    client = L.side(files.root, "client")
    if L.CLIENT_CERT in files.missing or L.CLIENT_KEY in files.missing:
        # A client without its certificate still connects, and the broker refuses it: show that.
        client = L.Side(client.ca, None, None)  # type: ignore[arg-type]
    elif not (files.has(L.CLIENT_CERT) and files.has(L.CLIENT_KEY)):
        return "client/client.crt or client/client.key unreadable"
    return L.side(files.root, "broker"), client


def verify_lab(root: str | Path, hostname: str = DEFAULT_SERVER_NAME,
               password: bytes | str | None = None) -> VerifyReport:
    """Check the lab folder ``root`` and handshake its broker's files with its client's files.

    ``hostname`` is the name the client connects to (it must be in server.crt's subjectAltName);
    ``password`` unlocks encrypted keys. Raises :class:`~mqtt_pki_lab.errors.InputError` only when
    ``root`` is not a folder or ``hostname`` is not a valid name; every problem with the files
    themselves is reported in the result.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(root, "no such lab folder" if not root.exists() else "is a file, not a lab folder")
    check_name(hostname, "--hostname")
    files = LabFiles.load(root, password)
    checks = tuple(run_checks(files, hostname))
    sides = _handshake_sides(files)
    if isinstance(sides, str):
        return VerifyReport(root, hostname, checks, None, skipped=sides)
    return VerifyReport(root, hostname, checks, handshake_files(*sides, hostname=hostname, password=password))
