"""Headless Chromium against a real `dg dev` on the local stack: the asset graph shows the six assets and the
demo job's `s3_objects` materialization shows thumbnails (never the originals) that actually load. Screenshots go
to test-artifacts/."""

import shutil
import sys
from pathlib import Path

import pytest

from imageflow_dagster.cli import _demo
from imageflow_dagster.local.stack import _free_port, wait_for_http
from imageflow_dagster.resources import build_resources
from imageflow_dagster.settings import Settings
from imageflow_dagster.submit import submit_job
from imageflow_dagster_tests.test_e2e_daemon import WORKSPACE, wait_until

pytestmark = pytest.mark.browser
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
ASSETS = ("planned_prompts", "step_reports", "generated_images", "s3_objects", "artifacts", "execution_steps")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def dagster_ui(local_stack):
    stack = local_stack()
    port = _free_port()
    dg = str(Path(sys.executable).parent / "dg")
    stack.spawn([dg, "dev", "--target-path", str(WORKSPACE.parent), "-h", "127.0.0.1", "-p", str(port)])
    assert wait_for_http(f"http://127.0.0.1:{port}/server_info", 180), "dg dev did not come up"
    return f"http://127.0.0.1:{port}"


def test_ui_shows_assets_and_loaded_images(dagster_ui):
    from playwright.sync_api import sync_playwright

    db = build_resources(Settings.from_env())["dynamodb"]
    workflow, fields, answers = _demo()
    job = submit_job(db, workflow=workflow, answers=answers, form_fields=fields)
    wait_until(lambda: db.get_item(db.jobs_table, {"job_id": job.job_id})["status"] == "completed", 180, "demo job")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})

        page.goto(f"{dagster_ui}/asset-groups/imageflow", wait_until="networkidle")
        _dismiss_community_dialog(page)
        for name in ASSETS:
            page.get_by_text(name, exact=True).first.wait_for(timeout=30_000)
        page.screenshot(path=str(ARTIFACTS / "asset-graph.png"))

        page.goto(f"{dagster_ui}/assets/s3_objects?partition={job.job_id}", wait_until="networkidle")
        _dismiss_community_dialog(page)
        images = page.locator("img[src*='/jobs/']")
        images.first.scroll_into_view_if_needed(timeout=30_000)
        page.wait_for_function("() => Array.from(document.querySelectorAll(\"img[src*='/jobs/']\")).every(i => i.complete)")
        widths = page.evaluate("() => Array.from(document.querySelectorAll(\"img[src*='/jobs/']\")).map(i => i.naturalWidth)")
        sources = page.evaluate("() => Array.from(document.querySelectorAll(\"img[src*='/jobs/']\")).map(i => i.src)")
        page.screenshot(path=str(ARTIFACTS / "s3-objects-thumbnails.png"))
        browser.close()
    assert all("/thumbnails/" in src for src in sources)  # never the originals
    assert len(widths) == 5 and all(0 < width <= 256 for width in widths)


def _dismiss_community_dialog(page, timeout_ms: int = 5_000) -> None:
    """Dagster shows a "Join the community" dialog on a first visit; it may open a moment after load."""
    from playwright.sync_api import TimeoutError as NoDialog

    try:
        page.get_by_role("button", name="Skip").click(timeout=timeout_ms)
    except NoDialog:  # none this time (already dismissed in this browser)
        pass
