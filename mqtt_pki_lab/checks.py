"""Checks before the handshake: look at the files themselves and say which one is wrong, and why.

A TLS refusal says *that* something is wrong ("unknown ca"); the files say *what*. These checks read
each file of the lab once (:class:`LabFiles`), then ask the questions a careful administrator asks,
in the order a handshake would trip over the answers:

1. are the six operating files there and readable?
2. does each side's key belong to its certificate?
3. did the CA each side trusts sign the other side's certificate?
4. is each certificate inside its validity window?
5. is each certificate made for its role (extendedKeyUsage serverAuth / clientAuth)?
6. does the broker's certificate list the name the client connects to?
7. does the CA certificate pass strict X.509 checks (basicConstraints critical, keyCertSign)?
8. are the keys and signatures strong enough?
9. do the secrets stay home (``ca.key`` only in ``ca/``, each key with one role, keys 0600)?

Each answer is a :class:`Check` with a status (``pass``, ``warn``, ``fail``) and, when it is not a
pass, a :class:`~mqtt_pki_lab.diagnose.Diagnosis` naming the arrow of the diagram and the file.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from . import diagram as L
from .certificates import (
    EKU_NAMES,
    digest_name,
    display_name,
    eku_text,
    extended_key_usage,
    extension,
    host_names,
    signed_by,
)
from .diagnose import Diagnosis, cert_file, csr_file, file_diagnosis, trust_file
from .diagram import ARROW_TITLES, Role, Roles, arrow_of
from .errors import LabError
from .files import mode_of, read_bytes
from .keys import (
    PrivateKey,
    PublicKey,
    is_encrypted_key_pem,
    is_private_key_pem,
    key_kind,
    key_problem,
    load_private_key,
    public_key_fingerprint,
)
from .names import is_ip
from .pem import load_certificate, load_csr
from .steps import discover_roles

Status = Literal["pass", "warn", "fail"]
#: Signature digests no verifier should accept any more.
WEAK_HASHES = ("md5", "sha1")
#: A certificate this close to its end gets a warning.
EXPIRY_WARNING = dt.timedelta(days=30)


@dataclass(frozen=True)
class Check:
    """One question asked of the lab's files, and its answer."""

    name: str
    status: Status
    message: str
    diagnosis: Diagnosis | None = None

    @property
    def ok(self) -> bool:
        """True unless the check failed (a warning is not a failure)."""
        return self.status != "fail"

    def __str__(self) -> str:
        mark = {"pass": "[pass]", "warn": "[warn]", "fail": "[FAIL]"}[self.status]
        text = f"{mark} {self.name}: {self.message}"
        if self.diagnosis is not None and self.status == "fail":
            text += f"\n       -> {self.diagnosis}"
        return text


# --- the files, read once ---------------------------------------------------------------------------------

@dataclass
class LabFiles:
    """Every file of a lab folder, loaded once: certificates, CSRs and keys, or why each could not be.

    Checks only look things up here, so each file is read and parsed a single time however many checks
    need it. Files of ``ca/`` and the CSRs are optional (a deployed broker has none of them); when they
    are there, they make the diagnoses more precise.
    """

    root: Path
    roles: Roles = field(default_factory=Roles)
    """The roles found in the lab folder: the CA, the broker and every client."""
    certs: dict[L.LabFile, x509.Certificate] = field(default_factory=dict)
    csrs: dict[L.LabFile, x509.CertificateSigningRequest] = field(default_factory=dict)
    keys: dict[L.LabFile, PrivateKey] = field(default_factory=dict)
    missing: set[L.LabFile] = field(default_factory=set)
    problems: dict[L.LabFile, str] = field(default_factory=dict)
    """Files that exist but cannot be used, with what is wrong with them."""
    locked: set[L.LabFile] = field(default_factory=set)
    """Encrypted keys for which no passphrase was given."""
    now: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc))
    _fingerprints: dict[L.LabFile, str | None] = field(default_factory=dict, repr=False)
    _issued: dict[tuple[int, int], bool] = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, root: str | Path, password: bytes | str | None = None) -> LabFiles:
        """Read every file of every role that exists in ``root``."""
        files = cls(Path(root), discover_roles(Path(root)))
        for file in files.roles.files():
            path = file.path(files.root)
            if path.is_symlink():
                files.problems[file] = "is a symbolic link; the lab's files are never links"
                continue
            if not path.is_file():
                if path.exists():
                    files.problems[file] = "is a folder, not a file"
                else:
                    files.missing.add(file)
                continue
            try:
                if file.secret:
                    files._load_key(file, path, password)
                elif file.slot == "csr":
                    files.csrs[file] = load_csr(path)
                else:
                    files.certs[file] = load_certificate(path)
            except LabError as exc:
                files.problems[file] = exc.problem
        return files

    def _load_key(self, file: L.LabFile, path: Path, password: bytes | str | None) -> None:
        if password is None and is_encrypted_key_pem(read_bytes(path)):
            self.locked.add(file)
            return
        self.keys[file] = load_private_key(path, password)

    def has(self, file: L.LabFile) -> bool:
        """True when ``file`` was loaded (present, readable, parsed)."""
        return file in self.certs or file in self.csrs or file in self.keys

    def fingerprint(self, file: L.LabFile) -> str | None:
        """The fingerprint of the public key a loaded file carries (computed once per file), or None."""
        if file not in self._fingerprints:
            key = self.public_key(file)
            self._fingerprints[file] = public_key_fingerprint(key) if key is not None else None
        return self._fingerprints[file]

    def public_key(self, file: L.LabFile) -> PublicKey | None:
        """The public key carried by a loaded certificate, CSR or private key."""
        obj = self.certs.get(file) or self.csrs.get(file) or self.keys.get(file)
        return obj.public_key() if obj is not None else None  # type: ignore[union-attr,return-value]

    def same_key(self, a: L.LabFile, b: L.LabFile) -> bool | None:
        """Whether two loaded files carry the same public key (None when one is not loaded)."""
        fa, fb = self.fingerprint(a), self.fingerprint(b)
        if fa is None or fb is None:
            return None
        return fa == fb

    def same_cert(self, a: L.LabFile, b: L.LabFile) -> bool:
        """True when two loaded certificate files hold the very same certificate."""
        ca, cb = self.certs.get(a), self.certs.get(b)
        return ca is not None and cb is not None and ca == cb

    def issued_by(self, leaf: x509.Certificate, issuer: x509.Certificate) -> bool:
        """True when ``issuer``'s key signed ``leaf`` (and the names agree); verified once per pair."""
        pair = (id(leaf), id(issuer))
        if pair not in self._issued:
            self._issued[pair] = signed_by(leaf, issuer)
        return self._issued[pair]

    @property
    def clients(self) -> tuple[Role, ...]:
        return self.roles.clients

    @property
    def sides(self) -> tuple[Role, ...]:
        """The broker, then every client."""
        return self.roles.sides


# --- small helpers ----------------------------------------------------------------------------------------

def name_matches(pattern: str, hostname: str) -> bool:
    """True when a SAN entry covers ``hostname``: same IP address, same DNS name (case and a final dot
    ignored), or a wildcard ``*.example.com`` standing for exactly one leftmost label."""
    if is_ip(hostname):
        return is_ip(pattern) and ipaddress.ip_address(pattern) == ipaddress.ip_address(hostname)
    pattern, hostname = pattern.lower().rstrip("."), hostname.lower().rstrip(".")
    if pattern.startswith("*."):
        head, _, rest = hostname.partition(".")
        return bool(head) and rest == pattern[2:]
    return pattern == hostname


def _when(moment: dt.datetime, now: dt.datetime) -> str:
    days = (moment - now).total_seconds() / 86400
    span = f"{abs(days):.0f} days" if abs(days) >= 1 else f"{abs(days) * 24:.0f} hours"
    return f"{moment:%Y-%m-%d %H:%M} UTC ({'in ' + span if days > 0 else span + ' ago'})"


def _ca_source(files: LabFiles, copy: L.LabFile) -> L.LabFile:
    """The file a CA certificate problem should be blamed on: ca/ca.crt when the copy is identical to it
    (the problem was made at arrow 2), the copy itself otherwise."""
    return L.CA_CERT if copy != L.CA_CERT and files.same_cert(copy, L.CA_CERT) else copy


def _ca_copies(files: LabFiles) -> list[L.LabFile]:
    """ca/ca.crt and every side's copy of it."""
    return [L.CA_CERT, *(role.file("trust") for role in files.sides)]


def _distinct_ca_certs(files: LabFiles) -> list[L.LabFile]:
    """ca/ca.crt and the copies, each distinct certificate once (ca/ca.crt first)."""
    seen: list[L.LabFile] = []
    for file in _ca_copies(files):
        if file in files.certs and not any(files.same_cert(file, s) for s in seen):
            seen.append(file)
    return seen


def _arrows(*arrows: int) -> str:
    return " and ".join(f"{a} ({ARROW_TITLES[a]})" for a in arrows)


def _who(role: Role) -> str:
    """``broker``, ``client`` or ``client 'sensor-1'``: a role as check names say it."""
    return role.label.removeprefix("the ")


# --- 1. files present and readable ------------------------------------------------------------------------

def check_files(files: LabFiles) -> list[Check]:
    """The operating files (three per side: the broker and every client) are present and can be read."""
    checks: list[Check] = []
    operating = {f for role in files.sides for f in role.operating}
    for role in files.sides:
        for file in role.operating:
            if file in files.missing:
                checks.append(Check(f"{file.relpath} present", "fail", "missing", _missing(file)))
            elif file in files.problems:
                checks.append(Check(f"{file.relpath} readable", "fail", files.problems[file], file_diagnosis(
                    file, f"{file.relpath} cannot be used: {files.problems[file]}.",
                    f"make it again: arrow {_arrows(arrow_of(file))}.", "unreadable-file")))
            elif file in files.locked:
                checks.append(Check(f"{file.relpath} readable", "fail", "encrypted, and no passphrase given",
                                    file_diagnosis(file, f"{file.relpath} is encrypted with a passphrase.",
                                                   "give its passphrase (--passphrase-file).", "bad-passphrase")))
    for file, problem in files.problems.items():
        if file not in operating:
            checks.append(Check(f"{file.relpath} readable", "warn", f"{problem} (not needed to operate, but "
                                                                    "the checks cannot use it)"))
    if any(c.status == "fail" for c in checks):
        return checks
    extra = [f.relpath for f in files.roles.files() if f in files.missing]
    note = f"; not here: {', '.join(extra)} (checks compare with the copies only)" if extra else ""
    clients = len(files.clients)
    whose = "client/" if clients == 1 else f"each of the {clients} clients' "
    return [Check("files present and readable", "pass",
                  f"broker/{{ca.crt,server.crt,server.key}} and {whose}{{ca.crt,client.crt,client.key}}{note}"),
            *checks]


def _missing(file: L.LabFile) -> Diagnosis:
    if file.kind == "client" and file.slot == "crt":
        csr = file.role.file("csr")
        return file_diagnosis(file, f"{file.relpath} is missing: the client has no certificate to present, "
                                    "and the broker requires one.",
                              f"have the CA sign {csr.relpath} (arrow 8) and give the client its certificate.",
                              "no-client-cert")
    return file_diagnosis(file, f"{file.relpath} is missing: {file.about}.",
                          f"run arrow {_arrows(arrow_of(file))}.", "missing-file")


# --- 2. key and certificate belong together ---------------------------------------------------------------

def check_key_pairs(files: LabFiles) -> list[Check]:
    """Each side's private key is the key its certificate was issued for; ca.key is ca.crt's key."""
    checks = []
    for role in (L.CA, *files.sides):
        cert, key = role.file("crt"), role.file("key")
        same = files.same_key(cert, key)
        if same is None:
            continue
        name = f"{_who(role)}: {key.name} matches {cert.name}"
        if same:
            checks.append(Check(name, "pass", f"same public key ({(files.fingerprint(key) or '')[:23]}…)"))
            continue
        if role == L.CA:
            diagnosis = file_diagnosis(
                key, "ca/ca.key does not belong to ca/ca.crt: one of them was made again (an interrupted or "
                     "forced build?), so the CA cannot sign anything that verifies against ca.crt.",
                "make the CA again (arrows 1-2, --force), hand ca.crt out and sign the CSRs again (arrows 5, 8, 9).",
                "key-mismatch", arrow=1)
            checks.append(Check(name, "fail", "the key is not the certificate's key", diagnosis))
            continue
        csr = role.file("csr")
        if files.same_key(csr, cert):  # the certificate is right for the CSR: the key changed since
            diagnosis = file_diagnosis(
                key, f"{key.relpath} does not belong to {cert.relpath}: the key was generated again (arrow "
                     f"{arrow_of(key)}) after {csr.name} and {cert.name} were made from the old one.",
                f"make {csr.relpath} from the new key (arrow {arrow_of(csr)}) and have the CA sign it (arrow "
                f"{arrow_of(cert)}), or put the old key back.", "key-mismatch")
        else:
            diagnosis = file_diagnosis(
                cert, f"{cert.relpath} does not belong to {key.relpath}: the certificate carries another "
                      "public key (it was issued from another CSR).",
                f"make {csr.relpath} from {key.relpath} (arrow {arrow_of(csr)}) and have the CA sign it "
                f"(arrow {arrow_of(cert)}).", "key-mismatch")
        checks.append(Check(name, "fail", "the key is not the certificate's key", diagnosis))
    return checks


# --- 3. signed by the CA the other side trusts ------------------------------------------------------------

def check_trust(files: LabFiles) -> list[Check]:
    """The broker's certificate is signed by the CA each client trusts, and each client's by the CA the
    broker trusts."""
    checks = []
    for client in files.clients:
        for verifier, presenter in ((client, L.BROKER), (L.BROKER, client)):
            trust, leaf_file = trust_file(verifier), cert_file(presenter)
            trusted, leaf = files.certs.get(trust), files.certs.get(leaf_file)
            if trusted is None or leaf is None:
                continue
            name = f"{_who(verifier)} trusts {_who(presenter)}: {leaf_file.relpath} signed by {trust.relpath}"
            if files.issued_by(leaf, trusted):
                checks.append(Check(name, "pass", f"signed by '{display_name(trusted.subject)}'"))
                continue
            same_name = leaf.issuer == trusted.subject
            found = (f"{trust.relpath} has the issuer's name '{display_name(trusted.subject)}' but another key"
                     if same_name else f"{leaf_file.name} was issued by '{display_name(leaf.issuer)}', "
                                       f"{trust.relpath} is '{display_name(trusted.subject)}'")
            checks.append(Check(name, "fail", found, _untrusted(files, verifier, presenter)))
    return checks


def _untrusted(files: LabFiles, verifier: Role, presenter: Role) -> Diagnosis:
    trust, leaf_file, csr = trust_file(verifier), cert_file(presenter), csr_file(presenter)
    trusted, leaf = files.certs[trust], files.certs[leaf_file]
    lab_ca = files.certs.get(L.CA_CERT)
    issuer, trusted_name = display_name(leaf.issuer), display_name(trusted.subject)
    if lab_ca is not None and not files.same_cert(trust, L.CA_CERT) and files.issued_by(leaf, lab_ca):
        return file_diagnosis(
            trust, f"{verifier.label} does not trust the CA that signed {leaf_file.relpath}: {trust.relpath} is "
                   f"'{trusted_name}', not a copy of ca/ca.crt ('{display_name(lab_ca.subject)}').",
            f"copy ca/ca.crt to {trust.relpath} (arrow 9).", "untrusted-issuer")
    if leaf.issuer == trusted.subject:
        blame = L.CA_CERT if lab_ca is not None and files.same_cert(trust, L.CA_CERT) else leaf_file
        return _orphaned(files, blame, trusted)
    return file_diagnosis(
        leaf_file, f"{leaf_file.relpath} was signed by '{issuer}', not by the CA {verifier.label} trusts "
                   f"('{trusted_name}'): {verifier.label} does not trust it.",
        f"have the lab's ca.key sign {csr.relpath} (arrow {arrow_of(leaf_file)}) and use that certificate.",
        "foreign-issuer")


def _orphaned(files: LabFiles, blame: L.LabFile, ca: x509.Certificate) -> Diagnosis:
    """The leaves name ``ca`` as issuer but its key did not sign them: the CA was made again."""
    orphans = [r.file("crt").relpath for r in files.sides if _orphan_of(files, r.file("crt"), ca)]
    if not orphans:
        orphans = [blame.relpath]
    plural = len(orphans) > 1
    they = (", ".join(orphans[:-1]) + " and " + orphans[-1]) if plural else orphans[0]
    if len(orphans) > 4:
        they = f"{', '.join(orphans[:3])} and {len(orphans) - 3} more certificates"
    return file_diagnosis(
        blame, f"{they} {'are' if plural else 'is'} orphaned: {'they name' if plural else 'it names'} "
               f"'{display_name(ca.subject)}' as issuer, but that CA's key did not sign {'them' if plural else 'it'}. "
               "ca.key and ca.crt were made again (arrows 1-2) after the certificates were signed by the old ones.",
        "have the new ca.key sign the CSRs again (arrows 5 and 8), or bring back the CA that signed them.",
        "orphaned", arrow=2 if blame == L.CA_CERT else None)


def _orphan_of(files: LabFiles, leaf_file: L.LabFile, ca: x509.Certificate) -> bool:
    """True when ``leaf_file`` names ``ca`` as its issuer but ``ca``'s key did not sign it."""
    leaf = files.certs.get(leaf_file)
    return leaf is not None and leaf.issuer == ca.subject and not files.issued_by(leaf, ca)


def check_copies(files: LabFiles) -> list[Check]:
    """Every side's ca.crt is a copy of ca/ca.crt: a CA made again (``--force``, ``run(1)``+``run(2)``) is
    caught even when the sides still agree with each other."""
    lab_ca = files.certs.get(L.CA_CERT)
    if lab_ca is None:
        return []
    stale = [c for c in _ca_copies(files)[1:] if c in files.certs and not files.same_cert(c, L.CA_CERT)]
    if not stale:
        return [Check("copies of ca/ca.crt", "pass", f"{len(files.sides)} sides hold the same ca.crt")]
    checks = []
    for copy in stale:
        old = files.certs[copy]
        leaves = [r.file("crt") for r in files.sides if r.file("crt") in files.certs]
        by_new = [f for f in leaves if files.issued_by(files.certs[f], lab_ca)]
        if old.subject == lab_ca.subject and not by_new:
            diagnosis = _orphaned(files, L.CA_CERT, lab_ca)
        else:
            diagnosis = file_diagnosis(
                copy, f"{copy.relpath} is not a copy of ca/ca.crt: it is '{display_name(old.subject)}'"
                      f"{' (an older certificate of the same CA name)' if old.subject == lab_ca.subject else ''}.",
                f"copy ca/ca.crt to {copy.relpath} (arrow 9).", "stale-copy")
        checks.append(Check(f"{copy.relpath} is ca/ca.crt", "fail", "another certificate", diagnosis))
    return checks


# --- 4. validity window -----------------------------------------------------------------------------------

def check_validity(files: LabFiles) -> list[Check]:
    """Every certificate is valid now: not before its notBefore, not after its notAfter."""
    checks = []
    for file in (*_distinct_ca_certs(files), *(r.file("crt") for r in files.sides)):
        cert = files.certs.get(file)
        if cert is None:
            continue
        start, end, now = cert.not_valid_before_utc, cert.not_valid_after_utc, files.now
        name = f"validity of {file.relpath}"
        is_ca_file = file.slot in ("trust",) or file == L.CA_CERT
        redo = ("make ca.crt again (arrow 2), hand it out (arrow 9) and sign the CSRs again (arrows 5 and 8)"
                if is_ca_file else f"have the CA sign {file.role.file('csr').relpath} again (arrow {arrow_of(file)})")
        if now < start:
            checks.append(Check(name, "fail", f"starts {_when(start, now)}", file_diagnosis(
                file, f"{file.relpath} is not valid yet: its validity starts {_when(start, now)}.",
                f"{redo} with a validity that starts now; check the clock of the CA's machine, and of the "
                "device that refuses it (a device without a battery-backed clock may think it is 1970).",
                "not-yet-valid", arrow=2 if is_ca_file else None)))
        elif now > end:
            checks.append(Check(name, "fail", f"ended {_when(end, now)}", file_diagnosis(
                file, f"{file.relpath} has expired: it was valid until {_when(end, now)}.",
                f"{redo}: certificates are renewed, never extended.", "expired",
                arrow=2 if is_ca_file else None)))
        elif end - now < EXPIRY_WARNING:
            checks.append(Check(name, "warn", f"expires {_when(end, now)}: renew it soon"))
        else:
            checks.append(Check(name, "pass", f"until {end:%Y-%m-%d}"))
    return checks


# --- 5. made for its role ---------------------------------------------------------------------------------

def check_roles(files: LabFiles) -> list[Check]:
    """The broker's certificate is for serverAuth, each client's for clientAuth; none is a CA; each names
    its issuer's key (authorityKeyIdentifier, which strict verifiers require)."""
    checks = []
    for role in files.sides:
        wanted, verifier = ((ExtendedKeyUsageOID.SERVER_AUTH, "client") if role.kind == "broker"
                            else (ExtendedKeyUsageOID.CLIENT_AUTH, "broker"))
        file = role.file("crt")
        cert = files.certs.get(file)
        if cert is None:
            continue
        csr = role.file("csr")
        name = f"{file.relpath} made for the {role.kind} ({EKU_NAMES[wanted]})"
        usages = extended_key_usage(cert)
        bc = extension(cert, x509.BasicConstraints)
        if usages is not None and wanted not in usages:
            checks.append(Check(name, "fail", f"extendedKeyUsage is {eku_text(usages)}", file_diagnosis(
                file, f"{file.relpath} is not a {role.kind}'s certificate: its extendedKeyUsage is "
                      f"{eku_text(usages)}, and the {verifier} needs {EKU_NAMES[wanted]} (it was issued to "
                      f"'{display_name(cert.subject)}').",
                f"have the CA sign {csr.relpath} with the {role.kind}'s profile (arrow {arrow_of(file)}); "
                "each side uses its own certificate and key (a key copied from another side has left its "
                "folder: that side makes a new key and is signed again too).", "wrong-purpose")))
        elif bc is not None and bc.value.ca:
            checks.append(Check(name, "fail", "it is a CA certificate", file_diagnosis(
                file, f"{file.relpath} is a CA certificate (basicConstraints CA:TRUE), not a {role.kind}'s.",
                f"have the CA sign {csr.relpath} (arrow {arrow_of(file)}).", "wrong-purpose")))
        elif extension(cert, x509.AuthorityKeyIdentifier) is None:
            checks.append(Check(name, "fail", "no authorityKeyIdentifier", file_diagnosis(
                file, f"{file.relpath} has no authorityKeyIdentifier: strict verifiers (Python 3.13, "
                      "OpenSSL -x509_strict) refuse it.",
                f"have the CA sign {csr.relpath} with the lab's profile (arrow {arrow_of(file)}).",
                "leaf-profile")))
        elif usages is None:
            checks.append(Check(name, "warn", "no extendedKeyUsage: accepted for any purpose, so it could also "
                                              f"pass for the {verifier}; the lab's profile sets "
                                              f"{EKU_NAMES[wanted]} only"))
        elif len(usages) > 1:
            checks.append(Check(name, "warn", f"extendedKeyUsage is {eku_text(usages)}: also usable in another "
                                              f"role; the lab's profile sets {EKU_NAMES[wanted]} only"))
        else:
            checks.append(Check(name, "pass", f"extendedKeyUsage {eku_text(usages)}"))
    return checks


# --- 6. the name the client connects to -------------------------------------------------------------------

def check_name(files: LabFiles, hostname: str) -> list[Check]:
    """The broker's certificate lists, in its subjectAltName, the name the client connects to."""
    cert = files.certs.get(L.SERVER_CERT)
    if cert is None:
        return []
    name = f"broker/server.crt covers {hostname!r}"
    listed = host_names(cert)
    if any(name_matches(n, hostname) for n in listed):
        return [Check(name, "pass", f"subjectAltName {', '.join(listed)}")]
    cn = display_name(cert.subject)
    dns_listed = [n for n in listed if not is_ip(n)]
    if not dns_listed and not is_ip(hostname) and name_matches(cn, hostname):
        return [Check(name, "warn", f"only its Common Name {cn!r} matches: Python and OpenSSL accept that, "
                                    "but clients that follow RFC 6125 ignore the Common Name; put the name in "
                                    "the subjectAltName")]
    csr = files.csrs.get(L.SERVER_CSR)
    lists = f"it lists {', '.join(listed)}" if listed else "it has no subjectAltName"
    problem = (f"broker/server.crt does not list {hostname!r} in its subjectAltName ({lists}), so a client "
               f"connecting to {hostname!r} refuses it.")
    if csr is not None and not any(name_matches(n, hostname) for n in host_names(csr)):
        diagnosis = file_diagnosis(L.SERVER_CSR, problem + " server.csr did not ask for that name either.",
                                   f"connect with a name it lists, or make server.csr with --server-name "
                                   f"{hostname} (arrow 4) and have the CA sign it (arrow 5).", "name-mismatch")
    else:
        asked = " server.csr asked for it, but the CA did not write it into the certificate (`openssl x509 " \
                "-req` copies no extension from a CSR: the CA writes each one itself)." if csr is not None else ""
        diagnosis = file_diagnosis(L.SERVER_CERT, problem + asked,
                                   "have the CA sign server.csr again, writing the names it approved into the "
                                   "subjectAltName itself (arrow 5; in openssl: -extfile with subjectAltName), "
                                   "or connect with a name the certificate lists.", "name-mismatch")
    return [Check(name, "fail", lists, diagnosis)]


# --- 7. the CA certificate's profile ----------------------------------------------------------------------

def ca_profile_problems(cert: x509.Certificate) -> list[str]:
    """What strict verifiers object to in a CA certificate (empty when it is fine)."""
    problems = []
    bc = extension(cert, x509.BasicConstraints)
    if bc is None:
        problems.append("it has no basicConstraints, so it does not say it is a CA")
    elif not bc.value.ca:
        problems.append("its basicConstraints says CA:FALSE: it is not a CA certificate")
    elif not bc.critical:
        problems.append("its basicConstraints CA:TRUE is not marked critical")
    ku = extension(cert, x509.KeyUsage)
    if ku is None:
        problems.append("it has no keyUsage extension (strict verifiers want keyCertSign)")
    elif not ku.value.key_cert_sign:
        problems.append("its keyUsage lacks keyCertSign, so it may not sign certificates")
    if extension(cert, x509.SubjectKeyIdentifier) is None:
        problems.append("it has no subjectKeyIdentifier")
    return problems


def check_ca_profile(files: LabFiles) -> list[Check]:
    """Each CA certificate (ca/ca.crt and the copies) says it is a CA, critically, and may sign."""
    checks = []
    for file in _distinct_ca_certs(files):
        problems = ca_profile_problems(files.certs[file])
        name = f"CA profile of {file.relpath}"
        if not problems:
            checks.append(Check(name, "pass", "basicConstraints critical CA:TRUE, keyUsage keyCertSign"))
            continue
        blame = _ca_source(files, file)
        checks.append(Check(name, "fail", "; ".join(problems), file_diagnosis(
            blame, f"{blame.relpath} does not pass strict X.509 checks: {'; '.join(problems)}. Python 3.13 "
                   "and OpenSSL -x509_strict refuse every certificate it signed.",
            "make ca.crt again from ca.key with the lab's CA profile (arrow 2: basicConstraints critical "
            "CA:TRUE, keyUsage keyCertSign) and hand it out (arrow 9); certificates signed by the "
            "same key and name stay valid.", "ca-profile", arrow=2)))
    return checks


# --- 8. strong keys and signatures ------------------------------------------------------------------------

def check_strength(files: LabFiles) -> list[Check]:
    """Keys are at least RSA 2048 / EC P-256 (or Ed25519); no certificate is signed with MD5 or SHA-1."""
    found: list[Check] = []
    seen: set[str] = set()
    # Each key is judged once, under the name of its private key file when it has one.
    owners = [(L.CA_KEY, L.CA_CERT), *((r.file("key"), r.file("crt")) for r in files.sides),
              *((c, c) for c in _ca_copies(files)[1:])]
    for key_owner, cert in owners:
        source = key_owner if key_owner in files.keys else cert
        key, fp = files.public_key(source), files.fingerprint(source)
        if key is None or fp is None or fp in seen:
            continue
        seen.add(fp)
        weakness = key_problem(key)
        if not weakness:
            continue
        ca_key = source.role == L.CA or source.slot == "trust"
        role = source.role
        redo = ("make a new CA (arrows 1-2), hand it out and sign the CSRs again (arrows 5, 8, 9)" if ca_key else
                f"generate {role.file('key').relpath} again as ec-p256 or rsa-2048 or larger (arrow "
                f"{arrow_of(role.file('key'))}), then make {role.file('csr').relpath} (arrow "
                f"{arrow_of(role.file('csr'))}) and have it signed (arrow {arrow_of(role.file('crt'))})")
        found.append(Check(f"strength of {source.relpath}", "fail", weakness, file_diagnosis(
            source, f"{source.relpath} is too weak: {weakness}.", redo + ".", "weak-key",
            arrow=1 if ca_key else arrow_of(role.file("key")))))
    for file in (*_distinct_ca_certs(files), *(r.file("crt") for r in files.sides)):
        digest = digest_name(files.certs.get(file))
        if digest is not None and digest in WEAK_HASHES:
            name = digest.upper().replace("SHA", "SHA-")
            is_ca_file = file == L.CA_CERT or file.slot == "trust"
            found.append(Check(f"signature of {file.relpath}", "fail", f"signed with {name}", file_diagnosis(
                file, f"{file.relpath} is signed with {name}, which OpenSSL refuses ('ca md too weak').",
                ("make ca.crt again (arrow 2) and hand it out (arrow 9)" if is_ca_file else
                 f"have the CA sign {file.role.file('csr').relpath} again (arrow {arrow_of(file)})")
                + " with SHA-256, as the lab's builders always do.", "weak-signature",
                arrow=2 if is_ca_file else None)))
    if not found:
        kinds = sorted({key_kind(key) for f in (L.SERVER_CERT, *(c.file("crt") for c in files.clients), L.CA_CERT)
                        if (key := files.public_key(f)) is not None})
        found.append(Check("strong keys and signatures", "pass", f"{', '.join(kinds)}; no MD5/SHA-1"))
    return found


# --- 9. secrets stay home ---------------------------------------------------------------------------------

def _private_key_files(folder: Path) -> Iterable[Path]:
    if not folder.is_dir() or folder.is_symlink():
        return
    for path in sorted(folder.iterdir()):
        try:
            if path.is_file() and not path.is_symlink() and path.stat().st_size < 65536 \
                    and is_private_key_pem(path.read_bytes()):
                yield path
        except OSError:
            continue


def check_secrets(files: LabFiles) -> list[Check]:
    """``ca.key`` is only in ``ca/``; no private key is held by two roles; keys are not readable by others."""
    checks: list[Check] = []
    root = files.root
    try:
        ca_key_bytes = L.CA_KEY.path(root).read_bytes() if L.CA_KEY not in files.missing else None
    except OSError:
        ca_key_bytes = None
    ca_fp = files.fingerprint(L.CA_KEY) or files.fingerprint(L.CA_CERT)
    for role in files.sides:
        own = role.file("key").path(root)
        for path in _private_key_files(root / role.folder):
            rel = path.relative_to(root).as_posix()
            if path == own:
                continue
            try:
                data = path.read_bytes()
            except OSError:
                continue
            leaked = data == ca_key_bytes or path.name == "ca.key" or _key_matches(data, ca_fp)
            if leaked:
                checks.append(Check("ca.key stays in ca/", "fail", f"{rel} is a copy of the CA's private key",
                                    _leak(rel, role)))
            else:
                checks.append(Check(f"{rel}", "warn", f"an extra private key in {role.folder}/: a role needs only "
                                                      f"its own {role.file('key').name}"))
    by_key: dict[str, Role] = {}
    for role in files.sides:
        key = role.file("key")
        fp = files.fingerprint(key) if key in files.keys else None
        if fp is None:
            continue
        if ca_fp is not None and fp == ca_fp:
            checks.append(Check(f"{key.relpath} is the {_who(role)}'s own", "fail", "it is the CA's key",
                                _leak(key.relpath, role)))
        elif fp in by_key:
            checks.append(Check("each key has one role", "fail",
                                f"{by_key[fp].file('key').relpath} and {key.relpath} are the same key",
                                _shared_key(files, by_key[fp], role)))
        else:
            by_key[fp] = role
    for file in (L.CA_KEY, *(r.file("key") for r in files.sides)):
        path = file.path(root)
        if file not in files.missing and file not in files.problems and mode_of(path) & 0o077:
            checks.append(Check(f"{file.relpath} private", "warn", f"mode {mode_of(path):04o}: readable by "
                                                                 f"group or others; run chmod 600 {file.relpath}"))
    if not any(c.status != "pass" for c in checks):
        checks.append(Check("secrets stay home", "pass", "ca.key only in ca/, each key held by one role, keys 0600"))
    return checks


def _key_matches(data: bytes, fingerprint: str | None) -> bool:
    """True when the unencrypted PEM private key ``data`` has the public key ``fingerprint``."""
    if fingerprint is None or is_encrypted_key_pem(data):
        return False
    from cryptography.hazmat.primitives import serialization

    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        return False
    return public_key_fingerprint(key) == fingerprint  # type: ignore[arg-type]


def _shared_key(files: LabFiles, first: Role, second: Role) -> Diagnosis:
    """Two roles hold the same private key: blame the copy (the one whose key differs from its CSR)."""
    copy = first if files.same_key(first.file("csr"), first.file("key")) is False else second
    owner = second if copy == first else first
    key = copy.file("key")
    return file_diagnosis(
        key, f"{key.relpath} is {owner.label}'s private key (the same key as {owner.file('key').relpath}): "
             f"whoever holds {copy.label}'s files can impersonate {owner.label}.",
        f"generate a key of {copy.label}'s own (arrow {arrow_of(key)}), make {copy.file('csr').relpath} (arrow "
        f"{arrow_of(copy.file('csr'))}) and have it signed (arrow {arrow_of(copy.file('crt'))}).", "secret-shared")


def _leak(rel: str, role: Role) -> Diagnosis:
    return file_diagnosis(
        rel, f"{rel} is the CA's private key (ca.key) in {role.label}'s folder: whoever can read that folder "
             "can sign certificates for any broker or client.",
        f"delete {rel}: ca.key never leaves ca/. Treat the CA as compromised: make a new CA and sign "
        "everything again (arrows 1-9).", "secret-leak", arrow=1)


# --- all of them ------------------------------------------------------------------------------------------

CheckFunction = Callable[..., list[Check]]
#: The checks, in the order a handshake would trip over their problems.
CHECKS: tuple[CheckFunction, ...] = (check_files, check_key_pairs, check_trust, check_copies, check_validity,
                                     check_roles, check_name, check_ca_profile, check_strength, check_secrets)


def run_checks(files: LabFiles, hostname: str = "localhost") -> list[Check]:
    """Run every check on loaded files; the first failing check's diagnosis is the most specific one."""
    results: list[Check] = []
    for check in CHECKS:
        results += check(files, hostname) if check is check_name else check(files)
    return results
