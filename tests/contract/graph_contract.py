"""Checks recorded Graph exchanges against msgraph-sdk's generated request builders and models,
which Microsoft generates from Graph's own API description (msgraph-metadata's OpenAPI)."""

from __future__ import annotations

import functools
import importlib
import importlib.util
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgraph

from sandbox.wire_log import Exchange
from tests.contract.violations import Violation, json_kind, where_of

GENERATED = Path(msgraph.__file__).parent / "generated"
GENERATED_PACKAGE = "msgraph.generated"
GRAPH_PREFIX = "/v1.0"

# The Entra endpoints that are not Graph, so msgraph-sdk has no builder for them; each is checked
# by the test of its own protocol instead.
NOT_GRAPH = (
    (
        re.compile(r"/[^/]+/oauth2/v2\.0/token"),
        "Microsoft identity platform token endpoint (OAuth 2.0, RFC 6749) for azure-identity",
    ),
    (
        re.compile(r"/[^/]+/v2\.0/\.well-known/openid-configuration"),
        "OpenID Connect discovery document, read by MSAL inside azure-identity",
    ),
    (
        re.compile(r"/[^/]+/discovery/v2\.0/keys"),
        "the token-signing keys (JWKS) the discovery document names",
    ),
    (re.compile(r"/common/discovery/instance"), "MSAL's authority instance discovery"),
    (
        re.compile(r"/[^/]+/federationmetadata/2007-06/federationmetadata\.xml", re.IGNORECASE),
        "SAML federation metadata, an XML document (SAML 2.0 metadata), not a Graph resource",
    ),
    (
        re.compile(r"/sandbox/.*"),
        "sandbox-only route (IdP-initiated sign-on); no real cloud has it",
    ),
)
# OData control information that Graph may put on any object (OData JSON format v4.01, 4.5).
ODATA_ANNOTATION = re.compile(
    r"^(?:[A-Za-z]\w*)?@odata\.(?:context|type|id|etag|count|nextLink|deltaLink|editLink|readLink)$"
)
# Delta payloads (OData JSON Format v4.01, "Delta Payload"; Graph: delta-query-overview,
# group-delta): a removed object's `@removed`, a navigation property's changes `<name>@delta`.
DELTA_ANNOTATION = re.compile(r"^(?:[A-Za-z]\w*@delta|@removed)$")
# State tokens Graph writes into the @odata.nextLink / @odata.deltaLink it hands out (Graph
# "Paging", delta-query-overview); clients follow those links as given (the SDK's with_url), so
# no builder's URL template names them.
STATE_TOKENS = frozenset({"$skiptoken", "$deltatoken"})
BUILDER_TEMPLATE = re.compile(r'super\(\)\.__init__\(request_adapter, "([^"]+)"')
BUILDER_METHOD = re.compile(
    r"async def (get|post|patch|put|delete)\(self,(?:body: (\w+), )?request_configuration.*?\)"
    r" -> (?:Optional\[(\w+)\]|None|bytes):"
)
TYPE_IMPORT = re.compile(r"from (\.+)([\w.]*) import (\w+)")
PARAMETER = re.compile(r"\{[^}]+\}")
# /users('{upn}') addresses the same user as /users/{upn}: the key in parentheses is how Graph
# takes a userPrincipalName that starts with $ (Graph reference, "Get user", HTTP request).
KEY_IN_PARENTHESES = re.compile(r"/(users|groups)\('((?:[^']|'')+)'\)")
# In a $filter: string literals (skipped), lambda variables, and the first segment of each
# property path (OData URL conventions 5.1.1: `prop op value`, `prop/any(v:...)`,
# `startswith(prop,'x')`).
QUOTED = re.compile(r"'(?:[^']|'')*'")
LAMBDA_VARIABLE = re.compile(r"\b(\w+):")
FILTERED_PROPERTY = re.compile(r"(?:^|[\s(,])([A-Za-z]\w*)(?=/|\s+(?:eq|ne|gt|ge|lt|le|in)\b|,)")
FILTER_WORDS = frozenset({"and", "or", "not", "true", "false", "null"})
ERROR_MODEL = ("models.o_data_errors.o_data_error", "ODataError")


@dataclass(frozen=True)
class Operation:
    """The model names of one method's body and answer ("" for none)."""

    body: str
    answer: str


@dataclass(frozen=True)
class Builder:
    """One generated request builder: its URL template and what each HTTP method sends back."""

    template: str
    query_options: frozenset[str]
    operations: dict[str, Operation]
    module: str
    imports: dict[str, tuple[str, str]]

    def model(self, name: str) -> type | None:
        """The model class a method signature names, imported only when a check needs it;
        None for a primitive answer (`$count` answers text/plain)."""
        if name not in self.imports:
            return None
        dots, target = self.imports[name]
        package = self.module.rsplit(".", 1)[0]
        loaded = importlib.import_module(importlib.util.resolve_name(dots + target, package))
        return getattr(loaded, name)  # type: ignore[no-any-return]


def check_graph(exchange: Exchange) -> tuple[list[Violation], bool]:
    """The exchange's violations, and whether it was a Graph exchange (else allow-listed)."""
    where = where_of(exchange)
    if not (exchange.path == GRAPH_PREFIX or exchange.path.startswith(GRAPH_PREFIX + "/")):
        if any(pattern.fullmatch(exchange.path) for pattern, _ in NOT_GRAPH):
            return [], False
        return [Violation(where, "path", "neither Graph v1.0 nor an allow-listed endpoint")], True
    path = exchange.path.removeprefix(GRAPH_PREFIX)
    builder = resolve_builder(path)
    if builder is None:
        return [Violation(where, "path", "no msgraph-sdk request builder has this URL")], True
    operation = builder.operations.get(exchange.method)
    if operation is None:
        return [
            Violation(where, "method", f"{builder.template} has no {exchange.method} operation")
        ], True
    violations = [
        Violation(where, f"query {name}", f"not an option of {builder.template}")
        for name in exchange.query
        if name not in builder.query_options and name not in STATE_TOKENS
    ]
    if "$select" in exchange.query or "$filter" in exchange.query:
        violations += _check_named_properties(exchange, builder.model(operation.answer), where)
    if exchange.request_body is not None:
        body = builder.model(operation.body)
        if body is None:
            violations.append(Violation(where, "request", "this operation takes no JSON body"))
        else:
            violations += check_value(exchange.request_body, body, where, "request")
    if exchange.status >= 400:
        if exchange.response_body is not None:
            violations += check_value(exchange.response_body, error_model(), where, "answer")
    elif exchange.response_body is not None:
        answer = builder.model(operation.answer)
        if answer is None:
            violations.append(Violation(where, "answer", "this operation answers no JSON body"))
        else:
            violations += check_value(exchange.response_body, answer, where, "answer")
    return violations, True


def _check_named_properties(exchange: Exchange, answer: type | None, where: str) -> list[Violation]:
    """Each property $select or $filter names is one of what the call answers (a collection's
    items); $filter's lambda variables (`uri` in `identifierUris/any(uri:uri eq 'x')`) are not."""
    if answer is None:
        return []
    value = model_fields(answer).get("value")
    item = value.target if value is not None and value.many and value.kind == "object" else answer
    properties = model_fields(item)
    named = [
        ("$select", name.strip())
        for selected in exchange.query.get("$select", [])
        for name in selected.split(",")
    ]
    for expression in exchange.query.get("$filter", []):
        unquoted = QUOTED.sub("''", expression)
        variables = set(LAMBDA_VARIABLE.findall(unquoted))
        named += [
            ("$filter", name)
            for name in FILTERED_PROPERTY.findall(unquoted)
            if name not in variables and name not in FILTER_WORDS
        ]
    return [
        Violation(where, f"query {option} {name}", f"{item.__name__} has no such property")
        for option, name in named
        if name not in properties
    ]


# -- the request builders -------------------------------------------------------------------


def resolve_builder(path: str) -> Builder | None:
    """Walks msgraph/generated/ one URL segment at a time, as the SDK's fluent API does."""
    segments = [
        _canonical(segment) for segment in KEY_IN_PARENTHESES.sub(r"\1/\2", path).split("/")
    ]
    segments = [segment for segment in segments if segment]
    directory = GENERATED
    for segment in segments:
        directory = _child_for(directory, segment)
        if directory is None:
            return None
    if directory == GENERATED:
        return None
    return _builder_in(directory)


def _canonical(segment: str) -> str:
    """A type cast written in full (/microsoft.graph.user, as Graph's reference pages write it)
    is the one the SDK writes short (/graph.user)."""
    return segment.removeprefix("microsoft.") if segment.startswith("microsoft.graph.") else segment


def _child_for(directory: Path, segment: str) -> Path | None:
    """The child builder whose last URL segment matches: named segments before {id} ones."""
    for _, pattern, child in _children(directory):
        if pattern.fullmatch(segment):
            return child
    return None


@functools.cache
def _children(directory: Path) -> list[tuple[bool, re.Pattern[str], Path]]:
    """(takes a parameter, segment pattern, directory) of each child builder, literal first."""
    children = []
    for child in sorted(directory.iterdir()):
        if not child.is_dir() or child.name.startswith("__"):
            continue
        builder = _builder_in(child)
        if builder is None:
            continue
        last = _path_of(builder.template).rsplit("/", 1)[-1]
        parts = PARAMETER.split(last)
        # Graph resolves segment names case-insensitively; a {parameter} is any non-empty text.
        pattern = re.compile("[^/]+".join(re.escape(part) for part in parts), re.IGNORECASE)
        children.append((len(parts) > 1, pattern, child))
    return sorted(children, key=lambda item: item[0])


def _path_of(template: str) -> str:
    return template.removeprefix("{+baseurl}").split("{?", 1)[0]


@functools.cache
def _builder_in(directory: Path) -> Builder | None:
    files = sorted(directory.glob("*_request_builder.py"))
    if not files:
        return None
    source = files[0].read_text()
    template_match = BUILDER_TEMPLATE.search(source)
    if template_match is None:
        return None
    template = template_match.group(1)
    options = ""
    if "{?" in template:
        options = template.split("{?", 1)[1].rstrip("}")
    query_options = frozenset(option.replace("%24", "$") for option in options.split(",") if option)
    imports = {
        name: (dots, target)
        for dots, target, name in TYPE_IMPORT.findall(source.split("class ")[0])
    }
    operations = {
        method.upper(): Operation(body=body, answer=answer)
        for method, body, answer in BUILDER_METHOD.findall(source)
    }
    return Builder(
        template=template,
        query_options=query_options,
        operations=operations,
        module=_module_of(files[0]),
        imports=imports,
    )


def _module_of(path: Path) -> str:
    relative = path.relative_to(GENERATED).with_suffix("")
    return ".".join((GENERATED_PACKAGE, *relative.parts))


@functools.cache
def error_model() -> type:
    module, name = ERROR_MODEL
    return getattr(importlib.import_module(f"{GENERATED_PACKAGE}.{module}"), name)  # type: ignore[no-any-return]


# -- the models -----------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldType:
    """What a model's deserializer reads for one JSON property."""

    kind: str  # string, uuid, datetime, boolean, integer, number, enum, object
    target: Any = None  # the enum or model class
    many: bool = False


class _Probe:
    """Stands in for kiota's ParseNode: records which reader a deserializer calls."""

    PRIMITIVES = {str: "string", int: "integer", float: "number", bool: "boolean"}

    def __init__(self) -> None:
        self.type = FieldType("any")

    def _read(self, kind: str, target: Any = None, many: bool = False) -> None:
        self.type = FieldType(kind, target, many)

    def get_str_value(self) -> None:
        self._read("string")

    def get_bytes_value(self) -> None:
        self._read("string")

    def get_date_value(self) -> None:
        self._read("string")

    def get_time_value(self) -> None:
        self._read("string")

    def get_timedelta_value(self) -> None:
        self._read("string")

    def get_datetime_value(self) -> None:
        self._read("datetime")

    def get_uuid_value(self) -> None:
        self._read("uuid")

    def get_bool_value(self) -> None:
        self._read("boolean")

    def get_int_value(self) -> None:
        self._read("integer")

    def get_float_value(self) -> None:
        self._read("number")

    def get_enum_value(self, enum_class: type) -> None:
        self._read("enum", enum_class)

    def get_collection_of_enum_values(self, enum_class: type) -> list[Any]:
        self._read("enum", enum_class, many=True)
        return []

    def get_collection_of_primitive_values(self, primitive: type) -> list[Any]:
        self._read("uuid" if primitive is uuid.UUID else self.PRIMITIVES[primitive], many=True)
        return []

    def get_object_value(self, model: type) -> None:
        self._read("object", model)

    def get_collection_of_object_values(self, model: type) -> list[Any]:
        self._read("object", model, many=True)
        return []


class _Discriminator:
    """A ParseNode that answers only the @odata.type a model's factory asks for."""

    def __init__(self, odata_type: str | None) -> None:
        self.odata_type = odata_type

    def get_child_node(self, name: str) -> _Discriminator:
        return self

    def get_str_value(self) -> str | None:
        return self.odata_type


@functools.cache
def model_fields(model: type) -> dict[str, FieldType]:
    """JSON property name -> its type, for a model and its base types."""
    instance = model()
    fields = {}
    deserializers: dict[str, Callable[[Any], None]] = instance.get_field_deserializers()
    for name, deserialize in deserializers.items():
        probe = _Probe()
        deserialize(probe)
        fields[name] = probe.type
    return fields


def _concrete(model: type, value: dict[str, Any]) -> type:
    factory = getattr(model, "create_from_discriminator_value", None)
    if factory is None:
        return model
    return type(factory(_Discriminator(value.get("@odata.type"))))


def check_value(value: Any, model: type, where: str, at: str) -> list[Violation]:
    """Every property of `value` (an object of `model`) declared, with the declared type."""
    if not isinstance(value, dict):
        return [
            Violation(where, at, f"expected an object ({model.__name__}), got {json_kind(value)}")
        ]
    concrete = _concrete(model, value)
    odata_type = value.get("@odata.type")
    if odata_type and concrete is model and not _names(model, odata_type):
        return [Violation(where, f"{at}.@odata.type", f"{odata_type} is not a {model.__name__}")]
    fields = model_fields(concrete)
    violations = []
    for name, item in value.items():
        path = f"{at}.{name}"
        field = fields.get(name)
        if field is None:
            if ODATA_ANNOTATION.match(name) or DELTA_ANNOTATION.match(name):
                continue
            violations.append(Violation(where, path, f"{concrete.__name__} has no such property"))
            continue
        violations += _check_field(item, field, where, path)
    return violations


def _names(model: type, odata_type: str) -> bool:
    return odata_type.lower() == f"#microsoft.graph.{model.__name__}".lower()


def _check_field(value: Any, field: FieldType, where: str, path: str) -> list[Violation]:
    if value is None:
        return []
    if field.many:
        if not isinstance(value, list):
            return [Violation(where, path, f"expected an array, got {json_kind(value)}")]
        single = FieldType(field.kind, field.target)
        return [
            violation
            for index, item in enumerate(value)
            for violation in _check_field(item, single, where, f"{path}[{index}]")
        ]
    if field.kind == "object":
        if not hasattr(field.target, "get_field_deserializers"):
            return []
        return check_value(value, field.target, where, path)
    why = _primitive_mismatch(value, field)
    return [Violation(where, path, why)] if why else []


def _primitive_mismatch(value: Any, field: FieldType) -> str | None:
    kind = field.kind
    if kind in {"string", "uuid", "datetime", "enum"} and not isinstance(value, str):
        return f"expected a string ({kind}), got {json_kind(value)}"
    if kind == "uuid":
        try:
            uuid.UUID(value)
        except ValueError:
            return f"{value!r} is not a GUID"
    if kind == "enum":
        allowed = {member.value for member in field.target}
        # Flag enums are sent as comma-separated members.
        unknown = [part for part in value.split(",") if part.strip() not in allowed]
        if unknown:
            return f"{value!r} is not a member of {field.target.__name__}"
    if kind == "boolean" and not isinstance(value, bool):
        return f"expected a boolean, got {json_kind(value)}"
    if kind == "integer" and (isinstance(value, bool) or not isinstance(value, int)):
        return f"expected an integer, got {json_kind(value)}"
    if kind == "number" and (isinstance(value, bool) or not isinstance(value, int | float)):
        return f"expected a number, got {json_kind(value)}"
    return None
