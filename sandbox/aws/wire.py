"""Reads an AWS SDK request off the wire and writes replies in each AWS protocol's own format."""

from __future__ import annotations

import io
import json
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode
from xml.sax.saxutils import escape

from werkzeug.wrappers import Response

# Calls that botocore sends unsigned (no Authorization header): STS's SAML and web-identity
# exchanges, which moto also routes by their Action.
UNSIGNED_ACTIONS = {"AssumeRoleWithSAML": "sts", "AssumeRoleWithWebIdentity": "sts"}

# The wire protocol of each service the sandbox shapes itself (botocore's `metadata.protocol`).
PROTOCOLS = {
    "connect": "rest-json",
    "servicequotas": "json",
    "iam": "query",
    "sts": "query",
    "cloudtrail": "json",
}

# Each protocol's throttling and retryable server errors, as botocore's models name them:
# Connect's ThrottlingException (429) and InternalServiceException (500), Service Quotas'
# TooManyRequestsException and ServiceException, and the query protocol's common errors.
THROTTLING_ERRORS = {
    "rest-json": ("ThrottlingException", 429),
    "json": ("TooManyRequestsException", 400),
    "query": ("Throttling", 400),
}
SERVER_ERRORS = {
    "rest-json": ("InternalServiceException", 500),
    "json": ("ServiceException", 500),
    "query": ("ServiceFailure", 500),
}
# Services whose json errors are named otherwise: CloudTrail answers the common errors
# ThrottlingException (400) and InternalFailure (500) (CloudTrail API reference, "Common Errors";
# LookupEvents: "If this limit is exceeded, a throttling error occurs").
SERVICE_THROTTLING_ERRORS = {"cloudtrail": ("ThrottlingException", 400)}
SERVICE_SERVER_ERRORS = {"cloudtrail": ("InternalFailure", 500)}


@dataclass
class AwsRequest:
    """One SDK request: who it is for (service and region from the SigV4 scope) and its parts."""

    environ: dict[str, Any]
    method: str
    raw_path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    service: str | None
    region: str | None
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    # The botocore operation name, once the sandbox has read it off the request.
    operation_name: str | None = None

    @classmethod
    def from_environ(cls, environ: dict[str, Any], default_region: str) -> AwsRequest:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        # The body is read once here; moto reads it again from this copy.
        environ["wsgi.input"] = io.BytesIO(body)
        headers = {
            key[5:].replace("_", "-").lower(): value
            for key, value in environ.items()
            if key.startswith("HTTP_")
        }
        if "CONTENT_TYPE" in environ:
            headers["content-type"] = environ["CONTENT_TYPE"]
        # The path as sent: botocore percent-encodes ARNs in paths, and PATH_INFO has them decoded.
        raw_uri = environ.get("RAW_URI") or environ.get("REQUEST_URI") or environ.get("PATH_INFO")
        raw_path = (raw_uri or "/").split("?", 1)[0]
        request = cls(
            environ=environ,
            method=environ.get("REQUEST_METHOD", "GET").upper(),
            raw_path=raw_path,
            query=parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True),
            headers=headers,
            body=body,
            service=None,
            region=None,
        )
        request.service, request.region = request._service_and_region(default_region)
        return request

    def _service_and_region(self, default_region: str) -> tuple[str | None, str | None]:
        authorization = self.headers.get("authorization", "")
        # "AWS4-HMAC-SHA256 Credential=AKID/20240101/ap-northeast-1/connect/aws4_request, ..."
        for part in authorization.replace(",", " ").split():
            if part.startswith("Credential="):
                scope = part.removeprefix("Credential=").split("/")
                if len(scope) == 5:
                    return scope[3].lower(), scope[2]
        action = self.form().get("Action")
        if action in UNSIGNED_ACTIONS:
            return UNSIGNED_ACTIONS[action], default_region
        return None, None

    @property
    def access_key_id(self) -> str:
        """The access key the request is signed with ("" when it is unsigned)."""
        for part in self.headers.get("authorization", "").replace(",", " ").split():
            if part.startswith("Credential="):
                return part.removeprefix("Credential=").split("/", 1)[0]
        return ""

    @property
    def protocol(self) -> str | None:
        return PROTOCOLS.get(self.service or "")

    def form(self) -> dict[str, str]:
        """The query protocol's parameters (form-encoded body, or the query string of a GET)."""
        if self.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            pairs = parse_qs(self.body.decode("utf-8", "replace"), keep_blank_values=True)
        else:
            pairs = self.query
        return {key: values[-1] for key, values in pairs.items()}

    def replace_form(self, form: dict[str, str]) -> None:
        """Hand moto a rewritten form body instead of the one received."""
        self.body = urlencode(form).encode()
        self.environ["wsgi.input"] = io.BytesIO(self.body)
        self.environ["CONTENT_LENGTH"] = str(len(self.body))
        self.environ["CONTENT_TYPE"] = "application/x-www-form-urlencoded; charset=utf-8"

    def json_body(self) -> dict[str, Any]:
        if not self.body.strip():
            return {}
        value = json.loads(self.body)
        if not isinstance(value, dict):
            raise ValueError("the request body is not a JSON object")
        return value

    def operation(self, rest_operation: str | None = None) -> str | None:
        """The API operation's name, found where the service's protocol puts it."""
        if self.protocol == "query":
            return self.form().get("Action")
        if self.protocol == "json":
            target = self.headers.get("x-amz-target", "")
            return target.rsplit(".", 1)[1] if "." in target else None
        return rest_operation


class ApiError(Exception):
    """A refusal the sandbox answers with the service's own error code, message and status."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def json_reply(
    payload: dict[str, Any], *, status: int = 200, protocol: str = "rest-json", request_id: str = ""
) -> Response:
    content_type = "application/x-amz-json-1.1" if protocol == "json" else "application/json"
    return Response(
        json.dumps(payload, default=str),
        status=status,
        content_type=content_type,
        headers={"x-amzn-RequestId": request_id or str(uuid.uuid4())},
    )


def error_reply(
    protocol: str, code: str, message: str, status: int, *, request_id: str = ""
) -> Response:
    """An error in the shape botocore's parser for `protocol` reads the code and message from."""
    request_id = request_id or str(uuid.uuid4())
    if protocol == "query":
        kind = "Receiver" if status >= 500 else "Sender"
        body = (
            '<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">'
            f"<Error><Type>{kind}</Type><Code>{escape(code)}</Code>"
            f"<Message>{escape(message)}</Message></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>"
        )
        return Response(
            body, status=status, content_type="text/xml", headers={"x-amzn-RequestId": request_id}
        )
    if protocol == "json":
        return json_reply(
            {"__type": code, "message": message},
            status=status,
            protocol="json",
            request_id=request_id,
        )
    response = json_reply({"Message": message}, status=status, request_id=request_id)
    response.headers["x-amzn-ErrorType"] = code
    return response
