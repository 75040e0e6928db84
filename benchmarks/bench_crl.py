"""Benchmark: a revocation list with 10,000 entries, made by the lab and loaded by mosquitto.

Prints (medians of ``--repeat`` runs):

1. making it: signing a CRL of 10,000 entries from scratch (:func:`mqtt_pki_lab.crl.make_crl`), and
   ``revoke`` adding the 10,000th entry to a lab whose list holds 9,999 (read and check both lists, sign,
   write ``ca/crl.pem`` and ``broker/crl.pem``); the list's size (PEM and DER);
2. the in-memory handshake (arrow 10) and ``verify`` of the lab with that list, against the same lab with none;
3. mosquitto on the lab's files with that list (``crlfile``): the time from launch until it runs, until the
   good client's QoS 1 round trip has come back, and until the revoked client has been refused; against
   mosquitto with no list.

Run: ``python benchmarks/bench_crl.py [--entries 10000] [--repeat 5]``. It builds its lab in a temporary
folder. Without mosquitto, part 3 is skipped.
"""

from __future__ import annotations

import argparse
import datetime as dt
import secrets
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.serialization import Encoding

from mqtt_pki_lab import diagram as L
from mqtt_pki_lab.crl import crl_path, make_crl, revoke, revoked_certificate
from mqtt_pki_lab.files import write_atomic
from mqtt_pki_lab.handshake import mutual_tls_handshake
from mqtt_pki_lab.keys import load_private_key
from mqtt_pki_lab.pem import load_certificate
from mqtt_pki_lab.steps import Lab
from mqtt_pki_lab.verify import verify_lab

SENSOR = L.client_role("sensor-2")


def median_ms(action: Callable[[], object], repeat: int) -> tuple[float, object]:
    """The median time of ``action`` in milliseconds (after one warm-up run), and its last result."""
    result = action()
    values = []
    for _ in range(repeat):
        started = time.perf_counter()
        result = action()
        values.append(time.perf_counter() - started)
    return statistics.median(values) * 1000, result


def write_list(lab: Path, entries: list, number: int = 1) -> bytes:
    """Sign ``entries`` with the lab's CA and put the list where ``revoke`` would (both files)."""
    crl = make_crl(load_certificate(lab / "ca/ca.crt"), load_private_key(lab / "ca/ca.key"), entries, number)
    data = crl.public_bytes(Encoding.PEM)
    for role in (L.CA, L.BROKER):
        write_atomic(crl_path(lab, role), data, secret=False)
    return crl.public_bytes(Encoding.DER)


def remove_list(lab: Path) -> None:
    for role in (L.CA, L.BROKER):
        crl_path(lab, role).unlink(missing_ok=True)


def random_entries(count: int) -> list:
    now = dt.datetime.now(dt.timezone.utc)
    return [revoked_certificate(int.from_bytes(secrets.token_bytes(19), "big") | 1, "keyCompromise", now)
            for _ in range(count)]


def making(lab: Path, count: int, repeat: int) -> None:
    ca, key = load_certificate(lab / "ca/ca.crt"), load_private_key(lab / "ca/ca.key")
    entries = random_entries(count)
    sign_ms, crl = median_ms(lambda: make_crl(ca, key, entries, 1), repeat)
    pem, der = crl.public_bytes(Encoding.PEM), crl.public_bytes(Encoding.DER)  # type: ignore[union-attr]
    print(f"making a list of {count} entries:")
    print(f"  make_crl (sign {count} entries from scratch)      {sign_ms:8.1f} ms")
    print(f"  size: {len(pem):,} bytes PEM, {len(der):,} bytes DER ({len(der) / count:.1f} bytes per entry)")

    def revoke_the_last() -> object:
        write_list(lab, entries[:count - 1])
        started = time.perf_counter()
        result = revoke(lab, "sensor-2", reason="keyCompromise")
        return time.perf_counter() - started, result

    values = []
    for _ in range(repeat):
        elapsed, result = revoke_the_last()  # type: ignore[misc]
        values.append(elapsed)
    assert len(result.info.entries) == count  # type: ignore[union-attr]
    print(f"  revoke: the {count:,}th entry into a lab holding {count - 1:,}  "
          f"{statistics.median(values) * 1000:8.1f} ms (read and check both lists, sign, write both)")


def proving(lab: Path, repeat: int) -> None:
    print("\nproving, with the list of the lab (median, ms):")
    for label, keep in (("no list", False), ("list of the lab", True)):
        saved = {role: crl_path(lab, role).read_bytes() for role in (L.CA, L.BROKER)}
        if not keep:
            remove_list(lab)
        try:
            good_ms, good = median_ms(lambda: mutual_tls_handshake(lab), repeat)
            bad_ms, bad = median_ms(lambda: mutual_tls_handshake(lab, client=SENSOR), repeat)
            verify_ms, report = median_ms(lambda: verify_lab(lab), repeat)
        finally:
            for role, data in saved.items():
                write_atomic(crl_path(lab, role), data, secret=False)
        assert good.ok and report.ok and (not bad.ok if keep else bad.ok)  # type: ignore[union-attr]
        print(f"  {label:<18} handshake client {good_ms:7.1f}   handshake sensor-2 {bad_ms:7.1f} "
              f"({'refused' if keep else 'passed'})   verify {verify_ms:7.1f}")


def mosquitto(lab: Path, repeat: int) -> None:
    from mqtt_pki_lab.mosquitto import MosquittoBroker, find_mosquitto
    from mqtt_pki_lab.mqtt_client import mqtt_round_trip

    if find_mosquitto() is None:
        print("\nmosquitto is not installed: part 3 skipped")
        return
    print("\nmosquitto, from launch (median, ms):")
    saved = {role: crl_path(lab, role).read_bytes() for role in (L.CA, L.BROKER)}
    for label, keep in (("no list", False), ("list of the lab", True)):
        if not keep:
            remove_list(lab)
        running, good, refused = [], [], []
        try:
            for _ in range(repeat):
                started = time.perf_counter()
                broker = MosquittoBroker(lab).start()
                try:
                    running.append(time.perf_counter() - started)
                    trip = mqtt_round_trip("127.0.0.1", broker.port, L.FIRST_CLIENT.side(lab))
                    good.append(time.perf_counter() - started)
                    assert trip.ok, trip
                    trip = mqtt_round_trip("127.0.0.1", broker.port, SENSOR.side(lab))
                    refused.append(time.perf_counter() - started)
                    assert trip.ok != keep, trip
                finally:
                    broker.stop()
        finally:
            for role, data in saved.items():
                write_atomic(crl_path(lab, role), data, secret=False)
        med = {name: statistics.median(v) * 1000 for name, v in (("run", running), ("good", good), ("bad", refused))}
        print(f"  {label:<18} running {med['run']:7.1f}   client's round trip back {med['good']:7.1f}   "
              f"sensor-2 {'refused' if keep else 'through'} {med['bad']:7.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-crl-"))
    try:
        lab = work / "pki"
        Lab(lab).build_all()
        Lab(lab).add_client("sensor-2")
        making(lab, args.entries, args.repeat)
        proving(lab, args.repeat)
        mosquitto(lab, args.repeat)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
