"""Records every AWS call this process makes, and whether the product or the test's setup made it.

Every boto3 client, imageflow's own and those dagster-aws builds for the S3 IO manager and compute logs, sends
its calls through `botocore.client.BaseClient._make_api_call`; wrapping it there sees them all. Only what IAM
needs is kept (names, keys, prefixes, attribute names), never item values or object bodies.

Who made a call is read from the call stack, innermost frame outward: the first frame of setup code (the
tests, imageflow_dagster/local, bootstrap.py) or of product code (imageflow_dagster, dagster, dagster_aws,
dagster_celery) decides. A few imageflow modules only forward calls for whoever called them (the resources'
table and bucket helpers, submit.py and the new-job row writers it shares with the handoff step), so they decide
nothing. A thread that reaches AWS with no deciding frame (s3transfer's upload threads) takes the origin of
the code that started it.
"""

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import botocore.client
from botocore.exceptions import ClientError

PRODUCT, SETUP, UNKNOWN = "product", "setup", "unknown"

_SETUP_PATHS = ("/imageflow_dagster_tests/", "/imageflow_dagster/local/", "/imageflow_dagster/bootstrap.py")
_FORWARDING_PATHS = (
    "/imageflow_dagster/resources/dynamodb.py",
    "/imageflow_dagster/resources/s3.py",
    "/imageflow_dagster/resources/aws.py",
    "/imageflow_dagster/aws_session.py",
    "/imageflow_dagster/submit.py",
    "/imageflow_dagster/flow/new_job_rows.py",
)
_PRODUCT_PATHS = ("/imageflow_dagster/", "/dagster/", "/dagster_aws/", "/dagster_celery/")
_THREAD_ORIGIN = "_imageflow_aws_origin"
# Request fields that name what a call touches; the rest (values, bodies) is not IAM's business.
_KEPT = ("TableName", "IndexName", "Bucket", "Prefix", "CopySource", "ReturnValues", "Select")


@dataclass(frozen=True)
class AwsCall:
    service: str  # botocore's name: "dynamodb", "s3"
    operation: str  # "PutItem", "HeadObject", ...
    params: dict
    origin: str  # PRODUCT, SETUP or UNKNOWN
    error_code: str = ""  # "" when the call succeeded

    def describe(self) -> str:
        named = [f"{k}={v}" for k, v in self.params.items() if isinstance(v, str)]
        if "RequestItems" in self.params:  # batch calls name their tables there
            named.append(f"RequestItems={','.join(self.params['RequestItems'])}")
        return f"{self.service}.{self.operation}({', '.join(named)})"


@dataclass
class Recorder:
    calls: list[AwsCall] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, call: AwsCall) -> None:
        with self._lock:
            self.calls.append(call)

    def of(self, origin: str) -> list[AwsCall]:
        with self._lock:
            return [c for c in self.calls if c.origin == origin]


@contextmanager
def recording() -> Iterator[Recorder]:
    """Records the calls made while the block runs, in every thread of this process."""
    recorder = Recorder()
    original_call = botocore.client.BaseClient._make_api_call
    original_start = threading.Thread.start

    def recorded_call(client, operation_name, api_params):
        origin = origin_of(sys._getframe(1))
        error_code = ""
        try:
            return original_call(client, operation_name, api_params)
        except ClientError as exc:
            error_code = str(exc.response.get("Error", {}).get("Code", "ClientError"))
            raise
        finally:
            service = client.meta.service_model.service_name
            recorder.add(AwsCall(service, operation_name, kept_params(api_params), origin, error_code))

    def start_remembering_origin(thread):
        setattr(thread, _THREAD_ORIGIN, origin_of(sys._getframe(1)))
        return original_start(thread)

    botocore.client.BaseClient._make_api_call = recorded_call
    threading.Thread.start = start_remembering_origin
    try:
        yield recorder
    finally:
        botocore.client.BaseClient._make_api_call = original_call
        threading.Thread.start = original_start


def origin_of(frame) -> str:
    """PRODUCT or SETUP by the innermost deciding frame; else the starting code's origin for this thread."""
    while frame is not None:
        path = frame.f_code.co_filename.replace("\\", "/")
        if path != __file__ and not any(part in path for part in _FORWARDING_PATHS):
            if any(part in path for part in _SETUP_PATHS):
                return SETUP
            if any(part in path for part in _PRODUCT_PATHS):
                return PRODUCT
        frame = frame.f_back
    return getattr(threading.current_thread(), _THREAD_ORIGIN, UNKNOWN)


def kept_params(api_params: dict) -> dict:
    kept = {name: api_params[name] for name in _KEPT if name in api_params}
    if isinstance(api_params.get("Key"), str):  # S3's object key (DynamoDB's Key holds values)
        kept["Key"] = api_params["Key"]
    if "Item" in api_params:  # PutItem: IAM's dynamodb:Attributes are the item's attribute names
        kept["ItemAttributes"] = sorted(api_params["Item"])
    if "Delete" in api_params:  # DeleteObjects
        kept["DeleteKeys"] = [o["Key"] for o in api_params["Delete"].get("Objects", [])]
    if "RequestItems" in api_params:  # BatchGetItem / BatchWriteItem: table -> the kinds of request
        batch = api_params["RequestItems"]
        kept["RequestItems"] = {table: _request_kinds(requests) for table, requests in batch.items()}
    if "TransactItems" in api_params:  # [(kind, table)]: each needs its own action
        kept["TransactItems"] = [_transact_item(item) for item in api_params["TransactItems"]]
    return kept


def _request_kinds(requests) -> list[str]:
    if isinstance(requests, dict):  # BatchGetItem: {"Keys": [...]}
        return ["Get"]
    return sorted({kind for request in requests for kind in request})  # BatchWriteItem: Put/DeleteRequest


def _transact_item(item: dict) -> tuple[str, str]:
    [(kind, body)] = item.items()
    return kind, body["TableName"]
