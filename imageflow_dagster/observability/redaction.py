"""Secrets never reach a log or metric line: the values settings.secret_values names (the one rule, shared with
the alerts) are masked in every line written, whatever produced the text (an exception message, a URL in an error,
a library's log)."""

import json

from imageflow_dagster.settings import secret_values

REDACTED = "[redacted]"


def redact(line: str) -> str:
    """`line` with every secret masked, as written and as JSON escapes it. Read at every line: a key rotated or set
    after start-up is masked too."""
    for value in secret_values():
        line = line.replace(value, REDACTED)
        escaped = json.dumps(value)[1:-1]
        if escaped != value:
            line = line.replace(escaped, REDACTED)
    return line
