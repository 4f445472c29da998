"""A pytest plugin: every flow and browser test that uses the sandbox records its wire, and a
request or answer the clouds' API descriptions don't define fails the test."""

from __future__ import annotations

import json
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from sandbox.server import Sandbox
from tests.contract.wire_check import WireReport, check_exchanges

TESTS_DIR = Path(__file__).resolve().parents[1]
CHECKED_AREAS = ("flows", "browser")
SUMMARY = TESTS_DIR / "artifacts" / "contract.json"


def _checked_sandbox(item: pytest.Item) -> Sandbox | None:
    path = Path(str(item.path)).resolve()
    if not any(path.is_relative_to(TESTS_DIR / area) for area in CHECKED_AREAS):
        return None
    sandbox = getattr(item, "funcargs", {}).get("sandbox")
    return sandbox if isinstance(sandbox, Sandbox) else None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, Any]:
    sandbox = _checked_sandbox(item)
    if sandbox is None:
        return (yield)
    sandbox.wire_log.start()
    try:
        result = yield
    finally:
        exchanges = sandbox.wire_log.stop()
    report = check_exchanges(exchanges)
    write_summary(item.nodeid, report)
    if report.violations:
        raise AssertionError(report.describe())
    return result


def write_summary(test: str, report: WireReport) -> None:
    """tests/artifacts/contract.json: per test and in total, what the contract check covered."""
    SUMMARY.parent.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {"tests": {}}
    if SUMMARY.exists():
        summary = json.loads(SUMMARY.read_text())
    summary["tests"][test] = report.as_json()
    totals: dict[str, int] = {"requests_validated": 0, "answers_validated": 0, "violations": 0}
    for entry in summary["tests"].values():
        totals["requests_validated"] += sum(entry["requests_validated"].values())
        totals["answers_validated"] += sum(entry["answers_validated"].values())
        totals["violations"] += len(entry["violations"])
    summary["totals"] = totals
    SUMMARY.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
