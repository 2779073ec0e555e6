"""The alert sensor: every job that ends `failed` is named in a chat channel through a Slack-compatible incoming
webhook (`{"text": ...}`), those the jobs sensor failed before any run too (runless.py), bursts digested, the
OpenAI quota and the jobs sensor's health alerted once each.

A plain sensor, not a `@run_failure_sensor`: a run-status sensor's cursor belongs to Dagster (returning one is an
error) and its function runs only when a run ends, so neither the digest's state nor the digest's last post ("the
rest, counted") would have a place or a moment. This sensor reads the same run-status events itself (watch.py),
keeps the digest in its own cursor, and ticks whether or not runs end. Built by `alert_sensor(settings)` where the
definitions are built (its interval is a setting); the webhook URL is a secret, read at each tick."""

import json
import logging
import time
import urllib.error
import urllib.request

import dagster as dg

from imageflow_dagster.alerts import digest, runless, watch
from imageflow_dagster.alerts.digest import AlertState
from imageflow_dagster.resources.dynamodb import DynamoDBResource
from imageflow_dagster.resources.settings import SettingsResource
from imageflow_dagster.settings import ALERT_WEBHOOK_URL, Settings, secret

# A tick has 60 s in the daemon and may post up to 10 times: a slow receiver must not take the tick with it.
POST_TIMEOUT_S = 5.0


def _now() -> float:
    return time.time()  # one place for the tests' clock


def alert_sensor(settings: Settings) -> dg.SensorDefinition:
    return dg.sensor(
        name="job_failure_alert_sensor",
        minimum_interval_seconds=settings.alert_interval_s,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Posts every job that ends `failed` (and the OpenAI quota or the jobs sensor failing) to "
        "IMAGEFLOW_ALERT_WEBHOOK_URL: at most 10 posts a minute, the rest digested in the next post.",
    )(post_failed_jobs)


def post_failed_jobs(context: dg.SensorEvaluationContext, dynamodb: DynamoDBResource, settings: SettingsResource):
    if not secret(ALERT_WEBHOOK_URL):
        return dg.SkipReason("IMAGEFLOW_ALERT_WEBHOOK_URL is not set: no alerts are sent")
    cursor, summary = alert_tick(context.instance, dynamodb, settings, context.cursor, _now(), context.log)
    return dg.SensorResult(cursor=cursor, skip_reason=summary)


def alert_tick(
    instance: dg.DagsterInstance,
    db: DynamoDBResource,
    settings: SettingsResource,
    cursor: str | None,
    now: float,
    log: logging.Logger,
) -> tuple[str, str]:
    """One evaluation: read what is new, post what the rate allows; returns the new cursor and a summary.
    `settings`: where the UI's base URL for run links is (`ui_url`)."""
    state = AlertState.parse(cursor)
    if not state.started:
        watch.start(instance, state)
        runless.start(instance, state)
        return state.dump(), "alerting from now on"
    runless.read(instance, state)  # jobs the jobs sensor failed before any run: queued as they come
    watch.read_ended_runs(instance, state, now)
    failed_rows = watch.confirm_pending(instance, db, state, settings.ui_url, now)
    watch.check_quota(instance, state, failed_rows, now)
    watch.check_jobs_sensor(instance, state, now)
    posted = _post_all(secret(ALERT_WEBHOOK_URL) or "", state, now, log)
    waiting = len(state.queued) + state.unnamed
    summary = f"{posted} alert post(s); {waiting} failed job(s) and {len(state.notices)} notice(s) waiting"
    return state.dump(), summary


def _post_all(url: str, state: AlertState, now: float, log: logging.Logger) -> int:
    """Posts this tick's share; the first receiver error ends the tick's posting, what was not posted stays."""
    posted = 0
    for post in digest.plan(state, now):
        if not post_text(url, post.text, log):
            digest.tried(state, now)
            break
        digest.sent(state, post, now)
        posted += 1
    return posted


def post_text(url: str, text: str, log: logging.Logger) -> bool:
    """POSTs `{"text": ...}`. The URL is a credential (whoever has it can post to the channel): a failure is logged
    by its kind and status only, never with the URL or the receiver's answer. urllib, not httpx: httpx logs every
    request's URL at INFO, which the daemon's log would keep."""
    body = json.dumps({"text": text}).encode()
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with _OPENER.open(request, timeout=POST_TIMEOUT_S) as response:
            response.read()
        return True
    except urllib.error.HTTPError as exc:
        log.warning(f"alert webhook answered HTTP {exc.code}: the alert is kept for the next tick")
    except (OSError, ValueError) as exc:  # unreachable, timed out, refused, or a malformed URL
        log.warning(f"alert webhook unreachable ({type(exc).__name__}): the alert is kept for the next tick")
    return False


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A webhook answers where it is; a redirect would resend the alert (as a GET) somewhere else."""

    def redirect_request(self, *args, **kwargs):
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)
