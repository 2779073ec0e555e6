"""OpenAI spend from the usage rows, per UTC day, tenant and model: one reader and one tally, shared by the
`openai_spend` asset and `imageflow spend`. Nothing here calls OpenAI: the rows already hold each call's cost.

Reading all tenants' rows of a day is a Scan of the usage table filtered on `created_at`: the table's only
date index (`gsi_tenant_date`) needs a tenant id, and no table lists every tenant that spent (a tenant missed
would quietly lower the total). A Scan is billed on the whole table: at a million rows (~250 MB) about 31k
eventually consistent read units, under half a cent on demand, once a day. One tenant's rows come from the
index instead.
"""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import Decimal


from imageflow_dagster.resources.dynamodb import DynamoDBResource

TENANT_INDEX = "gsi_tenant_date"
FIELDS = ("tenant_id", "job_id", "model", "cost_usd", "input_tokens", "output_tokens", "created_at")
# Appended to the last day: sorts after "T...", so every timestamp of that day falls inside BETWEEN.
_DAY_END = "~"
_NAMES = {f"#{name}": name for name in FIELDS}


# ---- reading
def read_usage(
    db: DynamoDBResource, first_day: str, last_day: str, tenant: str | None = None
) -> Iterator[dict]:
    """Usage rows created from `first_day` to `last_day` (UTC, YYYY-MM-DD, both included)."""
    bounds = {":lo": first_day, ":hi": last_day + _DAY_END}
    if tenant:
        return _query_tenant(db, tenant, bounds)
    return _scan(db, bounds)


def _scan(db: DynamoDBResource, bounds: dict[str, str]) -> Iterator[dict]:
    # Pages read one after the other: a parallel Scan would cost the same read units, and a daily job is not in
    # a hurry.
    return db.scan(db.usage_records_table, "#created_at BETWEEN :lo AND :hi", _NAMES, bounds, ", ".join(_NAMES))


def _query_tenant(db: DynamoDBResource, tenant: str, bounds: dict[str, str]) -> Iterator[dict]:
    """The seed's own billing query: reads only that tenant's rows of those days."""
    condition = "#t = :t AND #c BETWEEN :lo AND :hi"
    names = {"#t": "tenant_id", "#c": "created_at"}
    start_key = None
    while True:
        rows, start_key = db.query_index(
            db.usage_records_table, TENANT_INDEX, condition, names, {":t": tenant, **bounds},
            limit=1000, start_key=start_key,
        )
        yield from rows
        if not start_key:
            return


# ---- adding up
@dataclass
class Tally:
    cost: Decimal = Decimal(0)  # Decimal: a month of sub-cent costs adds up without float drift
    usage_rows: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    jobs: set[str] = field(default_factory=set)

    def add(self, row: dict) -> None:
        self.cost += Decimal(str(row.get("cost_usd") or 0))
        self.usage_rows += 1
        self.input_tokens += int(row.get("input_tokens") or 0)
        self.output_tokens += int(row.get("output_tokens") or 0)
        if row.get("job_id"):
            self.jobs.add(str(row["job_id"]))

    def merge(self, other: "Tally") -> None:
        self.cost += other.cost
        self.usage_rows += other.usage_rows
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.jobs |= other.jobs

    @property
    def cost_usd(self) -> float:
        return round(float(self.cost), 6)

    def as_dict(self) -> dict:
        return {
            "cost_usd": self.cost_usd,
            "usage_rows": self.usage_rows,
            "jobs": len(self.jobs),
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
        }


@dataclass
class DaySpend:
    day: str
    total: Tally = field(default_factory=Tally)
    tenants: dict[str, Tally] = field(default_factory=dict)
    models: dict[str, Tally] = field(default_factory=dict)

    def add(self, row: dict) -> None:
        self.total.add(row)
        self.tenants.setdefault(str(row.get("tenant_id") or "(none)"), Tally()).add(row)
        self.models.setdefault(str(row.get("model") or "(none)"), Tally()).add(row)

    def as_dict(self) -> dict:
        return {
            "day": self.day,
            **self.total.as_dict(),
            "tenants": {key: tally.as_dict() for key, tally in by_cost(self.tenants)},
            "models": {key: tally.as_dict() for key, tally in by_cost(self.models)},
        }


def spend_by_day(rows: Iterable[dict]) -> list[DaySpend]:
    """Rows -> one DaySpend per UTC day that has rows, oldest first (`created_at` is ISO-8601 UTC)."""
    days: dict[str, DaySpend] = {}
    for row in rows:
        day = str(row.get("created_at", ""))[:10]
        days.setdefault(day, DaySpend(day)).add(row)
    return [days[day] for day in sorted(days)]


def day_spend(rows: Iterable[dict], day: str) -> DaySpend:
    """The spend of one day; an empty one (zero, no tenant) when nothing was spent."""
    spent = [d for d in spend_by_day(rows) if d.day == day]
    return spent[0] if spent else DaySpend(day)


def period_spend(days: Iterable[DaySpend], label: str) -> DaySpend:
    """Several days added up, under `label` (the CLI's totals over its range)."""
    period = DaySpend(label)
    for day in days:
        period.total.merge(day.total)
        for mine, theirs in ((period.tenants, day.tenants), (period.models, day.models)):
            for key, tally in theirs.items():
                mine.setdefault(key, Tally()).merge(tally)
    return period


def by_cost(tallies: dict[str, Tally]) -> list[tuple[str, Tally]]:
    """Largest cost first, then by name, so equal costs print in a stable order."""
    return sorted(tallies.items(), key=lambda item: (-item[1].cost, item[0]))


# ---- text, as `imageflow spend` prints it
def report_lines(days: list[DaySpend], period: DaySpend) -> list[str]:
    if not days:
        return [f"{period.day}: no usage rows"]
    lines = []
    for spend in [*days, period]:
        lines += _section(spend)
    return lines


def _section(spend: DaySpend) -> list[str]:
    lines = [f"{spend.day}: {_amount(spend.total)}"]
    for label, tallies in (("tenant", spend.tenants), ("model", spend.models)):
        lines += [f"  {label:<6} {name:<32} {_amount(tally)}" for name, tally in by_cost(tallies)]
    return lines


def _amount(tally: Tally) -> str:
    return f"${tally.cost_usd:.6f} ({len(tally.jobs)} job(s), {tally.usage_rows} usage row(s))"


# ---- days
def parse_day(text: str) -> str:
    """YYYY-MM-DD, validated; raises ValueError otherwise."""
    return date.fromisoformat(text.strip()).isoformat()


def utc_today() -> str:
    return datetime.now(timezone.utc).date().isoformat()
