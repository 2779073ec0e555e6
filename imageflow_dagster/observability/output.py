"""Where log and metric lines go: the process's own stdout, one whole line at a time.

`sys.__stdout__`, not `sys.stdout`: a Celery worker replaces `sys.stdout` with a proxy that logs each write
with a prefix, which would make a JSON line unparsable and an EMF line no metric. Flushed per line: a run's
process may end with `os._exit` (Celery's pool), which drops anything still buffered."""

import sys
import threading

from imageflow_dagster.observability.redaction import redact

_lock = threading.Lock()  # image threads, the log handler and metrics write to one stream


def write_line(text: str) -> None:
    stream = sys.__stdout__ or sys.stdout
    line = redact(text) + "\n"
    with _lock:
        stream.write(line)
        stream.flush()
