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
    is_ca,
    signed_by,
)
from .crl import crl_number, crl_path, crl_problem, index_entries, issuer_role, load_crl, revoked_entry
from .diagnose import (
    Diagnosis,
    cert_file,
    csr_file,
    file_diagnosis,
    missing_chain_diagnosis,
    revocation_diagnosis,
    trust_file,
)
from .diagram import ARROW_TITLES, Role, Roles, arrow_of
from .errors import LabError
from .files import mode_of, read_bytes
from .intermediate import build_path, path_length
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
from .pem import load_certificates, load_csr
from .steps import discover_roles, key_on_device

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
    on_device: set[Role] = field(default_factory=set)
    """The roles whose private key is held by their device (``mqtt-pki-lab sign``): their key is not here."""
    chains: dict[L.LabFile, tuple[x509.Certificate, ...]] = field(default_factory=dict)
    next_root: x509.Certificate | None = None
    """During a CA rotation (:mod:`~mqtt_pki_lab.rotate`): the new root, ``ca-next/ca.crt``; else None."""
    """The certificates that follow the first one in a file: in a chain of three, the intermediate after each
    leaf (the chain that side presents); in a ``ca.crt``, further trusted certificates."""

    @classmethod
    def load(cls, root: str | Path, password: bytes | str | None = None) -> LabFiles:
        """Read every file of every role that exists in ``root``."""
        files = cls(Path(root), discover_roles(Path(root)))
        files.on_device = {r for r in files.roles.sides if key_on_device(files.root, r)}
        files.next_root = _next_root(files.root)
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
                    first, *rest = load_certificates(path)  # a leaf file: the leaf first, then its chain
                    files.certs[file] = first
                    if rest:
                        files.chains[file] = tuple(rest)
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

    def anchors(self, file: L.LabFile) -> tuple[x509.Certificate, ...]:
        """Every certificate a ``ca.crt`` file holds (what its side trusts), or () when it was not loaded."""
        first = self.certs.get(file)
        return (first, *self.chains.get(file, ())) if first is not None else ()

    @property
    def intermediate(self) -> x509.Certificate | None:
        """The lab's intermediate CA certificate (``intermediate/intermediate.crt``), when it has one."""
        return self.certs.get(L.INTERMEDIATE_CERT) if self.roles.intermediate else None

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
            if file in files.missing and file.slot == "key" and role in files.on_device:
                continue  # held by the device: check_device_keys says so
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
        if file not in operating and not (file == L.INTERMEDIATE_CERT and files.roles.intermediate):  # check_chain
            checks.append(Check(f"{file.relpath} readable", "warn", f"{problem} (not needed to operate, but "
                                                                    "the checks cannot use it)"))
    if any(c.status == "fail" for c in checks):
        return checks
    offline = files.roles.intermediate and L.CA_KEY in files.missing and L.INTERMEDIATE_CERT in files.certs
    extra = [f.relpath for f in files.roles.files() if f in files.missing
             and not (f.slot == "key" and f.role in files.on_device) and not (offline and f == L.CA_KEY)]
    note = f"; not here: {', '.join(extra)} (checks compare with the copies only)" if extra else ""
    note += "; ca/ca.key kept offline (the intermediate CA signs day to day)" if offline else ""
    held = [r.file("key").relpath for r in files.sides if r in files.on_device]
    note += f"; held by their devices, not here: {', '.join(held)}" if held else ""
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
    for role in (*files.roles.cas, *files.sides):
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
            second = next((a for a in files.anchors(trust)[1:] if files.issued_by(leaf, a)), None)
            if second is not None:  # a CA rotation's bundle: the old root, then the new one
                checks.append(Check(name, "pass", f"signed by '{display_name(second.subject)}', a further root in "
                                                  f"{trust.relpath} (a CA rotation's bundle)"))
                continue
            path = build_path(leaf, files.chains.get(leaf_file, ()), files.anchors(trust))
            if path is not None:  # a chain of three: leaf -> intermediate (sent after it) -> root
                links = ", ".join(f"'{display_name(c.subject)}'" for c in path[1:])
                checks.append(Check(name, "pass", f"chain {links}: the intermediate sent in {leaf_file.name}, "
                                                  f"the root in {trust.relpath}"))
                continue
            gap = _missing_chain(files, verifier, presenter)
            if gap is not None:
                checks.append(Check(name, "fail", f"{leaf_file.name} does not carry the intermediate CA's "
                                                  "certificate after the leaf", gap))
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
    if files.next_root is not None and files.issued_by(leaf, files.next_root):
        return _old_trust_only(trust, verifier, leaf_file, files.next_root)
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


def _missing_chain(files: LabFiles, verifier: Role, presenter: Role) -> Diagnosis | None:
    """In a chain of three: ``presenter``'s certificate was signed by the lab's intermediate CA, but its file does
    not carry the intermediate after the leaf, so ``verifier`` (which trusts the root alone) cannot link it to
    the root. OpenSSL says "unable to get local issuer certificate". None when that is not the problem."""
    intermediate, leaf_file = files.intermediate, cert_file(presenter)
    leaf = files.certs.get(leaf_file)
    if intermediate is None or leaf is None or not files.issued_by(leaf, intermediate) \
            or intermediate in files.chains.get(leaf_file, ()):
        return None
    return missing_chain_diagnosis(presenter, verifier)


def _intermediate_as_anchor(files: LabFiles, copy: L.LabFile) -> Diagnosis:
    """A ``ca.crt`` that holds the intermediate CA's certificate: the trust anchor is the root alone.

    What verifiers make of it (measured with OpenSSL 3.0 and mosquitto 2.0.11): OpenSSL's default takes only a
    self-signed certificate of the CA file as a trust anchor (``X509_V_FLAG_PARTIAL_CHAIN`` is off), so with the
    intermediate *in place of* the root it refuses every chain, complete or not ("unable to get issuer
    certificate"); *beside* the root it accepts, and a leaf file without its chain goes unnoticed until a verifier
    that holds the root alone meets it. A partial-chain verifier (Python 3.13's default context) accepts both."""
    name = display_name(files.intermediate.subject) if files.intermediate is not None else "intermediate"
    if any(a.issuer == a.subject for a in files.anchors(copy)):
        effect = ("beside the root: OpenSSL then builds the path through it, so a leaf file without the intermediate "
                  "after it goes unnoticed here, and every verifier that holds the root alone refuses that leaf "
                  "('unable to get local issuer certificate')")
    else:
        effect = ("in place of the root: mosquitto and `openssl verify` take only a self-signed certificate as a "
                  "trust anchor (OpenSSL's default, without X509_V_FLAG_PARTIAL_CHAIN), so they refuse every chain "
                  "through this file, complete or not ('unable to get issuer certificate'); only a partial-chain "
                  "verifier such as Python 3.13's default context accepts it")
    return file_diagnosis(
        copy, f"{copy.relpath} holds the intermediate CA's certificate ('{name}') {effect}. A side trusts the root "
              "alone (arrow 9 hands out ca/ca.crt); the intermediate travels in the chain, after each leaf in "
              "server.crt and client.crt, where every verifier gets it.",
        f"copy ca/ca.crt (the root alone) to {copy.relpath} (arrow 9), and keep intermediate/intermediate.crt after "
        "the leaf in each certificate file (arrows 5 and 8).", "intermediate-in-trust", arrow=9)


def _is_lab_intermediate(files: LabFiles, cert: x509.Certificate) -> bool:
    """True when ``cert`` is the lab's intermediate CA, or any CA certificate that is not self-signed (a root
    is self-signed: a ``ca.crt`` holding two roots, as during a CA rotation, holds no intermediate)."""
    return cert == files.intermediate or (cert.issuer != cert.subject and is_ca(cert))


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


def _next_root(root: Path) -> x509.Certificate | None:
    """The new root of a CA rotation under way (``ca-next/ca.crt``), or None."""
    path = L.NEXT_CA.file("crt").path(root)
    if not path.is_file() or path.is_symlink():
        return None
    try:
        return load_certificates(path)[0]
    except LabError:
        return None


def _rotation_copy(files: LabFiles, copy: L.LabFile) -> bool:
    """True when ``copy`` is what a CA rotation hands out: roots of the lab only (the old root in ``ca/``, the
    new one in ``ca-next/``), the new one among them."""
    roots = [r for r in (files.certs.get(L.CA_CERT), files.next_root) if r is not None]
    anchors = files.anchors(copy)
    return files.next_root is not None and files.next_root in anchors and all(a in roots for a in anchors)


def _old_trust_only(trust: L.LabFile, verifier: Role, leaf_file: L.LabFile, new: x509.Certificate) -> Diagnosis:
    """A side that never received a CA rotation's bundle meets a certificate of the new root."""
    return file_diagnosis(
        trust, f"{verifier.label} still trusts only the old root: {leaf_file.relpath} is signed by the new root "
               f"'{display_name(new.subject)}' ({L.NEXT_CA_FOLDER}/ca.crt), which {trust.relpath} does not hold.",
        f"hand {verifier.label} the bundle of both roots: mqtt-pki-lab rotate DIR reissue {verifier.name} (a device "
        "that holds its own files: mqtt-pki-lab install DEVICE_DIR client.crt ca.crt).", "rotation-old-trust",
        arrow=L.ROTATE_STEPS[0].number)


def check_copies(files: LabFiles) -> list[Check]:
    """Every side's ca.crt is a copy of ca/ca.crt: a CA made again (``--force``, ``run(1)``+``run(2)``) is
    caught even when the sides still agree with each other."""
    lab_ca = files.certs.get(L.CA_CERT)
    if lab_ca is None:
        return []
    stale = [c for c in _ca_copies(files)[1:] if c in files.certs and not files.same_cert(c, L.CA_CERT)
             and not _rotation_copy(files, c)]
    if not stale:
        return [Check("copies of ca/ca.crt", "pass", f"{len(files.sides)} sides hold the same ca.crt")]
    checks = []
    for copy in stale:
        old = files.certs[copy]
        leaves = [r.file("crt") for r in files.sides if r.file("crt") in files.certs]
        by_new = [f for f in leaves if files.issued_by(files.certs[f], lab_ca)]
        if _is_lab_intermediate(files, old):
            diagnosis = _intermediate_as_anchor(files, copy)
        elif old.subject == lab_ca.subject and not by_new:
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
    cas = [L.INTERMEDIATE_CERT] if files.roles.intermediate else []
    for file in (*_distinct_ca_certs(files), *cas, *(r.file("crt") for r in files.sides)):
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
            how = ("a new CA is a rotation (mqtt-pki-lab build DIR --force)" if is_ca_file
                   else "a new intermediate: mqtt-pki-lab build DIR --intermediate --force"
                   if file.kind == "intermediate" else f"mqtt-pki-lab renew DIR {file.role.name}")
            checks.append(Check(name, "warn", f"expires {_when(end, now)}: renew it soon ({how})"))
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


# --- 7b. a chain of three: the intermediate CA ---------------------------------------------------------------

def _chain_failure(name: str, message: str, file: L.LabFile, problem: str, fix: str, code: str,
                   arrow: int | None = None) -> Check:
    return Check(name, "fail", message, file_diagnosis(file, problem, fix, code, arrow=arrow))


def _intermediate_missing(files: LabFiles) -> list[Check]:
    """intermediate/intermediate.crt missing or unreadable in a lab that has an intermediate CA."""
    file = L.INTERMEDIATE_CERT
    fix = ("put it back (it is public: a copy follows the leaf in broker/server.crt), or make a new intermediate "
           "and sign the leaves again: mqtt-pki-lab build DIR --intermediate --force (steps 13-15)")
    if file in files.missing:
        return [_chain_failure(f"{file.relpath} present", "missing", file,
                               f"{file.relpath} is missing: the intermediate CA signs the leaves, and nothing can be "
                               "signed or checked against it.", fix, "missing-file")]
    problem = files.problems.get(file) or "encrypted or unusable"
    return [_chain_failure(f"{file.relpath} readable", problem, file, f"{file.relpath} cannot be used: {problem}.",
                           fix, "unreadable-file")]


def _intermediate_profile(files: LabFiles, inter: x509.Certificate, root: x509.Certificate | None) -> list[Check]:
    """The intermediate is a CA (strict profile), may sign leaves only, is signed by the root, whose
    pathLenConstraint lets one CA stand below it."""
    file, checks = L.INTERMEDIATE_CERT, []
    redo = ("make the intermediate again and sign the leaves again: mqtt-pki-lab build DIR --intermediate --force "
            "(the root signs it with the lab's CA profile, pathLenConstraint 0)")
    problems = ca_profile_problems(inter)
    limit = path_length(inter)
    if root is not None and not files.issued_by(inter, root):
        checks.append(_chain_failure(
            f"{file.relpath} signed by ca/ca.crt", f"issued by '{display_name(inter.issuer)}'", file,
            f"{file.relpath} is not signed by the lab's root ca/ca.crt ('{display_name(root.subject)}'): every leaf it "
            "signed chains to no root the sides trust.", redo + ".", "foreign-issuer"))
    root_limit = path_length(root) if root is not None else None
    if root_limit is not None and root_limit < 1:
        checks.append(_chain_failure(
            "ca/ca.crt lets a CA stand below it", "pathLenConstraint 0", L.CA_CERT,
            "ca/ca.crt says pathLenConstraint 0: no CA may stand below the root, so OpenSSL refuses every chain "
            "through the intermediate ('path length constraint exceeded').",
            "make the root again with pathLenConstraint 1: mqtt-pki-lab build DIR --intermediate --force.",
            "ca-profile", arrow=2))
    if problems:
        checks.append(_chain_failure(
            f"CA profile of {file.relpath}", "; ".join(problems), file,
            f"{file.relpath} does not pass strict X.509 checks: {'; '.join(problems)}. Python 3.13 and OpenSSL "
            "-x509_strict refuse every certificate it signed.", redo + ".", "ca-profile"))
    elif limit != 0:
        checks.append(Check(f"CA profile of {file.relpath}", "warn", f"pathLenConstraint {limit}: it may sign "
                            "further CAs; the lab's intermediate says 0 (it signs leaves only)"))
    if root is not None and inter.not_valid_after_utc > root.not_valid_after_utc:
        checks.append(Check(f"{file.relpath} ends with the root", "warn",
                            f"it ends {inter.not_valid_after_utc:%Y-%m-%d}, after ca/ca.crt "
                            f"({root.not_valid_after_utc:%Y-%m-%d}): no certificate is valid longer than its issuer, "
                            "so the last years are worth nothing"))
    return checks


def check_chain(files: LabFiles) -> list[Check]:
    """A chain of three (the lab has an intermediate CA): the intermediate's certificate is there, signed by the
    root, a CA with the strict profile and pathLenConstraint 0 (the root's 1), ending with the root; each leaf
    file carries it after the leaf (the chain that side presents). In every lab: a ``ca.crt`` holds the root
    alone, never an intermediate (its place is the chain)."""
    checks: list[Check] = []
    for copy in _ca_copies(files)[1:]:
        if any(_is_lab_intermediate(files, c) for c in files.chains.get(copy, ())):
            checks.append(Check(f"{copy.relpath} holds the root alone", "fail",
                                "it also holds an intermediate CA's certificate", _intermediate_as_anchor(files, copy)))
    if not files.roles.intermediate:
        return checks
    inter, root = files.intermediate, files.certs.get(L.CA_CERT)
    if inter is None:
        return checks + _intermediate_missing(files)
    checks += _intermediate_profile(files, inter, root)
    for role in files.sides:
        leaf_file = role.file("crt")
        leaf = files.certs.get(leaf_file)
        if leaf is None or not files.issued_by(leaf, inter):
            continue
        chain = files.chains.get(leaf_file, ())
        verifiers = [L.BROKER] if role.kind == "client" else list(files.clients)
        # A missing chain that check_trust did not see: hidden by an intermediate in the verifiers' ca.crt.
        if inter not in chain and all(build_path(leaf, chain, files.anchors(v.file("trust"))) for v in verifiers):
            checks.append(Check(f"{leaf_file.relpath} presents the chain", "fail", "no intermediate after the leaf",
                                _missing_chain(files, verifiers[0], role)))
        elif leaf.not_valid_after_utc > inter.not_valid_after_utc:
            checks.append(Check(f"{leaf_file.relpath} ends with its issuer", "warn", "it ends after the intermediate "
                                "CA: no certificate is valid longer than its issuer"))
    if not any(c.status != "pass" for c in checks):
        offline = "; ca/ca.key kept offline" if L.CA_KEY in files.missing else ""
        checks.append(Check("chain of three", "pass", f"{L.INTERMEDIATE_CERT.relpath} signed by the root, CA:TRUE "
                            f"pathLen 0 (root pathLen {path_length(root) if root is not None else '?'}), valid until "
                            f"{inter.not_valid_after_utc:%Y-%m-%d}; every leaf file carries it after the leaf"
                            f"{offline}"))
    return checks


# --- 8. strong keys and signatures ------------------------------------------------------------------------

def check_strength(files: LabFiles) -> list[Check]:
    """Keys are at least RSA 2048 / EC P-256 (or Ed25519); no certificate is signed with MD5 or SHA-1."""
    found: list[Check] = []
    seen: set[str] = set()
    # Each key is judged once, under the name of its private key file when it has one.
    owners = [*((r.file("key"), r.file("crt")) for r in (*files.roles.cas, *files.sides)),
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
    cas = [L.INTERMEDIATE_CERT] if files.roles.intermediate else []
    for file in (*_distinct_ca_certs(files), *cas, *(r.file("crt") for r in files.sides)):
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
    inter_fp = (files.fingerprint(L.INTERMEDIATE_KEY) or files.fingerprint(L.INTERMEDIATE_CERT)
                if files.roles.intermediate else None)
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
            elif inter_fp is not None and (path.name == L.INTERMEDIATE_KEY.name or _key_matches(data, inter_fp)):
                checks.append(Check("intermediate.key stays in intermediate/", "fail", f"{rel} is a copy of the "
                                    "intermediate CA's private key", _leak(rel, role, L.INTERMEDIATE)))
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
        elif inter_fp is not None and fp == inter_fp:
            checks.append(Check(f"{key.relpath} is the {_who(role)}'s own", "fail", "it is the intermediate CA's key",
                                _leak(key.relpath, role, L.INTERMEDIATE)))
        elif fp in by_key:
            checks.append(Check("each key has one role", "fail",
                                f"{by_key[fp].file('key').relpath} and {key.relpath} are the same key",
                                _shared_key(files, by_key[fp], role)))
        else:
            by_key[fp] = role
    for file in (*(r.file("key") for r in files.roles.cas), *(r.file("key") for r in files.sides)):
        path = file.path(root)
        if file not in files.missing and file not in files.problems and mode_of(path) & 0o077:
            checks.append(Check(f"{file.relpath} private", "warn", f"mode {mode_of(path):04o}: readable by "
                                                                 f"group or others; run chmod 600 {file.relpath}"))
    if not any(c.status != "pass" for c in checks):
        offline = files.roles.intermediate and L.CA_KEY in files.missing  # the intermediate signs day to day
        where = "ca.key kept offline (in no folder of the lab)" if offline else "ca.key only in ca/"
        checks.append(Check("secrets stay home", "pass", f"{where}, each key held by one role, keys 0600"))
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


def _leak(rel: str, role: Role, ca: Role = L.CA) -> Diagnosis:
    if ca == L.INTERMEDIATE:
        return file_diagnosis(
            rel, f"{rel} is the intermediate CA's private key (intermediate.key) in {role.label}'s folder: whoever "
                 "can read that folder can sign certificates for any broker or client.",
            f"delete {rel}: intermediate.key never leaves intermediate/. Treat the intermediate as compromised: make "
            "a new one and sign everything again (mqtt-pki-lab build DIR --intermediate --force).", "secret-leak",
            arrow=L.arrow_of(L.INTERMEDIATE_KEY))
    return file_diagnosis(
        rel, f"{rel} is the CA's private key (ca.key) in {role.label}'s folder: whoever can read that folder "
             "can sign certificates for any broker or client.",
        f"delete {rel}: ca.key never leaves ca/. Treat the CA as compromised: make a new CA and sign "
        "everything again (arrows 1-9).", "secret-leak", arrow=1)


# --- 10. keys held by their devices -----------------------------------------------------------------------

def check_device_keys(files: LabFiles) -> list[Check]:
    """A role whose key was born on its device (``mqtt-pki-lab sign``): its certificate carries its CSR's key,
    and no key of it is in the lab. The handshake needs the device's files: ``verify LAB --device DIR``."""
    checks = []
    for role in (r for r in files.sides if r in files.on_device):
        key, csr, cert = role.file("key"), role.file("csr"), role.file("crt")
        name = f"{_who(role)}: {key.name} held by the device"
        if key not in files.missing:
            checks.append(Check(name, "fail", f"{key.relpath} is in the lab folder", file_diagnosis(
                key, f"{key.relpath} is in the CA's folder, but {role.label}'s key was generated on its device "
                     f"({L.DEVICE_KEY_NOTE}): the device's secret has been copied here.",
                f"delete {key.relpath}; treat the key as exposed: the device makes a new key and CSR (mqtt-pki-lab "
                "request) and the CA signs it (mqtt-pki-lab sign).", "secret-leak")))
            continue
        same = files.same_key(csr, cert)
        if same is None:
            continue  # a missing or unreadable certificate or CSR is reported by check_files
        if not same:
            checks.append(Check(name, "fail", f"{cert.name} does not carry {csr.name}'s key", file_diagnosis(
                cert, f"{cert.relpath} carries another public key than {csr.relpath}, the device's request: the "
                      "device's key does not match it.",
                f"remove {role.folder}/, sign the device's CSR again (mqtt-pki-lab sign) and install the new "
                "certificate on the device (mqtt-pki-lab install).", "key-mismatch")))
            continue
        checks.append(Check(name, "pass", f"{cert.name} carries {csr.name}'s key ({(files.fingerprint(csr) or '')[:23]}"
                                          f"…); {key.name} is on the device, so the handshake needs its files: "
                                          "verify LAB --device DEVICE_DIR"))
    return checks


# --- 11. the revocation list (day two: step 11) ----------------------------------------------------------

#: A revocation list this close to its nextUpdate gets a warning: the lab's choice, a week to sign it again
#: (``mqtt-pki-lab crl DIR --refresh``) before OpenSSL refuses every client.
CRL_WARNING = dt.timedelta(days=7)


def _crl_failure(rel: str, name: str, message: str, problem: str, code: str) -> Check:
    """A failed check of a revocation list: step 11, the file named, signing it again as the fix."""
    return Check(name, "fail", message, Diagnosis(
        L.REVOKE_STEP.number, rel, problem, "move it away if it is not the lab's, then sign the list again: "
        "mqtt-pki-lab crl DIR --refresh (it writes ca/crl.pem and broker/crl.pem).", code))


def _crl_lists(files: LabFiles, issuer: Role) -> tuple[dict[Role, x509.CertificateRevocationList], list[Check]]:
    """The lab's revocation lists that can be used (the issuer's record, the broker's copy), and a failed
    check for each one that cannot: a link, damaged, not a CRL, or not signed by the lab's CA."""
    ca = files.certs.get(issuer.file("crt")) or files.certs.get(L.BROKER_CA)
    lists: dict[Role, x509.CertificateRevocationList] = {}
    checks = []
    for role in (issuer, L.BROKER):
        path, rel = crl_path(files.root, role), f"{role.folder}/{L.CRL_NAME}"
        if path.is_symlink():
            checks.append(_crl_failure(rel, f"{rel} readable", "is a symbolic link",
                                       f"{rel} is a symbolic link; the lab's files are never links.", "crl-unreadable"))
            continue
        if not path.exists():
            continue
        try:
            crl = load_crl(path)
        except LabError as exc:
            checks.append(_crl_failure(rel, f"{rel} readable", exc.problem, f"{rel} cannot be used: {exc.problem}; a "
                                       "broker given it refuses every client, or does not start.", "crl-unreadable"))
            continue
        problem = crl_problem(crl, ca) if ca is not None else None
        if problem:
            checks.append(_crl_failure(rel, f"{rel} signed by the lab's CA", problem, f"{rel}: {problem}.",
                                       "crl-foreign"))
            continue
        lists[role] = crl
    return lists, checks


def check_revocation(files: LabFiles) -> list[Check]:
    """The revocation list (step 11), when the lab has one: readable and signed by the lab's CA, the broker
    holds a current copy, and which clients it revokes. A revoked client is intended, so it passes: its
    handshake must be refused. A stale list fails before any broker starts: OpenSSL then refuses everybody."""
    issuer = issuer_role(files.root)
    lists, checks = _crl_lists(files, issuer)
    record, copy = lists.get(issuer), lists.get(L.BROKER)
    rel = f"{L.BROKER.folder}/{L.CRL_NAME}"
    if record is not None and not crl_path(files.root, L.BROKER).exists():
        checks.append(_crl_failure(rel, f"{rel} present", "missing: the broker checks no revocation list",
                                   f"{issuer.folder}/{L.CRL_NAME} revokes certificates, but the broker has no copy "
                                   f"({rel}): the revoked clients still get in.", "crl-missing"))
    if record is not None and copy is not None and (crl_number(copy) or 0) < (crl_number(record) or 0):
        checks.append(Check(f"{rel} up to date", "warn", f"CRL number {crl_number(copy)}, older than "
                            f"{issuer.folder}/{L.CRL_NAME} (number {crl_number(record)}): the broker does not know the "
                            "latest revocations; copy it again: mqtt-pki-lab crl DIR --refresh"))
    if copy is None:
        return checks
    next_update, this_update = copy.next_update_utc, copy.last_update_utc
    index = index_entries(copy)
    if next_update is not None and next_update <= files.now:
        checks.append(Check(f"{rel} current", "fail", f"its nextUpdate passed on {_when(next_update, files.now)}: "
                            "everyone will be refused (mosquitto and OpenSSL refuse every client once the list is "
                            "stale)", revocation_diagnosis("crl-expired")))
    elif this_update > files.now:
        checks.append(Check(f"{rel} current", "fail", f"its thisUpdate is {_when(this_update, files.now)}: everyone "
                            "will be refused until then", revocation_diagnosis("crl-not-yet-valid")))
    elif next_update is not None and next_update - files.now <= CRL_WARNING:
        checks.append(Check(f"{rel} current", "warn", f"its nextUpdate is {_when(next_update, files.now)}: sign it "
                            "again before then (mqtt-pki-lab crl DIR --refresh), or every client will be refused"))
    else:
        until = _when(next_update, files.now) if next_update is not None else "never (no nextUpdate)"
        checks.append(Check(f"{rel} current", "pass", f"CRL number {crl_number(copy)}, signed by the lab's CA, next "
                                                       f"update {until}, {len(index)} revoked"))
    for client in files.clients:
        cert = files.certs.get(client.file("crt"))
        entry = revoked_entry(copy, cert, index) if cert is not None else None
        if entry is not None:
            checks.append(Check(f"{_who(client)} revoked", "pass", f"on {rel} since {entry.date:%Y-%m-%d %H:%M} UTC "
                                f"(reason {entry.reason}): the broker must refuse it"))
    return checks


# --- all of them ------------------------------------------------------------------------------------------

# --- 13. a CA rotation under way (day two: steps 16-18) -----------------------------------------------------

def _root_of(files: LabFiles, cert: x509.Certificate | None) -> str:
    """``new``, ``old``, ``other`` or ``missing``: which root of a rotation signed ``cert``."""
    if cert is None:
        return "missing"
    if files.next_root is not None and files.issued_by(cert, files.next_root):
        return "new"
    old = files.certs.get(L.CA_CERT)
    return "old" if old is not None and files.issued_by(cert, old) else "other"


def check_rotation(files: LabFiles) -> list[Check]:
    """During a CA rotation (``ca-next/`` exists): per side, which root signed its certificate and which roots
    its ``ca.crt`` holds. A side still depending on the old root is a warning (it works during the overlap, and
    ``rotate DIR finish`` is refused until it is re-issued); a side that would refuse the other side's new-root
    certificate fails in :func:`check_trust` ("still trusts only the old root")."""
    new = files.next_root
    if new is None:
        return []
    from .crl import revoked_clients

    old, revoked = files.certs.get(L.CA_CERT), set(revoked_clients(files.root))
    checks = []
    moved = 0
    for role in files.sides:
        mine = _root_of(files, files.certs.get(role.file("crt")))
        moved += mine == "new"
        trusts = ["new" if a == new else "old" if a == old else "other" for a in files.anchors(role.file("trust"))]
        why = [f"its certificate is signed by the {mine} root"] if mine != "new" else []
        why += ["it still trusts only the old root"] if "new" not in trusts else []
        if why and role not in revoked:
            checks.append(Check(f"{_who(role)} depends on the old root", "warn",
                                f"{'; '.join(why)} (ca.crt: {' + '.join(trusts) or 'nothing'}): re-issue it before "
                                f"the old root is retired: mqtt-pki-lab rotate DIR reissue {role.name}"))
    waiting = len(checks)
    checks.insert(0, Check("CA rotation under way", "pass",
                           f"new root '{display_name(new.subject)}' in {L.NEXT_CA_FOLDER}/; {moved} of "
                           f"{len(files.sides)} certificates signed by it; {waiting} side{'s' * (waiting != 1)} "
                           f"still depend{'s' * (waiting == 1)} on the old root"))
    return checks


def check_device_rotation(files: LabFiles, devices: dict[Role, L.Side]) -> list[Check]:
    """The devices whose own files were given (``verify --device``) during a CA rotation: a device whose
    ``ca.crt`` lacks the new root refuses a broker re-issued under it ("still trusts only the old root")."""
    new = files.next_root
    if new is None:
        return []
    checks = []
    broker_new = _root_of(files, files.certs.get(L.SERVER_CERT)) == "new"
    for role, side in devices.items():
        try:
            anchors = load_certificates(side.ca)
        except LabError:
            continue
        if role.kind != "client" or new in anchors:
            continue
        name = f"{_who(role)}'s device depends on the old root"
        if broker_new:
            checks.append(Check(name, "fail", f"{side.ca} still trusts only the old root, and the broker presents "
                                              "a certificate of the new one",
                                _old_trust_only(role.file("trust"), role, L.SERVER_CERT, new)))
        else:
            checks.append(Check(name, "warn", f"{side.ca} still trusts only the old root: install the bundle "
                                              f"({role.folder}/ca.crt) before the broker is re-issued"))
    return checks


CheckFunction = Callable[..., list[Check]]
#: The checks, in the order a handshake would trip over their problems.
CHECKS: tuple[CheckFunction, ...] = (check_files, check_key_pairs, check_trust, check_copies, check_validity,
                                     check_roles, check_name, check_ca_profile, check_chain, check_strength,
                                     check_secrets, check_device_keys, check_revocation,
                                     check_rotation)


def run_checks(files: LabFiles, hostname: str = "localhost") -> list[Check]:
    """Run every check on loaded files; the first failing check's diagnosis is the most specific one."""
    results: list[Check] = []
    for check in CHECKS:
        results += check(files, hostname) if check is check_name else check(files)
    return results
