"""What IAM authorizes for a recorded AWS call: actions, resource ARNs and condition keys, as AWS maps them.

DynamoDB: the table's ARN, or its index's for a Query or Scan on an index; BatchGetItem and BatchWriteItem are
authorized per table under their own action; a transaction needs the action of each item (TransactWriteItems:
PutItem, UpdateItem, DeleteItem, ConditionCheckItem; TransactGetItems: GetItem). S3: HeadObject is
s3:GetObject, listing and HeadBucket are s3:ListBucket on the bucket, a copy reads its source and writes its
target, multipart parts are s3:PutObject, DeleteObjects is s3:DeleteObject per key. A read of a missing key
answers 404 only with s3:ListBucket on the bucket (403 without), and imageflow's HEAD-before-write relies on
the 404, so such a read needs both.

Condition keys this module does not compute are left out of `IamRequest.modeled`: a policy condition on one of
them stops the evaluator instead of guessing.
"""

from dataclasses import dataclass, field

from imageflow_dagster_tests.aws_calls import AwsCall

_MISSING_KEY_CODES = ("404", "NoSuchKey")
_S3_OBJECT_ACTIONS = {
    "GetObject": "s3:GetObject",
    "HeadObject": "s3:GetObject",
    "PutObject": "s3:PutObject",
    "CreateMultipartUpload": "s3:PutObject",
    "UploadPart": "s3:PutObject",
    "CompleteMultipartUpload": "s3:PutObject",
    "AbortMultipartUpload": "s3:AbortMultipartUpload",
    "ListParts": "s3:ListMultipartUploadParts",
    "DeleteObject": "s3:DeleteObject",
}
_S3_BUCKET_ACTIONS = {
    "ListObjects": "s3:ListBucket",
    "ListObjectsV2": "s3:ListBucket",
    "HeadBucket": "s3:ListBucket",
    "GetBucketLocation": "s3:GetBucketLocation",
    "ListObjectVersions": "s3:ListBucketVersions",
    "ListMultipartUploads": "s3:ListBucketMultipartUploads",
}
_S3_COPIES = ("CopyObject", "UploadPartCopy")
_TRANSACT_ACTIONS = {
    "Put": "dynamodb:PutItem",
    "Update": "dynamodb:UpdateItem",
    "Delete": "dynamodb:DeleteItem",
    "ConditionCheck": "dynamodb:ConditionCheckItem",
    "Get": "dynamodb:GetItem",
}
_DYNAMODB_KEYS = frozenset({"dynamodb:ReturnValues", "dynamodb:Select"})


class UnmappedCall(ValueError):
    """A call this module cannot map to IAM: map it here rather than let it pass unchecked."""


@dataclass(frozen=True)
class IamRequest:
    action: str
    resource: str
    context: tuple[tuple[str, tuple[str, ...]], ...] = ()  # condition key -> values, for the keys present
    modeled: frozenset[str] = frozenset()  # condition keys whose presence and values are computed
    call: str = field(default="", compare=False)  # the recorded call, for messages

    def values(self, key: str) -> tuple[str, ...] | None:
        return dict(self.context).get(key)

    def describe(self) -> str:
        extra = "".join(f" [{k}={','.join(v)}]" for k, v in self.context)
        return f"{self.action} on {self.resource}{extra} (from {self.call})"


def iam_requests(call: AwsCall, region: str, account: str) -> list[IamRequest]:
    if call.service == "dynamodb":
        requests = _dynamodb(call, f"arn:aws:dynamodb:{region}:{account}:table/")
    elif call.service == "s3":
        requests = _s3(call)
    else:
        raise UnmappedCall(f"no IAM mapping for service {call.service} ({call.describe()})")
    described = call.describe()
    return [IamRequest(r.action, r.resource, r.context, r.modeled, described) for r in requests]


# ---- DynamoDB
def _dynamodb(call: AwsCall, table_arn: str) -> list[IamRequest]:
    params, operation = call.params, call.operation
    if operation in ("BatchGetItem", "BatchWriteItem"):
        tables = params["RequestItems"]
        return [_item_request(f"dynamodb:{operation}", _table(table_arn, table), {}) for table in tables]
    if operation in ("TransactWriteItems", "TransactGetItems"):
        items = params["TransactItems"]
        return [_item_request(_TRANSACT_ACTIONS[kind], _table(table_arn, table), {}) for kind, table in items]
    if "TableName" not in params:
        raise UnmappedCall(f"no IAM mapping for {call.describe()}")
    resource = _table(table_arn, params["TableName"])
    if operation in ("Query", "Scan") and params.get("IndexName"):
        resource += f"/index/{params['IndexName']}"
    return [_item_request(f"dynamodb:{operation}", resource, params)]


def _table(table_arn: str, name: str) -> str:
    return name if name.startswith("arn:") else table_arn + name


def _item_request(action: str, resource: str, params: dict) -> IamRequest:
    """dynamodb:Attributes is computed for PutItem only (the item's attribute names, key included); for other
    actions AWS derives it from projections and update expressions, which this module does not parse."""
    context = {}
    modeled = set(_DYNAMODB_KEYS)
    for name in ("ReturnValues", "Select"):
        if name in params:
            context[f"dynamodb:{name}"] = (params[name],)
    if action == "dynamodb:PutItem" and "ItemAttributes" in params:
        context["dynamodb:Attributes"] = tuple(params["ItemAttributes"])
        modeled.add("dynamodb:Attributes")
    return IamRequest(action, resource, tuple(sorted(context.items())), frozenset(modeled))


# ---- S3
def _s3(call: AwsCall) -> list[IamRequest]:
    params, operation = call.params, call.operation
    bucket = params.get("Bucket", "")
    if operation in _S3_BUCKET_ACTIONS:
        prefix = (("s3:prefix", (params["Prefix"],)),) if "Prefix" in params else ()
        return [IamRequest(_S3_BUCKET_ACTIONS[operation], _bucket(bucket), prefix, frozenset({"s3:prefix"}))]
    if operation == "DeleteObjects":
        return [IamRequest("s3:DeleteObject", _object(bucket, key)) for key in params["DeleteKeys"]]
    if operation in _S3_COPIES:
        source_bucket, source_key = _copy_source(params["CopySource"])
        return [
            IamRequest("s3:GetObject", _object(source_bucket, source_key)),
            IamRequest("s3:PutObject", _object(bucket, params["Key"])),
        ]
    if operation in _S3_OBJECT_ACTIONS:
        requests = [IamRequest(_S3_OBJECT_ACTIONS[operation], _object(bucket, params["Key"]))]
        if operation in ("GetObject", "HeadObject") and call.error_code in _MISSING_KEY_CODES:
            requests.append(IamRequest("s3:ListBucket", _bucket(bucket), (), frozenset({"s3:prefix"})))
        return requests
    raise UnmappedCall(f"no IAM mapping for {call.describe()}")


def _bucket(bucket: str) -> str:
    return f"arn:aws:s3:::{bucket}"


def _object(bucket: str, key: str) -> str:
    return f"arn:aws:s3:::{bucket}/{key}"


def _copy_source(source) -> tuple[str, str]:
    if isinstance(source, dict):
        return source["Bucket"], source["Key"]
    bucket, _, key = source.lstrip("/").partition("/")
    return bucket, key.split("?versionId=")[0]
