"""Errors that explain themselves.

Every problem the lab can meet with a user's input is a :class:`LabError`: it names the file (or
setting) at fault and says what is wrong with it, in words a student can act on. The CLI prints
``str(error)`` and exits with :attr:`LabError.exit_code`; it never shows a traceback for them.
"""

from __future__ import annotations

from pathlib import Path


class LabError(Exception):
    """A problem with the user's input or files, explained.

    ``where`` is the file or setting at fault (a path, or a name such as ``--days``); ``problem`` says
    what is wrong and, where we can tell, how to fix it.
    """

    #: Exit code the CLI uses: 2 for unusable input (usage errors, unreadable files).
    exit_code = 2

    def __init__(self, where: str | Path, problem: str) -> None:
        self.where = str(where)
        self.problem = problem
        super().__init__(f"{self.where}: {problem}")


class InputError(LabError):
    """A file or option that cannot be used: unreadable, wrong format, invalid value (exit code 2)."""


class RefusedError(LabError):
    """A request the lab refuses to carry out, such as overwriting an existing CA (exit code 1)."""

    exit_code = 1
