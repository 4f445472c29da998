"""Every registered step implements the whole contract: plan, apply, verify and rollback."""

from __future__ import annotations

import inspect
import typing
import uuid
from dataclasses import MISSING, fields
from typing import Any

import pytest

from provisioning.audit import AuditScope
from provisioning.context import StepContext
from provisioning.runs.runner import import_step_modules
from provisioning.steps.base import STEPS, Plan, Step, StepOutputs, outputs_json, register
from provisioning.steps.federation_role import FederationRoleOutputs

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


def test_every_steps_outputs_load_from_a_run_stored_before_or_after_them() -> None:
    import_step_modules()
    typed = StepOutputs.__subclasses__()

    assert {outputs.step_key for outputs in typed} >= {
        "saml_provider",
        "federation_policy",
        "federation_role",
        "entra_claims",
        "okta_app",
        "connect_instance",
    }
    for outputs_class in typed:
        assert outputs_class.step_key in STEPS, outputs_class
        # An older run's outputs lack fields (defaults), a newer one's have more (left out);
        # the runner's own "verify" findings ride along in every stored outputs dict.
        empty = outputs_class.from_json({})
        assert outputs_class.from_json({**empty.to_json(), "verify": [], "gone": 1}) == empty
        # Every key is a field (entra_app, sign_in_test and group_users leave a key out when
        # empty, as their dicts did).
        assert set(empty.to_json()) <= {item.name for item in fields(outputs_class)}


def _filled(outputs_class: type[StepOutputs]) -> StepOutputs:
    """An instance with a non-default value in every field, by its annotation."""
    values: dict[str, Any] = {}
    for item in fields(outputs_class):
        annotation = str(item.type)
        if annotation.startswith("bool"):
            values[item.name] = True
        elif annotation.startswith("int"):
            values[item.name] = 7
        elif annotation.startswith("list"):
            values[item.name] = [{"login": "a@example.com"}] if "dict" in annotation else ["x"]
        elif annotation.startswith("dict"):
            values[item.name] = {"k": "v"}
        else:
            values[item.name] = f"{item.name}-value"
    return outputs_class(**values)


def test_every_steps_apply_returns_its_outputs_class_which_round_trips() -> None:
    import_step_modules()
    typed = []
    for key, step_class in STEPS.items():
        if not step_class.__module__.startswith("provisioning."):
            continue  # a test's own step
        returned = typing.get_type_hints(step_class.apply).get("return")
        assert isinstance(returned, type) and issubclass(returned, StepOutputs), (key, returned)
        assert returned.step_key == key
        # A default for every field: an older run's outputs lack the newer ones.
        assert all(
            item.default is not MISSING or item.default_factory is not MISSING
            for item in fields(returned)
        ), key
        filled = _filled(returned)
        assert returned.from_json(filled.to_json()) == filled, key
        assert returned.from_json(returned().to_json()) == returned(), key
        typed.append(key)
    assert len(typed) >= 20, typed


def test_a_later_step_reads_earlier_outputs_typed_as_the_runner_stored_them() -> None:
    role = FederationRoleOutputs(role_arn="arn:aws:iam::1:role/R", max_session_duration_s=7200)
    stored = outputs_json(role)
    ctx = StepContext(
        run_id=uuid.uuid4(),
        step_key="entra_claims",
        region="ap-northeast-1",
        instance_id="",
        mode="sandbox",
        inputs={},
        outputs={"federation_role": {**stored, "verify": []}},
        audit=AuditScope(actor_label="test"),
    )

    assert stored["role_arn"] == "arn:aws:iam::1:role/R"
    assert ctx.outputs_of(FederationRoleOutputs) == role
    assert ctx.outputs_of(FederationRoleOutputs).max_session_duration_s == 7200
