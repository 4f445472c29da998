"""Checks the answers the sandbox's own AWS operations give against botocore's service models
(botocore/data/<service>/<version>/service-2.json, AWS's published API models)."""

from __future__ import annotations

import functools
from typing import Any

import botocore.session
from botocore.model import OperationModel, ServiceModel, Shape

from sandbox.wire_log import Exchange
from tests.contract.violations import Violation, json_kind, where_of

# The SigV4 service names the sandbox records, as botocore names their models.
SERVICE_MODELS = {
    "connect": "connect",
    "servicequotas": "service-quotas",
    "iam": "iam",
    "sts": "sts",
}
# Members that travel in HTTP headers or the status line, not in the JSON body (rest-json).
NOT_IN_BODY = frozenset({"header", "headers", "statusCode"})
# Errors every AWS JSON service can answer without its model listing them (AWS's "Common
# Errors" reference page lists these for all services).
COMMON_ERRORS = frozenset(
    {
        "AccessDeniedException",
        "IncompleteSignature",
        "InternalFailure",
        "InvalidAction",
        "InvalidClientTokenId",
        "NotAuthorized",
        "OptInRequired",
        "RequestExpired",
        "ServiceUnavailable",
        "ThrottlingException",
        "ValidationError",
        "UnrecognizedClientException",
    }
)


@functools.cache
def service_model(service: str) -> ServiceModel:
    return botocore.session.get_session().get_service_model(SERVICE_MODELS[service])


def check_aws(exchange: Exchange) -> tuple[list[Violation], bool]:
    """The answer's violations, and whether it was a JSON answer (XML answers of the query
    protocol are parsed by botocore, which drops what its model lacks, so they are not checked)."""
    where = where_of(exchange)
    service, _, name = exchange.operation.partition(":")
    if service not in SERVICE_MODELS:
        return [Violation(where, "operation", f"no botocore model for {service}")], True
    model = service_model(service)
    if name not in model.operation_names:
        return [
            Violation(where, "operation", f"{model.service_name} has no operation {name}")
        ], True
    if exchange.response_body is None:
        return [], False
    operation = model.operation_model(name)
    if exchange.status >= 400:
        return _check_error(exchange, operation, where), True
    if operation.output_shape is None:
        # An empty object declares no member; anything more is undeclared.
        if exchange.response_body == {}:
            return [], True
        return [Violation(where, "answer", f"{name} answers no body")], True
    return check_shape(exchange.response_body, operation.output_shape, where, "answer"), True


def _check_error(exchange: Exchange, operation: OperationModel, where: str) -> list[Violation]:
    body = exchange.response_body
    if not isinstance(body, dict):
        return [Violation(where, "answer", f"an error must be an object, got {json_kind(body)}")]
    code = str(body.get("__type") or body.get("code") or "").rsplit("#", 1)[-1]
    declared = {shape.name: shape for shape in operation.error_shapes}
    if code in declared:
        members = {k: v for k, v in body.items() if k not in {"__type", "code"}}
        return check_shape(members, declared[code], where, "answer")
    if code in COMMON_ERRORS:
        return []
    return [Violation(where, "answer.__type", f"{code!r} is not an error of {operation.name}")]


def check_shape(value: Any, shape: Shape, where: str, at: str) -> list[Violation]:
    """`value` against a botocore shape, recursively, with the JSON types botocore parses."""
    if value is None:
        return []
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            return [
                Violation(where, at, f"expected an object ({shape.name}), got {json_kind(value)}")
            ]
        members = {
            member.serialization.get("name", name): member
            for name, member in shape.members.items()
            if member.serialization.get("location") not in NOT_IN_BODY
        }
        violations = []
        for key, item in value.items():
            if key not in members:
                violations.append(Violation(where, f"{at}.{key}", f"{shape.name} has no member"))
            else:
                violations += check_shape(item, members[key], where, f"{at}.{key}")
        return violations
    if kind == "list":
        if not isinstance(value, list):
            return [
                Violation(where, at, f"expected an array ({shape.name}), got {json_kind(value)}")
            ]
        return [
            violation
            for index, item in enumerate(value)
            for violation in check_shape(item, shape.member, where, f"{at}[{index}]")
        ]
    if kind == "map":
        if not isinstance(value, dict):
            return [Violation(where, at, f"expected a map ({shape.name}), got {json_kind(value)}")]
        return [
            violation
            for key, item in value.items()
            for violation in check_shape(item, shape.value, where, f"{at}.{key}")
        ]
    why = _scalar_mismatch(value, shape)
    return [Violation(where, at, why)] if why else []


def _scalar_mismatch(value: Any, shape: Shape) -> str | None:
    kind = shape.type_name
    if kind == "string":
        if not isinstance(value, str):
            return f"expected a string ({shape.name}), got {json_kind(value)}"
        if shape.enum and value not in shape.enum:
            return f"{value!r} is not one of {shape.name}'s values"
        return None
    if kind == "boolean":
        return None if isinstance(value, bool) else f"expected a boolean, got {json_kind(value)}"
    if kind in {"integer", "long"}:
        ok = isinstance(value, int) and not isinstance(value, bool)
        return None if ok else f"expected an integer ({shape.name}), got {json_kind(value)}"
    if kind in {"double", "float"}:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return None if ok else f"expected a number ({shape.name}), got {json_kind(value)}"
    if kind == "timestamp":
        # JSON protocols send epoch seconds unless the shape asks for another format.
        text_format = shape.serialization.get("timestampFormat", "unixTimestamp") != "unixTimestamp"
        ok = isinstance(value, str) if text_format else isinstance(value, int | float)
        return (
            None
            if ok and not isinstance(value, bool)
            else (
                f"expected a timestamp ({'text' if text_format else 'epoch seconds'}),"
                f" got {json_kind(value)}"
            )
        )
    if kind == "blob":
        return None if isinstance(value, str) else f"expected base64 text, got {json_kind(value)}"
    return None
