"""entra_claims against the sandbox's Graph: the app role on the application (waited for on the
service principal, an adopted disabled role left in place on rollback), and a claims mapping
policy of its own that a shared policy never gives way to and a crash never doubles."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from provisioning.errors import WaitForCloud
from provisioning.steps.entra_claims import APP_ROLE, POLICY, EntraClaims, policy_definition
from sandbox.entra.tenant import AWS_SINGLE_ACCOUNT_TEMPLATE_ID as AWS_TEMPLATE_ID
from sandbox.knobs import Knobs
from sandbox.server import Sandbox
from tests.flows.entra_runs import entra_sandbox, plan_file, setup_sso, step_context  # noqa: F401
from wizard.models import RunStatus, SetupRun

# Longer than the window the test sets for the service principal to mirror its app's roles.
MIRROR_DELAY_S = 0.8
# How long and how often a test re-runs an apply that waits for the cloud.
WAIT_TIMEOUT_S = 10
WAIT_PAUSE_S = 0.1


class Crash(BaseException):
    """The worker dying: not an Exception, so nothing on the way up handles it."""


def _finished_run(tmp_path: Path) -> SetupRun:
    run, output = setup_sso(plan_file(tmp_path))
    assert run.status == RunStatus.SUCCEEDED, output
    return run


def _tenant(sandbox: Sandbox) -> Any:
    return sandbox.apps["entra"].tenant


def _ids(run: SetupRun) -> tuple[str, str]:
    app = run.steps.get(key="entra_app").outputs
    return app["app_object_id"], app["service_principal_id"]


def _role(tenant: Any, holder: dict[str, Any], value: str) -> dict[str, Any] | None:
    with tenant.lock:
        return next((r for r in holder["appRoles"] if r["value"] == value), None)


def _apply_as_the_engine_does(step: EntraClaims, ctx: Any) -> dict[str, Any]:
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
    entra_sandbox: Sandbox,  # noqa: F811
    sandbox_knobs: Knobs,
    tmp_path: Path,
) -> None:
    run = _finished_run(tmp_path)
    tenant = _tenant(entra_sandbox)
    app_id, sp_id = _ids(run)
    value = run.steps.get(key="entra_claims").outputs["role_value"]
    assert _role(tenant, tenant.applications[app_id], value)["isEnabled"]
    step = EntraClaims()
    sandbox_knobs.graph_visibility_delay_s = MIRROR_DELAY_S / 2
    step.rollback(step_context(run, "entra_claims"))
    assert _role(tenant, tenant.applications[app_id], value) is None
    time.sleep(MIRROR_DELAY_S)

    with pytest.raises(WaitForCloud):
        step.apply(step_context(run, "entra_claims"))
    assert _role(tenant, tenant.service_principals[sp_id], value) is None
    time.sleep(MIRROR_DELAY_S)
    outputs = step.apply(step_context(run, "entra_claims"))

    assert _role(tenant, tenant.service_principals[sp_id], value)["id"] == outputs["app_role_id"]
    with tenant.lock:
        default_roles = [r for r in tenant.applications[app_id]["appRoles"] if r["value"] is None]
    assert {r["displayName"] for r in default_roles} == {"User", "msiam_access"}


def test_it_enables_an_existing_disabled_role_and_leaves_it_on_rollback(
    entra_sandbox: Sandbox,  # noqa: F811
    tmp_path: Path,
) -> None:
    run = _finished_run(tmp_path)
    tenant = _tenant(entra_sandbox)
    app_id, sp_id = _ids(run)
    value = run.steps.get(key="entra_claims").outputs["role_value"]
    with tenant.lock:
        for holder in (tenant.applications[app_id], tenant.service_principals[sp_id]):
            _role(tenant, holder, value)["isEnabled"] = False
    adopting = _without(step_context(run, "entra_claims"), APP_ROLE)
    step = EntraClaims()

    (role_change,) = [c for c in step.plan(adopting).changes if c.resource_type == APP_ROLE]
    assert role_change.action == "update"
    _apply_as_the_engine_does(step, adopting)
    assert all(entry["resource_type"] != APP_ROLE for entry in adopting.created_resources)
    step.rollback(adopting)

    role = _role(tenant, tenant.applications[app_id], value)
    assert role is not None and role["isEnabled"]


def test_it_links_its_own_policy_and_leaves_a_policy_other_apps_share_untouched(
    entra_sandbox: Sandbox,  # noqa: F811
    tmp_path: Path,
) -> None:
    run = _finished_run(tmp_path)
    tenant = _tenant(entra_sandbox)
    _, sp_id = _ids(run)
    ours = run.steps.get(key="entra_claims").outputs["policy_id"]
    _, other_app = tenant.instantiate(AWS_TEMPLATE_ID, "Another AWS app")
    while not tenant.is_visible(other_app["id"]):
        time.sleep(0.05)
    shared_definition = [policy_definition("mail", 900)]
    shared = tenant.create_claims_mapping_policy(
        {"displayName": "Claims for every AWS app", "definition": shared_definition}
    )
    tenant.unlink_claims_mapping_policy(sp_id, ours)
    tenant.delete_claims_mapping_policy(ours)
    for target in (other_app["id"], sp_id):
        tenant.link_claims_mapping_policy(target, shared["id"])
    step = EntraClaims()
    ctx = _without(step_context(run, "entra_claims"), POLICY)

    (policy_change,) = [c for c in step.plan(ctx).changes if c.resource_type == POLICY]
    assert policy_change.action == "create"
    outputs = _apply_as_the_engine_does(step, ctx)

    assert outputs["policy_id"] != shared["id"]
    assert tenant.find_claims_mapping_policy(shared["id"])["definition"] == shared_definition
    assert [p["id"] for p in tenant.policies_of(other_app["id"])] == [shared["id"]]
    assert [p["id"] for p in tenant.policies_of(sp_id)] == [outputs["policy_id"]]
    step.rollback(ctx)
    assert [p["id"] for p in tenant.policies_of(sp_id)] == [shared["id"]]


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
    entra_sandbox: Sandbox,  # noqa: F811
    tmp_path: Path,
) -> None:
    run = _finished_run(tmp_path)
    tenant = _tenant(entra_sandbox)
    _, sp_id = _ids(run)
    claims = run.steps.get(key="entra_claims")
    name = tenant.find_claims_mapping_policy(claims.outputs["policy_id"])["displayName"]
    tenant.unlink_claims_mapping_policy(sp_id, claims.outputs["policy_id"])
    tenant.delete_claims_mapping_policy(claims.outputs["policy_id"])
    claims.created_resources = [e for e in claims.created_resources if e["resource_type"] != POLICY]
    claims.save(update_fields=["created_resources"])
    step = EntraClaims()

    with pytest.raises(Crash):
        step.apply(_crash_once_on(step_context(run, "entra_claims"), POLICY))
    outputs = _apply_as_the_engine_does(step, step_context(run, "entra_claims"))

    with tenant.lock:
        named = [
            p["id"] for p in tenant.claims_mapping_policies.values() if p["displayName"] == name
        ]
    assert named == [outputs["policy_id"]]
    assert [p["id"] for p in tenant.policies_of(sp_id)] == named
    recorded = run.steps.get(key="entra_claims").created_resources
    assert [e["identifier"] for e in recorded if e["resource_type"] == POLICY] == named
