"""Benchmark: what ``import mqtt_pki_lab`` costs a fresh process, against ``import cryptography.x509``.

Each contender is a whole fresh process (``python -c ...``), run with interleaved repetitions (so drift in
machine load hits every contender alike); medians:

1. ``python -c pass``: the interpreter's own start, the floor under every row;
2. ``import mqtt_pki_lab``: the package itself (its names are imported lazily);
3. ``import mqtt_pki_lab; mqtt_pki_lab.Lab``: what a script or the CLI pays to start working (the engine
   and everything it needs: cryptography, the diagram, the files layer);
4. ``import cryptography.x509``: the library every certificate tool in Python starts with.

Two bytecode conditions, both measured in the same interleaved loop:

* **cached**: every module's bytecode comes from a cache (``PYTHONPYCACHEPREFIX`` in a temporary folder,
  filled by a warm-up run), as for an installed wheel. This is the figure the target is about.
* **no cache** (this environment as it is): ``PYTHONDONTWRITEBYTECODE=1`` is inherited, so the package,
  which runs from its source tree without ``__pycache__``, is compiled again at every start, while
  ``cryptography`` reads the bytecode its wheel installed.

Target: ``import mqtt_pki_lab`` / ``import cryptography.x509`` <= 1.2 (ratio of medians, cached). Also
printed: the five modules of the package that take longest in ``python -X importtime`` for the ``Lab``
import (self and cumulative time, medians of several runs).

    python benchmarks/bench_import.py [--repeat 21] [--importtime-runs 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONTENDERS = {
    "python -c pass": "pass",
    "import mqtt_pki_lab": "import mqtt_pki_lab",
    "import mqtt_pki_lab; .Lab": "import mqtt_pki_lab; mqtt_pki_lab.Lab",
    "import cryptography.x509": "import cryptography.x509",
}
TARGET = 1.2


def child_env(cwd: Path, pycache: Path | None) -> dict[str, str]:
    """The environment of a child: with a bytecode cache in ``pycache``, or (None) this one as it is.

    The children run in the empty folder ``cwd``, so the package is found where it is installed.
    """
    env = dict(os.environ, BENCH_CWD=str(cwd))
    if pycache is not None:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return env


def run_once(code: str, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=env["BENCH_CWD"])
    return time.perf_counter() - start


def importtime(code: str, env: dict[str, str]) -> dict[str, tuple[float, float]]:
    """``python -X importtime``: self and cumulative microseconds of every module imported by ``code``."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", code], check=True, env=env, cwd=env["BENCH_CWD"],
                          capture_output=True, text=True)
    found = {}
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        own, cumulative, name = line[len("import time:"):].split("|")
        found[name.strip()] = (float(own), float(cumulative))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=21)
    parser.add_argument("--importtime-runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        modes = {"cached": child_env(Path(tmp), Path(tmp) / "pycache"), "no cache": child_env(Path(tmp), None)}
        for env in modes.values():  # warm-up: fills the cache, the page cache
            for code in CONTENDERS.values():
                run_once(code, env)
                run_once(code, env)
        times: dict[tuple[str, str], list[float]] = {(m, c): [] for m in modes for c in CONTENDERS}
        for _ in range(args.repeat):
            for mode, env in modes.items():
                for name, code in CONTENDERS.items():
                    times[(mode, name)].append(run_once(code, env))
        profiles = {mode: [importtime(CONTENDERS["import mqtt_pki_lab; .Lab"], env)
                           for _ in range(args.importtime_runs)] for mode, env in modes.items()}
    med = {key: statistics.median(values) for key, values in times.items()}
    print(f"{'process':<28} {'bytecode':<9} {'median ms':>10} {'min ms':>8} {'max ms':>8}   "
          f"(n={args.repeat}, interleaved, each a fresh python -c)")
    for mode in modes:
        for name in CONTENDERS:
            values = times[(mode, name)]
            print(f"{name:<28} {mode:<9} {med[(mode, name)] * 1e3:>10.1f} {min(values) * 1e3:>8.1f} "
                  f"{max(values) * 1e3:>8.1f}")
    print()
    for mode in modes:
        base = med[(mode, "import cryptography.x509")]
        for name in ("import mqtt_pki_lab", "import mqtt_pki_lab; .Lab"):
            ratio = med[(mode, name)] / base
            verdict = (f"(target <= {TARGET:.2f}) {'OK' if ratio <= TARGET else 'MISSED'}"
                       if name == "import mqtt_pki_lab" else "(no target)")
            print(f"{name + ' / cryptography.x509':<44} {mode:<9} = {ratio:.2f}  {verdict}")
    print()
    for mode, runs in profiles.items():
        ours = sorted({m for run in runs for m in run if m == "mqtt_pki_lab" or m.startswith("mqtt_pki_lab.")})

        def median_of(module: str, index: int, runs: list = runs) -> float:
            return statistics.median(run.get(module, (0.0, 0.0))[index] for run in runs) / 1e3

        top = sorted(ours, key=lambda m: median_of(m, 0), reverse=True)[:5]
        total = statistics.median(sum(v[0] for v in run.values()) for run in runs) / 1e3
        own = statistics.median(sum(v[0] for m, v in run.items() if m in ours) for run in runs) / 1e3
        print(f"-X importtime, 'import mqtt_pki_lab; mqtt_pki_lab.Lab', bytecode {mode} (medians of "
              f"{len(runs)} runs): all imports {total:.1f} ms, of which the package's {len(ours)} modules "
              f"{own:.1f} ms (self)")
        print(f"  {'module':<28} {'self ms':>8} {'cumulative ms':>14}")
        for module in top:
            print(f"  {module:<28} {median_of(module, 0):>8.1f} {median_of(module, 1):>14.1f}")
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
