"""Exercises of notebook 08 (a fleet): validity windows against a device's clock, the 1970 boot clock,
and names of your own for two more devices.

The facts the judges hold, and where they come from:

* A certificate is valid from its notBefore through its notAfter (RFC 5280 §4.1.2.5). A verifier
  compares both with **its own** clock: OpenSSL reports ``certificate is not yet valid``
  (``X509_V_ERR_CERT_NOT_YET_VALID``) before notBefore and ``certificate has expired`` after notAfter.
* A microcontroller without a battery-backed real-time clock (an ESP32, most small boards) starts counting
  from 0 at boot: Unix time 0 is 1970-01-01 00:00:00 UTC, until SNTP (RFC 4330, now in RFC 5905) sets
  the clock. NTP's own timestamps count from 1900-01-01; many RTC chips count years from 2000.
* A client's name is its Common Name and MQTT username: the lab allows ASCII letters, digits and ``- _ . @``,
  at most 64 characters, not starting with ``.`` or ``-`` (:mod:`mqtt_pki_lab.names`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from . import exercise, right

NOTEBOOK = "08_a_fleet.ipynb"
UTC = dt.timezone.utc


@dataclass(frozen=True)
class Window:
    """One client's certificate validity, as ``inspect`` shows it."""

    client: str
    not_before: dt.datetime
    not_after: dt.datetime

    def valid_at(self, clock: dt.datetime) -> bool:
        """Valid at ``clock``: notBefore <= clock <= notAfter (RFC 5280 §4.1.2.5)."""
        return self.not_before <= clock <= self.not_after


def _at(year: int, month: int, day: int, hour: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, tzinfo=UTC)


#: The device's clock in exercise ``fleet-refuse`` (a broker checking client certificates, say).
PUZZLE_CLOCK = _at(2027, 3, 1, 12)
#: Five clients' certificates: a fixed puzzle, independent of today's date. The names are none of the lab's
#: own (sensor-1, sensor-2, door-lock), so the puzzle's dates are never confused with the lab's certificates.
PUZZLE: tuple[Window, ...] = (
    Window("valve-a", _at(2026, 12, 2), _at(2027, 12, 2)),
    Window("valve-b", _at(2025, 1, 10), _at(2026, 1, 10)),
    Window("pump-1", _at(2027, 4, 1), _at(2028, 4, 1)),
    Window("gate-2", _at(2026, 6, 1), _at(2027, 7, 1)),
    Window("garden", _at(2026, 2, 28), _at(2027, 2, 28)),
)


def puzzle_table() -> str:
    """The puzzle as a small table, for the notebook."""
    lines = [f"clock of the checking side: {PUZZLE_CLOCK:%Y-%m-%d %H:%M} UTC", "",
             f"{'client':<10} {'notBefore':<17} notAfter"]
    lines += [f"{w.client:<10} {w.not_before:%Y-%m-%d %H:%M}  {w.not_after:%Y-%m-%d %H:%M}" for w in PUZZLE]
    return "\n".join(lines)


def _names(answer: Any) -> list[str] | None:
    """A list of names typed as a list, tuple or set of strings, or as one comma-separated string."""
    if isinstance(answer, str):
        return [n.strip().strip("'\"") for n in answer.split(",") if n.strip()]
    if isinstance(answer, list | tuple | set | frozenset) and all(isinstance(n, str) for n in answer):
        return [n.strip() for n in answer]
    return None


#: The hints teach the rule (which date is compared with which) and never name a client: finding it is the
#: exercise.
_REFUSE_HINTS = {
    "valid": "your list has a client the check accepts: its notBefore is before the clock and its notAfter "
             "after it (notBefore <= clock <= notAfter). A check refuses a certificate only outside its window.",
    "not-yet": "your list misses a refused client. Compare each notBefore with the clock too: a certificate "
               "whose notBefore is after the clock is refused as well (OpenSSL: 'certificate is not yet "
               "valid'), not only an expired one.",
    "expired": "your list misses a refused client. Compare each notAfter with the clock: a certificate whose "
               "notAfter is before the clock has expired (OpenSSL: 'certificate has expired').",
    "expired-same-year": "your list misses a refused client. Compare each notAfter with the clock by its whole "
                         "date, month and day too, not only its year: a notAfter one day before the clock has "
                         "expired.",
}


@exercise("fleet-refuse", NOTEBOOK, "list the clients a check refuses at the given clock",
          hint="for each client compare the clock with notBefore and notAfter: valid only when "
               "notBefore <= clock <= notAfter (RFC 5280 §4.1.2.5).",
          hints=tuple(_REFUSE_HINTS.values()))
def _refuse(answer: Any) -> Any:
    names = _names(answer)
    if names is None:
        return 'give a list of client names, e.g. ["valve-a", "garden"].'
    known = {w.client: w for w in PUZZLE}
    unknown = [n for n in names if n not in known]
    if unknown:
        return f"{unknown[0]!r} is not one of the clients: {', '.join(known)}."
    picked = set(names)
    if any(w.valid_at(PUZZLE_CLOCK) for w in PUZZLE if w.client in picked):
        return _REFUSE_HINTS["valid"]
    missed = [w for w in PUZZLE if not w.valid_at(PUZZLE_CLOCK) and w.client not in picked]
    if any(w.not_before > PUZZLE_CLOCK for w in missed):
        return _REFUSE_HINTS["not-yet"]
    if any(w.not_after.year == PUZZLE_CLOCK.year for w in missed):
        return _REFUSE_HINTS["expired-same-year"]
    if missed:
        return _REFUSE_HINTS["expired"]
    return right("valve-b and garden have expired (garden on the day before the clock); pump-1 is not valid "
                 "yet (its window opens a month after the clock). A device whose clock is wrong makes exactly "
                 "these mistakes about valid certificates.")


def _as_date(answer: Any) -> dt.date | None:
    if isinstance(answer, dt.datetime):
        return (answer.astimezone(UTC) if answer.tzinfo else answer).date()
    if isinstance(answer, dt.date):
        return answer
    if isinstance(answer, str):
        try:
            return dt.date.fromisoformat(answer.strip().strip("'\"")[:10])
        except ValueError:
            return None
    return None


_BOOT_HINTS = {
    1900: "1900-01-01 is the epoch of NTP's timestamps (RFC 5905), not of the device's clock. The C library "
          "on the ESP32 counts Unix time: seconds since which date?",
    2000: "many real-time clock chips count years from 2000, but this device has no RTC at all: its clock "
          "starts from 0 in Unix time.",
    1: "that is Python's datetime.min, not a device's clock. Unix time 0 is which date?",
}


def _not_before(cert: Any) -> dt.datetime | None:
    """notBefore of ``cert`` (a certificate object or a path to a PEM file); None when it cannot be read."""
    try:
        if hasattr(cert, "not_valid_before_utc"):
            return cert.not_valid_before_utc
        from ..pem import load_certificate

        return load_certificate(cert).not_valid_before_utc
    except Exception:  # the context is optional: a message without it is still right
        return None


@exercise("fleet-boot-clock", NOTEBOOK, "give the date a device without a real-time clock thinks it is at boot",
          hint="the device's clock starts at 0 seconds of Unix time (time_t 0) until SNTP sets it. Which date "
               "is that? Type it as YYYY-MM-DD.",
          hints=tuple(_BOOT_HINTS.values()))
def _boot_clock(answer: Any, cert: Any = None) -> Any:
    date = _as_date(answer)
    if date is None:
        return "type a date as a string 'YYYY-MM-DD' or a datetime.date."
    if date == dt.date(1970, 1, 1):
        start = _not_before(cert) if cert is not None else None
        gap = f" The broker's certificate starts on {start:%Y-%m-%d}: " \
              f"{(start.date() - date).days} days later." if start is not None else ""
        return right(f"1970-01-01, Unix time 0.{gap} A device that checks dates with that clock finds every "
                     "certificate 'not yet valid', until SNTP sets its clock.")
    if date.year in _BOOT_HINTS and date.month == 1 and date.day == 1:
        return _BOOT_HINTS[date.year]
    if date >= dt.date(2020, 1, 1):
        return "that is a date a synced clock could show. A clock that nobody has set counts from 0: which " \
               "date is Unix time 0?"
    return None


_NAME_HINTS = {
    "space": "{name!r} has a space: a name is the MQTT username and a folder name (clients/NAME); use - or _ "
             "instead.",
    "slash": "{name!r} has a '/': it would make a folder path, and in MQTT '/' separates topic levels.",
    "wildcard": "{name!r} has '+' or '#', MQTT's wildcards: an ACL pattern such as devices/%u/# would turn "
                "them into wildcards. Use ASCII letters, digits and - _ . @",
    "start": "{name!r} starts with '{first}': names start with a letter, a digit, '_' or '@'.",
    "long": "{name!r} is {length} characters: a Common Name holds at most 64 (RFC 5280 ub-common-name).",
    "taken": "{name!r} is a client of your lab already: every device needs a name of its own (the broker "
             "tells devices apart by it).",
    "same": "the two names are the same: two devices, two names.",
    "not-ascii": "{name!r} has {char!r}, which is not ASCII: the lab allows only the ASCII letters A-Z and a-z, "
                 "digits and - _ . @ (its own rule: a letter such as 'ü' can be written as one code point or as "
                 "'u' plus a combining mark, and a broker compares usernames as they are, not as they look).",
}


@exercise("fleet-two-names", NOTEBOOK, "choose names for two more devices (valid MQTT usernames)",
          hint="give a list of two strings, each ASCII letters, digits and - _ . @ (at most 64), e.g. "
               '["kitchen-thermostat", "garage-door"].',
          hints=tuple(_NAME_HINTS.values()))
def _two_names(answer: Any, lab: Any = None) -> Any:
    from ..errors import InputError
    from ..names import MAX_CN_LENGTH, check_client_name

    if isinstance(answer, str) or not isinstance(answer, list | tuple):
        return 'give a list of two strings, e.g. ["kitchen-thermostat", "garage-door"].'
    if len(answer) != 2 or not all(isinstance(n, str) for n in answer):
        return f"give exactly two names, as strings (you gave {len(answer)} item(s))."
    for name in answer:
        facts = {"name": name, "first": name[:1], "length": len(name)}
        if len(name) > MAX_CN_LENGTH:
            return _NAME_HINTS["long"].format(**facts)
        if any(c.isspace() for c in name):
            return _NAME_HINTS["space"].format(**facts)
        if "/" in name:
            return _NAME_HINTS["slash"].format(**facts)
        if "+" in name or "#" in name:
            return _NAME_HINTS["wildcard"].format(**facts)
        if name[:1] in ("-", "."):
            return _NAME_HINTS["start"].format(**facts)
        other = next((c for c in name if not c.isascii()), None)
        if other is not None:
            return _NAME_HINTS["not-ascii"].format(name=name, char=other)
        try:
            check_client_name(name, "name")
        except InputError as error:
            return f"{error.problem}."
    if answer[0] == answer[1]:
        return _NAME_HINTS["same"]
    if lab is not None:
        taken = set(lab.client_names()) | {c.name for c in lab.roles.clients}
        present = [n for n in answer if lab.roles.client(n) is not None]
        if len(present) == 2:
            return right(f"{answer[0]} and {answer[1]} are valid MQTT usernames, and both are in your lab.")
        clash = [n for n in answer if n in taken]
        if clash:
            return _NAME_HINTS["taken"].format(name=clash[0])
    return right(f"{answer[0]!r} and {answer[1]!r} are valid: each will be a Common Name, an MQTT username "
                 "and a folder clients/NAME/. Run the next cell to add them.")
