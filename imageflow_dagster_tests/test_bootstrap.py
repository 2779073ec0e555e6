"""`bootstrap()` and the bucket policy (moto): an existing policy is left as is unless `public_images` is asked;
asked, our one public-read statement joins the policy's other statements; a fresh local bucket serves images."""

import json
import urllib.error
import urllib.request

import pytest
from botocore.exceptions import ClientError

from imageflow_dagster.bootstrap import bootstrap, public_read_statement

WOULD_ADD = "public read (s3:GetObject for everyone) of *.png, *.jpg, *.jpeg, *.gif, *.webp, *.svg"


def seed_bucket_policy(bucket: str) -> dict:
    """A deployed bucket's policy: HTTPS only, and reads for the CloudFront distribution in front of it."""
    return {
        "Version": "2012-10-17",
        "Id": "SeedArtifactsBucketPolicy",
        "Statement": [
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            },
            {
                "Sid": "AllowCloudFrontServicePrincipal",
                "Effect": "Allow",
                "Principal": {"Service": "cloudfront.amazonaws.com"},
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{bucket}/*",
                "Condition": {"StringEquals": {"AWS:SourceArn": "arn:aws:cloudfront::123456789012:distribution/E2SEED"}},
            },
        ],
    }


@pytest.fixture
def seed_policy_text(settings, s3_client) -> str:
    """The seed's policy on the test bucket, indented so that any rewrite of it would show in its bytes."""
    text = json.dumps(seed_bucket_policy(settings.bucket), indent=2)
    s3_client.put_bucket_policy(Bucket=settings.bucket, Policy=text)
    return text


def stored_policy(s3_client, bucket: str) -> str:
    return s3_client.get_bucket_policy(Bucket=bucket)["Policy"]


def test_without_the_flag_an_existing_policy_is_kept_byte_for_byte(settings, s3_client, seed_policy_text):
    done = bootstrap(settings)
    assert stored_policy(s3_client, settings.bucket) == seed_policy_text
    assert f"bucket {settings.bucket}: bucket policy left as is; --public-images would add {WOULD_ADD}" in done


def test_with_the_flag_every_other_statement_survives(settings, s3_client, seed_policy_text):
    done = bootstrap(settings, public_images=True)
    seed = seed_bucket_policy(settings.bucket)
    ours = public_read_statement(settings.bucket)
    assert json.loads(stored_policy(s3_client, settings.bucket)) == {**seed, "Statement": [*seed["Statement"], ours]}
    assert f"bucket {settings.bucket}: bucket policy: added {WOULD_ADD}, kept 2 other statement(s)" in done

    merged = stored_policy(s3_client, settings.bucket)  # asked again: nothing to add, nothing written
    assert f"bucket {settings.bucket}: bucket policy has public read for images already" in bootstrap(
        settings, public_images=True
    )
    assert stored_policy(s3_client, settings.bucket) == merged


def test_without_the_flag_a_bucket_without_policy_gets_none(settings, s3_client):
    s3_client.delete_bucket_policy(Bucket=settings.bucket)  # the settings fixture asked for public images
    done = bootstrap(settings)
    with pytest.raises(ClientError) as raised:
        s3_client.get_bucket_policy(Bucket=settings.bucket)
    assert raised.value.response["Error"]["Code"] == "NoSuchBucketPolicy"
    assert f"bucket {settings.bucket}: no bucket policy, none written; --public-images would add {WOULD_ADD}" in done


def test_with_the_flag_a_fresh_local_bucket_serves_images_to_anyone(settings, s3_client, moto_endpoint):
    s3_client.delete_bucket_policy(Bucket=settings.bucket)
    bootstrap(settings, public_images=True)
    policy = json.loads(stored_policy(s3_client, settings.bucket))
    assert policy == {"Version": "2012-10-17", "Statement": [public_read_statement(settings.bucket)]}

    for key in ("tenant_demo/jobs/job_1/image.png", "tenant_demo/jobs/job_1/execution_steps.json"):
        s3_client.put_object(Bucket=settings.bucket, Key=key, Body=b"bytes")
    base = f"{moto_endpoint}/{settings.bucket}/tenant_demo/jobs/job_1"
    assert urllib.request.urlopen(f"{base}/image.png", timeout=10).read() == b"bytes"  # no credentials
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{base}/execution_steps.json", timeout=10)
    assert refused.value.code == 403
