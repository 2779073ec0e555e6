"""Secrets never reach a log or metric line: the values of the variables that hold them are masked in every
line written, whatever produced the text (an exception message, a URL in an error, a library's log)."""

import json
from urllib.parse import urlsplit

from imageflow_dagster.settings import ALERT_WEBHOOK_URL, OPENAI_API_KEY, secret

REDACTED = "[redacted]"
# Shorter values are masked only inside the URLs that carry them: masking "local" (the local stack's AWS secret)
# everywhere would garble the lines, and a real secret is never that short.
MIN_SECRET_CHARS = 8
SECRET_VARIABLES = (OPENAI_API_KEY, "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", ALERT_WEBHOOK_URL)
# Whole URLs are not secret, their passwords are.
URL_VARIABLES = ("DAGSTER_POSTGRES_URL", "IMAGEFLOW_CELERY_BROKER_URL", "IMAGEFLOW_CELERY_BACKEND_URL")


def secrets() -> list[str]:
    """Read at every line: a key rotated or set after start-up is masked too."""
    values = [secret(name) or "" for name in SECRET_VARIABLES]
    values += [_password(secret(name) or "") for name in URL_VARIABLES]
    return sorted({value for value in values if len(value) >= MIN_SECRET_CHARS}, key=len, reverse=True)


def redact(line: str) -> str:
    """`line` with every secret masked, as written and as JSON escapes it."""
    for value in secrets():
        line = line.replace(value, REDACTED)
        escaped = json.dumps(value)[1:-1]
        if escaped != value:
            line = line.replace(escaped, REDACTED)
    return line


def _password(url: str) -> str:
    try:
        return urlsplit(url).password or ""
    except ValueError:
        return ""
