"""One way to build boto3 clients, shared by the S3 and DynamoDB resources and the CLI."""

from functools import lru_cache

import boto3
from botocore.config import Config

from imageflow_dagster import aws_session
from imageflow_dagster.settings import aws_environment

# Image generation runs up to `image_concurrency` threads per job, each doing S3 and DynamoDB calls.
DEFAULT_POOL_SIZE = 32


_ENVIRONMENT = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ACCESS_KEY_ID",
                "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE")


def shared_client(service: str, **config):
    """One client per configuration and process: building one costs ~70 ms, and every run in a long-lived
    process (tests, benchmarks, a warm worker) would otherwise pay it again. Clients are thread-safe. The
    AWS environment is part of the key because botocore reads endpoint and credentials from it."""
    return _cached_client(service, aws_environment(_ENVIRONMENT), tuple(sorted(config.items())))


@lru_cache(maxsize=32)
def _cached_client(service: str, environment: tuple, config: tuple):
    return make_client(service, **dict(config))


def make_client(
    service: str,
    *,
    region_name: str | None = None,
    endpoint_url: str | None = None,
    max_attempts: int = 5,
    max_pool_connections: int = DEFAULT_POOL_SIZE,
    profile_name: str | None = None,
    aws_access_key_id: str | None = None,
    aws_secret_access_key: str | None = None,
    aws_session_token: str | None = None,
):
    """Build a client; boto3 clients are thread-safe, so callers build one and share it.

    `endpoint_url=None` lets botocore honour AWS_ENDPOINT_URL, so the same code reaches moto or real AWS.
    """
    config = Config(
        retries={"mode": "standard", "total_max_attempts": max_attempts},
        max_pool_connections=max_pool_connections,
        signature_version="s3v4" if service == "s3" else None,
        # Emulators answer on one host name, so buckets go in the path there; real S3 keeps its default.
        s3={"addressing_style": "path"} if service == "s3" and _has_custom_endpoint(endpoint_url) else None,
        connect_timeout=10,
        read_timeout=60,
    )
    credentials = {
        "region_name": region_name,
        "aws_access_key_id": aws_access_key_id,
        "aws_secret_access_key": aws_secret_access_key,
        "aws_session_token": aws_session_token,
    }
    if profile_name:  # a named profile changes the session itself: give it its own
        return boto3.session.Session(profile_name=profile_name).client(
            service, endpoint_url=endpoint_url, config=config, **credentials
        )
    return aws_session.client(service, endpoint_url=endpoint_url, config=config, **credentials)


def _has_custom_endpoint(endpoint_url: str | None) -> bool:
    return bool(endpoint_url or any(aws_environment(("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"))))
