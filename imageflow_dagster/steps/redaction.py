"""What of an outbound request may be recorded: secret-looking headers, query values and credentials are masked,
because execution steps are served to anyone who can open the job."""

from urllib.parse import urlencode

import httpx

REDACTED = "[redacted]"
SECRET_MARKERS = ("authorization", "token", "key", "secret", "signature", "cookie", "password", "credential")
SECRET_QUERY_MARKERS = (*SECRET_MARKERS, "sig", "auth")
SLACK_HOST = "hooks.slack.com"


def is_secret_name(name: str, markers: tuple[str, ...] = SECRET_MARKERS) -> bool:
    lowered = name.lower()
    return any(marker in lowered for marker in markers)


def redacted_headers(headers: dict[str, str]) -> dict[str, str]:
    return {name: REDACTED if is_secret_name(name) else value for name, value in headers.items()}


def redacted_url(url: str | httpx.URL) -> str:
    """`url` with secret-looking query values, URL credentials and a Slack webhook's secret path masked."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        return REDACTED
    changes = {}
    if parsed.userinfo:
        changes["userinfo"] = f"{parsed.username}:{REDACTED}".encode() if parsed.password else parsed.userinfo
    if parsed.host == SLACK_HOST and parsed.path.count("/") > 1:
        changes["path"] = "/" + parsed.path.lstrip("/").split("/", 1)[0] + "/" + REDACTED
    if parsed.query:
        pairs = [
            (name, REDACTED if is_secret_name(name, SECRET_QUERY_MARKERS) else value)
            for name, value in parsed.params.multi_items()
        ]
        changes["query"] = urlencode(pairs, safe="[]").encode()
    return str(parsed.copy_with(**changes)) if changes else str(parsed)
