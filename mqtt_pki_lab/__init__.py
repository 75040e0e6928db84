"""mqtt-pki-lab: build a private Certificate Authority for MQTT over mutual TLS, step by step.

The package follows one picture: a CA makes ``ca.key`` and ``ca.crt``; the broker and the client each
make a key and a CSR and receive a certificate signed with ``ca.key``; each side ends with the three
files it needs. The main objects:

- :data:`STEPS`, :class:`Role`, :class:`LabFile` (:mod:`mqtt_pki_lab.diagram`): the diagram's arrows,
  boxes and files as plain data.
- :class:`Lab`, :class:`BuildOptions`, :class:`LabState`: a lab folder to run them in (``Lab("pki").build()``,
  ``Lab("pki").add_client("sensor-1")``).
- :func:`mutual_tls_handshake`: prove the files work, in memory.
- :func:`generate_key`, :func:`create_ca_certificate`, :func:`create_csr`, :func:`sign_csr`: the single
  arrows, for your own scripts.

Names are imported lazily, so ``import mqtt_pki_lab`` stays fast and never imports Jupyter.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "STEPS": "diagram", "Step": "diagram", "Role": "diagram", "LabFile": "diagram",
    "Lab": "steps", "BuildOptions": "options", "LabState": "steps", "StepResult": "steps",
    "build": "steps", "get_step": "steps", "openssl_twin": "twins", "issue": "certificates",
    "LabError": "errors", "InputError": "errors", "RefusedError": "errors",
    "KEY_TYPES": "keys", "generate_key": "keys", "load_private_key": "keys", "save_key": "keys",
    "create_ca_certificate": "ca", "create_csr": "csr", "sign_csr": "sign",
    "load_certificate": "pem", "load_csr": "pem",
    "mutual_tls_handshake": "handshake", "HandshakeResult": "handshake",
    "explain_file": "explain",
    "Policy": "acl", "read_policy": "acl", "grant": "acl", "deny": "acl", "may": "acl", "reset_policy": "acl",
    "policy_view": "acl",
    "verify_lab": "verify", "VerifyReport": "verify", "Check": "checks",
    "Diagnosis": "diagnose", "diagnose_tls_failure": "diagnose",
    "break_lab": "breakit", "Scenario": "breakit", "SCENARIOS": "breakit",
    "mqtt_check": "mqtt_proof", "MqttCheckReport": "mqtt_proof", "MqttOutcome": "mqtt_proof",
    "mqtt_round_trip": "mqtt_client", "RoundTrip": "mqtt_client",
    "EmbeddedBroker": "broker_embedded", "MosquittoBroker": "mosquitto", "mosquitto_conf": "mosquitto",
    "mosquitto_conf_text": "export", "paho_snippet": "export", "client_commands": "export",
    "pkcs12_bytes": "export_device", "c_header_text": "export_device",
    "save_pkcs12": "export_device", "save_c_header": "export_device",
    "trust_graph": "graph", "TrustGraph": "graph", "diagram_view": "graph", "trust_view": "graph",
    "DiagramView": "graph", "TrustView": "graph", "check": "exercises",
    "revoke": "crl", "refresh_crl": "crl", "crl_info": "crl", "CrlInfo": "crl", "CrlResult": "crl",
    "list_deadlines": "crl",
    "request": "device", "sign_request": "device", "install": "device", "SignedRequest": "device",
    "Renewal": "renew", "expiring": "renew", "Expiry": "renew",  # renew() itself: mqtt_pki_lab.renew.renew
    "start_rotation": "rotate", "reissue": "rotate", "finish_rotation": "rotate", "rotation_status": "rotate",
    "Rotation": "rotate", "retired_roots": "rotate",
    "issuer_role": "steps", "has_intermediate": "steps", "load_certificates": "pem",
    "sign_intermediate": "intermediate", "build_path": "intermediate",
    "presented_chain": "live", "Presented": "live",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # pragma: no cover
    from .acl import Policy, deny, grant, may, policy_view, read_policy, reset_policy
    from .breakit import SCENARIOS, Scenario, break_lab
    from .broker_embedded import EmbeddedBroker
    from .ca import create_ca_certificate
    from .certificates import issue
    from .checks import Check
    from .crl import CrlInfo, CrlResult, crl_info, list_deadlines, refresh_crl, revoke
    from .csr import create_csr
    from .device import SignedRequest, install, request, sign_request
    from .diagnose import Diagnosis, diagnose_tls_failure
    from .diagram import STEPS, LabFile, Role, Step
    from .errors import InputError, LabError, RefusedError
    from .exercises import check
    from .explain import explain_file
    from .export import client_commands, mosquitto_conf_text, paho_snippet
    from .export_device import c_header_text, pkcs12_bytes, save_c_header, save_pkcs12
    from .graph import DiagramView, TrustGraph, TrustView, diagram_view, trust_graph, trust_view
    from .handshake import HandshakeResult, mutual_tls_handshake
    from .intermediate import build_path, sign_intermediate
    from .keys import KEY_TYPES, generate_key, load_private_key, save_key
    from .live import Presented, presented_chain
    from .mosquitto import MosquittoBroker, mosquitto_conf
    from .mqtt_client import RoundTrip, mqtt_round_trip
    from .mqtt_proof import MqttCheckReport, MqttOutcome, mqtt_check
    from .options import BuildOptions
    from .pem import load_certificate, load_certificates, load_csr
    from .renew import Expiry, Renewal, expiring
    from .rotate import Rotation, finish_rotation, reissue, retired_roots, rotation_status, start_rotation
    from .sign import sign_csr
    from .steps import Lab, LabState, StepResult, build, get_step, has_intermediate, issuer_role
    from .twins import openssl_twin
    from .verify import VerifyReport, verify_lab


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mqtt_pki_lab' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
