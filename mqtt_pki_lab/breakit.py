"""Break it on purpose: a catalogue of the ways a working PKI goes wrong, for students to diagnose.

Each :class:`Scenario` copies a working lab folder and breaks it in one way a real deployment breaks:
the client trusts the wrong CA, a certificate expired, the broker's certificate lacks the name the
client dials, the CA was made again after the leaves were signed... The broken files are made with the
package's own builders (:func:`~mqtt_pki_lab.ca.create_ca_certificate`, :func:`~mqtt_pki_lab.sign.sign_csr`,
the profile's extensions), so they differ from good ones in exactly one respect.

>>> break_lab("pki", "client-trusts-wrong-ca", "broken")   # doctest: +SKIP
>>> print(verify_lab("broken").diagnosis)                  # doctest: +SKIP

A student runs ``mqtt-pki-lab verify broken`` (or a real broker and client) and explains the failure;
each scenario carries the diagnosis it expects, and the tests check that ``verify`` gives exactly that.

Before the diagnosis comes the evidence: :func:`raw_errors` gathers what a user would see of a broken copy,
in the tools' own words and nothing else: the error each side of the in-memory handshake raised or was
told (OpenSSL's reason strings), and the output of ``openssl verify -x509_strict`` for each certificate.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import ssl
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from . import diagram as L
from .ca import create_ca_certificate
from .certificates import common_name, issue
from .crl import refresh_crl, revoke
from .csr import create_csr
from .diagram import Role
from .errors import InputError, RefusedError
from .files import LabLock, check_lab_path, read_bytes, write_atomic
from .handshake import handshake_contexts
from .keys import PrivateKey, generate_key, is_encrypted_key_pem, key_type_of, load_private_key, save_key
from .pem import load_certificate, load_csr, save_pem
from .profile import Validity, ca_extensions, leaf_extensions, leaf_names, validity
from .sign import csr_names, sign_csr
from .steps import Lab, discover_roles, has_intermediate, key_on_device
from .tlscontext import broker_context, client_context
from .verify import verify_lab

if TYPE_CHECKING:
    from .diagnose import Diagnosis
    from .handshake import HandshakeResult
    from .verify import VerifyReport

#: The name of the CA that is *not* the lab's: a foreign CA, made with the same API as the real one.
FOREIGN_CA_NAME = "Foreign Root CA"
#: A name the broker's certificate is issued for in place of the name the client connects to.
OTHER_SERVER_NAME = "mqtt.example.com"


@dataclass(frozen=True)
class Expected:
    """The diagnosis ``verify`` must give for a scenario."""

    code: str
    """:attr:`Diagnosis.code <mqtt_pki_lab.diagnose.Diagnosis.code>` of the overall diagnosis."""
    arrow: int
    """The arrow of the diagram at fault."""
    file: str
    """The file at fault, relative to the lab folder."""
    phrase: str
    """Words the diagnosis text contains."""
    handshake: str | None
    """The code of the handshake's own diagnosis (from OpenSSL's words alone), or None when the
    handshake still passes (the problem is not one TLS can see)."""
    intended: bool = False
    """True when the refusal is what the lab asked for (a client on the revocation list, step 11): ``verify``
    then *passes* ("refused, as it must be") and the diagnosis is that of the refused client's handshake."""

    def for_client(self, client: Role) -> Expected:
        """The same expectation when the scenario breaks a further client (``clients/NAME/``) instead."""
        if client == L.FIRST_CLIENT:
            return self
        prefix = f"{L.FIRST_CLIENT_FOLDER}/"
        file = client.folder + "/" + self.file[len(prefix):] if self.file.startswith(prefix) else self.file
        phrase = self.phrase.replace("client does not", f"{client.label} does not")
        return replace(self, file=file, phrase=phrase)

    def judged(self, report: VerifyReport) -> tuple[Diagnosis | None, HandshakeResult | None]:
        """The diagnosis and the handshake of ``report`` this expectation is compared with: verify's own, or,
        for an :attr:`intended` refusal, the refused client's handshake and its diagnosis."""
        if not self.intended:
            return report.diagnosis, report.handshake
        refused = next((r for role, r, _ in report.handshakes if report.refused_as_revoked(role, r)), None)
        return (refused.diagnosis if refused is not None else None), refused

    def mismatches(self, report: VerifyReport) -> list[str]:
        """How ``report`` differs from this expectation (empty when verify diagnosed it exactly)."""
        diagnosis, handshake = self.judged(report)
        found = ([] if report.ok else ["verify failed"]) if self.intended else \
            ([] if not report.ok else ["verify passed"])
        if diagnosis is None:
            return [*found, "no diagnosis"]
        for what, want, got in (("code", self.code, diagnosis.code), ("arrow", self.arrow, diagnosis.arrow),
                                ("file", self.file, diagnosis.file)):
            if want != got:
                found.append(f"{what} {got!r} instead of {want!r}")
        if self.phrase not in str(diagnosis):
            found.append(f"the diagnosis does not say {self.phrase!r}")
        got_handshake = None if handshake is None or handshake.ok or handshake.diagnosis is None \
            else handshake.diagnosis.code
        if (handshake is None or not handshake.ok) and self.handshake is None:
            found.append("the handshake failed")
        elif got_handshake != self.handshake:
            found.append(f"handshake diagnosis {got_handshake!r} instead of {self.handshake!r}")
        return found


class _Work:
    """The lab copy being broken, with its files loaded on demand; ``client`` is the client it breaks."""

    def __init__(self, root: Path, passphrase: bytes | None, client: Role = L.FIRST_CLIENT) -> None:
        self.root = root
        self.passphrase = passphrase
        self.client = client

    def file(self, slot: str, kind: str = "client") -> L.LabFile:
        """The file in ``slot`` of the broker or of the broken client (``clients/NAME/client.crt``)."""
        return (L.BROKER if kind == "broker" else self.client).file(slot)

    def key(self, file: L.LabFile) -> PrivateKey:
        return load_private_key(file.path(self.root), self.passphrase)

    def save_key(self, key: PrivateKey, file: L.LabFile) -> None:
        """Replace a key, encrypted with the passphrase when the key it replaces was (0600 either way)."""
        path = file.path(self.root)
        save_key(key, path, self.passphrase if path.exists() and _encrypted(path) else None)

    def cert(self, file: L.LabFile) -> x509.Certificate:
        return load_certificate(file.path(self.root))

    def csr(self, file: L.LabFile) -> x509.CertificateSigningRequest:
        return load_csr(file.path(self.root))

    def key_type(self) -> str:
        """The key type the lab was built with (read from client.key), to make look-alike keys."""
        return key_type_of(self.key(self.file("key"))) or "ec-p256"

    def ca_name(self) -> str:
        return common_name(self.cert(L.CA_CERT)) or "MQTT Lab Root CA"

    def save_cert(self, cert: x509.Certificate, *files: L.LabFile) -> None:
        for file in files:
            save_pem(cert, file.path(self.root))

    def hand_out(self) -> None:
        """Arrow 9 again, for every side: copy ca/ca.crt to the broker and each client."""
        Lab(self.root).run("hand-out")
        for client in discover_roles(self.root).clients[1:]:
            Lab(self.root).run("hand-out", client)


def _encrypted(path: Path) -> bool:
    return is_encrypted_key_pem(read_bytes(path))


def careless_issue(csr: x509.CertificateSigningRequest, ca_cert: x509.Certificate, ca_key: PrivateKey, kind: str,
                   *, names: list[str] | None = None, not_before: dt.datetime | None = None, days: int = 30
                   ) -> x509.Certificate:
    """Sign ``csr`` with the profile of ``kind`` as :func:`~mqtt_pki_lab.sign.sign_csr` does, but with the
    names and the validity window forced: what a careless (or broken) CA would do.

    ``not_before`` in the past with few ``days`` makes an expired certificate; in the future, one not
    yet valid. ``names`` replaces the names the CSR asks for.
    """
    asked = csr_names(csr)
    san = names if names is not None else leaf_names(kind, asked)
    window = validity(days, now=(not_before or dt.datetime.now(dt.timezone.utc)))
    return issue(csr.public_key(), (names or asked)[0], issuer=ca_cert, signing_key=ca_key,  # type: ignore[arg-type]
                 extensions=leaf_extensions(kind, san, csr.public_key()), window=window)


def foreign_ca(key_type: str = "ec-p256", name: str = FOREIGN_CA_NAME) -> tuple[PrivateKey, x509.Certificate]:
    """A CA that is not the lab's: its own key and self-signed certificate, made with the lab's API."""
    key = generate_key(key_type)
    return key, create_ca_certificate(key, name)


def _ca_with(work: _Work, change: Callable[[x509.ExtensionType, bool], tuple[x509.ExtensionType, bool]]
             ) -> x509.Certificate:
    """Re-make ca.crt with the same key, name and window, one extension changed by ``change``."""
    old, key = work.cert(L.CA_CERT), work.key(L.CA_KEY)
    window = Validity(old.not_valid_before_utc, old.not_valid_after_utc)
    extensions = [change(extension, critical) for extension, critical in ca_extensions(key.public_key())]
    return issue(key.public_key(), old.subject, issuer=None, signing_key=key, extensions=extensions, window=window)


# --- the breakers: each changes the lab copy in one way --------------------------------------------------

def _trust_foreign(kind: str) -> Callable[[_Work], None]:
    def breaker(work: _Work) -> None:
        _, cert = foreign_ca(work.key_type())
        work.save_cert(cert, work.file("trust", kind))
    return breaker


def _client_cert_from_foreign_ca(work: _Work) -> None:
    key, ca = foreign_ca(work.key_type())
    work.save_cert(sign_csr(work.csr(work.file("csr")), ca, key, "client"), work.file("crt"))


def _client_without_certificate(work: _Work) -> None:
    work.file("crt").path(work.root).unlink()


def _client_key_made_again(work: _Work) -> None:
    work.save_key(generate_key(work.key_type()), work.file("key"))


def _window(kind: str, start_days: int, days: int) -> Callable[[_Work], None]:
    def breaker(work: _Work) -> None:
        start = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=start_days)
        cert = careless_issue(work.csr(work.file("csr", kind)), work.cert(L.CA_CERT), work.key(L.CA_KEY), kind,
                              not_before=start, days=days)
        work.save_cert(cert, work.file("crt", kind))
    return breaker


def _server_without_name(work: _Work) -> None:
    cert = careless_issue(work.csr(L.SERVER_CSR), work.cert(L.CA_CERT), work.key(L.CA_KEY), "broker",
                          names=[OTHER_SERVER_NAME], days=365)
    work.save_cert(cert, L.SERVER_CERT)


def _swap_role(source: str, target: str) -> Callable[[_Work], None]:
    """Give ``target`` the certificate and key of ``source`` (a student copying the wrong files)."""
    def breaker(work: _Work) -> None:
        for slot in ("crt", "key"):
            src, dst = work.file(slot, source), work.file(slot, target)
            write_atomic(dst.path(work.root), read_bytes(src.path(work.root)), secret=slot == "key")
    return breaker


def _ca_without_keycertsign(work: _Work) -> None:
    def change(extension: x509.ExtensionType, critical: bool) -> tuple[x509.ExtensionType, bool]:
        if isinstance(extension, x509.KeyUsage):
            return x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                 data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                 crl_sign=True, encipher_only=False, decipher_only=False), critical
        return extension, critical
    work.save_cert(_ca_with(work, change), L.CA_CERT)
    work.hand_out()


def _ca_basic_constraints_not_critical(work: _Work) -> None:
    def change(extension: x509.ExtensionType, critical: bool) -> tuple[x509.ExtensionType, bool]:
        return extension, (False if isinstance(extension, x509.BasicConstraints) else critical)
    work.save_cert(_ca_with(work, change), L.CA_CERT)
    work.hand_out()


def _weak_server_key(work: _Work) -> None:
    # The lab's own CA refuses to certify an RSA-1024 key: this is a careless CA at work.
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    names = csr_names(work.csr(L.SERVER_CSR))
    csr = create_csr(key, "broker", names)
    work.save_key(key, L.SERVER_KEY)
    save_pem(csr, L.SERVER_CSR.path(work.root))
    work.save_cert(careless_issue(csr, work.cert(L.CA_CERT), work.key(L.CA_KEY), "broker", days=365), L.SERVER_CERT)


def _ca_made_again(work: _Work) -> None:
    # Arrows 1, 2 and 9 again, with the same name and key type: the leaves still name this CA as their
    # issuer, but the new ca.key did not sign them.
    key = generate_key(work.key_type())
    cert = create_ca_certificate(key, work.ca_name())
    work.save_key(key, L.CA_KEY)
    work.save_cert(cert, L.CA_CERT)
    work.hand_out()


def settle_rotation(copy: Path, passphrase: bytes | None = None) -> bool:
    """Complete the CA rotation a *copy* of a lab is in the middle of (True), or do nothing (False).

    revoke, crl --refresh and renew are refused during a rotation (this version signs the lists again only when
    it finishes), so a mystery made from a lab mid-rotation first completes the copy's rotation: every side
    re-issued by the new root (a device that holds its key: from its CSR, the copy the lab keeps), then the old
    root retired. Only ever called on a copy; the student's own lab is never touched."""
    from .rotate import finish_rotation, reissue, rotating, rotation_status

    if not rotating(copy):
        return False
    reissue(copy, password=passphrase)
    for side in rotation_status(copy).waiting:
        if side.on_device:
            reissue(copy, [side.role.name], csr=side.role.file("csr").path(copy), password=passphrase)
    finish_rotation(copy, password=passphrase)
    return True


def _client_revoked(work: _Work) -> None:
    # Day two, step 11: the CA revoked this client (a stolen device, or the wrong name typed) and handed the
    # list to the broker, as `mqtt-pki-lab revoke` does.
    settle_rotation(work.root, work.passphrase)
    revoke(work.root, work.client.name, reason="keyCompromise", password=work.passphrase)


def _crl_stale(work: _Work) -> None:
    # Step 11 done once, then never again: the list was signed 31 days ago for 30 days (the lab's default), so
    # its nextUpdate passed yesterday. A list signed then cannot record a later revocation: refresh_crl dates
    # such an entry at the list's own thisUpdate. Every client is refused anyway.
    settle_rotation(work.root, work.passphrase)
    signed = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=31)
    refresh_crl(work.root, next_update_days=30, password=work.passphrase, now=signed)


def _client_misses_new_root(work: _Work) -> None:
    # Day two, steps 16-17: a CA rotation started (a bundle of both roots handed out) and every certificate was
    # re-issued under the new root; but this client's ca.crt is the old root alone (a device that never got the
    # bundle, or an old backup copied back).
    from .rotate import reissue, rotating, start_rotation

    if not rotating(work.root):  # a copy of a lab in the middle of its own rotation carries on with it
        start_rotation(work.root, password=work.passphrase)
    reissue(work.root, password=work.passphrase)
    write_atomic(work.file("trust").path(work.root), read_bytes(L.CA_CERT.path(work.root)), secret=False)


def _ca_key_leaked(work: _Work) -> None:
    leaked = work.root / "broker" / "ca.key"
    write_atomic(leaked, read_bytes(L.CA_KEY.path(work.root)), secret=True)


# --- a chain of three (notebook 11): the intermediate left out of the chain, or put where the root belongs ------

def _leaf_alone(work: _Work, file: L.LabFile) -> None:
    """Write the first certificate of ``file`` (the leaf) back alone: what ``openssl x509 -req -out`` writes, or
    what a deployment copies when it takes only the first PEM block."""
    work.save_cert(work.cert(file), file)


def _server_without_intermediate(work: _Work) -> None:
    # Arrow 5 done by hand on a chain of three: `openssl x509 -req -CA intermediate.crt ... -out server.crt` writes
    # the leaf alone, and nobody appended intermediate.crt. The broker presents a leaf no client can link to the
    # root it trusts.
    _leaf_alone(work, L.SERVER_CERT)


def _intermediate_trusted_by_broker(work: _Work) -> None:
    # "The intermediate signed the client, so the broker must trust the intermediate": broker/ca.crt holds the
    # intermediate alone in place of the root, and client.crt the leaf alone. A partial-chain verifier (Python 3.13's
    # default context, this lab's in-memory handshake) takes any certificate of its CA file as an anchor and accepts
    # it; OpenSSL's default (mosquitto, `openssl verify`) does not (X509_V_FLAG_PARTIAL_CHAIN is off).
    work.save_cert(work.cert(L.INTERMEDIATE.file("crt")), L.BROKER.file("trust"))
    _leaf_alone(work, L.FIRST_CLIENT.file("crt"))


@dataclass(frozen=True)
class Scenario:
    """One way to break a working PKI, and the diagnosis ``verify`` must give for it."""

    id: str
    title: str
    breaks: str
    """What it breaks, as it would happen in real life."""
    expected: Expected
    breaker: Callable[[_Work], None]

    #: True when the scenario breaks a client's files (any client of the lab can be chosen).
    per_client: bool = False
    #: True when the scenario breaks a chain of three: it needs a lab built with ``--intermediate`` (``break_lab``
    #: refuses a one-level lab for it, in one line).
    chain: bool = False
    one_level: bool = False
    """True when the scenario needs a lab without an intermediate CA (a CA rotation: refused on a chain lab)."""

    def fits(self, src: str | Path) -> bool:
        """True when this scenario can break the lab ``src``: any lab; a :attr:`chain` scenario only a lab with an
        intermediate CA (:func:`~mqtt_pki_lab.steps.has_intermediate`), a :attr:`one_level` one only a lab without."""
        chained = has_intermediate(src)
        return not (self.chain and not chained) and not (self.one_level and chained)

    def apply(self, src: str | Path, out: str | Path, passphrase: bytes | None = None,
              client: str | None = None) -> Path:
        """Copy the working lab ``src`` to ``out`` (which must not exist) and break the copy."""
        return break_lab(src, self, out, passphrase, client=client)

    def __str__(self) -> str:
        return f"{self.id}: {self.title}"


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("client-trusts-wrong-ca", "the client trusts the wrong CA",
             "client/ca.crt is the certificate of another CA (a copy from another course, another project).",
             Expected("untrusted-issuer", 9, "client/ca.crt", "client does not trust", "untrusted-issuer"),
             _trust_foreign("client"), per_client=True),
    Scenario("broker-trusts-wrong-ca", "the broker trusts the wrong CA",
             "broker/ca.crt is the certificate of another CA, so the broker cannot check the client.",
             Expected("untrusted-issuer", 9, "broker/ca.crt", "broker does not trust", "untrusted-issuer"),
             _trust_foreign("broker")),
    Scenario("client-cert-foreign-ca", "the client's certificate comes from a foreign CA",
             f"client.csr was signed by '{FOREIGN_CA_NAME}', not by the lab's ca.key.",
             Expected("foreign-issuer", 8, "client/client.crt", FOREIGN_CA_NAME, "untrusted-issuer"),
             _client_cert_from_foreign_ca, per_client=True),
    Scenario("client-no-certificate", "the client presents no certificate",
             "client/client.crt is missing (arrow 8 never done): the client connects without a certificate.",
             Expected("no-client-cert", 8, "client/client.crt", "no certificate", "no-client-cert"),
             _client_without_certificate, per_client=True),
    Scenario("key-mismatch", "the client's key and certificate do not belong together",
             "client.key was generated again (arrow 6 re-run) after client.crt was signed.",
             Expected("key-mismatch", 6, "client/client.key", "does not belong", "key-mismatch"),
             _client_key_made_again, per_client=True),
    Scenario("client-expired", "the client's certificate has expired",
             "client.crt was valid for 30 days, a year ago.",
             Expected("expired", 8, "client/client.crt", "expired", "expired"),
             _window("client", start_days=-400, days=30), per_client=True),
    Scenario("server-not-yet-valid", "the broker's certificate is not valid yet",
             "server.crt's validity starts in 30 days (a CA whose clock is ahead).",
             Expected("not-yet-valid", 5, "broker/server.crt", "not valid yet", "not-yet-valid"),
             _window("broker", start_days=30, days=365)),
    Scenario("server-name-missing", "the broker's certificate lacks the name the client connects to",
             f"server.crt's SAN lists only {OTHER_SERVER_NAME}: the CA wrote other names than the "
             "ones server.csr asked for (`openssl x509 -req` copies none "
             "from a CSR unless told to: the CA writes each itself).",
             Expected("name-mismatch", 5, "broker/server.crt", "does not list", "name-mismatch"),
             _server_without_name),
    Scenario("server-cert-as-client", "the broker's certificate used as the client's",
             "client/client.crt and client.key are copies of the broker's server.crt and server.key.",
             Expected("wrong-purpose", 8, "client/client.crt", "clientAuth", "wrong-purpose"),
             _swap_role("broker", "client"), per_client=True),
    Scenario("client-cert-as-server", "the client's certificate used as the broker's",
             "broker/server.crt and server.key are copies of the client's client.crt and client.key.",
             Expected("wrong-purpose", 5, "broker/server.crt", "serverAuth", "wrong-purpose"),
             _swap_role("client", "broker")),
    Scenario("ca-without-keycertsign", "the CA certificate may not sign certificates",
             "ca.crt was made again with the same key but without keyUsage keyCertSign, and handed out.",
             Expected("ca-profile", 2, "ca/ca.crt", "keyCertSign", "ca-profile"),
             _ca_without_keycertsign),
    Scenario("ca-basic-constraints-not-critical", "the CA's basicConstraints is not critical",
             "ca.crt was made again with basicConstraints CA:TRUE not marked critical, and handed out.",
             Expected("ca-profile", 2, "ca/ca.crt", "critical", "ca-profile"),
             _ca_basic_constraints_not_critical),
    Scenario("weak-rsa-key", "the broker's key is RSA 1024",
             "server.key is a 1024-bit RSA key (server.csr and server.crt made from it, properly signed).",
             Expected("weak-key", 3, "broker/server.key", "1024", "weak-key"),
             _weak_server_key),
    Scenario("ca-regenerated", "the CA was made again after the certificates were signed",
             "ca.key and ca.crt were generated again (same name) and handed out; server.crt and client.crt "
             "were signed by the old ca.key: every certificate is orphaned.",
             Expected("orphaned", 2, "ca/ca.crt", "orphaned", "untrusted-issuer"),
             _ca_made_again),
    Scenario("ca-key-leaked", "ca.key was copied into the broker's folder",
             "broker/ca.key is a copy of the CA's secret key: whoever reads the broker's folder can now sign "
             "certificates for anyone. The handshake still works; the PKI is compromised.",
             Expected("secret-leak", 1, "broker/ca.key", "ca.key", None),
             _ca_key_leaked),
    # Day two (notebook 10): the revocation list, step 11.
    Scenario("client-revoked", "the client's certificate is on the revocation list",
             "the CA revoked client.crt (reason keyCompromise: `mqtt-pki-lab revoke DIR client`) and the broker "
             "checks broker/crl.pem; the client's files are unchanged and still valid.",
             Expected("revoked", 11, "client/client.crt", "revocation list", "revoked", intended=True),
             _client_revoked, per_client=True),
    Scenario("crl-stale", "the revocation list is past its nextUpdate",
             "broker/crl.pem was signed 31 days ago for 30 days and never signed again (`mqtt-pki-lab crl DIR "
             "--refresh`): its nextUpdate passed yesterday.",
             Expected("crl-expired", 11, "broker/crl.pem", "EVERY client", "crl-expired"),
             _crl_stale),
    # Day two: a CA rotation (steps 16-18).
    Scenario("client-trusts-old-root", "the client does not yet trust the new root",
             "a CA rotation is under way: every certificate was re-issued by the new root (ca-next/), but "
             "client/ca.crt still holds only the old root, not the bundle of both.",
             Expected("rotation-old-trust", 16, "client/ca.crt", "still trusts only the old root",
                      "untrusted-issuer"),
             _client_misses_new_root, per_client=True, one_level=True),
    # A chain of three (notebook 11, a lab built with --intermediate): where the intermediate's certificate goes.
    Scenario("server-without-intermediate", "the broker presents its certificate without the intermediate",
             "broker/server.crt holds the leaf alone (made by hand with `openssl x509 -req -CA intermediate.crt`, "
             "which writes the leaf only, and intermediate.crt never appended): no client can link it to the root "
             "its ca.crt holds.",
             Expected("missing-chain", 5, "broker/server.crt", "unable to get local issuer certificate",
                      "missing-chain"),
             _server_without_intermediate, chain=True),
    Scenario("intermediate-in-broker-trust", "the broker trusts the intermediate instead of the root",
             "broker/ca.crt holds the intermediate CA's certificate in place of the root, and client/client.crt the "
             "leaf alone: the intermediate was put where the trust anchor belongs instead of into the chain. Python's "
             "partial-chain check accepts that; mosquitto refuses every client.",
             Expected("intermediate-in-trust", 9, "broker/ca.crt", "root alone", None),
             _intermediate_trusted_by_broker, chain=True),
)
SCENARIO_BY_ID: dict[str, Scenario] = {s.id: s for s in SCENARIOS}


def get_scenario(scenario: str | Scenario) -> Scenario:
    """A scenario by id, with the list of ids when there is no such scenario."""
    if isinstance(scenario, Scenario):
        return scenario
    try:
        return SCENARIO_BY_ID[scenario]
    except KeyError:
        raise InputError("SCENARIO", f"unknown scenario {scenario!r}; choose one of: "
                                     f"{', '.join(SCENARIO_BY_ID)}") from None


#: The prefix of the folder a broken copy is made in before it takes its name.
WORK_PREFIX = ".mqtt-pki-lab-break."


def _check_source(src: Path) -> None:
    """A complete, working lab with no symbolic link anywhere in it (a link could point into another lab)."""
    if not src.is_dir():
        raise InputError(src, "no such lab folder; build one first: mqtt-pki-lab build DIR")
    for folder, dirs, names in os.walk(src):
        for name in [*dirs, *names]:
            if os.path.islink(os.path.join(folder, name)):
                raise InputError(Path(folder, name), "is a symbolic link; break-it copies only real files, so it "
                                                     "can never write into another lab through a link")
    offline = (L.CA_KEY,) if has_intermediate(src) else ()  # a chain's root key may be kept offline
    missing = [f.relpath for f in discover_roles(src).files() if f not in offline and not f.path(src).is_file()
               and not (f.slot == "key" and key_on_device(src, f.role))]  # a key born on its device (notebook 09)
    if missing:
        shown = ", ".join(missing[:4]) + (f" and {len(missing) - 4} more" if len(missing) > 4 else "")
        raise InputError(src, f"not a complete lab (missing {shown}); the catalogue breaks a working PKI: run "
                              "mqtt-pki-lab build first")


def remove_stale_work(parent: Path) -> list[str]:
    """Delete the half-made copies that killed ``break`` runs left in ``parent`` (they hold keys)."""
    import fcntl

    removed = []
    for path in parent.glob(WORK_PREFIX + "*"):
        if not path.is_dir() or path.is_symlink():
            continue
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held by a break that is still running: leave it
        except BlockingIOError:
            continue
        finally:
            os.close(fd)
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path.name)
    return removed


def break_lab(src: str | Path, scenario: str | Scenario, out: str | Path, passphrase: bytes | None = None,
              *, client: str | None = None) -> Path:
    """Copy the working lab ``src`` to ``out`` and break the copy as ``scenario`` says; return ``out``.

    ``out`` must not exist: the catalogue never changes an existing folder, and never the source lab
    (which must hold no symbolic link). The copy keeps every file's permissions (keys stay 0600) and
    is made in a private folder next to ``out`` (``.mqtt-pki-lab-break.*``, mode 0700), then renamed into
    place, so a failure leaves nothing half-broken behind; a copy left by a killed run is removed by the
    next one. ``passphrase`` unlocks an encrypted ``ca.key``. ``client`` names the client to break (for
    the scenarios that break a client; default: the first client, ``client/``).
    """
    import fcntl

    scenario = get_scenario(scenario)
    src, out = check_lab_path(src, "DIR"), check_lab_path(out, "OUT")
    if out.exists() or out.is_symlink():
        raise RefusedError(out, "already exists; the catalogue writes a new folder and never changes an "
                                "existing one: choose a new name")
    _check_source(src)
    if not scenario.fits(src):
        if scenario.chain:
            raise InputError(src, f"has no intermediate CA, and {scenario.id} breaks a chain of three: break a lab "
                                  "built with mqtt-pki-lab build DIR --intermediate")
        raise InputError(src, f"has an intermediate CA, and {scenario.id} breaks a CA rotation, which the lab does "
                              "on one-level labs only: break a lab built without --intermediate")
    target = L.FIRST_CLIENT
    if client is not None:
        if not scenario.per_client:
            raise InputError("--client", f"{scenario.id} breaks the broker or the CA, not a client")
        found = discover_roles(src).client(client)
        if found is None:
            raise InputError("--client", f"{src} has no client called {client!r}")
        target = found
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise InputError(parent, "no such folder to create the broken lab in")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(parent, "this folder is not writable; put the broken copy somewhere you can write")
    if out.resolve().is_relative_to(src.resolve()):
        raise InputError(out, f"is inside the lab {src}; put the broken copy next to it, not in it")
    remove_stale_work(parent)
    try:
        work_dir = Path(tempfile.mkdtemp(prefix=f"{WORK_PREFIX}{out.name}.", dir=parent))
    except OSError as exc:
        raise InputError(parent, f"cannot create the broken copy here ({exc.strerror})") from None
    fd = os.open(work_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # tells a later run that this copy is still being made
        root = work_dir / "lab"
        try:
            with LabLock(src):  # no command is writing to the source while it is copied
                shutil.copytree(src, root, symlinks=True)  # copy2 keeps modes: keys stay 0600
        except OSError as exc:
            raise InputError(getattr(exc, "filename", None) or src, f"cannot copy the lab ({exc})") from None
        scenario.breaker(_Work(root, passphrase, target))
        root.rename(out)
    finally:
        os.close(fd)
        shutil.rmtree(work_dir, ignore_errors=True)
    return out


@dataclass(frozen=True)
class Outcome:
    """One scenario of the catalogue, broken and verified: what verify said, and whether it was expected."""

    scenario: Scenario
    folder: Path
    report: VerifyReport

    @property
    def mismatches(self) -> list[str]:
        """How verify's answer differs from the expected diagnosis (empty when it is exactly right)."""
        return self.scenario.expected.mismatches(self.report)

    @property
    def diagnosis(self) -> Diagnosis | None:
        """verify's diagnosis (for a revoked client: the refused handshake's, as verify passes)."""
        return self.scenario.expected.judged(self.report)[0]

    def __str__(self) -> str:
        verdict = "as expected" if not self.mismatches else "UNEXPECTED: " + "; ".join(self.mismatches)
        return f"{self.scenario.id}: {verdict}\n  {self.diagnosis}"


def scenarios_for(src: str | Path) -> tuple[Scenario, ...]:
    """The scenarios of the catalogue that can break the lab ``src`` (:meth:`Scenario.fits`): a one-level lab
    leaves out the :attr:`~Scenario.chain` scenarios, a chain lab the :attr:`~Scenario.one_level` ones."""
    return tuple(s for s in SCENARIOS if s.fits(src))


def run_catalogue(src: str | Path, work_dir: str | Path, hostname: str = "localhost",
                  passphrase: bytes | None = None, scenarios: tuple[Scenario, ...] | None = None) -> list[Outcome]:
    """Break ``src`` in every way of the catalogue that fits it (:func:`scenarios_for`; or each of
    ``scenarios``), one folder per scenario in ``work_dir``, which must exist, and verify each copy: the
    teacher's answer key, and the test of the diagnoses."""
    outcomes = []
    for scenario in scenarios_for(src) if scenarios is None else scenarios:
        folder = break_lab(src, scenario, Path(work_dir) / scenario.id, passphrase)
        outcomes.append(Outcome(scenario, folder, verify_lab(folder, hostname, passphrase)))
    return outcomes


def catalogue() -> str:
    """The catalogue as text: one line per scenario, with what it breaks."""
    width = max(len(s.id) for s in SCENARIOS)
    return "\n".join(f"{s.id:<{width}}  {s.title}" + (" (a lab built with --intermediate)" if s.chain else
                                                       " (a lab without an intermediate)" if s.one_level else "")
                     for s in SCENARIOS)



# --- the evidence: what a user sees of a broken lab, before anybody diagnoses it --------------------------

#: ``openssl verify`` runs for each side: the certificate a side presents, checked against the *other*
#: side's ``ca.crt`` with the purpose the other side requires (``-purpose sslserver``: extendedKeyUsage
#: serverAuth; ``sslclient``: clientAuth), strict as Python 3.13 (``-x509_strict``).
VERIFY_RUNS: tuple[tuple[str, str, str], ...] = (
    ("broker/server.crt", "client/ca.crt", "sslserver"),
    ("client/client.crt", "broker/ca.crt", "sslclient"),
)
_SOURCE_LINE = re.compile(r"\s*\(_ssl\.c:\d+\)$")


@dataclass(frozen=True)
class SideError:
    """What one side of the connection said, in OpenSSL's words (or None when it had nothing to say)."""

    side: str
    """``broker`` or ``client``."""
    words: str | None
    """OpenSSL's error, as the side's log would print it; None when this side saw no error."""
    role: str
    """How the side came to it: ``refused`` (it checked the other side and said no), ``was told`` (it
    received the other side's alert), ``cannot start`` (it failed on its own files before talking), or,
    when ``words`` is None, why it saw no error (``no error``, ``no error: the broker never started...``)."""

    def __str__(self) -> str:
        if self.words is None:
            return f"{self.side}: {self.role}"
        return f"{self.side} ({self.role}): {self.words}"


@dataclass(frozen=True)
class VerifyRun:
    """One ``openssl verify`` command and what it printed (None when openssl is not installed)."""

    command: str
    output: str | None
    exit_code: int | None

    def __str__(self) -> str:
        if self.output is None:
            return f"$ {self.command}\n(openssl is not installed here)"
        return f"$ {self.command}\n{self.output}"


@dataclass(frozen=True)
class RawErrors:
    """The evidence of a broken lab, raw: each side's error from the handshake, and ``openssl verify``.

    Nothing here is interpreted: no arrow, no file at fault, no fix. That is the student's work, and
    :func:`~mqtt_pki_lab.verify.verify_lab`'s afterwards.
    """

    folder: Path
    hostname: str
    client: SideError
    broker: SideError
    verify_runs: tuple[VerifyRun, ...]

    @property
    def handshake_ok(self) -> bool:
        """True when neither side saw an error (the problem, if any, is not one TLS can see)."""
        return self.client.words is None and self.broker.words is None

    def __str__(self) -> str:
        lines = [f"the client connects to {self.hostname!r}", f"  {self.client}", f"  {self.broker}"]
        lines += [line for run in self.verify_runs for line in str(run).splitlines()]
        return "\n".join(lines)


def _exception_words(exc: BaseException) -> str:
    """An exception as Python prints its last line, without the C source position (``_ssl.c:3926``):
    ``ssl.SSLError: [SSL: EE_KEY_TOO_SMALL] ee key too small``."""
    module = type(exc).__module__
    name = type(exc).__name__ if module == "builtins" else f"{module}.{type(exc).__name__}"
    return f"{name}: {_SOURCE_LINE.sub('', str(exc))}"


def handshake_errors(folder: Path, hostname: str = "localhost", password: bytes | str | None = None
                     ) -> tuple[SideError, SideError]:
    """The client's and the broker's errors when the lab's client connects to the lab's broker.

    Each side loads its three files as a real program does (:mod:`~mqtt_pki_lab.tlscontext`, strict as
    Python 3.13): a side that fails on its own files never starts (``cannot start``, with the exception
    Python raises, e.g. ``ssl.SSLError: [X509: KEY_VALUES_MISMATCH] key values mismatch``). Otherwise the
    two run the TLS handshake in memory (:func:`~mqtt_pki_lab.handshake.handshake_contexts`): the side that
    refuses gives OpenSSL's reason, the other side the alert it received. A client without ``client.crt``
    connects without a certificate, as ``mosquitto_pub`` without ``--cert`` would.
    """
    client_side = L.FIRST_CLIENT.side(folder)
    if not client_side.cert.exists():
        client_side = L.Side(client_side.ca, None, None)  # type: ignore[arg-type]
    contexts: dict[str, ssl.SSLContext] = {}
    for side, files, make in (("broker", L.BROKER.side(folder), broker_context),
                              ("client", client_side, client_context)):
        try:
            contexts[side] = make(files, password)
        except (ssl.SSLError, OSError, ValueError) as exc:
            other = "client" if side == "broker" else "broker"
            silent = SideError(other, None, f"no error: the {side} never " + (
                "started, so there was nothing to connect to" if side == "broker" else "sent a byte"))
            failed = SideError(side, _exception_words(exc), "cannot start")
            return (failed, silent) if side == "client" else (silent, failed)
    result = handshake_contexts(contexts["broker"], contexts["client"], hostname)
    if result.ok:
        return SideError("client", None, "no error"), SideError("broker", None, "no error")
    told = result.alert
    refused_by = result.refused_by or "client"
    errors = {refused_by: SideError(refused_by, result.reason, "refused")}
    other = "broker" if refused_by == "client" else "client"
    errors[other] = SideError(other, told, "was told" if told else "no error: it was told nothing")
    return errors["client"], errors["broker"]


def openssl_verify(folder: Path, program: str | None = None) -> tuple[VerifyRun, ...]:
    """Run ``openssl verify -x509_strict -purpose P -CAfile TRUST CERT`` for each side (:data:`VERIFY_RUNS`).

    In a lab with an intermediate CA a side presents its certificate file as a chain (the leaf, then the
    intermediate), and ``openssl verify`` reads only the first certificate of CERT as the one to check: the rest
    of the file is given as ``-untrusted CERT``, the certificates a verifier may use to build the path but not
    trust (without it, even a good chain fails with "unable to get local issuer certificate").
    Run from inside ``folder``, so the command reads as a student would type it there. Without an
    ``openssl`` program the runs come back with ``output`` None. ``openssl verify`` checks signatures,
    dates, purposes and the CA's profile; it does not check the broker's name (that needs
    ``-verify_hostname``), nor whether a certificate matches its key.
    """
    program = program or shutil.which("openssl")
    runs = []
    chain = has_intermediate(folder)
    for cert, trust, purpose in VERIFY_RUNS:
        args = ["verify", "-x509_strict", "-purpose", purpose, *(("-untrusted", cert) if chain else ()),
                "-CAfile", trust, cert]
        command = "openssl " + " ".join(args)
        if program is None:
            runs.append(VerifyRun(command, None, None))
            continue
        runs.append(VerifyRun(command, *run_tool("openssl", program, args, folder, timeout=30)))
    return tuple(runs)


def run_tool(name: str, program: str, args: Sequence[str], folder: str | Path, *, timeout: float
             ) -> tuple[str, int | None]:
    """Run ``program args`` in ``folder`` with no input, as a student would type ``name args`` there.

    Returns what it printed (stdout then stderr, blank lines dropped) and its exit code; when it could not be
    run or did not finish in ``timeout`` seconds, a sentence saying so (naming the tool as ``name``) and None.
    """
    try:
        done = subprocess.run([program, *args], cwd=folder, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"(could not run {name}: {exc})", None
    return "\n".join(line for line in (done.stdout + done.stderr).splitlines() if line.strip()), done.returncode


def raw_errors(folder: str | Path, hostname: str = "localhost", password: bytes | str | None = None
               ) -> RawErrors:
    """What a user sees of the lab in ``folder``: :func:`handshake_errors` and :func:`openssl_verify`."""
    folder = check_lab_path(folder)
    if not folder.is_dir():
        raise InputError(folder, "no such lab folder")
    client, broker = handshake_errors(folder, hostname, password)
    return RawErrors(folder, hostname, client, broker, openssl_verify(folder))
