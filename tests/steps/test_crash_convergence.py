"""Issue 4's proof for the steps that change AWS: a real worker SIGKILLed right after a step's
create call answered (the cloud changed; the run has not recorded it) and the run resumed converges
to one of each resource, with the run succeeded. connect_instance, connect_users and
federation_role have their own such tests beside their other tests; preflight changes nothing."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from sandbox.server import Sandbox
from tests.engine.runs import RUN_TIMEOUT_S, wait_for, wait_until_at_rest
from tests.engine_doubles import paused_path
from tests.sandbox.aws_clients import aws_client
from tests.steps import aws_step_runs
from tests.steps.aws_step_runs import REGION
from tests.steps.iam_flow import metadata
from tests.steps.iam_runs import policies_named, providers_named
from tests.worker_process import WorkerProcess
from wizard.models import Connection, RunStatus, StepRun
from wizard.services import runs as run_services

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
    run = run_services.run_create(
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
