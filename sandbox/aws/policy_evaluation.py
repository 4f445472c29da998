"""IAM's decision on one request against a set of policy documents, as the sandbox's AWS makes it
where moto's checker falls short (moto ignores conditions other than StringEquals, treats a
failed condition as a deny, and knows no policy variables).

Sources (IAM User Guide):
- "Policy evaluation logic": an explicit Deny wins, then any Allow; otherwise an implicit deny.
- "IAM JSON policy elements: Action / NotAction / Resource / NotResource / Principal": `*` and
  `?` wildcards; action names are case-insensitive, resources are not.
- "IAM JSON policy elements: Condition operators": the String, Arn, Bool and Null operators, the
  `...IfExists` suffix ("if the key is not present, the condition evaluates to true"), several
  values of one key are ORed, several keys and several operators are ANDed; "If the key that
  you specify in a policy condition is not present in the request context, the values do not
  match and the condition is false. If the policy condition requires that the key is not matched,
  such as StringNotLike or ArnNotLike, and the right key is not present, the condition is true."
- "IAM policy elements: Variables and tags": `${aws:userid}` and friends are replaced in Resource
  and in condition values; `${*}`, `${?}`, `${$}` stand for the literal character; a variable the
  request has no value for makes the element not match.
An operator the sandbox does not model makes its statement not apply, and the decision says
which, so a test never passes on a guess.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

_VARIABLE = re.compile(r"\$\{([^}]*)\}")
_LITERALS = {"*": "*", "?": "?", "$": "$"}


@dataclass(frozen=True)
class Ask:
    """The request: its action, resource, principal (trust policies) and condition keys."""

    action: str
    resource: str = "*"
    principal: tuple[str, str] | None = None  # ("Federated", "arn:aws:iam::…:saml-provider/x")
    keys: Mapping[str, str] = field(default_factory=dict)

    def value_of(self, key: str) -> str | None:
        # Condition key names are case-insensitive ("Condition element", key names).
        return next((v for k, v in self.keys.items() if k.lower() == key.lower()), None)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    why: str


class _NotModelled(Exception):
    pass


class _NoValue(Exception):
    """A policy variable the request has no value for."""


def decide(documents: Iterable[tuple[str, Mapping[str, Any]]], ask: Ask) -> Decision:
    """The decision over (name, document) pairs: explicit deny, allow, or implicit deny."""
    allowed_by = ""
    ignored: list[str] = []
    for name, document in documents:
        statements = document.get("Statement", [])
        for index, statement in enumerate(
            [statements] if isinstance(statements, Mapping) else statements
        ):
            label = f"{name} statement {statement.get('Sid') or index}"
            try:
                applies = _applies(statement, ask)
            except _NotModelled as exc:
                ignored.append(f"{label} ({exc})")
                continue
            if not applies:
                continue
            if statement.get("Effect") == "Deny":
                return Decision(False, f"explicitly denied by {label}")
            allowed_by = allowed_by or label
    if allowed_by:
        return Decision(True, f"allowed by {allowed_by}")
    tail = f"; not modelled by the sandbox: {', '.join(ignored)}" if ignored else ""
    return Decision(False, f"no statement allows {ask.action} on {ask.resource}{tail}")


def _listed(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else [str(v) for v in value or []]


def _substitute(text: str, ask: Ask) -> str:
    def one(found: re.Match[str]) -> str:
        name = found.group(1)
        if name in _LITERALS:
            return _LITERALS[name]
        value = ask.value_of(name)
        if value is None:
            raise _NoValue(name)
        return value

    return _VARIABLE.sub(one, text)


def _wildcard(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.IGNORECASE if ignore_case else 0) is not None


def _matches_any(patterns: Sequence[str], value: str, ask: Ask, *, ignore_case: bool) -> bool:
    for pattern in patterns:
        try:
            if _wildcard(_substitute(pattern, ask), value, ignore_case=ignore_case):
                return True
        except _NoValue:
            continue
    return False


def _element_matches(
    statement: Mapping[str, Any], element: str, value: str, ask: Ask, *, ignore_case: bool
) -> bool:
    """Whether Action/Resource (or their Not… form) lets `value` through; absent: it does."""
    if element in statement:
        return _matches_any(_listed(statement[element]), value, ask, ignore_case=ignore_case)
    if f"Not{element}" in statement:
        return not _matches_any(
            _listed(statement[f"Not{element}"]), value, ask, ignore_case=ignore_case
        )
    return True


def _applies(statement: Mapping[str, Any], ask: Ask) -> bool:
    if not _element_matches(statement, "Action", ask.action, ask, ignore_case=True):
        return False
    if not _element_matches(statement, "Resource", ask.resource, ask, ignore_case=False):
        return False
    if "Principal" in statement and not _principal_matches(statement["Principal"], ask):
        return False
    return all(
        _condition_holds(operator, block, ask)
        for operator, block in (statement.get("Condition") or {}).items()
    )


def _principal_matches(principal: Any, ask: Ask) -> bool:
    if principal == "*":
        return True
    if ask.principal is None or not isinstance(principal, Mapping):
        return False
    kind, who = ask.principal
    return any(
        key == kind and (who in _listed(value) or "*" in _listed(value))
        for key, value in principal.items()
    )


def _string_test(operator: str) -> tuple[bool, Any]:
    """(negated, test(pattern, value)) for a String/Arn/Bool operator."""
    tests: dict[str, tuple[bool, Any]] = {
        "StringEquals": (False, lambda p, v: p == v),
        "StringNotEquals": (True, lambda p, v: p == v),
        "StringEqualsIgnoreCase": (False, lambda p, v: p.lower() == v.lower()),
        "StringNotEqualsIgnoreCase": (True, lambda p, v: p.lower() == v.lower()),
        "StringLike": (False, lambda p, v: _wildcard(p, v)),
        "StringNotLike": (True, lambda p, v: _wildcard(p, v)),
        "ArnEquals": (False, lambda p, v: _wildcard(p, v)),
        "ArnLike": (False, lambda p, v: _wildcard(p, v)),
        "ArnNotEquals": (True, lambda p, v: _wildcard(p, v)),
        "ArnNotLike": (True, lambda p, v: _wildcard(p, v)),
        "Bool": (False, lambda p, v: p.lower() == v.lower()),
    }
    if operator not in tests:
        raise _NotModelled(f"condition operator {operator}")
    return tests[operator]


def _condition_holds(operator: str, block: Mapping[str, Any], ask: Ask) -> bool:
    if operator.startswith(("ForAnyValue:", "ForAllValues:")):
        raise _NotModelled(f"set operator {operator}")
    if operator == "Null":
        return all(
            (ask.value_of(key) is None) == (str(want).lower() == "true")
            for key, want in block.items()
        )
    if_exists = operator.endswith("IfExists")
    negated, test = _string_test(operator.removesuffix("IfExists"))
    for key, wanted in block.items():
        value = ask.value_of(key)
        if value is None:
            if if_exists or negated:
                continue
            return False
        patterns = []
        for pattern in _listed(wanted):
            try:
                patterns.append(_substitute(pattern, ask))
            except _NoValue:
                continue
        matched = any(test(pattern, value) for pattern in patterns)
        if matched == negated:
            return False
    return True
