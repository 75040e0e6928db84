"""The exercises of notebook 03 (the broker's certificate), and the facts its text states, checked here.

Right answers pass, each targeted hint is reached by a wrong answer that earns it, garbage gets a sentence;
then the claims of the lesson: a SAN hides the CN, an address is never matched against the CN, RSA 1024 is
refused at security level 2, and a client that skips the name check lets any certificate of the CA in.
"""

from __future__ import annotations

import ipaddress
import ssl
import subprocess
from pathlib import Path

import pytest
from conftest import require_program
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from exercise_helpers import check, garbage_tests, targeted

from mqtt_pki_lab.certificates import issue
from mqtt_pki_lab.exercises import EXERCISES
from mqtt_pki_lab.exercises.broker import CSR_ASKS, POLICY_GRANTS
from mqtt_pki_lab.handshake import handshake_contexts
from mqtt_pki_lab.keys import generate_key, load_private_key, save_key
from mqtt_pki_lab.pem import load_certificate, save_pem
from mqtt_pki_lab.profile import leaf_extensions, validity
from mqtt_pki_lab.sign import sign_csr

IDS = ("broker-names", "broker-eku", "csr-policy")


def server_crt(root: Path) -> x509.Certificate:
    return load_certificate(root / "broker" / "server.crt")


def test_the_exercises_belong_to_notebook_03() -> None:
    for exercise_id in IDS:
        assert EXERCISES[exercise_id].notebook == "03_broker_certificate.ipynb"
        assert len(EXERCISES[exercise_id].hints) >= 4


# --- broker-names ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("answer", [
    ["DNS:mqtt.example.com", "IP:192.168.1.20"],
    ["IP:192.168.1.20", "dns:MQTT.example.com", "DNS:localhost", "IP:127.0.0.1", "IP:::1"],
    "DNS:mqtt.example.com, IP Address:192.168.1.20",
    "DNS:mqtt.example.com IP:192.168.1.20",
    [x509.DNSName("mqtt.example.com"), x509.IPAddress(ipaddress.ip_address("192.168.1.20"))],
    x509.SubjectAlternativeName([x509.DNSName("mqtt.example.com"),
                                 x509.IPAddress(ipaddress.ip_address("192.168.1.20"))]),
])
def test_broker_names_right(answer: object) -> None:
    assert check("broker-names", answer).correct


def test_broker_names_targeted_hints_cover_the_list() -> None:
    cases = {
        "format": ["mqtt.example.com", "192.168.1.20"],
        "cn": "CN=mqtt.example.com",
        "cn-entry": ["CN:mqtt.example.com", "IP:192.168.1.20"],
        "ip-as-dns": ["DNS:mqtt.example.com", "DNS:192.168.1.20"],
        "dns-as-ip": ["IP:mqtt.example.com", "IP:192.168.1.20"],
        "no-ip": ["DNS:mqtt.example.com", "DNS:localhost"],
        "no-dns": ["IP:192.168.1.20"],
        "wildcard": ["DNS:*.example.com", "IP:192.168.1.20"],
        "extra": ["DNS:mqtt.example.com", "IP:192.168.1.20", "DNS:broker.example.org"],
    }
    reached = {name: targeted("broker-names", answer) for name, answer in cases.items()}
    assert reached["cn"] == reached["cn-entry"] and "subjectAltName" in reached["cn"]
    assert "iPAddress" in reached["ip-as-dns"]
    assert set(reached.values()) == set(EXERCISES["broker-names"].hints)


# --- broker-eku ---------------------------------------------------------------------------------------------------

def test_broker_eku_right_in_every_shape_cryptography_gives(built_lab: Path) -> None:
    cert = server_crt(built_lab)
    extension = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    for answer in (extension, extension.value, list(extension.value), extension.value[0]):
        verdict = check("broker-eku", answer)
        assert verdict.correct, (answer, verdict)
    assert "1.3.6.1.5.5.7.3.1" in check("broker-eku", extension).message


@pytest.mark.parametrize("typed", ["serverAuth", "1.3.6.1.5.5.7.3.1", ["serverAuth"], "TLS Web Server Authentication"])
def test_broker_eku_typed_by_hand_does_not_pass(typed: object) -> None:
    """The exercise asks to read the purpose with cryptography: the right name typed in used to pass."""
    assert "typed by hand" in targeted("broker-eku", typed, says="Read it from server_cert")


def test_broker_eku_targeted_hints_cover_the_list(built_lab: Path) -> None:
    cert = server_crt(built_lab)
    client = load_certificate(built_lab / "client" / "client.crt")
    reached = {
        targeted("broker-eku", cert.extensions.get_extension_for_class(x509.KeyUsage)),
        targeted("broker-eku", cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value),
        targeted("broker-eku", cert),
        targeted("broker-eku", (built_lab / "broker" / "server.crt").read_bytes()),
        targeted("broker-eku", client.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value),
        targeted("broker-eku", [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
        targeted("broker-eku", "serverAuth"),
    }
    assert reached == set(EXERCISES["broker-eku"].hints)


# --- csr-policy ---------------------------------------------------------------------------------------------------

def test_csr_policy_right() -> None:
    assert check("csr-policy", ["mqtt.lab.example", "printer.lab.example"]).correct
    assert check("csr-policy", "printer.lab.example, MQTT.lab.example.").correct
    assert check("csr-policy", {x509.DNSName("mqtt.lab.example"), x509.DNSName("printer.lab.example")}).correct


def test_csr_policy_targeted_hints_cover_the_list() -> None:
    reached = {
        targeted("csr-policy", list(CSR_ASKS)),
        targeted("csr-policy", ["mqtt.lab.example", "mqtt.lab.example.attacker.net", "printer.lab.example"]),
        targeted("csr-policy", ["mqtt.lab.example"]),
        targeted("csr-policy", [n for n in CSR_ASKS if n.endswith("lab.example")]),   # no leading dot
        targeted("csr-policy", []),
        targeted("csr-policy", ["evil.example"]),
    }
    assert reached == set(EXERCISES["csr-policy"].hints)
    assert sorted(POLICY_GRANTS) == ["mqtt.lab.example", "printer.lab.example"]


def test_csr_policy_a_suffix_without_its_dot_does_not_pass() -> None:
    """n.endswith("lab.example") used to be judged right; the CSR now asks for mqtt.evillab.example too."""
    assert "mqtt.evillab.example" in CSR_ASKS
    without_dot = [n for n in CSR_ASKS if n.endswith("lab.example")]
    assert "mqtt.evillab.example" in without_dot
    assert ".lab.example" in targeted("csr-policy", without_dot, says=["evillab.example", "dot"])
    assert check("csr-policy", [n for n in CSR_ASKS if n.endswith(".lab.example")]).correct


@pytest.mark.parametrize("notebook", ["03_broker_certificate.ipynb", "solutions/03_broker_certificate_solutions.ipynb"])
def test_the_notebooks_csr_asks_what_the_judge_knows(notebook: str) -> None:
    import json

    cells = json.loads((Path(__file__).parent.parent / "notebooks" / notebook).read_text())["cells"]
    source = next("".join(c["source"]) for c in cells if "student_csr = (" in "".join(c["source"]))
    for name in CSR_ASKS:
        assert f'"{name}"' in source


test_garbage_gets_a_sentence, test_the_placeholder_is_not_an_answer = garbage_tests(IDS)


# --- the facts notebook 03 states --------------------------------------------------------------------------------

def _leaf(root: Path, folder: Path, stem: str, cn: str, sans: list[str] | None, key=None) -> tuple[Path, Path]:
    """A broker certificate from the lab's CA with the given CN and SAN (None: no SAN at all)."""
    ca_key, ca = load_private_key(root / "ca" / "ca.key"), load_certificate(root / "ca" / "ca.crt")
    key = key or generate_key()
    extensions = leaf_extensions("broker", sans or ["unused.example"], key.public_key())
    if sans is None:
        extensions = [e for e in extensions if not isinstance(e[0], x509.SubjectAlternativeName)]
    cert = issue(key.public_key(), cn, issuer=ca, signing_key=ca_key, extensions=extensions, window=validity(30))
    return save_pem(cert, folder / f"{stem}.crt"), save_key(key, folder / f"{stem}.key")


def _server(crt: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(crt, key)
    return context


def _client(root: Path, check_hostname: bool = True) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(root / "ca" / "ca.crt"))
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    context.check_hostname = check_hostname
    return context


def test_a_san_hides_the_cn_and_an_address_never_matches_the_cn(built_lab: Path, tmp_path: Path) -> None:
    with_san = _leaf(built_lab, tmp_path, "with-san", "localhost", ["other.example"])
    result = handshake_contexts(_server(*with_san), _client(built_lab), "localhost")
    assert not result.ok and "Hostname mismatch" in (result.reason or "")
    cn_only = _leaf(built_lab, tmp_path, "cn-only", "127.0.0.1", None)
    result = handshake_contexts(_server(*cn_only), _client(built_lab), "127.0.0.1")
    assert not result.ok and "IP address mismatch" in (result.reason or "")
    # With no SAN at all, Python (hostname_checks_common_name, default True) and OpenSSL still fall back
    # to the CN for a DNS name: a legacy rule RFC 9525 drops. The notebook says so.
    legacy = _leaf(built_lab, tmp_path, "legacy", "localhost", None)
    assert handshake_contexts(_server(*legacy), _client(built_lab), "localhost").ok


def test_any_certificate_of_the_ca_impersonates_the_broker_when_names_are_not_checked(built_lab: Path,
                                                                                       tmp_path: Path) -> None:
    evil = _leaf(built_lab, tmp_path, "evil", "evil.example", ["evil.example"])  # the profile, no local names
    refused = handshake_contexts(_server(*evil), _client(built_lab), "localhost")
    assert not refused.ok and refused.refused_by == "client"
    assert refused.reason == "certificate verify failed: Hostname mismatch, certificate is not valid for 'localhost'."
    assert handshake_contexts(_server(*evil), _client(built_lab, check_hostname=False), "localhost").ok


def test_the_labs_ca_signs_any_well_formed_name_and_adds_the_local_names(built_lab: Path) -> None:
    """What notebook 03 says of sign_csr: it checks form, not right to a name; and every broker
    certificate it signs also answers to localhost, 127.0.0.1 and ::1."""
    key = generate_key()
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bank.example")]))
           .add_extension(x509.SubjectAlternativeName([x509.DNSName("bank.example")]), critical=False)
           .sign(key, hashes.SHA256()))
    assert csr.is_signature_valid
    ca_key, ca = load_private_key(built_lab / "ca" / "ca.key"), load_certificate(built_lab / "ca" / "ca.crt")
    cert = sign_csr(csr, ca, ca_key, "broker")
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["bank.example", "localhost"]


def test_rsa_below_2048_bits_is_refused_at_security_level_2(built_lab: Path, tmp_path: Path) -> None:
    weak = _leaf(built_lab, tmp_path, "weak", "localhost", ["localhost"], key=rsa.generate_private_key(65537, 1024))
    assert ssl.create_default_context().security_level == 2  # what Python sets (3.10+)
    with pytest.raises(ssl.SSLError, match="ee key too small"):
        _server(*weak)
    openssl = require_program("openssl", "apt install openssl")
    done = subprocess.run([openssl, "s_server", "-accept", "127.0.0.1:0", "-naccept", "1", "-www",
                           "-cert", str(weak[0]), "-key", str(weak[1])], capture_output=True, text=True,
                          timeout=30, stdin=subprocess.DEVNULL)
    assert "ee key too small" in done.stderr and done.returncode != 0


def test_a_broker_certificate_without_server_auth_is_refused_for_its_purpose(built_lab: Path, tmp_path: Path) -> None:
    """Notebook 03: "a client refuses a broker certificate whose extendedKeyUsage lacks it"."""
    ca_key, ca = load_private_key(built_lab / "ca" / "ca.key"), load_certificate(built_lab / "ca" / "ca.crt")
    key = generate_key()
    extensions = leaf_extensions("client", ["localhost"], key.public_key())  # clientAuth, not serverAuth
    extensions = [e for e in extensions if not isinstance(e[0], x509.SubjectAlternativeName)]
    extensions.append((x509.SubjectAlternativeName([x509.DNSName("localhost")]), False))
    cert = issue(key.public_key(), "localhost", issuer=ca, signing_key=ca_key, extensions=extensions,
                 window=validity(30))
    files = (save_pem(cert, tmp_path / "wrong-purpose.crt"), save_key(key, tmp_path / "wrong-purpose.key"))
    result = handshake_contexts(_server(*files), _client(built_lab), "localhost")
    assert not result.ok and result.reason == "certificate verify failed: unsuitable certificate purpose"
