"""Every registered step implements the whole contract: plan, apply, verify and rollback."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from provisioning.runs.runner import import_step_modules
from provisioning.steps.base import STEPS, Plan, Step, register

CONTRACT = ("plan", "apply", "verify", "rollback")


def test_every_registered_step_implements_plan_apply_verify_and_rollback() -> None:
    import_step_modules()

    assert len(STEPS) >= 20, sorted(STEPS)
    for key, step_class in STEPS.items():
        assert not inspect.isabstract(step_class), key
        for method in CONTRACT:
            assert getattr(step_class, method) is not getattr(Step, method), (key, method)
        assert isinstance(step_class(), Step)


def test_a_step_without_rollback_is_refused_when_registered() -> None:
    class ForgetsRollback(Step):
        key = "test_forgets_rollback"
        title = "Forgets its rollback"

        def plan(self, ctx: Any) -> Plan:
            return Plan()

        def apply(self, ctx: Any) -> dict[str, Any]:
            return {}

        def verify(self, ctx: Any) -> list[Any]:
            return []

    with pytest.raises(TypeError, match="does not implement rollback"):
        register(ForgetsRollback)
    assert "test_forgets_rollback" not in STEPS
    with pytest.raises(TypeError):
        ForgetsRollback()  # type: ignore[abstract]
