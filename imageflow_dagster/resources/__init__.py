"""Dagster resources: OpenAI, S3 and DynamoDB, configured from the environment."""

import os

import dagster as dg
from dagster_aws.s3 import S3PickleIOManager, S3Resource

from imageflow_dagster.resources.dynamodb import DynamoDBResource
from imageflow_dagster.resources.openai_client import OpenAIResource
from imageflow_dagster.resources.rate_budget import OpenAIRateBudget
from imageflow_dagster.resources.s3 import ImageflowS3Resource
from imageflow_dagster.settings import Settings

# Asset values pickled by Dagster (not imageflow's images or records) go under this private prefix: no image
# suffix, so the bucket's public-read policy for images never matches it.
IO_MANAGER_PREFIX = ".imageflow/dagster-io"


def build_resources(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    """`endpoint_url` stays unset so botocore reads AWS_ENDPOINT_URL itself: moto locally, AWS in production."""
    dynamodb = DynamoDBResource(
        region_name=settings.region,
        jobs_table=settings.tables.jobs,
        workflows_table=settings.tables.workflows,
        forms_table=settings.tables.forms,
        submissions_table=settings.tables.submissions,
        artifacts_table=settings.tables.artifacts,
        usage_records_table=settings.tables.usage_records,
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
            # EnvVar keeps the key out of run config and the UI; it is only set when the variable exists so an
            # unconfigured deployment reaches our own clear error instead of a config error.
            api_key=dg.EnvVar("OPENAI_API_KEY") if os.getenv("OPENAI_API_KEY") else None,
            base_url=settings.openai_base_url,
            timeout_s=settings.openai_timeout_s,
            max_retries=settings.openai_max_retries,
            rate_limit_wait_s=settings.rate_limit_wait_s,
            default_text_model=settings.default_text_model,
            default_image_model=settings.default_image_model,
            image_concurrency=settings.image_concurrency,
            max_images_per_step=settings.max_images_per_step,
        ),
        "s3": ImageflowS3Resource(
            bucket=settings.bucket, cloudfront_domain=settings.cloudfront_domain, region_name=settings.region
        ),
        "dynamodb": dynamodb,
    }
    if settings.io_manager == "s3":
        resources["io_manager"] = s3_io_manager(settings)
    return resources


def s3_io_manager(settings: Settings) -> S3PickleIOManager:
    """IMAGEFLOW_IO_MANAGER=s3: asset values live in the artifacts bucket, so any op of a run can execute on any
    machine. The embedded stack keeps Dagster's filesystem default."""
    return S3PickleIOManager(
        s3_resource=S3Resource(region_name=settings.region),
        s3_bucket=settings.bucket,
        s3_prefix=IO_MANAGER_PREFIX,
    )
