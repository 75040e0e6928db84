"""The ``openssl`` twin of every arrow: the command that does what the lab's Python does, written once.

Run from the lab folder, each twin makes the same file the step makes (with another random serial and
key, of course), and the files pass the same strict checks: a test runs them all in bash. The lab's own
certificates are made by :mod:`mqtt_pki_lab.certificates`; these commands are for learning and for
people who will run ``openssl`` on their own CA machine.
"""

from __future__ import annotations

import shlex

from .diagram import CA, INTERMEDIATE, BoundStep, LabFile
from .intermediate import DEFAULT_INTERMEDIATE_DAYS
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


def _self_sign(bound: BoundStep, o: BuildOptions) -> str:
    key, crt = CA.file("key").relpath, CA.file("crt").relpath
    path_len = 1 if bound.issuer == INTERMEDIATE else 0  # one CA may stand below a root with an intermediate
    return (f"openssl req -x509 -new -key {key}{_digest(o)} -days {o.ca_days} -subj {_subj(o.ca_name)}"
            f" -addext 'basicConstraints=critical,CA:TRUE,pathlen:{path_len}'"
            f" -addext 'keyUsage=critical,digitalSignature,keyCertSign,cRLSign' -out {crt}")


def _csr(bound: BoundStep, o: BuildOptions) -> str:
    kind = bound.role.kind
    key, csr = bound.role.file("key").relpath, bound.role.file("csr").relpath
    if bound.role == INTERMEDIATE:  # a name and a key; the root decides the rest (step 15)
        return f"openssl req -new -key {key}{_digest(o)} -subj {_subj(o.intermediate_name)} -out {csr}"
    names = o.names_for(bound.role)
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
    issuer_crt, issuer_key = (f.relpath for f in bound.reads[1:3])
    command = (f"openssl x509 -req -in {shlex.quote(csr)} -CA {issuer_crt} -CAkey {issuer_key}"
               f" -CAcreateserial -days {o.days}{_digest(o)} -extfile <(printf {shlex.quote(ext)})"
               f" -out {shlex.quote(crt)}")
    if bound.issuer == INTERMEDIATE:  # the file a side presents: its certificate, then the intermediate's
        command += f" && cat {issuer_crt} >> {shlex.quote(crt)}"
    return command


def _sign_ca(bound: BoundStep, o: BuildOptions) -> str:
    """Step 15: the root signs the intermediate's CSR; the root decides every extension (pathlen 0: leaves only)."""
    ext = ("basicConstraints=critical,CA:TRUE,pathlen:0\\nkeyUsage=critical,digitalSignature,keyCertSign,cRLSign"
           "\\nsubjectKeyIdentifier=hash\\nauthorityKeyIdentifier=keyid")
    csr, crt = bound.role.file("csr").relpath, bound.role.file("crt").relpath
    days = min(DEFAULT_INTERMEDIATE_DAYS, o.ca_days)
    return (f"openssl x509 -req -in {csr} -CA {CA.file('crt').relpath} -CAkey {CA.file('key').relpath}"
            f" -CAcreateserial -days {days}{_digest(o)} -extfile <(printf {shlex.quote(ext)}) -out {crt}")


def _hand_out(bound: BoundStep) -> str:
    return f"cp {CA.file('crt').relpath} {shlex.quote(bound.role.file('trust').relpath)}"


def prove_commands(broker: tuple[LabFile, LabFile, LabFile], client: tuple[LabFile, LabFile, LabFile],
                   hostname: str, port: int = TWIN_PORT) -> str:
    """Arrow 10 in ``openssl``: the commands to paste into bash in the lab folder; they work as printed.

    ``broker`` and ``client`` are each side's (ca.crt copy, certificate, key). ``s_server`` must listen before
    ``s_client`` dials: the commands start the broker in the background, wait until its log says ``ACCEPT``
    (or it has died), then connect. ``-www`` keeps ``s_server`` from reading the terminal (a background job
    that reads it is stopped by the shell); ``-naccept 1`` makes it exit after the one handshake. Each side
    then says whether its handshake was done, and the last command exits 1 if either failed. Read both: in
    TLS 1.3 the client may finish before the broker has checked the client's certificate (RFC 8446 §4.4.2),
    and ``s_server`` exits 0 either way, so the broker's verdict is read from its log. Add ``-msg`` to
    ``s_client`` to see the messages.
    """
    ca, crt, key = (shlex.quote(f.relpath) for f in broker)
    cca, ccrt, ckey = (shlex.quote(f.relpath) for f in client)
    check = f"-verify_ip {hostname}" if is_ip(hostname) else f"-verify_hostname {hostname}"
    return "\n".join([
        "log=$(mktemp)",
        f"openssl s_server -www -naccept 1 -accept 127.0.0.1:{port} -cert {crt} -key {key} \\",
        f"  -CAfile {ca} -Verify 1 -verify_return_error -x509_strict </dev/null >\"$log\" 2>&1 &",
        "server=$!",
        "until grep -q ACCEPT \"$log\" || ! kill -0 $server 2>/dev/null; do sleep 0.1; done",
        f"openssl s_client -brief -connect 127.0.0.1:{port} -servername {hostname} -cert {ccrt} -key {ckey} \\",
        f"  -CAfile {cca} -verify_return_error -x509_strict {check} </dev/null \\",
        "  && echo 'client: handshake done' || { echo 'client: handshake FAILED'; failed=1; }",
        "wait $server",
        "if grep -q error \"$log\"; then echo 'broker: handshake FAILED:'; grep error \"$log\"; failed=1;",
        "else echo 'broker: handshake done'; fi",
        "rm -f \"$log\"; (exit ${failed:-0})",
    ])


def _prove(bound: BoundStep, o: BuildOptions, port: int) -> str:
    broker = bound.reads[:3]
    return prove_commands((broker[0], broker[1], broker[2]), bound.role.operating, o.hostname, port)


def openssl_twin(bound: BoundStep, options: BuildOptions | None = None, *, port: int = TWIN_PORT) -> str:
    """The ``openssl`` command(s) doing what ``bound`` does with ``options``, run from the lab folder."""
    o = options or BuildOptions()
    kind = bound.step.kind
    if kind == "generate-key":
        return _genpkey(bound.writes[0], o)
    if kind == "self-sign":
        return _self_sign(bound, o)
    if kind == "create-csr":
        return _csr(bound, o)
    if kind == "sign":
        return _sign(bound, o)
    if kind == "sign-ca":
        return _sign_ca(bound, o)
    if kind == "hand-out":
        return _hand_out(bound)
    return _prove(bound, o, port)
