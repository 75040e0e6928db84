"""The ``openssl`` twin of every arrow: the command that does what the lab's Python does, written once.

Run from the lab folder, each twin makes the same file the step makes (with another random serial and
key, of course), and the files pass the same strict checks: a test runs them all in bash. The lab's own
certificates are made by :mod:`mqtt_pki_lab.certificates`; these commands are for learning and for
people who will run ``openssl`` on their own CA machine.
"""

from __future__ import annotations

import shlex

from .diagram import CA, BoundStep, LabFile
from .keys import key_type
from .names import is_ip
from .options import BuildOptions
from .profile import ORGANIZATION, leaf_names

#: The port the handshake twin uses.
TWIN_PORT = 8883


def _subj(cn: str) -> str:
    return shlex.quote(f"/O={ORGANIZATION}/CN={cn}")


def _san(names: list[str]) -> str:
    return ",".join(f"IP:{n}" if is_ip(n) else (f"URI:{n}" if n.startswith("urn:") else f"DNS:{n}") for n in names)


def _digest(o: BuildOptions) -> str:
    return "" if o.key_type == "ed25519" else " -sha256"


def _genpkey(file: LabFile, o: BuildOptions) -> str:
    cipher = " -aes256" if o.key_passphrase(file) else ""
    return f"(umask 077; openssl genpkey {key_type(o.key_type).openssl}{cipher} -out {shlex.quote(file.relpath)})"


def _self_sign(o: BuildOptions) -> str:
    key, crt = CA.file("key").relpath, CA.file("crt").relpath
    return (f"openssl req -x509 -new -key {key}{_digest(o)} -days {o.ca_days} -subj {_subj(o.ca_name)}"
            " -addext 'basicConstraints=critical,CA:TRUE,pathlen:0'"
            f" -addext 'keyUsage=critical,digitalSignature,keyCertSign,cRLSign' -out {crt}")


def _csr(bound: BoundStep, o: BuildOptions) -> str:
    kind = bound.role.kind
    names = o.names_for(bound.role)
    key, csr = bound.role.file("key").relpath, bound.role.file("csr").relpath
    return (f"openssl req -new -key {shlex.quote(key)}{_digest(o)} -subj {_subj(names[0])}"
            f" -addext {shlex.quote('subjectAltName=' + _san(leaf_names(kind, names)))} -out {shlex.quote(csr)}")


def _sign(bound: BoundStep, o: BuildOptions) -> str:
    kind = bound.role.kind
    names = leaf_names(kind, o.names_for(bound.role))
    usage = "digitalSignature,keyEncipherment" if o.key_type.startswith("rsa") else "digitalSignature"
    eku = "serverAuth" if kind == "broker" else "clientAuth"
    # The CA decides every extension itself (nothing copied from the CSR): the same as the lab's profile.
    ext = (f"basicConstraints=critical,CA:FALSE\\nkeyUsage=critical,{usage}\\nextendedKeyUsage={eku}"
           f"\\nsubjectAltName={_san(names)}\\nsubjectKeyIdentifier=hash\\nauthorityKeyIdentifier=keyid")
    csr, crt = bound.role.file("csr").relpath, bound.role.file("crt").relpath
    return (f"openssl x509 -req -in {shlex.quote(csr)} -CA {CA.file('crt').relpath} -CAkey {CA.file('key').relpath}"
            f" -CAcreateserial -days {o.days}{_digest(o)} -extfile <(printf {shlex.quote(ext)})"
            f" -out {shlex.quote(crt)}")


def _hand_out(bound: BoundStep) -> str:
    return f"cp {CA.file('crt').relpath} {shlex.quote(bound.role.file('trust').relpath)}"


def _prove(bound: BoundStep, o: BuildOptions, port: int) -> str:
    broker = bound.reads[:3]
    ca, crt, key = (shlex.quote(f.relpath) for f in bound.role.operating)
    host = o.hostname
    check = f"-verify_ip {host}" if is_ip(host) else f"-verify_hostname {host}"
    # The server must listen before the client dials: start it, wait a second, then connect.
    return (f"openssl s_server -quiet -accept 127.0.0.1:{port} -naccept 1 -cert {broker[1].relpath}"
            f" -key {broker[2].relpath} -CAfile {broker[0].relpath} -Verify 1 -verify_return_error -x509_strict"
            f" & sleep 1; openssl s_client -brief -connect 127.0.0.1:{port} -servername {host} -cert {crt}"
            f" -key {key} -CAfile {ca} -verify_return_error -x509_strict {check} </dev/null; wait")


def openssl_twin(bound: BoundStep, options: BuildOptions | None = None, *, port: int = TWIN_PORT) -> str:
    """The ``openssl`` command(s) doing what ``bound`` does with ``options``, run from the lab folder."""
    o = options or BuildOptions()
    kind = bound.step.kind
    if kind == "generate-key":
        return _genpkey(bound.writes[0], o)
    if kind == "self-sign":
        return _self_sign(o)
    if kind == "create-csr":
        return _csr(bound, o)
    if kind == "sign":
        return _sign(bound, o)
    if kind == "hand-out":
        return _hand_out(bound)
    return _prove(bound, o, port)
