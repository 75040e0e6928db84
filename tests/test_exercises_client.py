"""The exercises of notebook 04 (the client's certificate): right answers pass, each targeted hint is reached
by a wrong answer that earns it, garbage gets a sentence; and the device workflow the notebook shows."""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID
from exercise_helpers import check, garbage_tests, targeted

from mqtt_pki_lab.csr import create_csr
from mqtt_pki_lab.exercises import EXERCISES
from mqtt_pki_lab.exercises.client import DEVICE, SECOND_DEVICE
from mqtt_pki_lab.keys import generate_key, load_private_key
from mqtt_pki_lab.pem import load_certificate
from mqtt_pki_lab.profile import client_uri
from mqtt_pki_lab.sign import sign_csr

IDS = ("device-csr", "device-travels", "client-username")


def build(key, cn: str | None = DEVICE, san: list[x509.GeneralName] | None = None) -> x509.CertificateSigningRequest:
    """The CSR the exercise asks for, or a variant with another CN or SAN (None: left out)."""
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)] if cn else []))
    if san is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return builder.sign(key, hashes.SHA256())


URI = [x509.UniformResourceIdentifier(client_uri(DEVICE))]


def test_the_exercises_belong_to_notebook_04() -> None:
    for exercise_id in IDS:
        assert EXERCISES[exercise_id].notebook == "04_client_certificate.ipynb"
        assert len(EXERCISES[exercise_id].hints) >= 4


def maker(cn: str | None = "name", san: str | None = "uri", signer: str = "key"):
    """A student's make_csr(key, name): right, or wrong in one chosen way.

    ``cn``/``san``: "name" (or "uri") uses the argument, another string is typed in, None leaves it out,
    "dns" puts the name in a DNS entry; ``signer``: "key" (the argument) or "device" (a key of the notebook).
    """
    device_key = generate_key()

    def make_csr(key, name):
        common = name if cn == "name" else cn
        entries = {"uri": [x509.UniformResourceIdentifier(client_uri(name))], "dns": [x509.DNSName(name)],
                   "fixed": [x509.UniformResourceIdentifier(client_uri(DEVICE))],
                   "other": [x509.UniformResourceIdentifier("urn:example:" + name)], None: None}[san]
        return build(key if signer == "key" else device_key, cn=common, san=entries)
    return make_csr


def test_device_csr_right_as_a_function_called_for_two_devices() -> None:
    assert check("device-csr", maker()).correct
    assert SECOND_DEVICE != DEVICE
    assert check("device-csr", lambda key, name: create_csr(key, "client", [name])).correct   # the lab's own


def test_device_csr_a_name_or_key_typed_in_does_not_pass() -> None:
    """make_csr called for sensor-7 only used to pass with "sensor-7" typed in, or signed with device_key."""
    fixed = targeted("device-csr", maker(cn=DEVICE, san="fixed"), says=[SECOND_DEVICE, DEVICE])
    assert "ignores its `name` argument" in fixed
    assert targeted("device-csr", maker(signer="device")).startswith("make_csr was given a fresh key")
    # the CSR itself (make_csr's result), as the old notebook passed it: the function is asked for
    key = generate_key()
    assert targeted("device-csr", build(key, san=URI), key=key.public_key()).startswith("pass the function itself")


def test_device_csr_unfinished_is_not_an_attempt() -> None:
    def unfinished(key, name):
        return ...
    feedback = check("device-csr", unfinished)
    assert not feedback.correct and not feedback.answered


def test_device_csr_targeted_hints_cover_the_list() -> None:
    key = generate_key()
    good = build(key, san=URI)
    pem = good.public_bytes(serialization.Encoding.PEM)
    # A CSR whose signature no longer verifies: the last byte of its (ECDSA) signature changed.
    der = bytearray(good.public_bytes(serialization.Encoding.DER))
    der[-1] ^= 0x01
    tampered = x509.load_der_x509_csr(bytes(der))
    reached = {
        targeted("device-csr", good),
        targeted("device-csr", key),
        targeted("device-csr", maker(), key=key),  # a private key passed as context
        targeted("device-csr", lambda k, n: k),
        targeted("device-csr", lambda k, n: x509.CertificateSigningRequestBuilder()),
        targeted("device-csr", lambda k, n: pem),
        targeted("device-csr", lambda k, n: load_certificate_for_test()),
        targeted("device-csr", tampered),
        targeted("device-csr", maker(signer="device")),
        targeted("device-csr", maker(cn=None)),
        targeted("device-csr", maker(cn="client")),
        targeted("device-csr", maker(san=None)),
        targeted("device-csr", maker(san="dns")),
        targeted("device-csr", maker(san="other")),
        targeted("device-csr", maker(cn=DEVICE, san="fixed")),
    }
    assert reached == set(EXERCISES["device-csr"].hints)


_CERT: list[x509.Certificate] = []


def load_certificate_for_test() -> x509.Certificate:
    """Any certificate (a CA's would do): the device sends a request, not a certificate."""
    if not _CERT:
        from mqtt_pki_lab.ca import create_ca_certificate

        _CERT.append(create_ca_certificate(generate_key()))
    return _CERT[0]


def test_device_travels() -> None:
    for answer in ("client.csr", "client/client.csr", " CSR ", "sensor-7.csr"):
        assert check("device-travels", answer).correct
    reached = {targeted("device-travels", a) for a in ("client.key", "client.crt", "ca.crt", "ca/ca.key")}
    assert reached == set(EXERCISES["device-travels"].hints)


def test_client_username(built_lab: Path) -> None:
    cert = load_certificate(built_lab / "client" / "client.crt")
    assert check("client-username", "client", cert=cert).correct
    assert check("client-username", DEVICE).correct
    assert check("client-username", "CN=sensor-7").correct
    reached = {targeted("client-username", a) for a in (
        client_uri(DEVICE), "mqtt-pki-lab", "CN=sensor-7,O=mqtt-pki-lab", "MQTT Lab Root CA", "client.crt",
        "Sensor-7")}
    assert reached == set(EXERCISES["client-username"].hints)


test_garbage_gets_a_sentence, test_the_placeholder_is_not_answered = garbage_tests(IDS)


def test_the_device_workflow_of_the_notebook(built_lab: Path, tmp_path: Path) -> None:
    """Key and CSR made in a device folder; the CA signs just the CSR; the key never enters the lab."""
    from mqtt_pki_lab.keys import save_key
    from mqtt_pki_lab.pem import save_pem

    device = tmp_path / "device"
    device.mkdir()
    key = generate_key()
    save_key(key, device / "client.key")
    csr = create_csr(key, "client", [DEVICE])
    save_pem(csr, device / "client.csr")
    assert (device / "client.key").stat().st_mode & 0o777 == 0o600
    ca_key, ca = load_private_key(built_lab / "ca" / "ca.key"), load_certificate(built_lab / "ca" / "ca.crt")
    cert = sign_csr(x509.load_pem_x509_csr((device / "client.csr").read_bytes()), ca, ca_key, "client")
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == DEVICE
    assert cert.public_key() == key.public_key()
    assert not any(p.name == "client.key" and device in p.parents for p in built_lab.rglob("*"))
