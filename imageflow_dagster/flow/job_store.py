"""Writes to the job row and the artifact and usage tables, in the seed's record formats.

Claims: a job row in `processing` carries `imageflow_claim_id` while one Dagster run owns it. The sensor claims
with a conditional update (one winner, also across daemons); a run launched from the UI claims with its own run
id when it starts. The final status write is fenced on the claim and removes it, so a job set back to
`processing` later (a rerun) is claimable again, while the run's own progress writes never are. The lease only
says when a claim may be taken over: the run renews it while it works (claim_heartbeat.py) and the sensor while
the run waits in Dagster's queue, so it lapses only once the run is gone.

Hand-offs (seed_handoff.py): the sensor's claim records the hand-off mark it took, and the final write ends the
job only while the mark is still that one. A hand-off that arrived after the claim (the seed's API sets
`processing` before it hands over, so the sensor may claim in between) makes the final write release the claim
instead: the job stays `processing` with the new mark and rerun fields, and the sensor claims it again.
"""

import time
from enum import Enum
from typing import Any

from imageflow_dagster.flow.seed_handoff import CLAIMED_HANDOFF, HANDOFF_MARK, RERUN_FIELDS
from imageflow_dagster.ids import utc_now_iso
from imageflow_dagster.models import Artifact, UsageRecord
from imageflow_dagster.resources.dynamodb import DynamoDBResource

CLAIM_ID = "imageflow_claim_id"
LEASE_UNTIL = "imageflow_lease_until"  # epoch seconds; a claim past it may be taken over
CLAIMED_AT = "imageflow_claimed_at"
_CLAIM_ATTRS = [CLAIM_ID, LEASE_UNTIL, CLAIMED_AT, CLAIMED_HANDOFF]
# What one entry into `processing` carries: the claim, the hand-off mark and a step rerun handed over with it.
_ENTRY_ATTRS = [*_CLAIM_ATTRS, HANDOFF_MARK, *RERUN_FIELDS]
_ATTEMPT_ATTRS = ["error_message", "error_type", "completed_at", "failed_at"]  # an earlier attempt's outcome
_OWNED_BY = f"(attribute_not_exists(#{CLAIM_ID}) OR #{CLAIM_ID} = :claim)"
_FREE = f"(attribute_not_exists(#{CLAIM_ID}) OR #{LEASE_UNTIL} < :now)"
# No hand-off arrived since the claim: none pending, or the one the claim took (a claim that took none has no
# CLAIMED_HANDOFF, and a comparison with a missing attribute is false).
_SAME_HANDOFF = f"(attribute_not_exists(#{HANDOFF_MARK}) OR #{HANDOFF_MARK} = #{CLAIMED_HANDOFF})"
# Attributes a finished job must not keep from an earlier attempt or from its progress display.
_TRANSIENT = ["live_step", "error_message", "error_type", *_ENTRY_ATTRS]


class Finish(Enum):
    """How a run's final write ended; truthy when the run's claim let it write."""

    WRITTEN = "written"  # the job's outcome
    HANDED_ON = "handed_on"  # a newer hand-off waits: the claim was released, the job stays `processing`
    REFUSED = "refused"  # another claim owns the job (or, when asked, it is no longer `processing`)

    def __bool__(self) -> bool:
        return self is not Finish.REFUSED


def update_job(db: DynamoDBResource, job_id: str, values: dict[str, Any], remove: list[str] | None = None) -> None:
    db.update_item(
        db.jobs_table,
        {"job_id": job_id},
        set_values={**values, "updated_at": utc_now_iso()},
        remove=remove,
        condition="attribute_exists(#job_id)",
    )


def claim_job(
    db: DynamoDBResource, job_id: str, claim_id: str, statuses: tuple[str, ...], lease_s: int, handoff: Any = None
) -> dict | None:
    """Take a job waiting in one of `statuses` whose hand-off mark is still `handoff`, the one the claimer read
    (None: no mark). Returns the job as the claim left it, which the run config is built from; None when another
    claimer holds a live claim, or a hand-off arrived since the job was read (the next tick claims that one)."""
    now = int(time.time())
    placeholders = {f":st{i}": status for i, status in enumerate(statuses)}
    values: dict[str, Any] = {CLAIM_ID: claim_id, LEASE_UNTIL: now + lease_s, CLAIMED_AT: utc_now_iso()}
    condition = f"#status IN ({', '.join(placeholders)}) AND {_FREE}"
    condition_values = {**placeholders, ":now": now}
    if handoff is None:
        condition += f" AND attribute_not_exists(#{HANDOFF_MARK})"
    else:
        values[CLAIMED_HANDOFF] = condition_values[":handoff"] = handoff
        condition += f" AND #{HANDOFF_MARK} = :handoff"
    return db.update_item(
        db.jobs_table,
        {"job_id": job_id},
        set_values=values,
        remove=[CLAIMED_HANDOFF] if handoff is None else None,  # none kept from a lapsed claim taken over
        condition=condition,
        condition_values=condition_values,
        return_new=True,
    )


def start_run(db: DynamoDBResource, job_id: str, claim_id: str, lease_s: int, from_sensor: bool = True) -> bool:
    """Mark the job `processing` for this run; False when another run holds a live claim on it. A run launched by
    hand (`from_sensor` False) takes no hand-off: one pending is run for after it, with its own rerun fields."""
    now = int(time.time())
    new = db.update_item(
        db.jobs_table,
        {"job_id": job_id},
        set_values={
            "status": "processing",
            "started_at": utc_now_iso(),
            "updated_at": utc_now_iso(),
            CLAIM_ID: claim_id,
            LEASE_UNTIL: now + lease_s,
        },
        set_if_absent={CLAIMED_AT: utc_now_iso()},
        remove=[*_ATTEMPT_ATTRS, *([] if from_sensor else [CLAIMED_HANDOFF])],
        condition=f"attribute_exists(#job_id) AND ({_OWNED_BY} OR #{LEASE_UNTIL} < :now)",
        condition_values={":claim": claim_id, ":now": now},
    )
    return new is not None


def renew_lease(db: DynamoDBResource, job_id: str, claim_id: str, lease_s: int) -> bool:
    """Extend the lease of a claim `claim_id` still holds; False when the claim was released or taken over.

    Fenced on the claim alone, not on the lease: a run (or the sensor, for a queued run) may renew a lease that
    lapsed while nobody took the job over."""
    new = db.update_item(
        db.jobs_table,
        {"job_id": job_id},
        set_values={LEASE_UNTIL: int(time.time()) + lease_s},
        condition=f"#{CLAIM_ID} = :claim",
        condition_values={":claim": claim_id},
    )
    return new is not None


def mark_completed(db: DynamoDBResource, job_id: str, extra: dict[str, Any], claim_id: str | None = None) -> Finish:
    values = {"status": "completed", "completed_at": utc_now_iso(), **extra}
    return _finish(db, job_id, values, _TRANSIENT, claim_id)


def mark_failed(
    db: DynamoDBResource,
    job_id: str,
    message: str,
    error_type: str,
    extra: dict | None = None,
    claim_id: str | None = None,
    only_if_processing: bool = False,
) -> Finish:
    values = {"status": "failed", "error_message": message, "error_type": error_type, "failed_at": utc_now_iso()}
    remove = ["live_step", "completed_at", "output_url", *_ENTRY_ATTRS]  # a failed job delivers nothing
    # ...also through the seed's document route, which serves from `artifacts` whatever the status; its UI lists
    # a job's artifacts through the artifacts table's gsi_job_id, so they stay visible there.
    delivers_nothing = {"artifacts": []}
    return _finish(db, job_id, {**values, **(extra or {}), **delivers_nothing}, remove, claim_id, only_if_processing)


def _finish(
    db: DynamoDBResource,
    job_id: str,
    values: dict,
    remove: list[str],
    claim_id: str | None,
    only_if_processing: bool = False,
) -> Finish:
    """Fenced on the claim: a run that lost its claim cannot overwrite the outcome of the run that took over. And
    on the hand-off: one that arrived after the claim is not discarded but released to the sensor."""
    fence = f"attribute_exists(#job_id) AND {_OWNED_BY}"
    fence_values = {":claim": claim_id or "-"}
    if only_if_processing:
        fence += " AND #status = :processing"
        fence_values[":processing"] = "processing"
    if _fenced_update(db, job_id, values, remove, f"{fence} AND {_SAME_HANDOFF}", fence_values):
        return Finish.WRITTEN
    if _fenced_update(db, job_id, {}, ["live_step", *_CLAIM_ATTRS], f"{fence} AND NOT {_SAME_HANDOFF}", fence_values):
        return Finish.HANDED_ON
    return Finish.REFUSED


def _fenced_update(db: DynamoDBResource, job_id: str, values: dict, remove: list, condition: str, fence: dict):
    new = db.update_item(
        db.jobs_table,
        {"job_id": job_id},
        set_values={**values, "updated_at": utc_now_iso()},
        remove=remove,
        condition=condition,
        condition_values=fence,
    )
    return new is not None  # None: the condition failed


def put_artifact(db: DynamoDBResource, artifact: Artifact) -> None:
    """Upsert by stable id; the first `created_at` wins so reruns don't rewrite history."""
    fields = artifact.model_dump()
    created_at = fields.pop("created_at")
    artifact_id = fields.pop("artifact_id")
    db.update_item(
        db.artifacts_table,
        {"artifact_id": artifact_id},
        set_values=fields,
        set_if_absent={"created_at": created_at},
    )


def put_usage(db: DynamoDBResource, record: UsageRecord) -> bool:
    """Create-only: a usage row describes money spent once; writing it twice would double-bill."""
    return db.put_item(db.usage_records_table, record.model_dump(), condition="attribute_not_exists(usage_id)")


def job_cost_usd(db: DynamoDBResource, job_id: str) -> float:
    """What every run of the job has cost so far, from its usage rows."""
    return usage_cost_usd(job_usage_rows(db, job_id))


def usage_cost_usd(usage_rows: list[dict]) -> float:
    """What a job's usage rows cost, over all its runs."""
    return sum(float(row.get("cost_usd", 0)) for row in usage_rows)


def job_usage_rows(db: DynamoDBResource, job_id: str) -> list[dict]:
    """Every usage row of the job, over all its runs (imageflow's `gsi_job_id` on the usage table)."""
    rows, start_key = [], None
    while True:
        page, start_key = db.query_index(
            db.usage_records_table, "gsi_job_id", "#j = :j", {"#j": "job_id"}, {":j": job_id}, limit=500, start_key=start_key
        )
        rows += page
        if not start_key:
            return rows
