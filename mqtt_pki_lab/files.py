"""The disk is sacred: atomic writes, a lock per lab, bounded reads, no symlink followed out of the lab.

* **Atomic**: a file is written to a temporary name in its own folder (``.NAME.PID.RAND.tmp``, mode 0600
  from the first byte) and renamed over the target only when complete, so a crash leaves the old file or
  the new one, never half a key. A :class:`Staging` writes *every* file of a command this way first and
  renames them all at the end: a command that fails before the end changes nothing.
* **Locked**: every command that writes to a lab holds an exclusive lock on the lab folder
  (:class:`LabLock`, ``flock`` on the folder itself, so no lock file is left behind). A second writer is
  refused at once, and while the lock is held any temporary file in the lab is a leftover of a killed
  run: it is reported and removed.
* **Inside the lab**: folders and files are opened relative to the lab folder without following
  symbolic links (``O_NOFOLLOW``), so a ``ca/`` that is a link to another lab's ``ca/`` is refused, not
  written through.
* **Modes**: keys 0600, public files 0644, ``ca/`` created 0700. A folder the lab did not create keeps
  its mode.
* **Bounded**: no input is read past :data:`MAX_INPUT_BYTES`, and only regular files are read (not
  ``/dev/zero``, not a FIFO).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
from pathlib import Path

from .errors import InputError, RefusedError

#: Permissions of a private key: read and write for its owner only.
SECRET_MODE = 0o600
#: Permissions of a public file (certificate, CSR): anybody may read it.
PUBLIC_MODE = 0o644
#: Permissions of the CA's folder, when the lab creates it: only its owner may even list it.
CA_DIR_MODE = 0o700
#: Permissions of the other folders the lab creates (before the umask).
DIR_MODE = 0o755
#: The largest file the lab reads: certificates, keys and CSRs are a few kilobytes.
MAX_INPUT_BYTES = 1024 * 1024
#: The temporary files of an atomic write: ``.ca.key.1234.9f8e7d6c.tmp``.
TEMP_NAME = re.compile(r"\..+\.\d+\.[0-9a-f]{8}\.tmp")

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def _why(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def check_lab_path(root: str | Path, where: str = "DIR") -> Path:
    """A lab folder given by a user: not empty, not a file; returned as a :class:`Path`."""
    if str(root).strip() == "":
        raise InputError(where, "the lab folder is empty (''); name a folder, e.g. pki")
    path = Path(root)
    if path.is_symlink():
        raise InputError(path, "is a symbolic link; give the real folder (the lab never follows links)")
    if path.exists() and not path.is_dir():
        raise InputError(path, "is a file, not a lab folder")
    return path


def read_bytes(path: str | Path, limit: int = MAX_INPUT_BYTES) -> bytes:
    """Read a file the user gave us: a regular file of at most ``limit`` bytes, not empty.

    Every OS problem becomes an :class:`InputError` naming the file.
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | _CLOEXEC | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise InputError(path, "no such file") from None
    except IsADirectoryError:
        raise InputError(path, "is a folder, not a file") from None
    except OSError as exc:
        raise InputError(path, f"cannot read this file ({_why(exc)})") from None
    info = os.fstat(fd)
    if stat.S_ISDIR(info.st_mode):
        os.close(fd)
        raise InputError(path, "is a folder, not a file")
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(info.st_mode):
            raise InputError(path, "is not a regular file (a device, a pipe or a socket); give a PEM file")
        if info.st_size > limit:
            raise InputError(path, f"is {info.st_size} bytes; certificates, keys and CSRs are a few kilobytes "
                                   f"(the lab reads at most {limit})")
        try:
            data = handle.read(limit + 1)
        except OSError as exc:
            raise InputError(path, f"cannot read this file ({_why(exc)})") from None
    if len(data) > limit:
        raise InputError(path, f"is larger than {limit} bytes; this is not a certificate, key or CSR")
    if not data.strip():
        raise InputError(path, "the file is empty")
    return data


def mode_of(path: Path) -> int:
    """The permission bits of ``path`` (e.g. ``0o600``), not following a link."""
    return stat.S_IMODE(os.lstat(path).st_mode)


# --- folders ------------------------------------------------------------------------------------------------

def _open_dir(path: Path, dir_fd: int | None = None) -> int:
    """Open a folder without following a link; InputError when it is a link, a file or unreadable."""
    try:
        return os.open(path, os.O_RDONLY | _DIRECTORY | _NOFOLLOW | _CLOEXEC, dir_fd=dir_fd)
    except FileNotFoundError:
        raise
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            if os.path.islink(path) if dir_fd is None else _is_link_at(path, dir_fd):
                raise InputError(path, "is a symbolic link; the lab never writes through links (it could "
                                       "change another lab's files): make it a real folder") from None
            raise InputError(path, "is a file, not a folder") from None
        raise InputError(path, f"cannot open this folder ({_why(exc)})") from None


def _is_link_at(name: Path, dir_fd: int) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def check_folder(root: Path, folder: str, *, must_exist: bool = False) -> bool:
    """Check a folder inside the lab before writing: no link on the way, writable. True when it exists."""
    path = root
    for part in Path(folder).parts:
        path = path / part
        if os.path.islink(path):
            raise InputError(path, "is a symbolic link; the lab never writes through links (it could change "
                                   "another lab's files): make it a real folder")
        if not path.exists():
            if must_exist:
                raise InputError(path, "no such folder")
            return False
        if not path.is_dir():
            raise InputError(path, "is a file, not a folder; move it away")
    if not os.access(path, os.W_OK | os.X_OK):
        raise InputError(path, "this folder is not writable; the lab cannot put its files here")
    return True


def check_parent_writable(path: Path) -> None:
    """Check that ``path`` (not yet there) can be created: its parent is a writable folder."""
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise InputError(parent, "no such folder to create the lab in" if not parent.exists()
                         else "is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(parent, "this folder is not writable; choose another place for the lab")


def make_folder(root: Path, folder: str, mode: int = DIR_MODE) -> Path:
    """Create ``root/folder`` (and the folders on the way) if missing; never change an existing one's mode."""
    path = root
    parts = Path(folder).parts
    for i, part in enumerate(parts):
        path = path / part
        try:
            os.mkdir(path, mode if i == len(parts) - 1 else DIR_MODE)
        except FileExistsError:
            pass
        except OSError as exc:
            raise InputError(path, f"cannot create this folder ({_why(exc)})") from None
        os.close(_open_dir(path))  # refuses a link or a file in the way
    return path


def ensure_dir(path: Path, mode: int = DIR_MODE) -> Path:
    """Create a folder (and its parents) if missing and check that it is a writable folder.

    An existing folder keeps its mode: the lab changes only what it created.
    """
    path = Path(path)
    if os.path.islink(path):
        raise InputError(path, "is a symbolic link; give the real folder (the lab never follows links)")
    if path.exists() and not path.is_dir():
        raise InputError(path, "is a file, not a folder; choose another place for the lab's files")
    try:
        path.mkdir(parents=True, exist_ok=True, mode=mode)
    except FileExistsError:
        raise InputError(path, "a file is in the way of this folder; choose another place") from None
    except NotADirectoryError:
        raise InputError(path, "a parent of this path is a file, not a folder") from None
    except OSError as exc:
        raise InputError(path, f"cannot create this folder ({_why(exc)})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise InputError(path, "this folder is not writable; choose one you can write to")
    return path


# --- the lock ---------------------------------------------------------------------------------------------

class LabLock:
    """An exclusive lock on a lab folder for one writing command; refused at once if another holds it.

    ``flock`` on the folder itself: nothing is written to take it, and the kernel releases it when the
    process dies, however it dies. POSIX only; elsewhere it locks nothing (the lab is single-user there).
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._fd: int | None = None

    def __enter__(self) -> LabLock:
        self._fd = _open_dir(self.root)
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            return self
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            self._fd = None
            raise RefusedError(self.root, "another mqtt-pki-lab command is writing to this lab right now; "
                                          "nothing was changed: try again when it has finished") from None
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the last descriptor releases the flock
            self._fd = None


def leftovers(root: Path, folders: list[str] | tuple[str, ...]) -> list[Path]:
    """Temporary files of atomic writes that a killed run left in the lab's folders."""
    found = []
    for folder in folders:
        path = root / folder
        if path.is_dir() and not path.is_symlink():
            with contextlib.suppress(OSError):
                found += sorted(p for p in path.iterdir() if TEMP_NAME.fullmatch(p.name) and not p.is_dir())
    return found


def remove_leftovers(root: Path, folders: list[str] | tuple[str, ...]) -> list[str]:
    """Delete the leftovers of killed runs (call it holding the :class:`LabLock`); return what was removed."""
    removed = []
    for path in leftovers(root, folders):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed.append(path.relative_to(root).as_posix())
    return removed


# --- writing ---------------------------------------------------------------------------------------------

def _temp_name(name: str) -> str:
    return f".{name}.{os.getpid()}.{os.urandom(4).hex()}.tmp"


class Staging:
    """Write a command's files aside first, then put them all in place at once (or none of them).

    ``stage()`` writes a temporary file next to its target (0600 from the first byte; ``durable``: also
    fsync'd); ``commit()`` renames every staged file over its target; leaving the ``with`` block without
    ``commit()`` deletes them. Folders are opened without following links, so a link swapped in after
    the checks is refused, not written through.
    """

    def __init__(self) -> None:
        self._staged: list[tuple[int, str, str, Path]] = []
        self._dirs: dict[Path, int] = {}

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.abort()

    def _dir(self, folder: Path) -> int:
        fd = self._dirs.get(folder)
        if fd is None:
            fd = self._dirs[folder] = _open_dir(folder)
        return fd

    def stage(self, path: Path, data: bytes, *, secret: bool, durable: bool = False,
              owner: tuple[int, int] | None = None) -> Path:
        """Write ``data`` aside for ``path``; it takes the name at :meth:`commit`.

        ``owner`` (uid, gid) gives the new file that owner before it takes the name (only root may): a
        file replaced by root keeps the account that owned it, so a broker running as that account can
        still read its 0600 key.
        """
        path = Path(path)
        dfd = self._dir(path.parent)
        tmp = _temp_name(path.name)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, SECRET_MODE, dir_fd=dfd)
        except OSError as exc:
            raise InputError(path.parent, f"cannot write here ({_why(exc)})") from None
        self._staged.append((dfd, tmp, path.name, path))
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                if durable:
                    handle.flush()
                    os.fsync(handle.fileno())
                if not secret:
                    os.fchmod(handle.fileno(), PUBLIC_MODE)
                if owner is not None:
                    os.fchown(handle.fileno(), *owner)
        except OSError as exc:
            raise InputError(path, f"cannot write this file ({_why(exc)})") from None
        if _is_link_at(Path(path.name), dfd):
            raise InputError(path, "is a symbolic link; the lab never writes through links")
        return path

    def commit(self) -> list[Path]:
        """Rename every staged file over its target; return the targets."""
        done = []
        try:
            for dfd, tmp, name, path in self._staged:
                os.replace(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
                done.append(path)
            for fd in {dfd for dfd, *_ in self._staged}:
                with contextlib.suppress(OSError):
                    os.fsync(fd)  # the renames themselves survive a power cut
        except OSError as exc:
            raise InputError(self._staged[len(done)][3], f"cannot write this file ({_why(exc)})") from None
        finally:
            self._staged = self._staged[len(done):]
        return done

    def abort(self) -> None:
        """Delete whatever is still staged and close the folders."""
        for dfd, tmp, _, _ in self._staged:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dfd)
        self._staged = []
        for fd in self._dirs.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self._dirs = {}


def write_atomic(path: Path, data: bytes, *, secret: bool, durable: bool = False) -> Path:
    """Write one file atomically: 0600 for a secret, 0644 otherwise (``durable``: fsync it first)."""
    with Staging() as staging:
        staging.stage(Path(path), data, secret=secret, durable=durable)
        staging.commit()
    return Path(path)
