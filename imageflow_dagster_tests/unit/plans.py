"""Builders of the flow's plan values (StepPlan, ImageRequest, GeneratedImage, JobPlan), so a test names only
the fields it is about. Real models, filled with the smallest valid values (`usage`: the step's AI part's)."""

from imageflow_dagster.models.pipeline import (
    AIGeneration,
    CallUsage,
    GeneratedImage,
    ImagePlan,
    ImageRequest,
    JobIdentity,
    JobPlan,
    StepPlan,
)

JOB = JobIdentity(job_id="job_1", tenant_id="tenant_1", workflow_id="wf_1", submission_id="sub_1")
STARTED = "2026-01-02T03:04:05.000Z"


def text_step(
    index: int,
    name: str = "Report",
    output: str | None = "# Report",
    usage: CallUsage | None = None,
    **changes,
) -> StepPlan:
    fields = dict(index=index, number=index + 1, name=name, kind="text", output_text=output)
    ai = AIGeneration(model="gpt-5", usage=usage)
    return StepPlan(**{**fields, "started_at": STARTED, "ai": ai, **changes})


def image_request(step_index: int, index: int, label: str = "") -> ImageRequest:
    label = label or f"image_{index}"
    key = f"{JOB.prefix}/step_{step_index + 1}/{label}.png"
    return ImageRequest(
        step_index=step_index,
        index=index,
        label=label,
        prompt=f"A picture of {label}",
        model="gpt-image-1",
        path="images_api",
        api_params={},
        output_format="png",
        key=key,
        url=f"https://bucket.example/{key}",
        request_hash=f"hash_{step_index}_{index}",
    )


def image_step(
    index: int,
    labels: tuple[str, ...] = ("logo",),
    name: str = "Images",
    usage: CallUsage | None = None,
    **changes,
) -> StepPlan:
    requests = [image_request(index, n, label) for n, label in enumerate(labels, start=1)]
    fields = dict(index=index, number=index + 1, name=name, kind="image")
    ai = AIGeneration(model="gpt-5", usage=usage)
    image = ImagePlan(model="gpt-image-1", config={"size": "auto"}, requests=requests)
    return StepPlan(**{**fields, "started_at": STARTED, "ai": ai, "image": image, **changes})


def generated(request: ImageRequest, outcome: str = "generated", **changes) -> GeneratedImage:
    return GeneratedImage(request=request, outcome=outcome, **changes)


def rendered(step: StepPlan, outcome: str = "generated", **changes) -> list[GeneratedImage]:
    """Every image of `step` with the same outcome."""
    return [generated(request, outcome, **changes) for request in step.image_requests]


def usage(model: str, input_tokens: int, output_tokens: int, cost_usd: float) -> CallUsage:
    return CallUsage(
        model=model, calls=1, input_tokens=input_tokens, output_tokens=output_tokens, cost_usd=cost_usd
    )


def job_plan(*steps: StepPlan, deliverables: tuple[int, ...] = ()) -> JobPlan:
    fields = {"Name": "Ada"}
    return JobPlan(
        job=JOB,
        submission_fields=fields,
        steps=list(steps),
        started_at=STARTED,
        deliverables=list(deliverables),
    )
