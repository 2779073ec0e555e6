"""deploy/iam-policy.json is sufficient and minimal for the AWS calls the product really makes.

One test drives the product's paths in-process against moto, recording every AWS call (aws_calls.py): text
and image steps, a tenant's planner override read from the seed's user settings and the job's notification
created once (a rerun's second try refused), a webhook step, a handoff step, a failing job and its run-failure
sensor, a step rerun under a configured rate budget, sensor ticks on the status index and by Scan, a day's
`openai_spend` reading the usage rows by Scan, the retention
job storing its result through the S3 IO manager and deleting the runs' compute logs, and Dagster's S3 compute
log manager (uploaded by every run here, read back as the webserver does). Each product call must be allowed by the policy, and each grant of the policy must be needed
by some call. The recorder, the evaluator and the call-to-IAM mapping are pinned by small tests at the end.
"""

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.events import DagsterEventType

from imageflow_dagster.assets.openai_spend import openai_spend
from imageflow_dagster.definitions import defs
from imageflow_dagster.flow.loading import load_job_inputs
from imageflow_dagster.flow.spend import utc_today
from imageflow_dagster.ids import iso_from_epoch
from imageflow_dagster.partitions import jobs_partitions
from imageflow_dagster.resources import s3_io_manager
from imageflow_dagster.resources.dynamodb import deserialize_item
from imageflow_dagster.retention import partition_retention_job
from imageflow_dagster_tests.aws_calls import PRODUCT, SETUP, UNKNOWN, AwsCall, recording
from imageflow_dagster_tests.conftest import Pipeline, sense_run_failure, with_changes
from imageflow_dagster_tests.iam_policy import Policy, UnsupportedPolicy, unneeded_grants
from imageflow_dagster_tests.iam_requests import IamRequest, UnmappedCall, iam_requests
from imageflow_dagster_tests.settings_now import settings_now
from imageflow_dagster_tests.side_tables import (
    create_notifications_table,
    create_user_settings_table,
    set_planner_override,
)
from imageflow_dagster_tests.workflows import mixed_workflow, single_image_workflow, text_step

POLICY_FILE = Path(__file__).resolve().parent.parent / "deploy" / "iam-policy.json"
REGION, ACCOUNT = "us-east-1", "123456789012"
COMPUTE_LOG_PREFIX = ".imageflow/dagster-compute-logs"  # deploy/dagster.yaml's
RERUN_STEP_1 = {"ops": {"process_job": {"config": {"rerun_steps": [1]}}}}
RERUN_STEP_2 = {"ops": {"process_job": {"config": {"rerun_steps": [2]}}}}
TARGET = {"workflow_name": "Follow-up", "steps": [text_step("Follow Up", "Write a follow-up from the input.", 0)]}


# ---- the scenarios
@pytest.fixture
def logged_pipeline(resources, db, settings, tmp_path) -> Iterator[Pipeline]:
    """The conftest pipeline on an instance whose compute logs go to S3, as deploy/dagster.yaml configures."""
    compute_logs = {
        "module": "dagster_aws.s3.compute_log_manager",
        "class": "S3ComputeLogManager",
        "config": {"bucket": settings.bucket, "prefix": COMPUTE_LOG_PREFIX, "local_dir": str(tmp_path)},
    }
    with dg.instance_for_test(overrides={"compute_logs": compute_logs}) as instance:
        yield Pipeline(instance, resources, db)


@contextmanager
def webhook_receiver() -> Iterator[str]:
    """A local HTTP endpoint answering 200 to anything; yields its URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()


def run_images_then_rerun_under_a_rate_limit(pipeline: Pipeline) -> None:
    """Text and image steps; then step 2 again with a configured images budget (the budget's UpdateItem)."""
    job = pipeline.submit(mixed_workflow())
    assert pipeline.run(job.job_id).success
    openai = pipeline.resources["openai"]
    budget = with_changes(openai.budget, images_per_minute=600)
    limited = {**pipeline.resources, "openai": with_changes(openai, budget=budget)}
    again = Pipeline(pipeline.instance, limited, pipeline.db).run(job.job_id, run_config=RERUN_STEP_2)
    assert again.success
    read_compute_logs_as_the_webserver_does(pipeline.instance, again)


def run_a_tenant_override_then_notify_twice(pipeline: Pipeline) -> None:
    """With the seed's user-settings and notifications tables: the tenant's planner override is read, the job's
    notification created, and a rerun's second, create-only try refused by its condition."""
    create_user_settings_table(pipeline.db)
    create_notifications_table(pipeline.db)
    job = pipeline.submit(single_image_workflow("Create 1 image."), tenant_id="tenant_with_settings")
    set_planner_override(pipeline.db, job.tenant_id, {"instructions": "Plan one image as JSON."})
    assert pipeline.run(job.job_id).success
    assert pipeline.run(job.job_id, run_config=RERUN_STEP_1).success


def run_webhook_then_handoff(pipeline: Pipeline, monkeypatch) -> str:
    """Research, a webhook to a local receiver, a handoff; returns the target job the handoff created."""
    monkeypatch.setenv("IMAGEFLOW_WEBHOOK_ALLOWED_HOSTS", "127.0.0.1")
    pipeline.resources["settings"] = settings_now()
    target = pipeline.submit(TARGET, status="completed")  # for its form and workflow rows
    target_id = target.workflow_id
    with webhook_receiver() as url:
        notify = {"step_name": "Notify CRM", "step_order": 1, "instructions": "", "webhook_url": url}
        hand_off = {"step_name": "Pass on", "step_order": 2, "instructions": "", "handoff_workflow_id": target_id}
        research = text_step("Research", "Research the company.", 0)
        job = pipeline.submit({"workflow_name": "Qualify", "steps": [research, notify, hand_off]})
        assert pipeline.run(job.job_id).success
    handed_to = [r for r in _jobs(pipeline) if r["workflow_id"] == target_id and r["job_id"] != target.job_id]
    assert len(handed_to) == 1, "the handoff step started no target job"
    return handed_to[0]["job_id"]


def run_failing_job_and_its_failure_sensor(pipeline: Pipeline) -> None:
    job = pipeline.submit(single_image_workflow("Create 2 images. [[resp-fault:500]]"))
    result = pipeline.run(job.job_id)
    assert not result.success and pipeline.job(job.job_id)["status"] == "failed"
    sense_run_failure(pipeline, result)


def tick_sensor_on_index_then_by_scan(pipeline: Pipeline, waiting_job: str, monkeypatch) -> None:
    def tick() -> list[str]:
        context = dg.build_sensor_context(
            instance=pipeline.instance, instance_ref=pipeline.instance.get_ref(), definitions=defs,
            resources={"dynamodb": pipeline.db, "settings": settings_now()},
        )
        requests = defs.resolve_sensor_def("processing_jobs_sensor").evaluate_tick(context).run_requests
        return [r.partition_key for r in requests]

    assert tick() == [waiting_job]
    pipeline.db.update_item(pipeline.db.jobs_table, {"job_id": waiting_job}, remove=["imageflow_claim_id"])
    monkeypatch.setenv("IMAGEFLOW_JOBS_STATUS_INDEX", "")  # set but empty: the table has no status index
    assert tick() == [waiting_job]


def run_retention_with_the_s3_io_manager(pipeline: Pipeline, settings, monkeypatch) -> None:
    """The retention ops return values, which IMAGEFLOW_IO_MANAGER=s3 stores in the bucket (the asset job's
    outputs are all Nothing: its runs never reach the IO manager); with no run retention, the runs above are
    deleted with their compute logs in S3."""
    monkeypatch.setenv("IMAGEFLOW_RUN_RETENTION_DAYS", "0")
    job = pipeline.submit(single_image_workflow("Create 1 image."), status="completed")
    ended_long_ago = {"completed_at": iso_from_epoch(time.time() - 40 * 86400)}
    pipeline.db.update_item(pipeline.db.jobs_table, {"job_id": job.job_id}, set_values=ended_long_ago)
    pipeline.instance.add_dynamic_partitions(jobs_partitions.name, [job.job_id])
    resources = {"dynamodb": pipeline.db, "io_manager": s3_io_manager(settings), "settings": settings_now()}
    result = partition_retention_job.execute_in_process(instance=pipeline.instance, resources=resources)
    assert result.output_for_node("remove_ended_job_partitions") >= 1
    assert result.output_for_node("delete_ended_job_runs") >= 1


def materialize_todays_spend(pipeline: Pipeline, settings) -> None:
    """`openai_spend` reads the day's usage rows (written by the runs above) by Scan; it stores no value."""
    resources = {"dynamodb": pipeline.db, "io_manager": s3_io_manager(settings)}
    result = dg.materialize([openai_spend], partition_key=utc_today(), resources=resources, instance=pipeline.instance)
    assert result.success


def read_compute_logs_as_the_webserver_does(instance: dg.DagsterInstance, result) -> None:
    events = result.all_events
    [captured] = [e.logs_captured_data for e in events if e.event_type == DagsterEventType.LOGS_CAPTURED]
    log_key = instance.compute_log_manager.build_log_key_for_run(result.run_id, captured.file_key)
    instance.compute_log_manager.get_log_metadata(log_key)
    assert instance.compute_log_manager.get_log_data(log_key) is not None


def _jobs(pipeline: Pipeline) -> list[dict]:
    items = pipeline.db.get_client().scan(TableName=pipeline.db.jobs_table)["Items"]
    return [deserialize_item(item) for item in items]


@pytest.fixture
def product_calls(logged_pipeline, settings, monkeypatch) -> list[AwsCall]:
    with recording() as recorder:
        run_images_then_rerun_under_a_rate_limit(logged_pipeline)
        run_a_tenant_override_then_notify_twice(logged_pipeline)
        target_job = run_webhook_then_handoff(logged_pipeline, monkeypatch)
        run_failing_job_and_its_failure_sensor(logged_pipeline)
        tick_sensor_on_index_then_by_scan(logged_pipeline, target_job, monkeypatch)
        materialize_todays_spend(logged_pipeline, settings)
        run_retention_with_the_s3_io_manager(logged_pipeline, settings, monkeypatch)
    assert recorder.of(UNKNOWN) == [], "calls of unknown origin: teach aws_calls.py whose they are"
    assert recorder.of(SETUP), "the scenarios' own setup calls were not told apart"
    return recorder.of(PRODUCT)


# ---- the policy against them
def test_the_policy_allows_every_product_call_and_grants_nothing_unused(product_calls):
    policy = Policy.load(POLICY_FILE, REGION, ACCOUNT)
    requests, unmapped = [], []
    for call in product_calls:
        try:
            requests.extend(iam_requests(call, REGION, ACCOUNT))
        except UnmappedCall as exc:
            unmapped.append(str(exc))
    unique = list(dict.fromkeys(requests))
    denied = [r.describe() for r in unique if not policy.allows(r)]
    unneeded = unneeded_grants(policy, unique)
    summary = f"{len(product_calls)} product calls, {len(unique)} distinct IAM requests"
    assert not unmapped, f"{summary}; calls without an IAM mapping:\n" + "\n".join(sorted(set(unmapped)))
    assert not denied, f"{summary}; denied by {POLICY_FILE.name}:\n" + "\n".join(sorted(denied))
    assert not unneeded, f"{summary}; granted but needed by no call:\n" + "\n".join(unneeded)


# ---- the evaluator and the mapping on their own
def allow(action, resource, **extra) -> dict:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def request(action: str, resource: str, **context) -> IamRequest:
    values = tuple(sorted((k.replace("__", ":"), tuple(v)) for k, v in context.items()))
    return IamRequest(action, resource, values, frozenset({"dynamodb:Attributes", "s3:prefix"}))


def test_globs_match_actions_without_case_and_arns_with_it():
    policy = Policy.parse({"Statement": [allow("S3:Get*", "arn:aws:s3:::b/*/jobs/?.png")]})
    assert policy.allows(request("s3:GetObject", "arn:aws:s3:::b/t/x/jobs/1.png"))  # `*` spans slashes
    assert not policy.allows(request("s3:GetObject", "arn:aws:s3:::b/t/jobs/12.png"))  # `?` is one character
    assert not policy.allows(request("s3:GetObject", "arn:aws:s3:::B/t/jobs/1.png"))
    assert not policy.allows(request("s3:PutObject", "arn:aws:s3:::b/t/jobs/1.png"))


def test_an_explicit_deny_wins_and_not_action_not_resource_invert():
    statements = [
        allow("s3:*", "arn:aws:s3:::b/*"),
        {"Effect": "Deny", "NotAction": "s3:GetObject", "NotResource": "arn:aws:s3:::b/public/*"},
    ]
    policy = Policy.parse({"Statement": statements})
    assert policy.allows(request("s3:GetObject", "arn:aws:s3:::b/secret"))
    assert policy.allows(request("s3:PutObject", "arn:aws:s3:::b/public/a"))
    assert not policy.allows(request("s3:PutObject", "arn:aws:s3:::b/secret"))


def test_for_all_values_allows_listed_attributes_and_an_absent_key_as_aws_does():
    names = {"ForAllValues:StringEquals": {"dynamodb:Attributes": ["job_id", "status"]}}
    policy = Policy.parse({"Statement": [allow("dynamodb:PutItem", "arn:t", Condition=names)]})
    assert policy.allows(request("dynamodb:PutItem", "arn:t", dynamodb__Attributes=["job_id"]))
    assert not policy.allows(request("dynamodb:PutItem", "arn:t", dynamodb__Attributes=["job_id", "cost"]))
    assert policy.allows(request("dynamodb:PutItem", "arn:t"))


def test_unknown_operators_and_keys_not_computed_stop_the_evaluation():
    with pytest.raises(UnsupportedPolicy, match="NumericLessThan"):
        Policy.parse({"Statement": [allow("s3:*", "*", Condition={"NumericLessThan": {"s3:max-keys": "9"}})]})
    source_ip = {"StringEquals": {"aws:SourceIp": "1.2.3.4"}}
    policy = Policy.parse({"Statement": [allow("s3:*", "*", Condition=source_ip)]})
    with pytest.raises(UnsupportedPolicy, match="aws:SourceIp"):
        policy.allows(request("s3:GetObject", "arn:aws:s3:::b/k"))


def test_unneeded_grants_names_unused_actions_resources_and_statements():
    policy = Policy.parse({"Statement": [
        allow(["s3:GetObject", "s3:DeleteObject"], ["arn:aws:s3:::b/j/*", "arn:aws:s3:::b/l/*"], Sid="Used"),
        allow("dynamodb:Scan", "arn:t", Sid="Unused"),
    ]})
    found = unneeded_grants(policy, [request("s3:GetObject", "arn:aws:s3:::b/j/1")])
    assert found == [
        "Used: Action s3:DeleteObject", "Used: Resource arn:aws:s3:::b/l/*", "Unused: the whole statement"
    ]


def test_calls_map_to_the_actions_and_resources_aws_authorizes():
    def mapped(service: str, operation: str, error_code: str = "", **params) -> list[str]:
        requests = iam_requests(AwsCall(service, operation, params, PRODUCT, error_code), "r", "1")
        return [f"{r.action} {r.resource.split(':::')[-1].split(':table/')[-1]}" for r in requests]

    assert mapped("s3", "HeadObject", "404", Bucket="b", Key="k") == ["s3:GetObject b/k", "s3:ListBucket b"]
    assert mapped("s3", "CopyObject", Bucket="b", Key="to", CopySource="a/from") == [
        "s3:GetObject a/from", "s3:PutObject b/to"
    ]
    deleted = mapped("s3", "DeleteObjects", Bucket="b", DeleteKeys=["x", "y"])
    assert deleted == ["s3:DeleteObject b/x", "s3:DeleteObject b/y"]
    assert mapped("dynamodb", "Query", TableName="t", IndexName="i") == ["dynamodb:Query t/index/i"]
    batch = {"t": ["Get"], "u": ["Get"]}
    assert mapped("dynamodb", "BatchGetItem", RequestItems=batch) == [
        "dynamodb:BatchGetItem t", "dynamodb:BatchGetItem u"
    ]
    transaction = [("Put", "t"), ("ConditionCheck", "u")]
    assert mapped("dynamodb", "TransactWriteItems", TransactItems=transaction) == [
        "dynamodb:PutItem t", "dynamodb:ConditionCheckItem u"
    ]
    with pytest.raises(UnmappedCall):
        mapped("s3", "PutBucketPolicy", Bucket="b")


def test_the_recorder_tells_product_calls_from_setup_calls_through_the_same_resource(pipeline, db):
    job = pipeline.submit(single_image_workflow("Create 1 image."))
    with recording() as recorder:
        db.get_item(db.jobs_table, {"job_id": job.job_id})  # a test reading back: setup
        load_job_inputs(db, job.job_id)  # the product loading a job
        # No deciding frame in this thread's own stack: it takes the origin of the code that started it.
        thread = threading.Thread(target=db.get_client().describe_table, kwargs={"TableName": db.jobs_table})
        thread.start()
        thread.join()
    assert [(c.operation, c.params["TableName"]) for c in recorder.of(SETUP)] == [
        ("GetItem", db.jobs_table), ("DescribeTable", db.jobs_table)
    ]
    product_tables = [c.params["TableName"] for c in recorder.of(PRODUCT)]
    assert product_tables == [db.jobs_table, db.workflows_table, db.submissions_table, db.forms_table]
