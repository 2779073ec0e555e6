"""AI generation steps, the fallback kind (steps/kinds.py): a text step is one Responses call; an image step with a
gpt-image model has a planner call write its image prompts for the Images API, and one with another model gets
one request through the Responses API's image_generation tool. An image step only plans its images here; the
images of every step are rendered together once every step has run (flow/generation.py).

Image URLs are derived from the requests, so a step that depends on an image step gets that step's URLs in its
context without waiting for the images.
"""

import json
import time

import openai
from pydantic import ValidationError

from imageflow_dagster.flow import image_planner
from imageflow_dagster.flow import prompt_overrides as overrides
from imageflow_dagster.flow.context import PERSONALIZATION, step_context
from imageflow_dagster.flow.errors import BadRecordError, first_problem
from imageflow_dagster.flow.image_requests import build_image_request, images_api_params
from imageflow_dagster.ids import short_hash, utc_now_iso
from imageflow_dagster.lifecycle import ModelRetired
from imageflow_dagster.models.pipeline import AIGeneration, CallUsage, ImagePlan, JobIdentity, StepPlan
from imageflow_dagster.models.workflow import ImageToolConfig, WorkflowStep
from imageflow_dagster.resources.image_params import ImageConfigError, fit_image_params
from imageflow_dagster.resources.openai_client import ResponseResult, api_error_text
from imageflow_dagster.steps.base import StepRun, StepTools, blocked_by, context_block, not_run

NAME = "ai_generation"
MARKER = None
STEP_TYPES = (None, "", "ai_generation")


def check(step: WorkflowStep, where: str) -> None:
    if step.step_type == "webhook":
        raise BadRecordError(f"{where} ({step.step_name}) has step_type 'webhook' but no webhook_url")
    if step.step_type not in STEP_TYPES:
        raise BadRecordError(
            f"{where} ({step.step_name}) has unsupported step_type {step.step_type!r}; "
            "imageflow runs ai_generation steps (text or image) and webhook steps"
        )
    try:
        step.image_tool()
    except ValidationError as exc:
        detail = first_problem(exc)
        raise BadRecordError(f"{where} ({step.step_name}) has an invalid image_generation tool: {detail}") from exc


def run(step_run: StepRun) -> StepPlan:
    started = time.monotonic()
    step, tools = step_run.step, step_run.tools
    tool = step.image_tool()
    requested = step.model or tools.openai.default_text_model
    plan = StepPlan(
        index=step_run.index,
        number=step_run.index + 1,
        name=step.step_name,
        kind="image" if tool else "text",
        depends_on=step_run.deps,
        started_at=utc_now_iso(),
        ai=AIGeneration(model=requested, requested_model=requested, instructions=step.instructions),
        image=ImagePlan() if tool else None,
    )
    blocked = blocked_by(step_run.deps, step_run.done)
    if blocked:
        return not_run(plan, blocked)
    ai = plan.ai
    ai.context = step_context(step_run.fields, [context_block(step_run.done[d]) for d in step_run.deps])
    where = f"job={step_run.job.job_id} step={plan.number} ({plan.name})"
    try:
        ai.model = _in_service(ai, ai.model, tools)
        if tool is None:
            _run_text_step(plan, step, tools, where)
        else:
            _plan_image_step(step_run.job, plan, tool, tools, where)
    except (openai.OpenAIError, ModelRetired, ImageConfigError) as exc:
        reason = api_error_text(exc) if isinstance(exc, openai.OpenAIError) else str(exc)
        plan.status, plan.error, plan.error_type = "failed", reason, type(exc).__name__
        tools.log.error(f"step failed {where}: {plan.error}")
    plan.duration_ms = int((time.monotonic() - started) * 1000)
    return plan


def _in_service(ai: AIGeneration, model: str, tools: StepTools) -> str:
    """`model`, or its successor once it is past its shutdown date; the swap is listed on the step."""
    used, replacements = tools.openai.model_in_service(model)
    ai.replacements += replacements
    return used


def _took(ai: AIGeneration, result: ResponseResult) -> None:
    """Keep what the call reports: the model that answered (a successor after a 404), waits and 429s."""
    ai.usage, ai.replayed = result.usage, result.replayed
    ai.model = result.model or ai.model
    if not result.replayed:
        ai.replacements += [swap for swap in result.replacements if swap not in ai.replacements]
        ai.rate_limited += result.rate_limited
        ai.rate_limit_wait_s = round(ai.rate_limit_wait_s + result.rate_limit_wait_s, 3)


def _run_text_step(plan: StepPlan, step: WorkflowStep, tools: StepTools, where: str) -> None:
    ai = plan.ai
    tools.progress.say(plan.number, f"Running {plan.name}...", "streaming")
    result = _cached_respond(
        tools,
        fresh=plan.index in tools.fresh_steps,
        where=f"{where} purpose=text",
        model=ai.model,
        instructions=step.instructions + PERSONALIZATION,
        input_text=ai.context,
        tools=step.text_tools() or None,
        reasoning_effort=step.reasoning_effort,
        max_output_tokens=step.max_output_tokens,
        on_wait=_waiting(plan, tools, "streaming"),
    )
    _took(ai, result)
    if result.status not in (None, "completed") or not result.text.strip():
        plan.status, plan.error_type = "failed", "EmptyOutput"
        plan.error = result.error or f"the model returned no text (status {result.status})"
        return
    plan.output_text = result.text


def _plan_image_step(
    job: JobIdentity, plan: StepPlan, tool: ImageToolConfig, tools: StepTools, where: str
) -> None:
    ai, image = plan.ai, plan.image
    image.requested_model = tool.model or tools.openai.default_image_model
    image.model = _in_service(ai, image.requested_model, tools)
    image.config = tool.seed_config()
    fit_image_params(image.model, images_api_params(tool))  # an impossible config fails before any call
    if not image.model.startswith("gpt-image"):
        image.path = "responses_tool"
        image.requests = [
            build_image_request(
                job,
                step_index=plan.index,
                index=1,
                label=plan.name or "image",
                prompt=ai.context,
                model=image.model,
                tool=tool,
                public_url=tools.s3.public_url,
                responses_model=ai.model,
                responses_instructions=ai.instructions + PERSONALIZATION,
                variant=tools.image_variant(plan),
            )
        ]
        return
    image.path = "images_api"
    tools.progress.say(plan.number, "Planning image prompts...", "planning")
    planned = _planned_images(plan, tools, where)
    image.requests = [
        build_image_request(
            job,
            step_index=plan.index,
            index=k,
            label=planned_image.label,
            prompt=planned_image.prompt,
            model=image.model,
            tool=tool,
            public_url=tools.s3.public_url,
            variant=tools.image_variant(plan),
        )
        for k, planned_image in enumerate(planned, start=1)
    ]
    noun = "prompt" if len(planned) == 1 else "prompts"
    tools.progress.say(plan.number, f"Planned {len(planned)} image {noun}.", "planning")


def _planned_images(plan: StepPlan, tools: StepTools, where: str) -> list[image_planner.PlannedImage]:
    ai, image = plan.ai, plan.image
    limit = tools.openai.max_images_per_step
    instructions = ai.instructions + PERSONALIZATION
    prompts = _planner_prompts(plan, instructions, limit, tools)
    result = _cached_respond(
        tools,
        fresh=plan.index in tools.fresh_steps,
        where=f"{where} purpose=planner",
        model=ai.model,
        instructions=prompts.instructions,
        input_text=prompts.input,
        text_format=image_planner.PLAN_SCHEMA,
        on_wait=_waiting(plan, tools, "planning"),
    )
    _took(ai, result)
    if prompts.overridden:  # recorded in the execution step, as the seed records its planner request
        image.prompt_override = list(prompts.overridden)
        asked = {"model": ai.model, "instructions": prompts.instructions, "input": prompts.input}
        image.planner_request = asked
    planned = image_planner.parse_plan(result.text, limit)
    if not planned:
        tools.log.warning(f"planner returned no valid prompts {where}; using the fallback prompt")
        image.planner_fallback = True
        planned = image_planner.fallback_plan(plan.name, instructions, ai.context)
    return planned


def _planner_prompts(
    plan: StepPlan, instructions: str, limit: int, tools: StepTools
) -> overrides.PlannerPrompts:
    # The seed's image steps see their whole context as both `context` and `full_context`, and no previous one.
    context = plan.ai.context
    variables = {
        "step_name": plan.name,
        "step_instructions": instructions,
        "full_context": context,
        "context": context,
        "previous_context": "",
    }
    default_input = image_planner.planner_input(plan.name, instructions, context)
    defaults = image_planner.planner_instructions(limit), default_input
    return overrides.planner_prompts(tools.planner_override, *defaults, variables)


def _waiting(plan: StepPlan, tools: StepTools, status: str):
    line = f"Waiting for the OpenAI rate limit: {plan.name}"
    return lambda _seconds: tools.progress.say(plan.number, line, status)


def _cached_respond(
    step_tools: StepTools, *, where: str, fresh: bool, on_wait=None, **request
) -> ResponseResult:
    """Answer from the job's response cache when this exact request was answered before, unless `fresh`; a fresh
    answer replaces the cached one, so later reruns replay it. Named `step_tools`, not `tools`: a text step's
    request carries its own `tools`."""
    request_hash = short_hash(json.dumps(request, sort_keys=True, default=str), length=32)
    cached = None if fresh else step_tools.cache.get(request_hash)
    if cached is not None:
        step_tools.log.info(f"replaying cached answer {where} request={request_hash[:12]}")
        model = cached.get("model") or request["model"]
        usage = CallUsage(model=model)  # no call, no cost
        return ResponseResult(text=cached["text"], status=cached["status"], usage=usage, model=model, replayed=True)
    result = step_tools.openai.respond(log=step_tools.log, where=where, on_wait=on_wait, **request)
    if result.status in (None, "completed") and result.text.strip():
        answer = {"text": result.text, "status": result.status, "model": result.model}
        step_tools.cache.put(request_hash, {**answer, "usage": result.usage.model_dump()})
    return result
