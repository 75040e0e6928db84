"""The ``mqtt-pki-lab`` command (also ``python -m mqtt_pki_lab``).

Exit codes: 0 success; 1 a refusal or a failed check; 2 a usage error or unreadable input. A user's
mistake is explained in one line, never with a Python traceback. Each subcommand imports only what it
needs, so the command starts fast and never loads Jupyter, widgets, graphviz or a broker by accident.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Iterator, Sequence
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
        intermediate=args.intermediate,
        intermediate_name=args.intermediate_name,
    )
    lab = Lab(args.dir, options)
    with _progress("build", "step") as progress:  # slow keys (RSA-4096 in a chain of three) show a bar
        results = list(lab.build(force=args.force, progress=progress))  # checks all, makes all, then writes all
    _say_cleaned(lab)
    print(f"Built the MQTT PKI in {lab.root.resolve()}")
    for result in results:
        print(result)
    print(f"\nDone. The broker runs with {args.dir}/broker/{{ca.crt,server.crt,server.key}}, "
          f"the client with {args.dir}/client/{{ca.crt,client.crt,client.key}}.")
    if lab.roles.intermediate:
        print(f"A chain of three: server.crt and client.crt hold the leaf, then intermediate.crt; every ca.crt the "
              f"root alone. Day to day only intermediate/intermediate.key signs: keep {args.dir}/ca/ca.key offline "
              "(move it away, or build with --passphrase-file).")
    print(f"Check them: mqtt-pki-lab verify {args.dir}")
    print(f"Who may use which topic (broker/acl): mqtt-pki-lab acl {args.dir}")
    return EXIT_OK


@contextlib.contextmanager
def _progress(desc: str, unit: str, delay: float = 1.0) -> Iterator[Callable[[int, int, str], None]]:
    """A ``progress(done, total, what)`` callback drawing a tqdm bar on stderr, shown only once the work has
    taken ``delay`` seconds (a quick build prints nothing) and only on a terminal (``disable=None``)."""
    from tqdm import tqdm

    bar = tqdm(desc=desc, unit=unit, file=sys.stderr, leave=False, disable=None, delay=delay)

    def progress(done: int, total: int, what: str) -> None:
        bar.total = total
        bar.set_postfix_str(what[:40], refresh=False)
        bar.update(done - bar.n)

    try:
        yield progress
    finally:
        bar.close()


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
    soon = lists = None
    if args.expiring is not None:  # exit 1 when something expires within N days: made for cron
        from .crl import list_deadlines
        from .renew import expiring, expiring_text

        soon = expiring(root, args.expiring)
        lists = list_deadlines(root, args.expiring)  # a stale revocation list shuts every client out
    if args.json:
        data = state.to_json()
        if soon is not None:
            data["expiring"] = {"within_days": args.expiring, "certificates": [e.to_json() for e in soon],
                                "revocation_lists": [d.to_json() for d in lists or ()]}
        print(json.dumps(data, indent=2))
    else:
        print(f"{root}:\n{state}")
        if soon is not None:
            print(expiring_text(root, args.expiring, soon, lists or ()))
    return EXIT_FAILED if soon or lists else EXIT_OK


def cmd_renew(args: argparse.Namespace) -> int:
    """A fresh certificate for the broker or a client (same key unless --new-key); the old one kept in backups/."""
    from .renew import renew

    print(renew(args.dir, args.name, new_key=args.new_key, days=args.days,
                password=_read_passphrase(args.passphrase_file), key_type_name=args.key_type))
    return EXIT_OK


def cmd_rotate(args: argparse.Namespace) -> int:
    """Steps 16-18: rotate the root CA (start, reissue, finish) or show where the rotation is (status)."""
    import json

    from .errors import InputError
    from .rotate import finish_rotation, reissue, rotation_status, start_rotation

    only = {"--csr": ("reissue", args.csr), "--days": ("reissue", args.days), "--ca-name": ("start", args.ca_name),
            "--ca-days": ("start", args.ca_days), "--key-type": ("start", args.key_type),
            "--json": ("status", args.json or None)}
    for option, (action, value) in only.items():
        if value is not None and args.action != action:
            raise InputError(option, f"only with rotate DIR {action}")
    if args.names and args.action != "reissue":
        raise InputError("NAME", f"names go with rotate DIR reissue, not {args.action}")
    if args.action == "status":
        state = rotation_status(args.dir)
        print(json.dumps(state.to_json(), indent=2) if args.json else state)
        return EXIT_OK
    password = _read_passphrase(args.passphrase_file)
    if args.action == "start":
        print(start_rotation(args.dir, ca_name=args.ca_name, ca_days=args.ca_days, key_type_name=args.key_type,
                             password=password))
    elif args.action == "finish":
        print(finish_rotation(args.dir, password=password))
    else:
        from tqdm import tqdm

        bar = tqdm(unit="certificate", desc="reissue", file=sys.stderr, leave=False, disable=None)

        def progress(done: int, total: int, name: str) -> None:
            bar.total = total
            bar.update(1)

        try:
            print(reissue(args.dir, args.names, csr=args.csr, days=args.days, password=password, progress=progress))
        finally:
            bar.close()
    return EXIT_OK


def cmd_revoke(args: argparse.Namespace) -> int:
    """Step 11: put a client's certificate on the CA's revocation list; write ca/crl.pem and broker/crl.pem."""
    from .crl import revoke

    result = revoke(args.dir, args.name, reason=args.reason, next_update_days=args.next_update_days,
                    password=_read_passphrase(args.passphrase_file))
    _say_cleaned(result)
    print(result)
    print(f"Check: mqtt-pki-lab verify {args.dir}")
    return EXIT_OK


def cmd_crl(args: argparse.Namespace) -> int:
    """Show the lab's revocation list, or sign it again (--refresh); exit 1 when the list shown is stale."""
    from .crl import crl_info, refresh_crl
    from .errors import InputError

    if not args.refresh:
        given = {"--next-update-days": args.next_update_days, "--passphrase-file": args.passphrase_file}
        for option, value in given.items():
            if value is not None:
                raise InputError(option, "only with --refresh: without it, crl DIR only shows the list")
        info = crl_info(args.dir)
        if info is None:
            print(f"{args.dir}: no revocation list: nobody has been revoked (mqtt-pki-lab revoke DIR NAME makes one)")
            return EXIT_OK
        print(info)
        return EXIT_FAILED if info.stale else EXIT_OK
    result = refresh_crl(args.dir, next_update_days=args.next_update_days,
                         password=_read_passphrase(args.passphrase_file))
    _say_cleaned(result)
    print(result)
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


def cmd_request(args: argparse.Namespace) -> int:
    """On the device: make its key (0600) and CSR in DEVICE_DIR, nothing else."""
    from .device import request

    print(request(args.device_dir, args.names, role=args.role, key_type=args.key_type))
    return EXIT_OK


def cmd_sign(args: argparse.Namespace) -> int:
    """At the CA: check a device's CSR, sign it with the lab's profile, say what to send back."""
    from .device import sign_request

    print(sign_request(args.dir, args.csr, role=args.role, days=args.days,
                       password=_read_passphrase(args.passphrase_file)))
    return EXIT_OK


def cmd_install(args: argparse.Namespace) -> int:
    """On the device: put the certificate and ca.crt beside the key, once they are checked against it."""
    from .device import install

    print(install(args.device_dir, args.cert, args.ca_cert))
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    """Check every file of a lab folder, then handshake the broker's files with the client's."""
    from .verify import verify_lab

    report = verify_lab(args.dir, hostname=args.hostname, password=_read_passphrase(args.passphrase_file),
                        devices=args.device or (), live=args.live)
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
                        timeout=args.timeout, devices=args.device or ())
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


def cmd_export_device(args: argparse.Namespace) -> int:
    """A PKCS#12 (key, certificate, CA chain) or a C header (certificates; the key only when asked for)."""
    from .errors import InputError
    from .export_device import KEY_WARNING, P12_ENCRYPTIONS, c_header_text, save_c_header, save_pkcs12

    key_password = _read_passphrase(args.key_passphrase_file)
    if args.what == "p12":
        out = save_pkcs12(args.dir, args.name, args.output, _read_passphrase(args.passphrase_file), key_password,
                          args.encryption, force=args.force)
        print(f"{out}: PKCS#12 of {args.name} (private key, certificate, CA chain), mode 0600, encrypted with "
              f"{P12_ENCRYPTIONS[args.encryption].about}. Check it: openssl pkcs12 -info -noout -in {out}")
        return EXIT_OK
    if args.output is None:
        if args.include_key:
            raise InputError("--include-key", "a header holding a private key is written only to a file (mode "
                                              "0600), never to the terminal or a pipe: add -o FILE")
        sys.stdout.write(c_header_text(args.dir, args.name, False, key_password))
        return EXIT_OK
    out = save_c_header(args.dir, args.output, args.name, args.include_key, key_password, force=args.force)
    if args.include_key:
        print(KEY_WARNING, file=sys.stderr)
    print(f"{out}: C header with the CA certificate{' and the certificate of ' + args.name if args.name else ''}"
          f"{' and its PRIVATE KEY (mode 0600)' if args.include_key else ', no private key'}")
    return EXIT_OK


def cmd_acl(args: argparse.Namespace) -> int:
    """Show the broker's policy per client, or change it: grant / deny a topic pattern, --reset to the default."""
    from .acl import deny, grant, policy_view, reset_policy
    from .errors import InputError

    if args.reset:
        if args.action:
            raise InputError("--reset", "takes nothing else: mqtt-pki-lab acl DIR --reset")
        reset_policy(args.dir)
    elif args.action:
        target = args.target
        if len(target) != (1 if args.all else 2):
            raise InputError(args.action, f"give {'only PATTERN with --all' if args.all else 'NAME and PATTERN'}: "
                                          f"mqtt-pki-lab acl DIR {args.action} NAME|--all PATTERN")
        who, pattern = (None, target[0]) if args.all else (target[0], target[1])
        if args.action == "deny":
            deny(args.dir, who, pattern)
        else:
            grant(args.dir, who, pattern, args.access)
    print(policy_view(args.dir))
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
    from .intermediate import DEFAULT_INTERMEDIATE_NAME
    from .profile import (
        DEFAULT_CA_DAYS,
        DEFAULT_CA_NAME,
        DEFAULT_CLIENT_NAME,
        DEFAULT_LEAF_DAYS,
        DEFAULT_NEXT_UPDATE_DAYS,
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
    p.add_argument("--passphrase-file", metavar="FILE",
                   help="encrypt ca.key (and intermediate.key) with the passphrase on FILE's first line")
    p.add_argument("--encrypt-all-keys", action="store_true",
                   help="with --passphrase-file: encrypt server.key and client.key too")
    p.add_argument("--intermediate", action="store_true",
                   help="a chain of three: the root (pathlen 1) signs intermediate/intermediate.crt (pathlen 0), "
                        "which signs the leaves; server.crt and client.crt hold the leaf then the intermediate, every "
                        "ca.crt the root alone; ca/ca.key may then be kept offline (steps 13-15)")
    p.add_argument("--intermediate-name", default=DEFAULT_INTERMEDIATE_NAME, metavar="NAME",
                   help=f"with --intermediate: its Common Name (default: {DEFAULT_INTERMEDIATE_NAME})")
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
    p.add_argument("--expiring", type=int, metavar="N",
                   help="also list every certificate (CA, broker, clients) that expires within N days, with its "
                        "notAfter and days left, and every revocation list whose nextUpdate comes within N days; "
                        "exit 1 when there is one (for cron), 0 when none")
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

    p = sub.add_parser("renew", help="a fresh certificate for the broker or a client: same key (unless --new-key), "
                                     "same names, a new serial; the old files are kept in DIR/backups/")
    p.add_argument("dir", help="a lab folder with a CA, e.g. pki")
    p.add_argument("name", metavar="NAME", help="broker, client, or a further client's name (ca is refused: "
                                                "renewing the root is a CA rotation)")
    p.add_argument("--new-key", action="store_true", help="make a new key too (same type unless --key-type)")
    p.add_argument("--key-type", help="with --new-key: the new key's type (default: the old key's)")
    p.add_argument("--days", type=int, metavar="N",
                   help=f"lifetime of the new certificate (default: the old one's; at most {MAX_LEAF_DAYS}, never "
                        "past the CA's notAfter)")
    p.add_argument("--passphrase-file", metavar="FILE", help="passphrase of an encrypted ca.key (and encrypted keys)")
    p.set_defaults(handler=cmd_renew)

    p = sub.add_parser("rotate", help="steps 16-18: replace the root CA without cutting a device off: start (a new "
                                      "root in ca-next/, every ca.crt holds both roots), reissue (certificates signed "
                                      "by the new root), finish (retire the old root; refused while a device depends "
                                      "on it), status")
    p.add_argument("dir", help="a lab folder with a CA, e.g. pki")
    p.add_argument("action", choices=("start", "reissue", "finish", "status"),
                   help="start: make the new root and hand out both; reissue: sign again with the new root; finish: "
                        "retire the old root (archived in backups/); status: the stage and who depends on which root")
    p.add_argument("names", nargs="*", metavar="NAME", help="with reissue: broker, client or further clients' names "
                                                            "(default: every one not yet under the new root)")
    p.add_argument("--csr", metavar="FILE", help="with reissue NAME: the CSR of a device that holds its own key")
    p.add_argument("--days", type=int, metavar="N", help="with reissue: lifetime of the new certificates (default: "
                                                         "the old ones')")
    p.add_argument("--ca-name", help="with start: the new root's name (default: the old one's with G2, G3...)")
    p.add_argument("--ca-days", type=int, metavar="N", help="with start: the new root's lifetime in days")
    p.add_argument("--key-type", help="with start: the new root's key type (default: the old root's)")
    p.add_argument("--json", action="store_true", help="with status: print JSON")
    p.add_argument("--passphrase-file", metavar="FILE", help="passphrase of an encrypted ca.key (the new root's key "
                                                             "gets the same)")
    p.set_defaults(handler=cmd_rotate)

    p = sub.add_parser("revoke", help="step 11: put a client's certificate on the CA's revocation list (ca/crl.pem, "
                                      "and broker/crl.pem for the broker): the broker refuses it from then on")
    p.add_argument("dir", help="a lab folder with a CA, e.g. pki")
    p.add_argument("name", metavar="NAME", help="the client: its folder name (sensor-2 for clients/sensor-2/, client "
                                                "for client/) or its MQTT username (the broker is refused: the "
                                                "usual MQTT clients check no CRL)")
    p.add_argument("--reason", default="unspecified",
                   help="RFC 5280 reason code: keyCompromise (a stolen device), cessationOfOperation (retired), "
                        "superseded, affiliationChanged, privilegeWithdrawn, or unspecified (the default: the "
                        "entry then carries no reason code)")
    p.add_argument("--next-update-days", type=int, metavar="N",
                   help=f"days until the list's nextUpdate (default: {DEFAULT_NEXT_UPDATE_DAYS}); after it EVERY "
                        "client is refused until the list is signed again (crl DIR --refresh)")
    p.add_argument("--passphrase-file", metavar="FILE", help="passphrase of an encrypted ca.key")
    p.set_defaults(handler=cmd_revoke)

    p = sub.add_parser("crl", help="show the lab's revocation list (exit 1 when it is stale), or sign it again "
                                   "with --refresh (a new CRL number and dates, the same entries)")
    p.add_argument("dir", help="a lab folder, e.g. pki")
    p.add_argument("--refresh", action="store_true",
                   help="sign the list again (makes an empty one if the lab has none): ca/crl.pem and broker/crl.pem")
    p.add_argument("--next-update-days", type=int, metavar="N",
                   help=f"with --refresh: days until the new nextUpdate (default: {DEFAULT_NEXT_UPDATE_DAYS})")
    p.add_argument("--passphrase-file", metavar="FILE", help="with --refresh: passphrase of an encrypted ca.key")
    p.set_defaults(handler=cmd_crl)

    p = sub.add_parser("request", help="on a device: make its own key (0600) and CSR in DEVICE_DIR; only the CSR "
                                       "goes to the CA (arrows 6-7 on the device)")
    p.add_argument("device_dir", metavar="DEVICE_DIR", help="the device's folder (made 0700 if missing)")
    p.add_argument("names", nargs="+", metavar="NAME",
                   help="a client's name (its Common Name and MQTT username); for --role broker, its host names")
    p.add_argument("--role", default="client", help="client (default) or broker")
    p.add_argument("--key-type", default="ec-p256", help="ec-p256 (default), ec-p384, rsa-2048, rsa-3072, rsa-4096 "
                                                         "or ed25519")
    p.set_defaults(handler=cmd_request)

    p = sub.add_parser("sign", help="at the CA: check a device's CSR and sign it with the lab's profile into "
                                    "clients/NAME/ (broker/ for --role broker); the lab never gets the key")
    p.add_argument("dir", help="the lab folder with the CA, e.g. pki")
    p.add_argument("csr", metavar="CSR_FILE", help="the CSR the device sent (client.csr or server.csr)")
    p.add_argument("--role", default="client", help="client (default) or broker: the profile to sign with")
    p.add_argument("--days", type=int, default=DEFAULT_LEAF_DAYS,
                   help=f"lifetime of the certificate (default: {DEFAULT_LEAF_DAYS}; at most {MAX_LEAF_DAYS})")
    p.add_argument("--passphrase-file", metavar="FILE", help="passphrase of an encrypted ca.key")
    p.set_defaults(handler=cmd_sign)

    p = sub.add_parser("install", help="on a device: put the certificate and ca.crt the CA sent back beside its "
                                       "key, after checking that they belong to it")
    p.add_argument("device_dir", metavar="DEVICE_DIR", help="the device's folder (made by mqtt-pki-lab request)")
    p.add_argument("cert", metavar="CERT", help="the device's certificate from the CA (client.crt or server.crt)")
    p.add_argument("ca_cert", metavar="CA_CERT", help="the CA's certificate (ca.crt)")
    p.set_defaults(handler=cmd_install)

    p = sub.add_parser("verify", help="check every file, then a mutual-TLS handshake; explain any failure "
                                      "(exit 0 all good, 1 a check or the handshake failed)")
    p.add_argument("dir", help="lab folder, e.g. pki")
    p.add_argument("--hostname", default="localhost", metavar="NAME",
                   help="the name the client connects to the broker with (default: localhost)")
    p.add_argument("--passphrase-file", metavar="FILE", help="passphrase of encrypted keys")
    p.add_argument("--device", action="append", metavar="DEVICE_DIR",
                   help="a device folder whose key was born there (mqtt-pki-lab request): handshake its own files "
                        "(repeatable)")
    p.add_argument("--live", metavar="HOST:PORT",
                   help="also connect to the running broker there (as the first client does) and check that it "
                        "presents broker/server.crt, not a certificate it loaded before a renewal")
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
    p.add_argument("--device", action="append", metavar="DEVICE_DIR",
                   help="a device folder whose key was born there (mqtt-pki-lab request): its own files make the "
                        "round trip (a broker's folder runs the broker); repeatable")
    p.set_defaults(handler=cmd_mqtt)

    p = sub.add_parser("export", help="a mosquitto.conf, a ready client, a PKCS#12 or a C header for a lab folder")
    what = p.add_subparsers(dest="what", required=True, metavar="WHAT")
    q = what.add_parser("mosquitto-conf", help="a mosquitto.conf with absolute paths: mosquitto -c mosquitto.conf")
    q.add_argument("dir", help="lab folder, e.g. pki")
    q.add_argument("--port", type=int, default=8883, help="port to listen on (default: 8883)")
    q.add_argument("--bind", metavar="ADDRESS", help="listen on this address only (default: every interface)")
    q = what.add_parser("client", help="a paho-mqtt program and mosquitto_sub/mosquitto_pub lines for the client")
    q.add_argument("dir", help="lab folder, e.g. pki")
    q.add_argument("--host", help="the broker's name (default: the first name in server.crt)")
    q.add_argument("--port", type=int, default=8883, help="the broker's port (default: 8883)")
    q.add_argument("--topic", help="topic of the round trip (default: devices/NAME/hello, NAME the client's "
                                   "username: a topic the default policy broker/acl lets it use)")
    q.add_argument("--client", metavar="NAME", help="the files of clients/NAME/ (default: client/)")
    q.add_argument("--only", choices=("all", "python", "shell"), default="all",
                   help="print only the paho-mqtt program or only the shell lines")
    q = what.add_parser("p12", help="a PKCS#12 with a client's private key, certificate and CA chain, for phones "
                                    "and Java (written 0600 to -o, outside the lab)")
    q.add_argument("dir", help="lab folder, e.g. pki")
    q.add_argument("name", metavar="NAME", help="the client: sensor-1 for clients/sensor-1/, client for client/")
    q.add_argument("-o", "--output", metavar="FILE", required=True, help="the file to write, outside the lab folder")
    q.add_argument("--passphrase-file", metavar="FILE", required=True,
                   help="the PKCS#12's passphrase, on FILE's first line")
    q.add_argument("--key-passphrase-file", metavar="FILE", help="passphrase of an encrypted client.key")
    q.add_argument("--encryption", choices=("aes-256", "3des"), default="aes-256",
                   help="aes-256 (default: PBES2, HMAC-SHA256; OpenSSL 3, Java 8u301+); 3des for older readers "
                        "(e.g. the certificate installer of Android 11-13)")
    q.add_argument("--force", action="store_true", help="replace FILE if it exists")
    q.set_defaults(handler=cmd_export_device)
    q = what.add_parser("c-header", help="a C header with the CA certificate (and a client's certificate) as C "
                                         "strings, for ESP32/Arduino/ESP-IDF; the key only with --include-key")
    q.add_argument("dir", help="lab folder, e.g. pki")
    q.add_argument("name", metavar="NAME", nargs="?", help="a client whose certificate to add (default: CA only)")
    q.add_argument("-o", "--output", metavar="FILE", help="write FILE (outside the lab) instead of standard output")
    q.add_argument("--include-key", action="store_true",
                   help="also the client's PRIVATE KEY, unencrypted: needs -o FILE (0600); a warning is printed")
    q.add_argument("--key-passphrase-file", metavar="FILE", help="passphrase of an encrypted client.key")
    q.add_argument("--force", action="store_true", help="replace FILE if it exists")
    q.set_defaults(handler=cmd_export_device)
    p.set_defaults(handler=cmd_export)

    p = sub.add_parser("acl", help="who may read and write which topics (broker/acl, mosquitto's acl_file): show "
                                   "it per client, grant or deny a topic pattern, --reset to the default")
    p.add_argument("dir", help="lab folder, e.g. pki")
    p.add_argument("--reset", action="store_true", help="write the default policy: each client reads and writes "
                                                        "devices/<its name>/#, and reads shared/#")
    p.set_defaults(handler=cmd_acl, action=None)
    change = p.add_subparsers(dest="action", metavar="grant|deny")
    for name, does in (("grant", "let a client (or --all) use topics matching PATTERN"),
                       ("deny", "refuse a client (or --all) every topic matching PATTERN")):
        q = change.add_parser(name, help=does)
        q.add_argument("target", nargs="+", metavar="NAME PATTERN",
                       help="the client's name and the topic pattern (with --all: only the pattern)")
        q.add_argument("--all", action="store_true", help="for every client (a pattern line: %%u stands for its "
                                                          "username, e.g. status/%%u)")
        if name == "grant":
            q.add_argument("--access", choices=("read", "write", "readwrite"), default="readwrite",
                           help="read (receive), write (publish) or readwrite (default)")

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
