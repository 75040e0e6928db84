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
this module is run by root, it starts mosquitto as that user from the first instruction (so it never
switches) and hands it the broker's files in memory (see below).

**Nothing outlives the check** (Linux). mosquitto is started with ``PR_SET_PDEATHSIG`` = SIGKILL
(``prctl(2)``): the kernel kills it when the thread that started it ends, even when this process is
killed with SIGKILL. The kernel clears that setting when a process changes its user ids, which mosquitto
does itself when started as root: that is why root starts it as its final user instead. The
configuration, the log and, for root, the broker's three files are anonymous memory files
(``memfd_create(2)``) that mosquitto inherits and opens as ``/proc/self/fd/N``: no copy of
``server.key`` is ever written to disk, and the memory goes away with the last process holding it.
Elsewhere (macOS) the configuration and the log live in a private temporary folder deleted by
:meth:`MosquittoBroker.stop`.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import diagram as L
from .acl import policy_file_for
from .crl import checked_broker_crl
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
                   extra: tuple[str, ...] = (), acl: str | Path | None = None, crl: str | Path | None = None) -> str:
    """A mosquitto.conf for mutual TLS with ``side``'s files (paths written as given: pass absolute ones).

    ``bind`` None listens on every interface. ``user`` adds a ``user`` line: the account mosquitto
    switches to when started as root (it must be able to read ``server.key``). Every value that goes
    into the file is checked first (:func:`check_port`, :func:`check_bind`, no whitespace in a path):
    what a user typed can never add a line of its own. ``acl`` adds ``acl_file``: the broker's policy
    (:mod:`~mqtt_pki_lab.acl`), which mosquitto enforces on every PUBLISH and every delivery. ``crl`` adds
    ``crlfile``: the CA's revocation list (:mod:`~mqtt_pki_lab.crl`); mosquitto refuses the clients it lists,
    and every client once its nextUpdate has passed.
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
        *([f"acl_file {_conf_safe(acl, 'a file')}"] if acl is not None else []),
        *([f"crlfile {_conf_safe(crl, 'a file')}"] if crl is not None else []),
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


#: Linux's memfd_create: files in memory, gone with the last process holding them.
_MEMFD = sys.platform.startswith("linux") and hasattr(os, "memfd_create")
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _die_with_parent():
    """A ``preexec_fn`` that makes the child get SIGKILL when the thread that starts it ends (Linux), or None.

    Runs in the child between fork and exec, after Popen has set the child's user ids (a later change of
    user ids would clear it). If this process died before the setting took effect, the child stops at once.
    Everything it calls is looked up here, in the parent.
    """
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    parent, kill = os.getpid(), int(signal.SIGKILL)
    getppid, exit_now = os.getppid, os._exit

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, kill, 0, 0, 0)
        if getppid() != parent:
            exit_now(1)  # the parent died before the setting took effect: nobody would stop us

    return preexec


class _Scratch:
    """What mosquitto reads besides the lab (its configuration, for root the broker's files) and its log.

    On Linux each is an anonymous memory file (``memfd_create``), passed to mosquitto as an inherited
    descriptor and named ``/proc/self/fd/N`` (the same N in both processes): nothing on disk, and the memory
    is freed with the last process holding it. Elsewhere: a private temporary folder, removed by :meth:`close`.
    ``owner`` (uid, gid) is the account that must read the files.
    """

    def __init__(self, owner: tuple[int, int] | None = None) -> None:
        self.owner = owner
        self._fds: dict[str, int] = {}
        self.folder: Path | None = None
        if not _MEMFD:
            self.folder = Path(tempfile.mkdtemp(prefix="mqtt-pki-lab-mosquitto-"))
            if owner is not None:
                os.chown(self.folder, *owner)

    @property
    def inherited(self) -> tuple[int, ...]:
        """The descriptors mosquitto must inherit (``pass_fds``)."""
        return tuple(fd for name, fd in self._fds.items() if name != "log")

    def _new(self, name: str, mode: int) -> tuple[int, Path]:
        self._close(name)
        if self.folder is None:
            fd = os.memfd_create(name, os.MFD_CLOEXEC)  # only what is passed in pass_fds reaches mosquitto
            path = Path(f"/proc/self/fd/{fd}")
        else:
            path = self.folder / name
            path.unlink(missing_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
        os.fchmod(fd, mode)
        if self.owner is not None:
            os.fchown(fd, *self.owner)
        self._fds[name] = fd
        return fd, path

    def put(self, name: str, data: bytes, mode: int = 0o400) -> Path:
        """``data`` as a file mosquitto can open: its path, valid in this process and in mosquitto."""
        fd, path = self._new(name, mode)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        return path

    def copy(self, name: str, source: str | Path, mode: int = 0o400) -> Path:
        with open(source, "rb") as f:
            return self.put(name, f.read(), mode)

    def new_log(self) -> int:
        """A fresh, empty log; its descriptor becomes mosquitto's stdout and stderr."""
        return self._new("log", 0o600)[0]

    def read_log(self) -> str:
        fd = self._fds.get("log")
        if fd is None:
            return ""
        chunks, offset = [], 0
        while chunk := os.pread(fd, 1 << 16, offset):
            chunks.append(chunk)
            offset += len(chunk)
        return b"".join(chunks).decode(errors="replace")

    def _close(self, name: str) -> None:
        fd = self._fds.pop(name, None)
        if fd is not None:
            os.close(fd)

    def close(self) -> None:
        for name in list(self._fds):
            self._close(name)
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None


class MosquittoBroker:
    """mosquitto in the foreground on the broker's files, on ``host`` and a free port.

    ``run_as`` matters only when we are root: the account mosquitto runs as (default: the ``mosquitto``
    account when it exists, else ``root``). For any account but root, mosquitto is started as that account
    and reads the broker's three files from memory (on Linux; elsewhere from a private temporary copy owned
    by that account, deleted on :meth:`stop`).

    On Linux mosquitto dies with the thread that called :meth:`start` (``PR_SET_PDEATHSIG``): start and stop
    it from the same thread, one that outlives the broker (the main thread, as the CLI and notebooks do).
    """

    def __init__(self, files: str | Path | L.Side, *, host: str = "127.0.0.1", program: str | None = None,
                 run_as: str | None = None, start_timeout: float = 10.0, acl: str | Path | bool = True) -> None:
        self.side = files if isinstance(files, L.Side) else L.BROKER.side(files)
        self.acl = acl
        """The policy mosquitto enforces (``acl_file``): True (default) the ``acl`` file beside ``server.crt``
        (the lab's ``broker/acl``) when there is one, False none, or the path of a policy file."""
        self.policy_file: Path | None = None
        """The policy file in force once started (checked first: a line mosquitto would refuse is named)."""
        self._conf_acl: Path | None = None
        self.crl_file: Path | None = None
        """The revocation list in force once started: ``crl.pem`` beside ``ca.crt`` (the lab's ``broker/crl.pem``)
        when there is one, checked first (a damaged list or another CA's is named before mosquitto starts)."""
        self._conf_crl: Path | None = None
        self.host = host
        self.port: int | None = None
        self.program = program
        self.run_as = run_as
        self.version: str | None = None
        self.conf_path: Path | None = None
        self._start_timeout = start_timeout
        self._scratch: _Scratch | None = None
        self._account = None  # the account mosquitto is started as, when root starts it as another one
        self._process: subprocess.Popen[bytes] | None = None
        self._final_log: list[str] = []
        self.notes: list[str] = []
        """What the runner did that a user should know (e.g. the account root ran mosquitto as)."""

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
        if self._scratch is None:
            return list(self._final_log)  # after stop(): the log as it was
        return [re.sub(r"^\d+: ", "", line) for line in self._scratch.read_log().splitlines()]

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
        self.policy_file = self._conf_acl = policy_file_for(self.side, self.acl)  # checked before it starts
        self.crl_file = self._conf_crl = checked_broker_crl(self.side)
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
        """Stop mosquitto (SIGTERM to its own process id, then SIGKILL), free its configuration and log."""
        process = self._process
        if process is not None and process.poll() is None:
            process.terminate()  # mosquitto notices it when its event loop next wakes up: up to 100 ms
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout)
        if self._scratch is not None:
            self._final_log = self.log
            self._scratch.close()
            self._scratch = None

    # -- helpers ---------------------------------------------------------------------------------
    def _files_for_broker(self) -> tuple[L.Side, str | None]:
        """The files mosquitto reads, and the ``user`` line: see the module's note on root."""
        if not running_as_root():
            self._scratch = _Scratch()
            return self.side, None  # mosquitto runs as us and reads the files where they are
        user = self.run_as or (DAEMON_USER if _account(DAEMON_USER) else "root")
        if user == "root":
            self._scratch = _Scratch()
            self.notes.append("started by root: mosquitto runs as root (`user root`), reading the files in place")
            return self.side, "root"
        account = _account(user)
        if account is None:
            raise LabError("run_as", f"there is no user {user!r} on this system to run mosquitto as")
        self._scratch = scratch = _Scratch(owner=(account.pw_uid, account.pw_gid))
        copy = L.Side(scratch.copy("ca.crt", self.side.ca), scratch.copy("server.crt", self.side.cert),
                      scratch.copy("server.key", self.side.key))
        if self.policy_file is not None:
            self._conf_acl = scratch.copy(L.ACL_FILE, self.policy_file)
        if self.crl_file is not None:
            self._conf_crl = scratch.copy(L.CRL_NAME, self.crl_file)
        if scratch.folder is None:
            self._account = account  # started as that account: it never switches users (see the module)
            self.notes.append(f"started by root: mosquitto ran as the user {user!r} from the start, reading the "
                              "broker's files from memory handed over by this process (no copy on disk)")
        else:
            self.notes.append(f"started by root: mosquitto switches to the user {user!r} before reading "
                              f"server.key, so it ran on a private copy of the broker's files owned by {user!r} "
                              "(deleted after)")
        return copy, user

    def _launch(self, program: str, files: L.Side, user: str | None) -> bool:
        """Start mosquitto on a free port; True once it runs, False if the port was taken meanwhile."""
        scratch = self._scratch
        assert scratch is not None
        self.port = free_port(self.host)
        conf = mosquitto_conf(files, self.port, bind=self.host, user=user, extra=("log_dest stderr", "log_type all"),
                              acl=self._conf_acl, crl=self._conf_crl)
        self.conf_path = scratch.put("mosquitto.conf", conf.encode())
        log = scratch.new_log()
        account = self._account
        as_account = ({} if account is None else
                      {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []})
        self._process = subprocess.Popen([program, "-c", str(self.conf_path)], stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT, pass_fds=scratch.inherited,
                                         preexec_fn=_die_with_parent(), **as_account)
        deadline = time.monotonic() + self._start_timeout
        while time.monotonic() < deadline:
            exited = self._process.poll() is not None  # before reading the log, so the log is complete
            log_lines = self.log
            running = next((m for line in log_lines if (m := _VERSION.search(line))), None)
            if running:
                self.version = running.group(1)
                return True
            if exited:
                text = "\n".join(log_lines)
                if "Address already in use" in text:
                    self._process = None
                    return False
                where = Path(self.side.key).parent if cannot_read_files(text) else self.conf_path
                raise LabError(where, explain_start_failure(text, user))
            time.sleep(0.005)
        raise LabError(self.conf_path, f"mosquitto did not start within {self._start_timeout:g} s:\n"
                                       + "\n".join(self.log[-5:]))


#: What mosquitto 2.0.11 logs when, after switching users, it cannot read a file: the key ("Permission denied"),
#: or, read first, the policy ("Unable to open acl_file", with no reason given).
_UNREADABLE = ("Permission denied", "Unable to open acl_file")


def cannot_read_files(log: str) -> bool:
    """True when mosquitto's log says it could not read one of the broker's files (key or policy)."""
    return any(words in log for words in _UNREADABLE)


def explain_start_failure(log: str, user: str | None = None) -> str:
    """Why mosquitto stopped at start, from its log; the root-switches-user pitfall spelled out."""
    last = "\n  ".join(log.splitlines()[-4:])
    if cannot_read_files(log):
        who = f"the user {user!r}" if user else "this user"
        return (f"mosquitto could not read its files as {who}: started as root, mosquitto switches to the "
                f"user on its `user` line (default: mosquitto) before it reads broker/acl, ca.crt, server.crt "
                f"and server.key, and a 0600 key (or a closed folder on the way) owned by someone else is "
                f"unreadable to it. Start mosquitto as the user who owns the files, or chown them to the user "
                f"it runs as. mosquitto said:\n  {last}")
    return f"mosquitto stopped at start:\n  {last}"
