"""Writing the lab's files safely: atomic, with the right permissions, never half a key.

Secret files (private keys) are created with mode 0600 from the first byte: the data is written to a
temporary file in the same folder, flushed to disk, then renamed over the target, so a crash leaves
either the old file or the new one, never a truncated key.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from .errors import InputError

#: Permissions of a private key: read and write for its owner only.
SECRET_MODE = 0o600
#: Permissions of a public file (certificate, CSR): anybody may read it.
PUBLIC_MODE = 0o644
#: Permissions of the CA's folder: only its owner may even list it.
CA_DIR_MODE = 0o700


def ensure_dir(path: Path, mode: int = 0o755) -> Path:
    """Create ``path`` (and its parents) if needed, and check it really is a writable folder."""
    if path.exists() and not path.is_dir():
        raise InputError(path, "is a file, not a folder; choose another place for the lab's files")
    try:
        path.mkdir(parents=True, exist_ok=True, mode=mode)
        os.chmod(path, mode)
    except FileExistsError:
        raise InputError(path, "a file is in the way of this folder; choose another place") from None
    except NotADirectoryError:
        raise InputError(path, "a parent of this path is a file, not a folder") from None
    except OSError as exc:
        raise InputError(path, f"cannot create this folder ({exc.strerror})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise InputError(path, "this folder is not writable; choose one you can write to")
    return path


def write_atomic(path: Path, data: bytes, *, secret: bool, durable: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically; secret files get mode 0600, public ones 0644.

    The content goes to a temporary file that takes the target's name only once it is complete, so a
    crash of the program leaves the old file or the new one, never half of it. ``durable`` also flushes
    it to the disk first (fsync), so it survives a power cut: worth its cost for ``ca.key``, the one file
    that cannot be made again without orphaning every certificate.
    """
    mode = SECRET_MODE if secret else PUBLIC_MODE
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    try:
        # O_EXCL: never follow or reuse an existing file; 0600 from the first byte, widened after writing.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), SECRET_MODE)
    except OSError as exc:
        raise InputError(path.parent, f"cannot write here ({exc.strerror})") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        if mode != SECRET_MODE:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise InputError(path, f"cannot write this file ({exc.strerror})") from None
        raise
    return path


def read_bytes(path: Path) -> bytes:
    """Read a file the user gave us, turning every OS problem into a clear :class:`InputError`."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        raise InputError(path, "no such file") from None
    except IsADirectoryError:
        raise InputError(path, "is a folder, not a file") from None
    except OSError as exc:
        raise InputError(path, f"cannot read this file ({exc.strerror})") from None
    if not data.strip():
        raise InputError(path, "the file is empty")
    return data


def mode_of(path: Path) -> int:
    """The permission bits of ``path`` (e.g. ``0o600``)."""
    return stat.S_IMODE(path.stat().st_mode)
