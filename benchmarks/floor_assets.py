"""imageflow's asset graph with empty bodies (three ops, six assets, two checks): the Dagster cost of one
partition run, for comparison."""

import dagster as dg

floor_partitions = dg.DynamicPartitionsDefinition(name="floor")


@dg.multi_asset(outs={"f_planned": dg.AssetOut(), "f_reports": dg.AssetOut()}, partitions_def=floor_partitions)
def f_plan():
    yield dg.Output(1, output_name="f_planned")
    yield dg.Output(1, output_name="f_reports")


@dg.asset(partitions_def=floor_partitions)
def f_images(f_planned: int) -> int:
    return f_planned


@dg.multi_asset(
    specs=[
        dg.AssetSpec("f_objects", deps=["f_planned", "f_reports", "f_images"], partitions_def=floor_partitions),
        dg.AssetSpec("f_artifacts", deps=["f_objects"], partitions_def=floor_partitions),
        dg.AssetSpec("f_steps", deps=["f_artifacts"], partitions_def=floor_partitions),
    ],
    check_specs=[dg.AssetCheckSpec("f_stored", asset="f_objects"), dg.AssetCheckSpec("f_recorded", asset="f_steps")],
    ins={"f_planned": dg.AssetIn(), "f_reports": dg.AssetIn(), "f_images": dg.AssetIn()},
    partitions_def=floor_partitions,
)
def f_record(f_planned: int, f_reports: int, f_images: int):
    stored = dg.AssetCheckResult(asset_key="f_objects", check_name="f_stored", passed=True)
    recorded = dg.AssetCheckResult(asset_key="f_steps", check_name="f_recorded", passed=True)
    yield dg.MaterializeResult(asset_key="f_objects", check_results=[stored])
    yield dg.MaterializeResult(asset_key="f_artifacts")
    yield dg.MaterializeResult(asset_key="f_steps", check_results=[recorded])


floor_assets = [f_plan, f_images, f_record]
