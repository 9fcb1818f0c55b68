"""The Dagster UI as a user sees it: asset graph and a successful run, in headless Chromium.

The test builds a throw-away Dagster instance (the project's dagster.yaml copied into a temp
DAGSTER_HOME), records one cheap successful run in it (materialising `input_manifest` only, which
generates the simulated default dataset and needs no Neo4j), starts `dagster-webserver` on the
project's workspace.yaml, and drives Debian's chromium through selenium. Screenshots are kept in
test-artifacts/ at the repository root.

Needs the Debian packages `chromium` and `chromium-driver` (/usr/bin/chromium, /usr/bin/chromedriver);
skips with the reason when either is missing.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO_ROOT / "test-artifacts"
CHROMIUM = Path(os.environ.get("PERTURBGRAPH_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("PERTURBGRAPH_CHROMEDRIVER", "/usr/bin/chromedriver"))
BIN = Path(sys.executable).parent

# One asset from each group: sources, graph, training, model, evaluation, discoveries.
EXPECTED_ASSETS = ["input_manifest", "graph_experiments", "training_set", "lpm_model", "evaluation_report",
                   "discoveries"]
EXPECTED_GROUPS = ["sources", "graph", "training", "model", "evaluation", "discoveries"]

STARTUP_TIMEOUT = 120  # webserver + code location (imports torch) on a slow, shared 2-core machine
PAGE_TIMEOUT = 90

BROWSER = [pytest.mark.browser, pytest.mark.slow]


def _require_browser() -> None:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not found: install the Debian packages "
                    "`apt-get install -y chromium chromium-driver` to run the UI test")
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.skip("selenium is not installed (pip install -e '.[dev]')")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    """Stop a process started in its own session, with its children (code server)."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    except ProcessLookupError:
        pass


@pytest.fixture(scope="module")
def ui_env(tmp_path_factory) -> dict[str, str]:
    """Environment with a temp DAGSTER_HOME holding one successful `input_manifest` run.

    The run's id is in the returned mapping under the key `RUN_ID` (not exported to processes)."""
    _require_browser()
    base = tmp_path_factory.mktemp("pg-ui")
    dagster_home = base / "dagster"
    pg_home = base / "home"
    dagster_home.mkdir()
    pg_home.mkdir()
    shutil.copyfile(REPO_ROOT / "dagster.yaml", dagster_home / "dagster.yaml")
    env = dict(os.environ, DAGSTER_HOME=str(dagster_home), PERTURBGRAPH_HOME=str(pg_home),
               PERTURBGRAPH_INPUTS="default", OMP_NUM_THREADS="1")
    env.pop("NEO4J_URI", None)  # nothing here talks to Neo4j
    # In-process executor: no per-step subprocess, so the run takes seconds after the import.
    result = subprocess.run(
        [str(BIN / "dagster"), "asset", "materialize", "-m", "pipelines.definitions", "--select", "input_manifest",
         "--config-json", '{"execution": {"config": {"in_process": {}}}}'],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"materialising input_manifest failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    log = result.stdout + result.stderr
    match = re.search(r"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}) - \d+ - RUN_SUCCESS", log)
    assert match, f"no RUN_SUCCESS event in the materialise log:\n{log[-3000:]}"
    return {**env, "RUN_ID": match.group(1)}


@pytest.fixture(scope="module")
def webserver(ui_env, tmp_path_factory):
    """`dagster-webserver -w workspace.yaml` on a free port; yields its base URL; stopped afterwards."""
    port = _free_port()
    log_path = tmp_path_factory.mktemp("webserver") / "webserver.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [str(BIN / "dagster-webserver"), "-w", str(REPO_ROOT / "workspace.yaml"), "-h", "127.0.0.1",
             "-p", str(port)],
            cwd=REPO_ROOT, env={k: v for k, v in ui_env.items() if k != "RUN_ID"}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            if proc.poll() is not None:
                pytest.fail(f"dagster-webserver exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/server_info", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"dagster-webserver did not answer /server_info in {STARTUP_TIMEOUT}s:\n"
                            f"{log_path.read_text()[-3000:]}")
            time.sleep(1)
        yield url
    finally:
        _stop(proc)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    _require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1600,1000"]:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        driver.set_page_load_timeout(PAGE_TIMEOUT)
        yield driver
    finally:
        driver.quit()


def _wait(driver, condition, what: str, timeout: float = PAGE_TIMEOUT):
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout, poll_frequency=1).until(condition)
    except TimeoutException:
        ARTIFACTS.mkdir(exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / "ui-failure.png"))
        body = driver.find_element("tag name", "body").text
        pytest.fail(f"timed out after {timeout}s waiting for {what} at {driver.current_url}; "
                    f"screenshot test-artifacts/ui-failure.png; page text:\n{body[:2000]}")


def _dismiss_community_popup(driver) -> None:
    """The first visit shows a 'Join the Dagster community' dialog; press its Skip button like a user."""
    from selenium.webdriver.common.by import By

    for button in driver.find_elements(By.XPATH, "//button[normalize-space(.)='Skip']"):
        if button.is_displayed():
            button.click()
            _wait(driver, lambda d: not any(b.is_displayed() for b in
                                            d.find_elements(By.XPATH, "//button[normalize-space(.)='Skip']")),
                  "the community dialog to close", timeout=20)


def _visible_text(driver) -> str:
    return driver.find_element("tag name", "body").text


def _expand_all_groups(driver) -> None:
    """Global lineage starts with one box per group; ⌥E ('Expand all groups') opens every group."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    # Keys go to the document (the shortcut listens there); no click, which could select a graph node.
    driver.execute_script("document.activeElement && document.activeElement.blur && document.activeElement.blur();")
    ActionChains(driver).key_down(Keys.ALT).send_keys("e").key_up(Keys.ALT).perform()


@BROWSER[0]
@BROWSER[1]
def test_asset_graph_and_successful_run_visible(ui_env, webserver, browser):
    from selenium.webdriver.common.by import By

    driver = browser
    ARTIFACTS.mkdir(exist_ok=True)

    # Same origin first, so the "Join the Dagster community" dialog can be marked as seen in this
    # throw-away profile (it would otherwise cover the page in the screenshots).
    driver.get(f"{webserver}/server_info")
    driver.execute_script("window.localStorage.setItem('communityNux', JSON.stringify('1'));")

    # 1. The asset graph: every group, then every asset once the groups are expanded.
    driver.get(f"{webserver}/asset-groups")
    _wait(driver, lambda d: "Global asset lineage" in _visible_text(d)
          and all(g in _visible_text(d) for g in EXPECTED_GROUPS), "the asset groups in the lineage view")
    _expand_all_groups(driver)
    # Asset nodes are HTML inside the graph's SVG <foreignObject>s (the sidebar lists only groups).
    node_xpath = "//*[local-name()='foreignObject']//div[normalize-space(text())='{}']"
    _wait(driver, lambda d: all(d.find_elements(By.XPATH, node_xpath.format(a)) for a in EXPECTED_ASSETS),
          f"asset nodes {EXPECTED_ASSETS} in the graph")
    time.sleep(2)  # let the graph finish its zoom-to-fit animation before the screenshot
    driver.save_screenshot(str(ARTIFACTS / "ui-asset-graph.png"))
    # The materialised asset is drawn green, the never-materialised ones grey.
    box_style = "./ancestor::div[contains(@style, '--minimal-bg')][1]"

    def node_colour(asset: str) -> str:
        boxes = driver.find_element(By.XPATH, node_xpath.format(asset)).find_elements(By.XPATH, box_style)
        assert boxes, (f"no coloured box around the {asset} node: the graph is not at the zoomed-out level "
                       "the test expects (window size changed?); see test-artifacts/ui-asset-graph.png")
        return boxes[0].get_attribute("style")

    assert "green" in node_colour("input_manifest"), node_colour("input_manifest")
    assert "green" not in node_colour("lpm_model"), node_colour("lpm_model")

    # 2. The runs page: the recorded run, its target and status Success.
    run_id = ui_env["RUN_ID"]
    driver.get(f"{webserver}/runs")
    row_xpath = f"//a[@href='/runs/{run_id}']/ancestor::div[contains(normalize-space(.), 'Success')][1]"
    _wait(driver, lambda d: d.find_elements(By.XPATH, row_xpath),
          f"run {run_id[:8]} with status Success in the runs table")
    row = driver.find_element(By.XPATH, row_xpath).text
    assert run_id[:8] in row and "input_manifest" in row and "Success" in row, row
    assert "Failure" not in _visible_text(driver)
    driver.save_screenshot(str(ARTIFACTS / "ui-runs.png"))


# ------------------------------------------------------------------ `perturbgraph ui` as a process tree
def _descendants(pid: int) -> set[int]:
    """Live descendants of pid (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    out, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in out:
                out.add(child)
                todo.append(child)
    return out


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
def test_perturbgraph_ui_stops_its_whole_process_tree_on_sigterm(tmp_path):
    """`perturbgraph ui` starts dagster dev (webserver, daemon, code server: 5 processes); SIGTERM to
    the CLI alone must leave none of them running, and the start must print no Dagster warning."""
    port = _free_port()
    env = dict(os.environ, PERTURBGRAPH_HOME=str(tmp_path / "home"), PERTURBGRAPH_INPUTS="default")
    env.pop("NEO4J_URI", None)
    env.pop("DAGSTER_HOME", None)
    log_path = tmp_path / "ui.log"
    with open(log_path, "w") as log:
        # Its own session, so that the cleanup below can reach everything if the test fails.
        proc = subprocess.Popen([str(BIN / "perturbgraph"), "ui", "--port", str(port)], cwd=REPO_ROOT, env=env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    tree: set[int] = set()
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            assert proc.poll() is None, f"perturbgraph ui exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, f"no UI after {STARTUP_TIMEOUT}s:\n{log_path.read_text()[-3000:]}"
            time.sleep(1)
        time.sleep(3)  # the code server's gRPC child starts a moment after the webserver answers
        tree = _descendants(proc.pid)
        assert len(tree) >= 3, f"expected dagster dev with webserver and daemon under the CLI, got {tree}"
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
        assert code == 128 + signal.SIGTERM
        left = [pid for pid in tree if _alive(pid)]
        assert not left, f"processes left running after SIGTERM: {left}"
        log = log_path.read_text()
        for unwanted in ("Found a dagster instance", "Warning", "warnings.warn"):
            assert unwanted not in log, f"{unwanted!r} in the output of perturbgraph ui:\n{log[-3000:]}"
    finally:
        for pid in [proc.pid, *tree]:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        proc.wait(timeout=10)


def test_instance_config_turns_telemetry_and_onboarding_off(tmp_path, monkeypatch):
    """The project's dagster.yaml, as `perturbgraph ui` installs it: no telemetry, no onboarding dialog."""
    import dagster as dg

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    shutil.copyfile(REPO_ROOT / "dagster.yaml", tmp_path / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert instance.nux_enabled is False
        assert instance.telemetry_enabled is False
