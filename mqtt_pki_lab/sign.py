"""Arrows 5 and 8 of the diagram: the CA signs a CSR with ``ca.key``, making ``server.crt`` or ``client.crt``.

The CA first checks the CSR: its signature (proof that the requester holds the private key), the
strength of its key, and its names. Then it decides what goes into the certificate: the requester asks,
the CA's profile rules. No extension is copied from the CSR. The broker gets ``serverAuth`` and its names;
a client gets ``clientAuth``, its name as Common Name (which mosquitto reads as the MQTT username) and a
URI naming the device. No leaf outlives the CA that signed it.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography import x509

from .certificates import common_name, host_names, is_ca, issue
from .csr import request_names
from .errors import InputError
from .keys import PrivateKey, key_problem, same_public_key
from .profile import DEFAULT_LEAF_DAYS, check_days, leaf_extensions, leaf_names, validity


def csr_names(csr: x509.CertificateSigningRequest) -> list[str]:
    """The names a CSR asks for: its Common Name first, then the host names of its subjectAltName."""
    names = [cn] if (cn := common_name(csr)) else []
    return list(dict.fromkeys([*names, *host_names(csr)]))


def check_csr(csr: x509.CertificateSigningRequest, kind: str, csr_path: str | Path = "CSR") -> list[str]:
    """Check a CSR before signing it as a ``broker`` or ``client``; return the names the certificate gets."""
    if not csr.is_signature_valid:
        raise InputError(csr_path, "the CSR's signature does not verify: it was altered, or not signed by "
                                   "the key it carries; make the CSR again from its private key")
    problem = key_problem(csr.public_key())
    if problem:
        raise InputError(csr_path, f"the CA will not certify this key: {problem}")
    names = csr_names(csr)
    if not names:
        raise InputError(csr_path, "the CSR asks for no name (no Common Name, no subjectAltName)")
    try:
        return request_names(kind, names if kind == "broker" else names[:1])
    except InputError as exc:
        raise InputError(csr_path, f"the CSR asks for a name the CA will not certify: {exc.problem}") from None


def sign_csr(csr: x509.CertificateSigningRequest, ca_cert: x509.Certificate, ca_key: PrivateKey, kind: str,
             days: int = DEFAULT_LEAF_DAYS, *, csr_path: str | Path = "CSR",
             ca_key_path: str | Path = "ca.key") -> x509.Certificate:
    """Sign ``csr`` as the CA, applying the profile of ``kind`` (``"broker"`` or ``"client"``).

    Raises :class:`~mqtt_pki_lab.errors.InputError` when the CSR's signature does not verify, its key is
    weak or unsupported, its names are not valid, ``ca_key`` is not the key of ``ca_cert``, or the CA
    has expired. The ``openssl`` twin is in :mod:`mqtt_pki_lab.twins`.
    """
    if kind not in ("broker", "client"):
        raise ValueError(f"kind must be 'broker' or 'client', not {kind!r}")
    check_days(days)
    names = check_csr(csr, kind, csr_path)
    if not same_public_key(ca_key, ca_cert.public_key()):  # type: ignore[arg-type]
        raise InputError(ca_key_path, "this key does not belong to ca.crt; the CA cannot sign with it")
    if not is_ca(ca_cert):
        raise InputError(ca_key_path, "ca.crt is not a CA certificate (basicConstraints CA:TRUE); it cannot sign")
    if ca_cert.not_valid_after_utc <= dt.datetime.now(dt.timezone.utc):
        raise InputError(ca_key_path, f"the CA expired on {ca_cert.not_valid_after_utc:%Y-%m-%d}; it can no "
                                      "longer sign (make a new CA)")
    public_key = csr.public_key()
    return issue(public_key, names[0], issuer=ca_cert, signing_key=ca_key,  # type: ignore[arg-type]
                 extensions=leaf_extensions(kind, leaf_names(kind, names), public_key),
                 window=validity(days, not_after_limit=ca_cert.not_valid_after_utc))
