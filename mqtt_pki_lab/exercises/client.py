"""Exercises of notebook 04 (the client's certificate, arrows 6-8): a device's CSR, custody, its MQTT name.

* ``device-csr``: complete ``make_csr(key, name)``, the ``cryptography`` code that builds a device's CSR (its
  name as Common Name, a URI naming the device in the subjectAltName, signed with the device's own key); the
  judge calls it for two devices, each with a fresh key, so a name or key typed in does not pass;
* ``device-travels``: which file travels from the device to the CA (only the CSR);
* ``client-username``: the MQTT username mosquitto takes from a client certificate (its Common Name).
"""

from __future__ import annotations

import re
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from ..certificates import common_name
from ..keys import same_public_key
from ..profile import client_uri
from . import Feedback, exercise, normalise, right
from .foundations import has_placeholder

NOTEBOOK = "04_client_certificate.ipynb"

#: The device of the exercises.
DEVICE = "sensor-7"

#: A private key of any kind the lab makes: never an answer, never context.
PRIVATE_TYPES = (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey, ed25519.Ed25519PrivateKey)

# --- device-csr ---------------------------------------------------------------------------------------------------

_CSR_PRIVATE = ("that is a private key. It never travels: the CA gets only the CSR, which carries the public "
                "key and is signed with the private one. make_csr returns the CSR it builds.")
_CSR_BUILDER = ("make_csr returns the builder, not yet a CSR: finish it with .sign(key, hashes.SHA256()) "
                "(the device signs its own request with its own key).")
_CSR_PEM = "make_csr returns text or bytes; return the CSR object that .sign(...) gives."
_CSR_CERT = "make_csr returns a certificate: what the CA sends back later. The device sends a signing *request*."
_CSR_SIGNATURE = ("the CSR's signature does not verify: it was changed after signing, or signed by a key "
                  "other than the one it carries. The CA would refuse it.")
_CSR_NO_CN = ("the subject has no Common Name. mosquitto reads the MQTT username from it "
              "(use_identity_as_username): x509.NameAttribute(NameOID.COMMON_NAME, name).")
_CSR_WRONG_CN = "the Common Name is {cn!r}; the device is called {name!r}, and the CN becomes its MQTT username."
_CSR_NO_SAN = ("no subjectAltName: add one naming the device with the lab's URI, "
               "x509.UniformResourceIdentifier(\"{uri}\") (cryptography's client verifier wants a SAN on a client "
               "certificate).")
_CSR_DNS = ("{name!r} as a DNS name says the device is a host that others dial by that name; nobody dials a "
            "sensor, it dials the broker. (A one-label name is valid DNS syntax, RFC 1034, but linters of "
            "certificates such as pkilint flag it.) The lab names a device by a URI: \"{uri}\".")
_CSR_WRONG_URI = "the subjectAltName's URI should be exactly \"{uri}\" (the lab's URN for this device)."
_CSR_GENERAL = ("make_csr should return the CSR object it builds "
                "(x509.CertificateSigningRequestBuilder()....sign(key, hashes.SHA256())).")


_CSR_FUNCTION = ("pass the function itself, make_csr (no brackets): the check calls it for sensor-7 and for "
                 "another device, each with a fresh key.")
_CSR_FIXED_NAME = ("make_csr({other!r}) made a CSR for {cn!r}: the function ignores its `name` argument. Use "
                   "`name` for the Common Name and in the URI (e.g. f\"urn:mqtt-pki-lab:client:{{name}}\").")
_CSR_IGNORES_KEY = ("make_csr was given a fresh key, but the CSR it made carries another one: sign with `key`, "
                    "the function's argument, not device_key.")

#: The second device the judge asks make_csr for, to see that it uses its arguments.
SECOND_DEVICE = "pump-12"


def _csr_verdict(csr: Any, key: Any, name: str) -> str | None:
    """The hint a device's CSR earns (``key``: the public key it must carry), or None when the CA would sign it."""
    if isinstance(csr, PRIVATE_TYPES):
        return _CSR_PRIVATE
    if isinstance(csr, (bytes, bytearray, str)):
        text = bytes(csr) if not isinstance(csr, str) else csr.encode()
        return _CSR_PRIVATE if b"PRIVATE KEY" in text else _CSR_PEM
    if isinstance(csr, x509.CertificateSigningRequestBuilder):
        return _CSR_BUILDER
    if isinstance(csr, x509.Certificate):
        return _CSR_CERT
    if not isinstance(csr, x509.CertificateSigningRequest):
        return _CSR_GENERAL
    if not csr.is_signature_valid:
        return _CSR_SIGNATURE
    if key is not None and not same_public_key(csr.public_key(), key):  # type: ignore[arg-type]
        return _CSR_IGNORES_KEY
    cn = common_name(csr)
    if cn is None:
        return _CSR_NO_CN
    if cn != name:
        return _CSR_WRONG_CN.format(cn=cn, name=name)
    uri = client_uri(name)
    try:
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return _CSR_NO_SAN.format(uri=uri)
    if name in san.get_values_for_type(x509.DNSName):
        return _CSR_DNS.format(name=name, uri=uri)
    if san.get_values_for_type(x509.UniformResourceIdentifier) != [uri]:
        return _CSR_WRONG_URI.format(uri=uri)
    return None


@exercise("device-csr", NOTEBOOK, "write make_csr(key, name): the CSR of a device, built with cryptography",
          hint=_CSR_GENERAL,
          hints=(_CSR_FUNCTION, _CSR_PRIVATE, _CSR_BUILDER, _CSR_PEM, _CSR_CERT, _CSR_SIGNATURE, _CSR_NO_CN,
                 _CSR_WRONG_CN, _CSR_NO_SAN, _CSR_DNS, _CSR_WRONG_URI,
                 _CSR_FIXED_NAME.format(other=SECOND_DEVICE, cn=DEVICE), _CSR_IGNORES_KEY), kind="code")
def _device_csr(answer: Any, key: Any = None) -> Feedback | str | None:
    if isinstance(answer, PRIVATE_TYPES) or isinstance(key, PRIVATE_TYPES):
        return _CSR_PRIVATE
    if not callable(answer) or isinstance(answer, type):
        hint = _csr_verdict(answer, None, DEVICE)
        return _CSR_FUNCTION if hint in (None, _CSR_GENERAL) else hint
    if has_placeholder(answer):
        return Feedback(False, "Not finished yet: make_csr still holds a `...` (or still ends with `return ...`). "
                               "Fill in the name, the URI and the key, then run the cell again.", answered=False)
    first_key = ec.generate_private_key(ec.SECP256R1())
    made = answer(first_key, DEVICE)
    if made is Ellipsis:
        return Feedback(False, "Not finished yet: make_csr still returns `...`. Uncomment its body and delete "
                               "the last `return ...`.", answered=False)
    hint = _csr_verdict(made, first_key.public_key(), DEVICE)
    if hint is not None:
        return hint
    second_key = ec.generate_private_key(ec.SECP256R1())
    other = answer(second_key, SECOND_DEVICE)
    if isinstance(other, x509.CertificateSigningRequest) and other.is_signature_valid:
        if not same_public_key(other.public_key(), second_key.public_key()):
            return _CSR_IGNORES_KEY
        if common_name(other) != SECOND_DEVICE:
            return _CSR_FIXED_NAME.format(other=SECOND_DEVICE, cn=common_name(other))
    hint = _csr_verdict(other, second_key.public_key(), SECOND_DEVICE)
    if hint is not None:
        return hint
    return right("make_csr builds a CSR the CA will sign, for any device: its public key, its name as Common "
                 "Name, its URI in the subjectAltName, and a signature that proves the device holds the matching "
                 "private key (checked for sensor-7 and for pump-12, each with a fresh key). Only this travels; "
                 "the key stays on the device.")


# --- device-travels -----------------------------------------------------------------------------------------------

_TRAVEL_KEY = ("the private key never leaves the device: whoever holds a copy can *be* the device. Which file "
               "carries only the public key, asking to be signed?")
_TRAVEL_CRT = "the certificate travels the other way: the CA sends it back once it has signed. Which file goes first?"
_TRAVEL_CA = ("ca.crt goes from the CA to the device (arrow 9), so the device can check the broker; "
              "what does the device send to the CA?")
_TRAVEL_CAKEY = "ca.key never leaves ca/, and it is the CA's, not the device's."
_TRAVEL_GENERAL = "type the name of one file of the client's box (client.key, client.csr, client.crt, ca.crt)."


@exercise("device-travels", NOTEBOOK, "name the one file that travels from the device to the CA",
          hint=_TRAVEL_GENERAL, hints=(_TRAVEL_KEY, _TRAVEL_CRT, _TRAVEL_CA, _TRAVEL_CAKEY))
def _device_travels(answer: Any) -> Feedback | str:
    if not isinstance(answer, str):
        return _TRAVEL_GENERAL
    text = normalise(answer).split("/")[-1]
    if text in ("client.csr", "csr", "device.csr", "sensor-7.csr", "the csr"):
        return right("The CSR: a public key, a name, and the device's signature. The private key is made on "
                     "the device and never leaves it; the certificate and ca.crt come back.")
    return {"client.key": _TRAVEL_KEY, "key": _TRAVEL_KEY, "device.key": _TRAVEL_KEY,
            "client.crt": _TRAVEL_CRT, "crt": _TRAVEL_CRT, "device.crt": _TRAVEL_CRT,
            "ca.crt": _TRAVEL_CA, "ca.key": _TRAVEL_CAKEY}.get(text, _TRAVEL_GENERAL)


# --- client-username ----------------------------------------------------------------------------------------------

_USER_URI = ("that is the subjectAltName's URI, which names the device for TLS. mosquitto's "
             "use_identity_as_username reads another field of the subject.")
_USER_ORG = "that is the Organisation (O), shared by every certificate of the lab; a username must tell clients apart."
_USER_SUBJECT = ("that is the whole subject: what use_subject_as_username would give. use_identity_as_username "
                 "takes one attribute of it.")
_USER_CA = "that is the issuer, the CA: the same for every client. The username is the client's own name."
_USER_FILE = "mosquitto never sees the file name: it reads the certificate the client presents in the handshake."
_USER_CASE = "MQTT usernames are case-sensitive: type the Common Name exactly as the certificate spells it."
_USER_GENERAL = "type the username as mosquitto would log it, e.g. pump-12."


@exercise("client-username", NOTEBOOK, "type the MQTT username mosquitto takes from the device's certificate",
          hint=_USER_GENERAL, hints=(_USER_URI, _USER_ORG, _USER_SUBJECT, _USER_CA, _USER_FILE, _USER_CASE))
def _client_username(answer: Any, cert: Any = None) -> Feedback | str:
    if not isinstance(answer, str) or not answer.strip():
        return _USER_GENERAL
    expected = common_name(cert) if isinstance(cert, x509.Certificate) else DEVICE
    typed = answer.strip().strip("'\"")
    if typed == expected:
        return right(f"{expected}: with use_identity_as_username true, mosquitto takes the Common Name of the "
                     "certificate the client presented (mosquitto.conf(5)); no password file is used on that "
                     "listener. Rules in the ACL file then name this user.")
    if re.sub(r"(?i)^cn\s*=\s*", "", typed) == expected:
        return right(f"{expected} (without the CN=): the value of the Common Name is the username.")
    text = normalise(typed)
    if text.removeprefix("cn=") == (expected or "").lower():
        return _USER_CASE
    if text.startswith("urn:"):
        return _USER_URI
    if "," in text or text.startswith(("o=", "/o=")):
        return _USER_SUBJECT if "cn=" in text else _USER_ORG
    if text in ("mqtt-pki-lab", "o=mqtt-pki-lab"):
        return _USER_ORG
    if "root ca" in text or text == "ca":
        return _USER_CA
    if text.endswith((".crt", ".pem", ".key", ".csr")):
        return _USER_FILE
    return _USER_GENERAL


__all__ = ["DEVICE", "SECOND_DEVICE"]
