"""JupyterLab in a real browser: notebook 01's buttons render, respond, and make the file.

Executing notebooks headless (tests/test_notebooks.py) does not prove that the widgets render and respond
in JupyterLab; a browser does. This test starts JupyterLab on 127.0.0.1 (a free port, a token, a copy of
the notebooks, a fresh ``MQTT_PKI_LAB_WORKDIR``), drives Debian's ``chromium`` with Playwright (the system
browser: Playwright downloads nothing), runs notebook 01 with *Run → Run All Cells*, and clicks the panel's
first button: ``ca.key`` must appear on disk and the trust-chain graph (an inline SVG in the panel) must
redraw with that file "made". Screenshots go to ``test-artifacts/browser/``.
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
NOTEBOOK = "notebooks/01_the_ca.ipynb"
VIEWPORT = {"width": 1400, "height": 900}
FIRST_BUTTON = "1. CA: generate ca.key"
SECOND_BUTTON = "2. CA: self-sign ca.crt"
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
        return f"{self.url}/lab/tree/{path}?token={self.token}"

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


@pytest.fixture
def jupyterlab(tmp_path: Path) -> Iterator[JupyterLabServer]:
    """JupyterLab serving a copy of the notebooks, with its own settings and a fresh course workdir."""
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


@pytest.fixture
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
    const prompts = [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt')];
    return prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.textContent));
}"""

NODE_TEXT = """([svg, title]) => {
    const node = [...svg.querySelectorAll('g.node')].find(g => g.querySelector('title')?.textContent === title);
    return node ? node.textContent.replace(/\\s+/g, ' ').trim() : null;
}"""


def node_text(graph: playwright_api.Locator, title: str) -> str | None:
    """The text of one node of the SVG graph (Graphviz names ``ca/ca.key``'s node ``ca_ca_key``)."""
    return graph.evaluate(f"(svg) => ({NODE_TEXT})([svg, {json.dumps(title)}])")


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


def course_screenshot(page: playwright_api.Page, panel: playwright_api.Locator, path: Path) -> None:
    """JupyterLab as a student sees it, the panel at the top: buttons, result, and the graph below them."""
    size = page.viewport_size or VIEWPORT
    page.set_viewport_size({"width": 1600, "height": 1250})
    panel.evaluate("(e) => e.scrollIntoView({block: 'start'})")
    page.wait_for_timeout(300)
    page.screenshot(path=path)
    page.set_viewport_size(size)


@pytest.mark.timeout(300)
def test_notebook_01_panel_renders_and_a_click_makes_the_key(jupyterlab: JupyterLabServer,
                                                            page: playwright_api.Page) -> None:
    expect = playwright_api.expect
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    console_errors: list[str] = []
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
    page.set_default_timeout(60_000)
    started = time.perf_counter()

    page.goto(jupyterlab.lab_url(NOTEBOOK))
    page.locator(".jp-NotebookPanel .jp-Notebook").wait_for()
    wait_for_kernel(jupyterlab, NOTEBOOK)
    page.locator(".jp-NotebookPanel [data-status='idle']").first.wait_for()  # and the page is connected to it
    run_all_cells(page)
    panel = page.locator(".jp-OutputArea-output", has=page.get_by_role("button", name=FIRST_BUTTON))
    button = panel.get_by_role("button", name=FIRST_BUTTON)
    button.wait_for(timeout=120_000)
    page.wait_for_function(ALL_CELLS_RUN, timeout=120_000)

    # The panel is a real widget (not "Error displaying widget"), with its buttons and the inline SVG graph.
    assert page.get_by_text("Error displaying widget").count() == 0
    assert page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr'], "
                        ".jp-RenderedText[data-mime-type='application/vnd.jupyter.error']").count() == 0
    assert "jupyter-widgets" in (button.get_attribute("class") or "")  # drawn by the widget manager
    assert panel.get_by_role("button", name=SECOND_BUTTON).is_disabled()  # it needs ca.key first
    graph = panel.locator("svg").first
    graph.wait_for()
    before = graph.inner_html()
    assert "secret · not made" in (node_text(graph, "ca_ca_key") or "")
    key = jupyterlab.workdir / "by-buttons" / "ca" / "ca.key"
    assert not key.exists()
    with whole_notebook_in_view(page):
        panel.screenshot(path=ARTIFACTS / "01-panel-before-click.png")

    button.click()

    deadline = time.monotonic() + 30
    while not key.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert key.exists(), f"the click did not make {key}"
    # The HTML widget replaces its <svg> when the graph is redrawn: watch the panel, not the old element.
    page.wait_for_function("([panel, before]) => (panel.querySelector('svg')?.innerHTML ?? before) !== before",
                           arg=[panel.element_handle(), before], timeout=30_000)
    after = node_text(graph, "ca_ca_key") or ""
    assert "made" in after and "not made" not in after, after
    assert key.read_bytes().startswith(b"-----BEGIN") and key.stat().st_mode & 0o777 == 0o600
    expect(panel.get_by_role("button", name=SECOND_BUTTON)).to_be_enabled(timeout=30_000)  # arrow 2 is ready now
    assert "ca/ca.key" in panel.inner_text() and "PRIVATE KEY" not in panel.inner_text()
    elapsed = time.perf_counter() - started

    page.wait_for_timeout(500)  # let the new SVG paint before the shots
    with whole_notebook_in_view(page):
        panel.screenshot(path=ARTIFACTS / "01-panel-after-click.png")
        page.screenshot(path=ARTIFACTS / "01-whole-notebook.png")
    course_screenshot(page, panel, ARTIFACTS / "01-course.png")
    (ARTIFACTS / "console-errors.txt").write_text("\n".join(console_errors))
    assert not [e for e in console_errors if "widget" in e.lower()], console_errors
    print(f"browser: notebook 01 run and clicked in {elapsed:.1f} s; console errors: {len(console_errors)}")
