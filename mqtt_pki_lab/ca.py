"""Arrow 2 of the diagram: the CA signs its own certificate, ``ca.crt``, with ``ca.key``.

``ca.crt`` is the public face of the Certificate Authority: the broker and every client keep a copy,
and trust whatever certificate ``ca.key`` signed. It is *self-signed*: issuer and subject are the same,
which is what makes it a root of trust rather than something that needs checking further.
Its ``openssl`` twin is in :mod:`mqtt_pki_lab.twins`.
"""

from __future__ import annotations

from cryptography import x509

from .certificates import issue
from .keys import PrivateKey
from .names import check_common_name
from .profile import DEFAULT_CA_DAYS, DEFAULT_CA_NAME, MAX_CA_DAYS, ca_extensions, check_days, validity


def create_ca_certificate(ca_key: PrivateKey, common_name: str = DEFAULT_CA_NAME,
                          days: int = DEFAULT_CA_DAYS, *, path_length: int = 0) -> x509.Certificate:
    """Make the self-signed CA certificate for ``ca_key``: basicConstraints CA:TRUE (critical), keyUsage
    digitalSignature, keyCertSign and cRLSign (critical), valid ``days`` from a few minutes ago."""
    check_common_name(common_name, "--ca-name")
    check_days(days, "--ca-days", maximum=MAX_CA_DAYS)
    return issue(ca_key.public_key(), common_name, issuer=None, signing_key=ca_key,
                 extensions=ca_extensions(ca_key.public_key(), path_length), window=validity(days))
