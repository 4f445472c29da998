"""The two Okta flows run headless (`manage.py setup_sso examples/okta-sandbox-*.toml`) against
the sandbox: each succeeds with a working sign-in, a second run changes nothing, and at the Okta
Free edition's app rate limit a run still finishes without a failed step."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from provisioning.connections.sandbox_registration import (
    SANDBOX_OKTA_SERVICE_APP,
    register_sandbox_connections,
)
from provisioning.messages import render
from provisioning.models import AuditEvent, AuditKind, Cloud, RunStatus, SetupRun, StepStatus
from provisioning.runs import admin_moves, runner
from provisioning.services.user_syncs import users_run_create
from provisioning.steps.sign_in_test import sandbox_sign_in
from sandbox.knobs import DEFAULT_RATE_LIMITS, Knobs
from sandbox.server import Sandbox
from tests.flows.entra_runs import step_context
from tests.flows.run_page import labels_left_in_english
from tests.flows.user_runs import drive, plan_rows

pytestmark = pytest.mark.django_db(transaction=True)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
GROUP_MAPPING = EXAMPLES / "okta-sandbox-group-mapping.toml"
ROLE_DOWNLOAD = EXAMPLES / "okta-sandbox-role-download.toml"
OKTA_APPS = "okta:apps"
AGENTS = "Connect Agents"
TOKEN_CALL = "POST /oauth2/v1/token"
# How the management API refuses an OAuth token: a bad proof or scheme, a bad token, a scope.
OAUTH_REFUSALS = (400, 401, 403)
# 12x the Free edition's 20 calls a minute (4 a second): the run finishes in seconds, and its
# burst of /api/v1/apps calls still outruns the 20-call bucket, so Okta answers 429.
FAST_RATE_SCALE = 12.0
# Read-only AWS operations start with these (botocore operation names); sign-in tests are posts
# to the AWS sign-in endpoint, not changes.
AWS_READS = ("Get", "List", "Describe", "Search", "Simulate")


@pytest.fixture
def okta_sandbox(sandbox: Sandbox, settings: Any) -> Sandbox:
    settings.WIZARD_MODE = "sandbox"
    settings.SANDBOX_FILE = sandbox.state_dir / "sandbox.json"
    register_sandbox_connections(sandbox_file=settings.SANDBOX_FILE)
    return sandbox


def run_plan(path: Path) -> SetupRun:
    """`manage.py setup_sso <path>` in this process; raises if it doesn't exit 0."""
    call_command("setup_sso", str(path))
    return SetupRun.objects.order_by("-created_at").first()  # type: ignore[return-value]


def variant(path: Path, tmp_path: Path, **values: str) -> Path:
    """The example with other values for some of its `key = "..."` lines (another instance
    alias gives a run of its own in the shared sandbox)."""
    lines = path.read_text().splitlines()
    for key, value in values.items():
        index = next(i for i, line in enumerate(lines) if line.startswith(f"{key} = "))
        lines[index] = f'{key} = "{value}"'
    copy = tmp_path / path.name
    copy.write_text("\n".join(lines) + "\n")
    return copy


def cloud_writes(run: SetupRun) -> list[str]:
    calls = AuditEvent.objects.filter(run=run, kind=AuditKind.CALL_STARTED)
    writes = []
    for call in calls:
        if call.cloud == Cloud.OKTA and not call.operation.startswith("GET "):
            writes.append(call.operation)
        elif (
            call.cloud == Cloud.AWS
            and call.service != "signin"
            and not call.operation.startswith(AWS_READS)
        ):
            writes.append(f"{call.service}:{call.operation}")
    return writes


def assert_signed_in(run: SetupRun) -> None:
    assert run.status == RunStatus.SUCCEEDED, run.error
    sign_in = run.steps.get(key="sign_in_test")
    results = sign_in.outputs["results"]
    assert results and all(result["ok"] for result in results), results
    people = run.steps.get(key="okta_assignments").outputs["people"]
    assert {result["username"] for result in results} <= {p["username"] for p in people}


@pytest.mark.parametrize("example", [GROUP_MAPPING, ROLE_DOWNLOAD], ids=lambda p: p.stem)
def test_it_runs_the_example_and_a_second_run_changes_nothing(
    okta_sandbox: Sandbox, example: Path
) -> None:
    first = run_plan(example)
    assert_signed_in(first)
    assert cloud_writes(first)
    # Every value the run page shows has a label in Japanese (the cloud's own field names aside).
    assert labels_left_in_english(first) == []

    second = run_plan(example)

    assert_signed_in(second)
    assert second.pk != first.pk
    not_noop = [
        (step.key, change["action"], change["resource_type"], change["name"])
        for step in second.steps.all()
        for change in step.plan.get("changes", [])
        if change["action"] not in ("nothing", "adopt")
    ]
    assert not_noop == []
    assert cloud_writes(second) == []


def test_it_runs_group_mapping_with_the_oauth_service_app_and_dpop(
    okta_sandbox: Sandbox, tmp_path: Path
) -> None:
    plan = variant(GROUP_MAPPING, tmp_path, alias="okta-oauth-dpop", idp=SANDBOX_OKTA_SERVICE_APP)

    run = run_plan(plan)

    assert_signed_in(run)
    okta_calls = AuditEvent.objects.filter(run=run, kind=AuditKind.CALL_FINISHED, cloud=Cloud.OKTA)
    tokens = [row.response.get("token_type") for row in okta_calls.filter(operation=TOKEN_CALL)]
    # Every token is DPoP-bound; the nonce challenges (no token) come at most once per nonce,
    # since one DPoP key and its nonce serve the whole worker process.
    assert "DPoP" in tokens and set(tokens) <= {"DPoP", None}
    refused = okta_calls.exclude(operation=TOKEN_CALL).filter(
        response__http_status__in=OAUTH_REFUSALS
    )
    assert list(refused.values_list("operation", "error_code")) == []


def test_it_finishes_at_the_free_edition_app_limit_by_waiting_for_the_reset(
    okta_sandbox: Sandbox, sandbox_knobs: Knobs, tmp_path: Path
) -> None:
    sandbox_knobs.rate_limits_enabled = True
    sandbox_knobs.rate_limits = {OKTA_APPS: DEFAULT_RATE_LIMITS[OKTA_APPS]}
    sandbox_knobs.rate_scale = FAST_RATE_SCALE
    sandbox_knobs.reset_buckets()
    started = time.monotonic()

    # The agents group: one app assignment each, so the run makes about three times the
    # bucket's 20 calls to /api/v1/apps.
    run = run_plan(
        variant(ROLE_DOWNLOAD, tmp_path, alias="okta-rate-limited", principals_text=AGENTS)
    )

    assert_signed_in(run)
    throttled = AuditEvent.objects.filter(
        run=run, kind=AuditKind.CALL_FINISHED, cloud=Cloud.OKTA, error_code="E0000047"
    ).count()
    assert throttled > 0
    assert not run.steps.filter(status=StepStatus.FAILED).exists()
    assert set(run.steps.values_list("status", flat=True)) == {
        StepStatus.SUCCEEDED,
        StepStatus.SKIPPED,  # no phone numbers asked for
    }
    assert time.monotonic() - started < 120


def test_it_rolls_back_the_app_group_and_assignments_it_created(
    okta_sandbox: Sandbox, tmp_path: Path
) -> None:
    run = run_plan(variant(GROUP_MAPPING, tmp_path, alias="okta-rolled-back"))
    assert_signed_in(run)
    org = okta_sandbox.apps["okta"].org
    app_id = run.steps.get(key="okta_app").outputs["app_id"]
    group_id = run.steps.get(key="okta_group_mapping").outputs["group_id"]
    assert app_id in org.apps and group_id in org.groups

    admin_moves.run_rollback(user=None, run_id=run.pk, enqueue=False)
    while (countdown := runner.advance(run.pk)) is not None:
        time.sleep(countdown)

    run.refresh_from_db()
    assert run.status == RunStatus.ROLLED_BACK, run.error
    assert app_id not in org.apps
    assert group_id not in org.groups
    admins = next(g for g in org.groups.values() if g.name == "Connect Admins")
    assert admins.member_ids, "a group the run only read keeps its members"


def test_a_users_plan_lists_okta_people_who_cannot_sign_in_and_assigns_their_group(
    okta_sandbox: Sandbox, tmp_path: Path
) -> None:
    setup = run_plan(variant(ROLE_DOWNLOAD, tmp_path, alias="okta-groups-sign-in"))
    assert setup.status == RunStatus.SUCCEEDED, setup.error
    agent = sorted(
        user.login
        for user in okta_sandbox.apps["okta"].org.users.values()
        if ".agent00" in user.login
    )[0]
    sign_in = step_context(setup, "sign_in_test")
    # The setup assigned "Connect Supervisors" people only: an agent isn't let in.
    assert not sandbox_sign_in(sign_in, {"login": agent, "username": agent})["ok"]

    users = users_run_create(user=None, setup_id=setup.pk)
    drive(users)
    admin_moves.step_submit_inputs(
        user=None,
        run_id=users.pk,
        step_key="group_users",
        inputs={
            "groups": [{"group": AGENTS, "security_profiles": ["Agent"]}],
            "username_source": "${source.login}",
            "assign_groups": True,
        },
        enqueue=False,
    )
    users = drive(users, confirm=False)

    assert users.status == RunStatus.WAITING
    (row,) = [r for r in plan_rows(users, "create") if r.username == agent]
    assert render(row.details["cannot_sign_in"]) == (
        "not assigned to the Okta app, directly or through a group"
    )
    assert row.details["assign_group"]["name"] == AGENTS
    users = drive(users)
    assert users.status == RunStatus.SUCCEEDED, users.error
    signed_in = sandbox_sign_in(sign_in, {"login": agent, "username": agent})
    assert signed_in["ok"], render(signed_in["detail"])
