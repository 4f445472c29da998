"""Repair of Okta federations against the sandbox: a federation one of the two Okta flows built
(role by group mapping, or roles downloaded from AWS) is broken at one link through the cloud's
own API, a check names the finding, and Repair's run (the flow the app's useGroupMapping names,
inputs filled from the check) plans exactly the fixing change, adopts everything else (the app,
provider, role, policy and instance keep their IDs), applies it once confirmed, and the check
after it is healthy. A custom SAML app made by hand is not offered Repair, and the page says
why."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import translation

from provisioning.federation_check.judge import federation_url
from provisioning.federation_check.repair import (
    CUSTOM_APP_NOT_REPAIRED,
    fixable,
    not_repaired_because,
    repair_flow,
)
from provisioning.federation_check.result import FederationCheck
from provisioning.models import (
    FederationCheckRecord,
    FederationCheckStatus,
    RunStatus,
    SetupRun,
)
from provisioning.runs.admin_moves import RunError
from provisioning.services.federation_repairs import repair_run_create
from sandbox.server import Sandbox
from tests.federation_check.test_check_federation import REGION
from tests.federation_check.test_check_okta_federation import okta_sandbox  # noqa: F401
from tests.federation_check.test_hand_made_okta import (
    _okta,
    _sent,
    build_by_hand,
    build_custom_saml_app,
)
from tests.federation_check.test_repair import (
    checked_instance,
    findings,
    planned_writes,
    repaired,
    repairs_a_certificate_iam_holds_no_longer,
    repairs_a_deleted_iam_provider,
    repairs_a_detached_federation_policy,
    repairs_a_trust_for_another_audience,
)
from tests.flows.entra_runs import cloud_writes, setup_sso
from tests.flows.user_runs import drive
from tests.sandbox.okta_sdk import send
from tests.web.factories import make_connection
from tests.web.test_federation_repair import user
from wizard.roles import OPERATOR

pytestmark = pytest.mark.django_db(transaction=True)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
# Each Okta flow's example plan, by flow key.
OKTA_EXAMPLES = {
    "okta_group_mapping": EXAMPLES / "okta-sandbox-group-mapping.toml",
    "okta_role_download": EXAMPLES / "okta-sandbox-role-download.toml",
}
# The steps a repair of an Okta federation skips: none of its findings is about them (the
# group mapping, or the role download's IAM user and manual step, are kept as they are).
SKIPPED = {
    "okta_group_mapping": frozenset(
        {
            "okta_group_mapping",
            "okta_assignments",
            "connect_users",
            "sign_in_test",
            "phone_prerequisites",
        }
    ),
    "okta_role_download": frozenset(
        {
            "okta_role_listing_user",
            "okta_role_download_confirmed",
            "okta_assignments",
            "connect_users",
            "sign_in_test",
            "phone_prerequisites",
        }
    ),
}
OTHER_INSTANCE = "00000000-0000-4000-8000-000000000000"


@pytest.fixture
def okta_setup(okta_sandbox: Sandbox, tmp_path: Path, request: Any) -> SetupRun:  # noqa: F811
    """A federation the Okta flow `request.param` built from its example plan, on an instance of
    its own."""
    flow_key = request.param
    alias = f"okta-{uuid.uuid4().hex[:8]}"
    plan = tmp_path / "okta.toml"
    text = OKTA_EXAMPLES[flow_key].read_text()
    plan.write_text(re.sub(r'alias = "okta-sandbox-[a-z-]+"', f'alias = "{alias}"', text))
    run, output = setup_sso(plan)
    assert (run.flow_key, run.status) == (flow_key, RunStatus.SUCCEEDED), output
    return run


both_flows = pytest.mark.parametrize("okta_setup", list(OKTA_EXAMPLES), indirect=True)


def okta_app(sandbox: Sandbox, app_id: str) -> dict[str, Any]:
    return dict(_sent(_okta(sandbox, lambda client: send(client, "GET", f"/api/v1/apps/{app_id}"))))


def change_okta_app(
    sandbox: Sandbox, app_id: str, change: Callable[[dict[str, Any]], None]
) -> Callable[[], None]:
    """What an admin does in the Okta Admin Console: the app read, changed and put back whole
    (Okta replaces the app on PUT)."""

    def put() -> None:
        app = okta_app(sandbox, app_id)
        change(app)
        body = {key: app[key] for key in ("name", "label", "signOnMode", "settings")}
        _sent(_okta(sandbox, lambda client: send(client, "PUT", f"/api/v1/apps/{app_id}", body)))

    return put


def repaired_in_okta(
    sandbox: Sandbox, setup: SetupRun, break_it: Callable[[], Any]
) -> tuple[list[str], SetupRun, list[str]]:
    """test_repair.repaired for a link okta_app fixes, by the flow that built the federation."""
    found, run, after = repaired(sandbox, setup, break_it, "okta_app", SKIPPED[setup.flow_key])
    ran_the_flow_that_built_it(setup, run)
    return found, run, after


def ran_the_flow_that_built_it(setup: SetupRun, run: SetupRun) -> None:
    """The repair ran the flow that built the federation, on its app."""
    app_id = setup.steps.get(key="okta_app").outputs["app_id"]
    assert (run.flow_key, run.inputs["app_id"]) == (setup.flow_key, app_id)


@both_flows
def test_repair_sets_the_relay_state_back_and_keeps_the_apps_settings(
    okta_setup: SetupRun,
    okta_sandbox: Sandbox,  # noqa: F811
) -> None:
    app_id = okta_setup.steps.get(key="okta_app").outputs["app_id"]
    wanted = okta_setup.steps.get(key="okta_app").outputs["relay_state_url"]
    settings_before = okta_app(okta_sandbox, app_id)["settings"]["app"]

    def point_elsewhere(app: dict[str, Any]) -> None:
        sign_on = app["settings"]["signOn"]
        sign_on["defaultRelayState"] = wanted.replace(okta_setup.instance_id, OTHER_INSTANCE)

    found, run, after = repaired_in_okta(
        okta_sandbox, okta_setup, change_okta_app(okta_sandbox, app_id, point_elsewhere)
    )

    assert found == ["claims:relay_state_other_instance"]
    assert planned_writes(run) == ["okta_app okta_app update ['app_id']"]
    diff = run.steps.get(key="okta_app").plan["changes"][0]["diff"]
    assert diff.startswith("defaultRelayState: ") and "\n" not in diff
    assert cloud_writes(run) == [f"okta apps PUT /api/v1/apps/{app_id}"]
    assert after == []
    app = okta_app(okta_sandbox, app_id)
    assert app["settings"]["signOn"]["defaultRelayState"] == wanted
    # The session duration (two hours in the role download's plan), the login URL and the
    # role settings (the provider ARN, the group mapping) are as the setup left them.
    assert app["settings"]["app"] == settings_before


@pytest.mark.parametrize("okta_setup", ["okta_group_mapping"], indirect=True)
def test_repair_lowers_a_session_longer_than_the_role_allows_to_the_roles_maximum(
    okta_setup: SetupRun,
    okta_sandbox: Sandbox,  # noqa: F811
) -> None:
    app_id = okta_setup.steps.get(key="okta_app").outputs["app_id"]
    maximum = okta_setup.steps.get(key="federation_role").outputs["max_session_duration_s"]

    def twelve_hours(app: dict[str, Any]) -> None:
        app["settings"]["app"]["sessionDuration"] = 43200

    found, run, after = repaired_in_okta(
        okta_sandbox, okta_setup, change_okta_app(okta_sandbox, app_id, twelve_hours)
    )

    assert found == ["claims:session_duration_too_long"]
    assert run.steps.get(key="okta_app").plan["changes"][0]["diff"] == (
        f"sessionDuration: 43200 → {maximum}"
    )
    assert planned_writes(run) == ["okta_app okta_app update ['app_id']"]
    assert cloud_writes(run) == [f"okta apps PUT /api/v1/apps/{app_id}"]
    assert after == []
    assert okta_app(okta_sandbox, app_id)["settings"]["app"]["sessionDuration"] == maximum


@pytest.mark.parametrize("okta_setup", ["okta_role_download"], indirect=True)
def test_repair_activates_the_app_deactivated_in_okta(
    okta_setup: SetupRun,
    okta_sandbox: Sandbox,  # noqa: F811
) -> None:
    app_id = okta_setup.steps.get(key="okta_app").outputs["app_id"]
    deactivate = f"/api/v1/apps/{app_id}/lifecycle/deactivate"

    found, run, after = repaired_in_okta(
        okta_sandbox,
        okta_setup,
        lambda: _sent(_okta(okta_sandbox, lambda client: send(client, "POST", deactivate))),
    )

    assert found == ["idp_app:app_disabled"]
    assert run.steps.get(key="okta_app").plan["changes"][0]["diff"] == (
        "status: 'INACTIVE' → 'ACTIVE'"
    )
    assert cloud_writes(run) == [f"okta apps POST /api/v1/apps/{app_id}/lifecycle/activate"]
    assert after == []
    assert okta_app(okta_sandbox, app_id)["status"] == "ACTIVE"


# A link of the AWS half broken, and the Okta flow that built the federation: each repaired
# as for Entra (tests/federation_check/test_repair.py), by the flow that built it.
AWS_HALF_BROKEN = [
    ("okta_group_mapping", repairs_a_deleted_iam_provider),
    ("okta_role_download", repairs_a_deleted_iam_provider),
    ("okta_group_mapping", repairs_a_certificate_iam_holds_no_longer),
    ("okta_role_download", repairs_a_detached_federation_policy),
    ("okta_group_mapping", repairs_a_trust_for_another_audience),
]


@pytest.mark.parametrize(("okta_setup", "scenario"), AWS_HALF_BROKEN, indirect=["okta_setup"])
def test_repair_fixes_a_broken_link_of_the_aws_half_with_the_flow_that_built_it(
    okta_setup: SetupRun,
    okta_sandbox: Sandbox,  # noqa: F811
    scenario: Callable[[Sandbox, SetupRun, frozenset[str]], SetupRun],
) -> None:
    run = scenario(okta_sandbox, okta_setup, SKIPPED[okta_setup.flow_key])

    ran_the_flow_that_built_it(okta_setup, run)


def test_repair_of_an_okta_aws_app_made_by_hand_sets_its_relay_state_only(
    okta_sandbox: Sandbox,  # noqa: F811
) -> None:
    made = build_by_hand(okta_sandbox)
    before = okta_app(okta_sandbox, made["app_id"])
    record = checked_instance(made["alias"], "okta")
    assert findings(record) == [
        "claims:relay_state_missing",
        "connect_users:username_case_differs",
        "connect_users:user_nobody_signs_in_as",
    ]

    run = drive(repair_run_create(user=None, check_id=record.pk, enqueue=False))

    assert run.status == RunStatus.SUCCEEDED, (run.error, list(run.steps.values("key", "error")))
    # Its roles are downloaded (no group mapping): the role download flow, its manual step kept.
    assert run.flow_key == "okta_role_download"
    # federation_role tags the instance with the role it adopted (the wizard's record of which
    # role federates into it), as for any instance it did not set up: a change of its plan,
    # confirmed as the relay state's is; nothing else is written.
    assert planned_writes(run) == [
        "okta_app okta_app update ['app_id']",
        "federation_role connect_instance_tag create ['instance_arn', 'role_arn']",
    ]
    assert cloud_writes(run) == [
        f"okta apps PUT /api/v1/apps/{made['app_id']}",
        "aws connect TagResource",
    ]
    assert run.steps.get(key="federation_role").plan["needs_confirmation"] is True
    after = okta_app(okta_sandbox, made["app_id"])
    # Its login URL (typed with a trailing slash) and its settings nobody set are kept.
    assert after["settings"]["app"] == before["settings"]["app"]
    relay = after["settings"]["signOn"]["defaultRelayState"]
    assert relay == run.steps.get(key="okta_app").outputs["relay_state_url"]
    assert relay.startswith(federation_url(REGION, made["instance_id"]) + "?destination=")
    assert findings(checked_instance(made["alias"], "okta")) == [
        "connect_users:username_case_differs",
        "connect_users:user_nobody_signs_in_as",
    ]


def test_repair_is_offered_for_the_okta_aws_app_and_not_for_a_custom_saml_app(
    okta_sandbox: Sandbox,  # noqa: F811
) -> None:
    client = Client()
    client.force_login(user("operator", OPERATOR))
    aws_app = checked_instance(build_by_hand(okta_sandbox)["alias"], "okta")
    custom = checked_instance(
        build_custom_saml_app(okta_sandbox, relay_state=False)["alias"], "okta"
    )
    assert findings(custom) == ["claims:relay_state_missing"]

    aws_page = client.get(reverse("federation_check", args=[aws_app.pk])).content.decode()
    custom_page = client.get(
        reverse("federation_check", args=[custom.pk]), headers={"Accept-Language": "ja"}
    ).content.decode()

    assert 'id="repair"' in aws_page and 'id="not-repaired"' not in aws_page
    assert 'id="repair"' not in custom_page
    with translation.override("ja"):
        assert str(CUSTOM_APP_NOT_REPAIRED) in custom_page
    assert "カスタム SAML アプリ" in custom_page
    # The refusal holds without the button too.
    with translation.override("en"), pytest.raises(RunError, match="nothing a repair fixes"):
        repair_run_create(user=None, check_id=custom.pk, enqueue=False)
    assert not SetupRun.objects.filter(inputs__repair_of_check=str(custom.pk)).exists()


INSTANCE_ID = "11111111-2222-4333-8444-555555555555"
ACCOUNT = "arn:aws:iam::123456789012"


def okta_check(**read: Any) -> FederationCheck:
    """An Okta check of a federation whose relay state leads into another instance and whose app
    sends no Role value; `read` is what it read of the app besides (the kind, the mapping)."""
    result = FederationCheck(
        aws_connection="Prod AWS",
        region=REGION,
        instance="contact-center",
        idp_connection="Okta",
        idp="okta",
        app_id="0oa-aws",
        instance_id=INSTANCE_ID,
        instance_alias="contact-center",
        read={
            **read,
            "relay_state": f"{federation_url(REGION, '0000')}?destination=%2Fccp-v2",
            "session_duration": "7200",
            "role_arn": f"{ACCOUNT}:role/ConnectOkta",
            "provider_arn": f"{ACCOUNT}:saml-provider/Okta",
            "role_max_session_s": 7200,
            "role_policies": [f"{ACCOUNT}:policy/ConnectOktaFederation"],
        },
    )
    result.add("claims", "relay_state_other_instance", found="0000", wanted=INSTANCE_ID)
    result.add("claims", "no_role_values")
    return result


def test_an_okta_check_made_before_the_app_kind_was_read_offers_no_repair() -> None:
    older = okta_check()

    assert (repair_flow(older), fixable(older), not_repaired_because(older)) == ("", [], "")
    # Once read, the kind decides.
    assert repair_flow(okta_check(okta_app_name="amazon_aws")) == "okta_role_download"
    mapped = okta_check(okta_app_name="amazon_aws", use_group_mapping=True)
    assert (repair_flow(mapped), fixable(mapped)) == (
        "okta_group_mapping",
        ["relay_state_other_instance"],
    )
    assert not_repaired_because(okta_check(okta_app_name="")) == ""


def test_an_okta_repair_starts_the_role_download_flow_keeping_the_apps_settings(
    client: Client, db: None
) -> None:
    result = okta_check(okta_app_name="amazon_aws", use_group_mapping=False)
    record = FederationCheckRecord.objects.create(
        aws_connection=make_connection("aws", name="Prod AWS"),
        idp_connection=make_connection("okta", name="Okta"),
        region=REGION,
        instance="contact-center",
        status=FederationCheckStatus.DONE,
        result=result.to_json(),
    )
    client.force_login(user("operator", OPERATOR))

    page = client.get(reverse("federation_check", args=[record.pk])).content.decode()
    response = client.post(reverse("federation_check_repair", args=[record.pk]))

    # The relay state is okta_app's to fix; the missing role values (each person's role, in
    # Okta) are left to the admin.
    assert re.findall(r'data-repaired="(yes|no)"', page) == ["yes", "no"]
    run = SetupRun.objects.get()
    assert response["Location"] == f"/runs/{run.pk}/"
    assert (run.flow_key, run.instance_id, run.review_plans) == (
        "okta_role_download",
        INSTANCE_ID,
        True,
    )
    assert run.inputs == {
        "app_id": "0oa-aws",
        "keep_app_settings": ["awsEnvironmentType", "loginURL", "sessionDuration", "joinAllRoles"],
        "instance_id": INSTANCE_ID,
        "claim_phone_numbers": False,
        "repair_skips": [
            "okta_role_listing_user",
            "okta_role_download_confirmed",
            "okta_assignments",
            "connect_users",
            "sign_in_test",
        ],
        "destination": "ccp",
        "provider_name": "Okta",
        "role_name": "ConnectOkta",
        "keep_policy_document": True,
        "policy_name": "ConnectOktaFederation",
        "keep_trust_policy": True,
        "session_duration_hours": 2,
        "repair_of_check": str(record.pk),
    }
