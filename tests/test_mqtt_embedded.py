"""The embedded broker: amqtt behind our own mutual-TLS door, in a thread of its own.

Regression at the heart of it: amqtt 0.12's own TLS listener only *asks* for a client certificate
(``CERT_OPTIONAL``); ours must *require* one, so a client with no certificate is refused.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import threading
from pathlib import Path

import pytest

pytest.importorskip("amqtt")
pytest.importorskip("paho.mqtt")

from amqtt.broker import Broker
from amqtt.contexts import ListenerConfig
from amqtt.session import Session
from cryptography.hazmat.primitives.serialization import Encoding

from mqtt_pki_lab import diagram as L
from mqtt_pki_lab.broker_embedded import CertificateIdentityAuth, EmbeddedBroker
from mqtt_pki_lab.errors import InputError, LabError
from mqtt_pki_lab.mqtt_client import mqtt_round_trip, paho_client
from mqtt_pki_lab.pem import load_certificate
from mqtt_pki_lab.tlscontext import side_paths


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd")) if Path("/proc/self/fd").is_dir() else set()


def _broker_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if "embedded broker" in t.name]


def test_round_trip_through_the_embedded_broker(built_lab: Path) -> None:
    with EmbeddedBroker(built_lab) as broker:
        assert broker.host == "127.0.0.1" and broker.port and broker.running
        trip = mqtt_round_trip("127.0.0.1", broker.port, L.side(built_lab, "client"))
    assert trip.ok and trip.stage == "done", trip
    assert any("TLS accepted" in line and "CN=client" in line for line in broker.log), broker.log


def test_client_without_certificate_is_refused_regression_cert_optional(built_lab: Path) -> None:
    """amqtt's own listener would let this client in (CERT_OPTIONAL); the embedded broker must not."""
    client = L.side(built_lab, "client")
    with EmbeddedBroker(built_lab) as broker:
        trip = mqtt_round_trip("127.0.0.1", broker.port, side_paths(client.ca, None, None), timeout=3)
    assert not trip.ok and trip.refused_by == "broker" and trip.stage == "tls", trip
    assert broker.refusals == ["peer did not return a certificate"]
    assert not any("logged in" in line for line in broker.log)


def test_with_tls13_connect_returns_although_the_broker_refuses(built_lab: Path) -> None:
    """The pitfall paho users meet: the client finishes its half of a TLS 1.3 handshake before the broker
    has checked its certificate, so connect() returns "success" and the refusal comes later, as a
    disconnect with no CONNACK. mqtt_round_trip waits for those events instead."""
    client_files = L.side(built_lab, "client")
    with EmbeddedBroker(built_lab) as broker:
        client = paho_client(side_paths(client_files.ca, None, None))
        connacks: list[object] = []
        gone = threading.Event()
        client.on_connect = lambda *args: connacks.append(args)
        client.on_disconnect = lambda *args: gone.set()
        assert client.connect("127.0.0.1", broker.port) == 0  # no exception: "connected"?
        assert client.socket().version() == "TLSv1.3"
        client.loop_start()
        try:
            assert gone.wait(5)
        finally:
            client.loop_stop()
    assert connacks == [] and broker.refusals == ["peer did not return a certificate"]


def test_amqtt_own_tls_listener_still_only_asks_for_a_certificate(built_lab: Path) -> None:
    """Why we run the TLS handshake ourselves. If this fails, amqtt now requires client certificates on its
    own listener: re-read broker_embedded's docstring; the external listener may no longer be needed."""
    side = L.side(built_lab, "broker")
    listener = ListenerConfig(ssl=True, cafile=side.ca, certfile=side.cert, keyfile=side.key)
    assert Broker._create_ssl_context(listener).verify_mode == ssl.CERT_OPTIONAL


def test_the_public_amqtt_hooks_we_use_are_still_there() -> None:
    """Pin the supported API the embedded broker stands on (no private method is overridden)."""
    import inspect

    from amqtt.adapters import StreamReaderAdapter, StreamWriterAdapter
    from amqtt.contexts import ListenerType
    from amqtt.plugins.base import BaseAuthPlugin

    assert list(inspect.signature(Broker.external_connected).parameters) == ["self", "reader", "writer",
                                                                              "listener_name"]
    assert ListenerType.EXTERNAL.value == "external"
    assert issubclass(CertificateIdentityAuth, BaseAuthPlugin)
    assert "ssl_object" in vars(Session())
    assert StreamReaderAdapter and StreamWriterAdapter


def test_certificate_common_name_becomes_the_username(built_lab: Path) -> None:
    """mosquitto's use_identity_as_username: the CN replaces whatever username the client sent."""
    der = load_certificate(L.CLIENT_CERT.path(built_lab)).public_bytes(Encoding.DER)

    class FakeTLS:
        def getpeercert(self, binary_form: bool = False) -> bytes:
            return der

    class Context:
        config = CertificateIdentityAuth.Config()
        logger = None

    plugin = CertificateIdentityAuth(Context())  # type: ignore[arg-type]
    session = Session()
    session.username, session.ssl_object = "mallory", FakeTLS()  # type: ignore[assignment]
    assert asyncio.run(plugin.authenticate(session=session)) is True
    assert session.username == "client"
    anonymous = Session()
    assert asyncio.run(plugin.authenticate(session=anonymous)) is False


def test_username_from_certificate_in_a_real_session(built_lab: Path) -> None:
    client_files = L.side(built_lab, "client")
    with EmbeddedBroker(built_lab) as broker:
        client = paho_client(client_files, client_id="who-am-i")
        client.username_pw_set("mallory", "not-a-password")
        connected = threading.Event()
        client.on_connect = lambda *args: connected.set()
        client.connect("127.0.0.1", broker.port)
        client.loop_start()
        try:
            assert connected.wait(5)
        finally:
            client.disconnect()
            client.loop_stop()
    assert "client 'who-am-i' logged in as username 'client' (the certificate's CN)" in broker.log


def test_stops_cleanly_no_thread_no_port_no_fd_left(built_lab: Path) -> None:
    before_fds, before_threads = _open_fds(), threading.active_count()
    with EmbeddedBroker(built_lab) as broker:
        port = broker.port
        assert len(_broker_threads()) == 1
        assert mqtt_round_trip("127.0.0.1", port, L.side(built_lab, "client")).ok
    assert not broker.running and _broker_threads() == []
    assert threading.active_count() == before_threads
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass
    assert _open_fds() <= before_fds, _open_fds() - before_fds
    assert broker.log[-1] == "stopped"
    broker.stop()  # a second stop is harmless


def test_works_from_a_thread_that_already_runs_an_event_loop(built_lab: Path) -> None:
    """A Jupyter cell runs on a thread whose asyncio loop is running; the broker brings its own."""

    async def cell() -> bool:
        assert asyncio.get_running_loop().is_running()
        with EmbeddedBroker(built_lab) as broker:
            return mqtt_round_trip("127.0.0.1", broker.port, L.side(built_lab, "client")).ok

    assert asyncio.run(cell())
    assert _broker_threads() == []


def test_works_inside_a_real_jupyter_kernel(built_lab: Path) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    code = (f"from mqtt_pki_lab import mqtt_check\nimport threading\n"
            f"report = mqtt_check({str(built_lab)!r}, broker='embedded')\n"
            f"print(report.ok, [o.passed for o in report.outcomes])\n"
            f"print([t.name for t in threading.enumerate() if 'embedded broker' in t.name])\n"
            f"report")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    nbclient.NotebookClient(nb, timeout=60, kernel_name="python3").execute()
    outputs = nb.cells[0].outputs
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "True [True, True, True, True]\n[]\n" in text, outputs
    html = next(o for o in outputs if o.output_type == "execute_result")["data"]["text/html"]
    assert "passed" in html and "no certificate" in html


def test_missing_or_encrypted_files_are_explained_before_anything_starts(lab_copy: Path, tmp_path: Path,
                                                                         lab_factory) -> None:
    L.SERVER_KEY.path(lab_copy).unlink()
    with pytest.raises(InputError, match="missing: the broker's private key"):
        EmbeddedBroker(lab_copy).start()
    assert _broker_threads() == []
    encrypted = lab_factory(passphrase=b"correct horse", encrypt_all=True)
    with pytest.raises(LabError, match="encrypted"):
        EmbeddedBroker(encrypted).start()
    with EmbeddedBroker(encrypted, password=b"correct horse") as broker:
        trip = mqtt_round_trip("127.0.0.1", broker.port, L.side(encrypted, "client"), password=b"correct horse")
    assert trip.ok, trip


def test_round_trip_failures_without_a_broker_are_explained(built_lab: Path) -> None:
    """Nobody listening, or a server that never answers TLS: a RoundTrip that says so, no exception."""
    from mqtt_pki_lab.mosquitto import free_port

    closed = mqtt_round_trip("127.0.0.1", free_port(), L.side(built_lab, "client"), timeout=2)
    assert (closed.ok, closed.stage, closed.refused_by) == (False, "tcp", None)
    assert "cannot reach" in closed.reason
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts (backlog), never speaks
        mute = mqtt_round_trip("127.0.0.1", silent.getsockname()[1], L.side(built_lab, "client"), timeout=0.5)
    assert (mute.ok, mute.stage, mute.refused_by) == (False, "tls", None)
    assert "did not answer the TLS handshake" in mute.reason


def _certificate_without_common_name(lab: Path, folder: Path) -> Path:
    """A client certificate signed by the lab's own CA whose subject is only ``O=...``: no Common Name."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    from mqtt_pki_lab.certificates import common_name, issue
    from mqtt_pki_lab.keys import generate_key, load_private_key, save_key
    from mqtt_pki_lab.pem import save_pem
    from mqtt_pki_lab.profile import client_uri, leaf_extensions, validity

    ca, ca_key = load_certificate(L.CA_CERT.path(lab)), load_private_key(L.CA_KEY.path(lab))
    key = generate_key()
    nobody = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "nobody in particular")])
    cert = issue(key.public_key(), nobody, issuer=ca, signing_key=ca_key,
                 extensions=leaf_extensions("client", [client_uri("nobody")], key.public_key()),
                 window=validity(30))
    assert common_name(cert) is None
    save_pem(cert, folder / "nocn.crt")
    save_key(key, folder / "nocn.key")
    return folder


def _connect_then_reset(port: int, files: L.Side, client_id: bytes) -> bytes:
    """TLS, one MQTT 3.1.1 CONNECT, read the CONNACK, then hang up with a TCP reset (SO_LINGER 0): the
    broker is still closing the connection it refused when the reset arrives."""
    import struct

    from mqtt_pki_lab.tlscontext import client_context

    body = b"\x00\x04MQTT\x04\x02\x00\x3c" + struct.pack("!H", len(client_id)) + client_id
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            client_context(files).wrap_socket(raw, server_hostname="localhost") as tls:
        tls.sendall(bytes([0x10, len(body)]) + body)
        connack = tls.recv(4)
        tls.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    return connack


def test_certificate_without_common_name_is_refused_cleanly(built_lab: Path, tmp_path: Path,
                                                            caplog: pytest.LogCaptureFixture,
                                                            capfd: pytest.CaptureFixture[str]) -> None:
    """The right CA signed it, so TLS accepts it; but it names nobody, so there is no username to give it.
    Like mosquitto, the broker refuses the CONNECT and says why, and a client hanging up meanwhile is a log
    line, not "Task exception was never retrieved" on stderr."""
    import gc
    import logging

    caplog.set_level(logging.WARNING)
    folder = _certificate_without_common_name(built_lab, tmp_path)
    files = side_paths(L.CLIENT_CA.path(built_lab), folder / "nocn.crt", folder / "nocn.key")
    with EmbeddedBroker(built_lab) as broker:
        trip = mqtt_round_trip("127.0.0.1", broker.port, files, timeout=3)
        connacks = [_connect_then_reset(broker.port, files, b"reset-%d" % i) for i in range(5)]
        good = mqtt_round_trip("127.0.0.1", broker.port, L.side(built_lab, "client"))
    gc.collect()  # "never retrieved" is reported when the failed task is collected
    assert (trip.ok, trip.stage, trip.refused_by) == (False, "connack", "broker"), trip
    assert "Not authorized" in trip.reason
    assert connacks == [b"\x20\x02\x00\x05"] * 5  # CONNACK, return code 5: not authorized
    assert good.ok, good  # the broker lives on
    assert broker.refusals == ["the client certificate has no Common Name: cannot tell the username"] * 6
    refused = [line for line in broker.log if "no Common Name: cannot tell the username" in line]
    assert len(refused) == 6 and refused[-1].startswith("refused client 'reset-4' from 127.0.0.1:"), broker.log
    assert any("TLS accepted" in line and "O=nobody in particular" in line for line in broker.log)
    assert sum("logged in" in line for line in broker.log) == 1  # only the good client
    assert not any(line.startswith(("asyncio:", "connection from")) and "failed" in line for line in broker.log)
    assert not any(line.startswith("asyncio:") for line in broker.log), broker.log
    everything = caplog.text + "".join(capfd.readouterr())
    assert "never retrieved" not in everything and "Traceback" not in everything, everything
