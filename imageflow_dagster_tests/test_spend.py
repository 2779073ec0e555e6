"""OpenAI spend per day, tenant and model: real runs write the usage rows; `openai_spend` (materialized with
real resources, the S3 IO manager included) and `imageflow spend` read them back; the tally on its own."""

import json
from datetime import datetime, timedelta, timezone

import dagster as dg
import pytest

from imageflow_dagster.assets.openai_spend import MAX_TABLE_ROWS, openai_spend, openai_spend_schedule, spend_metadata
from imageflow_dagster.cli import main
from imageflow_dagster.definitions import defs
from imageflow_dagster.flow.spend import day_spend, period_spend, report_lines, spend_by_day, utc_today
from imageflow_dagster.resources import s3_io_manager
from imageflow_dagster.resources.dynamodb import deserialize_item
from imageflow_dagster_tests.conftest import asset_metadata
from imageflow_dagster_tests.workflows import single_image_workflow, text_step

TEXT_ONLY = {"workflow_name": "Text", "steps": [text_step("Research", "Research the company.", 0)]}
YESTERDAY_ROW = {
    "usage_id": "usage_yesterday", "tenant_id": "tenant_a", "job_id": "job_old", "service_type": "openai_text",
    "model": "gpt-5.2", "input_tokens": 10, "output_tokens": 5, "cost_usd": 0.5,
}


def row(tenant: str, model: str, cost: float, day: str = "2026-01-02", job: str = "job_1") -> dict:
    return {"tenant_id": tenant, "model": model, "cost_usd": cost, "created_at": f"{day}T10:00:00.000Z",
            "job_id": job, "input_tokens": 1, "output_tokens": 2}


# ---- real runs, the asset and the CLI
def run_jobs_of_two_tenants(pipeline) -> str:
    """An image job and a text job of tenant_a, a text job of tenant_b, run for real; a row of yesterday's,
    written by hand, must stay out of today's partition. Returns today (UTC)."""
    for tenant, workflow in (("tenant_a", single_image_workflow("Create 1 image.")), ("tenant_a", TEXT_ONLY),
                             ("tenant_b", TEXT_ONLY)):
        job = pipeline.submit(workflow, tenant_id=tenant)
        assert pipeline.run(job.job_id).success
    yesterday = (datetime.now(timezone.utc) - timedelta(days=1)).strftime("%Y-%m-%dT23:59:59.999Z")
    pipeline.db.put_item(pipeline.db.usage_records_table, {**YESTERDAY_ROW, "created_at": yesterday})
    return utc_today()


def usage_rows(db, day: str) -> list[dict]:
    """The day's usage rows as the test reads them: the whole table, filtered here."""
    items, kwargs = [], {"TableName": db.usage_records_table}
    while True:
        page = db.get_client().scan(**kwargs)
        items += [deserialize_item(i) for i in page["Items"]]
        if "LastEvaluatedKey" not in page:
            return [r for r in items if r["created_at"].startswith(day)]
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def expected_by(rows: list[dict], key: str) -> dict[str, float]:
    sums: dict[str, float] = {}
    for r in rows:
        sums[r[key]] = sums.get(r[key], 0.0) + float(r["cost_usd"])
    return sums


def test_openai_spend_and_imageflow_spend_add_up_the_usage_rows_of_real_runs(pipeline, settings, capsys):
    """One set of runs for both readers (runs are the slow part)."""
    today = run_jobs_of_two_tenants(pipeline)
    rows = usage_rows(pipeline.db, today)
    assert {r["tenant_id"] for r in rows} == {"tenant_a", "tenant_b"} and len({r["model"] for r in rows}) >= 2
    resources = {"dynamodb": pipeline.db, "io_manager": s3_io_manager(settings)}  # as deployed (S3)
    result = dg.materialize([openai_spend], partition_key=today, resources=resources, instance=pipeline.instance)
    metadata = asset_metadata(result, "openai_spend")
    check_the_asset(metadata, rows)
    check_the_cli(today, rows, metadata, capsys)


def check_the_asset(metadata: dict, rows: list[dict]) -> None:
    by_tenant = {r.data["tenant_id"]: r.data for r in metadata["cost_by_tenant"].records}
    assert by_tenant.keys() == {"tenant_a", "tenant_b"}
    for tenant, cost in expected_by(rows, "tenant_id").items():
        assert by_tenant[tenant]["cost_usd"] == pytest.approx(cost, abs=1e-6)
        assert by_tenant[tenant]["usage_rows"] == sum(r["tenant_id"] == tenant for r in rows)
        assert by_tenant[tenant]["jobs"] == len({r["job_id"] for r in rows if r["tenant_id"] == tenant})
    by_model = {r.data["model"]: r.data["cost_usd"] for r in metadata["cost_by_model"].records}
    assert by_model == pytest.approx(expected_by(rows, "model"), abs=1e-6)
    total = sum(float(r["cost_usd"]) for r in rows)
    assert total > 0 and metadata["total_cost_usd"].value == pytest.approx(total, abs=1e-6)
    assert metadata["usage_rows"].value == len(rows)


def check_the_cli(today: str, rows: list[dict], metadata: dict, capsys) -> None:
    tenants = {r.data["tenant_id"]: r.data["cost_usd"] for r in metadata["cost_by_tenant"].records}
    assert main(["spend", "--since", today, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    [day] = report["days"]  # yesterday's row is before --since
    assert day["day"] == today and day["cost_usd"] == metadata["total_cost_usd"].value
    assert {t: v["cost_usd"] for t, v in day["tenants"].items()} == tenants
    assert report["total"]["cost_usd"] == day["cost_usd"]

    assert main(["spend", "--since", today]) == 0
    text = capsys.readouterr().out
    assert f"{today}: ${day['cost_usd']:.6f}" in text and "tenant tenant_b" in text

    since = (datetime.fromisoformat(today) - timedelta(days=1)).date().isoformat()
    assert main(["spend", "--since", since, "--tenant", "tenant_a", "--json"]) == 0
    only_a = json.loads(capsys.readouterr().out)
    assert [d["day"] for d in only_a["days"]] == [since, today]  # from the tenant/date index, both days
    assert set(only_a["total"]["tenants"]) == {"tenant_a"}
    assert only_a["days"][1]["cost_usd"] == tenants["tenant_a"]
    assert only_a["total"]["cost_usd"] == pytest.approx(tenants["tenant_a"] + 0.5, abs=1e-6)


def test_spend_of_a_day_without_usage_is_zero(pipeline, capsys):
    result = dg.materialize([openai_spend], partition_key="2025-06-01", resources={"dynamodb": pipeline.db},
                            instance=pipeline.instance)
    metadata = asset_metadata(result, "openai_spend")
    assert metadata["total_cost_usd"].value == 0.0 and metadata["cost_by_tenant"].records == []
    assert main(["spend", "--since", "2025-06-01", "--tenant", "nobody"]) == 0
    assert "no usage rows" in capsys.readouterr().out
    assert main(["spend", "--since", "2999-01-01"]) == 2


# ---- definitions: apart from the per-job runs, scheduled for yesterday
def test_openai_spend_is_not_part_of_a_jobs_run_and_runs_yesterday_after_midnight():
    job = defs.resolve_job_def("image_generation_job")
    assert dg.AssetKey("openai_spend") not in job.asset_layer.asset_graph.get_all_asset_keys()
    assert defs.resolve_job_def("openai_spend_job")
    context = dg.build_schedule_context(
        scheduled_execution_time=datetime(2026, 3, 1, 0, 15, tzinfo=timezone.utc), repository_def=defs.get_repository_def()
    )
    [request] = openai_spend_schedule.evaluate_tick(context).run_requests
    assert request.partition_key == "2026-02-28"


# ---- the tally on its own
def test_rows_add_up_per_day_tenant_and_model():
    rows = [row("a", "m1", 0.1), row("a", "m2", 0.2, job="job_2"), row("b", "m1", 0.3),
            row("a", "m1", 1.0, day="2026-01-03")]
    first, second = spend_by_day(rows)
    assert (first.day, first.total.cost_usd, second.total.cost_usd) == ("2026-01-02", 0.6, 1.0)
    assert first.tenants["a"].cost_usd == pytest.approx(0.3) and len(first.tenants["a"].jobs) == 2
    assert first.models["m1"].cost_usd == pytest.approx(0.4) and first.models["m1"].usage_rows == 2
    period = period_spend([first, second], "total")
    assert period.total.cost_usd == pytest.approx(1.6) and period.tenants["a"].cost_usd == pytest.approx(1.3)
    assert day_spend(rows, "2026-01-04").total.usage_rows == 0
    lines = report_lines([first, second], period)
    assert lines[0] == "2026-01-02: $0.600000 (2 job(s), 3 usage row(s))"
    assert lines[1].split()[:3] == ["tenant", "a", "$0.300000"]  # the costliest first


def test_the_metadata_tables_keep_the_costliest_and_sum_the_others():
    rows = [row(f"t{i:03d}", "m", 1.0 + i) for i in range(MAX_TABLE_ROWS + 2)]
    metadata = spend_metadata(day_spend(rows, "2026-01-02"))
    records = [r.data for r in metadata["cost_by_tenant"].records]
    assert len(records) == MAX_TABLE_ROWS + 1 and records[0]["tenant_id"] == f"t{MAX_TABLE_ROWS + 1:03d}"
    assert records[-1] == {**records[-1], "tenant_id": "(2 others)", "cost_usd": 3.0, "usage_rows": 2}
    assert metadata["total_cost_usd"].value == pytest.approx(sum(r["cost_usd"] for r in rows))
