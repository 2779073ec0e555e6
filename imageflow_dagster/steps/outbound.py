"""Where a webhook may go: http(s) targets whose every resolved address is public (address_ranges.py), unless the
host is allow-listed.

The guard resolves the host once and hands back the address it checked, so the request is sent to that address
(see webhook_http.py) and a DNS answer that changes between the check and the connect cannot redirect it.
"""

import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import httpx

from imageflow_dagster.steps.address_ranges import refusal_reason

ALLOW_SETTING = "IMAGEFLOW_WEBHOOK_ALLOWED_HOSTS"
SCHEMES = ("http", "https")

# host, port -> the addresses it resolves to (as text); injectable so tests can make a name resolve anywhere.
Resolver = Callable[[str, int], list[str]]


class TargetRefused(ValueError):
    """The URL may not be called: nothing was sent."""


@dataclass(frozen=True)
class Target:
    url: httpx.URL
    host: str  # as written in the URL, lower case
    port: int
    address: str  # the checked address the request is sent to


def system_resolver(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise TargetRefused(f"webhook target {host} does not resolve: {exc.strerror or exc}") from exc
    return list(dict.fromkeys(info[4][0] for info in infos))


def checked_target(url: str | httpx.URL, allowed_hosts: Iterable[str], resolve: Resolver = system_resolver) -> Target:
    """The target of `url` with the address to connect to; raises TargetRefused when any resolved address is not
    public, unless the URL's host (a name, or an IP as written) is allow-listed: listing an address does not
    admit every name that resolves to it."""
    parsed = _parsed(url)
    host = parsed.host.lower().rstrip(".")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    allowed = {entry.strip().strip("[]").lower().rstrip(".") for entry in allowed_hosts if entry.strip()}
    addresses = resolve(host, port)
    if not addresses:
        raise TargetRefused(f"webhook target {host} resolves to no address")
    if host not in allowed:
        for address in addresses:
            reason = refusal_reason(address)
            if reason:
                raise TargetRefused(
                    f"webhook target {host} ({address}) is {reason}; only public addresses are allowed unless the "
                    f"host is listed in {ALLOW_SETTING}"
                )
    return Target(url=parsed, host=host, port=port, address=addresses[0])


def _parsed(url: str | httpx.URL) -> httpx.URL:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise TargetRefused(f"webhook URL is not a valid URL: {exc}") from exc
    if parsed.scheme not in SCHEMES:
        raise TargetRefused(f"webhook URL scheme {parsed.scheme or '(none)'!r} is not allowed; use http or https")
    if not parsed.host:
        raise TargetRefused("webhook URL has no host")
    return parsed
