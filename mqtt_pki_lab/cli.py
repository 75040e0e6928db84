"""The ``mqtt-pki-lab`` command (also ``python -m mqtt_pki_lab``).

Exit codes: 0 success; 1 a refusal or a failed check; 2 a usage error or unreadable input. A user's
mistake is explained in one line, never with a Python traceback. Each subcommand imports only what it
needs, so the command starts fast and never loads Jupyter, widgets, graphviz or a broker by accident.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

Handler = Callable[[argparse.Namespace], int]


def _read_passphrase(path: str | None) -> bytes | None:
    if path is None:
        return None
    from .errors import InputError
    from .files import read_bytes

    if not path:
        raise InputError("--passphrase-file", "the file name is empty")
    secret = read_bytes(Path(path), limit=4096).splitlines()[0].strip()
    if not secret:
        raise InputError(path, "the passphrase file's first line is empty")
    return secret


def _say_cleaned(lab) -> None:
    for rel in lab.cleaned:
        print(f"removed {rel}: a temporary file an interrupted run had left behind", file=sys.stderr)


def cmd_build(args: argparse.Namespace) -> int:
    """Run arrows 1 to 9 and say what each made."""
    from .steps import BuildOptions, Lab

    options = BuildOptions(
        key_type=args.key_type,
        server_names=tuple(args.server_name) if args.server_name else BuildOptions.server_names,
        client_name=args.client_name,
        ca_name=args.ca_name,
        days=args.days,
        ca_days=args.ca_days,
        passphrase=_read_passphrase(args.passphrase_file),
        encrypt_all=args.encrypt_all_keys,
    )
    lab = Lab(args.dir, options)
    results = lab.build(force=args.force)  # checks everything, makes everything, then writes it all
    _say_cleaned(lab)
    print(f"Built the MQTT PKI in {lab.root.resolve()}")
    for result in results:
        print(result)
    print(f"\nDone. The broker runs with {args.dir}/broker/{{ca.crt,server.crt,server.key}}, "
          f"the client with {args.dir}/client/{{ca.crt,client.crt,client.key}}.")
    print(f"Check them: mqtt-pki-lab verify {args.dir}")
    return EXIT_OK


def cmd_inspect(args: argparse.Namespace) -> int:
    """Explain one file."""
    from .explain import explain_file

    print(explain_file(args.file, _read_passphrase(args.passphrase_file)))
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    """Show which arrows of the diagram are done in a lab folder, for every role."""
    import json

    from .errors import InputError
    from .files import check_lab_path
    from .steps import LabState

    root = check_lab_path(args.dir)
    if not root.is_dir():
        raise InputError(root, "no such lab folder; make one with: mqtt-pki-lab build DIR")
    state = LabState.read(root)
    if args.json:
        print(json.dumps(state.to_json(), indent=2))
    else:
        print(f"{root}:\n{state}")
    return EXIT_OK


def cmd_add_client(args: argparse.Namespace) -> int:
    """Arrows 6-9 for each further client: clients/NAME/{client.key,client.csr,client.crt,ca.crt}."""
    from .steps import BuildOptions, Lab

    lab = Lab(args.dir, BuildOptions(key_type=args.key_type, days=args.days,
                                     passphrase=_read_passphrase(args.passphrase_file)))
    names = args.names
    bar = None
    if len(names) > 1:
        from tqdm import tqdm

        bar = tqdm(total=len(names), unit="client", desc="add-client", file=sys.stderr, leave=False, disable=None)

    def progress(done: int, total: int, name: str) -> None:
        if bar is not None:
            bar.update(1)

    try:
        roles = lab.add_clients(names, progress=progress)
    finally:
        if bar is not None:
            bar.close()
    _say_cleaned(lab)
    for role in roles[:10]:
        print(f"{role.folder}/: client.key (0600), client.csr, client.crt (CN={role.name}, the MQTT username), ca.crt")
    if len(roles) > 10:
        print(f"... and {len(roles) - 10} more clients in {args.dir}/clients/")
    print(f"Added {len(roles)} client{'s' * (len(roles) != 1)}. Check them all: mqtt-pki-lab verify {args.dir}")
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    """Check every file of a lab folder, then handshake the broker's files with the client's."""
    from .verify import verify_lab

    report = verify_lab(args.dir, hostname=args.hostname, password=_read_passphrase(args.passphrase_file))
    print(report)
    return EXIT_OK if report.ok else EXIT_FAILED


def cmd_break(args: argparse.Namespace) -> int:
    """Copy a working lab and break the copy in one way, for students to diagnose."""
    from .breakit import break_lab, catalogue, get_scenario
    from .errors import InputError

    if args.list:
        print(catalogue())
        return EXIT_OK
    if not (args.dir and args.scenario and args.out):
        raise InputError("break", "give DIR SCENARIO OUT (e.g. mqtt-pki-lab break pki client-expired broken), "
                                  "or --list to see the scenarios")
    scenario = get_scenario(args.scenario)
    out = break_lab(args.dir, scenario, args.out, _read_passphrase(args.passphrase_file), client=args.client)
    print(f"{out}: a copy of {args.dir}, broken: {scenario.title}.")
    print(f"Diagnose it: mqtt-pki-lab verify {out}")
    return EXIT_OK


def cmd_mqtt(args: argparse.Namespace) -> int:
    """Real MQTT: a broker on the broker's files; the good client must get through, three intruders not."""
    from .mqtt_proof import mqtt_check

    report = mqtt_check(args.dir, broker=args.broker, password=_read_passphrase(args.passphrase_file),
                        timeout=args.timeout)
    print(report)
    return EXIT_OK if report.ok else EXIT_FAILED


def cmd_export(args: argparse.Namespace) -> int:
    """Print a mosquitto.conf, or a ready client (paho-mqtt program, mosquitto_sub/pub lines)."""
    from .export import client_text, mosquitto_conf_text

    if args.what == "mosquitto-conf":
        sys.stdout.write(mosquitto_conf_text(args.dir, args.port, args.bind))
    else:
        sys.stdout.write(client_text(args.dir, args.host, args.port, args.topic, args.only, client=args.client))
    return EXIT_OK


def cmd_course(args: argparse.Namespace) -> int:
    """Copy the course's notebooks into a folder; never over a notebook the student has changed."""
    from .coursefiles import copy_course

    print(copy_course(args.dir, solutions=args.solutions))
    return EXIT_OK


def cmd_grade(args: argparse.Namespace) -> int:
    """One row per student: arrows done, clients, verify, exercises, last activity (exit 1: a folder unreadable)."""
    from .coursefiles import grade, grades_csv, grades_table

    grades = grade(args.dirs)
    sys.stdout.write(grades_csv(grades) if args.csv else grades_table(grades))
    return EXIT_FAILED if any(g.problem for g in grades) else EXIT_OK


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage mistake said in one line (``mqtt-pki-lab build: --days: invalid int value``)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    from .profile import (
        DEFAULT_CA_DAYS,
        DEFAULT_CA_NAME,
        DEFAULT_CLIENT_NAME,
        DEFAULT_LEAF_DAYS,
        MAX_CA_DAYS,
        MAX_LEAF_DAYS,
    )

    parser = _Parser(
        prog="mqtt-pki-lab",
        description="Build a private CA for MQTT over mutual TLS, step by step, and prove that it works.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("build", help="make the CA, the broker's and the client's files (arrows 1-9)")
    p.add_argument("dir", help="lab folder to create, e.g. pki")
    p.add_argument("--key-type", default="ec-p256",
                   help="ec-p256 (default), ec-p384, rsa-2048, rsa-3072, rsa-4096 or ed25519")
    p.add_argument("--server-name", action="append", metavar="NAME",
                   help="a name clients use to reach the broker (repeatable; localhost, 127.0.0.1 and ::1 are "
                        "always added); the first becomes the Common Name")
    p.add_argument("--client-name", default=DEFAULT_CLIENT_NAME,
                   help="the client's name: its Common Name and MQTT username (default: client)")
    p.add_argument("--ca-name", default=DEFAULT_CA_NAME, help=f"the CA's Common Name (default: {DEFAULT_CA_NAME})")
    p.add_argument("--days", type=int, default=DEFAULT_LEAF_DAYS,
                   help=f"lifetime of the broker's and client's certificates (default: {DEFAULT_LEAF_DAYS}); this "
                        f"lab's cap is {MAX_LEAF_DAYS}, its own choice (a figure from the public web's former "
                        "398-day limit; a private CA is not bound by the CA/Browser Forum's rules)")
    p.add_argument("--ca-days", type=int, default=DEFAULT_CA_DAYS,
                   help=f"lifetime of the CA certificate (default: {DEFAULT_CA_DAYS}, at most {MAX_CA_DAYS})")
    p.add_argument("--passphrase-file", metavar="FILE", help="encrypt ca.key with the passphrase on FILE's first line")
    p.add_argument("--encrypt-all-keys", action="store_true",
                   help="with --passphrase-file: encrypt server.key and client.key too")
    p.add_argument("--force", action="store_true",
                   help="replace an existing CA (orphans every certificate it signed)")
    p.set_defaults(handler=cmd_build)

    p = sub.add_parser("inspect", help="explain a certificate, CSR or key (keys are described, never printed)")
    p.add_argument("file")
    p.add_argument("--passphrase-file", metavar="FILE", help="passphrase of an encrypted key")
    p.set_defaults(handler=cmd_inspect)

    p = sub.add_parser("status", help="which arrows of the diagram are done in a lab folder, for every role")
    p.add_argument("dir")
    p.add_argument("--json", action="store_true",
                   help="every role (kind, name, folder), the paths of its key, csr, crt and ca.crt, its arrows done")
    p.set_defaults(handler=cmd_status)

    p = sub.add_parser("add-client", help="one more device: arrows 6-9 for each NAME, into clients/NAME/")
    p.add_argument("dir", help="a lab folder with a CA, e.g. pki")
    p.add_argument("names", nargs="+", metavar="NAME",
                   help="the client's name: its Common Name and MQTT username (letters, digits, - _ . @)")
    p.add_argument("--key-type", default="ec-p256", help="the new clients' key type (default: ec-p256)")
    p.add_argument("--days", type=int, default=DEFAULT_LEAF_DAYS,
                   help=f"lifetime of their certificates (default: {DEFAULT_LEAF_DAYS}; at most {MAX_LEAF_DAYS})")
    p.add_argument("--passphrase-file", metavar="FILE", help="passphrase of an encrypted ca.key")
    p.set_defaults(handler=cmd_add_client)

    p = sub.add_parser("verify", help="check every file, then a mutual-TLS handshake; explain any failure "
                                      "(exit 0 all good, 1 a check or the handshake failed)")
    p.add_argument("dir", help="lab folder, e.g. pki")
    p.add_argument("--hostname", default="localhost", metavar="NAME",
                   help="the name the client connects to the broker with (default: localhost)")
    p.add_argument("--passphrase-file", metavar="FILE", help="passphrase of encrypted keys")
    p.set_defaults(handler=cmd_verify)

    p = sub.add_parser("break", help="copy a working lab and break the copy in one way, to diagnose "
                                     "(--list shows the scenarios)")
    p.add_argument("dir", nargs="?", help="a working lab folder, e.g. pki")
    p.add_argument("scenario", nargs="?", help="which way to break it (see --list)")
    p.add_argument("out", nargs="?", help="new folder for the broken copy (must not exist)")
    p.add_argument("--list", action="store_true", help="list the scenarios of the catalogue")
    p.add_argument("--passphrase-file", metavar="FILE", help="passphrase of an encrypted ca.key")
    p.add_argument("--client", metavar="NAME", help="break this client (clients/NAME/) instead of client/")
    p.set_defaults(handler=cmd_break)

    p = sub.add_parser("mqtt", help="real MQTT over mutual TLS: a broker on the broker's files, the good client "
                                    "must get through and three intruders must be refused (exit 0 / 1)")
    p.add_argument("dir", help="lab folder, e.g. pki")
    p.add_argument("--broker", choices=("embedded", "mosquitto"), default="embedded",
                   help="embedded: amqtt inside Python (default); mosquitto: the installed mosquitto program")
    p.add_argument("--passphrase-file", metavar="FILE", help="passphrase of encrypted keys (embedded broker)")
    p.add_argument("--timeout", type=float, default=5.0, metavar="SECONDS",
                   help="how long each client may take (default: 5)")
    p.set_defaults(handler=cmd_mqtt)

    p = sub.add_parser("export", help="print a mosquitto.conf or a ready client for a lab folder")
    what = p.add_subparsers(dest="what", required=True, metavar="WHAT")
    q = what.add_parser("mosquitto-conf", help="a mosquitto.conf with absolute paths: mosquitto -c mosquitto.conf")
    q.add_argument("dir", help="lab folder, e.g. pki")
    q.add_argument("--port", type=int, default=8883, help="port to listen on (default: 8883)")
    q.add_argument("--bind", metavar="ADDRESS", help="listen on this address only (default: every interface)")
    q = what.add_parser("client", help="a paho-mqtt program and mosquitto_sub/mosquitto_pub lines for the client")
    q.add_argument("dir", help="lab folder, e.g. pki")
    q.add_argument("--host", help="the broker's name (default: the first name in server.crt)")
    q.add_argument("--port", type=int, default=8883, help="the broker's port (default: 8883)")
    q.add_argument("--topic", default="lab/hello", help="topic of the round trip (default: lab/hello)")
    q.add_argument("--client", metavar="NAME", help="the files of clients/NAME/ (default: client/)")
    q.add_argument("--only", choices=("all", "python", "shell"), default="all",
                   help="print only the paho-mqtt program or only the shell lines")
    p.set_defaults(handler=cmd_export)

    p = sub.add_parser("course", help="copy the course's notebooks into a folder, to open in Jupyter; a notebook "
                                      "you have changed is never overwritten")
    p.add_argument("dir", nargs="?", default="mqtt-pki-lab-course",
                   help="folder to copy them into, made if missing (default: ./mqtt-pki-lab-course); the notebooks "
                        "keep your work in its lab-work/")
    p.add_argument("--solutions", action="store_true", help="also copy the solutions, into DIR/solutions/")
    p.set_defaults(handler=cmd_course)

    p = sub.add_parser("grade", help="for teachers: one row per student's folder (arrows done, clients, verify, "
                                     "exercises, last activity); exit 1 when a folder could not be read")
    p.add_argument("dirs", nargs="+", metavar="DIR",
                   help="a student's course folder (its lab-work/ holds pki/ and progress.json), that lab-work/ "
                        "itself, or a home holding mqtt-pki-lab-course/; or a folder of such folders (e.g. the "
                        "hand-ins, or /home): each of its sub-folders is then one student")
    p.add_argument("--csv", action="store_true", help="print CSV with a header row instead of a table")
    p.set_defaults(handler=cmd_grade)
    return parser


def _version() -> str:
    from . import __version__

    return __version__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    from .errors import LabError

    try:
        return args.handler(args)
    except LabError as exc:
        print(f"mqtt-pki-lab {args.command}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted: nothing half-written was left (every file is written aside, then renamed)",
              file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except OSError as exc:  # a file the checks could not foresee (permissions changed meanwhile, disk full...)
        where = exc.filename or args.command
        print(f"mqtt-pki-lab {args.command}: {where}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
