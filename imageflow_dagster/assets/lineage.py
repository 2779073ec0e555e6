"""Lineage metadata for analysts in the Dagster UI: which prompt became which image, at what cost, under which
artifact. Pure functions of the job's values (no Dagster context), so any asset can attach them.

Table cells are plain strings: in Dagster 1.13 a `TableRecord` value must be str/int/float/bool/None
(a `MetadataValue.url` is refused), so URLs are written as text.
"""

import re

import dagster as dg

from imageflow_dagster.models import Artifact
from imageflow_dagster.models.pipeline import GeneratedImage, ImageRequest, JobPlan, StepPlan

LINEAGE_COLUMNS = [
    dg.TableColumn("step", "string", description="step number and name"),
    dg.TableColumn("label", "string"),
    dg.TableColumn("prompt", "string", description="the full prompt sent for the image"),
    dg.TableColumn("requested_model", "string", description="the image model the workflow named"),
    dg.TableColumn("model_used", "string", description="the model that rendered it (a successor if retired)"),
    dg.TableColumn("outcome", "string", description="generated, reused, blocked, failed; missing: no record"),
    dg.TableColumn("error", "string", description="why it was blocked or failed"),
    dg.TableColumn("cost_usd", "float"),
    dg.TableColumn("bytes", "int"),
    dg.TableColumn("artifact_id", "string"),
    dg.TableColumn("url", "string", description="public URL of the image"),
]
ARTIFACT_COLUMNS = [
    dg.TableColumn("artifact_id", "string"),
    dg.TableColumn("artifact_type", "string"),
    dg.TableColumn("artifact_name", "string"),
    dg.TableColumn("s3_key", "string"),
    dg.TableColumn("public_url", "string"),
]
# An image with no GeneratedImage (generation never got to it) still gets its row, so gaps are visible.
MISSING = "missing"
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|<>])")


def lineage_table(
    plan: JobPlan, generated: list[GeneratedImage], artifact_ids: dict[str, str]
) -> dg.TableMetadataValue:
    """One row per planned image; steps that failed in planning have no requests and so no rows."""
    by_key = {g.request.key: g for g in generated}
    records = [
        _lineage_record(step, request, by_key.get(request.key), artifact_ids)
        for step in _image_steps(plan)
        for request in step.image_requests
    ]
    return dg.MetadataValue.table(records=records, schema=dg.TableSchema(columns=LINEAGE_COLUMNS))


def thumbnails_markdown(plan: JobPlan, generated: list[GeneratedImage]) -> dg.MarkdownMetadataValue:
    """A caption and the thumbnail of each image that has one. Originals are never embedded: a job's page
    would otherwise download every full-size image."""
    by_key = {g.request.key: g for g in generated}
    blocks = [
        _thumbnail_block(step, by_key[request.key])
        for step in _image_steps(plan)
        for request in step.image_requests
        if request.key in by_key and by_key[request.key].thumbnail_url
    ]
    return dg.MetadataValue.md("\n\n".join(blocks) or "_no images_")


def artifacts_listing(rows: list[Artifact]) -> dg.TableMetadataValue:
    records = [
        dg.TableRecord(
            {
                "artifact_id": row.artifact_id,
                "artifact_type": row.artifact_type,
                "artifact_name": row.artifact_name,
                "s3_key": row.s3_key,
                "public_url": row.public_url,
            }
        )
        for row in rows
    ]
    return dg.MetadataValue.table(records=records, schema=dg.TableSchema(columns=ARTIFACT_COLUMNS))


def _image_steps(plan: JobPlan) -> list[StepPlan]:
    """The steps whose requests were sent to generation (the same filter as `JobPlan.image_requests`)."""
    return sorted((s for s in plan.steps if s.kind == "image" and s.status == "ok"), key=lambda s: s.index)


def _lineage_record(
    step: StepPlan, request: ImageRequest, image: GeneratedImage | None, artifact_ids: dict[str, str]
) -> dg.TableRecord:
    return dg.TableRecord(
        {
            "step": f"{step.number}. {step.name}",
            "label": request.label,
            "prompt": request.prompt,
            # As in execution_steps.json: a plan without a recorded request named its image model directly.
            "requested_model": step.image.requested_model or step.image.model or "",
            "model_used": (image.model if image else None) or request.model,
            "outcome": image.outcome if image else MISSING,
            "error": (image.error if image else None) or "",
            "cost_usd": float(image.usage.cost_usd) if image and image.usage else 0.0,
            "bytes": image.size_bytes if image else 0,
            "artifact_id": artifact_ids.get(request.key, ""),
            "url": request.url,
        }
    )


def _thumbnail_block(step: StepPlan, image: GeneratedImage) -> str:
    label = _md_text(image.request.label)
    return f"**Step {step.number}** · {label}\n\n![{label}]({image.thumbnail_url})"


def _md_text(text: str) -> str:
    """One line of literal text: a newline, `]` or `|` in a label must not end a caption, alt text or cell."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(text.split()))
