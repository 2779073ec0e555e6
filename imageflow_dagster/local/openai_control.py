"""Drives a local OpenAI-compatible server running in another process (`imageflow local-openai`, the dev stack)
through its `/_local/` control API: the same calls `LocalOpenAIServer` offers in process."""

import json
import urllib.error
import urllib.request
from typing import Any


class OpenAIServerControl:
    def __init__(self, base_url: str, timeout_s: float = 10.0):
        self.base_url = base_url  # what the SDK is given, ending in /v1
        self._root = base_url.removesuffix("/").removesuffix("/v1")
        self._timeout_s = timeout_s

    def configure(self, **settings: Any) -> None:
        """Same keys as LocalOpenAIServer.configure; shut_down_models is a list. ValueError when one is invalid."""
        self._call("POST", "/_local/config", settings)

    def reset(self) -> None:
        self._call("POST", "/_local/reset", {})

    def add_fault(self, *, endpoint: str, match: str, fault: str, times: int | None = None) -> None:
        self._call("POST", "/_local/faults", {"endpoint": endpoint, "match": match, "fault": fault, "times": times})

    def clear_faults(self) -> None:
        self._call("DELETE", "/_local/faults")

    def stats(self) -> dict:
        return self._call("GET", "/_local/stats")

    def requests(self, endpoint: str | None = None) -> list[dict]:
        return self._call("GET", "/_local/requests" + (f"?endpoint={endpoint}" if endpoint else ""))

    def _call(self, method: str, path: str, body: dict | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self._root}{path}", data=data, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self._timeout_s) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            if exc.code != 400:
                raise
            with exc:
                message = json.loads(exc.read() or b"{}").get("error", {}).get("message", "invalid control request")
            raise ValueError(message) from None
