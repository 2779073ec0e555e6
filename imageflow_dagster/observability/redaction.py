"""Secrets never reach a log or metric line: the values of the variables that hold them are masked in every
line written, whatever produced the text (an exception message, a URL in an error, a library's log)."""

import json
import os
from urllib.parse import urlsplit

REDACTED = "[redacted]"
# Shorter values are masked only inside the URLs that carry them: masking "local" (the local stack's AWS secret)
# everywhere would garble the lines, and a real secret is never that short.
MIN_SECRET_CHARS = 8
SECRET_VARIABLES = (
    "OPENAI_API_KEY",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "IMAGEFLOW_ALERT_WEBHOOK_URL",
)
# Whole URLs are not secret, their passwords are.
URL_VARIABLES = ("DAGSTER_POSTGRES_URL", "IMAGEFLOW_CELERY_BROKER_URL", "IMAGEFLOW_CELERY_BACKEND_URL")


def secrets() -> list[str]:
    """Read at every line: a key rotated or set after start-up is masked too."""
    values = [os.getenv(name) or "" for name in SECRET_VARIABLES]
    values += [_password(os.getenv(name) or "") for name in URL_VARIABLES]
    return sorted({value for value in values if len(value) >= MIN_SECRET_CHARS}, key=len, reverse=True)


def redact(line: str) -> str:
    """`line` with every secret masked, as written and as JSON escapes it."""
    for secret in secrets():
        line = line.replace(secret, REDACTED)
        escaped = json.dumps(secret)[1:-1]
        if escaped != secret:
            line = line.replace(escaped, REDACTED)
    return line


def _password(url: str) -> str:
    try:
        return urlsplit(url).password or ""
    except ValueError:
        return ""
