"""Values passed between the assets of one job partition (never stored in DynamoDB as such)."""

from typing import Any, Literal

from pydantic import BaseModel, Field

StepKind = Literal["text", "image", "webhook", "handoff"]
ImagePath = Literal["images_api", "responses_tool"]
StepStatus = Literal["ok", "failed", "skipped"]
ImageOutcome = Literal["generated", "reused", "blocked", "failed"]


class CallUsage(BaseModel):
    """Tokens and cost of one or more OpenAI calls of a single model."""

    model: str
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    latency_s: float = 0.0

    def plus(self, other: "CallUsage") -> "CallUsage":
        return CallUsage(
            model=self.model,
            calls=self.calls + other.calls,
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cost_usd=round(self.cost_usd + other.cost_usd, 8),
            latency_s=self.latency_s + other.latency_s,
        )


class JobIdentity(BaseModel):
    job_id: str
    tenant_id: str
    workflow_id: str
    submission_id: str
    workflow_name: str | None = None

    @property
    def prefix(self) -> str:
        return f"{self.tenant_id}/jobs/{self.job_id}"


class ImageRequest(BaseModel):
    """One image to render. Its S3 key is derived from the request, so its URL is known before it exists."""

    step_index: int
    index: int  # 1-based position within the step
    label: str
    prompt: str
    model: str
    path: ImagePath
    api_params: dict[str, Any]  # what goes to the Images API / the image_generation tool besides the prompt
    output_format: str
    key: str
    url: str
    request_hash: str
    # Responses-tool path only: what the mainline model receives.
    responses_model: str | None = None
    responses_instructions: str | None = None


class StepPlan(BaseModel):
    """What the planning phase produced for one workflow step."""

    index: int  # position in the workflow's steps array
    number: int  # index + 1: the seed's "Step {n}" and `step_order` in execution steps
    name: str
    kind: StepKind
    model: str
    status: StepStatus = "ok"
    error: str | None = None
    error_type: str | None = None
    instructions: str = ""
    context: str = ""
    depends_on: list[int] = Field(default_factory=list)  # step indices
    output_text: str | None = None  # text steps: the model's answer; webhook steps: the seed's summary line
    image_model: str | None = None
    image_path: ImagePath | None = None
    image_config: dict[str, Any] | None = None
    requests: list[ImageRequest] = Field(default_factory=list)
    planner_fallback: bool = False
    planner_raw: str | None = None
    # The tenant's planner override (flow/prompt_overrides.py): the fields it replaced and what the planner got.
    prompt_override: list[str] = Field(default_factory=list)
    planner_request: dict[str, Any] | None = None
    usage: CallUsage | None = None
    replayed: bool = False  # answer came from the response cache (no API call)
    requested_model: str | None = None  # what the workflow named, before lifecycle replacements
    requested_image_model: str | None = None
    replacements: list[dict[str, str]] = Field(default_factory=list)  # {requested, used, reason}
    rate_limited: int = 0  # 429 rate_limit_exceeded answers to this step's planner/text call
    rate_limit_wait_s: float = 0.0
    started_at: str = ""
    duration_ms: int = 0
    # The execution-step entry of a kind that records itself when it runs (webhook); AI steps are recorded
    # once their images exist.
    entry: dict[str, Any] | None = None


class JobPlan(BaseModel):
    job: JobIdentity
    submission_fields: dict[str, Any]  # label -> value, the seed's Form Submission step
    steps: list[StepPlan]
    started_at: str
    deliverables: list[int] = Field(default_factory=list)  # indices of the steps whose output is the deliverable

    def step(self, index: int) -> StepPlan:
        return next(s for s in self.steps if s.index == index)

    @property
    def image_requests(self) -> list[ImageRequest]:
        return [r for s in self.steps if s.kind == "image" and s.status == "ok" for r in s.requests]


class GeneratedImage(BaseModel):
    request: ImageRequest
    outcome: ImageOutcome
    content_type: str | None = None
    size_bytes: int = 0
    width: int | None = None
    height: int | None = None
    converted_from: str | None = None
    usage: CallUsage | None = None
    latency_s: float = 0.0
    error: str | None = None
    error_type: str | None = None
    model: str | None = None  # the model that rendered it (a successor when the requested one was gone)
    replacements: list[dict[str, str]] = Field(default_factory=list)
    rate_limited: int = 0  # 429 rate_limit_exceeded answers while rendering it
    rate_limit_wait_s: float = 0.0  # seconds spent waiting for the shared rate budget
    thumbnail_url: str | None = None  # public URL of its small JPEG preview; None when it could not be made

    @property
    def stored(self) -> bool:
        return self.outcome in ("generated", "reused")


class StoredObject(BaseModel):
    kind: Literal["image", "step_output", "markdown_final", "html_final", "json_final"]
    step_index: int  # the final document's: the last step's
    key: str
    url: str
    s3_url: str
    content_type: str
    size_bytes: int
    name: str
    label: str | None = None
