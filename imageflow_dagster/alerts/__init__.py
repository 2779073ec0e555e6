"""Failure alerts to a Slack-compatible incoming webhook (IMAGEFLOW_ALERT_WEBHOOK_URL): sensor.py ticks,
watch.py finds failures and health problems, digest.py holds the rate, text.py says it without secrets."""
