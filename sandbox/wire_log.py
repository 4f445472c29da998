"""Keeps, while a test asks for it, every request the sandbox clouds receive and every answer they
give, so the wire can be checked against the clouds' own API descriptions."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from werkzeug.wrappers import Request

# The request headers that change what an API does; credentials are never kept (Authorization
# is reduced to its scheme, e.g. "Bearer" or "SSWS").
RECORDED_HEADERS = ("accept", "content-type", "consistencylevel", "prefer", "if-match")
JSON_TYPES = ("application/json", "application/x-amz-json-1.1", "application/problem+json")


@dataclass(frozen=True)
class Exchange:
    """One request and its answer. `operation` names an AWS operation ("connect:CreateUser");
    request fields are empty for AWS, whose requests botocore already builds from its model."""

    cloud: str
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    request_body: Any
    status: int
    response_body: Any
    response_type: str
    operation: str = ""


@dataclass
class WireLog:
    """Off by default: `start()` clears it and turns it on, `stop()` turns it off and hands back
    what was recorded. Safe to share between the servers' request threads."""

    enabled: bool = False
    _exchanges: list[Exchange] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def start(self) -> None:
        with self._lock:
            self._exchanges.clear()
            self.enabled = True

    def stop(self) -> list[Exchange]:
        with self._lock:
            self.enabled = False
            recorded = list(self._exchanges)
            self._exchanges.clear()
        return recorded

    def record(self, exchange: Exchange) -> None:
        with self._lock:
            if self.enabled:
                self._exchanges.append(exchange)

    def record_aws_answer(
        self, operation: str, status: int, body: bytes, content_type: str
    ) -> None:
        if not self.enabled:
            return
        self.record(
            Exchange(
                cloud="aws",
                method="",
                path="",
                query={},
                headers={},
                request_body=None,
                status=status,
                # The query protocol (IAM, STS) answers XML: kept as text for the check to read.
                response_body=(
                    body.decode("utf-8", "replace")
                    if "xml" in content_type
                    else parse_json(body, content_type)
                ),
                response_type=content_type,
                operation=operation,
            )
        )

    def serve(
        self, cloud: str, app: Any, environ: dict[str, Any], start_response: Any
    ) -> Iterable[bytes]:
        """`app`'s answer to this request; while the log is on, the exchange is recorded."""
        if not self.enabled:
            return app(environ, start_response)  # type: ignore[no-any-return]
        request = Request(environ)
        body = request.get_data()
        # Put the body back, so the app reads it as sent.
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        answer: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], *exc_info: Any) -> Any:
            answer["status"] = int(status.split(" ", 1)[0])
            answer["type"] = next(
                (value for name, value in headers if name.lower() == "content-type"), ""
            )
            return start_response(status, headers, *exc_info)

        chunks = app(environ, capture)
        try:
            payload = b"".join(chunks)
        finally:
            if hasattr(chunks, "close"):
                chunks.close()
        self.record(
            Exchange(
                cloud=cloud,
                method=request.method,
                path=request.path,
                query={key: request.args.getlist(key) for key in request.args},
                headers=_headers_that_matter(request),
                request_body=parse_json(body, request.content_type or ""),
                status=answer.get("status", 0),
                response_body=parse_json(payload, answer.get("type", "")),
                response_type=answer.get("type", ""),
            )
        )
        return [payload]


def _headers_that_matter(request: Request) -> dict[str, str]:
    headers = {name: request.headers[name] for name in RECORDED_HEADERS if name in request.headers}
    if "authorization" in request.headers:
        headers["authorization"] = request.headers["authorization"].split(" ", 1)[0]
    return headers


def parse_json(body: bytes, content_type: str) -> Any:
    """The body as JSON when it says it is JSON and has content, else None."""
    if not body or not any(kind in content_type for kind in JSON_TYPES):
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None
