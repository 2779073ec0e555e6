"""Logs and metrics for operators: one JSON object per log line, and the numbers an operator graphs as CloudWatch
embedded metric format (EMF) lines in the same output.

Switched by two variables, each read in settings.py:
- `IMAGEFLOW_LOG_FORMAT=json` (default `text`): a run's Dagster events and `context.log` records (through
  deploy/dagster.yaml's `python_logs` handler, logs.run_log_handler), and the root logger of `imageflow` commands
  and `imageflow worker` (logs.configure_process_logging), go to stdout as JSON: time, level, logger, message, and
  the job id, run id, tenant, step and Dagster event when known.
- `IMAGEFLOW_METRICS=emf` (default `off`): metrics.emit writes one EMF line per observation (signals.py says
  which: JobsWaiting, RunsQueued, RunsRequested per sensor tick; RateLimitWaitSeconds, RateLimited429s per OpenAI
  call; JobsFailed per failed job). Independent of the log format: an EMF line is JSON whatever the other lines
  are, CloudWatch extracts it from a stream that mixes text and JSON, and a site shipping JSON logs elsewhere
  (Loki, Datadog) should not pay for `_aws` blocks it cannot use.

Why EMF and not a Prometheus endpoint: the numbers are born in short-lived processes. A run is one process per
job, forked by a Celery worker and gone when the job ends; sensor ticks run in the code server the daemon
restarts at will. A `/metrics` endpoint in such a process is scraped too late or never, so counters would be
lost (or need a pushgateway: one more service to run, secure and keep alive, whose pushed series never expire on
their own); on the daemon's side it would need a process of its own that knows what the runs did. EMF needs no
endpoint, no extra process and no extra dependency: the line goes to stdout with the logs, ECS's awslogs driver
(or the CloudWatch agent) delivers it, and CloudWatch Logs turns it into metrics; locally it is just a log line,
and `grep _aws` or Logs Insights reads the same numbers with the job and run ids next to them.
"""
