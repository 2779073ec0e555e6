"""`step_reports`: the outputs of the workflow's text steps, made while every step runs."""

import dagster as dg

from imageflow_dagster.assets.common import job_asset
from imageflow_dagster.models.pipeline import JobPlan, StepPlan

STEP_REPORTS = job_asset(
    "step_reports", deps=[], description="Outputs of the workflow's text steps.", kinds={"openai"}, stage="planning"
)


def step_reports_materialization(plan: JobPlan) -> dg.MaterializeResult | None:
    """None when a text step failed: the asset stays failed for this job."""
    if any(s.kind == "text" and s.status == "failed" for s in plan.steps):
        return None
    reports = [s for s in plan.steps if s.kind == "text"]
    return dg.MaterializeResult(asset_key=STEP_REPORTS.key, metadata=_reports_metadata(reports))


def _reports_metadata(reports: list[StepPlan]) -> dict:
    preview = "\n\n".join(f"### Step {s.number}: {s.name}\n\n{(s.output_text or s.error or '')[:1500]}" for s in reports)
    return {
        "text_steps": len(reports),
        "characters": sum(len(s.output_text or "") for s in reports),
        "preview": dg.MetadataValue.md(preview or "_no text steps_"),
    }
