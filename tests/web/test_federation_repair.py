"""The Repair button of a check's result and of a watched federation: shown to operators and
admins when the check found something Repair fixes, refused to a viewer and without the CSRF
token; it starts the Entra setup flow with the check's resources as inputs (adopted, not made
again) and every plan reviewed, and says which findings it fixes and which it leaves."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils.translation import gettext as _

from provisioning.federation_check.result import FederationCheck, LinkState
from provisioning.flows import FLOWS
from provisioning.models import (
    FederationCheckRecord,
    FederationCheckStatus,
    RunStatus,
    SetupRun,
    StepStatus,
    WatchedFederation,
    WatchState,
)
from provisioning.services.federation_repairs import repair_run_create
from tests.web.factories import make_connection
from wizard.roles import OPERATOR, VIEWER, role_group

INSTANCE_ID = "11111111-2222-4333-8444-555555555555"
ACCOUNT = "arn:aws:iam::123456789012"
RELAY = f"https://ap-northeast-1.console.aws.amazon.com/connect/federate/{INSTANCE_ID}"
# A finding Repair fixes, and one it leaves to the admin, with their messages' parameters.
FINDINGS: dict[str, tuple[str, dict[str, Any]]] = {
    "relay_state_other_instance": (
        "claims",
        {"found": "0000 (ap-northeast-1)", "wanted": f"{INSTANCE_ID} (ap-northeast-1)"},
    ),
    "instance_not_saml": ("connect_instance", {"kind": "CONNECT_MANAGED"}),
}


def user(name: str, role: str) -> User:
    made = User.objects.create_user(name, password="x")
    made.groups.add(role_group(role))
    return made


def check_record(*codes: str) -> FederationCheckRecord:
    result = FederationCheck(
        aws_connection="Prod AWS",
        region="ap-northeast-1",
        instance="contact-center",
        idp_connection="Contoso",
        idp="entra",
        app_id="app-contoso",
        instance_id=INSTANCE_ID,
        instance_alias="contact-center",
        read={
            "relay_state": f"{RELAY}?destination=%2Fagent-app-v2",
            "reply_urls": ["https://signin.aws.amazon.com/saml"],
            "session_name_source": "mail",
            "session_duration": "3600",
            "role_arn": f"{ACCOUNT}:role/HandMadeRole",
            "provider_arn": f"{ACCOUNT}:saml-provider/HandMadeIdP",
            "role_max_session_s": 7200,
            "role_policies": [f"{ACCOUNT}:policy/HandMadePolicy"],
        },
    )
    for link in result.links:
        link.state = LinkState.OK
    for code in codes:
        link, params = FINDINGS[code]
        result.add(link, code, **params)
    return FederationCheckRecord.objects.create(
        aws_connection=make_connection("aws", name="Prod AWS"),
        idp_connection=make_connection("entra", name="Contoso"),
        region="ap-northeast-1",
        instance="contact-center",
        status=FederationCheckStatus.DONE,
        result=result.to_json(),
    )


@pytest.fixture
def broken(db: None) -> FederationCheckRecord:
    return check_record("relay_state_other_instance", "instance_not_saml")


def test_an_operator_repairs_and_the_run_adopts_what_the_check_read(
    broken: FederationCheckRecord,
) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user("operator", OPERATOR))
    page = client.get(reverse("federation_check", args=[broken.pk])).content.decode()
    assert f'action="{reverse("federation_check_repair", args=[broken.pk])}"' in page
    assert 'data-repaired="yes"' in page and 'data-repaired="no"' in page
    token = client.cookies["csrftoken"].value

    response = client.post(
        reverse("federation_check_repair", args=[broken.pk]), {"csrfmiddlewaretoken": token}
    )

    run = SetupRun.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/runs/{run.pk}/"
    assert (run.flow_key, run.instance_id, run.review_plans) == ("entra", INSTANCE_ID, True)
    assert run.inputs == {
        "existing_app_id": "app-contoso",
        "instance_id": INSTANCE_ID,
        "reply_url": "global",
        "claim_phone_numbers": False,
        "repair_skips": ["entra_assignments", "connect_users", "sign_in_test"],
        "destination": "agent_workspace",
        "provider_name": "HandMadeIdP",
        "role_name": "HandMadeRole",
        "keep_policy_document": True,
        "policy_name": "HandMadePolicy",
        "keep_trust_policy": True,
        "session_duration_hours": 2,
        "session_name_source": "mail",
        "session_duration_s": 3600,
        "repair_of_check": str(broken.pk),
    }
    # The run's page says it is a repair and leads back to the check it fixes.
    run_page = client.get(response["Location"]).content.decode()
    assert f"/ {_('Repair')}</p>" in run_page
    assert f'href="{reverse("federation_check", args=[broken.pk])}" id="repaired-check"' in run_page
    assert f"· {_('Repair')}</span>" in client.get(reverse("dashboard")).content.decode()


def test_a_viewer_sees_no_repair_and_may_not_start_one(
    client: Client, broken: FederationCheckRecord
) -> None:
    client.force_login(user("viewer", VIEWER))
    page = client.get(reverse("federation_check", args=[broken.pk])).content.decode()

    response = client.post(reverse("federation_check_repair", args=[broken.pk]))

    assert 'id="repair"' not in page
    assert response.status_code == 403
    assert not SetupRun.objects.exists()


def test_repair_needs_the_csrf_token(broken: FederationCheckRecord) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user("operator", OPERATOR))

    response = client.post(reverse("federation_check_repair", args=[broken.pk]))

    assert response.status_code == 403
    assert not SetupRun.objects.exists()


def test_a_check_with_nothing_repair_fixes_offers_none_and_says_so_in_japanese(
    client: Client, db: None
) -> None:
    record = check_record("instance_not_saml")
    client.force_login(user("operator", OPERATOR))
    page = client.get(reverse("federation_check", args=[record.pk])).content.decode()

    response = client.post(
        reverse("federation_check_repair", args=[record.pk]),
        follow=True,
        headers={"Accept-Language": "ja"},
    )

    assert 'id="repair"' not in page
    assert (
        "この確認で見つかったものには、修復で直せるものがありません。" in response.content.decode()
    )
    assert not SetupRun.objects.exists()


def test_a_watched_federation_is_repaired_from_its_latest_check(
    client: Client, broken: FederationCheckRecord
) -> None:
    watched: Any = WatchedFederation.objects.create(
        aws_connection=broken.aws_connection,
        idp_connection=broken.idp_connection,
        region="ap-northeast-1",
        instance_id=INSTANCE_ID,
        instance_alias="contact-center",
        app_id="app-contoso",
        state=WatchState.BROKEN,
        latest_check=broken,
    )
    client.force_login(user("viewer", VIEWER))
    assert "/repair/" not in client.get(f"/watch/{watched.pk}/").content.decode()
    assert client.post(f"/watch/{watched.pk}/repair/").status_code == 403
    client.force_login(user("operator", OPERATOR))
    assert f"/watch/{watched.pk}/repair/" in client.get(f"/watch/{watched.pk}/").content.decode()

    response = client.post(f"/watch/{watched.pk}/repair/")

    run = SetupRun.objects.get()
    assert response["Location"] == f"/runs/{run.pk}/"
    assert (run.inputs["existing_app_id"], run.inputs["role_name"]) == (
        "app-contoso",
        "HandMadeRole",
    )


def test_a_viewer_checks_the_same_federation_again_through_the_same_connections(
    client: Client, broken: FederationCheckRecord
) -> None:
    client.force_login(user("viewer", VIEWER))
    page = client.get(reverse("federation_check", args=[broken.pk])).content.decode()
    assert f'action="{reverse("federation_check_again", args=[broken.pk])}"' in page

    response = client.post(reverse("federation_check_again", args=[broken.pk]))

    again = FederationCheckRecord.objects.exclude(pk=broken.pk).get()
    assert response["Location"] == reverse("federation_check", args=[again.pk])
    assert (again.aws_connection, again.idp_connection, again.region, again.instance) == (
        broken.aws_connection,
        broken.idp_connection,
        broken.region,
        broken.instance,
    )
    assert (again.status, again.requested_by.get_username()) == (
        FederationCheckStatus.PENDING,
        "viewer",
    )


def test_a_repair_runs_page_draws_the_users_link_it_skipped_as_skipped(
    broken: FederationCheckRecord,
) -> None:
    operator = user("operator", OPERATOR)
    run = repair_run_create(user=operator, check_id=broken.pk, enqueue=False)
    flow = FLOWS[run.flow_key]
    # The run at rest after its steps: those the flow skips for a repair skipped (the runner's
    # _plan_or_skip), the others applied.
    for step in run.steps.all():
        skipped = flow.skip_reason(step.key, run.inputs)
        step.status = StepStatus.SKIPPED if skipped else StepStatus.SUCCEEDED
        step.save(update_fields=["status"])
    SetupRun.objects.filter(pk=run.pk).update(status=RunStatus.SUCCEEDED)
    client = Client()
    client.force_login(operator)

    page = client.get(reverse("run_detail", args=[run.pk])).content.decode()

    assert 'data-link="connect_users" data-state="skipped"' in page
    assert 'data-link="saml_provider" data-state="done"' in page
    assert f"{_('Connect users')}: {_('Skipped')}" in page
