"""Checks a list of recorded exchanges with each cloud's contract and counts what was checked."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from sandbox.wire_log import Exchange
from tests.contract.aws_contract import check_aws
from tests.contract.graph_contract import check_graph
from tests.contract.okta_contract import check_okta
from tests.contract.violations import Violation

CHECKS = {"entra": check_graph, "okta": check_okta, "aws": check_aws}


@dataclass
class WireReport:
    """`requests` and `answers` count the exchanges checked per cloud; `not_checked` those left
    to another check by an allow-list (token endpoints, metadata XML, sandbox-only routes)."""

    requests: Counter[str] = field(default_factory=Counter)
    answers: Counter[str] = field(default_factory=Counter)
    not_checked: Counter[str] = field(default_factory=Counter)
    violations: list[Violation] = field(default_factory=list)

    def as_json(self) -> dict[str, object]:
        return {
            "requests_validated": dict(self.requests),
            "answers_validated": dict(self.answers),
            "not_checked": dict(self.not_checked),
            "violations": sorted({str(violation) for violation in self.violations}),
        }

    def describe(self) -> str:
        unique = sorted({str(violation) for violation in self.violations})
        lines = [f"{len(unique)} exchange(s) break the clouds' API descriptions:"]
        lines += [f"  {line}" for line in unique]
        return "\n".join(lines)


def check_exchanges(exchanges: list[Exchange]) -> WireReport:
    report = WireReport()
    for exchange in exchanges:
        violations, checked = CHECKS[exchange.cloud](exchange)
        report.violations += violations
        if not checked:
            report.not_checked[exchange.cloud] += 1
            continue
        if exchange.cloud != "aws":
            report.requests[exchange.cloud] += 1
        report.answers[exchange.cloud] += 1
    return report
