"""imageflow's asset graph with empty bodies: the Dagster cost of one partition run, for comparison."""

import dagster as dg

floor_partitions = dg.DynamicPartitionsDefinition(name="floor")


@dg.multi_asset(outs={"f_planned": dg.AssetOut(), "f_reports": dg.AssetOut()}, partitions_def=floor_partitions)
def f_plan():
    yield dg.Output(1, output_name="f_planned")
    yield dg.Output(1, output_name="f_reports")


@dg.asset(partitions_def=floor_partitions)
def f_images(f_planned: int) -> int:
    return f_planned


@dg.asset(partitions_def=floor_partitions)
def f_objects(f_planned: int, f_reports: int, f_images: int) -> int:
    return f_images


@dg.asset(partitions_def=floor_partitions)
def f_artifacts(f_objects: int) -> int:
    return f_objects


@dg.asset(partitions_def=floor_partitions)
def f_steps(f_planned: int, f_images: int, f_artifacts: int) -> int:
    return f_artifacts


floor_assets = [f_plan, f_images, f_objects, f_artifacts, f_steps]
