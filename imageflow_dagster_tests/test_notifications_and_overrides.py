"""The seed's own API and UI see imageflow's jobs as their worker's: the "Lead magnet delivered" notification
row, and a tenant's planner prompt override from the user-settings table (both tables created as the seed's CDK
defines them, side_tables.py)."""

import logging
import re
import time

import pytest

from imageflow_dagster.flow import image_planner
from imageflow_dagster.flow.notifications import notification_id
from imageflow_dagster.flow.prompt_overrides import PLANNER_KEY, UNATTENDED, fill, planner_prompts, with_guardrail
from imageflow_dagster.models import PromptOverride, UserSettings
from imageflow_dagster_tests.conftest import read_json_object
from imageflow_dagster_tests.side_tables import (
    create_notifications_table,
    create_user_settings_table,
    set_planner_override,
)
from imageflow_dagster_tests.workflows import single_image_workflow

RERUN_STEP_1 = {"ops": {"process_job": {"config": {"rerun_steps": [1]}}}}
NINETY_DAYS = 90 * 24 * 60 * 60
SEED_ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")  # datetime.isoformat(timespec=ms) + "Z"
MARK = "OVERRIDE-MARK-7f3a"


@pytest.fixture
def notifications(db) -> str:
    return create_notifications_table(db)


@pytest.fixture
def user_settings(db) -> str:
    return create_user_settings_table(db)


def notification_rows(db, tenant_id: str) -> list[dict]:
    """What the seed's `GET /admin/notifications` reads: the tenant's rows on gsi_tenant_created, raw."""
    page = db.get_client().query(
        TableName=db.notifications_table,
        IndexName="gsi_tenant_created",
        KeyConditionExpression="tenant_id = :t",
        ExpressionAttributeValues={":t": {"S": tenant_id}},
    )
    return page["Items"]


def warnings_of(pipeline, result) -> list[str]:
    return [e.user_message for e in pipeline.instance.all_logs(result.run_id) if e.level == logging.WARNING]


# ---- notifications
def test_a_completed_job_notifies_in_the_seed_workers_format(pipeline, db, notifications):
    job = pipeline.submit(single_image_workflow("Create 1 image."))
    before = int(time.time())
    assert pipeline.run(job.job_id).success
    [row] = notification_rows(db, job.tenant_id)
    # db_service.py create_notification: these attributes, these DynamoDB types, nothing else.
    assert {name: next(iter(value)) for name, value in row.items()} == {
        "notification_id": "S",
        "tenant_id": "S",
        "type": "S",
        "title": "S",
        "message": "S",
        "read": "BOOL",
        "created_at": "S",
        "ttl": "N",
        "related_resource_id": "S",
        "related_resource_type": "S",
    }
    assert row["notification_id"]["S"] == f"notif_{job.tenant_id}_job_completed_job_{job.job_id}"
    assert notification_id(job.tenant_id, job.job_id) == row["notification_id"]["S"]
    assert row["tenant_id"]["S"] == job.tenant_id
    assert row["type"]["S"] == "job_completed"
    assert row["title"]["S"] == "Lead magnet delivered"
    assert row["message"]["S"] == 'Your lead magnet "One step" has been delivered for ada@example.com.'
    assert row["read"]["BOOL"] is False
    assert SEED_ISO.match(row["created_at"]["S"])
    assert before + NINETY_DAYS <= int(row["ttl"]["N"]) <= int(time.time()) + NINETY_DAYS
    assert (row["related_resource_id"]["S"], row["related_resource_type"]["S"]) == (job.job_id, "job")


def test_a_rerun_neither_adds_a_notification_nor_overwrites_the_read_one(pipeline, db, notifications):
    job = pipeline.submit(single_image_workflow("Create 1 image."))
    assert pipeline.run(job.job_id).success
    key = {"notification_id": notification_id(job.tenant_id, job.job_id)}
    read_at = "2030-01-01T00:00:00.000Z"  # the tenant opened the bell meanwhile (the seed's mark-read)
    db.update_item(notifications, key, set_values={"read": True, "read_at": read_at})
    first = db.get_item(notifications, key)

    again = pipeline.run(job.job_id, run_config=RERUN_STEP_1)
    assert again.success and pipeline.job(job.job_id)["status"] == "completed"
    logged = [e.user_message for e in pipeline.instance.all_logs(again.run_id)]
    assert any("exists already" in m for m in logged)  # the rerun did try, and the condition kept the row
    assert len(notification_rows(db, job.tenant_id)) == 1
    assert db.get_item(notifications, key) == first


def test_a_failed_job_gets_no_notification_as_in_the_seed(pipeline, db, notifications):
    job = pipeline.submit(single_image_workflow("Create 2 images. [[resp-fault:500]]"))
    assert not pipeline.run(job.job_id).success
    assert pipeline.job(job.job_id)["status"] == "failed"
    assert notification_rows(db, job.tenant_id) == []


def test_a_missing_notifications_table_is_a_warning_not_a_failed_job(pipeline, db):
    db.get_client().delete_table(TableName=db.notifications_table)  # a deployment that never created it
    job = pipeline.submit(single_image_workflow("Create 1 image."))
    result = pipeline.run(job.job_id)
    assert result.success
    assert pipeline.job(job.job_id)["status"] == "completed"
    warned = [m for m in warnings_of(pipeline, result) if "notification" in m]
    assert len(warned) == 1 and db.notifications_table in warned[0]


# ---- the tenant's planner override
def planner_calls(openai_server) -> list[dict]:
    return [r for r in openai_server.requests("responses") if r["params"].get("text", {}).get("format")]


def image_step_entry(s3_client, settings, job) -> dict:
    steps = read_json_object(s3_client, settings.bucket, f"{job.tenant_id}/jobs/{job.job_id}/execution_steps.json")
    return next(s for s in steps if s["step_type"] == "ai_generation")


def test_a_tenants_planner_override_reaches_the_planner_and_is_recorded(
    pipeline, db, user_settings, openai_server, s3_client, settings
):
    job = pipeline.submit(single_image_workflow("Create 2 images of the logo."))
    override = {
        "instructions": f"Plan images in the house style {MARK}. Answer with JSON.",
        "prompt": MARK + " for {{ step_name }}: {{step_instructions}}\n{{unknown_name}}\n{{full_context}}",
        "model": "gpt-4o",  # not an overridable field, in the seed or here
    }
    set_planner_override(db, job.tenant_id, override)
    assert pipeline.run(job.job_id).success

    [call] = planner_calls(openai_server)
    sent = call["input"]
    assert sent.startswith(f"{MARK} for Brand Images: Create 2 images of the logo.")
    assert "{{unknown_name}}" in sent  # an unknown placeholder stays as written
    assert "=== Form Submission ===" in sent and "Ada Lovelace" in sent
    assert call["model"] == "gpt-5.2"

    step = image_step_entry(s3_client, settings, job)
    assert step["input"]["prompt_override"] == {
        "setting": "prompt_overrides.image_prompt_planner", "overridden": ["instructions", "prompt"]
    }
    request = step["input"]["planner_request"]
    assert request["input"] == sent
    assert request["instructions"] == UNATTENDED + override["instructions"]
    assert request["model"] == "gpt-5.2"
    assert len(step["image_urls"]) == 2


def test_a_disabled_override_or_none_keeps_imageflows_planner_prompts(
    pipeline, db, user_settings, openai_server, s3_client, settings
):
    job = pipeline.submit(single_image_workflow("Create 1 image."))
    set_planner_override(db, job.tenant_id, {"enabled": False, "prompt": f"{MARK} {{{{full_context}}}}"})
    assert pipeline.run(job.job_id).success
    [call] = planner_calls(openai_server)
    assert MARK not in call["input"] and call["input"].startswith("Step name: Brand Images")
    step = image_step_entry(s3_client, settings, job)
    assert "prompt_override" not in step["input"] and "planner_request" not in step["input"]


def test_no_user_settings_table_plans_with_imageflows_prompts_and_warns(pipeline, db, openai_server):
    db.get_client().delete_table(TableName=db.user_settings_table)  # a deployment that never created it
    job = pipeline.submit(single_image_workflow("Create 1 image."))
    result = pipeline.run(job.job_id)
    assert result.success
    [call] = planner_calls(openai_server)
    assert call["input"].startswith("Step name: Brand Images")
    assert any("settings not read" in m for m in warnings_of(pipeline, result))


# ---- the override's rules on their own (the seed's services/prompt_overrides.py)
def test_overrides_are_read_as_leniently_as_the_seed_reads_them():
    read = UserSettings.model_validate
    assert read({"tenant_id": "t"}).prompt_override(PLANNER_KEY) is None
    assert read({"tenant_id": "t", "prompt_overrides": "junk"}).prompt_override(PLANNER_KEY) is None
    assert read({"tenant_id": "t", "prompt_overrides": {PLANNER_KEY: "junk"}}).prompt_override(PLANNER_KEY) is None
    blank = read({"tenant_id": "t", "prompt_overrides": {PLANNER_KEY: {"instructions": "  ", "prompt": 7}}})
    assert blank.prompt_override(PLANNER_KEY) is None
    odd = PromptOverride.from_raw({"enabled": "no", "instructions": " keep spaces ", "model": "gpt-4o"})
    assert odd == PromptOverride(instructions=" keep spaces ") and odd.active
    assert not PromptOverride.from_raw({"enabled": True}).active
    assert not PromptOverride.from_raw({"enabled": False, "prompt": "x"}).active


def test_placeholders_fill_once_and_only_known_names():
    values = {"step_name": "Logo {{context}}", "context": "C", "previous_context": "", "missing": None}
    assert fill("{{step_name}}|{{ context }}|{{previous_context}}|{{missing}}|{{other}}", values) == (
        "Logo {{context}}|C||{{missing}}|{{other}}"
    )


def test_only_the_tenants_fields_replace_imageflows_and_the_guardrail_leads():
    override = PromptOverride(prompt="Use {{planner_input}} and more")
    defaults = image_planner.planner_instructions(3), "DEFAULT INPUT {{step_name}}"
    prompts = planner_prompts(override, *defaults, {"step_name": "S"})
    assert prompts.instructions == defaults[0]
    assert prompts.input == "Use DEFAULT INPUT {{step_name}} and more"  # imageflow's own text is not filled
    assert prompts.overridden == ("prompt",)
    assert with_guardrail("Plan JSON.") == UNATTENDED + "Plan JSON."
    assert with_guardrail("There is NO USER INTERACTION. Plan JSON.") == "There is NO USER INTERACTION. Plan JSON."
