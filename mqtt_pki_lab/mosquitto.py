"""mosquitto, the broker people run in production, started on the broker's three files.

:func:`mosquitto_conf` writes the configuration that makes mosquitto do mutual TLS the way the lab
means it::

    listener 8883 127.0.0.1
    cafile   .../broker/ca.crt          # verify clients with this CA
    certfile .../broker/server.crt      # present this certificate
    keyfile  .../broker/server.key      # prove it with this key
    require_certificate true            # no client certificate, no connection
    use_identity_as_username true       # the certificate's CN is the MQTT username

:class:`MosquittoBroker` runs it in the foreground for a check: a free port on 127.0.0.1 (mosquitto has
no "port 0", so we pick one and retry if another program takes it first), its log captured, stopped
by its own process id.

**Started as root, mosquitto does not stay root.** Right after reading its configuration it switches
to the user named on the ``user`` line (default ``mosquitto``), and only *then* reads ``server.key``.
A key that is 0600 and owned by root (or by you) is unreadable to that user: mosquitto stops with
``Unable to load server key file ... Permission denied``. Either start mosquitto as the ordinary user
who owns the files, or give the files to the user it runs as (``chown -R mosquitto: broker/``). When
this module is run by root it does the second, on a temporary private copy that it deletes afterwards.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from . import diagram as L
from .errors import InputError, LabError
from .mqtt_client import check_side_files
from .names import check_host_name

#: Where package managers put the program (Debian: /usr/sbin, not on an ordinary user's PATH).
SEARCH_PATHS = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto", "/opt/homebrew/sbin/mosquitto")
INSTALL_HINT = ("install mosquitto: Debian/Ubuntu `sudo apt-get install mosquitto mosquitto-clients`, "
                "macOS `brew install mosquitto`, others https://mosquitto.org/download/ "
                "(or use the embedded broker: --broker embedded)")
#: The account Debian's package makes for the daemon.
DAEMON_USER = "mosquitto"
#: mosquitto logs a TLS refusal in one of two ways, depending on when in the handshake it happened.
_OPENSSL_ERROR = re.compile(r"(?:OpenSSL Error\[\d+\]: |Client connection from \S+ failed: )"
                            r"error:[0-9A-F]+:SSL routines:[^:]*:(.+?)\.?$")
_VERSION = re.compile(r"mosquitto version (\S+) running")


class MosquittoMissing(LabError):
    """mosquitto is not installed (exit code 2)."""

    def __init__(self) -> None:
        super().__init__("mosquitto", f"the mosquitto program is not installed; {INSTALL_HINT}")


def refusals_in(log: list[str]) -> list[str]:
    """OpenSSL's reasons in mosquitto's log lines, in order (``peer did not return a certificate``...)."""
    return [m.group(1).strip() for line in log if (m := _OPENSSL_ERROR.search(line))]


def find_mosquitto() -> str | None:
    """The mosquitto program: on PATH, or where Debian and Homebrew install it; None if absent."""
    found = shutil.which("mosquitto")
    if found:
        return found
    return next((p for p in SEARCH_PATHS if os.access(p, os.X_OK)), None)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now (another program may take it before we bind it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def check_port(port: object, where: str = "--port") -> int:
    """A TCP port: a whole number from 1 to 65535 (0 would mean "any port", which mosquitto cannot do)."""
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise InputError(where, f"{port!r} is not a TCP port (1-65535)")
    return port


def check_bind(bind: str | None, where: str = "--bind") -> str | None:
    """The address to listen on: None (every interface), or one plain IP address or host name.

    A ``listener`` line is ``listener PORT ADDRESS``, one line of mosquitto.conf. Anything but a bare name
    (a space, a newline...) would let the "address" write further lines into the configuration, e.g.
    ``0.0.0.0\nallow_anonymous true``, so the name is checked as a broker name is
    (:func:`~mqtt_pki_lab.names.check_host_name`) and comes back normalised.
    """
    if bind is None:
        return None
    return check_host_name(bind, where)


def _conf_safe(value: str | Path, what: str) -> str:
    """``value`` as one word of mosquitto.conf: mosquitto splits a line at whitespace, and a newline
    would start a new setting, so a path or name holding any whitespace is refused, never quoted."""
    text = str(value)
    if any(c.isspace() for c in text) or any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise InputError(value, f"mosquitto.conf cannot name {what} whose text contains spaces or other "
                                "whitespace (a tab, a newline) or control characters; mosquitto reads each "
                                "setting as one line of words. Move the lab folder to a path without them")
    return text


def mosquitto_conf(side: L.Side, port: int, *, bind: str | None = "127.0.0.1", user: str | None = None,
                   extra: tuple[str, ...] = ()) -> str:
    """A mosquitto.conf for mutual TLS with ``side``'s files (paths written as given: pass absolute ones).

    ``bind`` None listens on every interface. ``user`` adds a ``user`` line: the account mosquitto
    switches to when started as root (it must be able to read ``server.key``). Every value that goes
    into the file is checked first (:func:`check_port`, :func:`check_bind`, no whitespace in a path):
    what a user typed can never add a line of its own.
    """
    port, bind = check_port(port), check_bind(bind)
    ca, cert, key = (_conf_safe(path, "a file") for path in (side.ca, side.cert, side.key))
    lines = [
        "# Mutual TLS: a client must present a certificate signed by cafile; its CN becomes the username.",
        "per_listener_settings false",
        "allow_anonymous false",
        "set_tcp_nodelay true",
    ]
    if user:
        lines.append(f"user {_conf_safe(user, 'a user')}")
    lines += [
        "",
        f"listener {port}" + (f" {bind}" if bind else ""),
        f"cafile {ca}",
        f"certfile {cert}",
        f"keyfile {key}",
        "require_certificate true",
        "use_identity_as_username true",
        *extra,
    ]
    return "\n".join(lines) + "\n"


def refuse_encrypted_key(key: Path) -> None:
    """Raise :class:`LabError` if ``key`` is encrypted: mosquitto would ask for its passphrase on a terminal."""
    from .files import read_bytes
    from .keys import is_encrypted_key_pem

    if Path(key).is_file() and is_encrypted_key_pem(read_bytes(Path(key))):
        raise LabError(key, "mosquitto cannot use an encrypted key: it would ask for the passphrase on a "
                            "terminal at every start. Use the embedded broker with --passphrase-file, or give "
                            "mosquitto a decrypted copy (0600): openssl pkey -in server.key -out server-plain.key")


def running_as_root() -> bool:
    """True when this process is root (POSIX only): mosquitto would then switch to another user."""
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _account(name: str):
    """The POSIX account ``name`` (a ``pwd.struct_passwd``), or None when there is no such account."""
    import pwd  # POSIX only; only ever called by root

    try:
        return pwd.getpwnam(name)
    except KeyError:
        return None


class MosquittoBroker:
    """mosquitto in the foreground on the broker's files, on ``host`` and a free port.

    ``run_as`` matters only when we are root: the account mosquitto switches to (default: the
    ``mosquitto`` account when it exists, else ``root``). For any account but root, the broker's three
    files are copied into a private temporary folder owned by that account, so the unprivileged
    broker can read its key; the copy is deleted on :meth:`stop`.
    """

    def __init__(self, files: str | Path | L.Side, *, host: str = "127.0.0.1", program: str | None = None,
                 run_as: str | None = None, start_timeout: float = 10.0) -> None:
        self.side = files if isinstance(files, L.Side) else L.BROKER.side(files)
        self.host = host
        self.port: int | None = None
        self.program = program
        self.run_as = run_as
        self.version: str | None = None
        self.conf_path: Path | None = None
        self._start_timeout = start_timeout
        self._tmp: Path | None = None
        self._log_path: Path | None = None
        self._log_file = None
        self._process: subprocess.Popen[bytes] | None = None
        self._final_log: list[str] = []
        self.notes: list[str] = []
        """What the runner did that a user should know (e.g. the private copy made for root)."""

    def __enter__(self) -> MosquittoBroker:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def log(self) -> list[str]:
        """mosquitto's log so far (timestamps removed)."""
        if self._log_path is None or not self._log_path.exists():
            return list(self._final_log)  # after stop(): the log as it was
        text = self._log_path.read_text(errors="replace")
        return [re.sub(r"^\d+: ", "", line) for line in text.splitlines()]

    @property
    def refusals(self) -> list[str]:
        """OpenSSL's reason for each failed TLS handshake mosquitto logged (``peer did not return a
        certificate``; ``tlsv1 alert unknown ca`` when the client refused mosquitto)."""
        return refusals_in(self.log)

    def start(self) -> MosquittoBroker:
        """Write the configuration, start mosquitto, return once it listens."""
        if self._process is not None:
            raise RuntimeError("this MosquittoBroker was already started; make a new one")
        program = self.program or find_mosquitto()
        if program is None:
            raise MosquittoMissing()
        self.program = program
        refuse_encrypted_key(self.side.key)
        check_side_files(self.side, L.BROKER)
        self._tmp = Path(tempfile.mkdtemp(prefix="mqtt-pki-lab-mosquitto-"))
        try:
            files, user = self._files_for_broker()
            for _attempt in range(3):
                if self._launch(program, files, user):
                    return self
            raise LabError(self.conf_path or "mosquitto", "mosquitto could not find a free port (3 tries)")
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout: float = 5.0) -> None:
        """Stop mosquitto (SIGTERM to its own process id, then SIGKILL), delete the temporary files."""
        process = self._process
        if process is not None and process.poll() is None:
            process.terminate()  # mosquitto notices it when its event loop next wakes up: up to 100 ms
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if self._tmp is not None:
            self._final_log = self.log
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    # -- helpers ---------------------------------------------------------------------------------
    def _files_for_broker(self) -> tuple[L.Side, str | None]:
        """The files mosquitto reads, and the ``user`` line: see the module's note on root."""
        if not running_as_root():
            return self.side, None  # mosquitto runs as us and reads the files where they are
        user = self.run_as or (DAEMON_USER if _account(DAEMON_USER) else "root")
        if user == "root":
            self.notes.append("started by root: mosquitto runs as root (`user root`), reading the files in place")
            return self.side, "root"
        account = _account(user)
        if account is None:
            raise LabError("run_as", f"there is no user {user!r} on this system to run mosquitto as")
        assert self._tmp is not None
        folder = self._tmp / "broker"
        folder.mkdir(mode=0o700)
        copy = L.Side(folder / "ca.crt", folder / "server.crt", folder / "server.key")
        for source, target in zip((self.side.ca, self.side.cert, self.side.key), (copy.ca, copy.cert, copy.key),
                                  strict=True):
            shutil.copyfile(source, target)
            os.chmod(target, 0o600 if target == copy.key else 0o644)
            os.chown(target, account.pw_uid, account.pw_gid)
        for path in (folder, self._tmp):
            os.chown(path, account.pw_uid, account.pw_gid)
        self.notes.append(f"started by root: mosquitto switches to the user {user!r} before reading server.key, "
                          f"so it ran on a private copy of the broker's files owned by {user!r} (deleted after)")
        return copy, user

    def _launch(self, program: str, files: L.Side, user: str | None) -> bool:
        """Start mosquitto on a free port; True once it runs, False if the port was taken meanwhile."""
        assert self._tmp is not None
        self.port = free_port(self.host)
        self.conf_path = self._tmp / "mosquitto.conf"
        self.conf_path.write_text(mosquitto_conf(files, self.port, bind=self.host, user=user,
                                                 extra=("log_dest stderr", "log_type all")))
        self._log_path = self._tmp / f"mosquitto-{self.port}.log"
        if self._log_file is not None:
            self._log_file.close()
        self._log_file = self._log_path.open("wb")
        self._process = subprocess.Popen([program, "-c", str(self.conf_path)], stdin=subprocess.DEVNULL,
                                         stdout=self._log_file, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self._start_timeout
        while time.monotonic() < deadline:
            exited = self._process.poll() is not None  # before reading the log, so the log is complete
            log = self.log
            running = next((m for line in log if (m := _VERSION.search(line))), None)
            if running:
                self.version = running.group(1)
                return True
            if exited:
                text = "\n".join(log)
                if "Address already in use" in text:
                    self._process = None
                    return False
                where = Path(self.side.key).parent if "Permission denied" in text else self.conf_path
                raise LabError(where, explain_start_failure(text, user))
            time.sleep(0.005)
        raise LabError(self.conf_path, f"mosquitto did not start within {self._start_timeout:g} s:\n"
                                       + "\n".join(self.log[-5:]))


def explain_start_failure(log: str, user: str | None = None) -> str:
    """Why mosquitto stopped at start, from its log; the root-switches-user pitfall spelled out."""
    last = "\n  ".join(log.splitlines()[-4:])
    if "Permission denied" in log:
        who = f"the user {user!r}" if user else "this user"
        return (f"mosquitto could not read its files as {who}: started as root, mosquitto switches to the "
                f"user on its `user` line (default: mosquitto) before it reads ca.crt, server.crt and "
                f"server.key, and a 0600 key (or a closed folder on the way) owned by someone else is "
                f"unreadable to it. Start mosquitto as the user who owns the files, or chown them to the user "
                f"it runs as. mosquitto said:\n  {last}")
    return f"mosquitto stopped at start:\n  {last}"
