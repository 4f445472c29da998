"""What a contract check reports: one exchange that does not match the cloud's API description."""

from __future__ import annotations

from dataclasses import dataclass

from sandbox.wire_log import Exchange


@dataclass(frozen=True)
class Violation:
    """`where` is the request ("PATCH /v1.0/applications/{id}") or AWS operation; `field` the
    JSON path inside the body ("request.web.redirectUris", "answer.value[0].foo")."""

    where: str
    field: str
    why: str

    def __str__(self) -> str:
        return f"{self.where}  {self.field}: {self.why}"


def where_of(exchange: Exchange) -> str:
    if exchange.operation:
        return f"{exchange.operation} -> {exchange.status}"
    return f"{exchange.method} {exchange.path} -> {exchange.status}"


def json_kind(value: object) -> str:
    """A JSON value's type as the descriptions name them, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"
