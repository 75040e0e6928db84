"""Day two, step 11: revoke a client's certificate. The CA signs a certificate revocation list (CRL).

A certificate cannot be taken back: a stolen device keeps a valid ``client.crt`` until its notAfter. What
the CA can do is say, in a list it signs, "I no longer stand behind these serial numbers" (RFC 5280 §5).
The broker reads that list and refuses those clients; nobody else needs it here (see *Why not the broker*).

**Where it lives.** The issuing CA keeps the list beside its certificate, ``ca/crl.pem``: it is *the record*
of who is revoked (read back to know it, nothing else keeps a copy). Each signing also writes the copy the
broker reads, ``broker/crl.pem``: mosquitto's ``crlfile``, the embedded broker's context
(:func:`~mqtt_pki_lab.tlscontext.broker_context`). Both are public (0644), written through
:class:`~mqtt_pki_lab.files.Staging` under the lab's lock: both files change, or neither.

**What is in it** (RFC 5280 §5.1 and the extensions §5.2 requires of a conforming CA):

* the issuer's name, ``thisUpdate`` (when it was signed; 5 minutes in the past, as the lab's certificates'
  notBefore, so a broker whose clock is a little behind does not find it "not yet valid" and refuse
  everybody) and ``nextUpdate`` (the date by which a newer list will exist);
* one entry per revoked certificate: its serial number, the revocation date and, unless it is
  ``unspecified``, a reason code (§5.3.1; RFC 5280 says to leave the extension out rather than write
  ``unspecified``);
* ``authorityKeyIdentifier`` (§5.2.1, MUST): which CA key signed it, the CA's subjectKeyIdentifier;
* ``cRLNumber`` (§5.2.3, MUST): a number that grows with every signing, so the newest list can be told.

**nextUpdate is a deadline for everybody.** OpenSSL (so mosquitto, and Python's ``ssl``) treats a CRL whose
nextUpdate has passed as an error for *every* client it checks: "CRL has expired", and every client is
refused, not only the revoked ones. The list must be signed again before then: ``mqtt-pki-lab crl DIR
--refresh`` (a new cRLNumber and thisUpdate, the same entries). This lab's default is
:data:`~mqtt_pki_lab.profile.DEFAULT_NEXT_UPDATE_DAYS` (30 days), its own choice: long enough that a
forgotten refresh does not shut a fleet out over a holiday, short enough that a broker running on an old
copy is noticed within a month. (The CA/Browser Forum's Baseline Requirements §4.9.7 give publicly trusted CAs at
most 10 days from thisUpdate to nextUpdate for subscriber certificates' lists, reissued at least every 7 days; that
rule is for lists anybody downloads, not for a file handed to one broker.) ``verify`` warns
:data:`~mqtt_pki_lab.checks.CRL_WARNING` (7 days) before the deadline and fails after it.

**Who it stops.** The broker checks the list in each *new* TLS handshake: a device already connected when it was
revoked stays connected (measured with mosquitto 2.0.11: a subscriber kept publishing and receiving through
``revoke`` and SIGHUP) until it reconnects. Restarting the broker cuts it off at once (every client reconnects;
the revoked one is refused).

**Why not the broker.** Revoking the broker's own certificate shuts nobody out: the CRL goes to the broker,
which checks *clients* against it, and MQTT clients such as ``mosquitto_pub`` (no CRL option at all) and
paho-mqtt's ``tls_set()`` (no CRL argument) check none. (A client *can*: paho-mqtt with its own
``ssl.SSLContext`` through ``tls_set_context``, ``VERIFY_CRL_CHECK_LEAF`` and the CA's list loaded; it must then
also get every fresh list before nextUpdate.) Checked with mosquitto 2.0.11: a CRL that
lists ``server.crt`` changes nothing, every client still connects. The remedy for a broker whose key may be
known is a new broker key and certificate (arrows 3-5 again), so :func:`revoke` refuses the broker and says
so.

**The issuer** is the CA that signed the lab's leaves: :func:`issuer_role` says which (the root, ``ca/``; in
a chain of three the intermediate CA, ``intermediate/``, whose list is then ``intermediate/crl.pem``). It
returns :func:`mqtt_pki_lab.steps.issuer_role`, the one place that decides who signs the leaves.

>>> result = revoke("pki", "sensor-2", reason="keyCompromise")   # doctest: +SKIP
>>> print(crl_info("pki"))                                        # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import Encoding

from . import diagram as D
from .certificates import common_name, display_name, extension_value, signature_hash, signed_by
from .diagram import Role
from .errors import InputError, RefusedError
from .files import Staging, check_folder, check_lab_path, read_bytes
from .keys import PrivateKey, same_public_key
from .options import BuildOptions
from .pem import describe_pem_kind, pem_label
from .profile import CLOCK_SKEW, DEFAULT_NEXT_UPDATE_DAYS
from .steps import Lab
from .steps import issuer_role as steps_issuer_role

#: The longest nextUpdate the lab signs: a year. A list that stays "current" for longer hides a broker
#: that runs on an old copy; and it can never outlive the CA that signs it.
MAX_NEXT_UPDATE_DAYS = 366
#: The largest CRL the lab reads: 8 MiB, over 100,000 entries (a certificate is read up to 1 MiB; a CRL grows
#: by about 70 bytes of PEM per revoked certificate: 711,287 bytes for 10,000 entries with reason codes,
#: measured by benchmarks/bench_crl.py; so it gets a larger, still bounded, limit).
MAX_CRL_BYTES = 8 * 1024 * 1024

#: The reasons ``--reason`` offers (RFC 5280 §5.3.1), by their RFC names. Left out on purpose:
#: ``cACompromise`` and ``aACompromise`` (about a CA, not a device), ``certificateHold`` (a temporary hold
#: that can be lifted: revocation in this lab is final) and ``removeFromCRL`` (only for delta CRLs).
REASONS: dict[str, x509.ReasonFlags] = {flag.value: flag for flag in (
    x509.ReasonFlags.unspecified, x509.ReasonFlags.key_compromise, x509.ReasonFlags.affiliation_changed,
    x509.ReasonFlags.superseded, x509.ReasonFlags.cessation_of_operation, x509.ReasonFlags.privilege_withdrawn)}
#: What each reason means, in one line (RFC 5280 §5.3.1).
REASON_ABOUT: dict[str, str] = {
    "unspecified": "no reason given (the entry then carries no reason code)",
    "keyCompromise": "the private key is, or may be, known to someone else: a stolen device",
    "affiliationChanged": "the device's name or owner changed",
    "superseded": "a new certificate replaces it",
    "cessationOfOperation": "the device is retired",
    "privilegeWithdrawn": "the device may no longer connect",
}


def issuer_role(root: str | Path) -> Role:
    """The CA that issues the lab's leaves and so signs the CRL (:func:`mqtt_pki_lab.steps.issuer_role`, the
    one place that decides it).

    The root CA (``ca/``) in a one-level lab. In a lab with an intermediate CA it is the intermediate, and the
    CRL lives beside its certificate (``intermediate/crl.pem``): a CRL must be signed by the CA that issued
    the certificates it lists (mosquitto checks only the leaf's CRL, ``VERIFY_CRL_CHECK_LEAF``).
    """
    return steps_issuer_role(root)


def crl_path(root: str | Path, role: Role) -> Path:
    """Where ``role`` keeps the CRL: ``ca/crl.pem`` (the issuer's record) or ``broker/crl.pem`` (the copy)."""
    return Path(root, role.folder, D.CRL_NAME)


def _rel(role: Role) -> str:
    return f"{role.folder}/{D.CRL_NAME}"


def broker_crl(files: D.Side) -> Path | None:
    """The revocation list a broker checks clients against: ``crl.pem`` beside its ``ca.crt``
    (``broker/crl.pem``, written by :func:`revoke`), or None when there is none."""
    path = Path(files.ca).parent / D.CRL_NAME
    return path if path.is_file() and not path.is_symlink() else None


def checked_broker_crl(files: D.Side) -> Path | None:
    """:func:`broker_crl`, checked before a broker starts on it: a readable CRL signed by the CA that issues
    the leaves: the CA in ``files.ca``, or, in a chain of three, the intermediate that follows the broker's
    certificate in ``files.cert``. :class:`InputError` names the file otherwise (mosquitto would refuse every
    client, or not start). A stale list is *not* refused here: a broker runs with it, and refuses everybody."""
    path = broker_crl(files)
    if path is not None:
        cas = _crl_signers(files)
        crl = load_crl(path)
        read_crl(path, next((ca for ca in cas if ca.subject == crl.issuer), cas[0]))
    return path


def _crl_signers(files: D.Side) -> list[x509.Certificate]:
    """The CAs that may sign a broker's list, the one expected first: the intermediate that follows the broker's
    certificate in ``files.cert`` (a chain of three), the root in ``files.ca``, and the intermediate of the lab
    the broker's folder belongs to (its chain may be the broken part: then the list is still the right one)."""
    from .pem import load_certificate, load_certificates

    found = load_certificates(files.cert)[1:] if files.cert is not None else []
    found.append(load_certificate(files.ca))
    beside = Path(files.ca).parent.parent / D.INTERMEDIATE_CERT.relpath
    if Path(files.ca).parent.name == D.BROKER.folder and beside.is_file() and not beside.is_symlink():
        with contextlib.suppress(InputError):
            found.append(load_certificate(beside))
    return found


# --- reading ----------------------------------------------------------------------------------------------

def load_crl(path: str | Path) -> x509.CertificateRevocationList:
    """Load a PEM CRL, explaining what the file is instead when it is not one, or that it is damaged."""
    path = Path(path)
    data = read_bytes(path, MAX_CRL_BYTES)
    if pem_label(data) != b"X509 CRL":
        raise InputError(path, f"expected a certificate revocation list (CRL), but this is {describe_pem_kind(data)}")
    try:
        return x509.load_pem_x509_crl(data)
    except ValueError as exc:
        raise InputError(path, f"the CRL is damaged and cannot be read ({exc})") from None


def crl_problem(crl: x509.CertificateRevocationList, ca_cert: x509.Certificate) -> str | None:
    """Why ``crl`` is not a list of the CA ``ca_cert`` (another issuer, or a signature its key did not make),
    or None when that CA signed it."""
    if crl.issuer != ca_cert.subject:
        return (f"it is signed by another CA ({display_name(crl.issuer)}), not by this lab's CA "
                f"({display_name(ca_cert.subject)}); the broker would refuse every client")
    try:
        good = crl.is_signature_valid(ca_cert.public_key())  # type: ignore[arg-type]
    except (TypeError, ValueError, UnsupportedAlgorithm, InvalidSignature):
        good = False
    if not good:
        return ("its signature does not verify with the CA's key: another CA of the same name signed it, or it "
                "was altered; the broker would refuse every client")
    return None


def read_crl(path: str | Path, ca_cert: x509.Certificate) -> x509.CertificateRevocationList:
    """Load the CRL at ``path`` and check that ``ca_cert``'s CA signed it; :class:`InputError` naming the file."""
    crl = load_crl(path)
    problem = crl_problem(crl, ca_cert)
    if problem:
        raise InputError(path, f"{problem}. Move it away: ca/crl.pem is the record of revocations, and the next "
                               "`mqtt-pki-lab crl DIR --refresh` writes both files anew")
    return crl


def crl_number(crl: x509.CertificateRevocationList) -> int | None:
    """The list's cRLNumber (RFC 5280 §5.2.3), or None when it has none."""
    value = extension_value(crl, x509.CRLNumber)
    return value.crl_number if value is not None else None


def reason_of(entry: x509.RevokedCertificate) -> str:
    """An entry's reason code by its RFC 5280 name (``keyCompromise``); ``unspecified`` when it has none."""
    try:
        return entry.extensions.get_extension_for_class(x509.CRLReason).value.reason.value
    except (x509.ExtensionNotFound, ValueError):
        return "unspecified"


@dataclass(frozen=True)
class Revoked:
    """One entry of a CRL, with the lab's certificate it stands for when the lab has it."""

    serial: int
    date: dt.datetime
    reason: str
    """The RFC 5280 name of the reason code (``keyCompromise``), ``unspecified`` when the entry has none."""
    name: str | None = None
    """The Common Name of the lab's certificate with this serial (the MQTT username), when there is one."""
    file: str | None = None
    """That certificate, relative to the lab folder (``clients/sensor-2/client.crt``)."""

    def __str__(self) -> str:
        who = f"{self.name} ({self.file})" if self.name else f"serial {self.serial:#x} (not a certificate of this lab)"
        return f"{who}: revoked {self.date:%Y-%m-%d %H:%M} UTC, reason {self.reason}"


def index_entries(crl: x509.CertificateRevocationList) -> dict[int, x509.RevokedCertificate]:
    """The entries of ``crl`` by serial number: for many look-ups (cryptography's own look-up scans the list,
    about 1.4 ms per look-up in a list of 10,000)."""
    return {entry.serial_number: entry for entry in crl}


def revoked_entry(crl: x509.CertificateRevocationList, cert: x509.Certificate,
                  index: dict[int, x509.RevokedCertificate] | None = None) -> Revoked | None:
    """The entry of ``crl`` that revokes ``cert`` (same issuer, same serial), or None when it is not revoked.
    ``index``: :func:`index_entries` of ``crl``, when many certificates are looked up."""
    if cert.issuer != crl.issuer:
        return None
    entry = (index.get(cert.serial_number) if index is not None
             else crl.get_revoked_certificate_by_serial_number(cert.serial_number))
    if entry is None:
        return None
    return Revoked(entry.serial_number, entry.revocation_date_utc, reason_of(entry), common_name(cert))


def _count(number: int, unit: str) -> str:
    """``1 day``, ``2 days``."""
    return f"{number} {unit}{'s' * (number != 1)}"


def _left(moment: dt.datetime, now: dt.datetime) -> str:
    """``2026-05-01 12:00 UTC (in 30 days)``, ``... (1 day ago)`` or ``... (5 hours ago)``."""
    days = (moment - now).total_seconds() / 86400
    span = _count(round(abs(days)), "day") if abs(days) >= 1 else _count(round(abs(days) * 24), "hour")
    return f"{moment:%Y-%m-%d %H:%M} UTC ({'in ' + span if days > 0 else span + ' ago'})"


def _now(now: dt.datetime | None) -> dt.datetime:
    return now if now is not None else dt.datetime.now(dt.timezone.utc)


@dataclass(frozen=True)
class CrlInfo:
    """What ``mqtt-pki-lab crl DIR`` shows: the list's issuer, number, dates and entries."""

    path: Path
    issuer: str
    number: int | None
    this_update: dt.datetime
    next_update: dt.datetime | None
    entries: tuple[Revoked, ...]
    now: dt.datetime

    @property
    def stale(self) -> bool:
        """True when nextUpdate has passed: OpenSSL then refuses every client ("CRL has expired")."""
        return self.next_update is not None and self.next_update <= self.now

    @property
    def next_update_text(self) -> str:
        """``2026-05-01 12:00 UTC (in 30 days)``."""
        return _left(self.next_update, self.now) if self.next_update is not None else "none"

    def __str__(self) -> str:
        lines = [f"{self.path}: the certificate revocation list of {self.issuer}",
                 f"  CRL number   {self.number if self.number is not None else 'none'}",
                 f"  this update  {self.this_update:%Y-%m-%d %H:%M} UTC",
                 f"  next update  {self.next_update_text}",
                 f"  revoked      {len(self.entries)}"]
        if self.stale:
            lines.append("  STALE: mosquitto and OpenSSL refuse EVERY client now; sign it again: "
                         "mqtt-pki-lab crl DIR --refresh")
        shown = self.entries[:20]
        lines += [f"    - {entry}" for entry in shown]
        if len(self.entries) > len(shown):
            lines.append(f"    ... and {len(self.entries) - len(shown)} more")
        return "\n".join(lines)


def _lab_certificates(root: Path, roles: Iterable[Role]) -> dict[tuple[x509.Name, int], tuple[Role, x509.Certificate]]:
    """The lab's leaf certificates by (issuer, serial), the key a CRL entry is matched with; unreadable ones are
    left out."""
    from .pem import load_certificate

    found: dict[tuple[x509.Name, int], tuple[Role, x509.Certificate]] = {}
    for role in roles:
        path = role.file("crt").path(root)
        if path.is_file() and not path.is_symlink():
            try:
                cert = load_certificate(path)
            except InputError:
                continue
            found[(cert.issuer, cert.serial_number)] = (role, cert)
    return found


def describe_crl(path: Path, crl: x509.CertificateRevocationList, root: str | Path,
                 now: dt.datetime | None = None) -> CrlInfo:
    """A :class:`CrlInfo` for ``crl``, its entries named after the lab's certificates they revoke."""
    root = Path(root)
    known = _lab_certificates(root, Lab(root).roles.sides)
    issuer = crl.issuer  # built anew at each access: once, not once per entry
    entries = []
    for entry in crl:
        role, cert = known.get((issuer, entry.serial_number), (None, None))
        entries.append(Revoked(entry.serial_number, entry.revocation_date_utc, reason_of(entry),
                               common_name(cert) if cert is not None else None,
                               role.file("crt").relpath if role is not None else None))
    return CrlInfo(path, display_name(crl.issuer), crl_number(crl), crl.last_update_utc, crl.next_update_utc,
                   tuple(entries), _now(now))


def _ca_certificate(root: Path, issuer: Role) -> x509.Certificate:
    """The issuing CA's certificate (``ca/ca.crt``), explained when it is missing or damaged."""
    from .pem import load_certificate

    path = issuer.file("crt").path(root)
    if not path.is_file():
        raise InputError(path, f"missing: {issuer.label}'s certificate, which signs the revocation list. Build the "
                               f"lab first: mqtt-pki-lab build {root}")
    return load_certificate(path)


def _lab(root: str | Path, password: bytes | str | None = None) -> Lab:
    """The lab folder ``root`` (it must exist), with the passphrase of an encrypted ca.key."""
    path = check_lab_path(root)
    if not path.is_dir():
        raise InputError(path, "no such lab folder; make one with: mqtt-pki-lab build DIR")
    secret = password.encode() if isinstance(password, str) else password
    return Lab(path, BuildOptions(passphrase=secret or None))


def _held_list(root: Path, issuer: Role) -> tuple[Role, Path] | None:
    """Which CRL the lab holds, for reading: the issuer's record, else the broker's copy; None when neither."""
    for role in (issuer, D.BROKER):
        path = crl_path(root, role)
        if path.is_file() and not path.is_symlink():
            return role, path
    return None


def crl_info(root: str | Path, now: dt.datetime | None = None) -> CrlInfo | None:
    """The lab's revocation list as :class:`CrlInfo` (the issuer's record, ``ca/crl.pem``, else the broker's
    copy), checked against the CA's certificate; None when the lab has none (nobody was ever revoked).

    Raises :class:`InputError` naming the file when it is damaged, is not a CRL, or another CA signed it.
    """
    lab = _lab(root)
    issuer = issuer_role(lab.root)
    held = _held_list(lab.root, issuer)
    if held is None:
        return None
    return describe_crl(held[1], read_crl(held[1], _ca_certificate(lab.root, issuer)), lab.root, now)


def load_crls(path: str | Path) -> list[x509.CertificateRevocationList]:
    """Every CRL in a PEM file, in file order: the broker's ``crl.pem`` holds two during a CA rotation (one per
    root: OpenSSL checks a certificate against the list of the CA that signed it). A damaged one is refused."""
    path = Path(path)
    data = read_bytes(path, MAX_CRL_BYTES)
    begin, end = b"-----BEGIN X509 CRL-----", b"-----END X509 CRL-----"
    found, at = [], 0
    while (start := data.find(begin, at)) != -1 and (stop := data.find(end, start)) != -1:
        try:
            found.append(x509.load_pem_x509_crl(data[start:stop + len(end)] + b"\n"))
        except ValueError as exc:
            raise InputError(path, f"a CRL in this file is damaged and cannot be read ({exc})") from None
        at = stop + len(end)
    if not found:
        raise InputError(path, f"expected a certificate revocation list (CRL), but this is {describe_pem_kind(data)}")
    return found


@dataclass(frozen=True)
class ListDeadline:
    """One revocation list of the lab and its nextUpdate: after it every client checked with it is refused."""

    file: str
    """Where it is, in the lab folder (``broker/crl.pem``)."""
    issuer: str
    next_update: dt.datetime
    now: dt.datetime

    @property
    def days_left(self) -> int:
        """Whole days until nextUpdate (rounded toward zero); negative once it has passed."""
        return int((self.next_update - self.now) / dt.timedelta(days=1))

    def __str__(self) -> str:
        left = "STALE: every client is refused" if self.next_update <= self.now else \
            f"{_count(self.days_left, 'day')} left"
        return f"{self.file:<28} nextUpdate {self.next_update:%Y-%m-%d %H:%M} UTC  {left}  ({self.issuer})"

    def to_json(self) -> dict[str, object]:
        """The entry for ``status --json --expiring N``."""
        return {"file": self.file, "issuer": self.issuer, "days_left": self.days_left,
                "next_update": self.next_update.isoformat()}


def list_deadlines(root: str | Path, within_days: int, *, now: dt.datetime | None = None) -> list[ListDeadline]:
    """The lab's revocation lists whose nextUpdate comes within ``within_days`` days (or has passed), soonest
    first: the issuer's record, the broker's copy (both lists during a CA rotation) and the new root's. A list
    past its nextUpdate shuts *every* client out (OpenSSL: "CRL has expired"), so ``status --expiring`` lists
    them beside the certificates. Unreadable lists are left to ``verify``."""
    root, now = Path(root), _now(now)
    limit = now + dt.timedelta(days=within_days)
    found: list[ListDeadline] = []
    for role in dict.fromkeys((issuer_role(root), D.CA, D.NEXT_CA, D.BROKER)):
        path = crl_path(root, role)
        if not path.is_file() or path.is_symlink():
            continue
        with contextlib.suppress(InputError):
            found += [ListDeadline(_rel(role), display_name(c.issuer), c.next_update_utc, now) for c in load_crls(path)
                      if c.next_update_utc is not None and c.next_update_utc <= limit]
    return sorted(found, key=lambda d: d.next_update)


def revoked_clients(root: str | Path, holder: Role | None = None, *, path: Path | None = None) -> dict[Role, Revoked]:
    """The lab's clients whose certificate is on a CRL of the lab, with their entry.

    ``holder`` says whose list: the broker's copy (``broker/crl.pem``, the default: what the broker enforces)
    or the issuer's record (``ca/crl.pem``); ``path`` names another list (a broker run from its own folder).
    Never raises: a missing, damaged or foreign list revokes nobody here (``verify`` names what is wrong).
    """
    root = Path(root)
    path = path or crl_path(root, holder or D.BROKER)
    if not path.is_file() or path.is_symlink():
        return {}
    try:
        crl = load_crl(path)
    except InputError:
        return {}
    revoked = index_entries(crl)
    found = {}
    for (issuer, serial), (role, cert) in _lab_certificates(root, Lab(root).roles.clients).items():
        entry = revoked.get(serial)
        if entry is not None and issuer == crl.issuer:
            found[role] = Revoked(serial, entry.revocation_date_utc, reason_of(entry), common_name(cert),
                                  role.file("crt").relpath)
    return found


def revocation_of(root: str | Path, cert: x509.Certificate) -> Revoked | None:
    """The entry revoking ``cert`` in the lab's record (``ca/crl.pem``, else the broker's copy), or None.

    For other day-two steps (a renewal must not bring a revoked device back). Never raises: a list that
    cannot be read revokes nothing here.
    """
    root = Path(root)
    held = _held_list(root, issuer_role(root))
    if held is None:
        return None
    try:
        return revoked_entry(load_crl(held[1]), cert)
    except InputError:
        return None


# --- signing ------------------------------------------------------------------------------------------------

def check_next_update_days(days: object, ca_cert: x509.Certificate, now: dt.datetime | None = None,
                           where: str = "--next-update-days") -> int:
    """A whole number of days from 1 to :data:`MAX_NEXT_UPDATE_DAYS`, ending before the CA itself expires."""
    if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= MAX_NEXT_UPDATE_DAYS:
        raise InputError(where, f"{days!r}: give a whole number of days from 1 to {MAX_NEXT_UPDATE_DAYS} (this lab's "
                                f"default is {DEFAULT_NEXT_UPDATE_DAYS})")
    end = _now(now) + dt.timedelta(days=days)
    if end > ca_cert.not_valid_after_utc:
        raise InputError(where, f"{days} days would take the list's nextUpdate to {end:%Y-%m-%d}, after the CA "
                                f"itself expires ({ca_cert.not_valid_after_utc:%Y-%m-%d}); give fewer days")
    return days


def check_reason(reason: str) -> x509.ReasonFlags:
    """The reason code named ``reason`` (RFC 5280 §5.3.1), one of :data:`REASONS`."""
    if reason not in REASONS:
        raise InputError("--reason", f"{reason!r} is not a reason the lab records; choose one of: {', '.join(REASONS)}")
    return REASONS[reason]


def revoked_certificate(serial: int, reason: str = "unspecified", when: dt.datetime | None = None
                        ) -> x509.RevokedCertificate:
    """One CRL entry: ``serial``, revoked at ``when``, with a reason code unless it is ``unspecified``
    (RFC 5280 §5.3.1: leave the extension out rather than write unspecified)."""
    flag = check_reason(reason)
    builder = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(_now(when))
    if flag is not x509.ReasonFlags.unspecified:
        builder = builder.add_extension(x509.CRLReason(flag), critical=False)
    return builder.build()


def make_crl(ca_cert: x509.Certificate, ca_key: PrivateKey, entries: Iterable[x509.RevokedCertificate], number: int,
             *, next_update_days: int = DEFAULT_NEXT_UPDATE_DAYS, now: dt.datetime | None = None
             ) -> x509.CertificateRevocationList:
    """Sign a CRL of ``ca_cert``'s CA listing ``entries``, with cRLNumber ``number``.

    thisUpdate is ``now`` minus the lab's clock skew (5 minutes), nextUpdate ``now`` plus ``next_update_days``;
    the two extensions RFC 5280 §5.2 requires are added: authorityKeyIdentifier (the CA's
    subjectKeyIdentifier) and cRLNumber. The entries are passed to the builder at once (adding them one by
    one copies the list each time: slow for 10,000).
    """
    now = _now(now)
    ski = extension_value(ca_cert, x509.SubjectKeyIdentifier)
    aki = (x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski) if ski is not None
           else x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()))  # type: ignore[arg-type]
    builder = x509.CertificateRevocationListBuilder(
        issuer_name=ca_cert.subject, last_update=now - CLOCK_SKEW,
        next_update=now + dt.timedelta(days=next_update_days), revoked_certificates=list(entries))
    builder = builder.add_extension(aki, critical=False).add_extension(x509.CRLNumber(number), critical=False)
    return builder.sign(ca_key, signature_hash(ca_key))  # type: ignore[arg-type]


@dataclass(frozen=True)
class CrlResult:
    """What :func:`revoke` or :func:`refresh_crl` did: the entry added (if any), the new list, the files."""

    info: CrlInfo
    written: tuple[str, ...]
    """The files written, relative to the lab folder (``ca/crl.pem``, ``broker/crl.pem``)."""
    revoked: Revoked | None = None
    cleaned: tuple[str, ...] = ()
    """Leftovers of interrupted runs that this command removed."""

    def __str__(self) -> str:
        info = self.info
        lines = [f"Revoked {self.revoked.file} (CN={self.revoked.name}, serial {self.revoked.serial:#x}, reason "
                 f"{self.revoked.reason})." if self.revoked is not None else "Signed the revocation list again."]
        lines += [f"Wrote {' and '.join(self.written)}: CRL number {info.number}, next update {info.next_update_text}, "
                  f"{len(info.entries)} revoked.",
                  "A running broker reads broker/crl.pem again when restarted; mosquitto 2.0 also on SIGHUP "
                  "(kill -HUP PID).",
                  *(["A device connected already stays connected (only new handshakes are checked): restart the "
                     "broker to cut it off now."] if self.revoked is not None else []),
                  f"Sign it again before the next update, or every client will be refused: mqtt-pki-lab crl "
                  f"{info.path.parent.parent} --refresh"]
        return "\n".join(lines)


def _issuer_key(lab: Lab, issuer: Role, ca_cert: x509.Certificate) -> PrivateKey:
    """The issuing CA's private key (a wrong or missing passphrase explained), checked against its certificate."""
    key_file = issuer.file("key")
    path = key_file.path(lab.root)
    if not path.is_file():
        raise InputError(path, f"missing: {issuer.label}'s private key, which signs the revocation list (it never "
                               f"leaves {issuer.folder}/: run this command where the CA lives)")
    key = lab._read(key_file)
    if not same_public_key(key, ca_cert.public_key()):  # type: ignore[arg-type]
        raise InputError(path, f"this key does not belong to {issuer.file('crt').relpath}; the CA cannot sign with it")
    return key


def _check_targets(root: Path, issuer: Role) -> None:
    """The two folders exist and hold no link or folder where a CRL goes."""
    for role in (issuer, D.BROKER):
        check_folder(root, role.folder, must_exist=True)
        path = crl_path(root, role)
        if path.is_symlink() or (path.exists() and not path.is_file()):
            raise InputError(path, "is a symbolic link or a folder where the lab keeps its revocation list; move it "
                                   "away (the lab never writes through links)")


def _recorded(root: Path, issuer: Role, ca_cert: x509.Certificate) -> tuple[list[x509.RevokedCertificate], int]:
    """The entries the lab's lists hold (the record first, then any the broker's copy adds) and the highest
    cRLNumber so far (0 when there is no list yet). A damaged or foreign list is refused, naming it: signing
    over it could lose revocations."""
    entries: dict[int, x509.RevokedCertificate] = {}
    number = 0
    seen: set[bytes] = set()
    for role in (issuer, D.BROKER):
        path = crl_path(root, role)
        if not path.exists():
            continue
        data = read_bytes(path, MAX_CRL_BYTES)
        if data in seen:
            continue  # the broker's copy is the record, byte for byte (as the lab writes it): read it once
        seen.add(data)
        crl = read_crl(path, ca_cert)
        number = max(number, crl_number(crl) or 0)
        for entry in crl:
            entries.setdefault(entry.serial_number, entry)
    return list(entries.values()), number


def _dated_by(entry: x509.RevokedCertificate, moment: dt.datetime) -> x509.RevokedCertificate:
    """``entry`` revoked no later than ``moment`` (its reason code kept): a list signed at a time in the past
    must not carry a revocation date after the moment it was signed (RFC 5280 §5.1.2.6: the date the
    revocation occurred)."""
    if entry.revocation_date_utc <= moment:
        return entry
    builder = x509.RevokedCertificateBuilder().serial_number(entry.serial_number).revocation_date(moment)
    for extension in entry.extensions:
        builder = builder.add_extension(extension.value, extension.critical)
    return builder.build()


def _sign_and_write(lab: Lab, *, next_update_days: int | None, now: dt.datetime | None,
                    target: tuple[Role, x509.Certificate] | None = None, reason: str = "unspecified") -> CrlResult:
    """Every check first, then, under the lab's lock, read the lists again, sign the new one, write both files."""
    root, issuer = lab.root, issuer_role(lab.root)
    check_reason(reason)
    ca_cert = _ca_certificate(root, issuer)
    _check_targets(root, issuer)
    days = check_next_update_days(DEFAULT_NEXT_UPDATE_DAYS if next_update_days is None else next_update_days,
                                  ca_cert, now)

    def plan() -> tuple[list[x509.RevokedCertificate], int]:
        entries, number = _recorded(root, issuer, ca_cert)
        if now is not None:  # a list signed in the past cannot record a later revocation (tests, break-it)
            entries = [_dated_by(entry, now) for entry in entries]
        if target is not None:
            role, cert = target
            old = next((e for e in entries if e.serial_number == cert.serial_number), None)
            if old is not None:
                raise RefusedError(role.file("crt").path(root), f"{role.label} is already revoked (since "
                                   f"{old.revocation_date_utc:%Y-%m-%d %H:%M} UTC, reason {reason_of(old)}); "
                                   "nothing was changed. See the list: mqtt-pki-lab crl DIR")
            entries.append(revoked_certificate(cert.serial_number, reason, now))
        return entries, number + 1

    plan()
    ca_key = _issuer_key(lab, issuer, ca_cert)
    with lab._locked():
        _check_targets(root, issuer)
        entries, number = plan()  # again, under the lock: another command may have signed meanwhile
        crl = make_crl(ca_cert, ca_key, entries, number, next_update_days=days, now=now)
        data = crl.public_bytes(Encoding.PEM)
        with Staging() as staging:
            for role in (issuer, D.BROKER):
                staging.stage(crl_path(root, role), data, secret=False)
            staging.commit()
    info = describe_crl(crl_path(root, issuer), crl, root, now)
    added = None
    if target is not None:
        added = next(e for e in info.entries if e.serial == target[1].serial_number)
    return CrlResult(info, (_rel(issuer), _rel(D.BROKER)), added, tuple(lab.cleaned))


def _target(lab: Lab, name: str) -> tuple[Role, x509.Certificate]:
    """The client called ``name`` (its folder name or its MQTT username) and its certificate; the broker and
    the CA are refused with the reason."""
    from .names import check_client_name
    from .pem import load_certificate

    check_client_name(name, "NAME")
    role = lab.roles.client(name) or lab.client_names().get(name)
    if role is None:
        server = D.SERVER_CERT.path(lab.root)
        broker_cn = common_name(load_certificate(server)) if server.is_file() and not server.is_symlink() else None
        if name in ("broker", broker_cn):
            raise RefusedError(name, "the lab does not revoke the broker's certificate: the CRL goes to the broker, "
                                     "which checks clients with it, and the usual MQTT clients (mosquitto_pub, "
                                     "paho-mqtt's tls_set) check no CRL, so it would shut nobody out. If "
                                     "server.key may be known to someone, give the broker a new key and "
                                     "certificate (arrows 3-5)")
        if name == D.CA.name:
            raise RefusedError(name, "a CA cannot revoke its own certificate with its own list; a CA whose key may be "
                                     "known is replaced: a new CA, and every certificate signed again (build --force)")
        known = ", ".join(sorted(lab.client_names())[:10]) or "none"
        raise InputError(name, f"the lab {str(lab.root)!r} has no client of this name (its clients: {known})")
    path = role.file("crt").path(lab.root)
    if not path.is_file():
        raise InputError(path, f"missing: {role.label} has no certificate, so there is nothing to revoke")
    cert = load_certificate(path)
    ca_cert = _ca_certificate(lab.root, issuer_role(lab.root))
    if not signed_by(cert, ca_cert):
        raise RefusedError(path, f"{role.label}'s certificate was not signed by this lab's CA "
                                 f"({display_name(ca_cert.subject)}): a CA can only revoke what it signed")
    return role, cert


def _refuse_during_rotation(root: Path, what: str) -> None:
    """During a CA rotation the broker holds two lists (one per root: :mod:`~mqtt_pki_lab.rotate`); this version
    signs them again only when the rotation finishes."""
    from .rotate import refuse_during_rotation

    refuse_during_rotation(root, what, f"finish the rotation first (mqtt-pki-lab rotate {root} finish), then sign")


def revoke(root: str | Path, name: str, *, reason: str = "unspecified", next_update_days: int | None = None,
           password: bytes | str | None = None, now: dt.datetime | None = None) -> CrlResult:
    """Revoke the certificate of the client ``name`` (step 11): add it to the CRL and sign the list again.

    ``name`` is a client's folder name (``sensor-2`` for ``clients/sensor-2/``; ``client`` for the first) or its
    MQTT username. ``reason`` is one of :data:`REASONS` (default ``unspecified``: no reason code).
    ``next_update_days`` defaults to :data:`DEFAULT_NEXT_UPDATE_DAYS`. ``password`` unlocks an encrypted
    ``ca.key``. ``now`` is the signing time (default: the clock; a time in the past makes a list that is
    already stale, which is how the tests show what a stale list does).

    Writes ``ca/crl.pem`` and ``broker/crl.pem`` (both or neither). Refused, with nothing written: an unknown
    name, a client already revoked, the broker or the CA, a client whose certificate this CA did not sign, a
    damaged or foreign list already in the lab, an encrypted ``ca.key`` without its passphrase.
    """
    lab = _lab(root, password)
    _refuse_during_rotation(lab.root, "revoking")
    return _sign_and_write(lab, next_update_days=next_update_days, now=now, target=_target(lab, name), reason=reason)


def refresh_crl(root: str | Path, *, next_update_days: int | None = None, password: bytes | str | None = None,
                now: dt.datetime | None = None) -> CrlResult:
    """Sign the lab's revocation list again (``mqtt-pki-lab crl DIR --refresh``): the same entries, a new
    cRLNumber, thisUpdate now and nextUpdate ``next_update_days`` later; both files written.

    Also makes the first, empty list of a lab that has none (a broker that should check revocation from the
    start). Refused, with nothing written: a damaged or foreign list in the lab, an encrypted ``ca.key``
    without its passphrase, a nextUpdate past the CA's own expiry.
    """
    lab = _lab(root, password)
    _refuse_during_rotation(lab.root, "signing the revocation list again")
    return _sign_and_write(lab, next_update_days=next_update_days, now=now)
