"""JupyterLab in a real browser: every notebook runs, its widgets render and respond to a click.

Executing notebooks headless (tests/test_notebooks.py) does not prove that the widgets render and respond
in JupyterLab; a browser does. This test starts JupyterLab on 127.0.0.1 (a free port, a token, a copy of
the notebooks, a fresh ``MQTT_PKI_LAB_WORKDIR``), drives Debian's ``chromium`` with Playwright (the system
browser: Playwright downloads nothing) and, for every notebook of the course in order, as a student would:
*Run → Run All Cells*, checks that no cell failed and no widget failed to display, clicks the first enabled
button of a widget (when the notebook has one) and checks that the page answered without an error, then saves
a screenshot of the whole notebook to ``test-artifacts/browser/NN-name.png`` (open them and look).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import REPO, require, require_program

from mqtt_pki_lab.mosquitto import free_port

try:
    from playwright import sync_api as playwright_api
except ImportError:  # the fixtures below skip, or fail in CI, saying so
    playwright_api = None  # type: ignore[assignment]

ARTIFACTS = REPO / "test-artifacts" / "browser"
VIEWPORT = {"width": 1400, "height": 900}
#: Headless Chromium as root in a container: no sandbox, no GPU, no /dev/shm, nothing fetched behind our back.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
#: User settings for the test's JupyterLab: every cell in the page (no windowing, so a screenshot of the whole
#: notebook shows every output), and no news or update checks from the internet.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                         "checkForUpdates": False},
}


@dataclass(frozen=True)
class JupyterLabServer:
    """A running JupyterLab: where it listens, its token, the folder it serves, and the course's workdir."""

    url: str
    token: str
    root: Path
    workdir: Path
    log: Path

    def lab_url(self, path: str) -> str:
        """The notebook in a fresh workspace (``reset``: no tabs of earlier notebooks come back)."""
        return f"{self.url}/lab/tree/{path}?reset&token={self.token}"

    def api(self, path: str, method: str = "GET") -> object:
        request = urllib.request.Request(f"{self.url}/api/{path}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None


def wait_until_up(server: JupyterLabServer, process: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"JupyterLab exited with {process.returncode}:\n{server.log.read_text()[-3000:]}")
        try:
            server.api("status")
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.3)
    pytest.fail(f"JupyterLab did not answer within {timeout} s:\n{server.log.read_text()[-3000:]}")


def stop(server: JupyterLabServer, process: subprocess.Popen) -> None:
    """Shut the kernels and the server down through the API; then end the process group, whatever is left."""
    try:
        for kernel in server.api("kernels") or []:  # type: ignore[union-attr]
            server.api(f"kernels/{kernel['id']}", method="DELETE")
        server.api("shutdown", method="POST")
        process.wait(timeout=20)
    except Exception:
        pass  # the fallback below ends whatever is left
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if process.poll() is not None:
                break
            try:
                os.killpg(process.pid, sig)
                process.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass


@pytest.fixture(scope="module")
def jupyterlab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterLabServer]:
    """JupyterLab serving a copy of the notebooks, with its own settings and a fresh course workdir."""
    tmp_path = tmp_path_factory.mktemp("browser")
    require(_importable("jupyterlab"), "JupyterLab is not installed here (pip install -e '.[lab]')")
    root = tmp_path / "mqtt-pki-lab"  # a copy of the notebooks: JupyterLab autosaves what it runs
    shutil.copytree(REPO / "notebooks", root / "notebooks",
                    ignore=shutil.ignore_patterns("lab-work", ".ipynb_checkpoints"))
    settings = tmp_path / "jupyter" / "lab-settings"
    for name, values in LAB_SETTINGS.items():
        (settings / name).parent.mkdir(parents=True, exist_ok=True)
        (settings / name).write_text(json.dumps(values))
    token, port = secrets.token_hex(24), free_port()
    server = JupyterLabServer(url=f"http://127.0.0.1:{port}", token=token, root=root,
                              workdir=root / "notebooks" / "lab-work", log=tmp_path / "jupyterlab.log")
    env = {
        **os.environ,
        "MQTT_PKI_LAB_WORKDIR": str(server.workdir),  # the kernel inherits it: clicks write here
        # ipykernel's kernel.json runs "python" from PATH: make it this environment's (the one with the package).
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "JUPYTERLAB_SETTINGS_DIR": str(settings),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "jupyter" / "workspaces"),
        "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter" / "config"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "jupyter" / "runtime"),
    }
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
               f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
               f"--ServerApp.root_dir={root}", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--ServerApp.allow_root=True")
    with server.log.open("w") as log:
        process = subprocess.Popen(command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        wait_until_up(server, process)
        yield server
    finally:
        stop(server, process)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(server.log, ARTIFACTS / "jupyterlab.log")


def _importable(module: str) -> bool:
    probe = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True)
    return probe.returncode == 0


@pytest.fixture(scope="module")
def page() -> Iterator[playwright_api.Page]:
    """A page of headless system Chromium (``apt-get install chromium``)."""
    require(playwright_api is not None, "Playwright (Python) is not installed (pip install -e '.[test]')")
    chromium = require_program("chromium", "apt-get install chromium")
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport=VIEWPORT)
        try:
            yield page
        finally:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            with suppress(playwright_api.Error):  # what the browser showed at the end, pass or fail
                page.screenshot(path=ARTIFACTS / "last-page.png")
            browser.close()


# --- what the page shows, read in the browser ------------------------------------------------------------------

ALL_CELLS_RUN = """() => {
    const cells = [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell')];
    if (cells.some(c => c.querySelector("[data-mime-type='application/vnd.jupyter.error']"))) return 'error';
    const prompts = cells.map(c => c.querySelector('.jp-InputPrompt'));
    return prompts.length > 0 && prompts.every(p => p && /\\[\\d+\\]/.test(p.textContent)) ? 'done' : false;
}"""


def wait_for_kernel(server: JupyterLabServer, notebook: str, timeout: float = 120) -> None:
    """Wait until the server runs an idle kernel for ``notebook`` (before that, *Run All* asks for a kernel)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sessions = server.api("sessions") or []
        if any(s["path"] == notebook and s["kernel"]["execution_state"] == "idle" for s in sessions):  # type: ignore[union-attr]
            return
        time.sleep(0.3)
    pytest.fail(f"no idle kernel for {notebook} after {timeout} s:\n{server.log.read_text()[-3000:]}")


def run_all_cells(page: playwright_api.Page) -> None:
    """*Run → Run All Cells*, through the menu bar, as a student does."""
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-item:visible", has_text="Run All Cells").first.click()


@contextmanager
def whole_notebook_in_view(page: playwright_api.Page) -> Iterator[None]:
    """Stretch the viewport to the notebook's full height for a while (windowing is off: every cell is drawn).

    JupyterLab scrolls the notebook inside its own panel, so neither a full-page shot nor an element taller than
    the window would show everything otherwise.
    """
    size = page.viewport_size or VIEWPORT
    height = page.evaluate("""() => {
        const inner = document.querySelector('.jp-NotebookPanel .jp-WindowedPanel-inner');
        const outer = document.querySelector('.jp-NotebookPanel .jp-WindowedPanel-outer');
        return inner.scrollHeight + outer.getBoundingClientRect().top + 60;
    }""")
    page.set_viewport_size({"width": size["width"], "height": min(int(height), 16000)})
    page.evaluate("() => document.querySelector('.jp-NotebookPanel .jp-WindowedPanel-outer').scrollTo(0, 0)")
    page.wait_for_timeout(300)
    try:
        yield
    finally:
        page.set_viewport_size(size)


#: The enabled buttons of rendered widgets (not JupyterLab's own toolbar buttons).
WIDGET_BUTTONS = ".jp-OutputArea-output .jupyter-widgets button.jupyter-button:not([disabled])"
#: A cell that raised (a progress bar on stderr is not an error; a traceback anywhere is caught separately).
ERROR_OUTPUTS = ".jp-RenderedText[data-mime-type='application/vnd.jupyter.error']"


def open_and_run(page: playwright_api.Page, server: JupyterLabServer, notebook: str) -> None:
    """Open ``notebook``, wait for its kernel, *Run All Cells*, and wait until every code cell has run."""
    page.goto(server.lab_url(notebook))
    page.locator(".jp-NotebookPanel .jp-Notebook").wait_for()
    wait_for_kernel(server, notebook)
    page.locator(".jp-NotebookPanel [data-status='idle']").first.wait_for()  # and the page is connected to it
    run_all_cells(page)
    outcome = page.wait_for_function(ALL_CELLS_RUN, timeout=240_000).json_value()
    if outcome == "error":
        failed = page.locator(".jp-CodeCell", has=page.locator(ERROR_OUTPUTS)).first.inner_text()
        pytest.fail(f"{notebook}: a cell failed in JupyterLab:\n{failed[-3000:]}")
    page.locator(".jp-NotebookPanel [data-status='idle']").first.wait_for(timeout=240_000)


def shut_kernels(server: JupyterLabServer) -> None:
    """End every kernel, so the next notebook starts fresh and two notebooks never hold one lab's lock."""
    for kernel in server.api("kernels") or []:  # type: ignore[union-attr]
        with suppress(urllib.error.URLError):
            server.api(f"kernels/{kernel['id']}", method="DELETE")


@pytest.mark.timeout(1500)
def test_every_notebook_runs_in_jupyterlab_and_its_widgets_answer(jupyterlab: JupyterLabServer,
                                                                   page: playwright_api.Page) -> None:
    from mqtt_pki_lab.course import NOTEBOOKS

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    console_errors: list[str] = []
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
    page.set_default_timeout(60_000)
    report = []
    for name, _title in NOTEBOOKS:
        notebook = f"notebooks/{name}"
        started = time.perf_counter()
        open_and_run(page, jupyterlab, notebook)
        assert page.get_by_text("Error displaying widget").count() == 0, name
        assert page.locator(ERROR_OUTPUTS).count() == 0, (name, page.locator(ERROR_OUTPUTS).all_inner_texts())
        text = page.locator(".jp-NotebookPanel").inner_text()
        assert "PRIVATE KEY" not in text and "Traceback" not in text, name
        buttons = page.locator(WIDGET_BUTTONS)
        clicked = ""
        if buttons.count():
            button = buttons.first
            clicked = button.inner_text().strip()
            button.scroll_into_view_if_needed()
            button.click()
            page.wait_for_timeout(1500)
            page.locator(".jp-NotebookPanel [data-status='idle']").first.wait_for(timeout=120_000)
            assert page.get_by_text("Error displaying widget").count() == 0, name
            assert "Traceback" not in page.locator(".jp-NotebookPanel").inner_text(), (name, clicked)
        page.wait_for_timeout(500)  # let pictures paint before the shot
        with whole_notebook_in_view(page):
            page.screenshot(path=ARTIFACTS / f"{Path(name).stem}.png")
        report.append(f"{name}: {time.perf_counter() - started:.1f} s"
                      + (f", clicked {clicked!r}" if clicked else ", no widget button"))
        shut_kernels(jupyterlab)
    (ARTIFACTS / "console-errors.txt").write_text("\n".join(console_errors))
    (ARTIFACTS / "report.txt").write_text("\n".join(report) + "\n")
    print("\n".join(report))
    assert not [e for e in console_errors if "widget" in e.lower()], console_errors
    assert any("clicked" in line for line in report), "no notebook of the course has a widget button"
