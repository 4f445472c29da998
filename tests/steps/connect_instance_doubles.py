"""Test steps and flows for the connect_instance tests (registered on import, in the test process
and in the worker): a connect_instance that pauses between CreateInstance and recording it, and a
later step that reports the run's instance as it sees it.

Run input `pause_after_create_s`: inside apply, after CreateInstance answered and before the
instance is recorded, write "<run>-test_connect_instance_pausing.paused" (holding the pid) in the
test effects folder and sleep that long, the first time only: the moment to SIGKILL the worker.
"""

from __future__ import annotations

import time
from typing import Any

from provisioning.context import StepContext
from provisioning.flows import Flow, register_flow
from provisioning.steps.base import Change, Finding, Plan, Step, register
from provisioning.steps.connect_instance import ConnectInstance, Wanted
from tests.engine_doubles import mark_paused, paused_path


@register
class PausingConnectInstance(ConnectInstance):
    key = "test_connect_instance_pausing"
    title = "Connect instance that pauses after creating"

    def _create(self, ctx: StepContext, connect: Any, want: Wanted) -> str:
        pause_s = float(ctx.inputs.get("pause_after_create_s", 0))
        record = ctx.record_created

        def pause_then_record(resource_type: str, identifier: str, **details: Any) -> None:
            paused = paused_path(ctx.run_id, self.key)
            if pause_s and not paused.exists():
                mark_paused(paused)
                time.sleep(pause_s)
            record(resource_type, identifier, **details)

        ctx.record_created = pause_then_record  # type: ignore[method-assign]
        return super()._create(ctx, connect, want)


@register
class ReadsRunInstance(Step):
    """Changes nothing; outputs the run's instance as a later step's context holds it."""

    key = "test_reads_run_instance"
    title = "Reads the run's instance"

    def plan(self, ctx: StepContext) -> Plan:
        return Plan(changes=[Change("nothing", "run_instance", ctx.instance_id)])

    def apply(self, ctx: StepContext) -> dict[str, Any]:
        return {"instance_id": ctx.instance_id, "instance_alias": ctx.instance_alias}

    def verify(self, ctx: StepContext) -> list[Finding]:
        return []

    def rollback(self, ctx: StepContext) -> None:
        return None


register_flow(
    Flow(
        key="test_connect_instance_flow",
        idp="entra",
        title="Test setup: a Connect instance",
        step_keys=("connect_instance", "test_reads_run_instance"),
    )
)
register_flow(
    Flow(
        key="test_connect_instance_pausing_flow",
        idp="entra",
        title="Test setup: a Connect instance whose worker may be killed",
        step_keys=("test_connect_instance_pausing", "test_reads_run_instance"),
    )
)
