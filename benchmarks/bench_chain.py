"""Benchmark: a chain of three (``build --intermediate``) against today's one-level lab.

Prints, for labs built in a temporary folder:

1. ``verify`` of a one-level lab (arrows 1-9, no CRL) and of a chain-of-three lab whose root key is kept offline
   and whose intermediate has revoked one further client (so the CRL is loaded and one more handshake is
   refused): medians of interleaved runs, and their ratio;
2. the in-memory handshake of each (the chain adds one certificate to each side's Certificate message);
3. ``build`` of each, per key type (one run each: key generation dominates, RSA-4096 above all).

Run: ``python benchmarks/bench_chain.py [--rounds N] [--key-types ec-p256,rsa-4096]``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench_verify import timed  # run from the repository: python benchmarks/bench_chain.py

from mqtt_pki_lab.crl import revoke
from mqtt_pki_lab.handshake import mutual_tls_handshake
from mqtt_pki_lab.keys import KEY_TYPES
from mqtt_pki_lab.steps import BuildOptions, Lab
from mqtt_pki_lab.verify import verify_lab


def interleaved(a: Callable[[], object], b: Callable[[], object], rounds: int, blocks: int = 5
                ) -> tuple[float, float]:
    """Medians (ms) of ``a`` and ``b``, measured in alternating blocks so both see the same machine load."""
    ta: list[float] = []
    tb: list[float] = []
    for _ in range(blocks):
        ta += timed(a, max(1, rounds // blocks))
        tb += timed(b, max(1, rounds // blocks))
    return statistics.median(ta) * 1e3, statistics.median(tb) * 1e3


def revoked_lab(root: Path, intermediate: bool) -> Path:
    """A lab with one further client, revoked (so a CRL is loaded and one handshake refused); with an
    intermediate CA, the root's key removed (kept offline) and the intermediate's CRL."""
    Lab(root, BuildOptions(intermediate=intermediate)).build_all()
    if intermediate:
        (root / "ca" / "ca.key").unlink()
    Lab(root).add_client("sensor-2")
    revoke(root, "sensor-2", reason="keyCompromise")
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=50, help="verify runs per lab (default 50)")
    parser.add_argument("--key-types", default=",".join(KEY_TYPES), help="key types to time build with")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        flat = work / "flat"
        Lab(flat).build_all()
        flat_crl = revoked_lab(work / "flat-crl", intermediate=False)
        chain = revoked_lab(work / "chain", intermediate=True)
        assert verify_lab(flat).ok and verify_lab(flat_crl).ok and verify_lab(chain).ok

        flat_ms, chain_ms = interleaved(lambda: verify_lab(flat), lambda: verify_lab(chain), args.rounds)
        same_ms, chain2_ms = interleaved(lambda: verify_lab(flat_crl), lambda: verify_lab(chain), args.rounds)
        print(f"verify (medians of {args.rounds} each): today's one-level lab {flat_ms:.1f} ms; chain of three + CRL "
              f"+ a revoked client (2 clients, 2 handshakes) {chain_ms:.1f} ms: ratio {chain_ms / flat_ms:.2f}x")
        print(f"  the same shape without the intermediate (one-level + CRL + a revoked client) {same_ms:.1f} ms vs "
              f"chain {chain2_ms:.1f} ms: ratio {chain2_ms / same_ms:.2f}x (the cost of the chain alone)")
        hs_flat, hs_chain = interleaved(lambda: mutual_tls_handshake(flat), lambda: mutual_tls_handshake(chain),
                                        args.rounds * 4)
        print(f"in-memory handshake (median of {args.rounds * 4} each): one-level {hs_flat:.2f} ms, chain of three "
              f"{hs_chain:.2f} ms; ratio {hs_chain / hs_flat:.2f}x")

        for kind in args.key_types.split(","):
            times = {}
            for name, options in (("one-level", BuildOptions(key_type=kind)),
                                  ("chain", BuildOptions(key_type=kind, intermediate=True))):
                start = time.perf_counter()
                Lab(work / f"build-{kind}-{name}", options).build_all()
                times[name] = time.perf_counter() - start
            print(f"build {kind:<9} one-level {times['one-level']:.3f} s, chain of three {times['chain']:.3f} s "
                  f"(one more key)")


if __name__ == "__main__":
    main()
