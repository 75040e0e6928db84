"""Every client is a first-class identity, for every key type: strict verifiers, linters and brokers agree.

For each key type of :data:`~mqtt_pki_lab.keys.KEY_TYPES` a lab is built and one further client is added
(``sensor_1``, in ``clients/sensor_1/``). Its certificate, like the first client's, must

* pass ``openssl verify -x509_strict -purpose sslclient`` (and fail as a server's certificate);
* draw no ERROR (or worse) from pkilint's RFC 5280 linter (``lint_pkix_cert``), nor may ``ca.crt``; the
  broker's certificate may only be flagged for the single-label ``localhost``;
* name the device by the URI ``urn:mqtt-pki-lab:client:NAME`` in its subjectAltName, with no dNSName;
* complete a mutual-TLS handshake with Python 3.13's *default* contexts (strict X.509 on, nothing
  switched on by hand), and a real MQTT round trip through mosquitto with ``require_certificate``
  (ec-p256 and rsa-2048).

And the ``openssl`` twins shown for every arrow, run in bash in an empty folder for the diagram's roles
plus one further client, must make files that pass the same strict checks, and the handshake twin
(arrow 10) must succeed for each client, and fail when the client trusts another CA.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import python313, require, require_program
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mqtt_pki_lab import diagram as D
from mqtt_pki_lab.certificates import san_names
from mqtt_pki_lab.keys import KEY_TYPES
from mqtt_pki_lab.options import BuildOptions
from mqtt_pki_lab.pem import load_certificate
from mqtt_pki_lab.profile import CLIENT_URI_PREFIX
from mqtt_pki_lab.steps import Lab
from mqtt_pki_lab.twins import openssl_twin

EXTRA = "sensor_1"
CLIENT_CERTS = {"client": "client/client.crt", EXTRA: f"clients/{EXTRA}/client.crt"}
SINGLE_LABEL = "pkix.invalid_domain_name_syntax"


@pytest.fixture(scope="module")
def identity_lab(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """A lab of one key type with one further client, ``sensor_1`` (built once per key type)."""
    cache: dict[str, Path] = {}

    def make(kind: str) -> Path:
        if kind not in cache:
            root = tmp_path_factory.mktemp(f"identity-{kind}") / "pki"
            lab = Lab(root, BuildOptions(key_type=kind))
            lab.build_all()
            lab.add_client(EXTRA)
            cache[kind] = root
        return cache[kind]

    return make


def openssl_verify(root: Path, cert: str, *extra: str) -> subprocess.CompletedProcess[str]:
    openssl = require_program("openssl")
    return subprocess.run([openssl, "verify", "-x509_strict", "-CAfile", str(root / "ca" / "ca.crt"), *extra,
                           str(root / cert)], capture_output=True, text=True, timeout=30)


# --- openssl -x509_strict -------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", list(KEY_TYPES))
def test_openssl_strict_accepts_each_client_for_client_auth_only(kind: str, identity_lab: Callable[[str], Path]
                                                                 ) -> None:
    root = identity_lab(kind)
    for cert in CLIENT_CERTS.values():
        ok = openssl_verify(root, cert, "-purpose", "sslclient")
        assert ok.returncode == 0 and ": OK" in ok.stdout, (cert, ok.stdout + ok.stderr)
        wrong = openssl_verify(root, cert, "-purpose", "sslserver")
        assert wrong.returncode != 0 and "unsuitable certificate purpose" in wrong.stdout + wrong.stderr, cert


# --- pkilint ------------------------------------------------------------------------------------------------------

def pkilint_errors(path: Path) -> list[tuple[str, str]]:
    """(code, message) of every ERROR-or-worse finding of pkilint's RFC 5280 certificate linter (the
    validators ``lint_pkix_cert`` runs), in this process."""
    pkilint = pytest.importorskip("pkilint")
    del pkilint
    from pkilint import loader
    from pkilint.pkix import certificate, extension, name
    from pkilint.validation import ValidationFindingSeverity

    validator = certificate.create_pkix_certificate_validator_container(
        certificate.create_decoding_validators(name.ATTRIBUTE_TYPE_MAPPINGS, extension.EXTENSION_MAPPINGS),
        [certificate.create_issuer_validator_container([]), certificate.create_validity_validator_container(),
         certificate.create_subject_validator_container([]), certificate.create_extensions_validator_container([]),
         certificate.create_spki_validator_container([])])
    document = loader.RFC5280CertificateDocumentLoader().load_pem_document(path.read_text(), str(path))
    return [(d.finding.code, d.message) for result in validator.validate(document.root)
            for d in result.finding_descriptions if d.finding.severity <= ValidationFindingSeverity.ERROR]


#: RFC 8141 section 2: "urn:" NID ":" NSS; NSS is RFC 3986 pchars and "/" (no query or fragment here).
RFC8141_URN = re.compile(r"urn:[A-Za-z0-9][A-Za-z0-9-]{0,30}[A-Za-z0-9]:"
                         r"(?:[A-Za-z0-9._~!$&'()*+,;=:@-]|%[0-9A-Fa-f]{2})(?:[A-Za-z0-9._~!$&'()*+,;=:@/-]|%[0-9A-Fa-f]{2})*")


@pytest.mark.parametrize("name", ["client", "sensor-1", "sensor_1", "alice@example.com", "a.b"])
def test_the_client_urn_is_rfc8141_syntax(name: str) -> None:
    from mqtt_pki_lab.profile import client_uri

    assert RFC8141_URN.fullmatch(client_uri(name)), client_uri(name)
    assert client_uri(name).endswith(name)  # nothing of these names needs escaping


def test_pkilint_rejects_every_urn_not_just_ours() -> None:
    """The finding pkilint gives the device URN is its URL check, not our syntax: an IETF URN fails it too."""
    validators = pytest.importorskip("validators")
    assert validators.url("urn:ietf:rfc:5280") is not True
    assert validators.url("https://example.com/device") is True


@pytest.mark.parametrize("kind", list(KEY_TYPES))
def test_pkilint_finds_no_error_in_the_ca_or_any_client(kind: str, identity_lab: Callable[[str], Path]) -> None:
    root = identity_lab(kind)
    found = {rel: pkilint_errors(root / rel) for rel in ("ca/ca.crt", *CLIENT_CERTS.values())}
    # pkilint 0.13 checks every URI in a SAN with `validators.url`, which accepts only URLs of nine schemes
    # (http, https, ftp, ...): it reports the client's URN as invalid URI syntax, as it reports any URN
    # (test_pkilint_rejects_every_urn_not_just_ours). RFC 5280 4.2.1.6 allows any absolute URI there, and the
    # URN is RFC 8141 syntax (test_the_client_urn_is_rfc8141_syntax). That one finding, for exactly the device
    # URN, is the only one accepted: the forms pkilint would accept either pretend the device is a web resource
    # (an https:// URL) or drop the SAN that cryptography's client verifier requires.
    expected = {rel: [] for rel in found}
    for rel, cert in ((rel, load_certificate(root / rel)) for rel in CLIENT_CERTS.values()):
        urn = next(n for n in san_names(cert) if n.startswith("urn:"))
        expected[rel] = [("pkix.invalid_uri_syntax", f'Invalid URI syntax: "{urn}"')]
    assert found == expected, found
    assert pkilint_errors(root / "broker" / "server.crt") == [(SINGLE_LABEL, 'Invalid domain name syntax: "localhost"')]


# --- the identity in the certificate ----------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", list(KEY_TYPES))
def test_a_client_is_named_by_its_urn_and_no_dns_name(kind: str, identity_lab: Callable[[str], Path]) -> None:
    root = identity_lab(kind)
    for name, rel in CLIENT_CERTS.items():
        cert = load_certificate(root / rel)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert list(san) == [x509.UniformResourceIdentifier(f"urn:mqtt-pki-lab:client:{name}")], (rel, list(san))
        assert san.get_values_for_type(x509.DNSName) == [] and san.get_values_for_type(x509.IPAddress) == []
        assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == name
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH], rel
    assert Lab(root).roles.client(EXTRA) == D.client_role(EXTRA)


# --- Python 3.13's default contexts -----------------------------------------------------------------------------------

PY313_MTLS = textwrap.dedent("""
    import json, socket, ssl, sys, threading
    broker, client = sys.argv[1], sys.argv[2]
    # Python 3.13's *default* contexts (VERIFY_X509_STRICT and VERIFY_X509_PARTIAL_CHAIN on); nothing set by hand
    # except what mutual TLS is: the server asks for a certificate.
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=f"{broker}/ca.crt")
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    server_ctx.load_cert_chain(f"{broker}/server.crt", f"{broker}/server.key")
    client_ctx = ssl.create_default_context(cafile=f"{client}/ca.crt")
    client_ctx.load_cert_chain(f"{client}/client.crt", f"{client}/client.key")
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    seen = {}
    def serve():
        conn, _ = listener.accept()
        with server_ctx.wrap_socket(conn, server_side=True) as tls:
            peer = tls.getpeercert()
            seen["cn"] = dict(x[0] for x in peer["subject"])["commonName"]
            seen["san"] = peer.get("subjectAltName")
            tls.sendall(tls.recv(5).upper())
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    with socket.create_connection(listener.getsockname(), timeout=10) as raw:
        with client_ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(b"hello")
            echo = tls.recv(5).decode()
            version = tls.version()
    thread.join(10)
    print(json.dumps({"python": sys.version.split()[0], "echo": echo, "version": version, **seen,
                      "strict": [bool(c.verify_flags & ssl.VERIFY_X509_STRICT) for c in (server_ctx, client_ctx)]}))
""")


@pytest.mark.parametrize("kind", list(KEY_TYPES))
def test_python313_default_contexts_handshake_with_the_further_client(kind: str,
                                                                      identity_lab: Callable[[str], Path]) -> None:
    interpreter = python313()
    require(interpreter is not None, "Python 3.13 is not installed (pyenv install 3.13)")
    root = identity_lab(kind)
    done = subprocess.run([interpreter, "-c", PY313_MTLS, str(root / "broker"), str(root / "clients" / EXTRA)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["python"].startswith("3.13") and result["strict"] == [True, True]
    assert result["echo"] == "HELLO" and result["cn"] == EXTRA
    assert result["san"] == [["URI", f"{CLIENT_URI_PREFIX}{EXTRA}"]]


# --- mosquitto --------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["ec-p256", "rsa-2048"])
def test_mosquitto_lets_the_further_client_in_under_its_own_name(kind: str, identity_lab: Callable[[str], Path]
                                                                 ) -> None:
    require_program("mosquitto", "apt install mosquitto")
    pytest.importorskip("paho.mqtt")
    from mqtt_pki_lab.mosquitto import MosquittoBroker
    from mqtt_pki_lab.mqtt_client import mqtt_round_trip

    root = identity_lab(kind)
    role = Lab(root).roles.client(EXTRA)
    assert role is not None
    with MosquittoBroker(root) as broker:
        trip = mqtt_round_trip("127.0.0.1", broker.port, role.side(root))
        log = broker.log
    assert trip.ok, trip
    assert any(f"u'{EXTRA}'" in line for line in log), log  # use_identity_as_username: the CN is the username
    assert broker.refusals == []


# --- the openssl twins ------------------------------------------------------------------------------------------------

def run_bash(script: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``bash -c SCRIPT`` in its own process group, which is killed afterwards (a background s_server too)."""
    bash = require_program("bash")
    process = subprocess.Popen([bash, "-c", script], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    try:
        out, err = process.communicate(timeout=timeout)
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


@pytest.mark.parametrize("kind", ["ec-p256", "rsa-2048", "ed25519"])
def test_openssl_twins_make_a_lab_with_a_further_client_that_passes_strict_checks(kind: str, tmp_path: Path) -> None:
    from mqtt_pki_lab.mosquitto import free_port

    require_program("openssl")
    options = BuildOptions(key_type=kind)
    extra = D.client_role("sensor-2")
    plan = D.Roles((D.FIRST_CLIENT, extra)).plan(D.BUILD_STEPS)
    assert set(D.DIAGRAM.plan(D.BUILD_STEPS)) < set(plan)
    folders = " ".join(sorted({r.folder for r in D.Roles((D.FIRST_CLIENT, extra)).all}))
    script = "\n".join(["set -euo pipefail", f"mkdir -p {folders}", *(openssl_twin(b, options) for b in plan)])
    built = run_bash(script, tmp_path)
    assert built.returncode == 0, built.stderr

    assert (tmp_path / "ca" / "ca.key").stat().st_mode & 0o077 == 0
    ok = openssl_verify(tmp_path, "broker/server.crt", "-purpose", "sslserver", "-verify_hostname", "localhost")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    for client in (D.FIRST_CLIENT, extra):
        rel = client.file("crt").relpath
        ok = openssl_verify(tmp_path, rel, "-purpose", "sslclient")
        assert ok.returncode == 0, (rel, ok.stdout + ok.stderr)
        assert client.file("key").path(tmp_path).stat().st_mode & 0o077 == 0, client.folder
        assert client.file("trust").path(tmp_path).read_bytes() == (tmp_path / "ca" / "ca.crt").read_bytes()
    san = load_certificate(extra.file("crt").path(tmp_path)).extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value
    assert list(san) == [x509.UniformResourceIdentifier("urn:mqtt-pki-lab:client:sensor-2")]
    from mqtt_pki_lab.verify import verify_lab

    report = verify_lab(tmp_path)  # the lab's own checks see every role of the twin-made folder, and pass
    assert report.ok, str(report)

    # Arrow 10's twin: a real handshake between the broker's files and each client's.
    for client in (D.FIRST_CLIENT, extra):
        twin = openssl_twin(D.bind(D.PROOF_STEP, client), options, port=free_port())
        shaken = run_bash("set -euo pipefail\n" + twin, tmp_path, timeout=60)
        assert shaken.returncode == 0, (client.folder, twin, shaken.stdout, shaken.stderr)
        assert "CONNECTION ESTABLISHED" in shaken.stderr, shaken.stderr

    # And it can fail: the further client trusting another CA refuses the broker.
    openssl = require_program("openssl")
    subprocess.run([openssl, "req", "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", str(tmp_path / "other.key"), "-subj", "/CN=Other CA", "-days", "2",
                    "-out", str(extra.file("trust").path(tmp_path))], check=True, capture_output=True, timeout=30)
    twin = openssl_twin(D.bind(D.PROOF_STEP, extra), options, port=free_port())
    refused = run_bash("set -euo pipefail\n" + twin, tmp_path, timeout=60)
    assert refused.returncode != 0, (refused.stdout, refused.stderr)
