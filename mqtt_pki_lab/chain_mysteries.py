"""Notebook 11 (a longer chain): the second lab with an intermediate CA, what each file holds, and two mysteries.

The course lab (``workdir()/pki``) stays one-level, as notebooks 10 and 12 expect; this lesson builds a second lab,
``workdir()/chain``, with ``BuildOptions(intermediate=True)`` (``mqtt-pki-lab build DIR --intermediate``: the
root signs ``intermediate/intermediate.crt``, the intermediate signs the leaves). Its helpers:

* :func:`chain_lab`: that lab, built once (steps 1-2, 13-15, 3-9), then reused as it is on disk;
* :func:`holdings`: what each certificate file holds, in order (the chain a side presents, the anchors it trusts);
* :func:`take_root_key_offline`: move ``ca/ca.key`` out of the lab, into a folder of its own (0700, the key
  0600), as a CA keeps its root key on an offline machine; day to day only the intermediate's key signs;
* :func:`serve`: a real broker (mosquitto when installed, the embedded one otherwise) on the lab's files: the chain
  it sends on the wire, and each client's MQTT round trip;
* the mysteries, each a break-it scenario of the chain on a copy under ``workdir()/mysteries/``, made afresh each
  time it is opened (a copy the student fixed is broken again): **the broker nobody
  can reach** (:func:`open_missing_chain_mystery`, scenario ``server-without-intermediate``; asked: the arrow at
  fault) and **Python says yes, mosquitto says no** (:func:`open_trust_mystery`, scenario
  ``intermediate-in-broker-trust``; asked: the file at fault). The evidence is what the tools print
  (:class:`~mqtt_pki_lab.mysteries.Case`); the judges and the stories are in :mod:`mqtt_pki_lab.exercises.chain`.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from html import escape
from pathlib import Path

from cryptography import x509

from . import diagram as L
from .coursework import workdir
from .mysteries import MYSTERY_FOLDER, Case
from .steps import BuildOptions, Lab

#: The second lab of notebook 11, under the course's work folder.
CHAIN_FOLDER = "chain"
#: Where :func:`take_root_key_offline` puts the root's key (under the work folder, outside every lab).
OFFLINE_FOLDER = "offline-root-key"
#: The folders (under ``workdir()/mysteries/``) of the mysteries' broken copies: numbered, naming no answer.
MISSING_FOLDER, TRUST_FOLDER = "chain-mystery-1", "chain-mystery-2"
#: The certificate files :func:`holdings` shows: what each side presents, what it trusts, and the two CAs.
SHOWN_FILES = ("broker/server.crt", "client/client.crt", "broker/ca.crt", "client/ca.crt",
               "intermediate/intermediate.crt", "ca/ca.crt")


def _pre(text: str) -> str:
    return f"<pre style='margin:0;white-space:pre-wrap'>{escape(text)}</pre>"


class _Text(str):
    """A few lines of text, shown in a notebook as a terminal would."""

    __slots__ = ()

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        return _pre(str(self))


def chain_lab(key_type: str | None = None) -> Lab:
    """The lesson's second lab, ``workdir()/chain``, with an intermediate CA: built on the first call (every step,
    as ``mqtt-pki-lab build DIR --intermediate`` does), then taken as it is on disk (a root key moved offline
    stays offline)."""
    root = workdir() / CHAIN_FOLDER
    if (root / L.INTERMEDIATE.folder).is_dir():
        return Lab(root)
    lab = Lab(root, BuildOptions(intermediate=True, **({"key_type": key_type} if key_type else {})))
    lab.build_all()
    return lab


def role_of(cert: x509.Certificate) -> str:
    """leaf, intermediate CA or root CA, from the certificate itself (basicConstraints, self-signed or not)."""
    from .certificates import is_ca

    if not is_ca(cert):
        return "leaf"
    return "root CA" if cert.issuer == cert.subject else "intermediate CA"


def _line(cert: x509.Certificate) -> str:
    from .certificates import display_name
    from .intermediate import path_length

    limit = path_length(cert)
    extra = "" if limit is None else f", pathLen {limit}"
    return f"{display_name(cert.subject)} ({role_of(cert)}{extra}; issued by {display_name(cert.issuer)})"


def holdings(lab: Lab | str | Path) -> _Text:
    """Each certificate file of the lab and the certificates in it, first to last (``pem.load_certificates``
    reads them in that order): a side's ``.crt`` is the chain it presents, its ``ca.crt`` what it trusts."""
    from .pem import load_certificates

    root = lab.root if isinstance(lab, Lab) else Path(lab)
    width = max(len(name) for name in SHOWN_FILES)
    lines = []
    for name in SHOWN_FILES:
        path = root / name
        if not path.is_file():
            lines.append(f"{name:<{width}}  (missing)")
            continue
        for n, cert in enumerate(load_certificates(path)):
            lines.append(f"{name if n == 0 else '':<{width}}  {n + 1}. {_line(cert)}")
    return _Text("\n".join(lines))


def take_root_key_offline(lab: Lab | str | Path, to: str | Path | None = None) -> Path:
    """Move the root's ``ca/ca.key`` out of the lab into ``to`` (default ``workdir()/offline-root-key/``, a folder
    of mode 0700; the key stays 0600) and return where it is now. On a real CA that folder is a machine that is
    switched off, or a hardware security module; the root's key is needed again only to certify a new
    intermediate (step 15). Refused, changing nothing, when the lab has no intermediate CA (the root signs every
    leaf then) or the key is not there."""
    from .errors import InputError
    from .files import LabLock, read_bytes, write_atomic
    from .steps import has_intermediate

    root = lab.root if isinstance(lab, Lab) else Path(lab)
    key = L.CA_KEY.path(root)
    if not has_intermediate(root):
        raise InputError(root, "has no intermediate CA: its root signs every certificate, so ca.key must stay")
    folder = Path(to) if to is not None else workdir() / OFFLINE_FOLDER
    target = folder / L.CA_KEY.name
    with LabLock(root):
        if not key.is_file() or key.is_symlink():
            raise InputError(key, "is not there (already offline?)")
        if target.exists():
            raise InputError(target, "already exists; choose another folder for the root's key")
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_atomic(target, read_bytes(key), secret=True)
        key.unlink()
    return target


@dataclass(frozen=True)
class Served:
    """A real broker on a lab's files: the chain it sent, and each client's round trip."""

    broker: str
    sent: tuple[x509.Certificate, ...]
    trips: tuple[tuple[str, str], ...]

    def __str__(self) -> str:
        lines = [f"broker: {self.broker}", "it sends, in its TLS Certificate message:"]
        lines += [f"  {n + 1}. {_line(cert)}" for n, cert in enumerate(self.sent)]
        width = max((len(name) for name, _ in self.trips), default=0)
        lines += [f"{name:<{width}}  {said}" for name, said in self.trips]
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        return _pre(str(self))


def serve(lab: Lab | str | Path, names: tuple[str, ...] | None = None, *, broker: str | None = None) -> Served:
    """Start a broker on the lab's ``broker/`` files (mosquitto when installed, else the embedded one), look at the
    chain it presents (as ``openssl s_client -showcerts`` would), and send each client of ``names`` (default:
    every client) through it: CONNECT, SUBSCRIBE, PUBLISH and its message back."""
    from .live import presented_chain
    from .mosquitto import find_mosquitto
    from .mqtt_client import mqtt_round_trip
    from .mqtt_proof import _broker_label, start_broker

    root = lab.root if isinstance(lab, Lab) else Path(lab)
    clients = [role for role in Lab(root).roles.clients if names is None or role.name in names]
    kind = broker or ("mosquitto" if find_mosquitto() else "embedded")
    running = start_broker(kind, root)
    try:
        first = L.FIRST_CLIENT.side(root)
        sent = presented_chain("127.0.0.1", running.port, first.ca, client=first).chain
        trips = []
        for role in clients:
            trip = mqtt_round_trip("127.0.0.1", running.port, role.side(root), timeout=5)
            trips.append((role.name, "in: CONNACK, SUBACK, its message back" if trip.ok else
                          f"refused by the {trip.refused_by or 'network'}: {trip.reason}"))
    finally:
        running.stop()
    return Served(_broker_label(kind, running), sent, tuple(trips))


def mystery_path(name: str) -> Path:
    """``workdir()/mysteries/NAME``: where a mystery of notebook 11 keeps its broken copy."""
    return workdir() / MYSTERY_FOLDER / name


def _open(lab: Lab, scenario: str, name: str) -> Case:
    """The scenario's broken copy of ``lab`` under ``workdir()/mysteries/NAME``, made afresh at every call: a copy
    the student has fixed since must not show all green under a text that says nobody connects."""
    from .breakit import break_lab

    out = mystery_path(name)
    if out.is_dir() and not out.is_symlink():
        shutil.rmtree(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    break_lab(lab.root, scenario, out, lab.options.passphrase)
    return Case(out, scenario, hostname=lab.options.hostname, password=lab.options.passphrase)


def open_missing_chain_mystery(lab: Lab) -> Case:
    """Mystery 1 of notebook 11 on a copy of the chain lab ``lab`` (made afresh at each call): no client reaches
    the broker. ``mqtt-pki-lab break DIR server-without-intermediate OUT`` makes the same copy."""
    return _open(lab, "server-without-intermediate", MISSING_FOLDER)


def open_trust_mystery(lab: Lab) -> Case:
    """Mystery 2 of notebook 11 on a copy of the chain lab ``lab`` (made afresh at each call): Python 3.13's
    default context accepts, a real mosquitto refuses the client. ``mqtt-pki-lab break DIR
    intermediate-in-broker-trust OUT`` makes the same copy."""
    return _open(lab, "intermediate-in-broker-trust", TRUST_FOLDER)


def key_mode(path: str | Path) -> str:
    """A file's permission bits as ``0600``."""
    return f"{os.stat(path).st_mode & 0o777:04o}"
