"""CA rotation (steps 16-18) without a broker: the stages on disk, the refusals (one clear line, nothing written),
a rotation of a lab with a revocation list, a finish that was killed halfway, and the command line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import run_cli
from test_safety import tree

from mqtt_pki_lab import diagram as D
from mqtt_pki_lab.crl import revoke
from mqtt_pki_lab.errors import InputError, LabError, RefusedError
from mqtt_pki_lab.files import mode_of
from mqtt_pki_lab.options import BuildOptions
from mqtt_pki_lab.pem import load_certificate, load_certificates
from mqtt_pki_lab.renew import renew
from mqtt_pki_lab.rotate import (
    broker_trust_note,
    finish_rotation,
    next_root_name,
    reissue,
    retired_roots,
    rotating,
    rotation_status,
    start_rotation,
)
from mqtt_pki_lab.steps import Lab
from mqtt_pki_lab.verify import verify_lab

PASSPHRASE = b"correct horse battery"


@pytest.fixture
def fleet(tmp_path: Path) -> Path:
    """A lab with the diagram's client and two further ones."""
    lab = tmp_path / "pki"
    Lab(lab).build_all()
    Lab(lab).add_clients(["s1", "s2"])
    return lab


def test_the_stages_on_disk(fleet: Path) -> None:
    old = load_certificate(fleet / "ca/ca.crt")
    assert rotation_status(fleet).stage == 0 and not rotating(fleet)
    started = start_rotation(fleet)
    new = started.new_root
    assert new.subject != old.subject and "G2" in str(new.subject)
    assert mode_of(fleet / "ca-next") == 0o700 and mode_of(fleet / "ca-next/ca.key") == 0o600
    for role in Lab(fleet).roles.sides:  # every side trusts both roots, the old one first
        assert load_certificates(fleet / role.folder / "ca.crt") == [old, new]
    state = rotation_status(fleet)
    assert state.stage == 1 and len(state.waiting) == 4 and not state.ready
    assert verify_lab(fleet).ok  # the overlap works: warnings only

    ticks: list[tuple[int, int, str]] = []
    done = reissue(fleet, ["s1", "broker"], progress=lambda *a: ticks.append(a))
    assert [r.name for r in done.done] == ["s1", "broker"] and ticks == [(1, 2, "s1"), (2, 2, "broker")]
    state = rotation_status(fleet)
    assert state.stage == 2 and {s.role.name for s in state.waiting} == {"client", "s2"}
    report = verify_lab(fleet)
    assert report.ok, report  # new broker with old clients and the reverse: both roots are trusted everywhere
    assert any(c.status == "warn" and "depends on the old root" in c.name for c in report.checks)
    key_before = (fleet / "clients/s1/client.key").read_bytes()
    assert load_certificate(fleet / "clients/s1/client.crt").issuer == new.subject
    assert (fleet / "clients/s1/client.key").read_bytes() == key_before  # same key

    reissue(fleet)
    assert rotation_status(fleet).ready
    finished = finish_rotation(fleet)
    assert not rotating(fleet) and load_certificate(fleet / "ca/ca.crt") == new
    for role in Lab(fleet).roles.sides:
        assert load_certificates(fleet / role.folder / "ca.crt") == [new]
    archive = fleet / finished.archive / "ca"
    assert load_certificate(archive / "ca.crt") == old
    assert mode_of(archive / "ca.key") == 0o600 and mode_of(archive) == 0o700
    assert verify_lab(fleet).ok
    assert next_root_name("MQTT Lab Root CA G2") == "MQTT Lab Root CA G3"


def test_a_side_that_still_trusts_only_the_old_root_is_named(fleet: Path) -> None:
    old_pem = (fleet / "ca/ca.crt").read_bytes()
    start_rotation(fleet)
    (fleet / "clients/s2/ca.crt").write_bytes(old_pem)  # as if its device never received the bundle
    assert verify_lab(fleet).ok
    reissue(fleet, ["broker"])
    report = verify_lab(fleet)
    assert not report.ok
    assert report.diagnosis is not None and report.diagnosis.code == "rotation-old-trust"
    assert "client 's2' still trusts only the old root" in report.diagnosis.problem
    assert "clients/s2" in str(rotation_status(fleet))


def test_reissue_hands_the_bundle_to_a_side_already_signed_by_the_new_root(fleet: Path) -> None:
    """The fix notebook 10's mystery 4 offers: a client re-issued by the new root whose ca.crt went back to the old
    root alone gets the bundle from ``reissue NAME``, and ``finish`` is no longer refused for it."""
    old_pem = (fleet / "ca/ca.crt").read_bytes()
    start_rotation(fleet)
    reissue(fleet)
    (fleet / "client/ca.crt").write_bytes(old_pem)  # an old copy put back
    assert [s.role.name for s in rotation_status(fleet).waiting] == ["client"]
    fixed = reissue(fleet, ["client"])
    assert fixed.done == () and fixed.handed_out == ("client/ca.crt",) and fixed.skipped == ()
    assert "handed out the bundle of both roots" in str(fixed) and "Next: mqtt-pki-lab rotate" in str(fixed)
    assert load_certificates(fleet / "client/ca.crt") == [load_certificate(fleet / "ca/ca.crt"),
                                                          load_certificate(fleet / "ca-next/ca.crt")]
    again = reissue(fleet, ["client"])  # nothing left to do: said, nothing written
    assert again.handed_out == () and "its ca.crt holds the new root" in again.skipped[0][1]
    (fleet / "clients/s1/ca.crt").write_bytes(old_pem)
    assert reissue(fleet).handed_out == ("clients/s1/ca.crt",)  # the default (no names) finds it too
    assert rotation_status(fleet).ready


def test_the_broker_note_depends_on_crlfile_and_a_rotation_is_found_afterwards(fleet: Path) -> None:
    """mosquitto 2.0.11 reads cafile again on SIGHUP only with crlfile (tests/test_mqtt_rotate.py measures it):
    start and finish say restart without a list, SIGHUP with one. retired_roots lists what finish archived."""
    assert retired_roots(fleet) == []
    old = load_certificate(fleet / "ca/ca.crt")
    started = start_rotation(fleet)
    assert broker_trust_note(fleet) == started.broker and "restart it" in str(started)
    reissue(fleet)
    finished = finish_rotation(fleet)
    assert "restart it" in str(finished) and retired_roots(fleet) == [old]
    second = started.new_root  # the lab's root now (G2)
    revoke(fleet, "s2", reason="keyCompromise")  # a list: the broker's conf has crlfile from now on
    started = start_rotation(fleet)
    assert "SIGHUP" in str(started) and "cafile included" in str(started)
    reissue(fleet)
    assert "cafile included" in str(finish_rotation(fleet))
    assert retired_roots(fleet) == [old, second]


def _refused(lab: Path, call, error: type[LabError], words: str) -> str:
    """``call()`` is refused with ``error`` whose one line holds ``words``, and nothing in ``lab`` changed."""
    before = tree(lab)
    with pytest.raises(error) as caught:
        call()
    message = str(caught.value)
    assert words in message and "\n" not in message, message
    assert tree(lab) == before
    return message


def test_refusals_change_nothing(fleet: Path, tmp_path: Path) -> None:
    _refused(fleet, lambda: reissue(fleet), RefusedError, "no CA rotation is under way")
    _refused(fleet, lambda: finish_rotation(fleet), RefusedError, "no CA rotation is under way")
    start_rotation(fleet)
    _refused(fleet, lambda: start_rotation(fleet), RefusedError, "cannot be started twice")
    message = _refused(fleet, lambda: finish_rotation(fleet), RefusedError, "still depend on it")
    assert all(name in message for name in ("broker", "client", "clients/s1", "clients/s2"))
    reissue(fleet, ["broker", "client", "s1"])
    message = _refused(fleet, lambda: finish_rotation(fleet), RefusedError, "1 side still depends on it")
    assert "clients/s2 (its certificate is signed by the old root)" in message
    _refused(fleet, lambda: renew(fleet, "s2"), RefusedError, "rotate")
    _refused(fleet, lambda: revoke(fleet, "s2"), RefusedError, "a CA rotation is under way")
    _refused(fleet, lambda: reissue(fleet, ["nobody"]), InputError, "nobody")
    _refused(fleet, lambda: reissue(fleet, ["s2"], csr=tmp_path / "none.csr"), InputError, "--csr")

    empty = tmp_path / "empty"
    empty.mkdir()
    _refused(empty, lambda: start_rotation(empty), InputError, "no CA to rotate")


def test_an_encrypted_ca_key_needs_its_passphrase(tmp_path: Path) -> None:
    lab = tmp_path / "pki"
    Lab(lab, BuildOptions(passphrase=PASSPHRASE)).build_all()
    message = _refused(lab, lambda: start_rotation(lab), InputError, "encrypted")
    assert "ca/ca.key" in message
    start_rotation(lab, password=PASSPHRASE)
    assert (lab / "ca-next/ca.key").read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY")
    message = _refused(lab, lambda: reissue(lab), InputError, "encrypted")
    assert "ca-next/ca.key" in message
    reissue(lab, password=PASSPHRASE)
    _refused(lab, lambda: finish_rotation(lab), InputError, "encrypted")
    finish_rotation(lab, password=PASSPHRASE)
    assert verify_lab(lab, password=PASSPHRASE).ok


def test_a_lab_with_an_intermediate_is_refused(tmp_path: Path) -> None:
    lab = tmp_path / "pki"
    Lab(lab, BuildOptions(intermediate=True)).build_all()
    _refused(lab, lambda: start_rotation(lab), RefusedError, "intermediate CA")


def test_revoked_clients_stay_out_and_the_new_root_signs_the_list(fleet: Path) -> None:
    revoke(fleet, "s2", reason="keyCompromise")
    start_rotation(fleet)
    lists = (fleet / "broker/crl.pem").read_text().count("BEGIN X509 CRL")
    assert lists == 2 and (fleet / "ca-next/crl.pem").is_file()  # one list per root: OpenSSL needs both
    done = reissue(fleet)
    assert "s2" in [r.name for r, _ in done.skipped] and "s2" not in [r.name for r in done.done]
    report = verify_lab(fleet)
    assert report.ok, report  # re-issued clients pass (the new root's list is there), s2 is refused as revoked
    finished = finish_rotation(fleet)
    assert not (fleet / "clients/s2").exists() and (fleet / finished.archive / "clients/s2/client.key").is_file()
    new = load_certificate(fleet / "ca/ca.crt")
    for path in ("ca/crl.pem", "broker/crl.pem"):
        crl = (fleet / path).read_text()
        assert crl.count("BEGIN X509 CRL") == 1
    from mqtt_pki_lab.crl import load_crl

    assert load_crl(fleet / "broker/crl.pem").issuer == new.subject
    assert verify_lab(fleet).ok


def test_a_finish_killed_halfway_is_completed_by_running_it_again(fleet: Path) -> None:
    start_rotation(fleet)
    reissue(fleet)
    old_key = (fleet / "ca/ca.key").read_bytes()
    shutil.copyfile(fleet / "ca-next/ca.crt", fleet / "ca/ca.crt")  # killed after the first rename into ca/
    state = rotation_status(fleet)
    assert state.stage == 3 and state.interrupted == "finish" and "run" in str(state)
    result = finish_rotation(fleet)
    assert not rotating(fleet)
    assert (fleet / result.archive / "ca/ca.key").read_bytes() == old_key  # the old key is kept, never lost
    assert verify_lab(fleet).ok


def test_the_command_line(fleet: Path) -> None:
    done = run_cli("rotate", str(fleet), "start")
    assert done.returncode == 0 and "restart" in done.stdout, done.stderr
    again = run_cli("rotate", str(fleet), "start")
    assert again.returncode == 1 and again.stderr.count("\n") == 1 and "started twice" in again.stderr
    status = run_cli("rotate", str(fleet), "status")
    assert "stage 1" in status.stdout and "clients/s2" in status.stdout
    wrong = run_cli("rotate", str(fleet), "finish", "--csr", "x.csr")
    assert wrong.returncode == 2 and "--csr: only with rotate DIR reissue" in wrong.stderr
    refused = run_cli("rotate", str(fleet), "finish")
    assert refused.returncode == 1 and "still depend on it" in refused.stderr
    run = run_cli("rotate", str(fleet), "reissue")
    assert run.returncode == 0 and "re-issued 4 certificates" in run.stdout and "SIGHUP" in run.stdout, run.stderr
    done = run_cli("rotate", str(fleet), "finish")
    assert done.returncode == 0 and "retired the old root" in done.stdout, done.stderr
    assert run_cli("verify", str(fleet)).returncode == 0


def test_the_trust_view_draws_both_roots_during_the_overlap(fleet: Path) -> None:
    from mqtt_pki_lab.graph import trust_view

    start_rotation(fleet)
    reissue(fleet, ["s1"])
    view = trust_view(fleet)
    assert view.status("ca/ca.crt") == "ok" and view.status("ca-next/ca.crt") == "ok"
    assert view.cert("ca-next/ca.crt").box == D.CA  # one CA box, two roots: no new box
    assert all(c.ok for c in view.certs), view
    named = {(link.issuer, link.subject) for link in view.links}
    from mqtt_pki_lab.graph import node_id

    new, s1 = node_id(D.NEXT_CA.file("crt")), D.client_role("s1")
    assert (new, node_id(s1.file("crt"))) in named and (new, node_id(D.BROKER_CA)) in named
    assert "ca-next" in view.dot or "MQTT Lab Root CA G2" in view.dot
