"""Checks recorded Okta exchanges against the okta SDK's API classes and pydantic models, which
Okta generates from its management API's OpenAPI description (okta-management-openapi-spec)."""

from __future__ import annotations

import datetime as dt
import enum
import functools
import inspect
import pkgutil
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any

import okta.api
import okta.models
from pydantic import BaseModel

from sandbox.wire_log import Exchange
from tests.contract.violations import Violation, json_kind, where_of

# The Okta endpoints outside the management API, so the SDK's API classes have no operation for
# them; each is checked by the test of its own protocol instead.
NOT_MANAGEMENT_API = (
    (
        re.compile(r"/oauth2/v1/(token|keys)"),
        "Okta's org authorization server (OAuth 2.0 / OIDC API, its own OpenAPI document); the "
        "SDK calls it for private_key_jwt service apps",
    ),
    (re.compile(r"/\.well-known/.*"), "OAuth 2.0 / OIDC discovery documents"),
    (re.compile(r"/sandbox/.*"), "sandbox-only route (role download, IdP-initiated sign-on)"),
)
# Properties the management API description leaves open on purpose, each with Okta's reason.
OPEN_PROPERTIES = {
    # Okta API reference, Application > createApplication: "OIN app instances have prescribed
    # name (key app definition) and signOnMode options. See the OIN schemas"; amazon_aws has no
    # schema there: its settings.app keys are the app's own (its setup guide in the OIN catalog).
    ("SamlApplicationSettings", "app"): "OIN app instance settings",
    # Okta answers it on every app (the management OpenAPI's own example settingsResponseBaseEx
    # has it) though ApplicationSettings leaves it out; a PUT, which replaces the whole app,
    # carries back what GET gave.
    ("SamlApplicationSettings", "manualProvisioning"): "in Okta's own example answers",
}
SERIALIZE_METHOD = re.compile(r'method="(\w+)",\s*resource_path="([^"]+)"')
QUERY_PARAMETER = re.compile(r'_query_params\.append\(\("(\w+)"')
BODY_PARAMETER = re.compile(r"_body_params = (\w+)")
RESPONSE_TYPES = re.compile(r'"(\d{3})": (?:"([^"]+)"|None)')
PARAMETER = re.compile(r"\{[^}]+\}")
LIST_OF = re.compile(r"List\[(\w+)\]")
# The media types an operation answers in: the Accept values its serializer may send.
ACCEPTED = re.compile(r"select_header_accept\(\s*\[([^\]]*)\]")
MEDIA_TYPE = re.compile(r'"([^"]+)"')
OKTA_ERROR = "Error"
NO_CONTENT = 204
# How openapi-generator names the alternatives of a oneOf/anyOf schema's wrapper model.
ALTERNATIVE = re.compile(r"^(?:one|any)of_schema_\d+_validator$")


@dataclass
class Operation:
    """One method and path of the management API, merged over the SDK's API classes."""

    method: str
    template: str
    pattern: re.Pattern[str]
    query: set[str] = field(default_factory=set)
    bodies: set[type] = field(default_factory=set)
    answers: dict[str, set[str]] = field(default_factory=dict)
    media_types: set[str] = field(default_factory=set)


def check_okta(exchange: Exchange) -> tuple[list[Violation], bool]:
    """The exchange's violations, and whether it was a management API exchange."""
    where = where_of(exchange)
    if any(pattern.fullmatch(exchange.path) for pattern, _ in NOT_MANAGEMENT_API):
        return [], False
    candidates = [op for op in operations() if op.pattern.fullmatch(exchange.path)]
    if not candidates:
        return [Violation(where, "path", "no okta SDK operation has this path")], True
    matching = [op for op in candidates if op.method == exchange.method]
    if not matching:
        return [
            Violation(where, "method", f"{candidates[0].template} has no {exchange.method}")
        ], True
    operation = min(matching, key=lambda op: op.template.count("{"))
    violations = [
        Violation(where, f"query {name}", f"not a parameter of {operation.template}")
        for name in exchange.query
        if name not in operation.query
    ]
    violations += _check_media_types(exchange, operation, where)
    if exchange.request_body is not None:
        if not operation.bodies:
            violations.append(Violation(where, "request", "this operation takes no body"))
        else:
            violations += _first_fit(exchange.request_body, operation.bodies, where, "request")
    if exchange.response_body is not None:
        names = operation.answers.get(str(exchange.status), set())
        if exchange.status >= 400:
            names = names or {OKTA_ERROR}
        violations += _check_answer(exchange, names, where)
    return violations, True


def _check_media_types(exchange: Exchange, operation: Operation, where: str) -> list[Violation]:
    """The request accepts, and a success answers in, a media type the operation declares."""
    if not operation.media_types:
        return []
    declared = ", ".join(sorted(operation.media_types))
    violations = []
    accepted = [
        part.split(";")[0].strip() for part in exchange.headers.get("accept", "").split(",")
    ]
    if accepted != [""] and not any(
        kind == "*/*" or kind in operation.media_types for kind in accepted
    ):
        violations.append(
            Violation(where, "header Accept", f"{', '.join(accepted)} is none of {declared}")
        )
    answered = exchange.response_type.split(";")[0].strip()
    # 204 No Content has no body, so no media type to check.
    has_body = exchange.status < 300 and exchange.status != NO_CONTENT
    if has_body and answered and answered not in operation.media_types:
        violations.append(Violation(where, "answer Content-Type", f"{answered} is not {declared}"))
    return violations


def _check_answer(exchange: Exchange, names: set[str], where: str) -> list[Violation]:
    if not names:
        return [Violation(where, "answer", f"the operation declares no {exchange.status} answer")]
    body = exchange.response_body
    shapes: set[Any] = set()
    for name in names:
        listed = LIST_OF.fullmatch(name)
        model = getattr(okta.models, listed.group(1) if listed else name, None)
        if model is None:
            # A primitive answer (str, bytearray, Dict[str, object]): nothing to check inside.
            return []
        shapes.add(list[model] if listed else model)  # type: ignore[valid-type]
    return _first_fit(body, shapes, where, "answer")


def _first_fit(value: Any, shapes: set[Any], where: str, at: str) -> list[Violation]:
    """No violations if the value fits one of the declared shapes, else the closest misfit's."""
    best: list[Violation] | None = None
    for shape in sorted(shapes, key=repr):
        found = check_annotation(value, shape, where, at)
        if not found:
            return []
        if best is None or len(found) < len(best):
            best = found
    return best or []


@functools.cache
def operations() -> list[Operation]:
    merged: dict[tuple[str, str], Operation] = {}
    for module_info in pkgutil.iter_modules(okta.api.__path__):
        module = __import__(f"okta.api.{module_info.name}", fromlist=["_"])
        for api_class in _api_classes(module):
            for name, function in inspect.getmembers(api_class, inspect.iscoroutinefunction):
                serialize = getattr(api_class, f"_{name}_serialize", None)
                if name.startswith("_") or serialize is None:
                    continue
                _merge(merged, function, serialize)
    return list(merged.values())


def _api_classes(module: types.ModuleType) -> list[type]:
    return [
        value
        for value in vars(module).values()
        if inspect.isclass(value) and value.__module__ == module.__name__
    ]


def _merge(merged: dict[tuple[str, str], Operation], function: Any, serialize: Any) -> None:
    serialize_source = inspect.getsource(serialize)
    found = SERIALIZE_METHOD.search(serialize_source)
    if found is None:
        return
    method, template = found.groups()
    regex = "[^/]+".join(re.escape(part) for part in PARAMETER.split(template))
    operation = merged.setdefault(
        (method, template), Operation(method, template, re.compile(regex))
    )
    operation.query.update(QUERY_PARAMETER.findall(serialize_source))
    for accepted in ACCEPTED.findall(serialize_source):
        operation.media_types.update(MEDIA_TYPE.findall(accepted))
    body = BODY_PARAMETER.search(serialize_source)
    parameters = inspect.signature(function).parameters
    # A body that is no parameter (a file upload's bytes) is not JSON.
    if body and body.group(1) in parameters:
        operation.bodies.add(parameters[body.group(1)].annotation)
    for status, name in RESPONSE_TYPES.findall(inspect.getsource(function)):
        if name:
            operation.answers.setdefault(status, set()).add(name)


# -- the models -----------------------------------------------------------------------------


def check_annotation(value: Any, annotation: Any, where: str, at: str) -> list[Violation]:
    """`value` against a pydantic field annotation from the okta SDK, recursively."""
    if value is None or annotation is Any or annotation is object:
        return []
    origin = typing.get_origin(annotation)
    arguments = typing.get_args(annotation)
    if origin is typing.Annotated:
        return check_annotation(value, arguments[0], where, at)
    if origin in (typing.Union, types.UnionType):
        options = {option for option in arguments if option is not type(None)}
        return _first_fit(value, options, where, at)
    if origin is list:
        if not isinstance(value, list):
            return [Violation(where, at, f"expected an array, got {json_kind(value)}")]
        return [
            violation
            for index, item in enumerate(value)
            for violation in check_annotation(item, arguments[0], where, f"{at}[{index}]")
        ]
    if origin is dict:
        if not isinstance(value, dict):
            return [Violation(where, at, f"expected an object, got {json_kind(value)}")]
        return [
            violation
            for key, item in value.items()
            for violation in check_annotation(item, arguments[1], where, f"{at}.{key}")
        ]
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        return check_model(value, annotation, where, at)
    why = _primitive_mismatch(value, annotation)
    return [Violation(where, at, why)] if why else []


def check_model(value: Any, model: type[BaseModel], where: str, at: str) -> list[Violation]:
    alternatives = {
        info.annotation for name, info in model.model_fields.items() if ALTERNATIVE.match(name)
    }
    if alternatives:
        # A oneOf/anyOf schema: the value is one of its alternatives.
        return _first_fit(value, alternatives, where, at)
    if not isinstance(value, dict):
        return [
            Violation(where, at, f"expected an object ({model.__name__}), got {json_kind(value)}")
        ]
    model = _concrete(model, value)
    fields = {
        info.alias or name: info.annotation
        for name, info in model.model_fields.items()
        if name != "additional_properties"
    }
    open_model = "additional_properties" in model.model_fields
    violations = []
    for key, item in value.items():
        path = f"{at}.{key}"
        if key in fields:
            violations += check_annotation(item, fields[key], where, path)
        elif not open_model and (model.__name__, key) not in OPEN_PROPERTIES:
            violations.append(Violation(where, path, f"{model.__name__} has no such property"))
    return violations


def _concrete(model: type[BaseModel], value: dict[str, Any]) -> type[BaseModel]:
    """The subtype Okta's discriminator picks (Application by signOnMode)."""
    pick = getattr(model, "get_discriminator_value", None)
    if pick is None:
        return model
    name = pick(value)
    return getattr(okta.models, name, model) if name else model


def _primitive_mismatch(value: Any, annotation: Any) -> str | None:
    if inspect.isclass(annotation) and issubclass(annotation, enum.Enum):
        allowed = {member.value for member in annotation}
        return None if value in allowed else f"{value!r} is not a member of {annotation.__name__}"
    if annotation in (str, dt.datetime, dt.date, bytes, bytearray):
        return None if isinstance(value, str) else f"expected a string, got {json_kind(value)}"
    if annotation is bool:
        return None if isinstance(value, bool) else f"expected a boolean, got {json_kind(value)}"
    if annotation is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        return None if ok else f"expected an integer, got {json_kind(value)}"
    if annotation is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return None if ok else f"expected a number, got {json_kind(value)}"
    return None
