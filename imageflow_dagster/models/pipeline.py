"""Values passed between the assets of one job partition (never stored in DynamoDB as such)."""

from typing import Any, Literal

from pydantic import BaseModel, Field

# What a step's plan holds; steps/base.py's `StepKind` is a kind's module. AI generation plans text or image.
StepPlanKind = Literal["text", "image", "webhook", "handoff"]
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


class AIGeneration(BaseModel):
    """The part of an AI generation step (text or image): what its Responses model was asked and what the
    answer cost. An image step's model is its planner (Images API path) or the mainline model that calls the
    image tool."""

    model: str  # the model that answered: the requested one, or its successor once that is past its shutdown
    requested_model: str | None = None  # what the workflow named, before lifecycle replacements
    instructions: str = ""
    context: str = ""
    usage: CallUsage | None = None
    replayed: bool = False  # answer came from the response cache (no API call)
    replacements: list[dict[str, str]] = Field(default_factory=list)  # {requested, used, reason}
    rate_limited: int = 0  # 429 rate_limit_exceeded answers to this step's planner/text call
    rate_limit_wait_s: float = 0.0


class ImagePlan(BaseModel):
    """An image step's part: its image model, its planned images (rendered after every step has run) and what
    the planner did. Model and config stay None when the step failed before they were known."""

    requested_model: str | None = None  # what the image_generation tool named, before lifecycle replacements
    model: str | None = None
    config: dict[str, Any] | None = None  # the tool's settings as the seed records them
    path: ImagePath | None = None
    requests: list[ImageRequest] = Field(default_factory=list)
    planner_fallback: bool = False  # the planner gave no usable prompt: one prompt from the instructions
    # The tenant's planner override (flow/prompt_overrides.py): the fields it replaced, what the planner got.
    prompt_override: list[str] = Field(default_factory=list)
    planner_request: dict[str, Any] | None = None


class StepPlan(BaseModel):
    """What running one workflow step produced (an image step's images are planned here, rendered afterwards).

    What only some kinds have sits in an object of its own: `ai` for text and image steps, `image` for image
    steps, `entry` for the kinds that record their execution step as they run (webhook, handoff)."""

    index: int  # position in the workflow's steps array
    number: int  # index + 1: the seed's "Step {n}" and `step_order` in execution steps
    name: str
    kind: StepPlanKind
    status: StepStatus = "ok"
    error: str | None = None
    error_type: str | None = None
    depends_on: list[int] = Field(default_factory=list)  # step indices
    output_text: str | None = None  # text steps: the model's answer; webhook and handoff steps: a summary
    started_at: str = ""
    duration_ms: int = 0
    ai: AIGeneration | None = None
    image: ImagePlan | None = None
    # The execution-step entry of a kind that records itself when it runs; AI steps are recorded once their
    # images exist.
    entry: dict[str, Any] | None = None

    @property
    def image_requests(self) -> list[ImageRequest]:
        """The step's planned images; none for a step of another kind."""
        return self.image.requests if self.image else []


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
        """The images to render: those of the image steps that planned without error."""
        planned = [s for s in self.steps if s.kind == "image" and s.status == "ok"]
        return [request for s in planned for request in s.image_requests]

    @property
    def step_usages(self) -> list[CallUsage]:
        """What the steps' own Responses calls used: text answers and image planners (images count apart)."""
        return [s.ai.usage for s in self.steps if s.ai and s.ai.usage]


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
