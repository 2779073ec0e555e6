"""S3 resource: dagster-aws's S3Resource with one cached client, create-only puts and public URLs."""

import threading
from urllib.parse import quote

from botocore.exceptions import ClientError
from dagster_aws.s3 import S3Resource
from pydantic import PrivateAttr

from imageflow_dagster.resources.aws import DEFAULT_POOL_SIZE, shared_client

IMMUTABLE = "public, max-age=31536000, immutable"
# Step outputs and execution_steps.json are rewritten when a step is re-run; caches must revalidate.
REVALIDATE = "no-cache"


class StorageError(RuntimeError):
    """An S3 call failed in a way retries did not fix (AccessDenied, missing bucket, ...)."""


class ImageflowS3Resource(S3Resource):
    """`endpoint_url` stays unset so botocore finds the endpoint itself; `public_endpoint_url` is the one public
    URLs name (AWS_ENDPOINT_URL_S3, else AWS_ENDPOINT_URL: the moto server locally, unset on AWS)."""

    bucket: str
    cloudfront_domain: str
    public_endpoint_url: str | None
    max_pool_connections: int = DEFAULT_POOL_SIZE

    _client = PrivateAttr(default=None)
    _lock = PrivateAttr(default_factory=threading.Lock)

    def get_client(self):
        # dagster-aws builds a new session per get_client() (~100 ms); build once and share (thread-safe).
        with self._lock:
            if self._client is None:
                self._client = shared_client(
                    "s3",
                    region_name=self.region_name,
                    endpoint_url=self.endpoint_url,
                    max_attempts=self.max_attempts,
                    max_pool_connections=self.max_pool_connections,
                    profile_name=self.profile_name,
                    aws_access_key_id=self.aws_access_key_id,
                    aws_secret_access_key=self.aws_secret_access_key,
                    aws_session_token=self.aws_session_token,
                )
            return self._client

    # ---- reads
    def head(self, key: str) -> dict | None:
        try:
            return self.get_client().head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _status(exc) == 404:
                return None
            raise self._error("HeadObject", key, exc) from exc

    def get_bytes(self, key: str) -> bytes | None:
        try:
            return self.get_client().get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404"):
                return None
            raise self._error("GetObject", key, exc) from exc

    # ---- writes
    def put_once(self, key: str, body: bytes, content_type: str, cache_control: str = IMMUTABLE) -> bool:
        """Write `key` only if it does not exist yet; return False when another writer got there first."""
        try:
            self.get_client().put_object(
                Bucket=self.bucket,
                Key=key,
                Body=body,
                ContentType=content_type,
                CacheControl=cache_control,
                IfNoneMatch="*",
            )
            return True
        except ClientError as exc:
            if _code(exc) in ("PreconditionFailed", "ConditionalRequestConflict") or _status(exc) == 412:
                return False
            raise self._error("PutObject", key, exc) from exc

    def put(self, key: str, body: bytes, content_type: str, cache_control: str = REVALIDATE) -> None:
        try:
            self.get_client().put_object(
                Bucket=self.bucket, Key=key, Body=body, ContentType=content_type, CacheControl=cache_control
            )
        except ClientError as exc:
            raise self._error("PutObject", key, exc) from exc

    def check_bucket(self) -> None:
        try:
            self.get_client().head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if _status(exc) == 404:
                raise StorageError(f"S3 bucket {self.bucket!r} does not exist (ARTIFACTS_BUCKET)") from exc
            raise StorageError(f"S3 bucket {self.bucket!r} is not reachable: {_code(exc)}") from exc

    # ---- addresses
    def s3_url(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def public_url(self, key: str) -> str:
        quoted = quote(key, safe="/~")
        if self.cloudfront_domain:
            return f"https://{self.cloudfront_domain.rstrip('/')}/{quoted}"
        endpoint = self.endpoint_url or self.public_endpoint_url
        if endpoint:
            return f"{endpoint.rstrip('/')}/{self.bucket}/{quoted}"
        return f"https://{self.bucket}.s3.{self.region_name}.amazonaws.com/{quoted}"

    def _error(self, operation: str, key: str, exc: ClientError) -> StorageError:
        prefix = key.rsplit("/", 1)[0] + "/" if "/" in key else key
        code = _code(exc)
        if _status(exc) == 403 or code == "403":
            code = "AccessDenied"
        return StorageError(f"S3 {operation} failed with {code} for s3://{self.bucket}/{prefix}")


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
