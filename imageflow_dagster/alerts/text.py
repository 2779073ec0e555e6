"""What an alert may say, and how it says it. An alert leaves the deployment for a chat channel, so it names a job
(id, tenant, workflow) and the first line of its error, with every secret masked: imageflow stores error messages
as they came (an SDK's, a webhook receiver's, a step name a person typed), so nothing upstream is trusted to
have redacted them."""

import re
from urllib.parse import urlsplit, urlunsplit

from imageflow_dagster.steps.redaction import REDACTED, looks_like_token, redacted_url

MAX_ERROR_CHARS = 240
MAX_FIELD_CHARS = 120
# A job the jobs sensor failed before launching a run has no run page to link: say so, and what to do.
RUNLESS_NOTE = "run: none: the jobs sensor failed it before any run (its records cannot run: fix them, then rerun)"
_URL_OR_TOKEN = re.compile(r"(?P<url>https?://[^\s'\"<>]+)|(?P<token>[A-Za-z0-9_\-.~+/=]{16,})")
_BEARER = re.compile(r"(?i)\b(bearer|basic|token)\s+\S+")
_CAMEL_CASE_NAME = re.compile(r"(?:[A-Z][a-z]+){2,}")
# Chat receivers turn these into mentions or links: a failing job's text must not page a whole channel.
_MARKUP = str.maketrans({"<": "‹", ">": "›"})
_MENTION = re.compile(r"@(?=(channel|here|all|everyone)\b)", re.IGNORECASE)


def scrubbed(text: object, secrets: list[str], limit: int = MAX_FIELD_CHARS) -> str:
    """An id-like field: known secrets masked, chat markup neutralised, one line, bounded."""
    line = str(text or "").replace("\r", " ").replace("\n", " ").strip()
    for secret in secrets:
        line = line.replace(secret, REDACTED)
    line = _MENTION.sub("@\u200b", line.translate(_MARKUP))
    return line if len(line) <= limit else line[: limit - 1] + "…"


def error_line(message: object, secrets: list[str], keep: set[str]) -> str:
    """The error's first line, safe to post: known secrets, URL credentials and tokens, authorization values and
    token-looking words masked; `keep` are ids the alert names anyway (a run id looks random too)."""
    lines = [line for line in str(message or "").splitlines() if line.strip()]
    line = lines[0].strip() if lines else "no error message"
    for secret in secrets:
        line = line.replace(secret, REDACTED)
    line = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", line)
    line = _URL_OR_TOKEN.sub(lambda m: _masked(m, keep), line)
    return scrubbed(line, [], MAX_ERROR_CHARS)


def _masked(match: re.Match, keep: set[str]) -> str:
    if match.group("url"):
        return redacted_url(match.group("url"))
    token = match.group("token")
    if token in keep or not looks_like_token(token):
        return token
    # A dotted name (botocore.exceptions.ClientError) mixes cases like a token does, part by part it does not.
    dotted = "." in token and not token.startswith("eyJ")
    return token if dotted and not any(_secret_part(part) for part in token.split(".")) else REDACTED


def _secret_part(part: str) -> bool:
    """A CamelCase word (AuthenticationError) switches case like a token but is a name."""
    return looks_like_token(part) and not _CAMEL_CASE_NAME.fullmatch(part)


def run_link(ui_url: str | None, run_id: str | None) -> str | None:
    """The run's page in the Dagster UI; credentials, query and fragment of the configured URL are left out."""
    if not ui_url or not run_id:
        return None
    parts = urlsplit(ui_url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    netloc = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, f"{parts.path.rstrip('/')}/runs/{run_id}", "", ""))


def single(item: dict) -> str:
    """One failed job, one post."""
    lines = [
        f"imageflow: job {item['job']} failed",
        f"tenant: {item['tenant']} · workflow: {item['workflow']}",
        f"error: {item['error']}",
    ]
    if item.get("link"):
        lines.append(f"run: {item['link']}")
    elif item.get("runless"):
        lines.append(RUNLESS_NOTE)
    return "\n".join(lines)


def digest_line(item: dict) -> str:
    link = f" {item['link']}" if item.get("link") else " (no run)" if item.get("runless") else ""
    return f"• {item['job']} (tenant {item['tenant']}, workflow {item['workflow']}): {item['error']}{link}"


def digest(items: list[dict], unnamed: int, max_named: int) -> str:
    """Several failed jobs in one post: named while the list is short, counted beyond."""
    named = items[:max_named]
    count = len(items) + unnamed
    head = f"imageflow: {count} more job(s) failed (a digest: alerts hold to a few posts a minute)"
    rest = count - len(named)
    tail = (
        [f"… and {rest} more not named here: `imageflow status` or the Runs page lists them"] if rest else []
    )
    return "\n".join([head, *map(digest_line, named), *tail])
