"""Arrow 10: the in-memory mutual-TLS handshake, and the diagnosis of OpenSSL's words."""

from __future__ import annotations

import shutil
import socket
import ssl
import threading
from pathlib import Path

import pytest

from mqtt_pki_lab import diagram as L
from mqtt_pki_lab.breakit import SCENARIOS, break_lab
from mqtt_pki_lab.diagnose import ARROW_TITLES, Diagnosis, classify, diagnose_tls_failure
from mqtt_pki_lab.diagram import DIAGRAM, arrow_of
from mqtt_pki_lab.handshake import HandshakeResult, handshake_files, mutual_tls_handshake
from mqtt_pki_lab.steps import STEPS
from mqtt_pki_lab.tlscontext import STRICT_FLAGS, broker_context, client_context


@pytest.fixture(scope="module")
def broken(built_lab: Path, lab_factory, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every scenario of the catalogue, broken once for this module: on the session's one-level lab, or on a
    chain of three for the scenarios that need one (``Scenario.fits``)."""
    work = tmp_path_factory.mktemp("broken")
    chain = lab_factory(intermediate=True)
    return {s.id: break_lab(built_lab if s.fits(built_lab) else chain, s, work / s.id) for s in SCENARIOS}


def _handshake(root: Path) -> HandshakeResult:
    client = L.side(root, "client")
    if not client.cert.exists():  # a client without a certificate still connects
        client = L.Side(client.ca, None, None)  # type: ignore[arg-type]
    broker = L.side(root, "broker")
    from mqtt_pki_lab.handshake import chain_gaps, lab_intermediate  # a chain lab: which side lacks its chain

    return handshake_files(broker, client, gaps=chain_gaps(broker, client, lab_intermediate(root)))


def test_good_lab_handshakes_and_says_what_each_side_saw(built_lab: Path) -> None:
    result = mutual_tls_handshake(built_lab)
    assert result.ok, result
    assert result.tls_version == "TLSv1.3" and result.cipher
    assert result.broker_saw is not None and result.broker_saw.subject == "CN=client"
    assert result.broker_saw.names == ("urn:mqtt-pki-lab:client:client",)
    assert result.client_saw is not None and result.client_saw.subject == "CN=localhost"
    assert result.client_saw.issuer == "CN=MQTT Lab Root CA"
    assert {"localhost", "127.0.0.1", "::1"} <= set(result.client_saw.names)
    assert result.refused_by is None and result.diagnosis is None and result.alert is None
    text = str(result)
    assert "handshake PASSED (TLSv1.3" in text and "broker saw client: CN=client" in text
    html = result._repr_html_()
    assert "Handshake passed" in html and "CN=localhost" in html


@pytest.mark.parametrize("hostname", ["localhost", "127.0.0.1", "::1"])
def test_every_name_in_the_san_is_accepted(built_lab: Path, hostname: str) -> None:
    assert mutual_tls_handshake(built_lab, hostname).ok


def test_handshake_uses_no_socket_and_no_thread(built_lab: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_socket(*args, **kwargs):
        raise AssertionError("the in-memory handshake opened a socket")

    monkeypatch.setattr(socket, "socket", no_socket)
    threads = threading.active_count()
    assert mutual_tls_handshake(built_lab).ok
    assert threading.active_count() == threads


def test_contexts_are_strict_on_this_python(built_lab: Path) -> None:
    broker = broker_context(L.side(built_lab, "broker"))
    client = client_context(L.side(built_lab, "client"))
    for context in (broker, client):
        assert context.verify_flags & STRICT_FLAGS == STRICT_FLAGS
        assert context.verify_mode == ssl.CERT_REQUIRED
    assert client.check_hostname


#: The arrow and file OpenSSL's words alone point at. Where TLS cannot tell more (a foreign client
#: certificate looks like a wrong broker/ca.crt; an orphaned certificate like a wrong copy), the checks of
#: ``verify`` do: see test_verify.py.
TLS_ONLY = {
    "client-trusts-wrong-ca": (9, "client/ca.crt"),
    "broker-trusts-wrong-ca": (9, "broker/ca.crt"),
    "client-cert-foreign-ca": (9, "broker/ca.crt"),
    "client-no-certificate": (8, "client/client.crt"),
    "key-mismatch": (8, "client/client.crt"),
    "client-expired": (8, "client/client.crt"),
    "server-not-yet-valid": (5, "broker/server.crt"),
    "server-name-missing": (5, "broker/server.crt"),
    "server-cert-as-client": (8, "client/client.crt"),
    "client-cert-as-server": (5, "broker/server.crt"),
    "ca-without-keycertsign": (2, "ca/ca.crt"),
    "ca-basic-constraints-not-critical": (2, "ca/ca.crt"),
    "weak-rsa-key": (3, "broker/server.key"),
    "ca-regenerated": (9, "client/ca.crt"),
    # the handshake alone sees a client trusting a CA that did not sign the broker (arrow 9); verify knows more
    # (a rotation under way: step 16)
    "client-trusts-old-root": (9, "client/ca.crt"),
}


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.id for s in SCENARIOS])
def test_each_scenario_gets_its_tls_diagnosis(scenario, broken: dict[str, Path]) -> None:
    """The handshake alone (OpenSSL's words) already points at the right kind of problem."""
    result = _handshake(broken[scenario.id])
    if scenario.expected.handshake is None:
        assert result.ok, result
        return
    assert not result.ok
    assert result.refused_by in ("broker", "client")
    assert isinstance(result.diagnosis, Diagnosis)
    assert result.diagnosis.code == scenario.expected.handshake, (result.reason, result.diagnosis)
    # Where the handshake alone points, when it differs from verify's diagnosis; else verify's own answer.
    where = TLS_ONLY.get(scenario.id, (scenario.expected.arrow, scenario.expected.file))
    assert (result.diagnosis.arrow, result.diagnosis.file) == where, result.reason
    text = str(result)
    assert f"the {result.refused_by} refused" in text and str(result.diagnosis) in text
    html = result._repr_html_()
    assert "Handshake failed" in html and "diagnosis" in html


@pytest.mark.parametrize("scenario_id, refused_by, alert", [
    ("client-trusts-wrong-ca", "client", "tlsv1 alert unknown ca"),
    ("broker-trusts-wrong-ca", "broker", "tlsv1 alert unknown ca"),
    ("client-cert-foreign-ca", "broker", "tlsv1 alert unknown ca"),
    ("client-no-certificate", "broker", "tlsv13 alert certificate required"),
    ("client-expired", "broker", "sslv3 alert certificate expired"),
    ("server-cert-as-client", "broker", "sslv3 alert unsupported certificate"),
    ("client-cert-as-server", "client", "sslv3 alert unsupported certificate"),
])
def test_the_other_side_hears_the_alert_and_it_diagnoses_the_same(broken: dict[str, Path], scenario_id: str,
                                                                   refused_by: str, alert: str) -> None:
    """What the other side logs ("tlsv1 alert unknown ca") leads to the same diagnosis as the refusal
    itself: that is what a real broker or client log can be explained with."""
    result = _handshake(broken[scenario_id])
    assert result.refused_by == refused_by
    assert result.alert == alert
    assert f"was told: {alert}" in str(result)
    from_alert = diagnose_tls_failure(alert, refused_by)
    assert result.diagnosis is not None
    assert (from_alert.code, from_alert.arrow, from_alert.file) == \
           (result.diagnosis.code, result.diagnosis.arrow, result.diagnosis.file)


def test_missing_files_are_a_result_not_an_exception(lab_copy: Path) -> None:
    L.SERVER_KEY.path(lab_copy).unlink()
    result = mutual_tls_handshake(lab_copy)
    assert not result.ok and result.refused_by == "broker"
    assert "cannot load its files" in (result.reason or "")
    assert result.diagnosis is not None and result.diagnosis.code == "missing-file"


def test_wrong_hostname_is_refused_by_the_client(built_lab: Path) -> None:
    result = mutual_tls_handshake(built_lab, "mqtt.example.com")
    assert not result.ok and result.refused_by == "client"
    assert result.diagnosis is not None
    assert (result.diagnosis.code, result.diagnosis.arrow, result.diagnosis.file) == \
           ("name-mismatch", 5, "broker/server.crt")
    assert "'mqtt.example.com'" in result.diagnosis.problem


# --- diagnose_tls_failure: OpenSSL's words to the diagram ---------------------------------------------------

@pytest.mark.parametrize("reason, refused_by, code, arrow, file", [
    ("tlsv1 alert unknown ca", "broker", "untrusted-issuer", 9, "broker/ca.crt"),
    ("TLSV1_ALERT_UNKNOWN_CA", "client", "untrusted-issuer", 9, "client/ca.crt"),
    ("certificate verify failed: unable to get local issuer certificate", "client", "untrusted-issuer", 9,
     "client/ca.crt"),
    ("certificate verify failed: self-signed certificate in certificate chain", "broker", "untrusted-issuer", 9,
     "broker/ca.crt"),
    ("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self signed certificate (_ssl.c:1006)",
     "client", "untrusted-issuer", 9, "client/ca.crt"),
    ("peer did not return a certificate", "broker", "no-client-cert", 8, "client/client.crt"),
    ("tlsv13 alert certificate required", None, "no-client-cert", 8, "client/client.crt"),
    ("unsupported certificate purpose", "broker", "wrong-purpose", 8, "client/client.crt"),
    ("certificate verify failed: unsuitable certificate purpose", "client", "wrong-purpose", 5,
     "broker/server.crt"),
    ("sslv3 alert unsupported certificate", "client", "wrong-purpose", 5, "broker/server.crt"),
    ("Hostname mismatch", None, "name-mismatch", 5, "broker/server.crt"),
    ("certificate verify failed: IP address mismatch, certificate is not valid for '10.0.0.1'.", "client",
     "name-mismatch", 5, "broker/server.crt"),
    ("certificate has expired", "broker", "expired", 8, "client/client.crt"),
    ("sslv3 alert certificate expired", "client", "expired", 5, "broker/server.crt"),
    ("certificate verify failed: certificate is not yet valid", "broker", "not-yet-valid", 8, "client/client.crt"),
    ("certificate verify failed: Basic Constraints of CA cert not marked critical", "client", "ca-profile", 2,
     "ca/ca.crt"),
    ("certificate verify failed: invalid CA certificate", "broker", "ca-profile", 2, "ca/ca.crt"),
    ("certificate verify failed: CA cert does not include key usage extension", "client", "ca-profile", 2,
     "ca/ca.crt"),
    ("the broker cannot load its files: ee key too small", "broker", "weak-key", 3, "broker/server.key"),
    ("the client cannot load its files: [SSL: EE_KEY_TOO_SMALL] ee key too small", "client", "weak-key", 6,
     "client/client.key"),
    ("certificate verify failed: EE certificate key too weak", "client", "weak-key", 3, "broker/server.key"),
    ("the broker cannot load its files: ca md too weak", "broker", "weak-signature", 5, "broker/server.crt"),
    ("certificate verify failed: CA signature digest algorithm too weak", "broker", "weak-signature", 8,
     "client/client.crt"),
    ("certificate verify failed", "broker", "bad-certificate", 8, "client/client.crt"),
    ("the client cannot load its files: key values mismatch", "client", "key-mismatch", 8, "client/client.crt"),
    ("sslv3 alert bad certificate", "broker", "bad-certificate", 8, "client/client.crt"),
    ("sslv3 alert certificate unknown", "client", "bad-certificate", 5, "broker/server.crt"),
])
def test_openssl_reasons_map_to_arrow_and_file(reason: str, refused_by: str | None, code: str, arrow: int,
                                               file: str) -> None:
    diagnosis = diagnose_tls_failure(reason, refused_by)
    assert (diagnosis.code, diagnosis.arrow, diagnosis.file) == (code, arrow, file)
    assert diagnosis.problem and diagnosis.fix
    assert str(diagnosis).startswith(f"arrow {arrow} ({ARROW_TITLES[arrow]}), {file}: ")
    assert "Fix: " in str(diagnosis)


@pytest.mark.parametrize("reason, code", [
    ("the broker cannot load its files: no such file or directory", "missing-file"),
    ("the client cannot load its files: permission denied", "unreadable-file"),
    ("the client cannot load its files: [SSL] PEM lib", "not-pem"),
    ("the broker cannot load its files: bad decrypt", "bad-passphrase"),
])
def test_load_failures_blame_the_sides_own_files(reason: str, code: str) -> None:
    diagnosis = diagnose_tls_failure(reason, "client" if "client" in reason else "broker")
    assert diagnosis.code == code
    side = "client" if "client" in reason else "broker"
    assert f"the {side}" in diagnosis.problem or (diagnosis.file or "").startswith(side)


def test_unknown_reasons_fall_back_to_the_handshake_arrow() -> None:
    diagnosis = diagnose_tls_failure("something nobody has seen", "client")
    assert (diagnosis.code, diagnosis.arrow, diagnosis.file) == ("handshake", 10, None)
    assert "something nobody has seen" in diagnosis.problem and "mqtt-pki-lab verify" in diagnosis.fix
    assert diagnose_tls_failure("", None).arrow == 10
    assert classify("SSLV3_ALERT_HANDSHAKE_FAILURE") == "handshake"
    closed = diagnose_tls_failure("EOF occurred in violation of protocol (_ssl.c:2427)", "broker")
    assert (closed.code, closed.arrow) == ("closed", 10) and "the broker hung up" in closed.problem


def test_hostname_is_named_when_known() -> None:
    diagnosis = diagnose_tls_failure("Hostname mismatch", "client", hostname="broker.lan")
    assert "'broker.lan'" in diagnosis.problem


def test_arrow_titles_follow_the_steps() -> None:
    assert {step.number: step.title for step in STEPS} == ARROW_TITLES
    for bound in DIAGRAM.plan():
        for file in bound.writes:
            assert arrow_of(file) == bound.number


def test_diagnosis_renders_as_text_and_html() -> None:
    diagnosis = Diagnosis(9, "client/ca.crt", "a <bad> copy.", "copy it again.", "untrusted-issuer")
    assert str(diagnosis) == ("arrow 9 (hand ca.crt to the broker and the client), client/ca.crt: a <bad> copy. "
                              "Fix: copy it again.")
    html = diagnosis._repr_html_()
    assert "&lt;bad&gt;" in html and "<code>client/ca.crt</code>" in html
    assert str(Diagnosis(None, None, "odd.", "look.")) == "odd. Fix: look."


def test_a_copy_of_the_lab_elsewhere_still_handshakes(built_lab: Path, tmp_path: Path) -> None:
    """Only relative positions matter: the broker's and client's folders can move."""
    shutil.copytree(built_lab / "broker", tmp_path / "b")
    shutil.copytree(built_lab / "client", tmp_path / "c")
    broker = L.Side(tmp_path / "b/ca.crt", tmp_path / "b/server.crt", tmp_path / "b/server.key")
    client = L.Side(tmp_path / "c/ca.crt", tmp_path / "c/client.crt", tmp_path / "c/client.key")
    assert handshake_files(broker, client).ok
