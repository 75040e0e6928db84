"""The files are right, not just accepted: OpenSSL -x509_strict, Python 3.13's defaults, pkilint.

Each of these runs a real verifier: the ``openssl`` program, a Python 3.13 interpreter talking TLS
over a loopback socket with its *default* contexts, and pkilint's RFC 5280 linter.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import python313, require, require_program

from mqtt_pki_lab.keys import KEY_TYPES


def openssl_verify(root: Path, cert: str, *extra: str) -> subprocess.CompletedProcess[str]:
    openssl = require_program("openssl")
    return subprocess.run([openssl, "verify", "-x509_strict", "-CAfile", str(root / "ca" / "ca.crt"), *extra,
                           str(root / cert)], capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("kind", list(KEY_TYPES))
def test_openssl_x509_strict_accepts_each_for_its_purpose_only(kind: str, lab_factory: Callable[..., Path]) -> None:
    root = lab_factory(key_type=kind)
    for extra in (("-verify_hostname", "localhost"), ("-verify_ip", "127.0.0.1"), ("-verify_ip", "::1")):
        ok = openssl_verify(root, "broker/server.crt", "-purpose", "sslserver", *extra)
        assert ok.returncode == 0 and ": OK" in ok.stdout, ok.stdout + ok.stderr
    ok = openssl_verify(root, "client/client.crt", "-purpose", "sslclient")
    assert ok.returncode == 0 and ": OK" in ok.stdout, ok.stdout + ok.stderr
    # Each certificate is refused for the other role's purpose.
    wrong = openssl_verify(root, "broker/server.crt", "-purpose", "sslclient")
    assert wrong.returncode != 0 and "unsuitable certificate purpose" in wrong.stdout + wrong.stderr
    wrong = openssl_verify(root, "client/client.crt", "-purpose", "sslserver")
    assert wrong.returncode != 0 and "unsuitable certificate purpose" in wrong.stdout + wrong.stderr
    # And the server certificate is refused for a name it does not carry.
    wrong = openssl_verify(root, "broker/server.crt", "-purpose", "sslserver", "-verify_hostname", "evil.example")
    assert wrong.returncode != 0 and "hostname mismatch" in (wrong.stdout + wrong.stderr).lower()


PY313_MTLS = textwrap.dedent("""
    import json, socket, ssl, sys, threading
    root = sys.argv[1]
    # Python 3.13's *default* contexts: VERIFY_X509_STRICT and VERIFY_X509_PARTIAL_CHAIN are on.
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=f"{root}/broker/ca.crt")
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    server_ctx.load_cert_chain(f"{root}/broker/server.crt", f"{root}/broker/server.key")
    client_ctx = ssl.create_default_context(cafile=f"{root}/client/ca.crt")
    client_ctx.load_cert_chain(f"{root}/client/client.crt", f"{root}/client/client.key")
    flags = [bool(c.verify_flags & ssl.VERIFY_X509_STRICT) for c in (server_ctx, client_ctx)]
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    port = listener.getsockname()[1]
    seen = {}
    def serve():
        conn, _ = listener.accept()
        with server_ctx.wrap_socket(conn, server_side=True) as tls:
            seen["client_cn"] = dict(x[0] for x in tls.getpeercert()["subject"])["commonName"]
            tls.sendall(tls.recv(5).upper())
    t = threading.Thread(target=serve, daemon=True); t.start()
    out = {"python": sys.version.split()[0], "strict_by_default": flags}
    for host in sys.argv[2:]:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with client_ctx.wrap_socket(raw, server_hostname=host) as tls:
                tls.sendall(b"hello")
                out[host] = {"echo": tls.recv(5).decode(), "version": tls.version()}
        t.join(10)
        if host != sys.argv[-1]:
            t = threading.Thread(target=serve, daemon=True); t.start()
    out["client_cn"] = seen["client_cn"]
    listener.close()
    print(json.dumps(out))
""")


@pytest.mark.parametrize("kind", ["ec-p256", "rsa-2048", "ed25519"])
def test_python313_default_contexts_accept_mutual_tls_over_loopback(kind: str, lab_factory: Callable[..., Path]
                                                                    ) -> None:
    interpreter = python313()
    require(interpreter is not None, "Python 3.13 is not installed (pyenv install 3.13)")
    root = lab_factory(key_type=kind)
    done = subprocess.run([interpreter, "-c", PY313_MTLS, str(root), "localhost", "127.0.0.1"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["python"].startswith("3.13")
    assert result["strict_by_default"] == [True, True]
    assert result["localhost"]["echo"] == result["127.0.0.1"]["echo"] == "HELLO"
    assert result["client_cn"] == "client"


def test_python313_default_context_rejects_the_man_page_recipe(tmp_path: Path) -> None:
    """The counter-example the course teaches: the mosquitto-tls man page's CA has no keyUsage."""
    interpreter = python313()
    require(interpreter is not None, "Python 3.13 is not installed (pyenv install 3.13)")
    openssl = require_program("openssl")

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=tmp_path, check=True, capture_output=True, timeout=30)

    run("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key")
    run("req", "-new", "-x509", "-days", "30", "-key", "ca.key", "-subj", "/CN=Recipe CA", "-addext",
        "keyUsage=digitalSignature", "-out", "ca.crt")
    run("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "server.key")
    run("req", "-new", "-key", "server.key", "-subj", "/CN=localhost", "-out", "server.csr")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "30",
        "-out", "server.crt")
    # Python 3.13's default client context refuses this CA during a real handshake.
    script = textwrap.dedent("""
        import socket, ssl, threading
        srv = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        srv.load_cert_chain("server.crt", "server.key")
        listener = socket.create_server(("127.0.0.1", 0)); listener.settimeout(10)
        def serve():
            conn, _ = listener.accept()
            try:
                srv.wrap_socket(conn, server_side=True).close()
            except (ssl.SSLError, OSError):
                pass
        threading.Thread(target=serve, daemon=True).start()
        cli = ssl.create_default_context(cafile="ca.crt")
        raw = socket.create_connection(listener.getsockname(), timeout=10)
        try:
            cli.wrap_socket(raw, server_hostname="localhost")
            print("ACCEPTED")
        except ssl.SSLCertVerificationError as e:
            print("REFUSED", e.verify_message)
    """)
    done = subprocess.run([interpreter, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert done.stdout.startswith("REFUSED"), done.stdout + done.stderr
    refused = subprocess.run([openssl, "verify", "-x509_strict", "-CAfile", "ca.crt", "server.crt"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=30)
    assert refused.returncode != 0


# pkilint's findings on every key type are checked in test_client_identity.py.


@pytest.mark.parametrize("kind", ["ec-p256", "rsa-2048", "ed25519"])
def test_openssl_twins_make_files_that_pass_the_same_checks(kind: str, tmp_path: Path) -> None:
    """The 'openssl twin' shown for each step really does the same thing."""
    from mqtt_pki_lab.diagram import BUILD_STEPS, DIAGRAM
    from mqtt_pki_lab.steps import BuildOptions
    from mqtt_pki_lab.twins import openssl_twin

    bash = require_program("bash")
    require_program("openssl")
    options = BuildOptions(key_type=kind, server_names=("mqtt.lab.example",))
    for role in ("ca", "broker", "client"):
        (tmp_path / role).mkdir()
    script = "set -euo pipefail\n" + "\n".join(openssl_twin(b, options) for b in DIAGRAM.plan(BUILD_STEPS))
    done = subprocess.run([bash, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "ca" / "ca.key").stat().st_mode & 0o077 == 0
    ok = openssl_verify(tmp_path, "broker/server.crt", "-purpose", "sslserver", "-verify_hostname", "mqtt.lab.example")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    ok = openssl_verify(tmp_path, "client/client.crt", "-purpose", "sslclient")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    from mqtt_pki_lab.handshake import mutual_tls_handshake

    assert mutual_tls_handshake(tmp_path, "mqtt.lab.example").ok
