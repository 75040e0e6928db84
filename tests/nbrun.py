"""Run the course's notebooks headless, as the tests and the course benchmark do (and a teacher may).

``execute_notebook`` runs a notebook top to bottom in a fresh Jupyter kernel with extra environment
variables (for instance ``MQTT_PKI_LAB_WORKDIR``, or a ``PATH`` without Graphviz), from the notebook's own
folder, and returns it with its outputs. Needs ``nbclient`` and ``nbformat`` (the ``test`` extra).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def environment(changes: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of a block (a kernel inherits them at start)."""
    old = {k: os.environ.get(k) for k in changes}
    os.environ.update(changes)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def execute_notebook(notebook: str | Path, env: Mapping[str, str] | None = None, *, timeout: int = 300,
                     kernel_name: str = "python3") -> Any:
    """Execute ``notebook`` in a new kernel (started in the notebook's folder); return the executed notebook.

    Raises nbclient's ``CellExecutionError`` when a cell fails.
    """
    import nbclient
    import nbformat

    path = Path(notebook)
    nb = nbformat.read(path, as_version=4)
    with environment(env or {}):
        client = nbclient.NotebookClient(nb, timeout=timeout, kernel_name=kernel_name,
                                         resources={"metadata": {"path": str(path.parent)}})
        client.execute()
    return nb
