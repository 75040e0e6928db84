"""Benchmark: the in-memory handshake and ``verify`` over the whole break-it catalogue.

Prints:

1. the time of :func:`mqtt_pki_lab.handshake.mutual_tls_handshake` against a bare ``ssl.MemoryBIO``
   handshake of the same files (same strict contexts, nothing else), and their ratio (target <= 1.3x);
2. the time to verify the good PKI plus every scenario of the catalogue in one process (target < 0.5 s).

Run: ``python benchmarks/bench_verify.py [--rounds N]``. It builds its labs in a temporary folder.
"""

from __future__ import annotations

import argparse
import ssl
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from mqtt_pki_lab import diagram as L
from mqtt_pki_lab.breakit import SCENARIOS, break_lab
from mqtt_pki_lab.handshake import mutual_tls_handshake
from mqtt_pki_lab.steps import BuildOptions, Lab
from mqtt_pki_lab.tlscontext import STRICT_FLAGS
from mqtt_pki_lab.verify import verify_lab

HANDSHAKE_TARGET = 1.3
CATALOGUE_TARGET = 0.5


def bare_handshake(root: Path, hostname: str = "localhost") -> None:
    """The least code that handshakes the lab's files over MemoryBIO, with the same strict contexts."""
    broker, client = L.side(root, "broker"), L.side(root, "client")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(broker.ca))
    server_ctx.verify_flags |= STRICT_FLAGS
    server_ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    server_ctx.load_cert_chain(str(broker.cert), str(broker.key))
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    client_ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(client.ca))
    client_ctx.verify_flags |= STRICT_FLAGS
    client_ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    client_ctx.load_cert_chain(str(client.cert), str(client.key))
    s_in, s_out, c_in, c_out = (ssl.MemoryBIO() for _ in range(4))
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    client_obj = client_ctx.wrap_bio(c_in, c_out, server_hostname=hostname)
    done = [False, False]
    while not all(done):
        for i, (obj, out, peer_in) in enumerate(((client_obj, c_out, s_in), (server, s_out, c_in))):
            if not done[i]:
                try:
                    obj.do_handshake()
                    done[i] = True
                except ssl.SSLWantReadError:
                    pass
            data = out.read()
            if data:
                peer_in.write(data)


def timed(func: Callable[[], object], rounds: int) -> list[float]:
    """Wall-clock seconds of ``rounds`` calls of ``func`` (after one warm-up call)."""
    func()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200, help="handshakes per measurement (default 200)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        root = work / "pki"
        Lab(root).build_all()
        assert mutual_tls_handshake(root).ok

        # Interleave the two measurements in blocks so that both see the same machine load.
        lab_times: list[float] = []
        bare_times: list[float] = []
        for _ in range(5):
            lab_times += timed(lambda: mutual_tls_handshake(root), args.rounds // 5)
            bare_times += timed(lambda: bare_handshake(root), args.rounds // 5)
        lab_ms, bare_ms = statistics.median(lab_times) * 1e3, statistics.median(bare_times) * 1e3
        ratio = lab_ms / bare_ms
        print(f"handshake (median of {len(lab_times)}): mutual_tls_handshake {lab_ms:.2f} ms, "
              f"bare MemoryBIO {bare_ms:.2f} ms, ratio {ratio:.2f}x "
              f"(target <= {HANDSHAKE_TARGET}x: {'met' if ratio <= HANDSHAKE_TARGET else 'MISSED'})")

        chain = work / "chain"  # the chain scenarios break a lab with an intermediate CA (Scenario.fits)
        Lab(chain, BuildOptions(intermediate=True)).build_all()
        start = time.perf_counter()
        folders = [break_lab(root if s.fits(root) else chain, s, work / s.id) for s in SCENARIOS]
        made = time.perf_counter() - start
        print(f"breaking the catalogue ({len(SCENARIOS)} scenarios): {made:.3f} s (not part of the target)")

        def verify_all() -> list[bool]:
            return [verify_lab(folder).ok for folder in (root, *folders)]

        start = time.perf_counter()
        first = verify_all()
        cold = time.perf_counter() - start
        # verify passes a lab whose only "fault" is a revoked client: its refusal is the point (Expected.intended)
        assert first == [True] + [s.expected.intended for s in SCENARIOS], first
        runs = timed(verify_all, 5)
        best, median = min(runs), statistics.median(runs)
        print(f"verify good PKI + {len(folders)} scenarios in one process: first run {cold:.3f} s, "
              f"then median {median:.3f} s, best {best:.3f} s "
              f"({median / (len(folders) + 1) * 1e3:.1f} ms per lab; target < {CATALOGUE_TARGET} s: "
              f"{'met' if max(cold, median) < CATALOGUE_TARGET else 'MISSED'})")


if __name__ == "__main__":
    main()
