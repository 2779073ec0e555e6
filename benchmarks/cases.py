"""Benchmark cases that run in one process: parallel vs sequential images, multi-step critical path, reruns."""

import base64
import json
import statistics
import time

import boto3
import openai

from benchmarks.harness import Measurement, Stack, timed
from imageflow_dagster.flow import image_planner
from imageflow_dagster.flow.image_data import read_image

IMAGE_TOOL = {"type": "image_generation", "model": "gpt-image-2.6-sunburst", "size": "1024x1024", "quality": "low", "format": "png"}


def image_step(name: str, count: int, order: int, depends_on: list[int]) -> dict:
    return {
        "step_name": name,
        "model": "gpt-5.2",
        "instructions": f"Create {count} brand images for {name}.",
        "step_order": order,
        "depends_on": depends_on,
        "tools": [IMAGE_TOOL],
    }


def text_step(name: str, order: int) -> dict:
    return {"step_name": name, "model": "gpt-5.2", "instructions": "Research the company.", "step_order": order, "depends_on": [], "tools": []}


def sequential_reference(stack: Stack, images: int) -> None:
    """The seed's calls for one image step, one after another (reference/seed-system.md): the planner; per image a
    live_step write, the Images call, decode and upload, a second live_step write; then the usage row, the step
    output file and its row, one artifact row per image, execution_steps.json and the job status."""
    client = openai.OpenAI(api_key="bench", base_url=stack.openai.base_url, max_retries=2)
    s3 = boto3.client("s3", region_name=stack.settings.region)
    db = boto3.client("dynamodb", region_name=stack.settings.region)
    tables, bucket, job_id = stack.settings.tables, stack.settings.bucket, f"job_reference_{time.time_ns()}"
    live = lambda text: db.update_item(  # noqa: E731
        TableName=tables.jobs, Key={"job_id": {"S": job_id}}, UpdateExpression="SET live_step = :s",
        ExpressionAttributeValues={":s": {"S": text}},
    )
    live("Planning image prompts...")
    answer = client.responses.create(
        model="gpt-5.2",
        instructions=image_planner.planner_instructions(12),
        input=image_planner.planner_input("Brand Images", f"Create {images} brand images for Brand Images.", "context"),
        text={"format": image_planner.PLAN_SCHEMA},
    )
    planned = json.loads(answer.output_text)["images"]
    keys = []
    for k, item in enumerate(planned, start=1):
        live(f"Generating image {k}/{len(planned)}: {item['label']}")
        result = client.images.generate(model="gpt-image-2.6-sunburst", prompt=item["prompt"], n=1, size="1024x1024", quality="low")
        data = read_image(base64.b64decode(result.data[0].b64_json), "png").data
        keys.append(f"reference/{job_id}/{k}.png")
        s3.put_object(Bucket=bucket, Key=keys[-1], Body=data, ContentType="image/png")
        live(f"Generated image {k}/{len(planned)}: {item['label']}")
    db.put_item(TableName=tables.usage_records, Item={"usage_id": {"S": f"usage_{job_id}"}, "job_id": {"S": job_id}})
    keys.append(f"reference/{job_id}/step_1_brand_images.json")
    s3.put_object(Bucket=bucket, Key=keys[-1], Body=json.dumps(planned).encode(), ContentType="application/json")
    for k, key in enumerate(keys):
        db.put_item(TableName=tables.artifacts, Item={"artifact_id": {"S": f"art_{job_id}_{k}"}, "job_id": {"S": job_id}, "s3_key": {"S": key}})
    s3.put_object(Bucket=bucket, Key=f"reference/{job_id}/execution_steps.json", Body=b"[]", ContentType="application/json")
    db.update_item(
        TableName=tables.jobs, Key={"job_id": {"S": job_id}}, UpdateExpression="SET #s = :s REMOVE live_step",
        ExpressionAttributeNames={"#s": "status"}, ExpressionAttributeValues={":s": {"S": "completed"}},
    )
    client.close()


def one_step_parallel_vs_sequential(stack: Stack, runs: int, images: int, latency: float, planner_latency: float):
    """imageflow on the instance's SQLite storage (the dev default) and on Dagster's in-memory storage (a
    stand-in for fast production storage), alternating with the reference in the same run."""
    import dagster as dg

    stack.openai.configure(image_latency_s=latency, response_latency_s=planner_latency, image_payload="small")
    workflow = {"workflow_name": "bench-1", "steps": [image_step("Brand Images", images, 0, [])]}
    in_memory = dg.DagsterInstance.ephemeral()
    ours, ours_in_memory, reference = [], [], []
    for _ in range(runs):  # side by side in the same run: alternate the three
        job_id = stack.submit(workflow)
        ours.append(timed(lambda: stack.run(job_id)))
        job_id = stack.submit(workflow)
        ours_in_memory.append(timed(lambda: stack.run(job_id, instance=in_memory)))
        reference.append(timed(lambda: sequential_reference(stack, images)))
    budget = planner_latency + 1.3 * latency + 1.5
    ratio = statistics.median(reference) / statistics.median(ours)
    ratio_in_memory = statistics.median(reference) / statistics.median(ours_in_memory)
    title = f"1. one image step, {images} images, L={latency}s, planner {planner_latency}s"
    return [
        Measurement(f"{title}: imageflow wall (SQLite instance)", f"<= planner + 1.3 L + 1.5 s = {budget:.2f} s", ours,
                    extra={"met": statistics.median(ours) <= budget}),
        Measurement(f"{title}: imageflow wall (in-memory instance)", f"<= {budget:.2f} s", ours_in_memory,
                    extra={"met": statistics.median(ours_in_memory) <= budget}),
        Measurement("1. the seed's calls one after another (reference)", "-", reference),
        Measurement("1. speed-up, SQLite instance (reference median / imageflow median)", ">= 5x", [ratio], unit="x",
                    extra={"met": ratio >= 5}),
        Measurement("1. speed-up, in-memory instance", ">= 5x", [ratio_in_memory], unit="x", extra={"met": ratio_in_memory >= 5}),
    ]


def three_image_steps_and_text(stack: Stack, runs: int, per_step: int, latency: float, planner_latency: float):
    """Text -> Images A -> Images B -> Images C: a chain, so each planner waits for its predecessor's planner but
    no step waits for images."""
    stack.openai.configure(image_latency_s=latency, response_latency_s=planner_latency, image_payload="small")
    workflow = {
        "workflow_name": "bench-2",
        "steps": [
            text_step("Research", 0),
            image_step("Images A", per_step, 1, [0]),
            image_step("Images B", per_step, 2, [1]),
            image_step("Images C", per_step, 3, [2]),
        ],
    }
    default = stack.resources["openai"]
    one_wave = type(default)(**{**{n: getattr(default, n) for n in type(default).model_fields}, "image_concurrency": 3 * per_step})
    walls = [timed(lambda: stack.run(stack.submit(workflow))) for _ in range(runs)]
    stack.resources["openai"] = one_wave
    wide = [timed(lambda: stack.run(stack.submit(workflow))) for _ in range(runs)]
    stack.resources["openai"] = default
    critical = 4 * planner_latency + latency  # text + 3 planners on the chain, then one image latency
    three = 4 * planner_latency + 3 * latency
    return [
        Measurement(
            f"2. text + 3 chained image steps x {per_step} images, image concurrency {3 * per_step}: wall",
            f"close to planners on critical path + 1 L = {critical:.2f} s (3 L: {three:.2f} s)",
            wide,
        ),
        Measurement("2. same, wall / (critical-path planners + 1 L)", "close to 1", [statistics.median(wide) / critical], unit="x"),
        Measurement("2. same, wall / (critical-path planners + 3 L)", "< 1", [statistics.median(wide) / three], unit="x"),
        Measurement(
            f"2. same workflow at the default per-job limit ({default.image_concurrency}): wall",
            f"{3 * per_step} images in ceil({3 * per_step}/{default.image_concurrency}) waves",
            walls,
        ),
    ]


def rerun_of_finished_partition(stack: Stack, runs: int, images: int):
    stack.openai.configure(image_latency_s=0.0, response_latency_s=0.0, image_payload="small")
    workflow = {"workflow_name": "bench-5", "steps": [text_step("Research", 0), image_step("Brand Images", images, 1, [0])]}
    job_id = stack.submit(workflow)
    stack.run(job_id)
    walls, calls = [], []
    for _ in range(runs):
        stack.openai.reset()
        walls.append(timed(lambda: stack.run(job_id)))
        stats = stack.openai.stats()
        calls.append(stats["images"] + stats["responses"])
    return [
        Measurement(f"5. rerun of a finished partition ({images} images): wall", "-", walls),
        Measurement("5. OpenAI calls on rerun (images + responses)", "0", calls, unit="calls", extra={"met": max(calls) == 0}),
    ]


def dagster_floor(stack: Stack, runs: int) -> list[Measurement]:
    """The same graph (3 ops, 6 partitioned assets, 2 checks) with bodies that do nothing, materialized the same way:
    what Dagster itself costs per partition run on this machine."""
    import dagster as dg

    from benchmarks.floor_assets import floor_assets, floor_partitions

    walls = []
    for i in range(runs + 1):
        key = f"floor-{time.time_ns()}-{i}"
        stack.instance.add_dynamic_partitions(floor_partitions.name, [key])
        wall = timed(lambda: dg.materialize(floor_assets, partition_key=key, instance=stack.instance))
        if i:  # the first run warms imports
            walls.append(wall)
    return [Measurement("0. Dagster floor: same graph (3 ops, 6 assets, 2 checks) doing nothing, per partition run", "-", walls)]
