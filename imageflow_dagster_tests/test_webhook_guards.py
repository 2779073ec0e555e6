"""The webhook guards against real receivers on 127.0.0.1: header values refused at load, one deadline for the
whole call, redaction by what is secret, the address table, and values escaped for the body's content type."""

import json
import time
import traceback
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator
from urllib.parse import parse_qs

import pytest

from imageflow_dagster.flow.errors import BadRecordError
from imageflow_dagster.models.workflow import WorkflowStep
from imageflow_dagster.steps import webhook
from imageflow_dagster.steps.outbound import TargetRefused, checked_target
from imageflow_dagster.steps.redaction import REDACTED, looks_like_token, redacted_headers, redacted_url
from imageflow_dagster.steps.webhook_http import Outgoing, WebhookPolicy, deliver
from imageflow_dagster_tests.settings_now import settings_now
from imageflow_dagster_tests.webhook_receivers import (
    Receiver,
    execution_steps,
    notify_workflow,
    running_receiver,
    running_trickler,
)

ALLOW = "IMAGEFLOW_WEBHOOK_ALLOWED_HOSTS"
GUARD_TAIL = f"only public addresses are allowed unless the host is listed in {ALLOW}"
SECRET = "tok-4f9a-SECRET-value"
# Generous: the deadline is 1 s; without it these receivers hold the call for 20 s.
PATIENCE_S = 15
TIMED_OUT = "did not answer within 1 s (IMAGEFLOW_WEBHOOK_TIMEOUT_S)"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as state:
        yield state


@pytest.fixture
def second_receiver() -> Iterator[Receiver]:
    with running_receiver() as state:
        yield state


@pytest.fixture
def allow_receiver(monkeypatch, pipeline) -> None:
    monkeypatch.setenv(ALLOW, "127.0.0.1,localhost")
    pipeline.resources["settings"] = settings_now()


def _job_objects(s3_client, bucket: str, job) -> list[str]:
    """Every object the run wrote for the job: execution_steps.json among them, had it got that far."""
    listed = s3_client.list_objects_v2(Bucket=bucket, Prefix=f"{job.tenant_id}/jobs/{job.job_id}/")
    keys = [item["Key"] for item in listed.get("Contents", [])]
    return [s3_client.get_object(Bucket=bucket, Key=key)["Body"].read().decode(errors="replace") for key in keys]


def _resolving(*addresses: str):
    return lambda host, port: list(addresses)


# --- header values that HTTP cannot carry -------------------------------------------------------------------


CONTROL_HINT = " (a pasted value often ends with a line break); remove it"


@pytest.mark.parametrize(
    "value, problem",
    [
        (SECRET + "\n", "has a control character (U+000A) in its value" + CONTROL_HINT),
        (SECRET + "\r", "has a control character (U+000D) in its value" + CONTROL_HINT),
        (SECRET + "\r\nX-Injected: 1", "has a control character (U+000D) in its value" + CONTROL_HINT),
        (SECRET + "\x00", "has a control character (U+0000) in its value" + CONTROL_HINT),
        (SECRET + "\x1b", "has a control character (U+001B) in its value" + CONTROL_HINT),
        (SECRET + "\x7f", "has a control character (U+007F) in its value" + CONTROL_HINT),
        (SECRET + "é", "has a non-ASCII character in its value; HTTP headers are ASCII"),
    ],
    ids=["line-feed", "carriage-return", "injected-header", "nul", "escape", "delete", "non-ascii"],
)
def test_a_header_value_http_cannot_carry_fails_the_job_at_load_without_showing_it(
    pipeline, settings, s3_client, receiver, allow_receiver, openai_server, value, problem
):
    headers = {"X-Api-Token": value, "X-Team": "growth"}
    job = pipeline.submit(notify_workflow(receiver.url(), webhook_headers=headers))
    result = pipeline.run(job.job_id)
    assert not result.success
    row = pipeline.job(job.job_id)
    assert (row["status"], row["error_type"]) == ("failed", "InvalidJobRecord")
    assert row["error_message"] == (
        f"Workflow {job.workflow_id} step 2 (Notify CRM) has invalid webhook settings: webhook_headers: "
        f"Value error, header 'X-Api-Token' {problem}"
    )
    assert receiver.requests == [] and openai_server.requests() == []  # refused before anything ran
    events = str(result.all_events)
    assert "header 'X-Api-Token'" in events  # the run's events carry the failure...
    assert not any(SECRET in text for text in [json.dumps(row, default=str), events, *_job_objects(s3_client, settings.bucket, job)])


def test_the_traceback_of_a_refused_header_does_not_show_its_value():
    """What a log handler prints for the load error, the pydantic error it was raised from included."""
    step = WorkflowStep(step_name="Notify", webhook_url="https://x.test/h", webhook_headers={"X-Key": SECRET + "\n"})
    with pytest.raises(BadRecordError) as refused:
        webhook.check(step, "Workflow wf_1 step 1")
    printed = "".join(traceback.format_exception(refused.value))
    assert "header 'X-Key' has a control character (U+000A)" in printed and SECRET not in printed


def test_an_invalid_header_name_or_content_type_is_refused_at_load(pipeline, receiver, allow_receiver):
    bad_name = pipeline.submit(notify_workflow(receiver.url(), webhook_headers={"X Api": "1"}))
    bad_type = pipeline.submit(notify_workflow(receiver.url(), webhook_content_type="application/json\r\nX-A: 1"))
    assert not pipeline.run(bad_name.job_id).success and not pipeline.run(bad_type.job_id).success
    assert pipeline.job(bad_name.job_id)["error_message"].endswith(
        "webhook_headers: Value error, header name 'X Api' is not a valid HTTP header name"
    )
    assert "webhook_content_type: Value error, header 'Content-Type' has a control character (U+000D)" in (
        pipeline.job(bad_type.job_id)["error_message"]
    )
    assert receiver.requests == []


def test_blanks_around_a_header_value_are_not_part_of_it(pipeline, receiver, allow_receiver):
    job = pipeline.submit(notify_workflow(receiver.url(), webhook_headers={"X-Team": "  growth\t"}))
    assert pipeline.run(job.job_id).success
    assert receiver.requests[0].headers["x-team"] == "growth"


# --- one deadline for the whole call ------------------------------------------------------------------------


def test_a_receiver_trickling_its_body_fails_the_step_at_the_deadline(pipeline, settings, s3_client, monkeypatch):
    monkeypatch.setenv("IMAGEFLOW_WEBHOOK_TIMEOUT_S", "1")
    monkeypatch.setenv(ALLOW, "127.0.0.1")
    pipeline.resources["settings"] = settings_now()
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 80\r\n\r\n"
    with running_trickler(head, b"." * 80, every_s=0.25) as trickler:
        job = pipeline.submit(notify_workflow(trickler.url))
        started = time.monotonic()
        assert not pipeline.run(job.job_id).success
        assert time.monotonic() - started < PATIENCE_S
        assert trickler.requests == 1  # a timeout is not retried: the receiver may have acted on it
    row = pipeline.job(job.job_id)
    assert (row["status"], row["error_type"]) == ("failed", "WebhookFailed")
    assert row["error_message"] == f"Step 2 (Notify CRM) failed: webhook POST {trickler.url}: {TIMED_OUT}"
    sent = execution_steps(pipeline, s3_client, settings, job)[2]
    assert (sent["success"], sent["attempts"], sent["error"]) == (False, 1, row["error_message"])


def test_a_receiver_trickling_its_headers_is_cut_off_at_the_deadline():
    status_line = b"HTTP/1.1 200 OK\r\nX-Slow: " + b"." * 70 + b"\r\nContent-Length: 0\r\n\r\n"
    with running_trickler(b"", status_line, every_s=0.25) as trickler:
        started = time.monotonic()
        delivery = deliver(Outgoing("POST", trickler.url, {}, b"{}"), WebhookPolicy(("127.0.0.1",), timeout_s=1))
        assert time.monotonic() - started < PATIENCE_S
    assert (delivery.success, delivery.status, delivery.attempts, delivery.error) == (False, None, 1, TIMED_OUT)


def test_redirects_share_the_deadline(receiver):
    """Each redirect comes in 0.5 s, well within a 1 s timeout of its own; three of them do not."""
    for hop in range(3):
        receiver.answer(307, delay_s=0.5, Location=f"/hop{hop + 1}")
    delivery = deliver(Outgoing("POST", receiver.url(), {}, b"{}"), WebhookPolicy(("127.0.0.1",), timeout_s=1))
    assert (delivery.success, delivery.error) == (False, TIMED_OUT)
    assert "/hop3" not in [r.path for r in receiver.requests]  # the end of the chain was never asked


def test_a_slow_answer_within_the_deadline_is_taken(receiver):
    receiver.answer(200, b"fine", delay_s=0.5)
    delivery = deliver(Outgoing("POST", receiver.url(), {}, b"{}"), WebhookPolicy(("127.0.0.1",), timeout_s=3))
    assert (delivery.success, delivery.body_excerpt) == (True, "fine")


# --- redaction by what is secret ----------------------------------------------------------------------------


def test_only_harmless_headers_and_url_parts_are_recorded_in_clear(
    pipeline, settings, s3_client, receiver, allow_receiver
):
    path_token, state = "Zx8kQ2mN7pLr4VbT9cWy3HdE", "9f86d081884c7d659a2feaa0c55ad015"
    headers = {
        "Authorization": "Bearer au-secret-1",
        "X-Auth": "xa-secret-2",
        "X-Api-Id": "id-secret-3",
        "X-Team": "growth",
        "Accept": "application/json",
        "User-Agent": "imageflow-test/1",
    }
    url = receiver.url(f"/hooks/{path_token}")
    params = {"state": state, "page": "2"}
    job = pipeline.submit(notify_workflow(url, webhook_headers=headers, webhook_query_params=params))
    assert pipeline.run(job.job_id).success

    [request] = receiver.requests
    assert request.path == f"/hooks/{path_token}?state={state}&page=2"
    assert all(request.headers[name.lower()] == value for name, value in headers.items())
    steps = execution_steps(pipeline, s3_client, settings, job)
    sent = steps[2]
    assert sent["input"]["url"] == receiver.url(f"/hooks/{REDACTED}?state={REDACTED}&page=2")
    assert sent["input"]["headers"] == {
        "Authorization": REDACTED,
        "X-Auth": REDACTED,
        "X-Api-Id": REDACTED,
        "X-Team": REDACTED,
        "Accept": "application/json",
        "User-Agent": "imageflow-test/1",
        "Content-Type": "application/json",
    }
    recorded = json.dumps(steps) + json.dumps(pipeline.job(job.job_id), default=str)
    for secret in ("au-secret-1", "xa-secret-2", "id-secret-3", path_token, state):
        assert secret not in recorded


def test_a_redirect_to_another_origin_carries_only_harmless_headers(
    pipeline, settings, s3_client, receiver, second_receiver, allow_receiver
):
    receiver.answer(307, Location=second_receiver.url("/elsewhere"))  # same host, another port
    second_receiver.answer(307, Location=receiver.url("/back", host="localhost"))  # another host
    headers = {"Authorization": "Bearer au-secret-1", "X-Api-Id": "id-secret-3", "Accept": "application/json"}
    job = pipeline.submit(notify_workflow(receiver.url(), webhook_headers=headers))
    assert pipeline.run(job.job_id).success

    first, back = receiver.requests
    [elsewhere] = second_receiver.requests
    assert (first.headers["authorization"], first.headers["x-api-id"]) == ("Bearer au-secret-1", "id-secret-3")
    for request in (elsewhere, back):
        assert "authorization" not in request.headers and "x-api-id" not in request.headers
        assert (request.headers["accept"], request.headers["content-type"]) == ("application/json", "application/json")
    assert (elsewhere.path, back.path) == ("/elsewhere", "/back")
    sent = execution_steps(pipeline, s3_client, settings, job)[2]
    assert sent["input"]["headers"] == {
        "Authorization": REDACTED,
        "X-Api-Id": REDACTED,
        "Accept": "application/json",
        "Content-Type": "application/json",
    }


def test_a_same_origin_redirect_keeps_the_credentials(receiver):
    receiver.answer(308, Location="/next")
    outgoing = Outgoing("POST", receiver.url(), {"X-Api-Id": "id-3"}, b"{}")
    assert deliver(outgoing, WebhookPolicy(("127.0.0.1",))).success
    assert [r.headers["x-api-id"] for r in receiver.requests] == ["id-3", "id-3"]


def test_headers_off_the_allow_list_are_redacted_whatever_their_name():
    headers = {"X-Auth": "a", "X-Api-Id": "b", "X-Custom": "c", "Authorization": "d", "Cookie": "e"}
    harmless = {"Accept": "*/*", "content-type": "text/plain", "User-Agent": "ua", "Accept-Language": "en"}
    assert redacted_headers({**headers, **harmless}) == {**{name: REDACTED for name in headers}, **harmless}


@pytest.mark.parametrize(
    "url, shown",
    [
        ("https://x.test/hooks/Zx8kQ2mN7pLr4VbT9cWy3HdE", f"https://x.test/hooks/{REDACTED}"),
        ("https://x.test/h/123e4567-e89b-12d3-a456-426614174000/go", f"https://x.test/h/{REDACTED}/go"),
        ("https://x.test/k/sk_live_51H8abcDEFghiJKLmno", f"https://x.test/k/{REDACTED}"),
        ("https://x.test/a?id=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln", f"https://x.test/a?id={REDACTED}"),
        ("https://x.test/a?state=9f86d081884c7d659a2feaa0c55ad015&page=2", f"https://x.test/a?state={REDACTED}&page=2"),
        ("https://x.test/a#k3j9x2m8q1p7w4z6", f"https://x.test/a#{REDACTED}"),
        ("https://u:pw@x.test/a?token=1&sig=3", f"https://u:%5Bredacted%5D@x.test/a?token={REDACTED}&sig={REDACTED}"),
        ("https://hooks.slack.com/services/T1/B2/XYZ", f"https://hooks.slack.com/services/{REDACTED}"),
        # Words, dates and short ids stay readable.
        ("https://x.test/orders/order-confirmation-2024/v2?page=12&sort=created_at", None),
        ("https://x.test/customer_42_orders/2024-01-15-report", None),
    ],
)
def test_token_like_url_parts_are_redacted(url, shown):
    assert redacted_url(url) == (shown or url)


def test_what_looks_like_a_token():
    tokens = ["aZ3kQ9pLm2XvB7nR4tYw", "ghp_1a2b3c4d5e6f7a8b9c0d1e2f", "1234567890abcdef", "OrderAbc123XyzQ9"]
    words = ["order-confirmation-2024", "imageflow-webhooks", "1234567890123456789", "short1A2b", "a b c d e f g h i"]
    assert [looks_like_token(t) for t in tokens] == [True] * len(tokens)
    assert [looks_like_token(w) for w in words] == [False] * len(words)


# --- the address table --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address, reason",
    [
        ("0.1.2.3", "unspecified"),
        ("10.1.2.3", "private"),
        ("100.127.255.254", "shared address space (carrier-grade NAT)"),
        ("127.8.8.8", "loopback"),
        ("169.254.169.254", "link-local"),
        ("172.31.255.255", "private"),
        ("192.0.0.8", "reserved for IETF protocols"),
        ("192.0.2.1", "documentation"),
        ("192.88.99.1", "6to4 relay anycast (deprecated)"),
        ("192.168.1.1", "private"),
        ("198.19.0.1", "benchmarking"),
        ("198.51.100.7", "documentation"),
        ("203.0.113.9", "documentation"),
        ("239.255.255.250", "multicast"),
        ("255.255.255.255", "broadcast"),
        ("250.1.2.3", "reserved"),
        ("::", "unspecified"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.0.0.1", "private"),
        ("64:ff9b::7f00:1", "loopback"),  # NAT64 of 127.0.0.1
        ("64:ff9b::a9fe:a9fe", "link-local"),  # NAT64 of 169.254.169.254
        ("64:ff9b:1::1", "local-use IPv4/IPv6 translation"),
        ("100::1", "discard-only"),
        ("2001::1", "reserved for IETF protocols"),  # Teredo: all of 2001::/23 is refused
        ("2001:db8::1", "documentation"),
        ("2002:7f00:1::", "6to4 (deprecated)"),
        ("2002:5db8:d822::1", "6to4 (deprecated)"),  # even of a public IPv4 address
        ("3fff::1", "documentation"),
        ("5f00::1", "segment routing (SRv6)"),
        ("fd00::1", "private"),
        ("fe80::1%eth0", "link-local"),
        ("fec0::1", "site-local (deprecated)"),
        ("ff02::1", "multicast"),
        ("::7f00:1", "not a global unicast address (outside 2000::/3)"),  # IPv4-compatible, deprecated
        ("4000::1", "not a global unicast address (outside 2000::/3)"),
    ],
)
def test_the_address_table_refuses_every_special_purpose_range(address, reason):
    with pytest.raises(TargetRefused) as refused:
        checked_target("https://hooks.internal.test/x", (), resolve=_resolving(address))
    assert str(refused.value) == f"webhook target hooks.internal.test ({address}) is {reason}; {GUARD_TAIL}"


@pytest.mark.parametrize(
    "address",
    ["93.184.216.34", "8.8.8.8", "192.31.196.1", "2606:4700:4700::1111", "::ffff:93.184.216.34", "64:ff9b::5db8:d822"],
)
def test_public_addresses_pass_the_table(address):
    assert checked_target("https://api.example.com/x", (), resolve=_resolving(address)).address == address


def test_the_allow_list_still_admits_a_listed_special_address():
    target = checked_target("http://[fec0::1]/x", ("[fec0::1]",), resolve=_resolving("fec0::1"))
    assert target.address == "fec0::1"


@pytest.mark.parametrize(
    "host, reason", [("[2002:7f00:1::]", "6to4 (deprecated)"), ("[fec0::1]", "site-local (deprecated)")]
)
def test_a_webhook_to_a_special_ipv6_address_fails_and_sends_nothing(pipeline, monkeypatch, host, reason):
    monkeypatch.delenv(ALLOW, raising=False)
    pipeline.resources["settings"] = settings_now()
    job = pipeline.submit(notify_workflow(f"http://{host}:8080/hook"))
    assert not pipeline.run(job.job_id).success
    row = pipeline.job(job.job_id)
    assert (row["status"], row["error_type"]) == ("failed", "WebhookRefused")
    address = host.strip("[]")
    assert row["error_message"] == (
        f"Step 2 (Notify CRM) failed: webhook target {address} ({address}) is {reason}; {GUARD_TAIL}"
    )


# --- values escaped for the body's content type -------------------------------------------------------------

TRICKY = "a&b=c<d>\"' +%é"


def test_form_values_are_percent_encoded(pipeline, receiver, allow_receiver):
    template = "name={{ submission.name }}&company={{ submission.company }}&job={{ job.job_id }}"
    workflow = notify_workflow(
        receiver.url(),
        webhook_body_mode="custom",
        webhook_body=template,
        webhook_content_type="application/x-www-form-urlencoded",
    )
    job = pipeline.submit(workflow, {"name": TRICKY, "company": "Acme & Co", "email": "ada@example.com"})
    assert pipeline.run(job.job_id).success
    [request] = receiver.requests
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert parse_qs(request.body.decode(), strict_parsing=True) == {
        "name": [TRICKY],
        "company": ["Acme & Co"],
        "job": [job.job_id],
    }


def test_xml_values_are_escaped(pipeline, receiver, allow_receiver):
    template = (
        "<lead job='{{ job.job_id }}' name=\"{{ submission.name }}\"><company>{{ submission.company }}</company></lead>"
    )
    workflow = notify_workflow(
        receiver.url(), webhook_body_mode="custom", webhook_body=template, webhook_content_type="application/xml"
    )
    job = pipeline.submit(workflow, {"name": TRICKY, "company": "</company><admin>1</admin>", "email": "a@b.test"})
    assert pipeline.run(job.job_id).success
    lead = ElementTree.fromstring(receiver.requests[0].body)
    assert (lead.get("job"), lead.get("name")) == (job.job_id, TRICKY)
    assert [(child.tag, child.text) for child in lead] == [("company", "</company><admin>1</admin>")]


def test_json_values_are_json_escaped(pipeline, receiver, allow_receiver):
    template = '{"name": "{{ submission.name }}"}'
    job = pipeline.submit(
        notify_workflow(receiver.url(), webhook_body_mode="custom", webhook_body=template),
        {"name": TRICKY + '\\"}\n', "email": "a@b.test"},
    )
    assert pipeline.run(job.job_id).success
    assert receiver.requests[0].json() == {"name": TRICKY + '\\"}\n'}
