"""Checks the answers the sandbox's own AWS operations give against botocore's service models
(botocore/data/<service>/<version>/service-2.json, AWS's published API models)."""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any

import botocore.session
from botocore.model import OperationModel, ServiceModel, Shape
from defusedxml import ElementTree

from sandbox.wire_log import Exchange
from tests.contract.violations import Violation, json_kind, where_of

# The SigV4 service names the sandbox records, as botocore names their models.
SERVICE_MODELS = {
    "connect": "connect",
    "servicequotas": "service-quotas",
    "iam": "iam",
    "sts": "sts",
    "cloudtrail": "cloudtrail",
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
    """The answer's violations, and whether there was an answer body to check."""
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
    if isinstance(exchange.response_body, str):
        return check_xml_answer(exchange.response_body, operation, exchange.status, where), True
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
    return _undeclared_error(code, operation, where, "answer.__type")


def _undeclared_error(code: str, operation: OperationModel, where: str, at: str) -> list[Violation]:
    declared = {shape.name for shape in operation.error_shapes} | {
        shape.error_code for shape in operation.error_shapes
    }
    if code in declared or code in COMMON_ERRORS:
        return []
    return [Violation(where, at, f"{code!r} is not an error of {operation.name}")]


def check_xml_answer(
    text: str, operation: OperationModel, status: int, where: str
) -> list[Violation]:
    """A query-protocol answer: <OpResponse><OpResult>members</OpResult><ResponseMetadata>,
    or <ErrorResponse><Error><Code>; botocore's parser silently drops undeclared elements, so
    they are looked for here."""
    root = ElementTree.fromstring(text)
    if status >= 400:
        code = root.findtext("{*}Error/{*}Code") or ""
        return _undeclared_error(code, operation, where, "answer.Error.Code")
    if _local(root.tag) != f"{operation.name}Response":
        return [Violation(where, "answer", f"root element {_local(root.tag)} is not the response")]
    output = operation.output_shape
    wrapper = output.serialization.get("resultWrapper") if output is not None else None
    violations = []
    for child in root:
        if _local(child.tag) == "ResponseMetadata":
            continue
        if output is None or _local(child.tag) != wrapper:
            violations.append(Violation(where, f"answer.{_local(child.tag)}", "not in the model"))
            continue
        violations += _check_element(child, output, where, f"answer.{wrapper}")
    return violations


def _check_element(element: Any, shape: Shape, where: str, at: str) -> list[Violation]:
    kind = shape.type_name
    if kind == "structure":
        members = {
            member.serialization.get("name", name): member for name, member in shape.members.items()
        }
        violations = []
        for child in element:
            name = _local(child.tag)
            path = f"{at}.{name}"
            if name not in members:
                violations.append(Violation(where, path, f"{shape.name} has no member"))
            else:
                violations += _check_element(child, members[name], where, path)
        return violations
    if kind == "list":
        item_name = shape.member.serialization.get("name", "member")
        violations = []
        for index, child in enumerate(element):
            path = f"{at}[{index}]"
            if _local(child.tag) != item_name:
                violations.append(Violation(where, path, f"list items are <{item_name}>"))
            else:
                violations += _check_element(child, shape.member, where, path)
        return violations
    if kind == "map":
        return [
            violation
            for index, entry in enumerate(element)
            for violation in _check_element(
                entry.find("{*}value") if entry.find("{*}value") is not None else entry,
                shape.value,
                where,
                f"{at}[{index}]",
            )
        ]
    if kind == "timestamp":
        # The query protocol sends timestamps as ISO 8601 text.
        try:
            dt.datetime.fromisoformat((element.text or "").replace("Z", "+00:00"))
        except ValueError:
            return [Violation(where, at, f"{element.text!r} is not an ISO 8601 timestamp")]
        return []
    why = _scalar_mismatch(_xml_scalar(element.text or "", shape), shape)
    return [Violation(where, at, why)] if why else []


def _xml_scalar(text: str, shape: Shape) -> Any:
    """The XML text as the JSON value botocore's parser would make of it, for the same checks."""
    kind = shape.type_name
    if kind == "boolean":
        return {"true": True, "false": False}.get(text, text)
    if kind in {"integer", "long"}:
        return int(text) if text.lstrip("-").isdigit() else text
    if kind in {"double", "float"}:
        try:
            return float(text)
        except ValueError:
            return text
    return text


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


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
