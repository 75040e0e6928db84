"""Benchmark: a fleet of clients, ``mqtt-pki-lab add-client LAB NAME1 ... NAME1000`` in one process.

Contenders, each a whole process on a freshly built lab, run with interleaved repetitions (so drift in
machine load hits every contender alike); medians of wall time and of peak memory (``ru_maxrss`` of that
very process):

1. ``cli: add-client x N``: ``mqtt-pki-lab add-client LAB dev-0001 ... dev-N`` (its tqdm bar on stderr is
   discarded);
2. ``bare cryptography x N``: one Python process with a hand-written ``cryptography`` loop making the same
   files with the same durability: per client an EC P-256 key (PKCS8 PEM, 0600), a CSR, a certificate
   signed by the lab's ``ca.key`` with the same extensions (CertificateBuilder by hand: nothing from the
   package), a copy of ``ca.crt``; each file written to a temporary name in ``clients/NAME/`` and
   ``os.replace``'d, the folder fsync'd after the four renames, as the lab's staging does. It checks
   nothing (no CSR signature, no key strength, no names), explains nothing;
3. ``openssl loop``: the lab's openssl twins of arrows 6-9 for each client (``genpkey``; ``req -new``;
   ``x509 -req`` signing with ``ca.key``; ``cp`` of ``ca.crt``) in one bash script: 3 ``openssl`` processes
   per client, so it runs for fewer clients (``--openssl-clients``, 100) and its time is scaled up linearly
   to N; no temporary files, no fsync;
4. ``cli: add-client x 100``: the same command for 100 clients, for memory flatness (peak RSS at 100 vs N).

Before each run the previous lab is removed, a new one built and everything flushed (``sync``), so no
run pays for the last one's write-back. Peak memory is GNU time's ``%M`` (``/usr/bin/time``), see
:func:`measure`. Every Python child reads its bytecode from a cache (``PYTHONPYCACHEPREFIX``), as an
installed wheel would.

Before the timing, one client of each kind of run is compared with the CLI's: the same files, modes,
subject, issuer, validity and extensions (with their criticality).

Target: cli / bare cryptography <= 1.5 (ratio of the median wall times, N clients).

    python benchmarks/bench_fleet.py [--clients 1000] [--repeat 3] [--openssl-clients 100]
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET = 1.5
FLAT_CLIENTS = 100


def names(count: int) -> list[str]:
    return [f"dev-{i:04d}" for i in range(1, count + 1)]


# --- the bare cryptography loop (runs in its own process: --bare LAB N) ----------------------------------------

def bare_loop(lab: Path, count: int) -> None:
    """The clients' files with bare cryptography calls, written the way the lab's staging writes them."""
    import datetime as dt
    import urllib.parse

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    ca_crt_pem = (lab / "ca" / "ca.crt").read_bytes()
    ca_cert = x509.load_pem_x509_certificate(ca_crt_pem)
    ca_key = serialization.load_pem_private_key((lab / "ca" / "ca.key").read_bytes(), None)
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski)
    usage = x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                          encipher_only=False, decipher_only=False)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    clients = lab / "clients"
    clients.mkdir(mode=0o755, exist_ok=True)
    for name in names(count):
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mqtt-pki-lab"),
                             x509.NameAttribute(NameOID.COMMON_NAME, name)])
        san = x509.SubjectAlternativeName([x509.UniformResourceIdentifier(
            "urn:mqtt-pki-lab:client:" + urllib.parse.quote(name, safe="@-._"))])
        csr = x509.CertificateSigningRequestBuilder().subject_name(subject).add_extension(san, False) \
            .sign(key, hashes.SHA256())
        now = dt.datetime.now(dt.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca_cert.subject)
                .public_key(csr.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=365))
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(usage, critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
                .add_extension(san, critical=False)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(csr.public_key()), critical=False)
                .add_extension(aki, critical=False)
                .sign(ca_key, hashes.SHA256()))
        files = (
            ("client.key", key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()), True),
            ("client.csr", csr.public_bytes(serialization.Encoding.PEM), False),
            ("client.crt", cert.public_bytes(serialization.Encoding.PEM), False),
            ("ca.crt", ca_crt_pem, False),
        )
        folder = clients / name
        os.mkdir(folder, 0o755)
        dfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            staged = []
            for file_name, data, secret in files:
                tmp = f".{file_name}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
                fd = os.open(tmp, flags, 0o600, dir_fd=dfd)
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                    if not secret:
                        os.fchmod(handle.fileno(), 0o644)
                staged.append((tmp, file_name))
            for tmp, file_name in staged:
                os.replace(tmp, file_name, src_dir_fd=dfd, dst_dir_fd=dfd)
            os.fsync(dfd)
        finally:
            os.close(dfd)


# --- the openssl loop -------------------------------------------------------------------------------------------

def openssl_script(count: int) -> str:
    """The lab's openssl twins of arrows 6-9 for ``count`` further clients, run in the lab folder."""
    from mqtt_pki_lab.diagram import CLIENT_STEPS, bind, client_role
    from mqtt_pki_lab.options import BuildOptions
    from mqtt_pki_lab.twins import openssl_twin

    options = BuildOptions()
    lines = ["set -euo pipefail"]
    for name in names(count):
        role = client_role(name)
        lines.append(f"mkdir -p {shlex.quote(role.folder)}")
        lines += [openssl_twin(bind(step, role), options) for step in CLIENT_STEPS]
    return "\n".join(lines) + "\n"


# --- measuring --------------------------------------------------------------------------------------------------

def cli_command() -> list[str]:
    script = Path(sys.executable).with_name("mqtt-pki-lab")
    return [str(script)] if script.exists() else [sys.executable, "-m", "mqtt_pki_lab"]


def child_env(pycache: Path) -> dict[str, str]:
    """Every Python child reads its bytecode from a cache (as an installed wheel would)."""
    env = dict(os.environ, PYTHONPYCACHEPREFIX=str(pycache))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


GNU_TIME = "/usr/bin/time"


def measure(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """Run ``command`` (output discarded); its wall time in seconds and its peak RSS in MiB.

    The peak comes from GNU time (``%M``: ``ru_maxrss`` of the command, or of the largest process it
    waited for). Not ``wait4`` of our own child: on Linux a child's ``ru_maxrss`` starts at the RSS of the
    parent it was forked from (this benchmark, with cryptography imported), which would hide small peaks.
    """
    report = cwd.parent / "peak-rss.txt"
    wrapped = [GNU_TIME, "-f", "%M", "-o", str(report), *command] if os.access(GNU_TIME, os.X_OK) else command
    start = time.perf_counter()
    proc = subprocess.Popen(wrapped, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{shlex.join(command[:3])} ... failed with exit code {proc.returncode}")
    if wrapped is command:  # no GNU time: an upper bound (includes this process's RSS at the fork)
        return elapsed, usage.ru_maxrss / 1024
    return elapsed, int(report.read_text().split()[-1]) / 1024  # KiB


def fresh_lab(root: Path) -> Path:
    """A newly built lab in ``root`` (the previous one removed), everything flushed to disk.

    The ``sync`` keeps the write-back of one contender's files (and the removal of the last lab's
    thousands of files) from being billed to the next contender's fsyncs.
    """
    from mqtt_pki_lab.steps import Lab

    shutil.rmtree(root, ignore_errors=True)
    Lab(root).build_all()
    os.sync()
    return root


def describe(cert_path: Path) -> tuple:
    """What must be the same in two clients' certificates (serials, keys and dates of course differ)."""
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    days = (cert.not_valid_after_utc - cert.not_valid_before_utc).total_seconds() / 86400
    exts = []
    for ext in cert.extensions:
        value = ext.value
        if isinstance(value, (x509.SubjectKeyIdentifier, x509.AuthorityKeyIdentifier)):
            value = type(value).__name__  # the client's key, the CA's key: differ (checked by issued_by)
        exts.append((ext.oid.dotted_string, ext.critical, repr(value)))
    return cert.subject.rfc4514_string(), cert.issuer.rfc4514_string(), round(days, 3), sorted(exts)


def issued_by(lab: Path, client: Path, label: str) -> None:
    """The client's certificate is signed by the lab's CA and names its key (authorityKeyIdentifier)."""
    from cryptography import x509

    ca = x509.load_pem_x509_certificate((lab / "ca" / "ca.crt").read_bytes())
    cert = x509.load_pem_x509_certificate((client / "client.crt").read_bytes())
    cert.verify_directly_issued_by(ca)
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    if aki != ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest:
        raise SystemExit(f"{label}: the authorityKeyIdentifier is not the CA's key identifier")
    if (client / "ca.crt").read_bytes() != (lab / "ca" / "ca.crt").read_bytes():
        raise SystemExit(f"{label}: ca.crt is not a copy of the lab's")


def compare(reference: Path, other: Path, label: str, *, same_window: bool) -> None:
    """One client of ``other`` against the same client made by the CLI: files, modes, certificate profile."""
    files = sorted(p.name for p in reference.iterdir())
    found = sorted(p.name for p in other.iterdir())
    if found != files:
        raise SystemExit(f"{label}: files {found} != the CLI's {files}")
    for name in files:
        a, b = (reference / name).stat().st_mode & 0o777, (other / name).stat().st_mode & 0o777
        if a != b:
            raise SystemExit(f"{label}: {name} has mode {oct(b)}, the CLI's {oct(a)}")
    ours, theirs = describe(reference / "client.crt"), describe(other / "client.crt")
    if ours[:2] != theirs[:2] or ours[3] != theirs[3] or (same_window and ours[2] != theirs[2]):
        raise SystemExit(f"{label}: client.crt differs from the CLI's:\n  cli:   {ours}\n  other: {theirs}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--openssl-clients", type=int, default=100)
    parser.add_argument("--bare", nargs=2, metavar=("LAB", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare:
        bare_loop(Path(args.bare[0]), int(args.bare[1]))
        return 0

    n, n_ssl = args.clients, args.openssl_clients
    bash, openssl = shutil.which("bash"), shutil.which("openssl")
    cli = cli_command()
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        env = child_env(scratch / "pycache")
        lab = scratch / "pki"
        bare = [sys.executable, str(Path(__file__).resolve()), "--bare", str(lab)]
        cli_n, bare_n, ssl_n, flat = (f"cli: add-client x {n}", f"bare cryptography x {n}", f"openssl loop x {n_ssl}",
                                      f"cli: add-client x {FLAT_CLIENTS}")
        contenders = {cli_n: [*cli, "add-client", str(lab), *names(n)], bare_n: [*bare, str(n)]}
        if bash and openssl:
            contenders[ssl_n] = [bash, "-c", openssl_script(n_ssl)]
        contenders[flat] = [*cli, "add-client", str(lab), *names(FLAT_CLIENTS)]
        counts = {cli_n: n, bare_n: n, ssl_n: n_ssl, flat: FLAT_CLIENTS}

        # Warm-up and check: 5 clients each (bytecode and page cache), compared with the CLI's files.
        warm_up = {cli_n: [*cli, "add-client", str(lab), *names(5)], bare_n: [*bare, "5"]}
        if ssl_n in contenders:
            warm_up[ssl_n] = [bash, "-c", openssl_script(5)]
        made = {}
        for name, command in warm_up.items():
            measure(command, fresh_lab(lab), env)
            leftovers = list(lab.rglob("*.tmp"))
            if leftovers:
                raise SystemExit(f"{name}: temporary files left: {leftovers}")
            issued_by(lab, lab / "clients" / "dev-0003", name)
            made[name] = shutil.copytree(lab / "clients" / "dev-0003", scratch / f"sample-{len(made)}")
        compare(made[cli_n], made[bare_n], "bare cryptography", same_window=True)
        if ssl_n in made:
            compare(made[cli_n], made[ssl_n], "openssl loop", same_window=False)

        wall: dict[str, list[float]] = {name: [] for name in contenders}
        rss: dict[str, list[float]] = {name: [] for name in contenders}
        for _ in range(args.repeat):
            for name, command in contenders.items():
                seconds, peak = measure(command, fresh_lab(lab), env)
                made_clients = sum(1 for p in (lab / "clients").iterdir() if (p / "client.crt").is_file())
                if made_clients != counts[name]:
                    raise SystemExit(f"{name}: made {made_clients} clients, not {counts[name]}")
                wall[name].append(seconds)
                rss[name].append(peak)
        shutil.rmtree(lab, ignore_errors=True)

    med = {name: statistics.median(v) for name, v in wall.items()}
    peak = {name: statistics.median(v) for name, v in rss.items()}
    print(f"{'contender':<28} {'median s':>9} {'min s':>7} {'max s':>7} {'ms/client':>10} {'peak RSS MiB':>13}"
          f"   (n={args.repeat}, interleaved, each a whole process on a fresh lab)")
    for name in contenders:
        clients = counts[name]
        print(f"{name:<28} {med[name]:>9.2f} {min(wall[name]):>7.2f} {max(wall[name]):>7.2f} "
              f"{med[name] / clients * 1e3:>10.2f} {peak[name]:>13.1f}")
    print()
    ratio = med[cli_n] / med[bare_n]
    print(f"cli / bare cryptography ({n} clients)      = {ratio:.2f}  (target <= {TARGET:.2f}) "
          f"{'OK' if ratio <= TARGET else 'MISSED'}")
    if ssl_n in med:
        scaled = med[ssl_n] * n / n_ssl
        print(f"openssl loop, scaled from {n_ssl} to {n} clients = {scaled:.2f} s (x{n / n_ssl:g}, "
              f"{3 * n_ssl} openssl runs measured); cli / openssl = {med[cli_n] / scaled:.2f}")
    else:
        print("openssl or bash not found: the openssl loop was not measured")
    print(f"memory flatness: add-client peak RSS {peak[flat]:.1f} MiB at {FLAT_CLIENTS} clients, "
          f"{peak[cli_n]:.1f} MiB at {n} (+{peak[cli_n] - peak[flat]:.1f} MiB for {n - FLAT_CLIENTS} more clients)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
