"""Crash convergence: a process SIGKILLed right after a step's write answered (the cloud changed;
the run has not recorded it), then the same run resumed, ends succeeded with one of each object.

AWS: a real worker killed after a create call; connect_instance, connect_users and
federation_role have their own such tests beside their other tests; preflight changes nothing.
Graph and Okta: every IdP step that writes, killed after each kind of write it makes."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from provisioning.models import Connection, RunStatus, SetupRun, StepRun, StepStatus
from provisioning.runs import admin_moves
from provisioning.steps.entra_claims import POLICY_MARKER
from sandbox.server import Sandbox
from tests.engine.runs import RUN_TIMEOUT_S, wait_for, wait_until_at_rest
from tests.engine_doubles import paused_path
from tests.flows.entra_runs import entra_sandbox  # noqa: F401 - a fixture
from tests.sandbox.aws_clients import aws_client
from tests.steps import aws_step_runs
from tests.steps.aws_step_runs import REGION
from tests.steps.iam_flow import metadata
from tests.steps.iam_runs import policies_named, providers_named
from tests.worker_process import WorkerProcess, worker_env

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

aws_connection = aws_step_runs.aws_connection
instance = aws_step_runs.instance
connect = aws_step_runs.connect

ENTITY_ID = "https://idp.example.test/crash-convergence"
# More numbers than Connect's default quota (5 per instance), so the step files a request.
PHONE_INPUTS = {
    "did_numbers": 6,
    "toll_free_numbers": 0,
    "concurrent_calls": 20,
    "documents_confirmed": True,
}


@dataclass(frozen=True)
class CrashCase:
    step_key: str
    operation: str
    flow_key: str
    inputs: Callable[[], dict[str, Any]]
    # What must exist exactly once afterwards: (sandbox, instance, run) -> how many there are.
    count: Callable[[Sandbox, dict[str, Any], Any], int]


def _providers(sandbox: Sandbox, target: dict[str, Any], run: Any) -> int:
    return len(providers_named(aws_client(sandbox, "iam"), f"ConnectSSO-{target['InstanceAlias']}"))


def _policy_versions(sandbox: Sandbox, target: dict[str, Any], run: Any) -> int:
    iam = aws_client(sandbox, "iam")
    found = policies_named(iam, f"ConnectSSO-{target['InstanceAlias']}-GetFederationToken")
    assert len(found) == 1
    return len(iam.list_policy_versions(PolicyArn=found[0]["Arn"])["Versions"])


def _access_keys(sandbox: Sandbox, target: dict[str, Any], run: Any) -> int:
    iam = aws_client(sandbox, "iam")
    name = StepRun.objects.get(run=run, key="okta_role_listing_user").outputs["user_name"]
    return len(iam.list_access_keys(UserName=name)["AccessKeyMetadata"])


def _quota_requests(sandbox: Sandbox, target: dict[str, Any], run: Any) -> int:
    history = aws_client(
        sandbox, "service-quotas"
    ).list_requested_service_quota_change_history_by_quota(
        ServiceCode="connect", QuotaCode="L-8F812903"
    )["RequestedQuotas"]
    return sum(1 for r in history if r.get("QuotaContext", {}).get("ContextId") == target["Arn"])


CASES = [
    CrashCase(
        "saml_provider",
        "CreateSAMLProvider",
        "test_iam_federation",
        lambda: {"metadata_xml": metadata(ENTITY_ID)},
        _providers,
    ),
    CrashCase(
        "federation_policy",
        "CreatePolicy",
        "test_iam_federation",
        lambda: {"metadata_xml": metadata(ENTITY_ID)},
        _policy_versions,
    ),
    CrashCase(
        "okta_role_listing_user",
        "CreateAccessKey",
        "test_only_okta_role_listing_user",
        dict,
        _access_keys,
    ),
    CrashCase(
        "phone_prerequisites",
        "RequestServiceQuotaIncrease",
        "test_only_phone_prerequisites",
        lambda: dict(PHONE_INPUTS),
        _quota_requests,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.step_key for case in CASES])
def test_it_converges_after_the_worker_dies_right_after_the_create_call(
    case: CrashCase,
    celery_worker: WorkerProcess,
    sandbox: Sandbox,
    aws_connection: Connection,
    instance: dict[str, Any],
) -> None:
    run = admin_moves.run_create(
        user=None,
        flow_key=case.flow_key,
        region=REGION,
        instance_id=instance["Id"],
        instance_alias=instance["InstanceAlias"],
        aws_connection_id=aws_connection.pk,
        inputs={**case.inputs(), "crash_after": {case.step_key: case.operation}},
        review_plans=False,
    )
    paused = paused_path(run.pk, case.step_key)
    wait_for(paused.exists, RUN_TIMEOUT_S, f"{case.operation} to have answered")
    victim = int(paused.read_text())
    assert victim in celery_worker.pool_pids()

    os.kill(victim, signal.SIGKILL)
    wait_until_at_rest(run, celery_worker)

    assert run.status == RunStatus.SUCCEEDED, run.error
    step = StepRun.objects.get(run=run, key=case.step_key)
    assert step.error == {} or step.error.get("code") == "worker_lost"
    assert case.count(sandbox, instance, run) == 1


# Graph and Okta writes ------------------------------------------------------------------------
# Each IdP step that writes, crashed right after each kind of write it makes: `manage.py
# setup_sso` in a process of its own pauses there (tests/steps/crash_points.py wraps the audit
# choke point both clients finish every call through), is SIGKILLed, and `setup_sso --resume`
# finishes the same run. Then there is one of each object.

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
REPO = EXAMPLES.parent
ENTRA_PLAN = EXAMPLES / "entra-sandbox.toml"
OKTA_PLAN = EXAMPLES / "okta-sandbox-group-mapping.toml"
OKTA_ROLE_DOWNLOAD_PLAN = EXAMPLES / "okta-sandbox-role-download.toml"
# Starting Django in a new process and running a flow up to the crash point, on a busy machine.
CRASH_WAIT_S = 180.0


def _outputs(run: Any, key: str) -> dict[str, Any]:
    return StepRun.objects.get(run=run, key=key).outputs


def _tenant(sandbox: Sandbox) -> Any:
    return sandbox.apps["entra"].tenant


def _okta_org(sandbox: Sandbox) -> Any:
    return sandbox.apps["okta"].org


def _entra_apps(sandbox: Sandbox, run: Any) -> int:
    app = _outputs(run, "entra_app")
    tenant = _tenant(sandbox)
    applications = [
        a for a in tenant.applications.values() if a["displayName"] == app["display_name"]
    ]
    principals = [p for p in tenant.service_principals.values() if p["appId"] == app["app_id"]]
    return max(len(applications), len(principals))


def _signing_certificates(sandbox: Sandbox, run: Any) -> int:
    sp_id = _outputs(run, "entra_app")["service_principal_id"]
    return len(_tenant(sandbox).signing_certificates.get(sp_id, {}))


def _app_roles(sandbox: Sandbox, run: Any) -> int:
    claims = _outputs(run, "entra_claims")
    tenant = _tenant(sandbox)
    sp = tenant.service_principals[_outputs(run, "entra_app")["service_principal_id"]]
    app = next(a for a in tenant.applications.values() if a["appId"] == sp["appId"])
    return max(
        sum(1 for role in owner.get("appRoles") or [] if role["value"] == claims["role_value"])
        for owner in (sp, app)
    )


def _claims_policies(sandbox: Sandbox, run: Any) -> int:
    """The run's own claims mapping policies (marked with its id)."""
    marker = POLICY_MARKER.format(run_id=run.pk)
    policies = _tenant(sandbox).claims_mapping_policies.values()
    return sum(1 for policy in policies if policy.get("description") == marker)


def _policy_links(sandbox: Sandbox, run: Any) -> int:
    sp_id = _outputs(run, "entra_app")["service_principal_id"]
    return len(_tenant(sandbox).policy_links.get(sp_id, []))


def _assignments(sandbox: Sandbox, run: Any) -> int:
    """The most assignments any one principal has to the app (1: no duplicate)."""
    sp_id = _outputs(run, "entra_app")["service_principal_id"]
    per_principal = Counter(
        assignment["principalId"]
        for assignment in _tenant(sandbox).app_role_assignments.values()
        if assignment["resourceId"] == sp_id
    )
    return max(per_principal.values(), default=0)


def _okta_apps(sandbox: Sandbox, run: Any) -> int:
    label = _outputs(run, "okta_app")["app_label"]
    return sum(1 for app in _okta_org(sandbox).apps.values() if app.label == label)


def _okta_groups(sandbox: Sandbox, run: Any) -> int:
    name = _outputs(run, "okta_group_mapping")["group_name"]
    return sum(1 for group in _okta_org(sandbox).groups.values() if group.name == name)


def _okta_app_users(sandbox: Sandbox, run: Any) -> int:
    """The most assignments any one person has to the app (1: no duplicate)."""
    app = _okta_org(sandbox).apps[_outputs(run, "okta_app")["app_id"]]
    return max(Counter(user.user_id for user in app.users.values()).values(), default=0)


def _okta_app_groups(sandbox: Sandbox, run: Any) -> int:
    mapping = _outputs(run, "okta_group_mapping")
    app = _okta_org(sandbox).apps[mapping["app_id"]]
    return sum(1 for group_id in app.groups if group_id == mapping["group_id"])


@dataclass(frozen=True)
class IdpCrashCase:
    plan: Path
    step_key: str
    # "<cloud> <METHOD> <path pattern>": the write the process dies right after.
    call: str
    count: Callable[[Sandbox, Any], int]

    @property
    def id(self) -> str:
        return f"{self.step_key}: {self.call}"


IDP_CASES = [
    IdpCrashCase(
        ENTRA_PLAN, "entra_app", "entra POST /applicationTemplates/*/instantiate", _entra_apps
    ),
    IdpCrashCase(ENTRA_PLAN, "entra_app", "entra PATCH /applications/*", _entra_apps),
    IdpCrashCase(ENTRA_PLAN, "entra_app", "entra PATCH /servicePrincipals/*", _entra_apps),
    IdpCrashCase(
        ENTRA_PLAN,
        "entra_app",
        "entra POST /servicePrincipals/*/addTokenSigningCertificate",
        _signing_certificates,
    ),
    # App roles are written on the application (Graph refuses them on the service principal).
    IdpCrashCase(ENTRA_PLAN, "entra_claims", "entra PATCH /applications/*", _app_roles),
    IdpCrashCase(
        ENTRA_PLAN, "entra_claims", "entra POST /policies/claimsMappingPolicies", _claims_policies
    ),
    IdpCrashCase(
        ENTRA_PLAN,
        "entra_claims",
        "entra POST /servicePrincipals/*/claimsMappingPolicies/$ref",
        _policy_links,
    ),
    IdpCrashCase(
        ENTRA_PLAN,
        "entra_assignments",
        "entra POST /servicePrincipals/*/appRoleAssignedTo",
        _assignments,
    ),
    IdpCrashCase(OKTA_PLAN, "okta_app", "okta POST /api/v1/apps", _okta_apps),
    IdpCrashCase(OKTA_PLAN, "okta_app_provider", "okta PUT /api/v1/apps/*", _okta_apps),
    IdpCrashCase(OKTA_PLAN, "okta_group_mapping", "okta POST /api/v1/groups", _okta_groups),
    IdpCrashCase(OKTA_PLAN, "okta_group_mapping", "okta PUT /api/v1/apps/*", _okta_apps),
    IdpCrashCase(
        OKTA_PLAN, "okta_assignments", "okta PUT /api/v1/groups/*/users/*", _okta_app_groups
    ),
    IdpCrashCase(
        OKTA_PLAN, "okta_assignments", "okta PUT /api/v1/apps/*/groups/*", _okta_app_groups
    ),
    IdpCrashCase(
        OKTA_ROLE_DOWNLOAD_PLAN,
        "okta_assignments",
        "okta POST /api/v1/apps/*/users",
        _okta_app_users,
    ),
]


def _crash_plan(case: IdpCrashCase, tmp_path: Path) -> Path:
    """The example plan with an instance of its own and the crash point in its run inputs."""
    lines = case.plan.read_text().splitlines()
    alias = f"crash-{uuid.uuid4().hex[:8]}"
    lines = [f'alias = "{alias}"' if line.startswith("alias = ") else line for line in lines]
    crash = f"crash_after_call = {{ {case.step_key} = {json.dumps(case.call)} }}"
    if "[inputs]" in lines:  # the example's run inputs (claim_phone_numbers), with the crash
        lines.insert(lines.index("[inputs]") + 1, crash)
    else:
        lines += ["", "[inputs]", crash]
    path = tmp_path / f"{alias}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _run_until_crash(plan: Path, sandbox: Sandbox, step_key: str) -> SetupRun:
    """setup_sso in a process of its own, SIGKILLed at its crash point; the interrupted run."""
    log = plan.with_suffix(".log")
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "setup_sso", str(plan)],
            cwd=REPO,
            env=worker_env(sandbox),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:

        def paused() -> bool:
            assert process.poll() is None, f"setup_sso ended first:\n{log.read_text()[-4000:]}"
            started = re.search(r"^Run (\S+)$", log.read_text(), re.MULTILINE)
            return bool(started) and paused_path(started.group(1), step_key).exists()

        wait_for(paused, CRASH_WAIT_S, f"{plan.name} to reach its crash point")
        run_id = re.search(r"^Run (\S+)$", log.read_text(), re.MULTILINE).group(1)  # type: ignore[union-attr]
        assert int(paused_path(run_id, step_key).read_text()) == process.pid
        os.kill(process.pid, signal.SIGKILL)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
    return SetupRun.objects.get(pk=run_id)


@pytest.mark.parametrize("case", IDP_CASES, ids=[case.id for case in IDP_CASES])
def test_it_converges_after_setup_sso_dies_right_after_an_idp_write(
    case: IdpCrashCase,
    entra_sandbox: Sandbox,  # noqa: F811 - also registers the sandbox's Okta connection
    tmp_path: Path,
) -> None:
    plan = _crash_plan(case, tmp_path)
    run = _run_until_crash(plan, entra_sandbox, case.step_key)
    assert StepRun.objects.get(run=run, key=case.step_key).status == StepStatus.APPLYING

    call_command("setup_sso", str(plan), "--resume", str(run.pk), stdout=io.StringIO())

    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert case.count(entra_sandbox, run) == 1
