"""What leaves the deployment in records and alerts: addresses a webhook may not reach
(steps/address_ranges.py), masked URLs and headers (steps/redaction.py), and alert text (alerts/text.py)."""

import pytest

from imageflow_dagster.alerts.text import error_line, run_link, scrubbed
from imageflow_dagster.steps.address_ranges import refusal_reason
from imageflow_dagster.steps.redaction import looks_like_token, redacted_headers, redacted_url

SECRET = "hunter2-the-password"


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("10.1.2.3", "private"),
        ("100.64.0.1", "shared address space (carrier-grade NAT)"),
        ("169.254.169.254", "link-local"),  # cloud metadata
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped: the IPv4 address decides
        ("64:ff9b::a00:1", "private"),  # NAT64 of 10.0.0.1
        ("2002:0808:0808::1", "6to4 (deprecated)"),
        ("2001::1", "reserved for IETF protocols"),  # Teredo
        ("fec0::1", "site-local (deprecated)"),
        ("fe80::1%eth0", "link-local"),  # a zone id is dropped, not a way round
        ("3fff::1", "documentation"),
        ("4000::1", "not a global unicast address (outside 2000::/3)"),
        ("8.8.8.8", None),
        ("2606:4700::1111", None),
        ("::ffff:8.8.8.8", None),
    ],
)
def test_webhook_targets_are_refused_by_iana_special_purpose_range(address, reason):
    assert refusal_reason(address) == reason


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "https://user:pw@h.example/a?x=1&api_key=zz",
            "https://user:%5Bredacted%5D@h.example/a?x=1&api_key=[redacted]",
        ),
        ("https://h.example/in?q=Abc123Def456Ghi789#frag", "https://h.example/in?q=[redacted]#frag"),
        ("https://hooks.slack.com/services/T0/B0/xyz", "https://hooks.slack.com/services/[redacted]"),
        (
            "https://h.example/orders/order-confirmation-2024",
            "https://h.example/orders/order-confirmation-2024",
        ),
        ("https://h.example/v1/9f86d081884c7d659a2feaa0c55ad015", "https://h.example/v1/[redacted]"),
        ("http://[::1", "[redacted]"),  # unparsable: nothing of it is shown
    ],
)
def test_recorded_urls_mask_credentials_and_token_like_parts(url, shown):
    assert redacted_url(url) == shown


def test_only_harmless_headers_are_recorded_in_clear():
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "imageflow",
        "Authorization": "Bearer x",
        "X-Key": "k",
    }
    assert redacted_headers(headers) == {
        "Content-Type": "application/json",
        "User-Agent": "imageflow",
        "Authorization": "[redacted]",
        "X-Key": "[redacted]",
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl", True),  # a JWT
        ("123e4567-e89b-12d3-a456-426614174000", True),  # a UUID
        ("sk_live_4eC39HqLyjWDarjtT1zdp7dc", True),
        ("order-confirmation-2024", False),
        ("shortToken1", False),
        ("20260102030405060708", False),  # digits only: a timestamp, not a key
    ],
)
def test_tokens_are_told_from_words_by_their_shape(text, expected):
    assert looks_like_token(text) is expected


def test_an_alerts_error_line_is_the_first_line_with_every_secret_masked():
    message = f"failed: Bearer abc.def for https://u:p@api.example/?key=zz ({SECRET})\nTraceback"
    line = error_line(message, [SECRET], keep=set())
    assert (
        line
        == "failed: Bearer [redacted] for https://u:%5Bredacted%5D@api.example/?key=[redacted] ([redacted])"
    )


def test_an_alert_keeps_the_ids_it_names_and_readable_dotted_names():
    run_id = "7f3a9b2c-1d4e-4f5a-9b8c-0d1e2f3a4b5c"
    assert error_line(f"run {run_id} lost", [], keep={run_id}) == f"run {run_id} lost"
    assert (
        error_line("botocore.exceptions.ClientError: denied", [], set())
        == "botocore.exceptions.ClientError: denied"
    )
    assert error_line("", [], set()) == "no error message"


def test_an_sdk_exception_name_stays_readable_in_an_alert():
    assert (
        error_line("openai.AuthenticationError: bad key", [], set()) == "openai.AuthenticationError: bad key"
    )


def test_alert_fields_cannot_mention_a_channel_or_break_lines():
    assert scrubbed("hi @channel <https://x|click>\nnext", []) == "hi @\u200bchannel ‹https://x|click› next"
    assert scrubbed("x" * 200, [], limit=10) == "x" * 9 + "…"


def test_a_run_link_leaves_out_the_configured_urls_credentials_query_and_fragment():
    assert (
        run_link("https://u:p@dagster.example:3000/base/?q=1#f", "r1")
        == "https://dagster.example:3000/base/runs/r1"
    )
    assert run_link("ftp://dagster.example", "r1") is None
    assert run_link(None, "r1") is None and run_link("https://d.example", None) is None
