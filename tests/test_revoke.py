"""Revocation (day-two step 11): ``revoke`` and ``crl`` write a CRL the broker enforces, ``verify`` explains it.

The CRL is checked with the real ``openssl`` too (``openssl crl -CAfile``, ``openssl verify -crl_check``), the
in-memory handshake refuses a revoked client, and every bad input is refused in one line with nothing changed
(the whole folder is hashed before and after, as in ``test_safety.py``). The real brokers are in
``test_mqtt_revoke.py``.
"""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import require_program, run_cli
from cryptography import x509
from test_safety import tree

from mqtt_pki_lab import diagram as L
from mqtt_pki_lab.ca import create_ca_certificate
from mqtt_pki_lab.checks import CRL_WARNING
from mqtt_pki_lab.crl import (
    crl_info,
    crl_number,
    load_crl,
    make_crl,
    refresh_crl,
    revocation_of,
    revoke,
    revoked_certificate,
    revoked_clients,
)
from mqtt_pki_lab.diagnose import classify, diagnose_tls_failure
from mqtt_pki_lab.errors import InputError, RefusedError
from mqtt_pki_lab.export import mosquitto_conf_text
from mqtt_pki_lab.files import LabLock
from mqtt_pki_lab.graph import trust_view
from mqtt_pki_lab.handshake import mutual_tls_handshake
from mqtt_pki_lab.keys import generate_key, load_private_key
from mqtt_pki_lab.options import BuildOptions
from mqtt_pki_lab.pem import load_certificate
from mqtt_pki_lab.profile import CLOCK_SKEW, DEFAULT_NEXT_UPDATE_DAYS
from mqtt_pki_lab.steps import Lab
from mqtt_pki_lab.verify import verify_lab

SENSOR = L.client_role("sensor-2")
CA_CRL, BROKER_CRL = Path("ca/crl.pem"), Path("broker/crl.pem")
NOW = dt.datetime.now(dt.timezone.utc)


@pytest.fixture
def lab(lab_copy: Path) -> Path:
    """A copy of the built lab with a further client, sensor-2 (not revoked yet)."""
    Lab(lab_copy).add_client("sensor-2")
    return lab_copy


def _foreign_crl(ca_name: str) -> bytes:
    """A CRL signed by a CA of this lab's making but not of this lab (``ca_name``: its Common Name)."""
    from cryptography.hazmat.primitives.serialization import Encoding

    key = generate_key()
    return make_crl(create_ca_certificate(key, ca_name), key, [], 1).public_bytes(Encoding.PEM)


# --- the API -------------------------------------------------------------------------------------------------

def test_revoke_writes_the_record_and_the_brokers_copy(lab: Path) -> None:
    result = revoke(lab, "sensor-2", reason="keyCompromise", next_update_days=10)
    assert result.written == ("ca/crl.pem", "broker/crl.pem")
    record, copy = (lab / CA_CRL).read_bytes(), (lab / BROKER_CRL).read_bytes()
    assert record == copy
    assert (lab / CA_CRL).stat().st_mode & 0o777 == 0o644
    crl = load_crl(lab / CA_CRL)
    ca = load_certificate(lab / "ca/ca.crt")
    cert = load_certificate(lab / "clients/sensor-2/client.crt")
    # RFC 5280 §5.2.1 and §5.2.3: authorityKeyIdentifier (the CA's SKI) and cRLNumber.
    aki = crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert crl_number(crl) == 1 and crl.issuer == ca.subject and crl.is_signature_valid(ca.public_key())
    entry = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
    assert entry is not None and len(list(crl)) == 1
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason == x509.ReasonFlags.key_compromise
    # thisUpdate backdated by the lab's clock skew; nextUpdate the days asked for
    assert abs((crl.last_update_utc - (crl.next_update_utc - dt.timedelta(days=10))) + CLOCK_SKEW) \
        < dt.timedelta(seconds=5)
    made = crl.last_update_utc + CLOCK_SKEW  # when revoke ran (NOW is when the module was imported)
    assert abs(made - dt.datetime.now(dt.timezone.utc)) < dt.timedelta(minutes=5)
    assert abs(crl.next_update_utc - made - dt.timedelta(days=10)) < dt.timedelta(seconds=5)
    assert result.revoked is not None and result.revoked.name == "sensor-2"
    assert result.revoked.file == "clients/sensor-2/client.crt" and result.revoked.reason == "keyCompromise"
    text = str(result)
    assert "Revoked clients/sensor-2/client.crt" in text and "CRL number 1" in text and "--refresh" in text


def test_unspecified_reason_writes_no_reason_code_and_the_default_is_30_days(lab: Path) -> None:
    revoke(lab, "sensor-2")
    crl = load_crl(lab / CA_CRL)
    entry = next(iter(crl))
    with pytest.raises(x509.ExtensionNotFound):  # RFC 5280 §5.3.1: absent rather than "unspecified"
        entry.extensions.get_extension_for_class(x509.CRLReason)
    assert DEFAULT_NEXT_UPDATE_DAYS == 30
    made = dt.datetime.now(dt.timezone.utc)
    assert abs(crl.next_update_utc - made - dt.timedelta(days=30)) < dt.timedelta(minutes=5)


def test_refresh_keeps_the_entries_with_a_new_number_and_dates(lab: Path) -> None:
    revoke(lab, "sensor-2", reason="cessationOfOperation", now=NOW - dt.timedelta(days=3))
    before = load_crl(lab / CA_CRL)
    result = refresh_crl(lab, next_update_days=5)
    after = load_crl(lab / CA_CRL)
    assert crl_number(after) == 2 and result.revoked is None and str(result).startswith("Signed the revocation list")
    assert after.last_update_utc > before.last_update_utc
    assert [(e.serial_number, e.revocation_date_utc) for e in after] == \
        [(e.serial_number, e.revocation_date_utc) for e in before]
    assert (lab / BROKER_CRL).read_bytes() == (lab / CA_CRL).read_bytes()
    revoke(lab, "client")  # a second client: the first entry stays
    assert crl_number(load_crl(lab / CA_CRL)) == 3 and len(list(load_crl(lab / CA_CRL))) == 2


def test_a_list_signed_in_the_past_holds_no_later_revocation_and_days_are_counted_in_words(lab: Path) -> None:
    """A list signed 31 days ago (the stale-list mystery) cannot record a revocation made today: its entries are
    dated no later than the moment it was signed, reason kept. And one day is "1 day", not "1 days"."""
    revoke(lab, "client", reason="keyCompromise")
    signed = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=31)
    info = refresh_crl(lab, next_update_days=30, now=signed).info
    (entry,) = info.entries
    assert entry.date <= signed and entry.reason == "keyCompromise"
    assert crl_info(lab).stale  # today: its nextUpdate passed yesterday
    shown = str(crl_info(lab))
    assert "(1 day ago)" in shown and "1 days" not in shown, shown
    later = refresh_crl(lab, next_update_days=2).info  # signed again today: the entry keeps its date
    assert later.next_update_text.endswith("(in 2 days)") and later.entries[0].date == entry.date


def test_refresh_without_a_list_makes_an_empty_one(lab: Path) -> None:
    assert crl_info(lab) is None
    refresh_crl(lab)
    info = crl_info(lab)
    assert info is not None and info.number == 1 and info.entries == () and not info.stale
    assert verify_lab(lab).ok


def test_the_list_shown_names_the_lab_clients(lab: Path) -> None:
    revoke(lab, "sensor-2", reason="keyCompromise")
    info = crl_info(lab)
    assert info is not None
    text = str(info)
    assert "CRL number   1" in text and "sensor-2 (clients/sensor-2/client.crt)" in text and "keyCompromise" in text
    assert "STALE" not in text


def test_revoked_clients_and_revocation_of(lab: Path) -> None:
    assert revoked_clients(lab) == {} and revocation_of(lab, load_certificate(lab / "client/client.crt")) is None
    revoke(lab, "sensor-2")
    assert list(revoked_clients(lab)) == [SENSOR]
    assert revocation_of(lab, load_certificate(lab / "clients/sensor-2/client.crt")) is not None
    assert revocation_of(lab, load_certificate(lab / "client/client.crt")) is None


def test_a_client_is_found_by_its_mqtt_username_too(tmp_path: Path) -> None:
    root = tmp_path / "pki"
    Lab(root, BuildOptions(client_name="gateway")).build_all()
    assert revoke(root, "gateway").revoked.file == "client/client.crt"  # type: ignore[union-attr]


def test_the_real_openssl_agrees(lab: Path) -> None:
    """``openssl crl -CAfile`` verifies the list; ``openssl verify -crl_check`` refuses the revoked client only."""
    openssl = require_program("openssl")
    revoke(lab, "sensor-2", reason="keyCompromise")
    checked = subprocess.run([openssl, "crl", "-in", str(lab / CA_CRL), "-CAfile", str(lab / "ca/ca.crt"), "-noout"],
                             capture_output=True, text=True)
    assert checked.returncode == 0 and "verify OK" in checked.stdout + checked.stderr
    base = [openssl, "verify", "-x509_strict", "-crl_check", "-CAfile", str(lab / "ca/ca.crt"),
            "-CRLfile", str(lab / BROKER_CRL)]
    good = subprocess.run([*base, str(lab / "client/client.crt")], capture_output=True, text=True)
    bad = subprocess.run([*base, str(lab / "clients/sensor-2/client.crt")], capture_output=True, text=True)
    assert good.returncode == 0, good.stdout + good.stderr
    assert bad.returncode != 0 and "certificate revoked" in bad.stdout + bad.stderr


def test_another_command_holding_the_lab_is_waited_for_by_nobody(lab: Path) -> None:
    before = tree(lab)
    with LabLock(lab), pytest.raises(RefusedError, match="another mqtt-pki-lab command"):
        revoke(lab, "sensor-2")
    assert tree(lab) == before


def test_an_encrypted_ca_key_with_its_passphrase(tmp_path: Path) -> None:
    root = tmp_path / "pki"
    Lab(root, BuildOptions(passphrase=b"s3cret pass")).build_all()
    with pytest.raises(InputError, match="encrypted; give its passphrase"):
        revoke(root, "client")
    assert revoke(root, "client", password="s3cret pass").info.number == 1


# --- proving: the handshake, verify, the trust view, the exported conf ----------------------------------------

def test_the_in_memory_handshake_refuses_the_revoked_client_only(lab: Path) -> None:
    revoke(lab, "sensor-2", reason="keyCompromise")
    assert mutual_tls_handshake(lab).ok
    refused = mutual_tls_handshake(lab, client=SENSOR)
    assert not refused.ok and refused.refused_by == "broker" and "certificate revoked" in (refused.reason or "")
    assert refused.alert == "sslv3 alert certificate revoked"
    assert refused.diagnosis is not None and refused.diagnosis.code == "revoked"
    assert refused.diagnosis.arrow == L.REVOKE_STEP.number == 11
    assert refused.diagnosis.file == "clients/sensor-2/client.crt"
    assert "step 11 (CA: revoke a client's certificate (crl.pem))" in str(refused.diagnosis)


def test_verify_lists_a_revoked_client_and_passes(lab: Path) -> None:
    revoke(lab, "sensor-2", reason="keyCompromise")
    report = verify_lab(lab)
    assert report.ok and report.revoked == {SENSOR}
    text = str(report)
    assert "[pass] client 'sensor-2' revoked: on broker/crl.pem since" in text and "keyCompromise" in text
    assert "[clients/sensor-2] handshake refused, as it must be: certificate verify failed: certificate revoked" in text
    assert text.endswith("1 revoked client is refused, as it must be.")
    assert "[pass] broker/crl.pem current: CRL number 1, signed by the lab's CA" in text
    done = run_cli("verify", str(lab))
    assert done.returncode == 0 and "handshake refused, as it must be" in done.stdout


def test_verify_fails_a_stale_list_before_any_broker_starts(lab: Path) -> None:
    revoke(lab, "sensor-2", next_update_days=1, now=NOW - dt.timedelta(days=2))
    report = verify_lab(lab)
    assert not report.ok
    failed = [c for c in report.failures if c.name == "broker/crl.pem current"]
    assert failed and "everyone will be refused" in failed[0].message
    assert report.diagnosis is not None and report.diagnosis.code == "crl-expired"
    assert report.diagnosis.file == "broker/crl.pem" and report.diagnosis.arrow == 11
    assert "crl DIR --refresh" in report.diagnosis.fix
    # the handshakes say the same thing in OpenSSL's words: every client is refused
    for _, result, _ in report.handshakes:
        assert result is not None and not result.ok and "CRL has expired" in (result.reason or "")
    done = run_cli("verify", str(lab))
    assert done.returncode == 1 and "everyone will be refused" in done.stdout
    shown = run_cli("crl", str(lab))
    assert shown.returncode == 1 and "STALE" in shown.stdout
    refresh_crl(lab)  # the fix that verify names works
    assert verify_lab(lab).ok


def test_verify_warns_a_week_before_the_deadline(lab: Path) -> None:
    revoke(lab, "sensor-2", next_update_days=CRL_WARNING.days - 1)
    report = verify_lab(lab)
    assert report.ok
    warned = [c for c in report.warnings if c.name == "broker/crl.pem current"]
    assert warned and "sign it again before then" in warned[0].message
    refresh_crl(lab, next_update_days=CRL_WARNING.days + 1)
    assert not [c for c in verify_lab(lab).warnings if "crl" in c.name]


@pytest.mark.parametrize("which", [CA_CRL, BROKER_CRL])
def test_verify_names_a_damaged_list(lab: Path, which: Path) -> None:
    revoke(lab, "sensor-2")
    data = bytearray((lab / which).read_bytes())
    data[80:90] = b"!!!!!!!!!!"
    (lab / which).write_bytes(bytes(data))
    report = verify_lab(lab)
    failed = [c for c in report.failures if c.name == f"{which.as_posix()} readable"]
    assert failed and "damaged" in failed[0].message
    assert report.diagnosis is not None and report.diagnosis.file == which.as_posix()


@pytest.mark.parametrize("name", ["Another CA", "MQTT Lab Root CA"])  # another name; the same name, another key
def test_verify_names_a_list_signed_by_another_ca(lab: Path, name: str) -> None:
    (lab / BROKER_CRL).write_bytes(_foreign_crl(name))
    report = verify_lab(lab)
    assert not report.ok
    failed = [c for c in report.failures if c.name == "broker/crl.pem signed by the lab's CA"]
    assert failed, str(report)
    assert ("another CA (Another CA)" if name == "Another CA" else "does not verify") in failed[0].message
    assert report.diagnosis is not None and report.diagnosis.code == "crl-foreign"
    # OpenSSL refuses every client with such a list: the handshake agrees with the check
    result = mutual_tls_handshake(lab)
    assert not result.ok and result.diagnosis is not None and result.diagnosis.code == "crl-foreign"


def test_verify_fails_when_the_broker_has_no_copy(lab: Path) -> None:
    revoke(lab, "sensor-2")
    (lab / BROKER_CRL).unlink()
    report = verify_lab(lab)
    assert not report.ok and report.diagnosis is not None and report.diagnosis.code == "crl-missing"
    assert "revoked clients still get in" in report.diagnosis.problem


def test_the_trust_view_marks_revoked_certificates_from_the_list(lab: Path) -> None:
    revoke(lab, "sensor-2")
    view = trust_view(lab)
    assert view.status(SENSOR.file("crt")) == "revoked" and view.status(L.CLIENT_CERT) == "ok"
    assert trust_view(lab, revoked=()).status(SENSOR.file("crt")) == "ok"
    line = next(x for x in str(view).splitlines() if "sensor-2" in x and " revoked" in x)
    assert "revoked (revoked)" not in line, line  # the plain-text view says it once


def test_the_exported_conf_names_the_list(lab: Path) -> None:
    assert "crlfile" not in mosquitto_conf_text(lab, 8883)
    revoke(lab, "sensor-2")
    text = mosquitto_conf_text(lab, 8883)
    assert f"crlfile {(lab / BROKER_CRL).resolve()}" in text.splitlines()
    assert "# crlfile: broker/crl.pem, the CA's revocation list" in text and "that date has passed" not in text
    refresh_crl(lab, next_update_days=1, now=NOW - dt.timedelta(days=3))
    assert "# WARNING: that date has passed" in mosquitto_conf_text(lab, 8883)


@pytest.mark.parametrize(("reason", "code"), [
    ("certificate verify failed: certificate revoked", "revoked"),
    ("sslv3 alert certificate revoked", "revoked"),
    ("certificate verify failed: CRL has expired", "crl-expired"),
    ("certificate verify failed: CRL is not yet valid", "crl-not-yet-valid"),
    ("certificate verify failed: unable to get certificate CRL", "crl-foreign"),
    ("certificate verify failed: CRL signature failure", "crl-foreign"),
    ("certificate verify failed: certificate has expired", "expired"),  # unchanged
])
def test_openssl_words_for_revocation_are_classified(reason: str, code: str) -> None:
    assert classify(reason) == code
    if code != "expired":
        assert diagnose_tls_failure(reason, None).arrow == 11  # only a broker checks a CRL


# --- bad input: one line, nothing changed ---------------------------------------------------------------------

def _broken(lab: Path, what: str) -> None:
    """Prepare one kind of bad input in ``lab``."""
    if what in ("twice", "damaged record", "foreign copy", "not a CRL", "link"):
        revoke(lab, "sensor-2")
    if what == "damaged record":
        (lab / CA_CRL).write_bytes((lab / CA_CRL).read_bytes()[:120])
    elif what == "foreign copy":
        (lab / BROKER_CRL).write_bytes(_foreign_crl("Another CA"))
    elif what == "not a CRL":
        shutil.copy(lab / "ca/ca.crt", lab / CA_CRL)
    elif what == "link":
        (lab / BROKER_CRL).unlink()
        (lab / BROKER_CRL).symlink_to(lab / CA_CRL)


#: (what is prepared, the command after DIR, exit code, words the one line must hold)
BAD = [
    ("", ["revoke", "{lab}", "nobody"], 2, "nobody: the lab '{lab}' has no client of this name"),
    ("twice", ["revoke", "{lab}", "sensor-2"], 1, "clients/sensor-2/client.crt: client 'sensor-2' is already revoked"),
    ("", ["revoke", "{lab}", "broker"], 1, "broker: the lab does not revoke the broker's certificate"),
    ("", ["revoke", "{lab}", "localhost"], 1, "localhost: the lab does not revoke the broker's certificate"),
    ("", ["revoke", "{lab}", "ca"], 1, "ca: a CA cannot revoke its own certificate"),
    ("", ["revoke", "{lab}", "sensor-2", "--reason", "stolen"], 2, "--reason: 'stolen' is not a reason"),
    ("", ["revoke", "{lab}", "sensor-2", "--reason", "certificateHold"], 2, "--reason: 'certificateHold'"),
    ("", ["revoke", "{lab}", "sensor-2", "--next-update-days", "0"], 2, "--next-update-days: 0: give a whole number"),
    ("", ["revoke", "{lab}", "sensor-2", "--next-update-days", "400"], 2, "--next-update-days: 400"),
    ("", ["revoke", "{lab}", "../x"], 2, "NAME:"),
    ("", ["revoke", "{lab}/nope", "sensor-2"], 2, "nope: no such lab folder"),
    ("damaged record", ["revoke", "{lab}", "client"], 2, "ca/crl.pem: the CRL is damaged"),
    ("damaged record", ["crl", "{lab}", "--refresh"], 2, "ca/crl.pem: the CRL is damaged"),
    ("damaged record", ["crl", "{lab}"], 2, "ca/crl.pem: the CRL is damaged"),
    ("foreign copy", ["crl", "{lab}", "--refresh"], 2, "broker/crl.pem: it is signed by another CA (Another CA)"),
    ("foreign copy", ["revoke", "{lab}", "client"], 2, "broker/crl.pem: it is signed by another CA"),
    ("not a CRL", ["crl", "{lab}", "--refresh"], 2,
     "ca/crl.pem: expected a certificate revocation list (CRL), but this is a certificate"),
    ("link", ["crl", "{lab}", "--refresh"], 2, "broker/crl.pem: is a symbolic link"),
    ("", ["crl", "{lab}", "--next-update-days", "3"], 2, "--next-update-days: only with --refresh"),
]


@pytest.mark.parametrize(("prepare", "command", "code", "words"), BAD, ids=[f"{b[0] or 'ok lab'}: {' '.join(b[1])}"
                                                                             for b in BAD])
def test_bad_input_is_refused_in_one_line_and_changes_nothing(lab: Path, prepare: str, command: list[str],
                                                               code: int, words: str) -> None:
    _broken(lab, prepare)
    top = lab.parent
    before = tree(top)
    done = run_cli(*(part.format(lab=lab) for part in command))
    assert done.returncode == code, done.stdout + done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith(f"mqtt-pki-lab {command[0]}: ") and words.format(lab=lab) in done.stderr, done.stderr
    assert tree(top) == before


def test_an_encrypted_ca_key_without_the_passphrase_file(tmp_path: Path) -> None:
    root = tmp_path / "pki"
    Lab(root, BuildOptions(passphrase=b"s3cret")).build_all()
    before = tree(tmp_path)
    done = run_cli("revoke", str(root), "client")
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "ca/ca.key: this private key is encrypted; give its passphrase (--passphrase-file)" in done.stderr
    assert tree(tmp_path) == before
    secret = tmp_path / "pass.txt"
    secret.write_text("s3cret\n")
    assert run_cli("revoke", str(root), "client", "--passphrase-file", str(secret)).returncode == 0


def test_a_client_this_ca_did_not_sign_is_refused(lab: Path) -> None:
    """A certificate from another CA cannot be revoked by this one: refused, nothing written."""
    from cryptography.hazmat.primitives.serialization import Encoding

    from mqtt_pki_lab.csr import create_csr
    from mqtt_pki_lab.sign import sign_csr

    other_key = generate_key()
    other = create_ca_certificate(other_key, "Another CA")
    key = load_private_key(lab / "clients/sensor-2/client.key")
    cert = sign_csr(create_csr(key, "client", ["sensor-2"]), other, other_key, "client")
    (lab / "clients/sensor-2/client.crt").write_bytes(cert.public_bytes(Encoding.PEM))
    before = tree(lab)
    with pytest.raises(RefusedError, match="not signed by this lab's CA"):
        revoke(lab, "sensor-2")
    assert tree(lab) == before


def test_the_crl_entry_builder_refuses_an_unknown_reason() -> None:
    with pytest.raises(InputError, match="--reason"):
        revoked_certificate(1, "removeFromCRL")


def test_inspect_explains_the_list(lab: Path) -> None:
    revoke(lab, "sensor-2", reason="keyCompromise")
    done = run_cli("inspect", str(lab / CA_CRL))
    assert done.returncode == 0, done.stderr
    assert "certificate revocation list (CRL)" in done.stdout and "keyCompromise" in done.stdout
    assert "CRL number        1" in done.stdout and "refuses EVERY client" in done.stdout
