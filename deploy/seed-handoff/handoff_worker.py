"""The seed's local-mode worker script, replaced: set `WORKER_SCRIPT_PATH` to this file in the seed API's
environment. The API has already set the job `processing`; this marks it handed over to imageflow (and, for a
single-step rerun, which step and whether to continue) and exits 0 at once, so the API's await returns and none of
the seed's worker runs. imageflow's sensor then claims the job. The mark is fresh for every hand-off and written
with the rerun fields in one UpdateItem: a run that claimed the job before this write (between the API's
`processing` and this script) sees a mark it did not take, and leaves the job to a run of this hand-off. Needs
only boto3 (the seed's environment has it) and reads the seed's own variables: JOB_ID, STEP_INDEX, CONTINUE_AFTER, JOBS_TABLE, AWS_REGION, AWS_ENDPOINT_URL.
"""

import os
import sys
import uuid
from datetime import datetime, timezone

import boto3


def handoff_update(step_index: str | None, continue_after: str | None) -> tuple[str, dict]:
    """(UpdateExpression, ExpressionAttributeValues) the state machine's states write, for the same input; the
    state machine's mark is its execution's id."""
    values = {
        ":processing": {"S": "processing"},
        ":now": {"S": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")},
        ":mark": {"S": f"handoff-{uuid.uuid4()}"},
    }
    base = "SET #status = :processing, updated_at = :now, imageflow_handoff = :mark"
    if step_index in (None, ""):
        return f"{base} REMOVE imageflow_rerun_step_index, imageflow_rerun_continue", values
    if not step_index.strip().isdigit():
        raise ValueError(f"STEP_INDEX must be a step's 0-based index, got {step_index!r}")
    values[":step"] = {"N": str(int(step_index))}
    values[":continue"] = {"BOOL": (continue_after or "").strip().lower() in ("1", "true", "yes")}
    return f"{base}, imageflow_rerun_step_index = :step, imageflow_rerun_continue = :continue", values


def main() -> int:
    job_id = os.environ.get("JOB_ID")
    if not job_id:
        print("imageflow hand-off: JOB_ID is not set", file=sys.stderr)
        return 2
    expression, values = handoff_update(os.environ.get("STEP_INDEX"), os.environ.get("CONTINUE_AFTER"))
    client = boto3.client("dynamodb", region_name=os.environ.get("AWS_REGION", "us-east-1"))
    client.update_item(
        TableName=os.environ.get("JOBS_TABLE", "leadmagnet-jobs"),
        Key={"job_id": {"S": job_id}},
        ConditionExpression="attribute_exists(job_id)",
        UpdateExpression=expression,
        ExpressionAttributeNames={"#status": "status"},
        ExpressionAttributeValues=values,
    )
    print(f"imageflow hand-off: job {job_id} handed to imageflow")
    return 0


if __name__ == "__main__":
    sys.exit(main())
