"""entra_claims against the sandbox's Graph: the app role on the application (waited for on the
service principal, an adopted disabled role left in place on rollback), and a claims mapping
policy of its own that a shared policy never gives way to and a crash never doubles (searched for
only once a POST making one went out)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from provisioning.entra.client import run_graph
from provisioning.errors import WaitForCloud
from provisioning.models import AuditEvent, AuditKind, RunStatus, SetupRun
from provisioning.steps.entra_claims import (
    APP_ROLE,
    POLICY,
    POLICY_COLLECTION,
    POLICY_MARKER,
    EntraClaims,
    EntraClaimsOutputs,
    policy_definition,
)
from sandbox.entra.tenant import AWS_SINGLE_ACCOUNT_TEMPLATE_ID as AWS_TEMPLATE_ID
from sandbox.knobs import Knobs
from sandbox.server import Sandbox
from tests.flows.entra_runs import (  # noqa: F401
    answer_lost,
    entra_sandbox,
    plan_file,
    setup_sso,
    setup_sso_until_the_worker_dies,
    step_context,
    take_over,
)

# Longer than the window the test sets for the service principal to mirror its app's roles; the
# window (half of it) must outlast one apply on a loaded CI machine.
MIRROR_DELAY_S = 3.0
# How long and how often a test re-runs an apply that waits for the cloud.
WAIT_TIMEOUT_S = 10
WAIT_PAUSE_S = 0.1


class Crash(BaseException):
    """The worker dying: not an Exception, so nothing on the way up handles it."""


@dataclass(frozen=True)
class Finished:
    """A succeeded Entra run and what entra_claims made in the sandbox tenant."""

    run: SetupRun
    tenant: Any
    app_id: str
    sp_id: str
    role_value: str
    policy_id: str

    def context(self) -> Any:
        return step_context(self.run, "entra_claims")


@pytest.fixture
def finished(entra_sandbox: Sandbox, tmp_path: Path) -> Finished:  # noqa: F811
    run, output = setup_sso(plan_file(tmp_path))
    assert run.status == RunStatus.SUCCEEDED, output
    app = run.steps.get(key="entra_app").outputs
    claims = run.steps.get(key="entra_claims").outputs
    return Finished(
        run=run,
        tenant=entra_sandbox.apps["entra"].tenant,
        app_id=app["app_object_id"],
        sp_id=app["service_principal_id"],
        role_value=claims["role_value"],
        policy_id=claims["policy_id"],
    )


def _role(tenant: Any, holder: dict[str, Any], value: str) -> dict[str, Any] | None:
    with tenant.lock:
        return next((r for r in holder["appRoles"] if r["value"] == value), None)


def _apply_as_the_engine_does(step: EntraClaims, ctx: Any) -> EntraClaimsOutputs:
    """apply, again after a pause each time it waits for the cloud (the engine re-enqueues)."""
    deadline = time.monotonic() + WAIT_TIMEOUT_S
    while True:
        try:
            return step.apply(ctx)
        except WaitForCloud:
            if time.monotonic() > deadline:
                raise
            time.sleep(WAIT_PAUSE_S)


def _without(ctx: Any, resource_type: str) -> Any:
    ctx.created_resources = [
        entry for entry in ctx.created_resources if entry["resource_type"] != resource_type
    ]
    return ctx


def test_it_puts_the_app_role_on_the_application_and_waits_until_the_service_principal_has_it(
    finished: Finished, sandbox_knobs: Knobs
) -> None:
    tenant, app_id, sp_id, value = (
        finished.tenant,
        finished.app_id,
        finished.sp_id,
        finished.role_value,
    )
    assert _role(tenant, tenant.applications[app_id], value)["isEnabled"]
    step = EntraClaims()
    sandbox_knobs.graph_visibility_delay_s = MIRROR_DELAY_S / 2
    step.rollback(finished.context())
    assert _role(tenant, tenant.applications[app_id], value) is None
    time.sleep(MIRROR_DELAY_S)

    with pytest.raises(WaitForCloud):
        step.apply(finished.context())
    assert _role(tenant, tenant.service_principals[sp_id], value) is None
    time.sleep(MIRROR_DELAY_S)
    # The new claims policy replicates too: apply as the engine would, until nothing waits.
    outputs = _apply_as_the_engine_does(step, finished.context())

    assert _role(tenant, tenant.service_principals[sp_id], value)["id"] == outputs.app_role_id
    with tenant.lock:
        default_roles = [r for r in tenant.applications[app_id]["appRoles"] if r["value"] is None]
    assert {r["displayName"] for r in default_roles} == {"User", "msiam_access"}


def test_it_enables_an_existing_disabled_role_and_leaves_it_on_rollback(
    finished: Finished,
) -> None:
    tenant, app_id, sp_id, value = (
        finished.tenant,
        finished.app_id,
        finished.sp_id,
        finished.role_value,
    )
    with tenant.lock:
        for holder in (tenant.applications[app_id], tenant.service_principals[sp_id]):
            _role(tenant, holder, value)["isEnabled"] = False
    adopting = _without(finished.context(), APP_ROLE)
    step = EntraClaims()

    (role_change,) = [c for c in step.plan(adopting).changes if c.resource_type == APP_ROLE]
    assert role_change.action == "update"
    _apply_as_the_engine_does(step, adopting)
    assert all(entry["resource_type"] != APP_ROLE for entry in adopting.created_resources)
    step.rollback(adopting)

    role = _role(tenant, tenant.applications[app_id], value)
    assert role is not None and role["isEnabled"]


def test_it_links_its_own_policy_and_leaves_a_policy_other_apps_share_untouched(
    finished: Finished,
) -> None:
    tenant, sp_id, ours = finished.tenant, finished.sp_id, finished.policy_id
    _, other_app = tenant.instantiate(AWS_TEMPLATE_ID, "Another AWS app")
    while not tenant.is_visible(other_app["id"]):
        time.sleep(0.05)
    shared_definition = [policy_definition("mail", 900)]
    shared = tenant.create_claims_mapping_policy(
        {"displayName": "Claims for every AWS app", "definition": shared_definition}
    )
    while not tenant.is_visible(shared["id"]):  # a new policy replicates before it can be linked
        time.sleep(0.05)
    tenant.unlink_claims_mapping_policy(sp_id, ours)
    _delete_as_the_run(finished, ours)
    for target in (other_app["id"], sp_id):
        tenant.link_claims_mapping_policy(target, shared["id"])
    step = EntraClaims()
    ctx = _without(finished.context(), POLICY)

    (policy_change,) = [c for c in step.plan(ctx).changes if c.resource_type == POLICY]
    assert policy_change.action == "create"
    outputs = _apply_as_the_engine_does(step, ctx)

    assert outputs.policy_id != shared["id"]
    assert tenant.find_claims_mapping_policy(shared["id"])["definition"] == shared_definition
    assert [p["id"] for p in tenant.policies_of(other_app["id"])] == [shared["id"]]
    assert [p["id"] for p in tenant.policies_of(sp_id)] == [outputs.policy_id]
    step.rollback(ctx)
    assert [p["id"] for p in tenant.policies_of(sp_id)] == [shared["id"]]


def _delete_as_the_run(finished: Finished, policy_id: str) -> None:
    """Delete a policy the run made through Graph as the run's own call, as its rollback would:
    the run then knows it is gone, rather than waiting for it to replicate."""
    policies = finished.context().graph().policies.claims_mapping_policies
    run_graph(policies.by_claims_mapping_policy_id(policy_id).delete())


def _crash_once_on(ctx: Any, resource_type: str) -> Any:
    record: Callable[..., None] = ctx.record_created

    def crash_then_record(kind: str, identifier: str, **details: Any) -> None:
        if kind == resource_type:
            ctx.record_created = record
            raise Crash(f"the worker died before recording {kind} {identifier}")
        record(kind, identifier, **details)

    ctx.record_created = crash_then_record
    return ctx


def test_it_makes_one_policy_when_a_crash_comes_between_creating_and_recording_it(
    finished: Finished,
) -> None:
    tenant, sp_id = finished.tenant, finished.sp_id
    claims = finished.run.steps.get(key="entra_claims")
    name = tenant.find_claims_mapping_policy(finished.policy_id)["displayName"]
    tenant.unlink_claims_mapping_policy(sp_id, finished.policy_id)
    _delete_as_the_run(finished, finished.policy_id)
    claims.created_resources = [e for e in claims.created_resources if e["resource_type"] != POLICY]
    claims.save(update_fields=["created_resources"])
    step = EntraClaims()

    with pytest.raises(Crash):
        step.apply(_crash_once_on(finished.context(), POLICY))
    outputs = _apply_as_the_engine_does(step, finished.context())

    with tenant.lock:
        named = [
            p["id"] for p in tenant.claims_mapping_policies.values() if p["displayName"] == name
        ]
    assert named == [outputs.policy_id]
    assert [p["id"] for p in tenant.policies_of(sp_id)] == named
    recorded = finished.run.steps.get(key="entra_claims").created_resources
    assert [e["identifier"] for e in recorded if e["resource_type"] == POLICY] == named


def _policy_scans(run: SetupRun) -> int:
    """The run's reads of every claims mapping policy (looking for one a lost attempt made)."""
    return AuditEvent.objects.filter(
        run=run, kind=AuditKind.CALL_STARTED, operation=f"GET {POLICY_COLLECTION}"
    ).count()


def test_it_finds_the_policy_an_attempt_made_before_its_worker_died_unanswered(
    entra_sandbox: Sandbox,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    create_policy = EntraClaims._create_policy

    def worker_dies(step: EntraClaims, *args: Any) -> Any:
        # Graph made the policy, its answer is lost, and the worker dies before the step
        # records it.
        create_policy(step, *args)
        raise SystemExit("worker killed")

    answer_lost(monkeypatch, f"POST {POLICY_COLLECTION}")
    monkeypatch.setattr(EntraClaims, "_create_policy", worker_dies)
    run = setup_sso_until_the_worker_dies(plan_file(tmp_path))
    monkeypatch.undo()
    step = run.steps.get(key="entra_claims")
    tenant = entra_sandbox.apps["entra"].tenant
    marker = POLICY_MARKER.format(run_id=run.pk)

    def ours() -> list[str]:
        with tenant.lock:
            policies = tenant.claims_mapping_policies.values()
            return [p["id"] for p in policies if p.get("description") == marker]

    assert step.status == "applying"
    assert [e for e in step.created_resources if e["resource_type"] == POLICY] == []
    assert len(ours()) == 1
    # Before any POST making a policy went out, nothing of this run could be lost: no scan.
    assert _policy_scans(run) == 0

    take_over(run, step, entra_sandbox)

    assert run.status == RunStatus.SUCCEEDED, run.error
    (policy_id,) = ours()
    step.refresh_from_db()
    recorded = [e["identifier"] for e in step.created_resources if e["resource_type"] == POLICY]
    assert recorded == [policy_id]
    assert step.outputs["policy_id"] == policy_id
    assert _policy_scans(run) == 1
