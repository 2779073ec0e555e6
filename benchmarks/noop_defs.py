"""A do-nothing partitioned asset launched by a sensor: the floor of what one run costs through the daemon."""

import json
import os
from pathlib import Path

import dagster as dg

noop_partitions = dg.DynamicPartitionsDefinition(name="noop")


# Case 8 (benchmarks/coordinator.py) holds a batch in the run queue behind this pool (0 slots) and then opens it,
# so it times the coordinator launching a full queue rather than keeping up with the sensor. Unset: no pool.
@dg.asset(partitions_def=noop_partitions, pool=os.environ.get("IMAGEFLOW_BENCH_NOOP_POOL") or None)
def noop() -> None:
    return None


noop_job = dg.define_asset_job("noop_job", selection=[noop], executor_def=dg.in_process_executor)


@dg.sensor(job=noop_job, minimum_interval_seconds=1, default_status=dg.DefaultSensorStatus.RUNNING)
def noop_sensor(context: dg.SensorEvaluationContext):
    """Requests the batch described in $IMAGEFLOW_BENCH_NOOP_FILE (`{"batch": id, "runs": n}`) once."""
    path = Path(os.environ.get("IMAGEFLOW_BENCH_NOOP_FILE", "/nonexistent"))
    if not path.exists():
        return dg.SkipReason("no batch requested")
    batch = json.loads(path.read_text())
    if context.cursor == batch["batch"]:
        return dg.SkipReason("batch already requested")
    keys = [f"{batch['batch']}-{i}" for i in range(batch["runs"])]
    return dg.SensorResult(
        run_requests=[dg.RunRequest(partition_key=k, run_key=k, tags={"bench/batch": batch["batch"]}) for k in keys],
        dynamic_partitions_requests=[noop_partitions.build_add_request(keys)],
        cursor=batch["batch"],
    )


defs = dg.Definitions(assets=[noop], jobs=[noop_job], sensors=[noop_sensor])
