"""What of an outbound request may be recorded. Execution steps are served to anyone who can open the job, so what
is kept in clear is what is known to be harmless: headers on a short allow-list (any other header may carry a
credential, whatever its name), and URL parts that do not look like a secret: random-looking path segments, query
values and fragments, secret-named query values, URL passwords and a Slack webhook's path are masked."""

import re
from urllib.parse import quote, unquote, urlencode

import httpx

REDACTED = "[redacted]"
# Headers that describe the body or the client and never authenticate: kept in records and across hosts.
HARMLESS_HEADERS = frozenset(
    {
        "accept",
        "accept-charset",
        "accept-encoding",
        "accept-language",
        "cache-control",
        "content-encoding",
        "content-language",
        "content-length",
        "content-type",
        "pragma",
        "user-agent",
    }
)
SECRET_QUERY_MARKERS = ("token", "key", "secret", "sig", "auth", "cookie", "password", "credential")
SLACK_HOST = "hooks.slack.com"

_MIN_TOKEN_CHARS = 16
_TOKEN_ALPHABET = re.compile(r"[A-Za-z0-9_\-.~+/=]+")  # base64, base64url, hex, UUIDs
_SEPARATORS = re.compile(r"[_\-.~+/=]")
_HEX = re.compile(r"[0-9a-fA-F]+")
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
# Random strings switch between lower case, upper case and digits often; words and dates hardly do
# ("order-confirmation-2024" switches once).
_MIN_CLASS_SWITCHES = 3


def is_harmless_header(name: str) -> bool:
    return name.strip().lower() in HARMLESS_HEADERS


def redacted_headers(headers: dict[str, str]) -> dict[str, str]:
    return {name: value if is_harmless_header(name) else REDACTED for name, value in headers.items()}


def looks_like_token(text: str) -> bool:
    """Whether `text` looks like a credential: a JWT, a hex key or UUID, or a long string mixing character classes
    the way random tokens do."""
    if len(text) < _MIN_TOKEN_CHARS or not _TOKEN_ALPHABET.fullmatch(text):
        return False
    if _JWT.fullmatch(text):
        return True
    compact = _SEPARATORS.sub("", text)
    if len(compact) >= _MIN_TOKEN_CHARS and _HEX.fullmatch(compact) and not (compact.isdigit() or compact.isalpha()):
        return True
    return _class_switches(compact) >= _MIN_CLASS_SWITCHES


def redacted_url(url: str | httpx.URL) -> str:
    """`url` with its secrets masked: credentials, token-like path segments, query values and fragment, values of
    secret-named query parameters, and everything after a Slack webhook's first path segment."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        return REDACTED
    changes = {}
    path = _redacted_path(parsed)
    if path != parsed.raw_path.split(b"?", 1)[0].decode("ascii"):
        changes["path"] = path
    if parsed.userinfo:
        changes["userinfo"] = _redacted_userinfo(parsed)
    if parsed.query:
        pairs = [(name, _redacted_query_value(name, value)) for name, value in parsed.params.multi_items()]
        changes["query"] = urlencode(pairs, safe="[]").encode()
    if parsed.fragment and looks_like_token(parsed.fragment):
        changes["fragment"] = REDACTED
    return str(parsed.copy_with(**changes)) if changes else str(parsed)


def _redacted_path(parsed: httpx.URL) -> str:
    """The URL's path, still percent-encoded (an encoded slash stays inside its segment), secrets masked."""
    segments = parsed.raw_path.split(b"?", 1)[0].decode("ascii").split("/")
    if parsed.host == SLACK_HOST and len(segments) > 2:
        return "/".join([*segments[:2], REDACTED])
    return "/".join(REDACTED if looks_like_token(unquote(segment)) else segment for segment in segments)


def _redacted_userinfo(parsed: httpx.URL) -> bytes:
    username = REDACTED if looks_like_token(parsed.username) else quote(parsed.username, safe="")
    return f"{username}:{REDACTED}".encode() if parsed.password else username.encode()


def _redacted_query_value(name: str, value: str) -> str:
    secret_name = any(marker in name.lower() for marker in SECRET_QUERY_MARKERS)
    return REDACTED if secret_name or looks_like_token(value) else value


def _class_switches(text: str) -> int:
    classes = ["digit" if c.isdigit() else "lower" if c.islower() else "upper" for c in text]
    return sum(before != after for before, after in zip(classes, classes[1:]))
