"""Okta's list queries as the sandbox reads them: filter/search expressions and cursor pages."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

# One comparison of Okta's filter/search syntax: `profile.login eq "x"`, `status eq "ACTIVE"`,
# `profile.lastName pr`. Values are quoted strings, true/false or numbers.
_TERM = re.compile(
    r"""\s*(?P<path>[A-Za-z_][\w.]*)\s+(?P<op>eq|ne|sw|co|pr|gt|ge|lt|le)\b"""
    r"""(?:\s+(?P<value>"(?:[^"\\]|\\.)*"|true|false|-?\d+(?:\.\d+)?))?\s*""",
    re.IGNORECASE,
)
_JOIN = re.compile(r"\s*\b(and|or)\b\s*", re.IGNORECASE)


class InvalidQuery(ValueError):
    """The expression is not one the sandbox (or Okta) understands."""


@dataclass(frozen=True)
class Comparison:
    path: str
    op: str
    value: Any


def _literal(text: str | None) -> Any:
    if text is None:
        return None
    if text.startswith('"'):
        return re.sub(r"\\(.)", r"\1", text[1:-1])
    if text.lower() in {"true", "false"}:
        return text.lower() == "true"
    return float(text) if "." in text else int(text)


def parse_expression(expression: str) -> list[list[Comparison]]:
    """`a and b or c` as OR-groups of AND-ed comparisons (Okta gives `and` the higher precedence).
    Parentheses are not supported: the wizard never sends them."""
    groups: list[list[Comparison]] = [[]]
    position = 0
    text = expression.strip()
    while True:
        match = _TERM.match(text, position)
        if not match:
            raise InvalidQuery(expression)
        op = match["op"].lower()
        if (op == "pr") != (match["value"] is None):
            raise InvalidQuery(expression)
        groups[-1].append(Comparison(match["path"], op, _literal(match["value"])))
        position = match.end()
        if position >= len(text):
            return groups
        join = _JOIN.match(text, position)
        if not join:
            raise InvalidQuery(expression)
        if join[1].lower() == "or":
            groups.append([])
        position = join.end()


def _compare(actual: Any, comparison: Comparison) -> bool:
    op, wanted = comparison.op, comparison.value
    if op == "pr":
        return actual not in (None, "", [])
    if isinstance(actual, list):
        return any(_compare(item, comparison) for item in actual)
    if actual is None:
        return op == "ne"
    if isinstance(actual, str) and isinstance(wanted, str):
        # Okta compares strings case-insensitively in filter and search.
        actual, wanted = actual.lower(), wanted.lower()
    try:
        return {
            "eq": lambda: actual == wanted,
            "ne": lambda: actual != wanted,
            "sw": lambda: str(actual).startswith(str(wanted)),
            "co": lambda: str(wanted) in str(actual),
            "gt": lambda: actual > wanted,
            "ge": lambda: actual >= wanted,
            "lt": lambda: actual < wanted,
            "le": lambda: actual <= wanted,
        }[op]()
    except TypeError:
        return False


def json_path(document: dict[str, Any], path: str) -> Any:
    """`profile.login` of a JSON object, None when any step is missing."""
    value: Any = document
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def matches(groups: list[list[Comparison]], lookup: Callable[[str], Any]) -> bool:
    return any(all(_compare(lookup(c.path), c) for c in group) for group in groups)


def starts_with_any(query: str, values: Sequence[str | None]) -> bool:
    """Okta's `q`: a case-insensitive startsWith on a few fixed properties."""
    wanted = query.lower()
    return any(value is not None and value.lower().startswith(wanted) for value in values)


def page(
    items: Sequence[T], *, key: Callable[[T], str], limit: int, after: str | None
) -> tuple[list[T], str | None]:
    """The page after the `after` cursor (the last id of the previous page) and the next cursor,
    None on the last page."""
    start = 0
    if after:
        keys = [key(item) for item in items]
        start = keys.index(after) + 1 if after in keys else len(items)
    chunk = list(items[start : start + limit])
    more = start + limit < len(items)
    return chunk, (key(chunk[-1]) if more and chunk else None)
