"""`openai_spend`: a day's OpenAI cost per tenant and per model, from the usage rows the runs wrote.

Apart from the per-job assets: its own group, daily partitions and job, so `image_generation_job` (which
selects imageflow's group) never pulls it into a job's run. It stores no value (a MaterializeResult): the
numbers live in the materialization's metadata, where the UI shows the tables and plots the total, and no IO
manager, filesystem or S3, is involved.
"""

from datetime import datetime, timedelta, timezone

import dagster as dg

from imageflow_dagster.assets.common import OWNER
from imageflow_dagster.flow.spend import DaySpend, Tally, by_cost, day_spend, read_usage
from imageflow_dagster.resources.dynamodb import DynamoDBResource

SPEND_GROUP = "spend"
# Tables in the event log stay small at thousands of tenants: the costliest ones, the rest summed in one row.
MAX_TABLE_ROWS = 100

# end_offset=1: today's partition exists too, so an operator can look at the spend so far; the schedule
# rewrites each day once it is over.
spend_partitions = dg.DailyPartitionsDefinition(start_date="2025-01-01", timezone="UTC", end_offset=1)


@dg.asset(
    partitions_def=spend_partitions,
    group_name=SPEND_GROUP,
    kinds={"dynamodb"},
    owners=[OWNER],
    description="The day's OpenAI cost (UTC) per tenant and per model, from the usage rows; no OpenAI call.",
)
def openai_spend(context: dg.AssetExecutionContext, dynamodb: DynamoDBResource) -> dg.MaterializeResult:
    day = context.partition_key
    spend = day_spend(read_usage(dynamodb, day, day), day)
    context.log.info(f"{day}: ${spend.total.cost_usd:.6f} over {spend.total.usage_rows} usage row(s)")
    return dg.MaterializeResult(metadata=spend_metadata(spend))


def spend_metadata(spend: DaySpend) -> dict[str, dg.MetadataValue]:
    total = spend.total
    return {
        # A float under the same key on every partition: the UI plots it over time.
        "total_cost_usd": dg.MetadataValue.float(total.cost_usd),
        "usage_rows": dg.MetadataValue.int(total.usage_rows),
        "jobs": dg.MetadataValue.int(len(total.jobs)),
        "tenants": dg.MetadataValue.int(len(spend.tenants)),
        "cost_by_tenant": _table("tenant_id", spend.tenants),
        "cost_by_model": _table("model", spend.models),
    }


_COLUMNS = [
    dg.TableColumn("cost_usd", "float"),
    dg.TableColumn("jobs", "int"),
    dg.TableColumn("usage_rows", "int"),
    dg.TableColumn("input_tokens", "int"),
    dg.TableColumn("output_tokens", "int"),
]


def _table(key: str, tallies: dict[str, Tally]) -> dg.TableMetadataValue:
    ranked = by_cost(tallies)
    shown, rest = ranked[:MAX_TABLE_ROWS], ranked[MAX_TABLE_ROWS:]
    if rest:
        others = Tally()
        for _, tally in rest:
            others.merge(tally)
        shown.append((f"({len(rest)} others)", others))
    records = [dg.TableRecord({key: name, **tally.as_dict()}) for name, tally in shown]
    return dg.MetadataValue.table(records, dg.TableSchema([dg.TableColumn(key, "string"), *_COLUMNS]))


openai_spend_job = dg.define_asset_job(
    "openai_spend_job",
    selection=[openai_spend],
    description="Adds up one day's OpenAI spend from the usage rows.",
)


@dg.schedule(
    job=openai_spend_job,
    cron_schedule="15 0 * * *",  # a quarter past midnight: the last rows of the day have landed
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Materializes yesterday's (UTC) openai_spend partition.",
)
def openai_spend_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    now = context.scheduled_execution_time or datetime.now(timezone.utc)
    day = (now.astimezone(timezone.utc) - timedelta(days=1)).date().isoformat()
    return dg.RunRequest(run_key=day, partition_key=day)
