"""Benchmark: building the diagram's files, mqtt-pki-lab against plain openssl and bare cryptography.

Measures, in one run with interleaved repetitions (so drift in machine load hits every contender alike):

1. whole process: ``mqtt-pki-lab build DIR`` (EC P-256) against the same diagram made with plain ``openssl``:
   the lab's own *openssl twins* (:func:`mqtt_pki_lab.twins.openssl_twin` of every bound build step,
   ``DIAGRAM.plan(BUILD_STEPS)``: 8 ``openssl`` runs and 2 ``cp``, in one bash), which make the same files
   with the same extensions. Also shown, for comparison with earlier figures, the mosquitto-tls man page's
   recipe (ecparam / req / x509: 9 ``openssl`` runs, no extensions) that the last session measured
   (1.31: CLI 254 ms vs recipe 192 ms).
   The CLI is timed twice: with its bytecode cached (``PYTHONPYCACHEPREFIX``, as for an installed wheel),
   and as this environment runs it (``PYTHONDONTWRITEBYTECODE=1``: the package, run from its source tree,
   is compiled at every start);
2. in process: ``Lab(dir).build_all()`` against the same keys, CSRs and certificates made with bare
   ``cryptography`` calls and written with plain ``open()``.

Before each run everything is flushed (``sync``), so no contender pays for the write-back of the last.

Targets: CLI (bytecode cached) / openssl twins <= 1.0 (ratio of medians); in-process / bare <= 1.15.

    python benchmarks/bench_build.py [--repeat 21]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

MAN_PAGE_RECIPE = r"""
set -e
mkdir -p "$1" && cd "$1"
mkdir -p ca broker client
openssl ecparam -name prime256v1 -genkey -noout -out ca/ca.key
openssl req -new -x509 -days 3650 -key ca/ca.key -subj "/CN=MQTT Lab Root CA" -out ca/ca.crt
for side in broker:server client:client; do
  dir=${side%%:*}; name=${side##*:}
  openssl ecparam -name prime256v1 -genkey -noout -out $dir/$name.key
  openssl req -new -key $dir/$name.key -subj "/CN=$name" -out $dir/$name.csr
  openssl x509 -req -in $dir/$name.csr -CA ca/ca.crt -CAkey ca/ca.key -CAcreateserial -days 365 \
      -out $dir/$name.crt 2>/dev/null
  cp ca/ca.crt $dir/ca.crt
done
"""


#: What the last session measured: CLI 254 ms vs the man page's recipe 192 ms.
LAST_RATIO = 1.31


def twins_script() -> str:
    """The lab's openssl twins of arrows 1-9 for the diagram's roles, as one bash script run in ``$1``."""
    from mqtt_pki_lab.diagram import BUILD_STEPS, DIAGRAM
    from mqtt_pki_lab.options import BuildOptions
    from mqtt_pki_lab.twins import openssl_twin

    options = BuildOptions()
    lines = [openssl_twin(bound, options) for bound in DIAGRAM.plan(BUILD_STEPS)]
    return "\n".join(['set -euo pipefail', 'mkdir -p "$1" && cd "$1"', "mkdir -p ca broker client", *lines, ""])


def child_env(pycache: Path | None) -> dict[str, str]:
    """The environment of a child: with a bytecode cache in ``pycache``, or (None) this one as it is."""
    env = dict(os.environ)
    if pycache is not None:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return env


def run_quiet(command: list[str], **kwargs: object) -> None:
    """Run a command, stdout discarded; its stderr shown only when it fails."""
    done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kwargs)  # type: ignore
    if done.returncode != 0:
        raise SystemExit(f"{command[0]} failed ({done.returncode}):\n{done.stderr.decode(errors='replace')}")


def cli_command() -> list[str]:
    script = Path(sys.executable).with_name("mqtt-pki-lab")
    return [str(script)] if script.exists() else [sys.executable, "-m", "mqtt_pki_lab"]


def bare_cryptography(root: Path) -> None:
    """The same files with bare cryptography calls: no checks, no explanations, no atomic writes."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def write(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Same files as the lab's: private keys 0600 from the start.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if path.suffix == ".key" else 0o644)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)

    def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())

    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "MQTT Lab Root CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(now + dt.timedelta(3650))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
          .add_extension(ca_ski, critical=False)
          .sign(ca_key, hashes.SHA256()))
    write(root / "ca" / "ca.key", key_pem(ca_key))
    write(root / "ca" / "ca.crt", ca.public_bytes(serialization.Encoding.PEM))
    for folder, name, eku, san in (("broker", "server", ExtendedKeyUsageOID.SERVER_AUTH, "localhost"),
                                   ("client", "client", ExtendedKeyUsageOID.CLIENT_AUTH, "client")):
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, san)])
        csr = (x509.CertificateSigningRequestBuilder().subject_name(subject)
               .add_extension(x509.SubjectAlternativeName([x509.DNSName(san)]), critical=False)
               .sign(key, hashes.SHA256()))
        assert csr.is_signature_valid
        cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca_name).public_key(csr.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now)
                .not_valid_after(now + dt.timedelta(365))
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False),
                               critical=True)
                .add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(san)]), critical=False)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                               critical=False)
                .sign(ca_key, hashes.SHA256()))
        write(root / folder / f"{name}.key", key_pem(key))
        write(root / folder / f"{name}.csr", csr.public_bytes(serialization.Encoding.PEM))
        write(root / folder / f"{name}.crt", cert.public_bytes(serialization.Encoding.PEM))
        write(root / folder / "ca.crt", ca.public_bytes(serialization.Encoding.PEM))


def lab_build(root: Path) -> None:
    from mqtt_pki_lab.steps import Lab

    Lab(root).build_all()


def timed(work: Callable[[Path], object], scratch: Path) -> float:
    target = scratch / "pki"
    shutil.rmtree(target, ignore_errors=True)
    os.sync()  # no contender pays for the write-back of the one before
    start = time.perf_counter()
    work(target)
    elapsed = time.perf_counter() - start
    shutil.rmtree(target, ignore_errors=True)
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=21)
    args = parser.parse_args()
    openssl, bash = shutil.which("openssl"), shutil.which("bash")
    cli = cli_command()
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        cached, as_is = child_env(scratch / "pycache"), child_env(None)
        contenders: dict[str, Callable[[Path], object]] = {
            "cli: build (bytecode cached)": lambda d: run_quiet([*cli, "build", str(d)], env=cached, cwd=tmp),
            "cli: build (no bytecode cache)": lambda d: run_quiet([*cli, "build", str(d)], env=as_is, cwd=tmp),
            "in-process: Lab.build_all()": lab_build,
            "in-process: bare cryptography": bare_cryptography,
        }
        if openssl and bash:
            twins = twins_script()
            contenders["shell: openssl twins"] = lambda d: run_quiet([bash, "-c", twins, "twins", str(d)])
            contenders["shell: man-page recipe"] = lambda d: run_quiet([bash, "-c", MAN_PAGE_RECIPE, "recipe",
                                                                        str(d)])
            check_twins(bash, twins, scratch / "check")
        times: dict[str, list[float]] = {name: [] for name in contenders}
        for work in contenders.values():  # warm-up: page cache, bytecode, first imports
            timed(work, scratch)
        for _ in range(args.repeat):
            for name, work in contenders.items():
                times[name].append(timed(work, scratch))
    med = {name: statistics.median(values) for name, values in times.items()}
    print(f"{'contender':<34} {'median ms':>10} {'min ms':>8} {'max ms':>8}   (n={args.repeat}, interleaved)")
    for name, values in times.items():
        print(f"{name:<34} {med[name] * 1e3:>10.1f} {min(values) * 1e3:>8.1f} {max(values) * 1e3:>8.1f}")
    print()
    if "shell: openssl twins" in med:
        for cli_name in ("cli: build (bytecode cached)", "cli: build (no bytecode cache)"):
            mode = cli_name.split("(")[1][:-1]
            twins, recipe = (med[cli_name] / med[r] for r in ("shell: openssl twins", "shell: man-page recipe"))
            verdict = f"(target <= 1.00) {'OK' if twins <= 1.0 else 'MISSED'}" if "cached" in mode else "(no target)"
            print(f"CLI / openssl twins    ({mode:<17}) = {twins:.2f}  {verdict}")
            print(f"CLI / man-page recipe  ({mode:<17}) = {recipe:.2f}  (last session: {LAST_RATIO:.2f}, "
                  f"CLI 254 ms vs recipe 192 ms; {recipe - LAST_RATIO:+.2f})")
    else:
        print("openssl or bash not found: CLI / openssl not measured")
    ratio = med["in-process: Lab.build_all()"] / med["in-process: bare cryptography"]
    print(f"in-process / bare cryptography = {ratio:.2f}  (target <= 1.15) {'OK' if ratio <= 1.15 else 'MISSED'}")
    return 0


def check_twins(bash: str, twins: str, target: Path) -> None:
    """Before timing: the twins really make a working diagram (the mutual-TLS handshake passes)."""
    from mqtt_pki_lab.handshake import mutual_tls_handshake

    run_quiet([bash, "-c", twins, "twins", str(target)])
    result = mutual_tls_handshake(target)
    if not result.ok:
        raise SystemExit(f"the openssl twins made files that do not handshake:\n{result}")
    shutil.rmtree(target)


if __name__ == "__main__":
    sys.exit(main())
