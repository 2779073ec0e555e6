"""The operator's and analyst's view in a real `dg dev` on the local stack, with a completed job, a failed job (an
image that keeps answering 500) and a job with one moderation-blocked image, all processed by the sensor: the
webserver's GraphQL partition statuses and per-job check results, then headless Chromium on what a person sees
(the asset graph, the Failed filter, the lineage table and thumbnails that load at ≤256 px, a rerun from an asset's
partition page in two clicks).
Screenshots go to test-artifacts/."""

import http.server
import json
import shutil
import threading
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from imageflow_dagster.cli.dev import dg_dev_command
from imageflow_dagster.local.openai_control import OpenAIServerControl
from imageflow_dagster.local.services import free_port
from imageflow_dagster.local.stack import LocalStack, wait_for_http
from imageflow_dagster.resources import build_resources
from imageflow_dagster.resources.dynamodb import DynamoDBResource
from imageflow_dagster.settings import Settings
from imageflow_dagster.submit import submit_job
from imageflow_dagster_tests.test_e2e_daemon import wait_until
from imageflow_dagster_tests.workflows import single_image_workflow

pytestmark = [pytest.mark.browser, pytest.mark.e2e]
FAILING_IMAGE = "image 2 of 2"  # in the failed job's second prompt only
ASSETS = ("planned_prompts", "step_reports", "generated_images", "s3_objects", "artifacts", "execution_steps")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclass
class ThreeJobs:
    url: str
    jobs: dict[str, str]  # completed / failed / moderation -> job_id
    openai: OpenAIServerControl
    db: DynamoDBResource

    def status(self, name: str) -> str:
        return self.db.get_item(self.db.jobs_table, {"job_id": self.jobs[name]})["status"]

    def graphql(self, query: str, **variables) -> dict:
        body = json.dumps({"query": query, "variables": variables}).encode()
        request = urllib.request.Request(f"{self.url}/graphql", data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.loads(response.read())
        assert "errors" not in answer, answer
        return answer["data"]


@pytest.fixture(scope="module")
def three_jobs(tmp_path_factory):
    with pytest.MonkeyPatch.context() as env:
        env.setenv("IMAGEFLOW_SENSOR_INTERVAL_S", "1")
        home = tmp_path_factory.mktemp("operator-ui") / "home"
        stack = LocalStack(home, fixed_ports=False).start()
        try:
            for key, value in stack.env.items():
                env.setenv(key, value)
            port = free_port()
            stack.spawn(dg_dev_command(home, port))
            assert wait_for_http(f"http://127.0.0.1:{port}/server_info", 180), "dg dev did not come up"
            openai = OpenAIServerControl(stack.env["OPENAI_BASE_URL"])
            openai.add_fault(endpoint="images", match=FAILING_IMAGE, fault="500")  # every time: outlives retries
            db = build_resources(Settings.from_env())["dynamodb"]
            workflows = {
                "completed": single_image_workflow("Create 1 brand image."),
                "failed": single_image_workflow("Create 2 brand images."),
                "moderation": single_image_workflow("Create 3 brand images. [[image2:img-fault:moderation]]"),
            }
            jobs = {name: submit_job(db, workflow=w, answers={"name": "Ada"}).job_id for name, w in workflows.items()}
            ui = ThreeJobs(f"http://127.0.0.1:{port}", jobs, openai, db)
            expected = {"completed": "completed", "failed": "failed", "moderation": "completed"}
            wait_until(lambda: {name: ui.status(name) for name in jobs} == expected, 240, "the three jobs to end")
            yield ui
        finally:
            stack.stop()


PARTITION_STATUSES = """query($path: [String!]!) { assetNodeOrError(assetKey: {path: $path}) { ... on AssetNode {
  assetPartitionStatuses { ... on DefaultPartitionStatuses { materializedPartitions failedPartitions } } } } }"""
CHECK_EXECUTIONS = """query($path: [String!]!, $check: String!) {
  assetCheckExecutions(assetKey: {path: $path}, checkName: $check, limit: 20) { partition evaluation { success } } }"""


def test_graphql_partition_statuses_and_per_job_checks(three_jobs):
    jobs = three_jobs.jobs

    def statuses(asset: str) -> tuple[set, set]:
        node = three_jobs.graphql(PARTITION_STATUSES, path=[asset])["assetNodeOrError"]["assetPartitionStatuses"]
        return set(node["materializedPartitions"]), set(node["failedPartitions"])

    assert statuses("execution_steps") == ({jobs["completed"], jobs["moderation"]}, {jobs["failed"]})
    assert statuses("generated_images") == ({jobs["completed"], jobs["moderation"]}, {jobs["failed"]})
    assert statuses("s3_objects") == (set(jobs.values()), set())  # what the failed job made is recorded

    def check_results(asset: str, check: str) -> dict[str, bool]:
        executions = three_jobs.graphql(CHECK_EXECUTIONS, path=[asset], check=check)["assetCheckExecutions"]
        return {e["partition"]: e["evaluation"]["success"] for e in executions}

    assert check_results("s3_objects", "every_planned_image_stored") == {
        jobs["completed"]: True,
        jobs["moderation"]: True,  # the blocked image is reported, not failed
        jobs["failed"]: False,  # its second image is missing from S3
    }
    assert check_results("execution_steps", "every_workflow_step_recorded") == dict.fromkeys(jobs.values(), True)


LAUNCH = """mutation($params: ExecutionParams!) { launchRun(executionParams: $params) { __typename
  ... on RunConfigValidationInvalid { errors { message } } ... on LaunchRunSuccess { run { runId } } } }"""
REPOSITORIES = """{ repositoriesOrError { ... on RepositoryConnection { nodes { name location { name } } } } }"""
RUNS_OF = """query($value: String!) { runsOrError(filter: {tags: [{key: "dagster/partition", value: $value}]}) {
  ... on Runs { results { runId } } } }"""


def test_launchpad_run_config_cannot_send_the_key_elsewhere(three_jobs):
    """What anyone who can open the Launchpad can send: run config pointing the OpenAI client at their own listener
    with another environment variable as the key, for a real job with replays off. The launch is refused, no run
    starts, and the listener hears nothing."""
    heard: list[str] = []
    listener = _listener(heard)
    job = three_jobs.jobs["completed"]
    [repository] = three_jobs.graphql(REPOSITORIES)["repositoriesOrError"]["nodes"]
    runs_before = three_jobs.graphql(RUNS_OF, value=job)["runsOrError"]["results"]
    run_config = {
        "ops": {"process_job": {"config": {"replay_answers": False}}},
        "resources": {"openai": {"config": {
            "base_url": f"http://127.0.0.1:{listener.server_port}/v1", "api_key": {"env": "AWS_SECRET_ACCESS_KEY"},
        }}},
    }
    params = {
        "selector": {"repositoryLocationName": repository["location"]["name"], "repositoryName": repository["name"],
                     "jobName": "image_generation_job"},
        "runConfigData": run_config,
        "executionMetadata": {"tags": [{"key": "dagster/partition", "value": job}]},
    }
    try:
        launched = three_jobs.graphql(LAUNCH, params=params)["launchRun"]
    finally:
        listener.shutdown()
    assert launched["__typename"] == "RunConfigValidationInvalid", launched
    assert any("resources:openai:config" in e["message"] for e in launched["errors"]), launched["errors"]
    assert three_jobs.graphql(RUNS_OF, value=job)["runsOrError"]["results"] == runs_before
    assert heard == []


def _listener(heard: list[str]) -> http.server.ThreadingHTTPServer:
    """A loopback HTTP server that records every request line it is sent (the would-be attacker's host)."""

    class Record(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's naming)
            heard.append(f"{self.command} {self.path} {self.headers.get('Authorization')}")
            self.send_response(500)
            self.end_headers()

        do_GET = do_POST  # noqa: N815

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Record)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_asset_graph_shows_the_six_assets(three_jobs, page):
    # The group's own page: the global lineage collapses groups now that `openai_spend` has a group of its own.
    page.goto(f"{three_jobs.url}/locations/imageflow/asset-groups/imageflow/lineage", wait_until="networkidle")
    _dismiss_community_dialog(page)
    for name in ASSETS:
        page.get_by_text(name, exact=True).first.wait_for(timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "asset-graph.png"))


def test_failed_filter_lists_exactly_the_failed_job(three_jobs, page):
    page.goto(f"{three_jobs.url}/assets/execution_steps?view=partitions", wait_until="networkidle")
    _dismiss_community_dialog(page)
    for status in ("Materialized", "Materializing", "Missing"):
        page.get_by_text(status, exact=False).filter(has_text="(").first.click()
    page.get_by_text("1 Partition").first.wait_for(timeout=15_000)
    listed = {name: page.get_by_text(job_id, exact=True).count() for name, job_id in three_jobs.jobs.items()}
    page.screenshot(path=str(ARTIFACTS / "failed-filter.png"))
    assert listed["failed"] > 0 and listed["completed"] == 0 and listed["moderation"] == 0


def test_lineage_table_shows_full_prompts_and_thumbnails_that_load(three_jobs, page):
    job = three_jobs.jobs["moderation"]
    [prompt] = [r["prompt"] for r in three_jobs.openai.requests("images") if "image 1 of 3" in r["prompt"]]
    page.goto(f"{three_jobs.url}/assets/s3_objects?view=partitions&partition={job}", wait_until="networkidle")
    _dismiss_community_dialog(page)
    lineage = page.locator("tr", has_text="Show schema").first
    lineage.wait_for(timeout=30_000)
    cells = lineage.locator("td").all_inner_texts()
    assert " ".join(prompt.split()) in {" ".join(cell.split()) for cell in cells}  # the whole prompt, not cut
    assert sum(" ".join(c.split()) == "blocked" for c in cells) == 1  # the moderation-blocked image has its row
    page.screenshot(path=str(ARTIFACTS / "lineage-table.png"))

    thumbnails = page.locator("img[src*='/thumbnails/']")
    thumbnails.first.scroll_into_view_if_needed(timeout=30_000)
    page.wait_for_function("() => Array.from(document.querySelectorAll(\"img[src*='/thumbnails/']\")).every(i => i.complete)")
    sizes = page.evaluate(
        "() => Array.from(document.querySelectorAll(\"img[src*='/jobs/']\"))"
        ".map(i => [i.src, i.naturalWidth, i.naturalHeight, i.getBoundingClientRect().width])"
    )
    page.screenshot(path=str(ARTIFACTS / "lineage-thumbnails.png"))
    assert len(sizes) == 2  # images 1 and 3; image 2 was blocked
    for src, width, height, shown in sizes:
        assert "/thumbnails/" in src and 0 < width <= 256 and 0 < height <= 256 and shown <= 256, src


def test_rerun_from_the_partition_page_in_two_clicks_completes_the_job(three_jobs, page):
    failed = three_jobs.jobs["failed"]
    three_jobs.openai.clear_faults()  # the outage is over
    page.goto(f"{three_jobs.url}/assets/execution_steps?view=partitions&partition={failed}", wait_until="networkidle")
    _dismiss_community_dialog(page)
    banner = page.get_by_text("failed, and did not materialize this asset")
    page.screenshot(path=str(ARTIFACTS / "rerun-1-failed-partition.png"))
    banner.locator("a").first.click()  # click 1: the failed run
    page.get_by_role("button", name="Re-execute all (*)").click()  # click 2
    page.wait_for_url(lambda url: "/runs/" in url, timeout=15_000)
    wait_until(lambda: three_jobs.status("failed") == "completed", 180, "the rerun to complete the job")
    images = [
        a for a in _artifacts(three_jobs.db, failed) if a["artifact_type"] == "image"
    ]
    assert len(images) == 2 and any("_image_2_" in a["s3_key"] for a in images)
    page.goto(f"{three_jobs.url}/assets/execution_steps?view=partitions&partition={failed}", wait_until="networkidle")
    page.get_by_text("openai.job_cost_usd").first.wait_for(timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "rerun-2-completed.png"))
    assert page.get_by_text("failed, and did not materialize this asset").count() == 0


def _dismiss_community_dialog(page, timeout_ms: int = 5_000) -> None:
    """Dagster shows a "Join the community" dialog on a first visit; it may open a moment after load."""
    from playwright.sync_api import TimeoutError as NoDialog

    try:
        page.get_by_role("button", name="Skip").click(timeout=timeout_ms)
    except NoDialog:  # none this time (already dismissed in this browser)
        pass


def _artifacts(db: DynamoDBResource, job_id: str) -> list[dict]:
    rows, _ = db.query_index(db.artifacts_table, "gsi_job_id", "#j = :j", {"#j": "job_id"}, {":j": job_id}, limit=100)
    return rows


@pytest.fixture
def page():
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser.new_page(viewport={"width": 1400, "height": 1000})
        browser.close()
