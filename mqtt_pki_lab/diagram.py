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
one root CA, optionally an intermediate CA (``intermediate/``, steps 13-15: then it signs arrows 5 and 8 and
the root signs only it), one broker and any number of clients: the diagram's ``client/`` is the first client,
further ones live in ``clients/NAME/`` with the same file names. A **step** (an arrow) has a number, an id, a kind,
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
StepKind = Literal["generate-key", "self-sign", "create-csr", "sign", "sign-ca", "hand-out", "prove", "revoke",
                   "renew", "rotate"]

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
        if self.folder == NEXT_CA_FOLDER:
            return "the new root CA"
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
#: The broker's policy beside its three files: ``broker/acl`` (mosquitto's acl_file format; see
#: :mod:`~mqtt_pki_lab.acl`). Not a slot of :data:`FILE_NAMES`: no arrow makes it, ``build`` writes a default.
ACL_FILE = "acl"
ACL_ABOUT = "the broker's policy: which topics each client may read and write (mosquitto's acl_file format)"
#: The diagram's client box: the lab's first client, in ``client/``.
FIRST_CLIENT = Role("client", "client", FIRST_CLIENT_FOLDER)
#: The optional intermediate CA (``build --intermediate``): ``intermediate/`` holds its key, CSR and certificate.
#: When a lab has one, it signs the leaves (arrows 5 and 8) and the root signs only it (step 15).
INTERMEDIATE = Role("intermediate", "intermediate", "intermediate")
#: Where a CA rotation keeps the new root during the overlap (``mqtt-pki-lab rotate DIR start`` makes it,
#: ``finish`` moves it into ``ca/``): ``ca-next/ca.key`` (0600) and ``ca-next/ca.crt``, the folder 0700 like
#: ``ca/`` (:mod:`~mqtt_pki_lab.rotate`). Not one of :meth:`Roles.all`: build, status and the diagram view
#: know one root.
NEXT_CA_FOLDER = "ca-next"
NEXT_CA = Role("ca", "ca-next", NEXT_CA_FOLDER)

#: Names a further client may have: what MQTT usernames commonly are. No control character, no ``/``,
#: no space or quote (nothing that would break a config line or a path), not starting with ``.`` or ``-``.
CLIENT_NAME = re.compile(r"[A-Za-z0-9_@][A-Za-z0-9_.@-]{0,63}")


def client_role(name: str) -> Role:
    """The role of a further client: ``clients/NAME/`` (the name is checked by :mod:`~mqtt_pki_lab.names`)."""
    return Role("client", name, f"{CLIENTS_FOLDER}/{name}")


#: The note the CA writes into a role's folder when it signed a CSR whose private key was generated on the
#: device (``mqtt-pki-lab request`` there, ``sign`` at the CA): the key's slot holds this public note instead
#: of the key, which never enters the lab. A folder with the note and no key is complete; a key beside the
#: note is a leak (the device's secret has been copied into the CA's folder).
DEVICE_KEY_NOTE = "key-on-device.txt"


def device_note(role: Role) -> LabFile:
    """The note that says ``role``'s private key is held by its device (public, in the key's slot)."""
    about = f"note: {role.label}'s private key was generated on the device and never entered this lab"
    return LabFile(role, DEVICE_KEY_NOTE, "key", False, about)


# --- the files of the three boxes, by name (the diagram's own ten files) ---------------------------------

CA_KEY, CA_CERT = CA.file("key"), CA.file("crt")
SERVER_KEY, SERVER_CSR, SERVER_CERT, BROKER_CA = (BROKER.file(s) for s in ("key", "csr", "crt", "trust"))
CLIENT_KEY, CLIENT_CSR, CLIENT_CERT, CLIENT_CA = (FIRST_CLIENT.file(s) for s in ("key", "csr", "crt", "trust"))


# --- the steps ----------------------------------------------------------------------------------------------

#: A file a step reads or writes: ``("self", slot)`` is the file of the role the step is done for,
#: ``("ca", slot)`` / ``("broker", slot)`` the file of that role of the lab, ``("issuer", slot)`` the file
#: of the CA that signs the leaves: the root (``ca/``) in a one-level lab, ``intermediate/`` when there is one.
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


def _resolve(ref: FileRef, role: Role, issuer: Role) -> LabFile:
    who, slot = ref
    owner = {"self": role, "ca": CA, "broker": BROKER, "issuer": issuer}[who]
    return owner.file(slot)


@dataclass(frozen=True)
class BoundStep:
    """A step done for one role: the concrete files it reads and writes, and its title for that role."""

    step: Step
    role: Role
    issuer: Role = CA
    """The CA that signs the leaves in this lab: the root (``CA``) or the :data:`INTERMEDIATE`."""

    @property
    def number(self) -> int:
        return self.step.number

    @property
    def reads(self) -> tuple[LabFile, ...]:
        return tuple(_resolve(r, self.role, self.issuer) for r in self.step.reads)

    @property
    def writes(self) -> tuple[LabFile, ...]:
        return tuple(_resolve(r, self.role, self.issuer) for r in self.step.writes)

    @property
    def signs_with_issuer(self) -> bool:
        """True when the step uses the issuing CA's key (arrows 5, 8; revoke, renew): the intermediate's, if any."""
        return ("issuer", "key") in self.step.reads

    @property
    def performer(self) -> Role:
        """The role that carries the step out (the CA signs a client's CSR; the intermediate, when the lab has one)."""
        if self.step.performer == self.role.kind:
            return self.role
        if self.signs_with_issuer:
            return self.issuer
        return {"ca": CA, "broker": BROKER}[self.step.performer]

    @property
    def title(self) -> str:
        """``client: generate client.key``; for a further client ``client 'sensor-1': generate client.key``;
        ``intermediate CA: sign ...`` for the arrows the intermediate does in a lab that has one."""
        title = self.step.title
        if self.signs_with_issuer and self.issuer.kind == "intermediate" and title.startswith("CA:"):
            title = "intermediate " + title
        if self.role.kind == "client" and self.role.folder != FIRST_CLIENT_FOLDER:
            return title.replace("client", self.role.label, 1) if title.startswith("client") \
                else f"{title} ({self.role.label})"
        return title


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
         (("self", "csr"), ("issuer", "crt"), ("issuer", "key")), (("self", "crt"),),
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
         (("self", "csr"), ("issuer", "crt"), ("issuer", "key")), (("self", "crt"),),
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


# --- day two: steps of the same model, after the build ----------------------------------------------------

#: The certificate revocation list (RFC 5280 §5). The issuing CA keeps it beside its certificate
#: (``ca/crl.pem``: the record of who is revoked) and hands a copy to the broker (``broker/crl.pem``), the
#: only side that checks it (mosquitto's ``crlfile``). Not a slot of :data:`FILE_NAMES`: the build never
#: makes it, and the roles' file lists stay the diagram's ten files.
CRL_NAME = "crl.pem"

#: Day-two steps: done on a running lab, never by ``build`` (they are not in :data:`STEPS` or
#: :data:`BUILD_STEPS`, so build, status and the diagram view are unchanged), but diagnoses and the CLI name
#: them by number and title like the arrows. (Numbers 13-15 are the intermediate CA's steps,
#: :data:`INTERMEDIATE_STEPS` below: a further day-two step takes the next number after them.)
DAY_TWO_STEPS: tuple[Step, ...] = (
    Step(11, "revoke", "revoke", "ca", ("client",), "CA: revoke a client's certificate (crl.pem)",
         (("self", "crt"), ("issuer", "crt"), ("issuer", "key")), (),
         "A stolen or retired device still holds a certificate that is valid for months: nothing in it can be "
         "taken back. So the CA publishes a certificate revocation list (CRL, RFC 5280 §5): the serial "
         "numbers it no longer stands behind, signed with ca.key, with a date by which a newer list will "
         "exist (nextUpdate). It writes ca/crl.pem and copies it to broker/crl.pem; the broker (mosquitto's "
         "crlfile) then refuses those clients. After nextUpdate OpenSSL refuses every client, so the list is "
         "signed again in time (mqtt-pki-lab crl DIR --refresh)."),
    Step(12, "renew", "renew", "ca", ("broker", "client"), "CA: renew a certificate (same names, new serial)",
         (("self", "key"), ("self", "crt"), ("issuer", "crt"), ("issuer", "key")), (("self", "csr"), ("self", "crt")),
         "A certificate ends on its notAfter and is never extended. Before that, the role makes a CSR again "
         "for the names its certificate has (with its key, or a new one: arrows 4-5 or 7-8 again, 3-5 or 6-8 "
         "with --new-key) and the CA signs it with the same profile: a new serial number, a new validity "
         "window. The old files are kept in backups/. A client's next connection uses the new certificate; "
         "a running mosquitto reads its certfile and keyfile again on SIGHUP (mqtt-pki-lab renew DIR NAME)."),
    Step(16, "rotate-start", "rotate", "ca", ("broker", "client"),
         "CA rotation: make a new root, hand out both roots",
         (("ca", "crt"), ("self", "trust")), (("self", "trust"),),
         "A root certificate ends too (ten years here), or its key may be known to someone: then the root itself "
         "is replaced. Every device trusts the old root, so the new one cannot simply take its place: the CA makes "
         "a new key and self-signed certificate in ca-next/, and hands every side a bundle of both roots in its "
         "ca.crt. From then on a certificate signed by either root is accepted by everyone who has the bundle. "
         "A running mosquitto loads the new ca.crt on SIGHUP when it has a crlfile (it then builds its whole TLS "
         "context anew); without one it reads cafile only when it starts: restart it."),
    Step(17, "rotate-reissue", "rotate", "ca", ("broker", "client"),
         "CA rotation: re-issue the certificates under the new root",
         (("self", "key"), ("self", "crt"), ("ca", "crt")), (("self", "csr"), ("self", "crt")),
         "Each broker and client certificate is signed again, now by the new root, for the same names and (by "
         "default) the same key: nothing secret moves. Because every side trusts both roots, a side with a new "
         "certificate and a side with an old one still accept each other, so the fleet can move one device at a "
         "time. A device that never got the bundle is the one that breaks: it trusts only the old root, and "
         "refuses a broker that presents a certificate of the new one."),
    Step(18, "rotate-finish", "rotate", "ca", ("broker", "client"),
         "CA rotation: retire the old root",
         (("self", "crt"), ("self", "trust")), (("self", "trust"),),
         "When every certificate is signed by the new root and every side trusts it, the old root is retired: "
         "the new root moves into ca/, every ca.crt shrinks to the new root alone, and the old root's key and "
         "certificate are archived in backups/ (kept 0600, never deleted). Refused while any certificate still "
         "depends on the old root: retiring it then would cut those devices off. Restart mosquitto so that it "
         "stops trusting the old root."),
)
DAY_TWO_BY_ID: dict[str, Step] = {s.id: s for s in DAY_TWO_STEPS}
#: The revocation step (11).
REVOKE_STEP: Step = DAY_TWO_BY_ID["revoke"]
#: The renewal step (12).
RENEW_STEP: Step = DAY_TWO_BY_ID["renew"]
#: The three steps of a CA rotation (16-18: start, re-issue, finish; :mod:`~mqtt_pki_lab.rotate`).
ROTATE_STEPS: tuple[Step, ...] = tuple(DAY_TWO_BY_ID[i] for i in ("rotate-start", "rotate-reissue", "rotate-finish"))


# --- a chain of three: the optional intermediate CA (steps 13-15; further day-two steps take 16 on) ---------

#: The steps of the intermediate CA, done by ``build --intermediate`` between arrows 2 and 3. They are a tuple
#: of their own, not in :data:`STEPS` or :data:`BUILD_STEPS`: :meth:`Roles.plan` binds them only when the lab
#: has an intermediate (``Roles(intermediate=True)``), so a one-level lab, its status and its picture stay
#: the seed's. With an intermediate, arrows 5 and 8 read the intermediate's files (the ``"issuer"`` owner),
#: arrow 9 still hands out the root alone (the trust anchor), and every leaf file holds the leaf followed by
#: the intermediate's certificate: the chain each side presents (RFC 8446 §4.4.2: the sender's certificate
#: first, then each one certifying the one before).
INTERMEDIATE_STEPS: tuple[Step, ...] = (
    Step(13, "intermediate-key", "generate-key", "intermediate", ("intermediate",),
         "intermediate CA: generate intermediate.key", (), (("self", "key"),),
         "The intermediate CA's private key signs every broker and client certificate day to day. The root's "
         "key then signs one certificate only (the intermediate's) and can be kept offline: on a USB stick in a "
         "safe, or encrypted with a passphrase nobody types on a working day. If intermediate.key leaks, the "
         "root makes a new intermediate; the ca.crt every device trusts stays the same."),
    Step(14, "intermediate-csr", "create-csr", "intermediate", ("intermediate",),
         "intermediate CA: create intermediate.csr", (("self", "key"),), (("self", "csr"),),
         "The intermediate asks the root for a certificate, as a broker or a client does: its public key and its "
         "name, signed with intermediate.key to prove it holds the key. The root decides what the certificate "
         "says; nothing is copied from the CSR."),
    Step(15, "intermediate-cert", "sign-ca", "ca", ("intermediate",),
         "root CA: sign intermediate.csr into intermediate.crt", (("self", "csr"), ("ca", "crt"), ("ca", "key")),
         (("self", "crt"),),
         "The root signs a CA certificate for the intermediate: basicConstraints CA:TRUE with pathLenConstraint 0 "
         "(critical: it may sign leaves but no further CA; RFC 5280 §4.2.1.9), keyUsage keyCertSign and cRLSign "
         "(critical), ending no later than the root. The root itself says pathLenConstraint 1: one CA may stand "
         "below it. Clients and the broker still trust only ca.crt; each side sends its certificate followed by "
         "intermediate.crt, so the other can build the chain leaf -> intermediate -> root."),
)
INTERMEDIATE_BY_ID: dict[str, Step] = {s.id: s for s in INTERMEDIATE_STEPS}
#: The step that certifies the intermediate (15): the only one that needs the root's key in a chain of three.
INTERMEDIATE_CERT_STEP: Step = INTERMEDIATE_BY_ID["intermediate-cert"]
ARROW_FOR.update({("intermediate", s.writes[0][1]): s.number for s in INTERMEDIATE_STEPS})
#: The file names of the intermediate's box (``intermediate/intermediate.crt``).
INTERMEDIATE_KEY, INTERMEDIATE_CSR, INTERMEDIATE_CERT = (INTERMEDIATE.file(s) for s in ("key", "csr", "crt"))


def chain_build_steps(intermediate: bool) -> tuple[Step, ...]:
    """The build steps in the order a build runs them: arrows 1-9, with 13-15 after arrow 2 when the lab has
    an intermediate (it must exist before it signs arrows 5 and 8)."""
    if not intermediate:
        return BUILD_STEPS
    return (*BUILD_STEPS[:2], *INTERMEDIATE_STEPS, *BUILD_STEPS[2:])


def any_step(number: int) -> Step | None:
    """The step numbered ``number``: an arrow (1-10), a day-two step (11, 12...) or an intermediate's (13-15)."""
    return STEP_BY_NUMBER.get(number) or next(
        (s for s in (*DAY_TWO_STEPS, *INTERMEDIATE_STEPS) if s.number == number), None)


def step_label(number: int) -> str:
    """How the text names a step: ``arrow 8`` for the picture's arrows (1-10), ``step 11`` for a day-two step."""
    return f"arrow {number}" if number in ARROW_TITLES else f"step {number}"


def step_title(number: int) -> str | None:
    """The title of an arrow (1-10), a day-two step (11...) or an intermediate's step (13-15), or None."""
    found = any_step(number)
    return found.title if found is not None else None


def arrow_of(file: LabFile) -> int:
    """The number of the arrow that makes ``file`` (``client/client.crt`` -> 8)."""
    return ARROW_FOR[(file.kind, file.slot)]


def step_of(file: LabFile, issuer: Role = CA) -> BoundStep:
    """The step, bound to the file's role, that makes ``file`` (``issuer``: the lab's issuing CA)."""
    return BoundStep(any_step(arrow_of(file)), file.role, issuer)  # type: ignore[arg-type]


def bind(step: Step, role: Role, issuer: Role = CA) -> BoundStep:
    """``step`` done for ``role`` (which must be of a kind the step is for); ``issuer`` signs the leaves
    (the root, or :data:`INTERMEDIATE` in a chain of three)."""
    if not step.applies_to(role):
        raise ValueError(f"arrow {step.number} ({step.title}) is not done for {role.label}")
    return BoundStep(step, role, issuer)


@dataclass(frozen=True)
class Roles:
    """The roles of one lab: the CA, the optional intermediate CA, the broker and its clients (the first is the
    diagram's ``client/``)."""

    clients: tuple[Role, ...] = (FIRST_CLIENT,)
    intermediate: bool = False
    """True when the lab has an intermediate CA (``intermediate/``), which then signs the leaves."""

    @property
    def ca(self) -> Role:
        return CA

    @property
    def broker(self) -> Role:
        return BROKER

    @property
    def issuer(self) -> Role:
        """The CA that signs the leaves (and the CRL): the intermediate when there is one, else the root."""
        return INTERMEDIATE if self.intermediate else CA

    @property
    def cas(self) -> tuple[Role, ...]:
        """The CAs, root first: ``(CA,)`` or ``(CA, INTERMEDIATE)``."""
        return (CA, INTERMEDIATE) if self.intermediate else (CA,)

    @property
    def build_steps(self) -> tuple[Step, ...]:
        """The steps a build of this lab runs, in order (:func:`chain_build_steps`)."""
        return chain_build_steps(self.intermediate)

    @property
    def all(self) -> tuple[Role, ...]:
        return (*self.cas, BROKER, *self.clients)

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
        """Every step bound to every role it is done for, in the order a build runs them (the intermediate's
        steps bind only when the lab has one; arrows 5 and 8 read the issuing CA's files)."""
        return tuple(BoundStep(s, r, self.issuer) for s in steps for r in self.all if s.applies_to(r))


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
