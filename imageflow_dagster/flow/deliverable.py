"""The job's final deliverable, by the seed's batch-mode rules: which steps deliver, what the document holds, its
file type, and the order of `job.artifacts` (report, final, images, then the other step outputs).

Only a job whose every step succeeded gets one: the seed once published a failed step's error text as the
customer's deliverable.
"""

import json
import re
from dataclasses import dataclass
from typing import Any

from imageflow_dagster.flow.records import image_step_json, images_of, step_outcome
from imageflow_dagster.ids import utc_now_iso
from imageflow_dagster.models import ExecutionStep
from imageflow_dagster.models.pipeline import GeneratedImage, JobPlan, StepPlan, StoredObject
from imageflow_dagster.models.workflow import WorkflowStep

FINAL_TYPES = ("markdown_final", "html_final", "json_final")
_FENCED_HTML = re.compile(r"```html[^\n]*\n(.*?)```", re.DOTALL | re.IGNORECASE)
_HTML_DOCUMENT = re.compile(r"(<!doctype html.*?</html\s*>|<html[\s>].*?</html\s*>)", re.DOTALL | re.IGNORECASE)


@dataclass(frozen=True)
class FinalDocument:
    name: str  # final.md, final.html or final.json
    body: bytes
    content_type: str
    artifact_type: str  # markdown_final, html_final or json_final


@dataclass(frozen=True)
class StepText:
    index: int
    name: str
    text: str
    image_only: bool


def deliverable_indices(steps: list[WorkflowStep]) -> list[int]:
    """The steps whose output is what the customer receives: the steps marked `is_deliverable`, else every step
    with the highest `step_order` (array position when absent), ties included.

    The one rule for the final document, the report listed first on `job.artifacts`, and the
    `deliverable_context`/`deliverable_steps` a webhook or handoff step sends. Why so: it is the seed's rule, the
    same for all three, so a workflow delivers under imageflow what it delivered under the seed. An author who
    cares marks the deliverable; unmarked, the last steps are taken to hold the finished work (by default a step
    depends on every step before it, so the last has seen them all), and steps that share the last `step_order`
    have equal claim to it.
    """
    marked = [i for i, step in enumerate(steps) if step.is_deliverable]
    if marked:
        return marked
    orders = [step.step_order if step.step_order is not None else i for i, step in enumerate(steps)]
    return [i for i, order in enumerate(orders) if order == max(orders)]


def final_document(plan: JobPlan, generated: list[GeneratedImage]) -> FinalDocument | None:
    """The deliverable of a job whose steps all succeeded; None for a failed job or one with no output."""
    if any(not step_outcome(step, images_of(step, generated)).success for step in plan.steps):
        return None
    outputs = [o for o in (_step_text(step, generated) for step in plan.steps) if o.text]
    if not outputs:
        return None
    chosen = [o for o in outputs if o.index in plan.deliverables and not o.image_only]
    if not chosen:  # nothing but images marked: the last text the job made, else its last (image) output
        texts = [o for o in outputs if not o.image_only]
        chosen = [(texts or outputs)[-1]]
    content = "\n\n".join(o.text for o in chosen)
    return document_for(content, plan.steps[-1].name)


def document_for(content: str, last_step_name: str) -> FinalDocument:
    """The seed decides the type from the content, then from the name of the job's last step."""
    stripped = content.strip()
    if _is_json_document(stripped):
        return FinalDocument("final.json", stripped.encode(), "application/json", "json_final")
    html = _html_in(stripped)
    if html is None and "html" in last_step_name.lower():
        html = stripped
    if html is not None:
        return FinalDocument("final.html", html.encode(), "text/html", "html_final")
    return FinalDocument("final.md", content.encode(), "text/markdown", "markdown_final")


def ordered_artifact_ids(plan: JobPlan, objects: list[StoredObject], artifact_ids: dict[str, str]) -> list[str]:
    """`job.artifacts` as the seed orders it: the report (the output of the last deliverable step that has one,
    else the last output), the final document, the images; then the other step outputs, so every row stays
    listed on the job."""
    by_kind = {kind: [o for o in objects if o.kind == kind] for kind in ("step_output", "image", *FINAL_TYPES)}
    outputs = {o.step_index: o for o in by_kind["step_output"]}
    order = [s.index for s in plan.steps if s.index in outputs]
    deliverable = [i for i in order if i in plan.deliverables]
    report = [outputs[(deliverable or order)[-1]]] if order else []
    finals = [o for kind in FINAL_TYPES for o in by_kind[kind]]
    rest = [outputs[i] for i in order if outputs[i] not in report]
    ids = [artifact_ids[o.key] for o in [*report, *finals, *by_kind["image"], *rest]]
    return list(dict.fromkeys(ids))


def final_output_entry(position: int, final: StoredObject, artifact_id: str) -> dict[str, Any]:
    """The seed's `final_output` execution step; its `step_order` is the list's length, not a workflow position."""
    return ExecutionStep(
        step_name="Final Output",
        step_order=position,
        step_type="final_output",
        input={"artifact_type": final.kind, "filename": final.name},
        output={"artifact_id": artifact_id, "public_url": final.url},
        timestamp=utc_now_iso(),
        duration_ms=0,
        artifact_id=artifact_id,
    ).model_dump(mode="json")


def _step_text(step: StepPlan, generated: list[GeneratedImage]) -> StepText:
    if step.kind == "image":
        text = image_step_json(step, images_of(step, generated))
    else:
        text = step.output_text or ""
    return StepText(step.index, step.name, text, image_only=step.kind == "image")


def _is_json_document(text: str) -> bool:
    try:
        return isinstance(json.loads(text), (dict, list))
    except ValueError:
        return False


def _html_in(text: str) -> str | None:
    """A whole HTML document in the text: the text itself, a fenced ```html block, or a <!doctype>/<html> block."""
    if text.lower().startswith(("<!doctype html", "<html")):
        return text
    fenced = _FENCED_HTML.search(text)
    if fenced:
        return fenced.group(1).strip()
    document = _HTML_DOCUMENT.search(text)
    return document.group(1) if document else None
