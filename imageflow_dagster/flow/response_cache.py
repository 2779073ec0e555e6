"""Responses answers (planner and text steps) kept per job, so a rerun replays them instead of asking again.

A model answers differently each time; replaying keeps the plan, hence the image keys, identical on rerun, so
images already stored are reused and none is paid for twice. The objects are private JSON under the job's
prefix (`.imageflow/responses/`); only image extensions are public.
"""

import json

from imageflow_dagster.resources.s3 import ImageflowS3Resource


class ResponseCache:
    def __init__(self, s3: ImageflowS3Resource, job_prefix: str, enabled: bool = True):
        self._s3 = s3
        self._prefix = f"{job_prefix}/.imageflow/responses"
        self._enabled = enabled

    def get(self, request_hash: str) -> dict | None:
        if not self._enabled:
            return None
        raw = self._s3.get_bytes(f"{self._prefix}/{request_hash}.json")
        return json.loads(raw) if raw else None

    def put(self, request_hash: str, answer: dict) -> None:
        self._s3.put(f"{self._prefix}/{request_hash}.json", json.dumps(answer).encode(), "application/json")
