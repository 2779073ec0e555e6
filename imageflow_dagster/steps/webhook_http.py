"""Sending one webhook request: to the address the guard checked, each redirect checked again (credentials not
carried to another origin), within one deadline (webhook_deadline.py), bounded retries on connection errors, 429
and 5xx (Retry-After honoured up to a cap)."""

import email.utils
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

import httpx

from imageflow_dagster.settings import Settings
from imageflow_dagster.steps.outbound import Resolver, Target, TargetRefused, checked_target, system_resolver
from imageflow_dagster.steps.redaction import is_harmless_header, redacted_url
from imageflow_dagster.steps.webhook_deadline import Deadline, DeadlinePassed

TIMEOUT_SETTING = "IMAGEFLOW_WEBHOOK_TIMEOUT_S"
REDIRECT_STATUSES = (301, 302, 303, 307, 308)
RESPONSE_EXCERPT_CHARS = 1000
_EXCERPT_BYTES = 4 * RESPONSE_EXCERPT_CHARS  # enough bytes for 1000 characters of UTF-8; the rest is not read
# Worth trying again: the request most likely never reached the receiver.
_RETRYABLE_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError)


@dataclass(frozen=True)
class WebhookPolicy:
    allowed_hosts: tuple[str, ...] = ()
    timeout_s: float = Settings.webhook_timeout_s  # settings.py's one default
    retries: int = 2
    max_redirects: int = 3
    retry_after_cap_s: float = 10.0
    backoff_s: float = 0.5
    resolve: Resolver = system_resolver
    sleep: Callable[[float], None] = time.sleep

    @classmethod
    def from_settings(cls, settings) -> "WebhookPolicy":
        return cls(allowed_hosts=tuple(settings.webhook_allowed_hosts), timeout_s=settings.webhook_timeout_s)


@dataclass(frozen=True)
class Outgoing:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None


@dataclass
class Delivery:
    status: int | None = None
    body_excerpt: str = ""
    error: str | None = None
    attempts: int = 0
    refused: bool = False  # the guard refused a target: nothing was sent to it

    @property
    def success(self) -> bool:
        return self.error is None and self.status is not None and 200 <= self.status < 300


class _TooManyRedirects(Exception):
    pass


class _NoAnswerInTime(Exception):
    pass


def deliver(outgoing: Outgoing, policy: WebhookPolicy) -> Delivery:
    delivery = Delivery()
    for attempt in range(policy.retries + 1):
        delivery.attempts = attempt + 1
        wait = policy.backoff_s * (2**attempt)
        try:
            delivery.status, delivery.body_excerpt, retry_after = _attempt(outgoing, policy)
        except TargetRefused as exc:
            delivery.error, delivery.refused, delivery.status = str(exc), True, None
            return delivery
        except _RETRYABLE_ERRORS as exc:
            delivery.status, delivery.error = None, f"could not connect: {_error_text(exc)}"
        except _NoAnswerInTime:
            # The receiver may have acted on it: sending again could deliver twice.
            delivery.status, delivery.error = None, f"did not answer within {policy.timeout_s:g} s ({TIMEOUT_SETTING})"
            return delivery
        except (httpx.HTTPError, _TooManyRedirects) as exc:
            delivery.status, delivery.error = None, _error_text(exc)
            return delivery
        else:
            retryable = delivery.status == 429 or delivery.status >= 500
            delivery.error = None if 200 <= delivery.status < 300 else f"HTTP {delivery.status}"
            if not retryable:
                return delivery
            wait = min(retry_after, policy.retry_after_cap_s) if retry_after is not None else wait
        if attempt < policy.retries:
            policy.sleep(wait)
    if delivery.attempts > 1:
        delivery.error = f"{delivery.error} (after {delivery.attempts} attempts)"
    return delivery


def _attempt(outgoing: Outgoing, policy: WebhookPolicy) -> tuple[int, str, float | None]:
    """One try of the request, its redirects included, within `policy.timeout_s`."""
    with Deadline(policy.timeout_s) as deadline, httpx.Client(follow_redirects=False, trust_env=False) as client:
        try:
            return _exchange(client, outgoing, policy, deadline)
        except (httpx.ConnectError, httpx.ConnectTimeout):
            raise  # nothing reached the receiver: worth another try
        except (httpx.HTTPError, DeadlinePassed) as exc:
            # Once the deadline has shut the connection down, whatever failed, failed for want of time.
            if deadline.expired or isinstance(exc, (httpx.TimeoutException, DeadlinePassed)):
                raise _NoAnswerInTime() from exc
            raise


def _exchange(
    client: httpx.Client, outgoing: Outgoing, policy: WebhookPolicy, deadline: Deadline
) -> tuple[int, str, float | None]:
    """(status, response excerpt, Retry-After seconds) of the request, following at most `max_redirects`
    redirects, each to a target the guard accepts."""
    method, url, headers, body = outgoing.method, outgoing.url, dict(outgoing.headers), outgoing.body
    for hop in range(policy.max_redirects + 1):
        try:
            target = checked_target(url, policy.allowed_hosts, policy.resolve)
        except TargetRefused as exc:
            raise TargetRefused(f"redirected to {redacted_url(url)}: {exc}" if hop else str(exc)) from exc
        response = _send_pinned(client, target, method, headers, body, deadline)
        try:
            excerpt = _excerpt(response)
        finally:
            response.close()
        location = response.headers.get("location")
        if response.status_code not in REDIRECT_STATUSES or not location:
            return response.status_code, excerpt, parse_retry_after(response.headers.get("retry-after"))
        next_url = target.url.join(location)
        if response.status_code == 303 or (response.status_code in (301, 302) and method == "POST"):
            method, body = "GET", None
        if _origin(next_url) != _origin(target.url):  # credentials meant for one origin are not handed to another
            headers = {name: value for name, value in headers.items() if is_harmless_header(name)}
        url = next_url
    raise _TooManyRedirects(f"more than {policy.max_redirects} redirects (last to {redacted_url(url)})")


def _origin(url: httpx.URL) -> tuple[str, str, int]:
    return url.scheme, url.host, url.port or (443 if url.scheme == "https" else 80)


def _send_pinned(
    client: httpx.Client, target: Target, method: str, headers: dict[str, str], body: bytes | None, deadline: Deadline
) -> httpx.Response:
    """The request sent to the checked address, with the original Host header and TLS server name, so a second
    DNS answer cannot point it elsewhere."""
    pinned = target.url.copy_with(host=target.address)
    default_port = 443 if target.url.scheme == "https" else 80
    host_header = target.host if target.port == default_port else f"{target.host}:{target.port}"
    if ":" in target.host:
        host_header = f"[{target.host}]" if target.port == default_port else f"[{target.host}]:{target.port}"
    sent_headers = {name: value for name, value in headers.items() if name.lower() != "host"}
    sent_headers["Host"] = host_header
    extensions = {"trace": deadline.trace}
    if target.url.scheme == "https":
        extensions["sni_hostname"] = target.host
    request = client.build_request(
        method, pinned, headers=sent_headers, content=body, extensions=extensions, timeout=deadline.timeout()
    )
    return client.send(request, stream=True)


def _excerpt(response: httpx.Response) -> str:
    read = b""
    for chunk in response.iter_bytes():
        read += chunk
        if len(read) >= _EXCERPT_BYTES:
            break
    return read.decode(response.encoding or "utf-8", errors="replace")[:RESPONSE_EXCERPT_CHARS]


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def _error_text(exc: Exception) -> str:
    return str(exc) or type(exc).__name__
