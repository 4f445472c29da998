"""Evaluates IAM policy documents against one request, the way IAM decides Allow or Deny.

Covers what a SAML federation into Amazon Connect needs: Allow/Deny, Action/NotAction and
Resource/NotResource with `*`/`?` wildcards, Principal (for trust policies), policy variables such
as `${aws:userid}`, and the common condition operators with `...IfExists`. Anything it does not
understand (an unknown operator, a `ForAnyValue:` set operator) makes that statement not apply,
and the decision says so.
Reference: IAM User Guide, "Policy evaluation logic" and "IAM JSON policy elements: Condition".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.utils.translation import gettext_noop

from provisioning.messages import Message

ALLOW = "Allow"
DENY = "Deny"
_VARIABLE = re.compile(r"\$\{([^}]*)\}")
# IAM's escapes for characters that would otherwise be wildcards or start a variable.
_SPECIAL_VARIABLES = {"*": "*", "?": "?", "$": "$"}


@dataclass(frozen=True)
class PolicyRequest:
    """What is being asked: by whom (for trust policies), to do what, on what, in which context.

    `context` holds condition keys (`aws:userid`, `connect:InstanceId`, `SAML:aud`...); names are
    compared case-insensitively, as IAM does.
    """

    action: str
    resource: str = "*"
    context: Mapping[str, str | Sequence[str]] = field(default_factory=dict)
    principal: tuple[str, str] | None = None  # ("Federated", "arn:aws:iam::...:saml-provider/x")

    def context_values(self, key: str) -> list[str] | None:
        wanted = key.lower()
        for name, value in self.context.items():
            if name.lower() == wanted:
                return [value] if isinstance(value, str) else list(value)
        return None


@dataclass(frozen=True)
class NamedPolicy:
    """A policy document with the name an admin knows it by (managed policy ARN or inline name)."""

    name: str
    document: Mapping[str, Any]


@dataclass(frozen=True)
class PolicyDecision:
    allowed: bool
    explanation: Message  # rendered in the reader's language; statement labels as they are
    deciding_statement: str | None = None  # "<policy name> statement <Sid or index>"
    skipped: tuple[str, ...] = ()  # statements ignored because they use something unsupported


class UnsupportedPolicy(Exception):
    """A statement uses a feature this evaluator does not implement."""


def evaluate_policies(policies: Sequence[NamedPolicy], request: PolicyRequest) -> PolicyDecision:
    """An explicit Deny wins; otherwise any Allow allows; otherwise the request is implicitly
    denied."""
    allowed_by: str | None = None
    skipped: list[str] = []
    for policy in policies:
        for index, statement in enumerate(_statements(policy.document)):
            label = f"{policy.name} statement {statement.get('Sid') or index}"
            try:
                applies = _statement_applies(statement, request)
            except UnsupportedPolicy as exc:
                skipped.append(f"{label}: {exc}")
                continue
            if not applies:
                continue
            if statement.get("Effect") == DENY:
                return PolicyDecision(
                    allowed=False,
                    explanation=Message(
                        gettext_noop("explicitly denied by %(statement)s"), {"statement": label}
                    ),
                    deciding_statement=label,
                    skipped=tuple(skipped),
                )
            if statement.get("Effect") == ALLOW and allowed_by is None:
                allowed_by = label
    if allowed_by is not None:
        return PolicyDecision(
            allowed=True,
            explanation=Message(
                gettext_noop("allowed by %(statement)s"), {"statement": allowed_by}
            ),
            deciding_statement=allowed_by,
            skipped=tuple(skipped),
        )
    return PolicyDecision(
        allowed=False,
        explanation=Message(
            gettext_noop("no statement allows %(action)s on %(resource)s"),
            {"action": request.action, "resource": request.resource},
        ),
        skipped=tuple(skipped),
    )


def _statements(document: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    statements = document.get("Statement", [])
    if isinstance(statements, Mapping):
        return [statements]
    return [s for s in statements if isinstance(s, Mapping)]


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _statement_applies(statement: Mapping[str, Any], request: PolicyRequest) -> bool:
    if request.principal is not None and not _principal_matches(statement, request.principal):
        return False
    if not _element_matches(statement, "Action", request.action, request, ignore_case=True):
        return False
    if not _element_matches(statement, "Resource", request.resource, request, ignore_case=False):
        return False
    return _conditions_hold(statement.get("Condition", {}), request)


def _principal_matches(statement: Mapping[str, Any], principal: tuple[str, str]) -> bool:
    if "NotPrincipal" in statement:
        raise UnsupportedPolicy("NotPrincipal is not supported")
    declared = statement.get("Principal")
    if declared == "*":
        return True
    if not isinstance(declared, Mapping):
        return False
    kind, value = principal
    return any(candidate == "*" or candidate == value for candidate in _as_list(declared.get(kind)))


def _element_matches(
    statement: Mapping[str, Any],
    element: str,
    value: str,
    request: PolicyRequest,
    *,
    ignore_case: bool,
) -> bool:
    """`Action`/`NotAction` or `Resource`/`NotResource`. A trust policy has no Resource: absent
    both, the element does not restrict the request."""
    negated = f"Not{element}"
    if element in statement:
        patterns, wanted = _as_list(statement[element]), True
    elif negated in statement:
        patterns, wanted = _as_list(statement[negated]), False
    else:
        return True
    matched = False
    for pattern in patterns:
        resolved = _substitute_variables(str(pattern), request)
        if resolved is not None and wildcard_match(resolved, value, ignore_case=ignore_case):
            matched = True
            break
    return matched is wanted


def _substitute_variables(text: str, request: PolicyRequest) -> str | None:
    """Fills `${aws:userid}`-style variables from the request context; None if one has no value
    (IAM then treats the statement as not matching)."""
    unresolved = False

    def replace(match: re.Match[str]) -> str:
        nonlocal unresolved
        name = match.group(1).strip()
        if name in _SPECIAL_VARIABLES:
            return _SPECIAL_VARIABLES[name]
        values = request.context_values(name)
        if not values:
            unresolved = True
            return ""
        return values[0]

    result = _VARIABLE.sub(replace, text)
    return None if unresolved else result


def wildcard_match(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    """IAM's glob: `*` is any run of characters, `?` any single character."""
    regex = "".join(
        ".*" if char == "*" else "." if char == "?" else re.escape(char) for char in pattern
    )
    flags = re.DOTALL | (re.IGNORECASE if ignore_case else 0)
    return re.fullmatch(regex, value, flags) is not None


def _string_equals(policy_value: str, value: str) -> bool:
    return policy_value == value


def _string_equals_ignore_case(policy_value: str, value: str) -> bool:
    return policy_value.lower() == value.lower()


def _string_like(policy_value: str, value: str) -> bool:
    return wildcard_match(policy_value, value)


# Operator -> (how one policy value matches one request value, whether the operator is negated).
_OPERATORS: dict[str, tuple[Callable[[str, str], bool], bool]] = {
    "StringEquals": (_string_equals, False),
    "StringNotEquals": (_string_equals, True),
    "StringEqualsIgnoreCase": (_string_equals_ignore_case, False),
    "StringNotEqualsIgnoreCase": (_string_equals_ignore_case, True),
    "StringLike": (_string_like, False),
    "StringNotLike": (_string_like, True),
    "ArnEquals": (_string_like, False),
    "ArnLike": (_string_like, False),
    "ArnNotEquals": (_string_like, True),
    "ArnNotLike": (_string_like, True),
    "Bool": (_string_equals_ignore_case, False),
}


def _conditions_hold(conditions: Any, request: PolicyRequest) -> bool:
    """Every operator block must hold (AND); within a key, any listed value may match (OR)."""
    if not isinstance(conditions, Mapping):
        raise UnsupportedPolicy("Condition must be an object")
    for operator, checks in conditions.items():
        if not isinstance(checks, Mapping):
            raise UnsupportedPolicy(f"condition {operator} must be an object")
        for key, expected in checks.items():
            if not _condition_holds(operator, key, _as_list(expected), request):
                return False
    return True


def _condition_holds(operator: str, key: str, expected: list[Any], request: PolicyRequest) -> bool:
    actual = request.context_values(key)
    if operator == "Null":
        is_missing = actual is None
        return any(str(value).lower() == str(is_missing).lower() for value in expected)
    if_exists = operator.endswith("IfExists")
    base = operator.removesuffix("IfExists")
    if base not in _OPERATORS:
        raise UnsupportedPolicy(f"condition operator {operator} is not supported")
    matches, negated = _OPERATORS[base]
    if actual is None:
        # A missing key satisfies ...IfExists and the negated operators, and nothing else.
        return if_exists or negated
    resolved = [_substitute_variables(str(value), request) for value in expected]
    policy_values = [value for value in resolved if value is not None]
    matched = any(matches(p, a) for p in policy_values for a in actual)
    return not matched if negated else matched
