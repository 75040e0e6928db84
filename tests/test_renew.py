"""Renewal (day-two step 12): a fresh certificate with a new serial and a later notAfter, the same key unless
``--new-key``, the old files kept in ``backups/``; ``status --expiring N``; and every refusal in one line with
nothing on disk changed (the folder is hashed before and after, as tests/test_safety.py does).

The real mosquitto (SIGHUP) and the MQTT check after a renewal are in tests/test_mqtt_renew.py.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import run_cli
from test_safety import assert_one_line_refusal, tree

from mqtt_pki_lab import diagram as D
from mqtt_pki_lab.certificates import signed_by
from mqtt_pki_lab.errors import InputError, RefusedError
from mqtt_pki_lab.files import mode_of
from mqtt_pki_lab.keys import is_encrypted_key_pem, key_type_of, load_private_key, public_key_fingerprint
from mqtt_pki_lab.pem import load_certificate, load_csr
from mqtt_pki_lab.renew import BACKUPS_FOLDER, expiring, renew
from mqtt_pki_lab.steps import BuildOptions, Lab, LabState
from mqtt_pki_lab.verify import verify_lab

SENSOR = D.client_role("sensor-1")


@pytest.fixture(scope="module")
def ten_day_lab(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lab whose leaves live 10 days (the broker named mqtt.example.com), with a further client sensor-1."""
    root = tmp_path_factory.mktemp("renew") / "pki"
    lab = Lab(root, BuildOptions(server_names=("mqtt.example.com",), days=10))
    lab.build_all()
    lab.add_client("sensor-1")
    return root


@pytest.fixture
def lab(ten_day_lab: Path, tmp_path: Path) -> Path:
    shutil.copytree(ten_day_lab, tmp_path / "pki")
    return tmp_path / "pki"


def _fingerprint(path: Path, password: bytes | None = None) -> str:
    return public_key_fingerprint(load_private_key(path, password))


def test_same_key_renewal_new_serial_later_not_after_same_profile_and_backups(lab: Path) -> None:
    crt, key, csr = (D.BROKER.file(s).path(lab) for s in ("crt", "key", "csr"))
    old, old_crt, old_csr, old_key = load_certificate(crt), crt.read_bytes(), csr.read_bytes(), key.read_bytes()

    result = renew(lab, "broker", days=20)

    new = load_certificate(crt)
    assert new.serial_number == result.new_serial != result.old_serial == old.serial_number
    assert new.not_valid_after_utc == result.new_not_after > old.not_valid_after_utc + dt.timedelta(days=9)
    assert key.read_bytes() == old_key and not result.new_key  # the key is kept, byte for byte
    assert new.public_key() == old.public_key()
    assert list(new.extensions) == list(old.extensions)  # the same profile, names and key identifiers
    assert new.subject == old.subject and signed_by(new, load_certificate(D.CA_CERT.path(lab)))
    assert load_csr(csr).public_key() == old.public_key() and result.arrows == "4-5"
    # what was replaced is kept, byte for byte, outside every role's folder
    assert [p.name for p in result.backups] == ["server.csr", "server.crt"]
    assert [p.read_bytes() for p in result.backups] == [old_csr, old_crt]
    assert all(p.parent.relative_to(lab).parts[0] == BACKUPS_FOLDER for p in result.backups)
    assert mode_of(lab / BACKUPS_FOLDER) == 0o700
    state = LabState.read(lab)
    assert state.complete and not state.leftovers
    report = verify_lab(lab)
    assert report.ok and not [c for c in report.checks if c.status != "pass" and "validity" not in c.name], report


def test_new_key_renewal_of_a_further_client(lab: Path) -> None:
    key = SENSOR.file("key").path(lab)
    old_key, old_print = key.read_bytes(), _fingerprint(key)
    result = renew(lab, "sensor-1", new_key=True)
    new = load_certificate(SENSOR.file("crt").path(lab))
    assert result.new_key and result.arrows == "6-8" and result.days == 10  # the old certificate's lifetime
    assert _fingerprint(key) != old_print and new.public_key() == load_private_key(key).public_key()
    assert key_type_of(new.public_key()) == "ec-p256" and mode_of(key) == 0o600
    backup = next(p for p in result.backups if p.name == "client.key")
    assert backup.read_bytes() == old_key and mode_of(backup) == 0o600
    assert verify_lab(lab).ok


def test_new_key_of_another_type_and_an_encrypted_key_stays_encrypted(
        lab_factory: Callable[..., Path], tmp_path: Path) -> None:
    root = tmp_path / "pki"
    shutil.copytree(lab_factory(passphrase=b"pw", encrypt_all=True), root)
    renew(root, "client", new_key=True, password="pw", key_type_name="rsa-2048")
    key = D.CLIENT_KEY.path(root)
    assert is_encrypted_key_pem(key.read_bytes())
    assert key_type_of(load_private_key(key, b"pw")) == "rsa-2048"
    assert verify_lab(root, password=b"pw").ok


@pytest.mark.skipif(os.geteuid() != 0, reason="only root replaces a file that belongs to another account")
def test_a_file_replaced_by_root_keeps_its_owner(lab: Path) -> None:
    """mosquitto running as its own account must still read a new 0600 server.key after a SIGHUP."""
    for path in (lab / "broker").iterdir():
        os.chown(path, 4321, 4321)
    result = renew(lab, "broker", new_key=True)
    for path in result.written:
        assert (path.stat().st_uid, path.stat().st_gid) == (4321, 4321), path
    assert mode_of(D.SERVER_KEY.path(lab)) == 0o600


def test_the_cli_says_what_changed_and_how_mosquitto_picks_it_up(lab: Path) -> None:
    done = run_cli("renew", str(lab), "broker")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "serial" in out and "notAfter" in out and "->" in out and f"{BACKUPS_FOLDER}/" in out
    assert "kill -HUP" in out and "systemctl reload mosquitto" in out
    done = run_cli("renew", str(lab), "sensor-1", "--new-key", "--days", "30")
    assert done.returncode == 0, done.stderr
    assert "next connection uses it" in done.stdout and "kill -HUP" not in done.stdout
    assert "client.key (the old key, 0600" in done.stdout


def test_days_are_cut_at_the_ca_by_default_and_refused_past_it(lab_factory: Callable[..., Path],
                                                               tmp_path: Path) -> None:
    root = tmp_path / "pki"
    shutil.copytree(lab_factory(ca_days=10, days=10), root)
    with pytest.raises(InputError, match="outlive the CA"):
        renew(root, "client", days=11)
    result = renew(root, "client")  # the default: the old lifetime, cut at the CA's notAfter as build does
    assert result.cut_at_ca and result.new_not_after == result.ca_not_after
    assert "cut at the CA's notAfter" in str(result)


# --- status --expiring -----------------------------------------------------------------------------------------

def test_status_expiring_lists_what_expires_and_exits_1_for_cron(lab: Path) -> None:
    quiet = run_cli("status", str(lab), "--expiring", "5")
    assert quiet.returncode == 0 and "No certificate" in quiet.stdout, quiet.stdout + quiet.stderr
    loud = run_cli("status", str(lab), "--expiring", "11")
    assert loud.returncode == 1, loud.stderr
    for rel in ("broker/server.crt", "client/client.crt", "clients/sensor-1/client.crt"):
        assert rel in loud.stdout
    assert "ca/ca.crt" not in loud.stdout and "days left" in loud.stdout and "mqtt-pki-lab renew" in loud.stdout
    renew(lab, "broker", days=30)
    as_json = run_cli("status", str(lab), "--expiring", "11", "--json")
    assert as_json.returncode == 1
    listed = json.loads(as_json.stdout)["expiring"]
    assert listed["within_days"] == 11
    assert sorted(c["file"] for c in listed["certificates"]) == ["client/client.crt", "clients/sensor-1/client.crt"]
    assert all(c["days_left"] in (9, 10) for c in listed["certificates"])


def test_status_expiring_lists_a_revocation_list_near_its_next_update_and_no_renewal_for_a_revoked_client(
        lab: Path) -> None:
    """A list past its nextUpdate shuts every client out, so ``status --expiring N`` lists it (exit 1, for cron);
    a revoked client's certificate is listed but never offered to ``renew`` (renew refuses it)."""
    from mqtt_pki_lab.crl import list_deadlines, revoke

    revoke(lab, "sensor-1", reason="keyCompromise", next_update_days=5)
    lists = list_deadlines(lab, 7)
    assert [d.file for d in lists] == ["ca/crl.pem", "broker/crl.pem"] and all(d.days_left == 4 for d in lists)
    shown = run_cli("status", str(lab), "--expiring", "7")
    assert shown.returncode == 1, shown.stdout + shown.stderr
    assert "No certificate" in shown.stdout and "broker/crl.pem" in shown.stdout and "4 days left" in shown.stdout
    assert f"mqtt-pki-lab crl {lab} --refresh" in shown.stdout
    assert run_cli("status", str(lab), "--expiring", "3").returncode == 0
    listed = json.loads(run_cli("status", str(lab), "--expiring", "7", "--json").stdout)["expiring"]
    assert [d["file"] for d in listed["revocation_lists"]] == ["ca/crl.pem", "broker/crl.pem"]
    soon = run_cli("status", str(lab), "--expiring", "11")
    assert "Renew with: mqtt-pki-lab renew" in soon.stdout and "(NAME: broker, client)" in soon.stdout, soon.stdout
    assert "clients/sensor-1: revoked, not renewed" in soon.stdout


def test_expiring_counts_days_left_and_expired_certificates(lab: Path) -> None:
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=12)
    gone = expiring(lab, 0, now=later)  # 0: only what has already expired
    assert {e.file.relpath for e in gone} == {"broker/server.crt", "client/client.crt", "clients/sensor-1/client.crt"}
    assert all(e.days_left == -2 for e in gone) and all("expired 2 days ago" in str(e) for e in gone)
    assert [e.file for e in expiring(lab, 3651)][-1] == D.CA_CERT  # soonest first: the CA last
    D.SERVER_CERT.path(lab).write_bytes(b"not a certificate")
    assert expiring(lab, 0)[0].problem is not None  # unreadable: listed first, nobody can tell its date


# --- refusals: one line, nothing written -------------------------------------------------------------------------

def _device_client(ws: Path) -> None:
    from mqtt_pki_lab.device import request, sign_request

    made = request(ws / "device", "dev-1")
    sign_request(ws / "pki", made.csr)


def _revoked(ws: Path) -> None:
    from mqtt_pki_lab.crl import revoke

    revoke(ws / "pki", "sensor-1", reason="keyCompromise")


def _linked_broker(ws: Path) -> None:
    """broker/ is a link to another lab's broker/: renewing must not write through it."""
    shutil.copytree(ws / "pki", ws / "other")
    shutil.rmtree(ws / "pki" / "broker")
    (ws / "pki" / "broker").symlink_to(ws / "other" / "broker")


def _rm(rel: str) -> Callable[[Path], None]:
    def setup(ws: Path) -> None:
        path = ws / "pki" / rel
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    return setup


#: id: (which lab, setup, arguments after ``renew LAB``, exit code, what the line names, words in it)
REFUSALS: dict[str, tuple[str, Callable[[Path], None] | None, list[str], int, str, str]] = {
    "unknown-name": ("base", None, ["nobody"], 2, "nobody", "no such broker or client"),
    "bad-name": ("base", None, ["a/b"], 2, "NAME", "not a usable client name"),
    "the-ca": ("base", None, ["ca"], 1, "ca/ca.crt", "CA rotation"),
    "days-zero": ("base", None, ["broker", "--days", "0"], 2, "--days", "not a positive"),
    "days-over-cap": ("base", None, ["broker", "--days", "398"], 2, "--days", "longer than this lab allows"),
    "days-past-ca": ("short-ca", None, ["client", "--days", "11"], 2, "--days", "outlive the CA"),
    "no-ca": ("base", _rm("ca"), ["broker"], 2, "ca/ca.crt", "this lab has no CA"),
    "encrypted-ca-key": ("encrypted", None, ["broker"], 2, "ca/ca.key", "--passphrase-file"),
    "device-key": ("base", _device_client, ["dev-1"], 1, "clients/dev-1/client.key", "mqtt-pki-lab sign"),
    "missing-key": ("base", _rm("clients/sensor-1/client.key"), ["sensor-1"], 2, "client.key", "--new-key"),
    "no-certificate-yet": ("base", _rm("client/client.crt"), ["client"], 2, "client/client.crt", "missing"),
    "revoked": ("base", _revoked, ["sensor-1"], 1, "clients/sensor-1/client.crt", "revoked (keyCompromise"),
    "key-type-alone": ("base", None, ["client", "--key-type", "rsa-2048"], 2, "--key-type", "only with --new-key"),
    "key-type-unknown": ("base", None, ["client", "--new-key", "--key-type", "dsa"], 2, "--key-type", "unknown"),
    "not-a-lab": ("base", None, [], 2, "nowhere", "no such lab folder"),
    "folder-is-a-link": ("base", _linked_broker, ["broker"], 2, "pki/broker", "symbolic link"),
}


@pytest.fixture(scope="module")
def labs(ten_day_lab: Path, lab_factory: Callable[..., Path]) -> dict[str, Path]:
    return {"base": ten_day_lab, "short-ca": lab_factory(ca_days=10, days=10),
            "encrypted": lab_factory(passphrase=b"the passphrase")}


@pytest.mark.parametrize("case", REFUSALS, ids=list(REFUSALS))
def test_a_refused_renewal_says_why_in_one_line_and_changes_nothing(case: str, labs: dict[str, Path],
                                                                    tmp_path: Path) -> None:
    which, setup, args, code, names, words = REFUSALS[case]
    ws = tmp_path / "ws"
    ws.mkdir()
    shutil.copytree(labs[which], ws / "pki")
    if setup is not None:
        setup(ws)
    before = tree(ws)
    target = "nowhere" if case == "not-a-lab" else "pki"
    done = run_cli("renew", target, *(args or ["broker"]), cwd=ws)
    line = assert_one_line_refusal(done, "renew", code, names)
    assert words in line, line
    assert tree(ws) == before, sorted(set(tree(ws).items()) ^ set(before.items()))


def test_the_api_refuses_the_same_way(lab: Path) -> None:
    with pytest.raises(RefusedError, match="CA rotation"):
        renew(lab, "ca")
    with pytest.raises(InputError, match="no such broker or client"):
        renew(lab, "sensor-9")
    D.SERVER_KEY.path(lab).write_bytes(D.CLIENT_KEY.path(lab).read_bytes())  # a key that is not the broker's
    before = tree(lab)
    with pytest.raises(RefusedError, match=r"does not belong to broker/server\.crt"):
        renew(lab, "broker")
    assert tree(lab) == before


@pytest.mark.parametrize("value", ["-1", "36501", "soon"])
def test_status_expiring_refuses_a_bad_number_in_one_line(built_lab: Path, value: str) -> None:
    done = run_cli("status", str(built_lab), "--expiring", value)
    assert done.returncode == 2 and "Traceback" not in done.stderr and len(done.stderr.splitlines()) == 1
    assert "--expiring" in done.stderr
