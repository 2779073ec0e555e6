"""`s3_objects`: the job's images in S3 (verified with HEAD), each step's output file and the final document."""

import dagster as dg

from imageflow_dagster.assets.common import job_asset, job_check
from imageflow_dagster.assets.lineage import lineage_table, thumbnails_markdown
from imageflow_dagster.flow.deliverable import FINAL_TYPES, FinalDocument, final_document
from imageflow_dagster.flow.image_data import CONTENT_TYPES
from imageflow_dagster.flow.live_artifacts import image_object
from imageflow_dagster.flow.parallel import BOOKKEEPING_WORKERS, parallel_map
from imageflow_dagster.flow.records import artifact_for, images_of, step_output_document
from imageflow_dagster.models.pipeline import GeneratedImage, JobIdentity, JobPlan, StepPlan, StoredObject
from imageflow_dagster.resources.s3 import ImageflowS3Resource

STORED_CHECK = "every_planned_image_stored"
IMAGE_TYPES = set(CONTENT_TYPES.values())

S3_OBJECTS = job_asset(
    "s3_objects",
    deps=["planned_prompts", "step_reports", "generated_images"],
    description="The job's objects in S3: its images (verified with HEAD) and each step's output file.",
    kinds={"s3"},
    stage="records",
)
STORED_CHECK_SPEC = job_check(
    STORED_CHECK,
    asset=S3_OBJECTS,
    description="Every planned image is in S3 with an image content type (PNG, JPEG or WebP); images blocked by "
    "moderation are reported, not failed, as the job's own rules do.",
)


def store_objects(s3: ImageflowS3Resource, plan: JobPlan, generated: list[GeneratedImage]) -> list[StoredObject]:
    """The images, each step's output and, for a job whose steps all succeeded, its final document."""
    stored = [g for g in generated if g.stored]
    images = parallel_map(lambda g: _verified_image(s3, g, plan), stored, workers=BOOKKEEPING_WORKERS)
    outputs = [obj for step in plan.steps if (obj := _store_step_output(s3, plan.job, step, generated))]
    final = final_document(plan, generated)
    return images + outputs + ([_store_final(s3, plan, final)] if final else [])


def objects_materialization(
    plan: JobPlan, generated: list[GeneratedImage], objects: list[StoredObject], text_steps: int
) -> dg.MaterializeResult:
    artifact_ids = {obj.key: artifact_for(plan.job, obj).artifact_id for obj in objects}
    lineage = {"lineage": lineage_table(plan, generated, artifact_ids), "thumbnails": thumbnails_markdown(plan, generated)}
    return dg.MaterializeResult(
        asset_key=S3_OBJECTS.key,
        metadata={**lineage, **_metadata(objects, text_steps)},
        check_results=[_stored_check(plan, generated, [o for o in objects if o.kind == "image"])],
    )


def _verified_image(s3: ImageflowS3Resource, image: GeneratedImage, plan: JobPlan) -> StoredObject:
    head = s3.head(image.request.key) or {}
    step = plan.step(image.request.step_index)
    content_type, size = head.get("ContentType", "missing"), int(head.get("ContentLength", 0))
    return image_object(s3, image.request, step.name, content_type, size)


def _store_step_output(
    s3: ImageflowS3Resource, job: JobIdentity, step: StepPlan, generated: list[GeneratedImage]
) -> StoredObject | None:
    document = step_output_document(step, images_of(step, generated))
    if document is None:
        return None
    name, body, content_type = document
    key = f"{job.prefix}/{name}"
    s3.put(key, body, content_type)
    return StoredObject(
        kind="step_output",
        step_index=step.index,
        key=key,
        url=s3.public_url(key),
        s3_url=s3.s3_url(key),
        content_type=content_type,
        size_bytes=len(body),
        name=name,
        label=step.name,
    )


def _store_final(s3: ImageflowS3Resource, plan: JobPlan, document: FinalDocument) -> StoredObject:
    """Overwritten like the step outputs it is made of: a rerun writes the same key again."""
    key = f"{plan.job.prefix}/{document.name}"
    s3.put(key, document.body, document.content_type)
    return StoredObject(
        kind=document.artifact_type,
        step_index=plan.steps[-1].index,
        key=key,
        url=s3.public_url(key),
        s3_url=s3.s3_url(key),
        content_type=document.content_type,
        size_bytes=len(document.body),
        name=document.name,
        label="Final Output",
    )


def _stored_check(plan: JobPlan, generated: list[GeneratedImage], images: list[StoredObject]) -> dg.AssetCheckResult:
    stored = {obj.key: obj for obj in images}
    blocked = [g.request.key for g in generated if g.outcome == "blocked"]
    planned = [request.key for request in plan.image_requests]
    missing = [key for key in planned if key not in stored and key not in blocked]
    wrong_type = [o.key for o in images if o.content_type not in IMAGE_TYPES]
    return dg.AssetCheckResult(
        asset_key=S3_OBJECTS.key,
        check_name=STORED_CHECK,
        passed=not missing and not wrong_type,
        metadata={
            "planned": len(planned),
            "stored": len(stored),
            "blocked_by_moderation": dg.MetadataValue.json(blocked[:50]),
            "missing": dg.MetadataValue.json(missing[:50]),
            "wrong_type": dg.MetadataValue.json(wrong_type[:50]),
        },
    )


def _metadata(objects: list[StoredObject], text_steps: int) -> dict:
    images = [o for o in objects if o.kind == "image"]
    return {
        "objects": len(objects),
        "images": len(images),
        "step_outputs": sum(1 for o in objects if o.kind == "step_output"),
        "final": next((o.name for o in objects if o.kind in FINAL_TYPES), ""),
        "text_steps": text_steps,
        "bytes": sum(o.size_bytes for o in objects),
        "job_folder": dg.MetadataValue.url(f"{objects[0].s3_url.rsplit('/', 1)[0]}/") if objects else "",
        "content_types": dg.MetadataValue.json({o.key.rsplit("/", 1)[-1]: o.content_type for o in objects}),
    }
