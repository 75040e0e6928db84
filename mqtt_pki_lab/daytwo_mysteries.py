"""The mysteries of notebook 10 (day two): what a user sees, before anyone explains it.

Each works on a copy of the student's lab under ``workdir()/mysteries/`` (the course lab is never broken), made
afresh every time the mystery is opened (running a cell again shows the mystery again, not a copy fixed since);
a copy of a lab in the middle of a CA rotation has its rotation completed first
(:func:`~mqtt_pki_lab.breakit.settle_rotation`: revoke, refresh and renew are refused during one):

* **The device that was let go** (:func:`open_revoked_mystery`): the break-it scenario ``client-revoked``. The
  lab's first client cannot connect any more; its files are unchanged and ``openssl verify`` says OK (it checks
  no revocation list unless given ``-crl_check -CRLfile``). Asked: the step at fault (11, revoke).
* **Everyone is out** (:func:`open_stale_mystery`): the scenario ``crl-stale``. Every client is refused by a
  real broker; nobody changed a certificate. Asked: the file at fault (``broker/crl.pem``, past its nextUpdate).
* **Renewed, and still expired** (:func:`open_reload_mystery`): the broker's certificate expired; the operator
  renewed it (``mqtt-pki-lab renew DIR broker``) while mosquitto was running, and sent no signal. Clients are
  told "certificate has expired"; the file on disk is valid for a year. Asked: the day-two step whose last
  part was not done (12, renew: the running broker must read the new file, SIGHUP). This one is live: files
  alone cannot show it (the copy on disk is right; the process holds the old certificate in memory), so the
  evidence is a real broker started *before* the renewal, and ``verify`` of the folder passes.
* **The device left behind** (:func:`open_old_root_mystery`): the scenario ``client-trusts-old-root``. In the
  middle of a CA rotation the first client refuses the broker. Asked: the file at fault (``client/ca.crt``: the
  old root alone, not the bundle of both).

The story of each comes with the right answer or with ``"show me"`` (the judges are in
:mod:`mqtt_pki_lab.exercises.daytwo`); nothing shown before names the step, the file at fault or the scenario.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import time
from html import escape
from pathlib import Path

from . import diagram as L
from .coursework import workdir
from .mysteries import MYSTERY_FOLDER, Case, list_files
from .steps import Lab

#: The folders (under ``workdir()/mysteries/``) of the broken copies: numbered, so that no name gives an answer away.
REVOKED_FOLDER, STALE_FOLDER, RELOAD_FOLDER = "daytwo-mystery-1", "daytwo-mystery-2", "daytwo-mystery-3"


def _pre(text: str) -> str:
    return f"<pre style='margin:0;white-space:pre-wrap'>{escape(text)}</pre>"


def mystery_path(name: str) -> Path:
    """``workdir()/mysteries/NAME``: where a day-two mystery's copy lives."""
    return workdir() / MYSTERY_FOLDER / name


def _broken_copy(lab: Lab, scenario: str, name: str) -> Path:
    """The scenario's broken copy of ``lab``, made afresh at every call: a copy the student has since fixed
    (the stale list signed again in the next cell), or one made from the lab as it was before a later lesson
    changed it (a rotation), must not be shown as the mystery again. Only this module's own folder under
    ``workdir()/mysteries/`` is removed."""
    from .breakit import break_lab

    out = mystery_path(name)
    if out.exists() and not out.is_symlink():
        shutil.rmtree(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    break_lab(lab.root, scenario, out, lab.options.passphrase)
    return out


class DayTwoCase(Case):
    """A break-it :class:`~mqtt_pki_lab.mysteries.Case` shown without its list of files (a fleet's lab has dozens;
    ``.details()`` still lists them), so the evidence stays a few lines long."""

    def __str__(self) -> str:
        return "\n".join(line for line in str(self.evidence).splitlines() if not line.startswith("Files: "))

    def _repr_html_(self) -> str:
        return _pre(str(self))


def open_revoked_mystery(lab: Lab) -> Case:
    """The lab's first client, ``client``, cannot connect any more (a copy of ``lab``): the evidence of a real
    handshake, ``mosquitto_pub`` against mosquitto (when installed) and ``openssl verify``."""
    folder = _broken_copy(lab, "client-revoked", REVOKED_FOLDER)
    return DayTwoCase(folder, "client-revoked", hostname=lab.options.hostname, password=lab.options.passphrase)


class StaleCase:
    """Every client of a copy of the lab sent through a real broker, then one handshake in OpenSSL's words."""

    def __init__(self, folder: Path, hostname: str = "localhost") -> None:
        self.folder = folder
        self.hostname = hostname
        self._text: str | None = None
        self._raw = None

    def clients(self) -> list[str]:
        """The clients of the copy, by name (``client`` first)."""
        return [role.name for role in Lab(self.folder).roles.clients]

    def _evidence(self):
        if self._raw is None:
            from .breakit import raw_errors
            from .daytwo import who_gets_in

            self._raw = (who_gets_in(self.folder, self.clients()), raw_errors(self.folder, self.hostname))
        return self._raw

    def __str__(self) -> str:
        if self._text is None:
            admission, raw = self._evidence()
            self._text = "\n".join([str(admission), "the first client's handshake, in memory (Python's ssl):",
                                    f"  {raw.client}", f"  {raw.broker}",
                                    "nobody changed a certificate, a key or a ca.crt since yesterday.",
                                    'Everything each tool printed: .details() · one file\'s facts: '
                                    '.inspect("folder/name")'])
        return self._text

    def details(self):
        """The evidence in full: who got in, both sides of the first client's handshake, every ``openssl
        verify`` run (as typed, with its output) and the copy's files."""
        from .mysteries import Details

        admission, raw = self._evidence()
        return Details("\n".join([str(admission), str(raw), "Files: " + ", ".join(list_files(self.folder))]))

    def _repr_html_(self) -> str:
        return _pre(str(self))

    def __repr__(self) -> str:
        return f"StaleCase({str(self.folder)!r})"

    def inspect(self, file: str):
        """The facts of one file of the copy (``"broker/server.crt"``; a key is described, never printed)."""
        return Case(self.folder, "crl-stale").inspect(file)


def open_stale_mystery(lab: Lab) -> StaleCase:
    """Everyone is refused by a broker on a copy of ``lab``: the evidence, one line per client."""
    return StaleCase(_broken_copy(lab, "crl-stale", STALE_FOLDER), lab.options.hostname)


# --- renewed, and still expired ----------------------------------------------------------------------------

def _expire_broker_certificate(root: Path, passphrase: bytes | None = None) -> None:
    """Give the copy's broker a certificate that expired yesterday (30 days, ending a day ago): what it had
    before anybody noticed. Made by the careless CA of the break-it catalogue, with the lab's profile."""
    from .breakit import careless_issue
    from .keys import load_private_key
    from .pem import load_certificate, load_csr, save_pem

    start = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=31)
    ca_key = load_private_key(L.CA_KEY.path(root), passphrase)
    cert = careless_issue(load_csr(L.SERVER_CSR.path(root)), load_certificate(L.CA_CERT.path(root)), ca_key,
                          "broker", not_before=start, days=30)
    save_pem(cert, L.SERVER_CERT.path(root))


class ReloadCase:
    """A broker started on a copy of the lab before its certificate was renewed, still running.

    ``str()`` shows what a user sees: the client's connection, the serial and end date the broker presents, and
    ``openssl x509`` of ``broker/server.crt`` on disk. :meth:`reload` sends mosquitto SIGHUP (the embedded broker
    cannot reload: it is restarted), :meth:`close` stops the broker.
    """

    def __init__(self, folder: Path, hostname: str = "localhost") -> None:
        from .daytwo import _kind
        from .renew import renew

        self.closed = False
        self.folder = folder
        self.hostname = hostname
        self.kind = _kind(None)
        self.broker = self._start()
        self.renewal = renew(folder, "broker", days=365)  # the operator's renewal, under the running broker
        self.reloaded = False

    def _start(self):
        from .mosquitto import MosquittoBroker, running_as_root
        from .mqtt_proof import start_broker

        if self.kind == "mosquitto":  # reads the files in place, so a SIGHUP reads them again
            return MosquittoBroker(self.folder, run_as="root" if running_as_root() else None).start()
        return start_broker("embedded", self.folder)

    def connect(self) -> str:
        """The lab's client connects (a full MQTT round trip) and looks at the broker's certificate."""
        from .daytwo import presented_certificate
        from .mqtt_client import mqtt_round_trip

        side = L.FIRST_CLIENT.side(self.folder)
        trip = mqtt_round_trip("127.0.0.1", self.broker.port, side, timeout=5)
        seen = presented_certificate(self.broker.port, side.ca)
        said = ("in: CONNACK, SUBACK, its message back" if trip.ok
                else f"refused by the {trip.refused_by}: {trip.reason}")
        return "\n".join([f"client: {said}",
                          f"the broker presents: serial {seen.serial_number:x}, notAfter "
                          f"{seen.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"])

    def on_disk(self) -> str:
        """``openssl x509 -noout -serial -enddate -in broker/server.crt``, run in the copy (or its facts)."""
        from .breakit import run_tool
        from .pem import load_certificate

        program = shutil.which("openssl")
        command = "openssl x509 -noout -serial -enddate -in broker/server.crt"
        if program is None:
            cert = load_certificate(L.SERVER_CERT.path(self.folder))
            output = f"serial={cert.serial_number:X}\nnotAfter={cert.not_valid_after_utc:%b %d %H:%M:%S %Y} GMT"
        else:
            output, _ = run_tool("openssl", program, command.split()[1:], self.folder, timeout=20)
        return f"$ {command}\n{output}"

    def __str__(self) -> str:
        broker = "mosquitto" if self.kind == "mosquitto" else "the embedded broker (mosquitto is not installed here)"
        return "\n".join([f"broker: {broker}, running since yesterday on {self.folder.name}/broker/",
                          self.connect(), self.on_disk(),
                          "files of the copy: " + ", ".join(f for f in list_files(self.folder)
                                                             if f.startswith(("broker/", "backups/")))])

    def _repr_html_(self) -> str:
        return _pre(str(self))

    def __repr__(self) -> str:
        return f"ReloadCase({str(self.folder)!r})"

    def verify_live(self):
        """``mqtt-pki-lab verify COPY --live 127.0.0.1:PORT``: the files, and what the running broker presents
        (:func:`~mqtt_pki_lab.verify.verify_lab` with ``live``): before the reload, step 12 with both serials."""
        from .verify import verify_lab

        return verify_lab(self.folder, self.hostname, live=("127.0.0.1", self.broker.port))

    def reload(self) -> str:
        """Make the running broker read its files again: ``kill -HUP PID`` for mosquitto (same process); the
        embedded broker cannot reload, so it is restarted. Then the client connects again."""
        if self.closed:
            return "this broker was stopped (close()): run the cell that opens the mystery again"
        if self.kind == "mosquitto":
            pid = self.broker.pid
            before = sum("Reloading config" in line for line in self.broker.log)
            os.kill(pid, signal.SIGHUP)
            deadline = time.monotonic() + 10
            while sum("Reloading config" in line for line in self.broker.log) == before and \
                    time.monotonic() < deadline:
                time.sleep(0.02)
            done = f"kill -HUP {pid}: mosquitto logged 'Reloading config.' and kept its process id"
        else:
            self.broker.stop()
            self.broker = self._start()
            done = "the embedded broker cannot reload: restarted on the same files"
        self.reloaded = True
        return f"{done}\n{self.connect()}"

    def close(self) -> None:
        """Stop the broker (again: nothing happens)."""
        self.closed = True
        self.broker.stop()


#: The reload mystery whose broker may still run: opening the mystery again stops it first, so running the
#: cell twice never leaves a second broker running until the kernel stops.
_OPEN_RELOAD: list[ReloadCase] = []


def open_reload_mystery(lab: Lab) -> ReloadCase:
    """A fresh copy of ``lab`` whose broker certificate expired yesterday; a broker is started on it, then the
    certificate is renewed on disk, and the broker is left running (close it with :meth:`ReloadCase.close`).
    A broker left running by an earlier call is stopped first."""
    while _OPEN_RELOAD:
        _OPEN_RELOAD.pop().close()
    out = mystery_path(RELOAD_FOLDER)
    if out.exists():
        shutil.rmtree(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    from .breakit import settle_rotation
    from .files import LabLock

    with LabLock(lab.root):
        shutil.copytree(lab.root, out, symlinks=True, ignore=shutil.ignore_patterns("backups"))
    settle_rotation(out, lab.options.passphrase)  # renew is refused during a rotation: complete the copy's
    _expire_broker_certificate(out, lab.options.passphrase)
    case = ReloadCase(out, lab.options.hostname)
    _OPEN_RELOAD.append(case)
    return case


# --- the device left behind by a CA rotation -------------------------------------------------------------------

OLD_ROOT_FOLDER = "daytwo-mystery-4"


def open_old_root_mystery(lab: Lab) -> Case:
    """A copy of ``lab`` in the middle of a CA rotation (steps 16-17 done: both roots handed out, every
    certificate re-issued by the new root) in which the first client stopped connecting: the evidence."""
    folder = _broken_copy(lab, "client-trusts-old-root", OLD_ROOT_FOLDER)
    return DayTwoCase(folder, "client-trusts-old-root", hostname=lab.options.hostname,
                      password=lab.options.passphrase)
