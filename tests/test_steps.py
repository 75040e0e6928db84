"""The step model: ten arrows as data, the state read from disk, building one arrow at a time, and a fleet."""

from __future__ import annotations

import ast
import json
import stat
from pathlib import Path

import pytest
from conftest import REPO, run_cli

from mqtt_pki_lab import diagram as L
from mqtt_pki_lab.errors import InputError, RefusedError
from mqtt_pki_lab.steps import STEPS, BuildOptions, Lab, LabState, get_step
from mqtt_pki_lab.twins import openssl_twin


def test_ten_arrows_in_diagram_order() -> None:
    assert [s.number for s in STEPS] == list(range(1, 11))
    assert [s.id for s in STEPS] == ["ca-key", "ca-cert", "server-key", "server-csr", "server-cert", "client-key",
                                     "client-csr", "client-cert", "hand-out", "handshake"]
    assert [s.performer for s in STEPS] == ["ca", "ca", "broker", "broker", "ca", "client", "client", "ca", "ca",
                                            "client"]


def test_every_file_is_written_by_exactly_one_step_and_read_only_after() -> None:
    plan = L.DIAGRAM.plan()
    writers = [f for b in plan for f in b.writes]
    assert sorted(f.relpath for f in writers) == sorted(f.relpath for f in L.ALL_FILES)
    assert len(writers) == len(set(writers))
    made: set[L.LabFile] = set()
    for bound in plan:
        assert set(bound.reads) <= made, f"step {bound.number} reads a file no earlier step made"
        made |= set(bound.writes)


def test_further_clients_repeat_arrows_6_to_9_with_the_same_file_names() -> None:
    sensor = L.client_role("sensor-1")
    bound = [L.bind(s, sensor) for s in L.CLIENT_STEPS]
    assert [b.number for b in bound] == [6, 7, 8, 9]
    assert [f.relpath for b in bound for f in b.writes] == [
        "clients/sensor-1/client.key", "clients/sensor-1/client.csr", "clients/sensor-1/client.crt",
        "clients/sensor-1/ca.crt"]
    assert bound[2].performer == L.CA and "sensor-1" in bound[2].title
    assert L.arrow_of(sensor.file("crt")) == 8 == L.arrow_of(L.CLIENT_CERT)


def test_the_model_imports_no_cryptography_and_lower_layers_import_nothing_above() -> None:
    """The layering rule of docs/architecture.md, read from the source: a module imports only from below."""
    layers = {
        1: {"diagram", "errors"},
        2: {"names", "files", "pem", "keys", "profile", "certificates", "ca", "csr", "sign", "options", "twins",
            "steps", "device", "renew", "crl", "acl", "intermediate", "rotate"},
        3: {"tlscontext", "handshake", "diagnose", "checks", "verify", "breakit", "explain", "live"},
        4: {"mqtt_client", "broker_embedded", "mosquitto", "mqtt_proof", "export", "export_device", "mqtt_access",
            "daytwo"},
        5: {"cli", "widgets", "graph", "course", "coursework", "coursefiles", "exercises", "mysteries",
            "access_mysteries", "daytwo_mysteries", "chain_mysteries", "__init__", "__main__"},
    }
    layer_of = {m: n for n, mods in layers.items() for m in mods}
    package = REPO / "mqtt_pki_lab"
    def top(path: Path) -> str:  # a module, or the package (exercises/) a module belongs to
        return path.relative_to(package).parts[0].removesuffix(".py")

    assert {top(p) for p in package.rglob("*.py")} == set(layer_of), "every module has a layer"
    for path in package.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1 and path.parent != package:
                continue  # inside a package: `from . import x` is the package's own
            if isinstance(node, ast.ImportFrom) and node.level == 2 and node.module:
                node = ast.ImportFrom(module=node.module, names=node.names, level=1)
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                # `from . import __version__` reads the package's version string, not a module
                targets = [node.module] if node.module else [a.name for a in node.names if a.name in layer_of]
                for target in targets:
                    mine, theirs = layer_of[top(path)], layer_of[target.split(".")[0]]
                    assert theirs <= mine or (mine == 4 and theirs == 4) or mine == 5, \
                        f"{path.stem} (layer {mine}) imports {target} (layer {theirs})"
            if path.stem == "diagram" and isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                assert not any(n.startswith("cryptography") for n in names), "the model has no cryptography"


def test_secret_files_are_exactly_the_three_keys() -> None:
    assert {f.relpath for f in L.ALL_FILES if f.secret} == {"ca/ca.key", "broker/server.key", "client/client.key"}


def test_each_step_explains_itself_with_why_and_openssl_twin() -> None:
    for bound in L.DIAGRAM.plan():
        assert len(bound.step.why) > 60
        assert "openssl" in openssl_twin(bound) or bound.step.id == "hand-out"


def test_state_follows_the_disk_step_by_step(tmp_path: Path) -> None:
    lab = Lab(tmp_path / "pki")
    state = lab.state()
    assert state.next_step() is get_step("ca-key")
    assert state.status("ca-cert") == "blocked"
    assert state.status("server-key") == "ready"  # a broker may make its key before the CA exists
    for step in STEPS[:9]:
        result = lab.run(step.id)
        assert {m.file for m in result.made} == {f for b in L.DIAGRAM.plan([step]) for f in b.writes}
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


def test_handshake_step_is_proved_not_run(built_lab: Path) -> None:
    with pytest.raises(InputError, match="writes nothing"):
        Lab(built_lab).run("handshake")


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


def test_add_clients_makes_first_class_roles_seen_by_state_and_json(tmp_path: Path) -> None:
    lab = Lab(tmp_path / "pki")
    lab.build_all()
    seen: list[tuple[int, int, str]] = []
    roles = lab.add_clients(["sensor-1", "sensor_2", "alice@example.com"], progress=lambda *a: seen.append(a))
    assert seen == [(1, 3, "sensor-1"), (2, 3, "sensor_2"), (3, 3, "alice@example.com")]
    state = lab.state()
    assert [c.folder for c in state.roles.clients] == ["client", "clients/alice@example.com", "clients/sensor-1",
                                                       "clients/sensor_2"]
    assert state.complete and all(state.done_arrows(r) == [6, 7, 8, 9] for r in roles)
    for role in roles:
        key = role.file("key").path(lab.root)
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        assert role.file("trust").path(lab.root).read_bytes() == L.CA_CERT.path(lab.root).read_bytes()
    done = run_cli("status", str(lab.root), "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert [r["kind"] for r in data["roles"]] == ["ca", "broker", "client", "client", "client", "client"]
    sensor = next(r for r in data["roles"] if r["name"] == "sensor-1")
    assert sensor["crt"].endswith("clients/sensor-1/client.crt") and sensor["arrows_done"] == [6, 7, 8, 9]
    assert data["leftovers"] == [] and data["complete"] is True
    with pytest.raises(RefusedError, match="exists already"):
        lab.add_client("sensor-1")
    with pytest.raises(RefusedError, match="exists already"):
        lab.add_client("client")  # the first client's MQTT username


def test_a_forced_build_signs_every_client_again(tmp_path: Path) -> None:
    lab = Lab(tmp_path / "pki")
    lab.build_all()
    lab.add_client("sensor-1")
    old = (tmp_path / "pki" / "clients" / "sensor-1" / "client.crt").read_bytes()
    lab.build_all(force=True)
    assert (tmp_path / "pki" / "clients" / "sensor-1" / "client.crt").read_bytes() != old
    from mqtt_pki_lab.verify import verify_lab

    assert verify_lab(tmp_path / "pki").ok


def test_a_failed_build_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Everything is made in memory first: a failure at the last step leaves no file and no folder."""
    import mqtt_pki_lab.steps as engine

    def broken(*args, **kwargs):
        raise InputError("ca/ca.crt", "made to fail by the test")

    monkeypatch.setitem(engine.ACTIONS, "hand-out", broken)
    with pytest.raises(InputError, match="made to fail"):
        Lab(tmp_path / "pki").build_all()
    assert not (tmp_path / "pki").exists()
