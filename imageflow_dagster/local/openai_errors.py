"""The error answer of the local OpenAI server: OpenAI's `{"error": {message, type, param, code}}` body, plus any
headers the answer carries (retry-after, x-ratelimit-*)."""


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        kind: str = "invalid_request_error",
        *,
        param: str | None = None,
        headers: dict[str, str] | None = None,
        **extra,
    ):
        super().__init__(message)
        self.status = status
        self.headers = dict(headers or {})
        self.body = {"error": {"message": message, "type": kind, "param": param, "code": code, **extra}}

    @property
    def code(self) -> str | None:
        return self.body["error"]["code"]
