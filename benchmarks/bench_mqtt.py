"""Benchmark: the real-MQTT check, whole process, against shell scripts doing the same with mosquitto.

Contenders, run with interleaved repetitions (machine-load drift hits every contender alike), medians:

1. ``mqtt-pki-lab mqtt DIR --broker embedded``: amqtt in Python; the good client's QoS 1 round trip and
   three intruders (no certificate, certificate from another CA, trusting another CA);
2. ``mqtt-pki-lab mqtt DIR --broker mosquitto``: the same four clients through mosquitto;
3. ``shell: one round trip``: a bash script that writes a mosquitto.conf (require_certificate,
   use_identity_as_username), starts mosquitto on a free port, waits until it runs, and makes one QoS 1
   round trip with ``mosquitto_sub -C 1`` and ``mosquitto_pub`` with the client's files;
4. ``shell: same four clients``: script 3 plus what the check also does: an intruder CA and client
   certificate made with ``openssl``, and three ``mosquitto_pub`` that must be refused.

As root, the scripts do what the runner does: copy the broker's files to a folder owned by the
``mosquitto`` account and add ``user mosquitto`` (otherwise mosquitto cannot read server.key).

Target (issue 4): embedded check <= shell one round trip (ratio of medians). Also printed: the same
checks in process (``mqtt_check()``, imports already paid), and the import cost of the libraries, which
is the floor a fresh Python process pays before any packet is sent.

    python benchmarks/bench_mqtt.py [--repeat 11]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROUND_TRIP = r"""
set -e
lab=$1; port=$2; four=$3; tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
files=$lab/broker; user_line=""
if [ "$(id -u)" = 0 ]; then
  mkdir "$tmp/broker"; cp "$lab"/broker/ca.crt "$lab"/broker/server.crt "$lab"/broker/server.key "$tmp/broker/"
  chown -R mosquitto: "$tmp"; files=$tmp/broker; user_line="user mosquitto"
fi
cat > "$tmp/mosquitto.conf" <<EOF
$user_line
allow_anonymous false
set_tcp_nodelay true
listener $port 127.0.0.1
cafile $files/ca.crt
certfile $files/server.crt
keyfile $files/server.key
require_certificate true
use_identity_as_username true
EOF
mosquitto -c "$tmp/mosquitto.conf" 2> "$tmp/log" & broker=$!
until grep -q " running" "$tmp/log"; do sleep 0.005; done
c=$lab/client
tls="-h localhost -p $port --cafile $c/ca.crt --cert $c/client.crt --key $c/client.key"
stdbuf -oL mosquitto_sub $tls -t bench/rt -q 1 -C 1 -d > "$tmp/sub" & sub=$!
until grep -q SUBACK "$tmp/sub"; do sleep 0.005; done
mosquitto_pub $tls -t bench/rt -q 1 -m hello
wait $sub
grep -q "bench/rt" "$tmp/sub"
if [ "$four" = 4 ]; then
  refused() { if mosquitto_pub -h localhost -p "$port" "$@" -t bench/rt -q 1 -m x 2>/dev/null; then
                echo "an intruder got in: $*" >&2; exit 1; fi; }
  refused --cafile "$c/ca.crt"
  openssl ecparam -name prime256v1 -genkey -noout -out "$tmp/i-ca.key"
  openssl req -new -x509 -days 1 -key "$tmp/i-ca.key" -subj "/CN=Intruder CA" -out "$tmp/i-ca.crt"
  openssl ecparam -name prime256v1 -genkey -noout -out "$tmp/i.key"
  openssl req -new -key "$tmp/i.key" -subj "/CN=client" -out "$tmp/i.csr"
  openssl x509 -req -in "$tmp/i.csr" -CA "$tmp/i-ca.crt" -CAkey "$tmp/i-ca.key" -days 1 -out "$tmp/i.crt" 2>/dev/null
  refused --cafile "$c/ca.crt" --cert "$tmp/i.crt" --key "$tmp/i.key"
  refused --cafile "$tmp/i-ca.crt" --cert "$c/client.crt" --key "$c/client.key"
fi
kill $broker; wait $broker || true
"""


def cli_command() -> list[str]:
    script = Path(sys.executable).with_name("mqtt-pki-lab")
    return [str(script)] if script.exists() else [sys.executable, "-m", "mqtt_pki_lab"]


def run(argv: list[str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=11)
    args = parser.parse_args()

    from mqtt_pki_lab.mosquitto import find_mosquitto, free_port
    from mqtt_pki_lab.steps import Lab

    work = Path(tempfile.mkdtemp(prefix="bench-mqtt-"))
    try:
        lab = work / "pki"
        Lab(lab).build_all()
        script = work / "round_trip.sh"
        script.write_text(ROUND_TRIP)
        have_mosquitto = all(shutil.which(p) or (p == "mosquitto" and find_mosquitto())
                             for p in ("mosquitto", "mosquitto_pub", "mosquitto_sub", "stdbuf", "openssl"))
        cli = cli_command()
        contenders: dict[str, Callable[[], float]] = {
            "mqtt-pki-lab mqtt --broker embedded": lambda: run([*cli, "mqtt", str(lab)]),
        }
        if have_mosquitto:
            contenders["mqtt-pki-lab mqtt --broker mosquitto"] = lambda: run([*cli, "mqtt", str(lab), "--broker",
                                                                               "mosquitto"])
            contenders["shell: one round trip"] = lambda: run(["bash", str(script), str(lab), str(free_port()), "1"])
            contenders["shell: same four clients"] = lambda: run(["bash", str(script), str(lab),
                                                                  str(free_port()), "4"])
        else:
            print("mosquitto / mosquitto-clients / openssl missing: only the embedded check is measured")
        times: dict[str, list[float]] = {name: [] for name in contenders}
        for contender in contenders.values():  # warm-up: page cache, pyc files
            contender()
        for _ in range(args.repeat):
            for name, contender in contenders.items():
                times[name].append(contender())

        print(f"whole process, {args.repeat} interleaved runs each (median / min / max, ms):")
        for name, values in times.items():
            print(f"  {name:<40} {statistics.median(values) * 1000:7.0f} {min(values) * 1000:7.0f} "
                  f"{max(values) * 1000:7.0f}")

        in_process(lab, have_mosquitto, args.repeat)
        import_floor(args.repeat)
        if have_mosquitto:
            embedded = statistics.median(times["mqtt-pki-lab mqtt --broker embedded"])
            one = statistics.median(times["shell: one round trip"])
            four = statistics.median(times["shell: same four clients"])
            print(f"\nratio embedded / shell one round trip: {embedded / one:.2f} (target <= 1.00: "
                  f"{'MET' if embedded <= one else 'NOT MET'})")
            print(f"ratio embedded / shell same four clients: {embedded / four:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def in_process(lab: Path, have_mosquitto: bool, repeat: int) -> None:
    """mqtt_check() inside one Python process: the work, without interpreter start and imports."""
    from mqtt_pki_lab.mqtt_proof import mqtt_check

    print("\nin process, mqtt_check() after a warm-up (median / min, ms):")
    for broker in ("embedded", "mosquitto") if have_mosquitto else ("embedded",):
        mqtt_check(lab, broker)
        values = []
        for _ in range(repeat):
            started = time.perf_counter()
            report = mqtt_check(lab, broker)
            values.append(time.perf_counter() - started)
            assert report.ok, report
        print(f"  {broker:<40} {statistics.median(values) * 1000:7.0f} {min(values) * 1000:7.0f}")


def import_floor(repeat: int) -> None:
    """What a fresh process pays before sending a packet: the interpreter and each library's import."""
    print("\nfresh process, import only (median, ms):")
    for label, code in (("python -c pass", "pass"),
                        ("+ cryptography.x509", "import cryptography.x509"),
                        ("+ paho.mqtt.client", "import cryptography.x509, paho.mqtt.client"),
                        ("+ amqtt.broker", "import cryptography.x509, paho.mqtt.client, amqtt.broker"),
                        ("+ mqtt_pki_lab.mqtt_proof, broker_embedded",
                         "import mqtt_pki_lab.mqtt_proof, mqtt_pki_lab.broker_embedded, paho.mqtt.client")):
        values = [run([sys.executable, "-c", code]) for _ in range(repeat)]
        print(f"  {label:<40} {statistics.median(values) * 1000:7.0f}")


if __name__ == "__main__":
    main()
