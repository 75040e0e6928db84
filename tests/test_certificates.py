"""The certificate profile, checked field by field, for every key type."""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mqtt_pki_lab import diagram as L
from mqtt_pki_lab.ca import create_ca_certificate
from mqtt_pki_lab.csr import create_csr
from mqtt_pki_lab.errors import InputError
from mqtt_pki_lab.keys import KEY_TYPES, generate_key, key_kind, load_private_key, same_public_key, save_key
from mqtt_pki_lab.pem import load_certificate, load_csr
from mqtt_pki_lab.sign import sign_csr
from mqtt_pki_lab.steps import BuildOptions

KEY_TYPE_NAMES = list(KEY_TYPES)


def ext(cert: x509.Certificate, cls: type) -> x509.Extension:
    return cert.extensions.get_extension_for_class(cls)


@pytest.mark.parametrize("kind", KEY_TYPE_NAMES)
def test_profile_for_every_key_type(kind: str, lab_factory: Callable[..., Path]) -> None:
    root = lab_factory(key_type=kind, server_names=("broker.lab.example",), client_name="sensor-1")
    ca = load_certificate(L.CA_CERT.path(root))
    server = load_certificate(L.SERVER_CERT.path(root))
    client = load_certificate(L.CLIENT_CERT.path(root))
    expected_kind = {"ec-p256": "EC P-256", "ec-p384": "EC P-384", "ed25519": "Ed25519"}.get(
        kind, f"RSA {kind[4:]}")
    for cert in (ca, server, client):
        assert cert.version is x509.Version.v3
        assert key_kind(cert.public_key()) == expected_kind
        assert ext(cert, x509.SubjectKeyIdentifier)
        assert cert.not_valid_before_utc < dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=4)
        if isinstance(cert.public_key(), ed25519.Ed25519PublicKey):
            assert cert.signature_hash_algorithm is None
        else:
            assert cert.signature_hash_algorithm.name == "sha256"
    # CA: critical basicConstraints CA:TRUE pathlen 0, critical keyUsage keyCertSign + cRLSign.
    bc = ext(ca, x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length == 0
    ku = ext(ca, x509.KeyUsage)
    assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign
    assert ca.subject == ca.issuer
    # Leaves: CA:FALSE critical, AKI = CA's SKI, one EKU each, SAN present, within the CA's lifetime.
    ca_ski = ext(ca, x509.SubjectKeyIdentifier).value.digest
    for cert, eku in ((server, ExtendedKeyUsageOID.SERVER_AUTH), (client, ExtendedKeyUsageOID.CLIENT_AUTH)):
        assert ext(cert, x509.BasicConstraints).critical and not ext(cert, x509.BasicConstraints).value.ca
        leaf_ku = ext(cert, x509.KeyUsage)
        assert leaf_ku.critical and leaf_ku.value.digital_signature and not leaf_ku.value.key_cert_sign
        assert leaf_ku.value.key_encipherment == isinstance(cert.public_key(), rsa.RSAPublicKey)
        assert list(ext(cert, x509.ExtendedKeyUsage).value) == [eku]
        assert ext(cert, x509.AuthorityKeyIdentifier).value.key_identifier == ca_ski
        assert cert.issuer == ca.subject
        assert cert.not_valid_after_utc <= ca.not_valid_after_utc
        assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days <= 397
        assert cert.serial_number != ca.serial_number
    san = ext(server, x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["broker.lab.example", "localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1"),
                                                        ipaddress.ip_address("::1")]
    assert server.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "broker.lab.example"
    # The client's CN is its MQTT username; its SAN names the device with a URI, not as a host (a device has
    # no DNS name), and cryptography's client verifier needs a SAN.
    assert client.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "sensor-1"
    client_san = ext(client, x509.SubjectAlternativeName).value
    assert client_san.get_values_for_type(x509.UniformResourceIdentifier) == ["urn:mqtt-pki-lab:client:sensor-1"]
    assert client_san.get_values_for_type(x509.DNSName) == []
    # The CA's subject is distinct from every leaf's.
    assert len({ca.subject, server.subject, client.subject}) == 3
    # Keys, CSRs and certificates belong together.
    assert same_public_key(load_private_key(L.SERVER_KEY.path(root)), server.public_key())
    assert same_public_key(load_csr(L.CLIENT_CSR.path(root)).public_key(), client.public_key())


def test_cryptography_verifier_accepts_the_chain(built_lab: Path) -> None:
    """pyca/cryptography's own RFC 5280 verifier, as a second opinion beside OpenSSL."""
    from cryptography.x509.verification import PolicyBuilder, Store

    ca = load_certificate(L.CA_CERT.path(built_lab))
    store = Store([ca])
    server = load_certificate(L.SERVER_CERT.path(built_lab))
    client = load_certificate(L.CLIENT_CERT.path(built_lab))
    for name in ("localhost",):
        PolicyBuilder().store(store).build_server_verifier(x509.DNSName(name)).verify(server, [])
    PolicyBuilder().store(store).build_server_verifier(x509.IPAddress(ipaddress.ip_address("127.0.0.1"))
                                                       ).verify(server, [])
    verified = PolicyBuilder().store(store).build_client_verifier().verify(client, [])
    assert verified.subjects == [x509.UniformResourceIdentifier("urn:mqtt-pki-lab:client:client")]


def test_leaf_never_outlives_its_ca(tmp_path: Path) -> None:
    ca_key = generate_key()
    ca = create_ca_certificate(ca_key, days=10)
    key = generate_key()
    cert = sign_csr(create_csr(key, "client", ["alice"]), ca, ca_key, "client", days=397)
    assert cert.not_valid_after_utc == ca.not_valid_after_utc


def test_sign_refuses_a_csr_whose_signature_does_not_verify(tmp_path: Path) -> None:
    ca_key = generate_key()
    ca = create_ca_certificate(ca_key)
    csr = create_csr(generate_key(), "broker", ["mqtt.example.com"])
    # Swap the public key for another one: the CSR still parses, but its signature no longer matches.
    forged = _csr_with_foreign_key(csr)
    with pytest.raises(InputError, match="signature does not verify"):
        sign_csr(forged, ca, ca_key, "broker", csr_path=tmp_path / "server.csr")


def _csr_with_foreign_key(csr: x509.CertificateSigningRequest) -> x509.CertificateSigningRequest:
    """Flip one bit of the CSR's signature: a tampered request."""
    from cryptography.hazmat.primitives.serialization import Encoding

    der = bytearray(csr.public_bytes(Encoding.DER))
    der[-1] ^= 0x01
    return x509.load_der_x509_csr(bytes(der))


def test_sign_refuses_a_ca_key_that_is_not_the_ca_certificates(tmp_path: Path) -> None:
    ca = create_ca_certificate(generate_key())
    csr = create_csr(generate_key(), "client", ["client"])
    with pytest.raises(InputError, match=r"does not belong to ca\.crt"):
        sign_csr(csr, ca, generate_key(), "client", ca_key_path=tmp_path / "ca.key")


@pytest.mark.parametrize("kind", ["ec-p256", "rsa-2048", "ed25519"])
def test_encrypted_keys_round_trip_and_need_the_passphrase(kind: str, tmp_path: Path) -> None:
    key = generate_key(kind)
    path = save_key(key, tmp_path / "k.key", "correct horse")
    assert b"ENCRYPTED PRIVATE KEY" in path.read_bytes()
    assert same_public_key(load_private_key(path, "correct horse"), key)
    with pytest.raises(InputError, match="encrypted; give its passphrase"):
        load_private_key(path)
    with pytest.raises(InputError, match="wrong passphrase"):
        load_private_key(path, "wrong")


def test_build_with_passphrase_encrypts_ca_key_only_unless_asked(tmp_path: Path) -> None:
    from mqtt_pki_lab.steps import Lab

    Lab(tmp_path / "a", BuildOptions(passphrase=b"s3cret")).build_all()
    assert b"ENCRYPTED" in (tmp_path / "a" / "ca" / "ca.key").read_bytes()
    assert b"ENCRYPTED" not in (tmp_path / "a" / "broker" / "server.key").read_bytes()
    Lab(tmp_path / "b", BuildOptions(passphrase=b"s3cret", encrypt_all=True)).build_all()
    assert all(b"ENCRYPTED" in p.read_bytes() for p in (tmp_path / "b").rglob("*.key"))
