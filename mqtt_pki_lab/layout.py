"""The diagram's three boxes on disk: which file lives in which folder, and whether it is secret.

::

    pki/ca/ca.key            SECRET, 0600, the only copy of the CA's key; never copied elsewhere
    pki/ca/ca.crt            public
    pki/broker/server.key    SECRET, 0600
    pki/broker/server.csr    public
    pki/broker/server.crt    public
    pki/broker/ca.crt        public, to verify clients
    pki/client/client.key    SECRET, 0600
    pki/client/client.csr    public
    pki/client/client.crt    public
    pki/client/ca.crt        public, to verify the broker
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class LabFile:
    """One file of the diagram: the role (folder) that holds it, its name, and whether it is secret."""

    role: str
    name: str
    secret: bool
    about: str

    @property
    def relpath(self) -> str:
        """Path inside the lab folder, e.g. ``broker/server.key``."""
        return f"{self.role}/{self.name}"

    def path(self, root: str | Path) -> Path:
        """Absolute location of this file in the lab folder ``root``."""
        return Path(root, self.role, self.name)

    @property
    def label(self) -> str:
        """``SECRET 🔑`` or ``PUBLIC 📜``, as on the diagram."""
        return "SECRET 🔑" if self.secret else "PUBLIC 📜"


CA_KEY = LabFile("ca", "ca.key", True, "the CA's private key: signs every certificate; the root of trust")
CA_CERT = LabFile("ca", "ca.crt", False, "the CA's self-signed certificate: what everybody trusts")
SERVER_KEY = LabFile("broker", "server.key", True, "the broker's private key: its secret identity")
SERVER_CSR = LabFile("broker", "server.csr", False, "the broker's signing request, sent to the CA")
SERVER_CERT = LabFile("broker", "server.crt", False, "the broker's certificate, signed by ca.key: its public ID")
BROKER_CA = LabFile("broker", "ca.crt", False, "copy of ca.crt: the broker verifies clients with it")
CLIENT_KEY = LabFile("client", "client.key", True, "the client's private key: its secret identity")
CLIENT_CSR = LabFile("client", "client.csr", False, "the client's signing request, sent to the CA")
CLIENT_CERT = LabFile("client", "client.crt", False, "the client's certificate, signed by ca.key: its public ID")
CLIENT_CA = LabFile("client", "ca.crt", False, "copy of ca.crt: the client verifies the broker with it")

#: Every file of the diagram, in the order the steps make them.
ALL_FILES: tuple[LabFile, ...] = (CA_KEY, CA_CERT, SERVER_KEY, SERVER_CSR, SERVER_CERT, CLIENT_KEY, CLIENT_CSR,
                                  CLIENT_CERT, BROKER_CA, CLIENT_CA)
#: What each side needs to operate (the bottom of the diagram's boxes): CA copy, certificate, key.
OPERATING_FILES: dict[str, tuple[LabFile, LabFile, LabFile]] = {
    "broker": (BROKER_CA, SERVER_CERT, SERVER_KEY),
    "client": (CLIENT_CA, CLIENT_CERT, CLIENT_KEY),
}


@dataclass(frozen=True)
class Side:
    """The three files one side of a TLS connection operates with."""

    ca: Path
    cert: Path
    key: Path


def side(root: str | Path, role: str) -> Side:
    """The operating files of ``broker`` or ``client`` in the lab folder ``root``."""
    ca, cert, key = OPERATING_FILES[role]
    return Side(ca.path(root), cert.path(root), key.path(root))
