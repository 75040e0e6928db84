"""More clients: the diagram's client box, repeated for every device that connects to the broker.

The lab's first client lives in ``client/``. Each further device gets a folder of its own under
``clients/NAME/`` with the same three operating files (``ca.crt``, ``client.crt``, ``client.key``) and its
CSR, made by the same arrows 6, 7, 8 and 9 with its own name as Common Name (its MQTT username).
"""

from __future__ import annotations

from pathlib import Path

from . import layout as L
from .csr import create_csr
from .errors import InputError
from .files import ensure_dir, read_bytes, write_atomic
from .keys import DEFAULT_KEY_TYPE, generate_key, load_private_key, save_key
from .pem import load_certificate, save_pem
from .profile import DEFAULT_LEAF_DAYS, check_name
from .sign import sign_csr

CLIENTS_FOLDER = "clients"


def client_side(root: str | Path, name: str) -> L.Side:
    """The operating files of the extra client ``name`` (``clients/NAME/...``)."""
    folder = Path(root) / CLIENTS_FOLDER / name
    return L.Side(folder / "ca.crt", folder / "client.crt", folder / "client.key")


def add_client(root: str | Path, name: str, *, key_type: str = DEFAULT_KEY_TYPE, days: int = DEFAULT_LEAF_DAYS,
               passphrase: bytes | None = None) -> L.Side:
    """Make one more client for the lab ``root``: its key, CSR, certificate signed by ``ca.key``, and ca.crt.

    Runs arrows 6-9 for ``name`` (its Common Name and MQTT username) into ``clients/NAME/``; the lab's
    CA must exist (``passphrase`` unlocks an encrypted ``ca.key``). Refuses a name already taken.
    """
    root = Path(root)
    check_name(name, "--client-name")
    ca_cert_path, ca_key_path = L.CA_CERT.path(root), L.CA_KEY.path(root)
    ca_cert = load_certificate(ca_cert_path)
    ca_key = load_private_key(ca_key_path, passphrase)
    side = client_side(root, name)
    if side.cert.exists() or name == L.CLIENT_CERT.role:
        raise InputError(side.cert.parent, f"a client called {name!r} exists already; choose another name")
    ensure_dir(side.cert.parent)
    key = generate_key(key_type)
    csr = create_csr(key, "client", [name])
    cert = sign_csr(csr, ca_cert, ca_key, "client", days, ca_key_path=ca_key_path)
    save_key(key, side.key)
    save_pem(csr, side.cert.with_suffix(".csr"))
    save_pem(cert, side.cert)
    write_atomic(side.ca, read_bytes(ca_cert_path), secret=False)
    return side


def list_clients(root: str | Path) -> list[str]:
    """The names of the extra clients of a lab (folders under ``clients/`` with a certificate)."""
    folder = Path(root) / CLIENTS_FOLDER
    return sorted(p.name for p in folder.iterdir() if (p / "client.crt").is_file()) if folder.is_dir() else []
