"""Arrow 10 message by message: the handshake transcript, and the openssl twin that works as printed."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
from pathlib import Path

import pytest
from conftest import python313, require, require_program

from mqtt_pki_lab import handshake as H
from mqtt_pki_lab.diagram import BROKER, FIRST_CLIENT
from mqtt_pki_lab.handshake import handshake_transcript, handshake_twin, record_handshake
from mqtt_pki_lab.steps import Lab
from mqtt_pki_lab.tlscontext import broker_context, client_context

#: The TLS 1.3 mutual-TLS handshake, as RFC 8446 §2 draws it (with a CertificateRequest: §4.3.2).
MUTUAL_TLS13 = [("client", "ClientHello"), ("broker", "ServerHello"), ("broker", "EncryptedExtensions"),
                ("broker", "CertificateRequest"), ("broker", "Certificate"), ("broker", "CertificateVerify"),
                ("broker", "Finished"), ("client", "Certificate"), ("client", "CertificateVerify"),
                ("client", "Finished")]


def _foreign_ca(lab: Path, side: str, tmp_path: Path) -> None:
    """Give ``side`` (``broker`` or ``client``) of ``lab`` the certificate of another CA to trust."""
    other = Lab(tmp_path / "other")
    other.run("ca-key")
    other.run("ca-cert")
    shutil.copy(other.root / "ca" / "ca.crt", lab / side / "ca.crt")


def test_the_transcript_is_the_tls13_mutual_handshake_in_order(built_lab: Path) -> None:
    transcript = handshake_transcript(built_lab)
    assert transcript.recorded and transcript.result.ok
    assert [(m.sender, m.name) for m in transcript.handshake] == MUTUAL_TLS13
    # ClientHello and ServerHello travel in clear; everything after ServerHello is encrypted (RFC 8446 §2).
    assert [m.encrypted for m in transcript.handshake] == [False, False] + [True] * 8
    # After the handshake the broker offers session tickets: recorded, but not part of the table.
    assert {m.name for m in transcript.messages} - set(transcript.names()) == {"NewSessionTicket"}
    assert transcript.sender_of("CertificateRequest") == "broker"
    assert transcript.sender_of("certificaterequest ") == "broker"
    assert transcript.sender_of("ServerHelloDone") is None  # a TLS 1.2 message: not in TLS 1.3
    # Both sides send Certificate, CertificateVerify and Finished in mutual TLS: sender_of says so
    # (it used to give the first sender, "broker", for Finished).
    for both in ("Finished", "Certificate", "CertificateVerify"):
        assert transcript.sender_of(both) == "both"
    assert transcript.sender_of("ClientHello") == "client"
    assert transcript.sent_by("client") == ["ClientHello", "Certificate", "CertificateVerify", "Finished"]


def test_the_transcript_reads_as_a_short_table_with_what_each_message_proves(built_lab: Path) -> None:
    transcript = handshake_transcript(built_lab)
    text = str(transcript)
    lines = text.splitlines()
    assert len(lines) == 12 and lines[-1].startswith("handshake PASSED (TLSv1.3)")
    assert "proves it holds it" in lines[5] and "CertificateVerify" in lines[5]
    assert "NewSessionTicket" in lines[10]
    html = transcript._repr_html_()
    assert html.count("<tr>") == 11 and "CertificateRequest" in html and "PRIVATE KEY" not in html


def test_the_transcript_without_roles_does_not_tell_what_each_message_proves(built_lab: Path) -> None:
    """Notebook 05 shows the messages before it asks which one proves the key: the answer is not in the table."""
    transcript = handshake_transcript(built_lab)
    plain = transcript.without_roles()
    assert plain.messages == transcript.messages and plain.result == transcript.result
    text, html = str(plain), plain._repr_html_()
    assert len(text.splitlines()) == 12 and "CertificateVerify" in text and "CertificateVerify" in html
    for role in H.MESSAGE_ROLES.values():
        assert role not in text and role not in html
    assert "proves" not in text and "proves" not in html and "what it does" not in html
    assert "proves it holds it" in str(transcript)   # the full table still says it


def test_the_contexts_get_their_callbacks_back(built_lab: Path) -> None:
    server, client = broker_context(BROKER.side(built_lab)), client_context(FIRST_CLIENT.side(built_lab))
    record_handshake(server, client, "localhost")
    assert server._msg_callback is None and client._msg_callback is None


@pytest.mark.parametrize("side", ["client", "broker"])
def test_a_foreign_ca_shows_where_the_handshake_stops_and_who_sent_the_alert(side: str, lab_copy: Path,
                                                                            tmp_path: Path) -> None:
    _foreign_ca(lab_copy, side, tmp_path)
    transcript = handshake_transcript(lab_copy)
    assert not transcript.result.ok and transcript.result.refused_by == side
    assert transcript.result.reason.startswith("certificate verify failed")
    last = transcript.handshake[-1]
    assert (last.sender, last.name) == (side, "Alert: unknown_ca")
    # The client refuses as soon as it has the broker's certificate: it never sends its own.
    assert ("Certificate" in transcript.sent_by("client")) == (side == "broker")


def test_a_python_without_the_hook_still_runs_the_handshake(built_lab: Path, monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    monkeypatch.setattr(H, "can_record_messages", lambda: False)
    transcript = handshake_transcript(built_lab)
    assert not transcript.recorded and transcript.messages == () and transcript.result.ok
    assert "cannot record" in str(transcript) and "handshake PASSED" in str(transcript)


def test_files_that_cannot_be_loaded_give_an_empty_transcript_and_the_reason(lab_copy: Path) -> None:
    (lab_copy / "broker" / "server.key").write_text("not a key\n")
    transcript = handshake_transcript(lab_copy)
    assert transcript.messages == () and not transcript.result.ok
    assert "cannot load" in (transcript.result.reason or "")


def test_the_recorder_never_raises_into_openssl() -> None:
    log: list = []
    recorder = H._Recorder("client", log)
    recorder(None, "write", None, "garbage", None, b"")  # type: ignore[arg-type]
    recorder(None, "write", None, 21, None, b"")  # an alert too short to read
    assert [m.name for m in log] == ["Alert: -1"]


PY313_TRANSCRIPT = r"""
import json, ssl, sys
broker, client = sys.argv[1], sys.argv[2]
s = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=f"{broker}/ca.crt")
s.load_cert_chain(f"{broker}/server.crt", f"{broker}/server.key"); s.verify_mode = ssl.CERT_REQUIRED
c = ssl.create_default_context(cafile=f"{client}/ca.crt")
c.load_cert_chain(f"{client}/client.crt", f"{client}/client.key")
log = []
s._msg_callback = lambda conn, d, v, ct, mt, data: d == "write" and int(ct) == 22 and log.append(("broker", int(mt)))
c._msg_callback = lambda conn, d, v, ct, mt, data: d == "write" and int(ct) == 22 and log.append(("client", int(mt)))
bios = [ssl.MemoryBIO() for _ in range(4)]
so = s.wrap_bio(bios[0], bios[1], server_side=True)
co = c.wrap_bio(bios[2], bios[3], server_hostname="localhost")
done = {so: False, co: False}
for _ in range(20):
    for obj in (co, so):
        if not done[obj]:
            try:
                obj.do_handshake(); done[obj] = True
            except ssl.SSLWantReadError:
                pass
    for src, dst in ((bios[3], bios[0]), (bios[1], bios[2])):
        data = src.read()
        if data:
            dst.write(data)
print(json.dumps({"python": sys.version.split()[0], "strict": bool(c.verify_flags & ssl.VERIFY_X509_STRICT),
                  "log": log}))
"""


def test_the_hook_works_with_memory_bios_on_python_313(built_lab: Path) -> None:
    interpreter = python313()
    require(interpreter is not None, "Python 3.13 is not installed (pyenv install 3.13)")
    done = subprocess.run([interpreter, "-c", PY313_TRANSCRIPT, str(built_lab / "broker"), str(built_lab / "client")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["python"].startswith("3.13") and found["strict"]
    names = [(side, H.MESSAGE_NAMES.get(number)) for side, number in found["log"]]
    assert [n for n in names if n[1] != "NewSessionTicket"] == MUTUAL_TLS13


# --- the openssl twin of arrow 10, run for real -----------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _run_twin(root: Path, hostname: str = "localhost") -> subprocess.CompletedProcess[str]:
    require_program("openssl", "apt install openssl")
    bash = require_program("bash")
    return subprocess.run([bash, "-c", handshake_twin(hostname, _free_port())], cwd=root, capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)


def test_the_openssl_twin_works_as_printed(built_lab: Path) -> None:
    done = _run_twin(built_lab)
    assert done.stdout.splitlines() == ["client: handshake done", "broker: handshake done"], done.stderr
    assert "Verification: OK" in done.stderr and "Verified peername: localhost" in done.stderr


def test_the_openssl_twin_with_an_ip_address(built_lab: Path) -> None:
    done = _run_twin(built_lab, "127.0.0.1")
    assert done.stdout.splitlines() == ["client: handshake done", "broker: handshake done"], done.stderr
    assert "Verification: OK" in done.stderr and "Verified peername" not in done.stderr  # -verify_ip


def test_the_openssl_twin_ends_and_says_why_when_the_client_trusts_another_ca(lab_copy: Path, tmp_path: Path
                                                                               ) -> None:
    _foreign_ca(lab_copy, "client", tmp_path)
    done = _run_twin(lab_copy)  # must not hang: the broker exits after its one connection
    assert "client: handshake FAILED" in done.stdout
    assert "verify error" in done.stderr and "certificate verify failed" in done.stderr
    said = done.stdout.split("broker: handshake FAILED:", 1)[1]
    assert "tlsv1 alert unknown ca" in said  # the broker's log: the client refused its certificate


def test_the_openssl_twin_shows_tls13s_late_refusal_when_the_broker_trusts_another_ca(lab_copy: Path,
                                                                                      tmp_path: Path) -> None:
    _foreign_ca(lab_copy, "broker", tmp_path)
    done = _run_twin(lab_copy)
    # TLS 1.3: the client finishes its side before the broker has checked the client's certificate, so
    # s_client may say "done" (or read the alert in time, and fail): the broker's line is the verdict.
    assert "CONNECTION ESTABLISHED" in done.stderr
    said = done.stdout.split("broker: handshake FAILED:", 1)[1]
    assert "certificate verify failed" in said


def test_the_twin_refuses_a_hostname_that_would_break_the_command() -> None:
    with pytest.raises(Exception, match="not a valid host name"):
        handshake_twin("localhost; rm -rf ~")
