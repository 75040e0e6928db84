"""A chain of three: the root CA signs an intermediate CA, and the intermediate signs the leaves.

In the seed's picture the root's ``ca.key`` signs every certificate (arrows 5 and 8), so it must be at hand
every day. Real CAs keep the root's key offline and let an **intermediate CA** sign day to day
(``mqtt-pki-lab build DIR --intermediate``, steps 13-15 of :data:`~mqtt_pki_lab.diagram.INTERMEDIATE_STEPS`):

* the root (``ca/``) says basicConstraints CA:TRUE, **pathLenConstraint 1**: one CA may stand below it
  (RFC 5280 §4.2.1.9);
* the intermediate (``intermediate/{intermediate.key, intermediate.csr, intermediate.crt}``) says CA:TRUE,
  **pathLenConstraint 0**: it signs leaves, no further CA. Its certificate is signed with the root's key
  (:func:`sign_intermediate`), with the lab's CA profile (:func:`~mqtt_pki_lab.profile.ca_extensions`) and
  never past the root's notAfter;
* each leaf file (``server.crt``, ``client.crt``) holds the leaf **followed by** ``intermediate.crt``: the
  chain that side presents in its TLS Certificate message (RFC 8446 §4.4.2: "the sender's certificate MUST
  come in the first CertificateEntry", each following one certifying the one before). OpenSSL's
  ``SSL_CTX_use_certificate_chain_file`` (Python's ``load_cert_chain``, mosquitto's ``certfile``) reads
  such a file as it is: the first certificate is the leaf, the rest the chain;
* every ``ca.crt`` still holds the **root alone**: the trust anchor. An intermediate in ``ca.crt`` instead
  of in the chain "works" for Python 3.13 (its default context sets ``VERIFY_X509_PARTIAL_CHAIN``, which
  accepts any trusted certificate as an anchor) but not for mosquitto or ``openssl verify`` without
  ``-partial_chain``: ``verify`` names it.

Day to day (add-client, sign, renew, revoke, crl --refresh, verify, mqtt) only the intermediate's key is
used; ``ca/ca.key`` may be moved offline (or encrypted with ``--passphrase-file``) and ``status`` says
"kept offline". The CRL is the intermediate's (``intermediate/crl.pem``, copied to ``broker/crl.pem``):
a CRL is signed by the CA that issued the certificates it lists, and mosquitto checks only the leaf's CRL.

Who signs the leaves is decided in one place: :func:`mqtt_pki_lab.steps.issuer_role` (which
:func:`mqtt_pki_lab.crl.issuer_role` returns too).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from .certificates import extension_value, is_ca, issue, signature_hash, signed_by
from .errors import InputError
from .keys import PrivateKey, key_problem, same_public_key
from .names import check_common_name
from .profile import MAX_CA_DAYS, ca_extensions, check_days, subject, validity

__all__ = ["DEFAULT_INTERMEDIATE_DAYS", "DEFAULT_INTERMEDIATE_NAME", "build_path", "chain_pem",
           "create_intermediate_csr", "path_length", "sign_intermediate"]

#: The intermediate CA's Common Name unless ``--intermediate-name`` says otherwise (distinct from the root's
#: and from every leaf's, so that no two certificates of the chain share a subject).
DEFAULT_INTERMEDIATE_NAME = "MQTT Lab Intermediate CA"
#: The intermediate's lifetime: this lab's choice, five years, cut at the root's notAfter. Shorter than the
#: root (ten years by default), so that a replaced intermediate is a routine event the root outlives.
DEFAULT_INTERMEDIATE_DAYS = 1825


def create_intermediate_csr(key: PrivateKey, common_name: str = DEFAULT_INTERMEDIATE_NAME
                            ) -> x509.CertificateSigningRequest:
    """Step 14: the intermediate's CSR: its public key and its name, signed with its own key. It asks for no
    extension: the root decides that the certificate is a CA's (:func:`sign_intermediate`)."""
    check_common_name(common_name, "--intermediate-name")
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject(common_name))
    return builder.sign(key, signature_hash(key))


def path_length(cert: x509.Certificate) -> int | None:
    """A CA certificate's pathLenConstraint (RFC 5280 §4.2.1.9), or None when it sets none or is no CA."""
    value = extension_value(cert, x509.BasicConstraints)
    return value.path_length if value is not None and value.ca else None


def sign_intermediate(csr: x509.CertificateSigningRequest, root_cert: x509.Certificate, root_key: PrivateKey,
                      days: int = DEFAULT_INTERMEDIATE_DAYS, *, csr_path: str | Path = "intermediate.csr",
                      ca_key_path: str | Path = "ca.key") -> x509.Certificate:
    """Step 15: the root signs the intermediate's certificate.

    The CSR's signature and key are checked as for a leaf; the root must be a CA whose pathLenConstraint lets
    a CA stand below it (1 or more, or none), valid now, and ``root_key`` its key. The certificate gets the
    CA profile with pathLenConstraint 0 (:func:`~mqtt_pki_lab.profile.ca_extensions`), the CSR's subject, an
    authorityKeyIdentifier naming the root, and a validity of ``days`` cut at the root's notAfter.
    """
    check_days(days, "--intermediate-days", maximum=MAX_CA_DAYS)
    if not csr.is_signature_valid:
        raise InputError(csr_path, "the CSR's signature does not verify: it was altered, or not signed by the key "
                                   "it carries; make it again from intermediate.key (step 14)")
    problem = key_problem(csr.public_key())  # type: ignore[arg-type]
    if problem:
        raise InputError(csr_path, f"the root will not certify this key: {problem}")
    if not same_public_key(root_key, root_cert.public_key()):  # type: ignore[arg-type]
        raise InputError(ca_key_path, "this key does not belong to ca.crt; the root cannot sign with it")
    if not is_ca(root_cert):
        raise InputError(ca_key_path, "ca.crt is not a CA certificate (basicConstraints CA:TRUE); it cannot sign")
    limit = path_length(root_cert)
    if limit is not None and limit < 1:
        raise InputError(ca_key_path, "ca.crt says pathLenConstraint 0: no CA may stand below it, so every chain "
                                      "through an intermediate would be refused ('path length constraint "
                                      "exceeded'); make the root again with --intermediate (build --force)")
    now = dt.datetime.now(dt.timezone.utc)
    if root_cert.not_valid_after_utc <= now:
        raise InputError(ca_key_path, f"the root expired on {root_cert.not_valid_after_utc:%Y-%m-%d}; it can no "
                                      "longer sign")
    public_key = csr.public_key()
    return issue(public_key, csr.subject, issuer=root_cert, signing_key=root_key,  # type: ignore[arg-type]
                 extensions=ca_extensions(public_key, path_length=0),
                 window=validity(days, not_after_limit=root_cert.not_valid_after_utc, now=now))


def chain_pem(leaf: x509.Certificate, chain: Iterable[x509.Certificate] = ()) -> bytes:
    """The PEM file a side presents: ``leaf`` first, then each certificate of ``chain`` (the intermediate)."""
    return b"".join(cert.public_bytes(Encoding.PEM) for cert in (leaf, *chain))


def build_path(leaf: x509.Certificate, presented: Sequence[x509.Certificate],
               anchors: Sequence[x509.Certificate], max_depth: int = 4) -> list[x509.Certificate] | None:
    """The chain a verifier builds: ``leaf``, then issuers taken from ``presented`` (the certificates sent
    after the leaf) until one is signed by a certificate of ``anchors`` (the verifier's ``ca.crt``), which
    ends the list. None when there is no such path.

    Like Python 3.13's default context (``VERIFY_X509_PARTIAL_CHAIN``), any certificate of ``anchors`` is a
    trust anchor, self-signed or not. Only names and signatures are followed here; validity, purposes and
    constraints are separate checks.
    """
    path = [leaf]
    current = leaf
    for _ in range(max_depth):
        anchor = next((a for a in anchors if a == current or signed_by(current, a)), None)
        if anchor is not None:
            return path if anchor == current else [*path, anchor]
        issuer = next((c for c in presented if c not in path and signed_by(current, c)), None)
        if issuer is None:
            return None
        path.append(issuer)
        current = issuer
    return None
