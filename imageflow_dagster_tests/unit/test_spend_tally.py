"""flow/spend.py without DynamoDB: usage rows added up per UTC day, tenant and model, and the report's
lines."""

from decimal import Decimal

import pytest

from imageflow_dagster.flow.spend import Tally, day_spend, parse_day, period_spend, report_lines, spend_by_day

ROWS = [
    {
        "created_at": "2026-01-02T10:00:00.000Z",
        "tenant_id": "t1",
        "model": "gpt-5",
        "cost_usd": 0.1,
        "job_id": "j1",
        "input_tokens": 5,
        "output_tokens": 1,
    },
    {
        "created_at": "2026-01-02T11:00:00.000Z",
        "tenant_id": "t2",
        "model": "gpt-5",
        "cost_usd": 0.2,
        "job_id": "j2",
    },
    {
        "created_at": "2026-01-01T23:59:59.999Z",
        "tenant_id": "t1",
        "model": "gpt-image-1",
        "cost_usd": 0.3,
        "job_id": "j1",
    },
]


def test_costs_add_up_as_decimals_without_float_drift():
    tally = Tally()
    for cost in (0.1, 0.2, Decimal("0.000001"), None):
        tally.add({"cost_usd": cost})
    assert tally.cost == Decimal("0.300001") and tally.usage_rows == 4


def test_rows_are_grouped_by_utc_day_oldest_first_with_tenants_by_cost():
    first, second = spend_by_day(ROWS)
    assert (first.day, first.total.cost_usd) == ("2026-01-01", 0.3)
    assert second.as_dict()["cost_usd"] == 0.3 and second.as_dict()["jobs"] == 2
    assert list(second.as_dict()["tenants"]) == ["t2", "t1"]  # largest cost first
    assert second.as_dict()["tenants"]["t1"] == {
        "cost_usd": 0.1,
        "usage_rows": 1,
        "jobs": 1,
        "input_tokens": 5,
        "output_tokens": 1,
    }


def test_a_period_adds_its_days_and_counts_each_job_once():
    period = period_spend(spend_by_day(ROWS), "2026-01-01..2026-01-02")
    assert (
        period.as_dict()["cost_usd"] == 0.6 and period.as_dict()["jobs"] == 2 and period.total.usage_rows == 3
    )
    assert period.as_dict()["tenants"]["t1"]["cost_usd"] == 0.4


def test_the_report_prints_each_day_then_the_period():
    days = spend_by_day(ROWS)
    lines = report_lines(days, period_spend(days, "total"))
    assert lines[0] == "2026-01-01: $0.300000 (1 job(s), 1 usage row(s))"
    assert lines[1] == "  tenant t1                               $0.300000 (1 job(s), 1 usage row(s))"
    assert "total: $0.600000 (2 job(s), 3 usage row(s))" in lines
    assert report_lines([], period_spend([], "2026-02-01")) == ["2026-02-01: no usage rows"]


def test_a_day_without_rows_spent_nothing():
    assert day_spend(ROWS, "2026-01-05").as_dict() == {
        "day": "2026-01-05",
        "cost_usd": 0.0,
        "usage_rows": 0,
        "jobs": 0,
        "input_tokens": 0,
        "output_tokens": 0,
        "tenants": {},
        "models": {},
    }


def test_days_are_validated():
    assert parse_day(" 2026-01-02 ") == "2026-01-02"
    with pytest.raises(ValueError):
        parse_day("2026-02-30")
