"""The step model: ten arrows as data, the state read from disk, and building one arrow at a time."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from mqtt_pki_lab import diagram as L
from mqtt_pki_lab.errors import InputError, RefusedError
from mqtt_pki_lab.steps import STEPS, BuildOptions, Lab, LabState, get_step


def test_ten_arrows_in_diagram_order() -> None:
    assert [s.number for s in STEPS] == list(range(1, 11))
    assert [s.id for s in STEPS] == ["ca-key", "ca-cert", "server-key", "server-csr", "server-cert", "client-key",
                                     "client-csr", "client-cert", "hand-out", "handshake"]
    assert [s.role for s in STEPS] == ["ca", "ca", "broker", "broker", "ca", "client", "client", "ca", "ca",
                                       "client"]


def test_every_file_is_written_by_exactly_one_step_and_read_only_after() -> None:
    writers = [f for s in STEPS for f in s.writes]
    assert sorted(f.relpath for f in writers) == sorted(f.relpath for f in L.ALL_FILES)
    made: set[L.LabFile] = set()
    for step in STEPS:
        assert set(step.reads) <= made, f"step {step.number} reads a file no earlier step made"
        made |= set(step.writes)


def test_secret_files_are_exactly_the_three_keys() -> None:
    assert {f.relpath for f in L.ALL_FILES if f.secret} == {"ca/ca.key", "broker/server.key", "client/client.key"}


def test_each_step_explains_itself_with_why_and_openssl_twin() -> None:
    for step in STEPS:
        assert len(step.why) > 60
        assert "openssl" in step.openssl_command or step.id == "hand-out"


def test_state_follows_the_disk_step_by_step(tmp_path: Path) -> None:
    lab = Lab(tmp_path / "pki")
    state = lab.state()
    assert state.next_step() is get_step("ca-key")
    assert state.status("ca-cert") == "blocked"
    assert state.status("server-key") == "ready"  # a broker may make its key before the CA exists
    for step in STEPS[:9]:
        result = lab.run(step.id)
        assert {m.file for m in result.made} == set(step.writes)
        assert lab.state().status(step) == "done"
    assert lab.state().complete
    assert lab.state().status("handshake") == "ready"
    # A restarted notebook sees the same state: it is read from the files, not remembered.
    assert LabState.read(tmp_path / "pki") == lab.state()
    (tmp_path / "pki" / "client" / "client.crt").unlink()
    assert lab.state().next_step() is get_step("client-cert")


def test_step_with_missing_input_names_the_file_and_the_step_to_run(tmp_path: Path) -> None:
    with pytest.raises(InputError) as err:
        Lab(tmp_path).run("server-cert")
    assert "server.csr" in str(err.value) and "step 4" in str(err.value)


def test_handshake_step_proves_the_built_files(built_lab: Path) -> None:
    result = Lab(built_lab).run("handshake")
    assert result.ok, result
    assert result.detail.broker_saw.subject == "CN=client"
    assert result.detail.client_saw.subject == "CN=localhost"


def test_existing_ca_is_never_replaced_without_force(tmp_path: Path) -> None:
    lab = Lab(tmp_path)
    lab.build_all()
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    with pytest.raises(RefusedError):
        lab.build_all()
    with pytest.raises(RefusedError):
        lab.run("ca-key")
    with pytest.raises(RefusedError):
        lab.run("ca-cert")
    assert before == {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    lab.build_all(force=True)
    assert (tmp_path / "ca" / "ca.crt").read_bytes() != before[tmp_path / "ca" / "ca.crt"]


def test_permissions_and_ca_key_confined_to_ca_folder(built_lab: Path) -> None:
    for file in L.ALL_FILES:
        mode = stat.S_IMODE(file.path(built_lab).stat().st_mode)
        assert mode == (0o600 if file.secret else 0o644), file.relpath
    assert stat.S_IMODE((built_lab / "ca").stat().st_mode) == 0o700
    ca_key = (built_lab / "ca" / "ca.key").read_bytes()
    copies = [p for p in built_lab.rglob("*") if p.is_file() and p.read_bytes() == ca_key]
    assert copies == [built_lab / "ca" / "ca.key"]
    assert not [p for p in built_lab.rglob("*") if p.name.endswith(".tmp")]


def test_step_results_show_fingerprints_never_keys(built_lab: Path, tmp_path: Path) -> None:
    results = Lab(tmp_path).build_all()
    text = "\n".join(str(r) for r in results) + "".join(r._repr_html_() for r in results)
    assert "PRIVATE KEY" not in text
    assert "ca/ca.key" in text and "SECRET" in text and "openssl genpkey" in text


def test_options_are_checked_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(InputError):
        Lab(tmp_path / "pki", BuildOptions(days=0))
    assert not (tmp_path / "pki").exists()


def test_twin_uses_the_options_the_step_ran_with(tmp_path: Path) -> None:
    lab = Lab(tmp_path, BuildOptions(key_type="rsa-2048", server_names=("mqtt.example.com",), days=30))
    results = lab.build_all()
    assert "rsa_keygen_bits:2048" in results[0].openssl
    assert "DNS:mqtt.example.com,DNS:localhost" in results[3].openssl
    assert "-days 30" in results[4].openssl
