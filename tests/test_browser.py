"""End-to-end tests of the course in a real browser: JupyterLab 4 + nbgrader's extensions,
driven in headless Chromium (Debian's ``chromium`` and ``chromium-driver``) with Selenium.

Each test starts its own JupyterLab server on a free localhost port, with a known token and
a throw-away root folder, settings, workspaces and nbgrader exchange, and stops it (with its
kernels) at teardown.  Screenshots go to ``artifacts/browser/`` (git-ignored).

1. ``test_student_validates_the_lab``: a student opens the release of ``lab_counting_labels``,
   restarts the kernel and runs all cells, presses *Validate* (failure dialog), writes the three
   graded functions into the cell editors, saves, runs all again and validates (success dialog).
2. ``test_flagship_figures_render``: the executed reference notebook of
   ``chest_xray_diagnosis`` (the one nbgrader's autograder wrote, shared with the self-grading
   tests) shows the class-frequency plot, the ROC curves and a Grad-CAM overlay.
3. ``test_instructor_formgrader``: an instructor opens the Formgrader from the Nbgrader menu and
   sees every assignment and the demo submissions ``reference`` / ``blank`` with their scores.

Without Chromium these tests FAIL (they never skip): ``apt-get install chromium
chromium-driver`` (``.ci/run`` does it).  Selenium is given the driver's path, so Selenium
Manager never downloads anything.
"""
from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import signal
import socket
import sqlite3
import struct
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import nbformat
import pytest

from course_utils import nbgrading
from course_utils.paths import REPO_DIR

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = Path(os.environ.get("COURSE_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("COURSE_CHROMEDRIVER", "/usr/bin/chromedriver"))
ARTIFACTS = REPO_DIR / "artifacts" / "browser"
VENV_BIN = REPO_DIR / ".venv" / "bin"
LAB = "lab_counting_labels"
FLAGSHIP = "chest_xray_diagnosis"

#: Chromium's flags as root in a container: no sandbox, no GPU, /tmp instead of /dev/shm, and
#: no background connections (updates, sync, QUIC probes) that a sandbox without network refuses.
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--disable-quic", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--window-size=1400,1000")


# ----------------------------------------------------------------------------- JupyterLab server
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class JupyterLab:
    """``jupyter lab`` from the course's .venv, serving ``root`` on a free localhost port."""

    def __init__(self, root: Path, state: Path):
        self.root, self.state = Path(root), Path(state)
        self.port, self.token = free_port(), secrets.token_hex(16)
        self.log_path = self.state / "jupyterlab.log"
        self.proc: subprocess.Popen | None = None

    def url(self, path: str) -> str:
        sep = "&" if "?" in path else "?"
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}{sep}token={self.token}"

    def _env(self) -> dict[str, str]:
        settings = self.state / "settings"
        # no "would you like to receive Jupyter news?" toast, no update check (no network)
        notification = settings / "@jupyterlab" / "apputils-extension"
        notification.mkdir(parents=True, exist_ok=True)
        (notification / "notification.jupyterlab-settings").write_text(
            json.dumps({"fetchNews": "false", "checkForUpdates": False}))
        exchange = self.state / "exchange"
        exchange.mkdir(exist_ok=True)
        env = dict(os.environ)
        env.update({
            "PATH": f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
            "JUPYTERLAB_SETTINGS_DIR": str(settings),
            "JUPYTERLAB_WORKSPACES_DIR": str(self.state / "workspaces"),
            "JUPYTER_CONFIG_DIR": str(self.state / "config"),     # not the user's ~/.jupyter
            "JUPYTER_RUNTIME_DIR": str(self.state / "runtime"),
            "COURSE_EXCHANGE": str(exchange),                       # nbgrader_config.py: Exchange.root
            "TF_CPP_MIN_LOG_LEVEL": "3",                            # as `make lab` exports it
        })
        return env

    def start(self, timeout: float = 120) -> "JupyterLab":
        jupyter = VENV_BIN / "jupyter"
        if not jupyter.exists():
            pytest.fail(f"{jupyter} missing: run `make venv`", pytrace=False)
        cmd = [str(jupyter), "lab", "--no-browser", "--allow-root", "--ip=127.0.0.1",
               f"--port={self.port}", "--ServerApp.port_retries=0",
               f"--ServerApp.token={self.token}", f"--ServerApp.root_dir={self.root}",
               "--LabApp.expose_app_in_browser=True",   # window.jupyterapp: read the notebook model
               "--FileContentsManager.delete_to_trash=False"]
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, cwd=self.root, env=self._env(), stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"jupyter lab exited with {self.proc.returncode}:\n{self.log_tail()}",
                            pytrace=False)
            try:
                with urllib.request.urlopen(self.url("api/status"), timeout=5) as response:
                    if response.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.5)
        self.stop()
        pytest.fail(f"jupyter lab not ready after {timeout:.0f} s:\n{self.log_tail()}",
                    pytrace=False)

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def stop(self) -> None:
        """Shut the server down through its API (kernels included), then its process group."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            request = urllib.request.Request(self.url("api/shutdown"), method="POST")
            urllib.request.urlopen(request, timeout=10).close()
            self.proc.wait(timeout=30)
        except (urllib.error.URLError, ConnectionError, TimeoutError, subprocess.TimeoutExpired):
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(self.proc.pid, sig)
                    self.proc.wait(timeout=10)
                    break
                except ProcessLookupError:
                    break
                except subprocess.TimeoutExpired:
                    continue
        self.log.close()


@pytest.fixture
def lab_server(tmp_path):
    """``lab_server(root)`` -> a started JupyterLab serving ``root``; stopped at teardown."""
    servers = []

    def start(root: Path) -> JupyterLab:
        state = tmp_path / f"jupyter-state-{len(servers)}"
        state.mkdir()
        server = JupyterLab(root, state)
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()


# ----------------------------------------------------------------------------- browser
@pytest.fixture
def browser(tmp_path):
    """Headless Debian Chromium through Debian's chromedriver (fails when either is missing)."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.fail(f"browser tests need {', '.join(missing)}: "
                    "apt-get install -y chromium chromium-driver (.ci/run installs them)",
                    pytrace=False)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tempfile.mkdtemp(dir=tmp_path, prefix='chromium-')}")
    # an explicit driver path: Selenium Manager (which would download a driver) never runs
    service = Service(executable_path=str(CHROMEDRIVER), log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


def wait_for(driver, condition, timeout: float, what: str):
    """Poll ``condition(driver)`` until it is truthy; fail saying ``what`` did not happen."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.5).until(condition)
    except TimeoutException:
        shot = ARTIFACTS / f"timeout-{int(time.time())}.png"
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(shot))
        pytest.fail(f"after {timeout:.0f} s: {what} (screenshot {shot})", pytrace=False)


#: JavaScript prologue: ``p`` is the notebook panel JupyterLab shows.
PANEL = "const p = window.jupyterapp && window.jupyterapp.shell.currentWidget;\n"

KERNEL_IDLE = PANEL + """
const k = p && p.sessionContext && p.sessionContext.session && p.sessionContext.session.kernel;
return !!(k && k.connectionStatus === 'connected' && k.status === 'idle');
"""

#: [{index, type, count, grade_id, errors: [ename], images}] of every cell, from the live model
CELLS = PANEL + """
return p.content.widgets.map((w, i) => {
  const m = w.model, nb = m.getMetadata('nbgrader') || {};
  const outs = m.type === 'code' ? m.outputs.toJSON() : [];
  return {index: i, type: m.type, count: m.type === 'code' ? m.executionCount : null,
          grade_id: nb.grade_id || null, source: m.sharedModel.getSource(),
          errors: outs.filter(o => o.output_type === 'error').map(o => o.ename),
          images: outs.filter(o => o.data && o.data['image/png']).length};
});
"""

RUNNING = """
return Array.from(document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-InputPrompt'))
  .some(e => e.textContent.includes('*'));
"""


def open_notebook(driver, server: JupyterLab, path: str, kernel: bool = True) -> None:
    driver.get(server.url(f"lab/tree/{path}"))
    wait_for(driver, lambda d: d.execute_script(
        PANEL + "return !!(p && p.content && p.context && p.context.isReady && "
        "p.content.widgets.length > 0);"), 120, f"JupyterLab did not show {path}")
    if kernel:
        wait_for(driver, lambda d: d.execute_script(KERNEL_IDLE), 120,
                 f"the kernel of {path} did not become idle")


def click(driver, css: str, timeout: float = 30):
    from selenium.webdriver.common.by import By
    element = wait_for(driver, lambda d: next(
        (e for e in d.find_elements(By.CSS_SELECTOR, css) if e.is_displayed()), None),
        timeout, f"no visible {css}")
    element.click()
    return element


def restart_and_run_all(driver) -> None:
    """The toolbar's "Restart the kernel and run all cells" button, confirmed in its dialog."""
    driver.execute_script(PANEL + "p.content.widgets.forEach(w => {"
                          "if (w.model.type === 'code') w.model.executionCount = null; });")
    click(driver, 'jp-button[data-command="notebook:restart-run-all"]')
    click(driver, ".jp-Dialog .jp-Dialog-button.jp-mod-accept")


def run_finished(driver) -> list[dict] | None:
    """The cells once the kernel is idle, nothing runs and a cell has run; else None."""
    if not driver.execute_script(KERNEL_IDLE) or driver.execute_script(RUNNING):
        return None
    cells = driver.execute_script(CELLS)
    return cells if any(c["count"] is not None for c in cells) else None


def validate(driver, shot: Path, show: str | None = None) -> tuple[str, str]:
    """Press Validate; -> (dialog kind 'success'/'error', dialog text); screenshot (scrolled to
    the first element of the dialog whose text contains ``show``, if any); close it."""
    from selenium.webdriver.common.by import By
    click(driver, "jp-button.validate-button")
    dialog = wait_for(driver, lambda d: next(iter(d.find_elements(
        By.CSS_SELECTOR, ".nbgrader-SuccessDialog, .nbgrader-ErrorDialog")), None),
        300, "no validation dialog after pressing Validate")
    # the dialog content is filled in once the server's validation returns
    wait_for(driver, lambda d: dialog.find_elements(By.CSS_SELECTOR, "#validation-message")
             and dialog.text.strip(), 60, "the validation dialog stayed empty")
    kind = "success" if "nbgrader-SuccessDialog" in dialog.get_attribute("class") else "error"
    text = dialog.text
    if show:
        shown = dialog.find_elements(By.XPATH, f".//*[contains(text(), '{show}')]")
        if shown:
            driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", shown[0])
    driver.save_screenshot(str(shot))
    dialog.find_element(By.CSS_SELECTOR, ".jp-Dialog-button").click()
    wait_for(driver, lambda d: not d.find_elements(
        By.CSS_SELECTOR, ".nbgrader-SuccessDialog, .nbgrader-ErrorDialog"), 30,
        "the validation dialog did not close")
    return kind, text


def type_into_cell(driver, index: int, text: str) -> str:
    """Replace the source of cell ``index`` by typing ``text`` into its CodeMirror editor.

    The editor is clicked (focus), its text selected with Ctrl+A, and ``text`` inserted with
    Chrome's ``Input.insertText`` (the DevTools call behind IME and dictation input): CodeMirror
    receives it as one text input, exactly as the browser delivers it, without the
    auto-indentation and bracket-closing that key-by-key typing of code would trigger.
    -> the cell's source as JupyterLab's model holds it afterwards.
    """
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    node = driver.execute_script(PANEL + "const w = p.content.widgets[arguments[0]];"
                                 "w.node.scrollIntoView({block: 'center'}); return w.node;", index)
    editor = wait_for(driver, lambda d: next(iter(node.find_elements(By.CSS_SELECTOR, ".cm-content")),
                                             None), 30, f"cell {index} has no editor")
    editor.click()
    ActionChains(driver).key_down(Keys.CONTROL).send_keys("a").key_up(Keys.CONTROL).perform()
    driver.execute_cdp_cmd("Input.insertText", {"text": text})
    ActionChains(driver).send_keys(Keys.ESCAPE).perform()       # leave edit mode
    return driver.execute_script(
        PANEL + "return p.content.widgets[arguments[0]].model.sharedModel.getSource();", index)


def save(driver) -> None:
    click(driver, 'jp-button[data-command="docmanager:save"]')
    wait_for(driver, lambda d: d.execute_script(PANEL + "return !p.context.model.dirty;"), 60,
             "the notebook was not saved")


# ----------------------------------------------------------------------------- 1. student
def reference_solutions(assignment: str) -> dict[str, str]:
    """{grade_id: instructor's solution} of the answer cells, as the reference submission has them."""
    name = f"{assignment}.ipynb"
    source = nbformat.read(REPO_DIR / "source" / assignment / name, as_version=4)
    release = nbformat.read(REPO_DIR / "release" / assignment / name, as_version=4)
    reference = nbgrading.reference_notebook(source, release)
    return {c.metadata.nbgrader["grade_id"]: c.source
            for c in reference.cells if nbgrading.is_solution_cell(c)}


def test_student_validates_the_lab(tmp_path, lab_server, browser, screenshots):
    """Blank release: run all fails at the first test, Validate reports failures; with the
    instructor's solutions typed in: every cell runs and Validate reports success."""
    student = tmp_path / "student"
    shutil.copytree(REPO_DIR / "release" / LAB, student / LAB)
    solutions = reference_solutions(LAB)
    assert len(solutions) == 3, solutions.keys()
    server = lab_server(student)
    open_notebook(browser, server, f"{LAB}/{LAB}.ipynb")
    browser.save_screenshot(str(screenshots / "1-student-notebook-open.png"))

    # --- the untouched release: the first graded function raises NotImplementedError
    restart_and_run_all(browser)
    cells = wait_for(browser, run_finished, 300, "Restart Kernel and Run All did not finish")
    by_id = {c["grade_id"]: c for c in cells if c["grade_id"]}
    assert by_id["test_count_labels"]["errors"] == ["NotImplementedError"], by_id["test_count_labels"]
    kind, text = validate(browser, screenshots / "1-student-validate-failed.png",
                          show="NotImplementedError")
    assert kind == "error", text
    assert "failed" in text.lower() and "NotImplementedError" in text, text

    # --- type the three functions into their cells, save, run all, validate
    for grade_id, solution in solutions.items():
        index = by_id[grade_id]["index"]
        assert "raise NotImplementedError()" in cells[index]["source"]
        assert type_into_cell(browser, index, solution) == solution, f"typing into {grade_id}"
    browser.save_screenshot(str(screenshots / "1-student-function-filled.png"))
    save(browser)
    on_disk = nbformat.read(student / LAB / f"{LAB}.ipynb", as_version=4)
    assert {c.metadata.nbgrader["grade_id"]: c.source for c in on_disk.cells
            if nbgrading.is_solution_cell(c)} == solutions

    restart_and_run_all(browser)
    cells = wait_for(browser, lambda d: (lambda c: c if c and all(
        x["count"] is not None for x in c if x["type"] == "code") else None)(run_finished(d)),
        300, "Run All with the solutions did not run every cell")
    errors = {c["index"]: c["errors"] for c in cells if c["errors"]}
    assert not errors, f"cells with errors after filling in the solutions: {errors}"
    assert sum(c["images"] for c in cells) >= 1       # the lab's count plot is shown
    kind, text = validate(browser, screenshots / "1-student-validate-passed.png")
    assert kind == "success", text
    assert "Success! Your notebook passes all the tests." in text, text


# ----------------------------------------------------------------------------- 2. flagship figures
def png_size(b64: str) -> tuple[int, int]:
    """(width, height) from the IHDR chunk of a base64 PNG."""
    head = base64.b64decode(b64[:64])
    assert head[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", head[16:24])


#: markdown heading that introduces a figure -> text the figure's code cell contains
FIGURES = {
    "class-frequencies": ("## 4. Class imbalance", "plot_class_frequencies("),
    "roc-curves": ("## 7. Evaluation", "get_roc_curve("),
    "gradcam-overlay": ("## 8. Grad-CAM", "gradcam"),
}


def figure_cells(nb) -> dict[str, tuple[int, tuple[int, int]]]:
    """{figure: (cell index, PNG size)}: the first code cell with a PNG after each heading."""
    found = {}
    for figure, (heading, code) in FIGURES.items():
        start = next((i for i, c in enumerate(nb.cells)
                      if c.cell_type == "markdown" and c.source.startswith(heading)), None)
        assert start is not None, f"no markdown heading {heading!r} in the flagship notebook"
        for i in range(start + 1, len(nb.cells)):
            cell = nb.cells[i]
            pngs = [o["data"]["image/png"] for o in cell.get("outputs", [])
                    if "image/png" in o.get("data", {})]
            if cell.cell_type == "code" and pngs:
                assert code.lower() in cell.source.lower(), \
                    f"first figure after {heading!r} (cell {i}) is not made by {code!r}"
                found[figure] = (i, png_size(pngs[0]))
                break
        else:
            pytest.fail(f"no figure after {heading!r} in the executed flagship notebook")
    return found


@pytest.fixture
def flagship_reference(tmp_path, self_graded) -> tuple[Path, dict]:
    """(folder holding the autograded reference of the flagship, its figures): the notebook
    nbgrader executed when the self-grading fixture autograded it (no extra execution here)."""
    graded = self_graded(FLAGSHIP) / "autograded" / nbgrading.REFERENCE / FLAGSHIP / f"{FLAGSHIP}.ipynb"
    root = tmp_path / "instructor"
    (root / FLAGSHIP).mkdir(parents=True)
    shutil.copy2(graded, root / FLAGSHIP / f"{FLAGSHIP}.ipynb")
    return root, figure_cells(nbformat.read(graded, as_version=4))


def test_flagship_figures_render(flagship_reference, lab_server, browser, screenshots):
    """The executed reference of chest_xray_diagnosis shows its figures in JupyterLab."""
    root, expected = flagship_reference     # graded before the browser starts (fixture order)
    server = lab_server(root)
    open_notebook(browser, server, f"{FLAGSHIP}/{FLAGSHIP}.ipynb", kernel=False)
    for figure, (index, (width, height)) in expected.items():
        # scroll the figure's cell into view (JupyterLab renders cells lazily), wait for the image
        size = wait_for(browser, lambda d: d.execute_script(PANEL + """
            const w = p.content.widgets[arguments[0]];
            p.content.scrollToItem(arguments[0], 'start');
            const img = w.node.querySelector('.jp-OutputArea-output img');
            if (!img) return null;
            img.scrollIntoView({block: 'center'});
            return img.complete && img.naturalWidth > 0 ? [img.naturalWidth, img.naturalHeight] : null;
        """, index), 60, f"the {figure} figure (cell {index}) did not render")
        assert tuple(size) == (width, height), f"{figure}: rendered {size}, PNG is {width}x{height}"
        time.sleep(0.5)                      # let the scroll settle before the screenshot
        browser.save_screenshot(str(screenshots / f"2-flagship-{figure}.png"))


# ----------------------------------------------------------------------------- 3. formgrader
def merged_course(courses: dict[str, Path], dest: Path) -> Path:
    """One nbgrader course holding every self-graded assignment: files and gradebooks merged."""
    nbgrading_dirs = ("source", "release", "submitted", "autograded")
    dest.mkdir(parents=True)
    shutil.copy2(REPO_DIR / "nbgrader_config.py", dest / "nbgrader_config.py")
    (dest / "source").mkdir()
    shutil.copy2(REPO_DIR / "source" / "header.ipynb", dest / "source" / "header.ipynb")
    for assignment, course in courses.items():
        for top in nbgrading_dirs:
            for folder in (course / top).glob(f"**/{assignment}"):
                target = dest / folder.relative_to(course)
                if folder.is_dir() and not target.exists():
                    shutil.copytree(folder, target)
    # gradebooks: every id is a UUID except the student and course names (same in all)
    first, *rest = courses.values()
    shutil.copy2(first / "gradebook.db", dest / "gradebook.db")
    with sqlite3.connect(dest / "gradebook.db") as db:
        tables = [r[0] for r in db.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name != 'alembic_version'")]
        for i, course in enumerate(rest):
            db.execute(f"ATTACH DATABASE ? AS g{i}", (str(course / "gradebook.db"),))
            for table in tables:
                db.execute(f"INSERT OR IGNORE INTO main.{table} SELECT * FROM g{i}.{table}")
            db.commit()
            db.execute(f"DETACH DATABASE g{i}")
    return dest


def fmt_score(value: float) -> str:
    """A score as formgrader's roundToPrecision(x, 2) prints it (JavaScript number)."""
    rounded = round(value, 2)
    return str(int(rounded)) if rounded == int(rounded) else str(rounded)


@pytest.fixture
def formgrader_course(tmp_path, self_graded) -> tuple[Path, list[str], dict]:
    """(course with every assignment and its autograded demo submissions, assignment names,
    {(assignment, student): (points, max points)} read from its gradebook)."""
    courses = self_graded.many(nbgrading.discover_assignments(REPO_DIR))
    course = merged_course(courses, tmp_path / "course")
    rows = nbgrading.score_table(course)
    assert not any(r["missing"] for r in rows), rows
    expected = {(r["assignment"], r["student"]): (r["points"], r["max_points"]) for r in rows}
    assert {a for a, _ in expected} == set(courses)
    assert {s for _, s in expected} == {nbgrading.REFERENCE, nbgrading.BLANK}
    return course, sorted(courses), expected


def test_instructor_formgrader(formgrader_course, lab_server, browser, screenshots):
    """Nbgrader menu -> Formgrader: every assignment, and reference/blank with their scores."""
    from selenium.webdriver.common.by import By

    course, names, expected = formgrader_course   # graded before the browser starts
    server = lab_server(course)
    browser.get(server.url("lab"))
    wait_for(browser, lambda d: d.execute_script(
        "return !!(window.jupyterapp && window.jupyterapp.shell);"), 120, "JupyterLab did not start")
    menu = wait_for(browser, lambda d: next((e for e in d.find_elements(
        By.CSS_SELECTOR, "#jp-MainMenu .lm-MenuBar-itemLabel") if e.text == "Nbgrader"), None),
        60, "no Nbgrader menu in JupyterLab's menu bar")
    menu.click()
    click(browser, '#jp-mainmenu-nbgrader li[data-command="nbgrader:open-formgrader"]')
    frame = wait_for(browser, lambda d: next(iter(d.find_elements(
        By.CSS_SELECTOR, "#jp-main-dock-panel iframe")), None), 60, "no Formgrader tab")
    tab = browser.find_elements(By.CSS_SELECTOR, "#jp-main-dock-panel .lm-TabBar-tab.lm-mod-current")
    assert tab and "Formgrader" in tab[0].text
    browser.switch_to.frame(frame)

    # Manage Assignments: one row per assignment, each with its 2 submissions
    table = wait_for(browser, lambda d: (lambda t: t if all(n in t for n in names) else None)(
        " ".join(e.text for e in d.find_elements(By.CSS_SELECTOR, "table tbody tr"))),
        60, f"Manage Assignments does not list {names}")
    for row in browser.find_elements(By.CSS_SELECTOR, "table tbody tr"):
        cells = [c.text.strip() for c in row.find_elements(By.TAG_NAME, "td")]
        if cells and cells[0] in names:
            assert str(len(nbgrading.DEMO_STUDENTS)) in cells, \
                f"{cells[0]}: expected {len(nbgrading.DEMO_STUDENTS)} submissions in {cells}"
    browser.switch_to.default_content()
    browser.save_screenshot(str(screenshots / "3-formgrader-assignments.png"))
    assert table

    # each assignment's submissions: reference at full marks, blank at 0, as in the gradebook
    for assignment in names:
        browser.switch_to.frame(frame)
        if not browser.find_elements(By.CSS_SELECTOR, f'a[href$="/manage_submissions/{assignment}"]'):
            click(browser, 'a[href$="/formgrader/manage_assignments"]')    # back to the list
        click(browser, f'a[href$="/manage_submissions/{assignment}"]')     # its "# Submissions"

        def score_rows(d):
            got = {}
            for row in d.find_elements(By.CSS_SELECTOR, "table tbody tr"):
                student = row.find_elements(By.CSS_SELECTOR, ".student-id")
                name = row.find_elements(By.CSS_SELECTOR, ".student-name")
                score = row.find_elements(By.CSS_SELECTOR, ".score")
                if student and name and score and score[0].text.strip():
                    got[student[0].text.strip()] = (name[0].text.strip(), score[0].text.strip())
            return got if len(got) == len(nbgrading.DEMO_STUDENTS) else None

        got = wait_for(browser, score_rows, 60, f"no scores for the submissions of {assignment}")
        want = {s: (", ".join(reversed(nbgrading.DEMO_NAMES[s])),
                    f"{fmt_score(expected[assignment, s][0])} / {fmt_score(expected[assignment, s][1])}")
                for s in nbgrading.DEMO_STUDENTS}
        assert got == want, assignment
        browser.switch_to.default_content()
        if assignment in (LAB, FLAGSHIP):
            browser.save_screenshot(str(screenshots / f"3-formgrader-submissions-{assignment}.png"))
