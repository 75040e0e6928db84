"""Notebook 11's scenarios and mysteries: a broker without its chain, an intermediate in ``broker/ca.crt``.

What is measured here with the real tools (OpenSSL 3.0, mosquitto 2.0.11, Python's ssl):

* ``server-without-intermediate``: every verifier refuses the broker, "unable to get local issuer certificate"
  (``openssl verify``: error 20 at depth 0); verify names arrow 5, ``broker/server.crt``;
* ``intermediate-in-broker-trust``: the intermediate alone in the CA file is no trust anchor for OpenSSL's default
  (X509_V_FLAG_PARTIAL_CHAIN off): ``openssl verify`` says error 2 at depth 1, "unable to get issuer certificate"
  (with ``-partial_chain``: OK), mosquitto refuses the client; Python's partial-chain context (the lab's, 3.13's
  default) accepts; verify names arrow 9, ``broker/ca.crt``;
* both break only a chain of three: a one-level lab is refused in one line, and nothing is written.
"""

from __future__ import annotations

import hashlib
import shutil
import ssl
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import require_program, run_cli

from mqtt_pki_lab import chain_mysteries as C
from mqtt_pki_lab.breakit import SCENARIOS, break_lab, get_scenario, raw_errors, run_catalogue, scenarios_for
from mqtt_pki_lab.errors import InputError
from mqtt_pki_lab.handshake import handshake_contexts
from mqtt_pki_lab.pem import load_certificates
from mqtt_pki_lab.steps import BuildOptions, Lab
from mqtt_pki_lab.verify import verify_lab

CHAIN = ("server-without-intermediate", "intermediate-in-broker-trust")


def _digest(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def chain_src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("chain-src") / "pki"
    Lab(root, BuildOptions(intermediate=True)).build_all()
    return root


def test_the_chain_scenarios_are_in_the_catalogue_and_marked() -> None:
    assert {s.id for s in SCENARIOS if s.chain} == set(CHAIN)
    listed = run_cli("break", "--list")
    assert listed.returncode == 0
    for line in listed.stdout.splitlines():
        assert line.endswith("(a lab built with --intermediate)") == (line.split()[0] in CHAIN), line


@pytest.mark.parametrize("key_type", ["ec-p256", "rsa-2048", "ed25519"])
def test_verify_names_each_chain_scenario_exactly(key_type: str, lab_factory: Callable[..., Path],
                                                 tmp_path: Path) -> None:
    src = lab_factory(intermediate=True, key_type=key_type)
    outcomes = run_catalogue(src, tmp_path, scenarios=tuple(get_scenario(s) for s in CHAIN))
    assert {o.scenario.id: o.mismatches for o in outcomes} == {s: [] for s in CHAIN}
    assert set(CHAIN) <= {s.id for s in scenarios_for(src)}


def test_a_one_level_lab_is_refused_in_one_line_and_nothing_is_written(built_lab: Path, tmp_path: Path) -> None:
    before = _digest(built_lab)
    assert not {s.id for s in scenarios_for(built_lab)} & set(CHAIN)
    for scenario in CHAIN:
        with pytest.raises(InputError, match=r"has no intermediate CA.*--intermediate"):
            break_lab(built_lab, scenario, tmp_path / "out")
        done = run_cli("break", str(built_lab), scenario, str(tmp_path / "out"))
        assert done.returncode != 0 and len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert "has no intermediate CA" in done.stderr and "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == [] and _digest(built_lab) == before


def test_the_copies_differ_in_the_files_the_scenarios_name(chain_src: Path, tmp_path: Path) -> None:
    missing = break_lab(chain_src, "server-without-intermediate", tmp_path / "m")
    assert len(load_certificates(missing / "broker/server.crt")) == 1
    assert load_certificates(missing / "broker/server.crt")[0] == load_certificates(chain_src / "broker/server.crt")[0]
    trust = break_lab(chain_src, "intermediate-in-broker-trust", tmp_path / "t")
    assert load_certificates(trust / "broker/ca.crt") == load_certificates(chain_src / "intermediate/intermediate.crt")
    assert len(load_certificates(trust / "client/client.crt")) == 1
    changed = {k for k, v in _digest(trust).items() if _digest(chain_src).get(k) != v}
    assert changed == {"broker/ca.crt", "client/client.crt"}


def _openssl(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([require_program("openssl"), "verify", *args], cwd=folder, capture_output=True, text=True,
                          timeout=30)


def test_openssl_refuses_an_intermediate_as_anchor_unless_partial_chain(chain_src: Path, tmp_path: Path) -> None:
    trust = break_lab(chain_src, "intermediate-in-broker-trust", tmp_path / "t")
    refused = _openssl(trust, "-x509_strict", "-purpose", "sslclient", "-CAfile", "broker/ca.crt", "client/client.crt")
    assert refused.returncode != 0 and "error 2 at 1 depth lookup: unable to get issuer certificate" in refused.stdout \
        + refused.stderr
    # The whole chain does not help: the intermediate at depth 1 is the end of the path, and it is not self-signed.
    whole = str(chain_src / "client/client.crt")
    full = _openssl(trust, "-x509_strict", "-CAfile", "broker/ca.crt", "-untrusted", whole, whole)
    assert full.returncode != 0 and "unable to get issuer certificate" in full.stdout + full.stderr
    partial = _openssl(trust, "-partial_chain", "-x509_strict", "-CAfile", "broker/ca.crt", "client/client.crt")
    assert partial.returncode == 0, partial.stdout + partial.stderr
    # Beside the root the intermediate is accepted: the path ends at the self-signed root of the same file.
    bundle = tmp_path / "bundle.pem"
    anchors = ("ca/ca.crt", "intermediate/intermediate.crt")
    bundle.write_bytes(b"".join((chain_src / rel).read_bytes() for rel in anchors))
    beside = _openssl(trust, "-x509_strict", "-CAfile", str(bundle), "client/client.crt")
    assert beside.returncode == 0, beside.stdout + beside.stderr


def test_python_without_partial_chain_refuses_what_the_labs_handshake_accepts(chain_src: Path, tmp_path: Path) -> None:
    trust = break_lab(chain_src, "intermediate-in-broker-trust", tmp_path / "t")
    raw = raw_errors(trust)
    assert raw.handshake_ok  # the lab's contexts: strict and partial-chain, as Python 3.13's default
    broker = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    broker.load_cert_chain(trust / "broker/server.crt", trust / "broker/server.key")
    broker.load_verify_locations(trust / "broker/ca.crt")
    broker.verify_mode = ssl.CERT_REQUIRED
    broker.verify_flags &= ~ssl.VERIFY_X509_PARTIAL_CHAIN  # OpenSSL's default, as mosquitto has it
    client = ssl.create_default_context(cafile=str(trust / "client/ca.crt"))
    client.load_cert_chain(trust / "client/client.crt", trust / "client/client.key")
    result = handshake_contexts(broker, client, "localhost")
    assert not result.ok and result.refused_by == "broker" and "unable to get issuer certificate" in result.reason


def test_the_evidence_of_both_mysteries_with_real_tools(chain_src: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    require_program("mosquitto")
    require_program("mosquitto_pub")
    monkeypatch.setenv("MQTT_PKI_LAB_WORKDIR", str(tmp_path))
    lab = Lab(chain_src)
    first = C.open_missing_chain_mystery(lab)
    shown = str(first)
    assert "client refused: certificate verify failed: unable to get local issuer certificate" in shown
    assert "A TLS error occurred" in shown and "tlsv1 alert unknown ca" in shown
    assert "broker/server.crt (CAfile client/ca.crt): error 20 at 0 depth lookup" in shown
    second = C.open_trust_mystery(lab)
    shown = str(second)
    assert "client: no error" in shown and "broker: no error" in shown  # Python's partial chain accepts
    assert "certificate verify failed" in shown  # mosquitto's log: it refused the client
    assert any(words in shown for words in ("The connection was lost", "Protocol error"))
    assert "client/client.crt (CAfile broker/ca.crt): error 2 at 1 depth lookup: unable to get issuer" in shown
    for case in (first, second):
        scenario = case._scenario
        diagnosis = scenario.expected.judged(verify_lab(case.folder))[0]
        text = str(case) + str(case.details())
        for secret in (diagnosis.problem, diagnosis.fix, scenario.title, scenario.id, "arrow", "root alone"):
            assert secret not in text, (scenario.id, secret)
        assert "PRIVATE KEY" not in text and case.folder.parent == tmp_path / "mysteries"
    assert verify_lab(chain_src).ok  # the lab the mysteries copy is never broken


def test_the_second_lab_the_root_key_offline_and_a_real_broker(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MQTT_PKI_LAB_WORKDIR", str(tmp_path))
    lab = C.chain_lab()
    assert lab.root == tmp_path / "chain" and C.chain_lab().root == lab.root  # built once, then reused
    text = str(C.holdings(lab))
    assert "broker/server.crt              1. localhost (leaf; issued by MQTT Lab Intermediate CA)" in text
    assert "2. MQTT Lab Intermediate CA (intermediate CA, pathLen 0; issued by MQTT Lab Root CA)" in text
    assert "client/ca.crt                  1. MQTT Lab Root CA (root CA, pathLen 1" in text
    moved = C.take_root_key_offline(lab)
    assert moved == tmp_path / C.OFFLINE_FOLDER / "ca.key" and C.key_mode(moved) == "0600"
    assert (moved.parent.stat().st_mode & 0o777) == 0o700 and not (lab.root / "ca/ca.key").exists()
    with pytest.raises(InputError, match="not there"):
        C.take_root_key_offline(lab)
    lab.add_client("sensor-9")
    assert lab.state().root_key_offline and verify_lab(lab.root).ok
    served = C.serve(lab)
    assert [c.subject.rfc4514_string() for c in served.sent] == ["CN=localhost,O=mqtt-pki-lab",
                                                                 "CN=MQTT Lab Intermediate CA,O=mqtt-pki-lab"]
    assert dict(served.trips) == {"client": "in: CONNACK, SUBACK, its message back",
                                  "sensor-9": "in: CONNACK, SUBACK, its message back"}, str(served)
    # The mysteries copy a lab whose root key is offline: a chain lab is complete without it.
    assert C.open_trust_mystery(lab).folder.is_dir()


def test_the_root_key_stays_on_a_one_level_lab(built_lab: Path, tmp_path: Path) -> None:
    before = _digest(built_lab)
    with pytest.raises(InputError, match="no intermediate CA"):
        C.take_root_key_offline(built_lab, tmp_path / "away")
    assert _digest(built_lab) == before and not (tmp_path / "away").exists()


def test_without_mosquitto_the_stand_in_is_what_mosquitto_pub_prints(chain_src: Path, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The lab's handshake (partial chain, as Python 3.13) accepts the trust mystery; mosquitto keeps OpenSSL's
    default and refuses, so the stand-in line must be the broker's refusal, never "published"."""
    import mqtt_pki_lab.mosquitto as mosquitto_module
    from mqtt_pki_lab import mysteries as M

    trust = break_lab(chain_src, "intermediate-in-broker-trust", tmp_path / "t")
    raw = raw_errors(trust)
    assert raw.handshake_ok and M.failure_kind(raw) == "no error"
    assert M.mosquitto_failure_kind(raw) == "broker refused"
    assert M.mosquitto_failure_kind(raw_errors(chain_src)) == "no error"  # a good chain stays "published"
    if mosquitto_module.find_mosquitto() and shutil.which("mosquitto_pub"):  # the stand-in matches a real run
        real = M.mosquitto_run(trust, raw)
        assert real.real and real.output in M.MOSQUITTO_PUB_WORDS["broker refused"], real.output
    monkeypatch.setattr(mosquitto_module, "find_mosquitto", lambda *a, **k: None)
    shown = str(M.gather_evidence(trust))
    assert "Error: Protocol error (mosquitto is not installed here" in shown, shown
    assert "published" not in shown


def test_each_mystery_is_made_afresh_so_a_fixed_copy_is_broken_again(chain_src: Path, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MQTT_PKI_LAB_WORKDIR", str(tmp_path))
    lab = Lab(chain_src)
    first = C.open_missing_chain_mystery(lab)
    fixed = first.folder / "broker/server.crt"
    fixed.write_bytes((chain_src / "broker/server.crt").read_bytes())  # the student's fix
    assert verify_lab(first.folder).ok
    again = C.open_missing_chain_mystery(lab)
    assert again.folder == first.folder and len(load_certificates(fixed)) == 1 and not verify_lab(again.folder).ok


def _ca_key_tooltip(lab: Path) -> tuple[str, str]:
    from mqtt_pki_lab import diagram as D
    from mqtt_pki_lab.graph import diagram_view

    view = diagram_view(lab)
    node = next(n for n in view.files if n.file == D.CA_KEY)
    tooltip = next(n.tooltip for box in view.scene().boxes for n in box.nodes if n.id == node.id)
    return node.label, tooltip


def test_the_offline_root_key_in_the_picture_and_in_verify(chain_src: Path, built_lab: Path, tmp_path: Path) -> None:
    lab = tmp_path / "chain"
    shutil.copytree(chain_src, lab)
    label, tooltip = _ca_key_tooltip(lab)
    assert label.endswith("secret · made") and "signs only the intermediate CA's certificate" in tooltip
    assert "in ca/ until it is taken offline" in tooltip
    (lab / "ca/ca.key").unlink()  # kept offline
    label, tooltip = _ca_key_tooltip(lab)
    assert label.endswith("secret · offline") and "on device" not in label
    assert "kept offline" in tooltip and "signs every certificate" not in tooltip
    row = next(c for c in verify_lab(lab).checks if c.name == "secrets stay home")
    assert row.message.startswith("ca.key kept offline") and "only in ca/" not in row.message
    # A one-level lab keeps its words: its root signs every certificate, from ca/.
    label, tooltip = _ca_key_tooltip(built_lab)
    assert label.endswith("secret · made") and "signs every certificate" in tooltip
    row = next(c for c in verify_lab(built_lab).checks if c.name == "secrets stay home")
    assert row.message.startswith("ca.key only in ca/")
