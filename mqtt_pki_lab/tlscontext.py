"""TLS contexts for each side of the diagram, strict on every Python version.

Python 3.13's default contexts switch on ``VERIFY_X509_STRICT`` and ``VERIFY_X509_PARTIAL_CHAIN``;
older Pythons don't. The lab switches them on everywhere, so a certificate accepted here is accepted
by the strictest client a student will meet.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from .crl import broker_crl
from .diagram import Side

STRICT_FLAGS = ssl.VERIFY_X509_STRICT | ssl.VERIFY_X509_PARTIAL_CHAIN


def _strict(context: ssl.SSLContext) -> ssl.SSLContext:
    context.verify_flags |= STRICT_FLAGS
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def broker_context(files: Side, password: bytes | str | None = None) -> ssl.SSLContext:
    """The broker's server context: presents server.crt/server.key, *requires* a client certificate
    signed by the CA in ``files.ca``.

    When the broker has a revocation list (:func:`broker_crl`), it is loaded and checked for the client's
    certificate (``VERIFY_CRL_CHECK_LEAF``, what mosquitto's ``crlfile`` does): a revoked client is refused
    ("certificate revoked"), and once the list's nextUpdate has passed *every* client is ("CRL has expired").
    The flag is set only with a list: without one OpenSSL would refuse everybody ("unable to get certificate
    CRL").
    """
    context = _strict(ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(files.ca)))
    context.load_cert_chain(str(files.cert), str(files.key), password=password)
    context.verify_mode = ssl.CERT_REQUIRED
    crl = broker_crl(files)
    if crl is not None:
        context.load_verify_locations(cafile=str(crl))
        context.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    return context


def client_context(files: Side, password: bytes | str | None = None, *, check_hostname: bool = True
                   ) -> ssl.SSLContext:
    """A client's context: trusts only ``files.ca``, checks the broker's name, presents client.crt/client.key.

    Pass ``files`` with ``cert``/``key`` set to None for a client with no certificate.
    """
    context = _strict(ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(files.ca)))
    context.check_hostname = check_hostname
    if files.cert is not None and files.key is not None:
        context.load_cert_chain(str(files.cert), str(files.key), password=password)
    return context


def side_paths(ca: str | Path, cert: str | Path | None, key: str | Path | None) -> Side:
    """A :class:`Side` from three paths (``cert`` and ``key`` may be None for a client without them)."""
    return Side(Path(ca), Path(cert) if cert else None, Path(key) if key else None)  # type: ignore[arg-type]
