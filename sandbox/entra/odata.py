"""Graph's OData query options on in-memory objects: $filter, $search, $select, $orderby, paging."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

# Graph's page size limits for directory objects: 100 by default, $top between 1 and 999
# (Microsoft Graph "Paging" and "$top" docs).
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 999

Predicate = Callable[[dict[str, Any], dict[str, Any]], bool]


class QueryError(ValueError):
    """A query option Graph would refuse; `code` is Graph's error code for it."""

    def __init__(self, message: str, code: str = "Request_UnsupportedQuery") -> None:
        super().__init__(message)
        self.code = code


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>'(?:[^']|'')*')
      | (?P<number>-?\d+(?:\.\d+)?(?![\w-]))
      | (?P<punct>[(),:])
      | (?P<name>[A-Za-z_$@][\w./@$-]*)
    )""",
    re.VERBOSE,
)
_COMPARISONS = {"eq", "ne", "gt", "ge", "lt", "le"}


@dataclass
class _Tokens:
    items: list[tuple[str, str]]
    position: int = 0

    def peek(self, offset: int = 0) -> tuple[str, str] | None:
        index = self.position + offset
        return self.items[index] if index < len(self.items) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise QueryError("Invalid filter clause: unexpected end of expression.")
        self.position += 1
        return token

    def expect(self, value: str) -> None:
        kind, text = self.take()
        if text.lower() != value:
            raise QueryError(f"Invalid filter clause: expected '{value}', found '{text}'.")


def _tokenize(text: str) -> _Tokens:
    items: list[tuple[str, str]] = []
    position = 0
    text = text.strip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise QueryError(f"Invalid filter clause: syntax error at position {position}.")
        kind = match.lastgroup or ""
        items.append((kind, match.group(kind)))
        position = match.end()
        while position < len(text) and text[position].isspace():
            position += 1
    return _Tokens(items)


def resolve(obj: Any, path: str) -> Any:
    """The value at a Graph property path such as `web/redirectUris`."""
    value = obj
    for part in path.split("/"):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _normalise(value: Any) -> Any:
    # Directory string comparisons are case-insensitive (userPrincipalName, displayName ...).
    return value.casefold() if isinstance(value, str) else value


def _compare(operator: str, left: Any, right: Any) -> bool:
    left, right = _normalise(left), _normalise(right)
    if operator == "eq":
        return left == right
    if operator == "ne":
        return left != right
    if left is None or right is None:
        return False
    try:
        return {
            "gt": left > right,
            "ge": left >= right,
            "lt": left < right,
            "le": left <= right,
        }[operator]
    except TypeError:
        return False


class _FilterParser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)

    def parse(self) -> Predicate:
        predicate = self._or()
        if self.tokens.peek() is not None:
            raise QueryError(f"Invalid filter clause: unexpected '{self.tokens.peek()[1]}'.")  # type: ignore[index]
        return predicate

    def _or(self) -> Predicate:
        terms = [self._and()]
        while self._next_is("or"):
            self.tokens.take()
            terms.append(self._and())
        if len(terms) == 1:
            return terms[0]
        return lambda obj, scope: any(term(obj, scope) for term in terms)

    def _and(self) -> Predicate:
        terms = [self._unary()]
        while self._next_is("and"):
            self.tokens.take()
            terms.append(self._unary())
        if len(terms) == 1:
            return terms[0]
        return lambda obj, scope: all(term(obj, scope) for term in terms)

    def _unary(self) -> Predicate:
        if self._next_is("not"):
            self.tokens.take()
            inner = self._unary()
            return lambda obj, scope: not inner(obj, scope)
        return self._primary()

    def _next_is(self, word: str) -> bool:
        token = self.tokens.peek()
        return token is not None and token[0] == "name" and token[1].lower() == word

    def _primary(self) -> Predicate:
        kind, text = self.tokens.peek() or ("", "")
        if text == "(":
            self.tokens.take()
            inner = self._or()
            self.tokens.expect(")")
            return inner
        if kind == "name" and text.lower() in {"startswith", "endswith"}:
            return self._string_function()
        if kind == "name" and re.search(r"/(any|all)$", text, re.IGNORECASE):
            return self._lambda()
        left = self._operand()
        kind, operator = self.tokens.take()
        operator = operator.lower()
        if operator == "in":
            values = self._literal_list()
            return lambda obj, scope: _normalise(left(obj, scope)) in values
        if operator not in _COMPARISONS:
            raise QueryError(f"Invalid filter clause: unsupported operator '{operator}'.")
        right = self._operand()
        return lambda obj, scope: _compare(operator, left(obj, scope), right(obj, scope))

    def _string_function(self) -> Predicate:
        _, name = self.tokens.take()
        self.tokens.expect("(")
        subject = self._operand()
        self.tokens.expect(",")
        prefix = self._operand()
        self.tokens.expect(")")
        method = "startswith" if name.lower() == "startswith" else "endswith"

        def predicate(obj: dict[str, Any], scope: dict[str, Any]) -> bool:
            value, affix = subject(obj, scope), prefix(obj, scope)
            if not isinstance(value, str) or not isinstance(affix, str):
                return False
            return bool(getattr(value.casefold(), method)(affix.casefold()))

        return predicate

    def _lambda(self) -> Predicate:
        _, text = self.tokens.take()
        path, quantifier = text.rsplit("/", 1)
        self.tokens.expect("(")
        _, variable = self.tokens.take()
        self.tokens.expect(":")
        body = self._or()
        self.tokens.expect(")")
        combine = any if quantifier.lower() == "any" else all

        def predicate(obj: dict[str, Any], scope: dict[str, Any]) -> bool:
            items = self._value_at(obj, scope, path) or []
            return combine(body(obj, {**scope, variable: item}) for item in items)

        return predicate

    def _literal_list(self) -> list[Any]:
        self.tokens.expect("(")
        values = [_normalise(self._literal(self.tokens.take()))]
        while self.tokens.peek() == ("punct", ","):
            self.tokens.take()
            values.append(_normalise(self._literal(self.tokens.take())))
        self.tokens.expect(")")
        return values

    @staticmethod
    def _literal(token: tuple[str, str]) -> Any:
        kind, text = token
        if kind == "string":
            return text[1:-1].replace("''", "'")
        if kind == "number":
            return float(text) if "." in text else int(text)
        if kind == "name" and text.lower() in {"true", "false"}:
            return text.lower() == "true"
        if kind == "name" and text.lower() == "null":
            return None
        raise QueryError(f"Invalid filter clause: '{text}' is not a literal.")

    @staticmethod
    def _value_at(obj: dict[str, Any], scope: dict[str, Any], path: str) -> Any:
        head, _, rest = path.partition("/")
        if head in scope:
            return resolve(scope[head], rest) if rest else scope[head]
        return resolve(obj, path)

    def _operand(self) -> Callable[[dict[str, Any], dict[str, Any]], Any]:
        token = self.tokens.take()
        kind, text = token
        if kind == "name" and text.lower() not in {"true", "false", "null"}:
            return lambda obj, scope: self._value_at(obj, scope, text)
        value = self._literal(token)
        return lambda obj, scope: value


def parse_filter(text: str) -> Callable[[dict[str, Any]], bool]:
    """A predicate for Graph's $filter subset: eq/ne/gt/ge/lt/le, in, and/or/not, parentheses,
    startswith/endswith, and `collection/any(x: x eq '...')` lambdas."""
    predicate = _FilterParser(text).parse()
    return lambda obj: predicate(obj, {})


_SEARCH_CLAUSE = re.compile(r'\s*(?:"(?P<clause>[^"]*)"|(?P<joiner>AND|OR))\s*')
_WORD_BREAK = re.compile(r"[\s.@_\-,]+")


def parse_search(text: str) -> Callable[[dict[str, Any]], bool]:
    """A predicate for $search on directory objects: `"property:words"` clauses joined by AND/OR;
    a clause matches when every word is a prefix of a word in the property (tokenized search)."""
    position, clauses, joiners = 0, [], []
    while position < len(text):
        match = _SEARCH_CLAUSE.match(text, position)
        if match is None or match.end() == position:
            raise QueryError("Syntax error: invalid $search expression.", "Request_BadRequest")
        if match.group("clause") is not None:
            prop, colon, words = match.group("clause").partition(":")
            if not colon:
                raise QueryError(
                    'Syntax error: $search clauses must look like "property:value".',
                    "Request_BadRequest",
                )
            clauses.append((prop.strip(), _WORD_BREAK.split(words.casefold().strip())))
        else:
            joiners.append(match.group("joiner"))
        position = match.end()
    if not clauses:
        raise QueryError("Syntax error: empty $search expression.", "Request_BadRequest")

    def clause_matches(obj: dict[str, Any], prop: str, words: list[str]) -> bool:
        value = obj.get(prop)
        if not isinstance(value, str):
            return False
        value_words = _WORD_BREAK.split(value.casefold())
        return all(any(part.startswith(word) for part in value_words) for word in words if word)

    def predicate(obj: dict[str, Any]) -> bool:
        result = clause_matches(obj, *clauses[0])
        for joiner, clause in zip(joiners, clauses[1:], strict=False):
            if joiner == "AND":
                result = result and clause_matches(obj, *clause)
            else:
                result = result or clause_matches(obj, *clause)
        return result

    return predicate


@dataclass
class Query:
    """The query options of one collection request."""

    filter: Callable[[dict[str, Any]], bool] | None = None
    search: Callable[[dict[str, Any]], bool] | None = None
    select: list[str] = field(default_factory=list)
    orderby: tuple[str, bool] | None = None  # (property, descending)
    top: int = DEFAULT_PAGE_SIZE
    offset: int = 0
    count: bool = False

    @classmethod
    def from_args(cls, args: dict[str, str], *, eventual_consistency: bool) -> Query:
        query = cls()
        if args.get("$filter"):
            query.filter = parse_filter(args["$filter"])
        if "$search" in args:
            if not eventual_consistency:
                # Graph's own message for $search without the header.
                raise QueryError(
                    "Request with $search query parameter only works through MSGraph with a "
                    "special request header: 'ConsistencyLevel: eventual'"
                )
            query.search = parse_search(args["$search"])
        if args.get("$select"):
            query.select = [name.strip() for name in args["$select"].split(",") if name.strip()]
        if args.get("$orderby"):
            prop, _, direction = args["$orderby"].strip().partition(" ")
            query.orderby = (prop, direction.strip().lower() == "desc")
        if "$top" in args:
            try:
                top = int(args["$top"])
            except ValueError:
                top = 0
            if not 1 <= top <= MAX_PAGE_SIZE:
                raise QueryError(
                    f"Invalid page size specified: '{args['$top']}'. Must be between 1 and "
                    f"{MAX_PAGE_SIZE} inclusive.",
                    "Request_BadRequest",
                )
            query.top = top
        if args.get("$skiptoken"):
            query.offset = decode_skiptoken(args["$skiptoken"])
        query.count = args.get("$count", "").lower() == "true"
        if query.count and not eventual_consistency:
            raise QueryError(
                "$count is not currently supported without the header 'ConsistencyLevel: eventual'."
            )
        return query

    @staticmethod
    def require_advanced_query(
        cast: str, args: dict[str, str], *, eventual_consistency: bool
    ) -> None:
        """Refuse an OData cast on a transitive membership list without the advanced query
        parameters: "Use of OData cast with transitive members list" is among the queries
        supported only with the ConsistencyLevel: eventual header and $count=true
        (learn.microsoft.com/graph/aad-advanced-queries; group-list-transitivemembers: "To filter
        the results on the OData type ... you must use the advanced query parameters"). The
        message is the one that page documents for an operator used without them, naming the
        cast instead of the operator."""
        if eventual_consistency and args.get("$count", "").lower() == "true":
            return
        raise QueryError(
            f"OData cast 'microsoft.graph.{cast}' is not supported because the required "
            "parameters might be missing. Try adding $count=true query parameter and "
            "ConsistencyLevel:eventual header. Refer to "
            "https://aka.ms/graph-docs/advanced-queries for more information"
        )

    def matching(self, objects: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        found = [
            obj
            for obj in objects
            if (self.filter is None or self.filter(obj))
            and (self.search is None or self.search(obj))
        ]
        if self.orderby is not None:
            prop, descending = self.orderby
            found.sort(
                key=lambda obj: (resolve(obj, prop) is None, _normalise(resolve(obj, prop)) or ""),
                reverse=descending,
            )
        return found


def encode_skiptoken(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode().rstrip("=")


def decode_skiptoken(token: str) -> int:
    try:
        padded = token + "=" * (-len(token) % 4)
        offset = int(json.loads(base64.urlsafe_b64decode(padded))["offset"])
    except (ValueError, KeyError, TypeError) as error:
        raise QueryError("Invalid $skiptoken.", "Request_BadRequest") from error
    if offset < 0:
        raise QueryError("Invalid $skiptoken.", "Request_BadRequest")
    return offset


def project(
    obj: dict[str, Any], select: list[str], default: Sequence[str] | None
) -> dict[str, Any]:
    """The object with only the $select-ed properties, or the type's default set."""
    names = select or (list(default) if default is not None else list(obj))
    unknown = [name for name in names if name not in obj]
    if unknown:
        raise QueryError(
            f"Could not find a property named '{unknown[0]}' on type "
            "'microsoft.graph.directoryObject'.",
            "Request_BadRequest",
        )
    projected = {name: obj[name] for name in names}
    if "@odata.type" in obj:
        projected = {"@odata.type": obj["@odata.type"], **projected}
    return projected
