"""Exercises of notebook 11 (a longer chain): pathLenConstraint, the chain a side presents, which file holds
what, and the two mysteries of :mod:`mqtt_pki_lab.chain_mysteries`.

The facts the judges hold, and where they come from:

* pathLenConstraint (RFC 5280 §4.2.1.9) is the number of CA certificates that may follow this one in a path,
  the leaf not counted. The root above one intermediate needs 1, the intermediate that signs leaves 0 (the lab's
  :func:`~mqtt_pki_lab.intermediate.sign_intermediate`); left out, it sets no limit.
* A side's certificate file is the chain it sends, its own certificate first, each following one certifying the
  one before it (RFC 8446 §4.4.2); the trust anchor may be left out, since the verifier already holds it. Python's
  ``load_cert_chain`` and mosquitto's ``certfile`` send the file as it is.
* OpenSSL's default takes only a self-signed certificate of the CA file as a trust anchor
  (``X509_V_FLAG_PARTIAL_CHAIN`` is off): with the intermediate alone in ``ca.crt``, mosquitto 2.0.11 and
  ``openssl verify`` (OpenSSL 3.0) refuse every chain, "unable to get issuer certificate"; Python 3.13's default
  context sets the flag and accepts it. With the intermediate beside the root, OpenSSL accepts, and a leaf file
  without its chain goes unnoticed (measured; see ``tests/test_chain_mysteries.py``).

Each answer naming certificates may use words (``"leaf"``, ``"intermediate"``, ``"root"``, or the lab's names
for them) or the certificates themselves (``pem.load_certificates(path)``).
"""

from __future__ import annotations

import re
from typing import Any

from .. import mysteries as M
from . import Feedback, Verdict, exercise, normalise, reveal, right, typed_path, wants_answer

NOTEBOOK = "11_a_longer_chain.ipynb"
LEAF, INTERMEDIATE, ROOT = "leaf", "intermediate", "root"


#: The verdict on an answer whose parts still hold the notebook's ``...`` placeholder.
NOT_ANSWERED = Feedback(False, "Not answered yet: replace each ... with your answer and run the cell again.",
                        answered=False)


def _placeholder_in(answer: dict) -> bool:
    return any(value is Ellipsis for value in answer.values())


# --- naming the certificates of a file ------------------------------------------------------------------------

_LEAF_WORDS = frozenset({"leaf", "server", "broker", "localhost", "end entity", "end-entity", "server.crt",
                         "the leaf", "leaf certificate", "broker certificate", "server certificate"})
_CLIENT_WORDS = frozenset({"client", "client.crt", "client certificate", "device"})


def kind_of(item: Any) -> str | None:
    """``leaf``, ``intermediate`` or ``root`` for a certificate named in words or given itself; ``client`` for a
    client's name (a leaf, of the other side); None when it names none of them."""
    from cryptography import x509

    if isinstance(item, x509.Certificate):
        from ..chain_mysteries import role_of

        return {"leaf": LEAF, "intermediate CA": INTERMEDIATE, "root CA": ROOT}[role_of(item)]
    if not isinstance(item, str):
        return None
    text = normalise(item)
    common_name = re.search(r"cn=([^,+]+)", text)  # a subject as rfc4514_string() writes it: CN=localhost,O=...
    text = (common_name.group(1).strip() if common_name else text).removesuffix(" ca").removesuffix(".crt")
    if "intermediate" in text:
        return INTERMEDIATE
    if "root" in text or text in ("ca", "ca/ca", "the ca"):
        return ROOT
    if text in _LEAF_WORDS or f"{text}.crt" in _LEAF_WORDS:
        return LEAF
    if text in _CLIENT_WORDS:
        return "client"
    return None


def _items(answer: Any) -> list[Any] | None:
    """A list of certificates from an answer: a list or tuple, or text such as ``"leaf, intermediate"`` or
    ``"leaf then intermediate"``. None when it is neither."""
    if isinstance(answer, str):
        return [part for part in re.split(r"\s*(?:,|\+|->|>|;|\bthen\b|\band\b)\s*", answer.strip()) if part]
    if isinstance(answer, list | tuple):
        return list(answer)
    return None


#: What an answer that is no list of certificates earns (templates: ``{item}`` is the word not understood).
_LIST_HINTS = {
    "not-list": "give a list, first certificate first, e.g. [\"root\"].",
    "empty": "the list is empty: every certificate file holds at least one certificate. E.g. [\"root\"].",
    "unknown": "{item!r} does not name a certificate of the lab: name each one leaf, intermediate or root (or give "
               "the certificates: pem.load_certificates(path)).",
}


def _kinds(answer: Any) -> list[str] | str:
    """The kinds in ``answer`` (:func:`kind_of` each), or a sentence saying what is wrong with it."""
    items = _items(answer)
    if items is None:
        return _LIST_HINTS["not-list"]
    if not items:
        return _LIST_HINTS["empty"]
    kinds = [kind_of(item) for item in items]
    if None in kinds:
        return _LIST_HINTS["unknown"].format(item=str(items[kinds.index(None)])[:40])
    return kinds  # type: ignore[return-value]


# --- chain-pathlen ---------------------------------------------------------------------------------------------

_PATHLEN_HINTS = {
    "root-zero": "pathLenConstraint 0 on the root says that no CA may stand below it (RFC 5280 §4.2.1.9): the path "
                 "root -> intermediate -> leaf would be refused (\"path length constraint exceeded\"). How many "
                 "CA certificates follow the root in that path, the leaf not counted?",
    "root-big": "{root} works, but it lets a further CA stand below the intermediate. Give the root the least that "
                "works: how many CA certificates follow it, the leaf not counted?",
    "inter-big": "with {inter} the intermediate may certify a further CA of its own. It only signs leaves: what is "
                 "the least that allows that?",
    "no-limit": "leaving pathLenConstraint out means no limit at all (RFC 5280 §4.2.1.9). Give each CA a number.",
    "negative": "a path length counts certificates: it is 0 or more.",
    "not-pair": "give two whole numbers, e.g. {\"root\": 5, \"intermediate\": 5}, or a pair (root, intermediate).",
}


def _pair(answer: Any) -> tuple[Any, Any] | None:
    if isinstance(answer, dict):
        keys = {normalise(k).removesuffix(" ca"): v for k, v in answer.items() if isinstance(k, str)}
        if set(keys) == {"root", "intermediate"}:
            return keys["root"], keys["intermediate"]
        return None
    if isinstance(answer, list | tuple) and len(answer) == 2:
        return answer[0], answer[1]
    return None


def _whole(value: Any) -> bool:
    return value is None or (isinstance(value, int) and not isinstance(value, bool))


@exercise("chain-pathlen", NOTEBOOK, "the pathLenConstraint of the root and of the intermediate",
          hint="RFC 5280 §4.2.1.9: pathLenConstraint is how many CA certificates may follow this one in a path, "
               "the leaf not counted.", hints=tuple(_PATHLEN_HINTS.values()))
def _pathlen(answer: Any) -> Verdict:
    if isinstance(answer, dict) and _placeholder_in(answer):
        return NOT_ANSWERED
    pair = _pair(answer)
    if pair is None or not all(_whole(v) for v in pair):
        return _PATHLEN_HINTS["not-pair"]
    root, inter = pair
    if root is None or inter is None:
        return _PATHLEN_HINTS["no-limit"]
    if root < 0 or inter < 0:
        return _PATHLEN_HINTS["negative"]
    if root == 0:
        return _PATHLEN_HINTS["root-zero"]
    if inter > 0:
        return _PATHLEN_HINTS["inter-big"].format(inter=inter)
    if root > 1:
        return _PATHLEN_HINTS["root-big"].format(root=root)
    return right("The root 1 (one CA, the intermediate, may follow it), the intermediate 0 (leaves only). A verifier "
                 "checks each CA's limit against the CA certificates below it in the path; the leaf never counts.")


# --- chain-order -------------------------------------------------------------------------------------------------

_ORDER_HINTS = {
    "order": "RFC 8446 §4.4.2: the sender's own certificate MUST come first, and each following one certifies the "
             "one before it. Which one is the broker's own?",
    "root": "the root is not in server.crt: each client holds it already, in its ca.crt (it is what the client "
            "trusts), and RFC 8446 §4.4.2 lets a sender leave out the trust anchor. Count the certificates in the "
            "file again.",
    "alone": "count the certificates in the file: pem.load_certificates(path) returns every one, not only the first.",
    "no-leaf": "the broker's own certificate is missing from your list: which certificate names the broker?",
    "client": "that is the client's certificate; the question is about broker/server.crt.",
    "twice": "each certificate is in the file once.",
}


@exercise("chain-order", NOTEBOOK, "the certificates broker/server.crt holds, in order",
          hint="load the file with pem.load_certificates and look at each certificate's subject and issuer.",
          hints=(*_ORDER_HINTS.values(), *_LIST_HINTS.values()))
def _order(answer: Any) -> Verdict:
    kinds = _kinds(answer)
    if isinstance(kinds, str):
        return kinds
    if kinds == [LEAF, INTERMEDIATE]:
        return right("The broker's certificate, then the intermediate's: the chain it sends in its TLS Certificate "
                     "message (mosquitto's certfile is this file as it is). The client links the leaf to the "
                     "intermediate, and the intermediate to the root in its own ca.crt.")
    if "client" in kinds:
        return _ORDER_HINTS["client"]
    if ROOT in kinds:
        return _ORDER_HINTS["root"]
    if len(set(kinds)) < len(kinds):
        return _ORDER_HINTS["twice"]
    if kinds == [INTERMEDIATE, LEAF]:
        return _ORDER_HINTS["order"]
    if LEAF not in kinds:
        return _ORDER_HINTS["no-leaf"]
    return _ORDER_HINTS["alone"]


# --- chain-files -------------------------------------------------------------------------------------------------

_FILES_HINTS = {
    "keys": "give a dict with the device's two files: {\"client.crt\": [...], \"ca.crt\": [...]}.",
    "instead": "ca.crt holds the device's trust anchor: the certificate it trusts without asking anybody else. "
               "Of the three, which one signed itself?",
    "beside": "an intermediate beside the root in ca.crt does no harm to this device, but it does not belong there: "
              "ca.crt holds what the device trusts, and the one anchor is the root. Where does the intermediate "
              "travel?",
    "leaf-trusted": "a leaf in ca.crt would make the device trust that one certificate as an anchor; ca.crt holds "
                    "CAs.",
    "no-root": "the device must trust something that is already its own, not sent by the broker: which "
               "certificate?",
    "leaf-alone": "the broker trusts the root alone: with the leaf alone it cannot link the device's certificate "
                  "to it (\"unable to get local issuer certificate\"). What must follow the leaf?",
    "root-sent": "the root need not travel: the broker has it in broker/ca.crt (RFC 8446 §4.4.2 lets a sender "
                 "leave out the trust anchor). Which certificates does the device send?",
    "order": "in client.crt the device's own certificate comes first, then the one that signed it (RFC 8446 "
             "§4.4.2).",
    "other": "client.crt is the device's own certificate first, then each CA certificate that links it to what the "
             "broker trusts.",
}


def _file_key(key: Any) -> str | None:
    if not isinstance(key, str):
        return None
    name = normalise(key).rsplit("/", 1)[-1]
    return name if name in ("client.crt", "ca.crt") else None


@exercise("chain-files", NOTEBOOK, "what a new device's client.crt and ca.crt hold, in order",
          hint="client.crt is what the device presents, ca.crt what it trusts.",
          hints=(*_FILES_HINTS.values(), *_LIST_HINTS.values()))
def _files(answer: Any) -> Verdict:
    if not isinstance(answer, dict):
        return _FILES_HINTS["keys"]
    if _placeholder_in(answer):
        return NOT_ANSWERED
    files = {_file_key(k): v for k, v in answer.items()}
    if set(files) != {"client.crt", "ca.crt"}:
        return _FILES_HINTS["keys"]
    leaf_words = ("leaf", "client")
    presented, trusted = (_kinds(files[f]) for f in ("client.crt", "ca.crt"))
    for kinds in (presented, trusted):
        if isinstance(kinds, str):
            return kinds
    presented = [LEAF if k in leaf_words else k for k in presented]  # type: ignore[union-attr]
    trusted = [LEAF if k in leaf_words else k for k in trusted]  # type: ignore[union-attr]
    if LEAF in trusted:
        return _FILES_HINTS["leaf-trusted"]
    if trusted == [INTERMEDIATE]:
        return _FILES_HINTS["instead"]
    if ROOT not in trusted:
        return _FILES_HINTS["no-root"]
    if INTERMEDIATE in trusted:
        return _FILES_HINTS["beside"]
    if ROOT in presented:
        return _FILES_HINTS["root-sent"]
    if presented == [LEAF]:
        return _FILES_HINTS["leaf-alone"]
    if presented == [INTERMEDIATE, LEAF]:
        return _FILES_HINTS["order"]
    if presented != [LEAF, INTERMEDIATE] or trusted != [ROOT]:
        return _FILES_HINTS["other"]
    return right("client.crt holds the device's certificate, then the intermediate's (the chain it presents); "
                 "ca.crt holds the root alone (what it trusts). `mqtt-pki-lab add-client` and `sign` write exactly "
                 "that, and so does the C header export (the certificate, then the intermediate).")


# --- the mysteries ---------------------------------------------------------------------------------------------

def _verify_says(folder_name: str, scenario: str) -> str:
    """verify's diagnosis of a mystery's broken copy, when it is there: `` verify says: ...``."""
    from ..breakit import get_scenario
    from ..chain_mysteries import mystery_path
    from ..verify import verify_lab

    folder = mystery_path(folder_name)
    if not folder.is_dir():
        return ""
    diagnosis = get_scenario(scenario).expected.judged(verify_lab(folder))[0]
    return f"\nverify says: {diagnosis}" if diagnosis is not None else ""


_MISSING_STORY = (
    "Arrow 5, the intermediate CA signing server.csr into server.crt (on a chain of three the intermediate signs "
    "the leaves). It writes the broker's certificate and then intermediate.crt into server.crt; here the file "
    "holds the leaf alone (made by hand with `openssl x509 -req -CA intermediate/intermediate.crt`, which writes "
    "only the leaf, and nobody appended the "
    "intermediate). Every client trusts the root alone and the broker sends no intermediate, so no client can link "
    "the leaf to its root: \"unable to get local issuer certificate\", at depth 0 (openssl verify's error 20), and "
    "the broker is told \"unknown ca\". Fix: cat intermediate/intermediate.crt >> broker/server.crt (or "
    "`mqtt-pki-lab renew DIR broker`), then make the running broker read it again (SIGHUP for mosquitto). "
    "`mqtt-pki-lab break DIR server-without-intermediate OUT` makes such a copy of a chain lab again.")
_MISSING_HINTS = {
    8: "client.crt is fine: openssl verify accepts it, and the broker did not refuse anybody. The client refused "
       "the broker.",
    9: "client/ca.crt is the root, as it must be: a side trusts the root alone. The client could not link "
       "server.crt to it: what must server.crt carry besides the leaf?",
    2: "the root is fine: depth 0 is the certificate being checked, the broker's own, and its issuer was not found. "
       "Where should the client have found it?",
    3: "server.key matches: the client got as far as checking the certificate's issuer.",
    4: "server.csr only asked for a certificate. Inspect broker/server.crt: what follows the leaf in it?",
    13: "the intermediate's key is fine: it signed server.crt (inspect its issuer). Did the client receive the "
        "intermediate's certificate?",
    14: "the intermediate's CSR is fine; the root certified it. Did the client receive the intermediate's "
        "certificate?",
    15: "intermediate.crt is good (signed by the root, pathLen 0): it is just not where a client can get it. "
        "Which arrow writes the file the broker presents?",
    10: "arrow 10 makes no file: the handshake only shows the problem. Which arrow wrote the file the client could "
        "not link?",
}


@exercise("chain-mystery-missing", NOTEBOOK, "chain mystery 1: the arrow or step (1-18) at fault",
          hint="the client refused the broker. Inspect broker/server.crt: who issued it, and how many certificates "
               "does the file hold?",
          hints=(*_MISSING_HINTS.values(), M.NO_FILE_HINT))
def _mystery_missing(answer: Any) -> Verdict:
    if wants_answer(answer):
        return reveal(_MISSING_STORY + _verify_says("chain-mystery-1", "server-without-intermediate"))
    picked = M.parse_arrow(answer)
    if isinstance(picked, str):
        return picked.replace("1 to 10", "1 to 10, or a step 13-15 (the intermediate's)")
    if picked == 5:
        return right(_MISSING_STORY + _verify_says("chain-mystery-1", "server-without-intermediate"))
    return _MISSING_HINTS.get(picked, "which side refused, and which file did that side fail to link to the root "
                                      "it trusts? Inspect it.")


_TRUST_STORY = (
    "broker/ca.crt. It holds the intermediate CA's certificate in place of the root, and client.crt holds the leaf "
    "alone: the intermediate was put where the trust anchor belongs instead of into the chain (\"the intermediate "
    "signed the client, so the broker trusts the intermediate\"). Python 3.13's default context (and this lab's "
    "in-memory handshake) sets VERIFY_X509_PARTIAL_CHAIN, so any certificate of the CA file is an anchor: it "
    "accepts. OpenSSL's default, which mosquitto, openssl verify and Python 3.11's default context use, takes only "
    "a self-signed certificate as "
    "an anchor: it finds the intermediate at depth 1 and no issuer for it, error 2 \"unable to get issuer "
    "certificate\", and mosquitto refuses every client, complete chains too. Fix: copy ca/ca.crt (the root alone) "
    "to broker/ca.crt (arrow 9), put the intermediate back after the leaf (cat intermediate/intermediate.crt >> "
    "client/client.crt), and restart mosquitto. `mqtt-pki-lab break DIR intermediate-in-broker-trust OUT` makes "
    "such a copy of a chain lab again.")
_TRUST_HINTS = {
    "leaf": "client/client.crt does hold the leaf alone, and that is half of the mistake. But a broker that trusted "
            "the root would then say \"unable to get local issuer certificate\" at depth 0, as in mystery 1. openssl "
            "verify says error 2 at depth 1: it found the certificate at depth 1. In which file?",
    "intermediate": "intermediate/intermediate.crt is a good certificate (inspect it: signed by the root, pathLen 0). "
                    "The question is where a copy of it ended up.",
    "root": "{file} is the root, and the client, which trusts a copy of it, accepted the broker. Compare the "
            "broker's copy with it.",
    "server": "{file} is fine: the client accepted the broker (openssl verify of server.crt: OK).",
    "key": "{file} is fine: a wrong key stops a side before it talks; here mosquitto checked the client's "
           "certificate and refused it.",
    "unknown": "{file!r} is not a file of the copy: its files are listed under the evidence.",
    "not-text": "give the file's path inside the lab folder as text, e.g. \"broker/server.crt\".",
}


@exercise("chain-mystery-trust", NOTEBOOK, "chain mystery 2: the file mosquitto refuses every client because of",
          hint="Python accepted, mosquitto refused the client. openssl verify names the depth it stopped at: which "
               "certificate is at that depth, and which file did the broker take it from?",
          hints=tuple(_TRUST_HINTS.values()))
def _mystery_trust(answer: Any) -> Verdict:
    if not isinstance(answer, str):
        return _TRUST_HINTS["not-text"]
    if wants_answer(answer):
        return reveal(_TRUST_STORY + _verify_says("chain-mystery-2", "intermediate-in-broker-trust"))
    typed = typed_path(answer)
    name = typed.rsplit("/", 1)[-1]
    if typed == "broker/ca.crt":
        return right(_TRUST_STORY + _verify_says("chain-mystery-2", "intermediate-in-broker-trust"))
    if name == "ca.crt" and typed in ("ca.crt", "ca/ca.crt", "client/ca.crt"):
        return _TRUST_HINTS["root"].format(file=typed)
    if name in ("client.crt", "client.csr"):
        return _TRUST_HINTS["leaf"]
    if name in ("intermediate.crt", "intermediate.csr"):
        return _TRUST_HINTS["intermediate"]
    if name in ("server.crt", "server.csr", "acl"):
        return _TRUST_HINTS["server"].format(file=typed)
    if name.endswith(".key"):
        return _TRUST_HINTS["key"].format(file=typed)
    return _TRUST_HINTS["unknown"].format(file=answer.strip()[:60])
