"""Dagster resources: OpenAI, S3, DynamoDB and the settings sensors, assets and ops read, all built from one
`Settings` (settings.py) where the definitions are built."""

import re

import dagster as dg
from dagster_aws.s3 import S3PickleIOManager, S3Resource

from imageflow_dagster.resources.dynamodb import DynamoDBResource
from imageflow_dagster.resources.openai_client import OpenAIResource
from imageflow_dagster.resources.rate_budget import OpenAIRateBudget
from imageflow_dagster.resources.s3 import ImageflowS3Resource
from imageflow_dagster.resources.settings import SettingsResource
from imageflow_dagster.settings import Settings

# Asset values pickled by Dagster (not imageflow's images or records) go under this private prefix: no image
# suffix, so the bucket's public-read policy for images never matches it.
IO_MANAGER_PREFIX = ".imageflow/dagster-io"


def build_resources(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    """`endpoint_url` stays unset so botocore reads AWS_ENDPOINT_URL itself: moto locally, AWS in production."""
    tables = settings.tables
    dynamodb = DynamoDBResource(
        region_name=settings.region,
        jobs_table=tables.jobs,
        workflows_table=tables.workflows,
        forms_table=tables.forms,
        submissions_table=tables.submissions,
        artifacts_table=tables.artifacts,
        usage_records_table=tables.usage_records,
        user_settings_table=tables.user_settings,
        notifications_table=tables.notifications,
        claim_lease_s=settings.claim_lease_s,
    )
    budget = OpenAIRateBudget(
        dynamodb=dynamodb,
        table=settings.rate_limits_table,
        images_per_minute=settings.images_per_minute,
        tokens_per_minute=settings.tokens_per_minute,
        limits_file=settings.rate_limits_file,
    )
    resources = {
        "openai": OpenAIResource(
            budget=budget,
            base_url=settings.openai_base_url,
            timeout_s=settings.openai_timeout_s,
            max_retries=settings.openai_max_retries,
            rate_limit_wait_s=settings.rate_limit_wait_s,
            default_text_model=settings.default_text_model,
            default_image_model=settings.default_image_model,
            image_concurrency=settings.image_concurrency,
            max_images_per_step=settings.max_images_per_step,
            model_replacements=settings.model_replacements,
        ),
        "s3": ImageflowS3Resource(
            bucket=settings.bucket,
            cloudfront_domain=settings.cloudfront_domain,
            region_name=settings.region,
            public_endpoint_url=settings.aws_endpoint_url_s3 or settings.aws_endpoint_url,
        ),
        "dynamodb": dynamodb,
        "settings": SettingsResource.of(settings),
    }
    if settings.io_manager == "s3":
        resources["io_manager"] = s3_io_manager(settings)
    return resources


def deployed_resources(settings: Settings) -> dict[str, dg.ResourceDefinition]:
    """The code location's resources, each offered to Dagster with an empty config schema.

    A Pythonic resource's fields stay settable from run config even when the Definitions bind them, and anyone
    who can open the Launchpad can write run config (OSS Dagster has no authentication): pointing `base_url` at
    their own host would receive the API key. Locked, every resource is what the deployment's environment made it,
    and a run config that names any resource field is refused by Dagster's config check before the run starts."""
    built = build_resources(settings)
    # Dagster's default IO manager takes a base_dir from run config: it is locked like the others.
    io_manager: dg.ConfigurableIOManagerFactory = built.pop("io_manager", None) or dg.FilesystemIOManager()
    locked: dict[str, dg.ResourceDefinition] = {key: _locked(resource) for key, resource in built.items()}
    locked["io_manager"] = dg.IOManagerDefinition(
        resource_fn=io_manager.create_io_manager, config_schema={}, description=_LOCKED.format(type(io_manager))
    )
    return locked


_LOCKED = "{0.__name__}, set by the deployment's environment; no run config."


def _locked(resource: dg.ConfigurableResource) -> dg.ResourceDefinition:
    """The description lists the resource's values: with no config schema, it is what the UI's resource page
    shows of what a run uses. No secret is a field; credentials in a URL are left out."""
    description = "\n".join([_LOCKED.format(type(resource)), "", *_value_lines(resource)])
    return dg.ResourceDefinition(resource_fn=lambda _: resource, config_schema={}, description=description)


def _value_lines(resource: dg.ConfigurableResource, prefix: str = "") -> list[str]:
    """One markdown line per field; a nested resource's own fields (the OpenAI resource's budget) one level down,
    since the resources listed beside it (DynamoDB) are listed there."""
    lines = []
    for name in type(resource).model_fields:
        value = getattr(resource, name)
        if not isinstance(value, dg.ConfigurableResource):
            lines.append(f"- `{prefix}{name}`: `{_shown(value)}`")
        elif not prefix:
            lines += _value_lines(value, f"{name}.")
    return lines


def _shown(value) -> str:
    return repr(re.sub(r"//[^/@\s]*@", "//", value) if isinstance(value, str) else value)


def s3_io_manager(settings: Settings) -> S3PickleIOManager:
    """IMAGEFLOW_IO_MANAGER=s3: asset values live in the artifacts bucket, so any op of a run can execute on any
    machine. The embedded stack keeps Dagster's filesystem default."""
    return S3PickleIOManager(
        s3_resource=S3Resource(region_name=settings.region),
        s3_bucket=settings.bucket,
        s3_prefix=IO_MANAGER_PREFIX,
    )
