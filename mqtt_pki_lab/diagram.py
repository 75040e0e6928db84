"""The diagram as data: roles, their files, and the arrows (steps) between them. No cryptography, no I/O.

This is the bottom layer of the package. Every face (CLI, checks, diagnoses, break-it, graph, widgets,
course) takes arrow numbers, titles, folders and file names from here; nobody keeps a private copy.

The picture it describes::

    ca/ca.key  --2-->  ca/ca.crt                     the Certificate Authority (arrows 1, 2)
         | signs (5, 8)         | copied (9)
    broker/server.key -4-> server.csr -5-> server.crt   broker/ca.crt     (arrows 3, 4, 5, 9)
    client/client.key -7-> client.csr -8-> client.crt   client/ca.crt     (arrows 6, 7, 8, 9)
    clients/NAME/...   the same four files for every further client        (arrows 6-9 again)
    10: a mutual-TLS handshake between the broker's files and each client's files

A **role** is a kind (``ca``, ``intermediate``, ``broker``, ``client``), a name and a folder. A lab holds
one root CA, one broker and any number of clients: the diagram's ``client/`` is the first client, further
ones live in ``clients/NAME/`` with the same file names. A **step** (an arrow) has a number, an id, a kind,
the role that performs it, the kinds of role it is done for, and the files it reads and writes, named by
*slot* (``key``, ``csr``, ``crt``, ``trust``) so that one arrow serves every client. :func:`bind` ties a step
to one role and gives the concrete files (a :class:`BoundStep`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

RoleKind = Literal["ca", "intermediate", "broker", "client"]
Slot = Literal["key", "csr", "crt", "trust"]
StepKind = Literal["generate-key", "self-sign", "create-csr", "sign", "hand-out", "prove"]

#: Where the clients after the first live: ``clients/NAME/``.
CLIENTS_FOLDER = "clients"
#: The kinds of role that make a key and a CSR and receive a certificate (the two boxes of the diagram).
LEAF_KINDS: tuple[RoleKind, ...] = ("broker", "client")

#: The name of each role kind's files, by slot.
FILE_NAMES: dict[str, dict[str, str]] = {
    "ca": {"key": "ca.key", "crt": "ca.crt"},
    "intermediate": {"key": "intermediate.key", "csr": "intermediate.csr", "crt": "intermediate.crt"},
    "broker": {"key": "server.key", "csr": "server.csr", "crt": "server.crt", "trust": "ca.crt"},
    "client": {"key": "client.key", "csr": "client.csr", "crt": "client.crt", "trust": "ca.crt"},
}
#: What each file is for, in one line (``{who}`` is the role's label).
_ABOUT: dict[tuple[str, str], str] = {
    ("ca", "key"): "the CA's private key: signs every certificate; the root of trust",
    ("ca", "crt"): "the CA's self-signed certificate: what everybody trusts",
    ("intermediate", "key"): "the intermediate CA's private key: signs the leaves day to day",
    ("intermediate", "csr"): "the intermediate CA's signing request, sent to the root",
    ("intermediate", "crt"): "the intermediate CA's certificate, signed by the root",
    ("broker", "key"): "the broker's private key: its secret identity",
    ("broker", "csr"): "the broker's signing request, sent to the CA",
    ("broker", "crt"): "the broker's certificate, signed by ca.key: its public ID",
    ("broker", "trust"): "copy of ca.crt: the broker verifies clients with it",
    ("client", "key"): "{who}'s private key: its secret identity",
    ("client", "csr"): "{who}'s signing request, sent to the CA",
    ("client", "crt"): "{who}'s certificate, signed by ca.key: its public ID",
    ("client", "trust"): "copy of ca.crt: {who} verifies the broker with it",
}
#: Box titles, as on the diagram.
BOX_TITLES: dict[str, str] = {
    "ca": "Private Certificate Authority\n(Your Root of Trust)",
    "intermediate": "Intermediate CA",
    "broker": "MQTT Broker (Server)",
    "client": "MQTT Client",
}


@dataclass(frozen=True)
class Role:
    """One box of the diagram: a kind, a name and the folder (inside the lab) that holds its files."""

    kind: RoleKind
    name: str
    folder: str

    @property
    def label(self) -> str:
        """How the text names it: ``the CA``, ``the broker``, ``the client``, ``client 'sensor-1'``."""
        if self.kind == "client" and self.folder != FIRST_CLIENT_FOLDER:
            return f"client {self.name!r}"
        return {"ca": "the CA", "intermediate": "the intermediate CA"}.get(self.kind, f"the {self.kind}")

    @property
    def title(self) -> str:
        """The box title: ``MQTT Client`` or ``MQTT Client sensor-1``."""
        base = BOX_TITLES[self.kind]
        return base if self.label.startswith("the ") else f"{base} {self.name}"

    @property
    def slots(self) -> tuple[str, ...]:
        """The slots this kind of role has files in (``key``, ``csr``, ``crt``, ``trust``)."""
        return tuple(FILE_NAMES[self.kind])

    def file(self, slot: str) -> LabFile:
        """This role's file in ``slot``, e.g. ``BROKER.file("crt")`` is ``broker/server.crt``."""
        who = self.label if self.label.startswith("the ") else f"client {self.name}"
        about = _ABOUT[(self.kind, slot)].format(who=who)
        return LabFile(self, FILE_NAMES[self.kind][slot], slot, slot == "key", about)  # type: ignore[arg-type]

    @property
    def files(self) -> tuple[LabFile, ...]:
        """Every file of this role, in the order the steps make them."""
        return tuple(self.file(s) for s in self.slots)

    @property
    def operating(self) -> tuple[LabFile, LabFile, LabFile]:
        """What this side needs to operate (the bottom of its box): ca.crt copy, certificate, key."""
        return self.file("trust"), self.file("crt"), self.file("key")

    def side(self, root: str | Path) -> Side:
        """The three operating files of this role in the lab folder ``root``."""
        ca, cert, key = (f.path(root) for f in self.operating)
        return Side(ca, cert, key)


@dataclass(frozen=True)
class LabFile:
    """One file of the diagram: the role that holds it, its name and slot, secret or public, what it is for."""

    role: Role
    name: str
    slot: Slot
    secret: bool
    about: str

    @property
    def kind(self) -> RoleKind:
        """The kind of the role that holds it (``ca``, ``broker``, ``client``)."""
        return self.role.kind

    @property
    def folder(self) -> str:
        """The folder inside the lab, e.g. ``broker`` or ``clients/sensor-1``."""
        return self.role.folder

    @property
    def relpath(self) -> str:
        """Path inside the lab folder, e.g. ``broker/server.key``."""
        return f"{self.role.folder}/{self.name}"

    def path(self, root: str | Path) -> Path:
        """Absolute location of this file in the lab folder ``root``."""
        return Path(root, self.role.folder, self.name)

    @property
    def label(self) -> str:
        """``SECRET 🔑`` or ``PUBLIC 📜``, as on the diagram."""
        return "SECRET 🔑" if self.secret else "PUBLIC 📜"


@dataclass(frozen=True)
class Side:
    """The three files one side of a TLS connection operates with (``cert``/``key`` None: no certificate)."""

    ca: Path
    cert: Path
    key: Path


FIRST_CLIENT_FOLDER = "client"
CA = Role("ca", "ca", "ca")
BROKER = Role("broker", "broker", "broker")
#: The diagram's client box: the lab's first client, in ``client/``.
FIRST_CLIENT = Role("client", "client", FIRST_CLIENT_FOLDER)

#: Names a further client may have: what MQTT usernames commonly are. No control character, no ``/``,
#: no space or quote (nothing that would break a config line or a path), not starting with ``.`` or ``-``.
CLIENT_NAME = re.compile(r"[A-Za-z0-9_@][A-Za-z0-9_.@-]{0,63}")


def client_role(name: str) -> Role:
    """The role of a further client: ``clients/NAME/`` (the name is checked by :mod:`~mqtt_pki_lab.names`)."""
    return Role("client", name, f"{CLIENTS_FOLDER}/{name}")


# --- the files of the three boxes, by name (the diagram's own ten files) ---------------------------------

CA_KEY, CA_CERT = CA.file("key"), CA.file("crt")
SERVER_KEY, SERVER_CSR, SERVER_CERT, BROKER_CA = (BROKER.file(s) for s in ("key", "csr", "crt", "trust"))
CLIENT_KEY, CLIENT_CSR, CLIENT_CERT, CLIENT_CA = (FIRST_CLIENT.file(s) for s in ("key", "csr", "crt", "trust"))


# --- the steps ----------------------------------------------------------------------------------------------

#: A file a step reads or writes: ``("self", slot)`` is the file of the role the step is done for,
#: ``("ca", slot)`` / ``("broker", slot)`` the file of that role of the lab.
FileRef = tuple[str, str]


@dataclass(frozen=True)
class Step:
    """One arrow of the diagram, for any role of the kinds in ``for_kinds``."""

    number: int
    id: str
    kind: StepKind
    performer: RoleKind
    """Who carries it out: ``ca`` (signing, handing out), ``broker`` or ``client`` (own key and CSR)."""
    for_kinds: tuple[RoleKind, ...]
    """The kinds of role it is done for: whose files it makes (the handshake: each client's, with the broker)."""
    title: str
    """The title for the diagram's own roles, e.g. ``client: generate client.key``."""
    reads: tuple[FileRef, ...]
    writes: tuple[FileRef, ...]
    why: str

    def applies_to(self, role: Role) -> bool:
        return role.kind in self.for_kinds


def _resolve(ref: FileRef, role: Role) -> LabFile:
    who, slot = ref
    owner = {"self": role, "ca": CA, "broker": BROKER}[who]
    return owner.file(slot)


@dataclass(frozen=True)
class BoundStep:
    """A step done for one role: the concrete files it reads and writes, and its title for that role."""

    step: Step
    role: Role

    @property
    def number(self) -> int:
        return self.step.number

    @property
    def reads(self) -> tuple[LabFile, ...]:
        return tuple(_resolve(r, self.role) for r in self.step.reads)

    @property
    def writes(self) -> tuple[LabFile, ...]:
        return tuple(_resolve(r, self.role) for r in self.step.writes)

    @property
    def performer(self) -> Role:
        """The role that carries the step out (the CA signs a client's CSR)."""
        return self.role if self.step.performer == self.role.kind else {"ca": CA, "broker": BROKER}[
            self.step.performer]

    @property
    def title(self) -> str:
        """``client: generate client.key``; for a further client ``client 'sensor-1': generate client.key``."""
        if self.role.kind == "client" and self.role.folder != FIRST_CLIENT_FOLDER:
            return self.step.title.replace("client", self.role.label, 1) if self.step.title.startswith("client") \
                else f"{self.step.title} ({self.role.label})"
        return self.step.title


STEPS: tuple[Step, ...] = (
    Step(1, "ca-key", "generate-key", "ca", ("ca",), "CA: generate ca.key", (), (("self", "key"),),
         "The CA's private key is the root of all trust in this system: whoever holds it can mint a "
         "certificate for any broker or client. It is made first, stays in ca/ (mode 0600), and is never "
         "copied anywhere else."),
    Step(2, "ca-cert", "self-sign", "ca", ("ca",), "CA: self-sign ca.crt", (("self", "key"),), (("self", "crt"),),
         "ca.crt is the CA's public key wrapped in a certificate that the CA signed itself. It says "
         "'I am a CA and may sign certificates': basicConstraints CA:TRUE (marked critical, which strict "
         "verifiers require) and keyUsage with keyCertSign (present, which they also require; the lab "
         "marks it critical, as RFC 5280 recommends). Everybody who should trust the CA gets a copy."),
    Step(3, "server-key", "generate-key", "broker", ("broker",), "broker: generate server.key", (),
         (("self", "key"),),
         "The broker's secret identity. The CA only ever needs the public half, which travels inside the "
         "CSR; the private key stays with the broker."),
    Step(4, "server-csr", "create-csr", "broker", ("broker",), "broker: create server.csr", (("self", "key"),),
         (("self", "csr"),),
         "The certificate signing request carries the broker's public key and the names clients will use "
         "to reach it (its SAN), signed with server.key to prove the broker holds that key."),
    Step(5, "server-cert", "sign", "ca", ("broker",), "CA: sign server.csr into server.crt",
         (("self", "csr"), ("ca", "crt"), ("ca", "key")), (("self", "crt"),),
         "The CA checks the CSR's signature, then signs a certificate with ca.key: serverAuth only, the "
         "broker's names in the SAN. A client that trusts ca.crt will now accept this broker under those "
         "names."),
    Step(6, "client-key", "generate-key", "client", ("client",), "client: generate client.key", (),
         (("self", "key"),),
         "The client's secret identity, for mutual TLS: the broker will ask the client to prove who it is, "
         "and only the holder of client.key can."),
    Step(7, "client-csr", "create-csr", "client", ("client",), "client: create client.csr", (("self", "key"),),
         (("self", "csr"),),
         "The client asks for a certificate in its name. That name (the Common Name) becomes its MQTT "
         "username when the broker uses the certificate as identity."),
    Step(8, "client-cert", "sign", "ca", ("client",), "CA: sign client.csr into client.crt",
         (("self", "csr"), ("ca", "crt"), ("ca", "key")), (("self", "crt"),),
         "The CA signs the client's certificate: clientAuth only, so it cannot be used to impersonate the "
         "broker. A broker that trusts ca.crt will now let this client in."),
    Step(9, "hand-out", "hand-out", "ca", ("broker", "client"), "hand ca.crt to the broker and the client",
         (("ca", "crt"),), (("self", "trust"),),
         "Each side needs ca.crt to check the other: the broker verifies client certificates with it, the "
         "client verifies the broker's. Only the public ca.crt is copied; ca.key stays in ca/."),
    Step(10, "handshake", "prove", "client", ("client",), "prove it: mutual-TLS handshake",
         (("broker", "trust"), ("broker", "crt"), ("broker", "key"), ("self", "trust"), ("self", "crt"),
          ("self", "key")), (),
         "A TLS handshake between the broker's three files and the client's three files: each side "
         "checks the other's certificate against its ca.crt, and proves it holds its private key."),
)
STEP_BY_ID: dict[str, Step] = {s.id: s for s in STEPS}
STEP_BY_NUMBER: dict[int, Step] = {s.number: s for s in STEPS}
#: The arrows that build files (1 to 9); the last one proves them.
BUILD_STEPS: tuple[Step, ...] = tuple(s for s in STEPS if s.writes)
PROOF_STEP: Step = next(s for s in STEPS if s.kind == "prove")
HANDSHAKE_ARROW = PROOF_STEP.number
#: The arrows that make one more client: its key, CSR, certificate and ca.crt copy.
CLIENT_STEPS: tuple[Step, ...] = tuple(s for s in BUILD_STEPS if "client" in s.for_kinds)
#: The arrow that writes each slot of each kind of role: ``ARROW_FOR[("client", "crt")] == 8``.
ARROW_FOR: dict[tuple[str, str], int] = {
    (kind, ref[1]): s.number for s in BUILD_STEPS for kind in s.for_kinds for ref in s.writes if ref[0] == "self"}
#: The short titles of the arrows.
ARROW_TITLES: dict[int, str] = {s.number: s.title for s in STEPS}


def arrow_of(file: LabFile) -> int:
    """The number of the arrow that makes ``file`` (``client/client.crt`` -> 8)."""
    return ARROW_FOR[(file.kind, file.slot)]


def step_of(file: LabFile) -> BoundStep:
    """The step, bound to the file's role, that makes ``file``."""
    return BoundStep(STEP_BY_NUMBER[arrow_of(file)], file.role)


def bind(step: Step, role: Role) -> BoundStep:
    """``step`` done for ``role`` (which must be of a kind the step is for)."""
    if not step.applies_to(role):
        raise ValueError(f"arrow {step.number} ({step.title}) is not done for {role.label}")
    return BoundStep(step, role)


@dataclass(frozen=True)
class Roles:
    """The roles of one lab: the CA, the broker and its clients (the first is the diagram's ``client/``)."""

    clients: tuple[Role, ...] = (FIRST_CLIENT,)

    @property
    def ca(self) -> Role:
        return CA

    @property
    def broker(self) -> Role:
        return BROKER

    @property
    def all(self) -> tuple[Role, ...]:
        return (CA, BROKER, *self.clients)

    @property
    def sides(self) -> tuple[Role, ...]:
        """The roles that operate with three files: the broker, then each client."""
        return (BROKER, *self.clients)

    def files(self) -> tuple[LabFile, ...]:
        return tuple(f for role in self.all for f in role.files)

    def client(self, name: str) -> Role | None:
        """The client called ``name`` (a further client's name, or ``client`` for the first), or None."""
        return next((c for c in self.clients if c.name == name), None)

    def plan(self, steps: Iterable[Step] = STEPS) -> tuple[BoundStep, ...]:
        """Every step bound to every role it is done for, in the order a build runs them."""
        return tuple(BoundStep(s, r) for s in steps for r in self.all if s.applies_to(r))


#: The diagram's own three boxes: one CA, one broker, one client.
DIAGRAM = Roles()
#: Every file of the diagram's three boxes, in the order the steps make them.
ALL_FILES: tuple[LabFile, ...] = tuple(f for b in DIAGRAM.plan(BUILD_STEPS) for f in b.writes)
#: What each side of the diagram needs to operate: ca.crt copy, certificate, key.
OPERATING_FILES: dict[str, tuple[LabFile, LabFile, LabFile]] = {
    "broker": BROKER.operating, "client": FIRST_CLIENT.operating}


def side(root: str | Path, role: str | Role) -> Side:
    """The operating files of a role (``"broker"``, ``"client"`` or a :class:`Role`) in the lab ``root``."""
    found = role if isinstance(role, Role) else {"broker": BROKER, "client": FIRST_CLIENT}[role]
    return found.side(root)
