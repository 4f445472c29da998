"""A check's findings each lead to the run that fixes them, next to them on the check page:
"Rotate the signing certificate" by an expiring certificate (an operator's POST with the CSRF
token), the users run (New setup with the instance and connections chosen) by the Connect users
findings, and for an app switched off in the IdP, where in its console to switch it on. A viewer
sees neither button nor link and may not rotate."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import translation
from django.utils.html import escape
from django.utils.translation import gettext as _

from provisioning.federation_check.fixes import CONSOLE_STEPS
from provisioning.federation_check.judge import DETACHED_POLICY
from provisioning.federation_check.result import FederationCheck, LinkState, Severity
from provisioning.flows import ROTATION_FLOWS, USER_FLOWS
from provisioning.models import (
    FederationCheckRecord,
    FederationCheckStatus,
    SetupRun,
    WatchedFederation,
)
from provisioning.okta.aws_app import AWS_APP_NAME
from tests.web.factories import make_connection
from wizard.roles import OPERATOR, VIEWER, role_group

pytestmark = pytest.mark.django_db

INSTANCE_ID = "11111111-2222-4333-8444-555555555555"
# Each finding with its link, severity and its message's parameters.
FINDINGS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "app_disabled": ("idp_app", Severity.BROKEN, {"name": "Amazon Connect"}),
    "certificate_expiring": (
        "idp_app",
        Severity.WARNING,
        {"date": "2027-01-10", "days": 12},
    ),
    "person_without_user": ("connect_users", Severity.BROKEN, {"names": "hanako@example.com"}),
    "user_nobody_signs_in_as": ("connect_users", Severity.WARNING, {"names": "taro"}),
    "instance_not_saml": ("connect_instance", Severity.BROKEN, {"kind": "CONNECT_MANAGED"}),
}
ROTATE, USERS_RUN, CONSOLE = 'data-fix="rotate"', 'data-fix="users_run"', 'data-fix="console"'


def user(name: str, role: str) -> User:
    made = User.objects.create_user(name, password="x")
    made.groups.add(role_group(role))
    return made


def check_record(
    idp: str = "entra", *, watched: bool = True, read: dict[str, Any] | None = None
) -> FederationCheckRecord:
    result = FederationCheck(
        aws_connection="Prod AWS",
        region="ap-northeast-1",
        instance="contact-center",
        idp_connection="Contoso",
        idp=idp,
        app_id="app-contoso",
        instance_id=INSTANCE_ID,
        instance_alias="contact-center",
        read=dict(read or {}),
    )
    for link in result.links:
        link.state = LinkState.OK
    for code, (link, severity, params) in FINDINGS.items():
        result.add(link, code, severity, **params)
    aws, idp_connection = make_connection("aws"), make_connection(idp)
    federation = (
        WatchedFederation.objects.create(
            aws_connection=aws,
            idp_connection=idp_connection,
            region="ap-northeast-1",
            instance_id=INSTANCE_ID,
            instance_alias="contact-center",
            app_id="app-contoso",
        )
        if watched
        else None
    )
    return FederationCheckRecord.objects.create(
        aws_connection=aws,
        idp_connection=idp_connection,
        region="ap-northeast-1",
        instance="contact-center",
        status=FederationCheckStatus.DONE,
        result=result.to_json(),
        watched=federation,
    )


def findings_html(page: str) -> dict[str, str]:
    """Each finding's list item, by its code."""
    return dict(re.findall(r'<li [^>]*data-code="([a-z_]+)">(.*?)</li>', page, re.S))


@pytest.mark.parametrize("idp", ["entra", "okta"])
def test_an_operator_sees_each_fix_next_to_only_the_findings_it_fixes(idp: str) -> None:
    record = check_record(idp)
    client = Client()
    client.force_login(user("operator", OPERATOR))

    page = client.get(reverse("federation_check", args=[record.pk])).content.decode()

    items = findings_html(page)
    assert set(items) == set(FINDINGS)
    fixes = {
        code: {f for f in (ROTATE, USERS_RUN, CONSOLE) if f in html} for code, html in items.items()
    }
    assert fixes == {
        "app_disabled": {CONSOLE},
        "certificate_expiring": {ROTATE},
        "person_without_user": {USERS_RUN},
        "user_nobody_signs_in_as": {USERS_RUN},
        "instance_not_saml": set(),
    }
    assert str(CONSOLE_STEPS[("app_disabled", idp)]) in items["app_disabled"]
    assert escape(_("Enable the app in the IdP's admin console.")) in items["app_disabled"]
    assert reverse("federation_check_rotate", args=[record.pk]) in items["certificate_expiring"]
    assert 'name="csrfmiddlewaretoken"' in items["certificate_expiring"]


def test_repair_activates_a_disabled_okta_aws_app_so_no_console_steps_show() -> None:
    """Repair activates Okta's AWS app in a plan the admin confirms, so the page does not also
    send them to the console for it."""
    record = check_record("okta", read={"okta_app_name": AWS_APP_NAME, "use_group_mapping": True})
    client = Client()
    client.force_login(user("operator", OPERATOR))

    items = findings_html(
        client.get(reverse("federation_check", args=[record.pk])).content.decode()
    )

    assert CONSOLE not in items["app_disabled"]
    assert "Repair fixes this in the step “Okta app for Amazon Connect”." in items["app_disabled"]


@pytest.mark.parametrize(
    ("evidence", "step", "japanese"),
    [
        # No policy lets the role federate: the repair makes the wizard's (then attaches it).
        ({}, "Federation policy", "フェデレーションポリシー"),
        # The policy is there, only detached from the role: attaching it is the fix.
        (
            {DETACHED_POLICY: "arn:aws:iam::1:policy/ConnectSSO-x-GetFederationToken"},
            "Federation role",
            "フェデレーションロール",
        ),
    ],
)
def test_repair_names_the_step_that_lets_the_role_federate_again(
    evidence: dict[str, str], step: str, japanese: str
) -> None:
    record = check_record()
    result = FederationCheck.from_json(record.result)
    result.add(
        "federation_role",
        "no_federation_permission",
        role="arn:aws:iam::1:role/R",
        instance=INSTANCE_ID,
        error="AccessDenied",
        **evidence,
    )
    FederationCheckRecord.objects.filter(pk=record.pk).update(result=result.to_json())
    client = Client()
    client.force_login(user("operator", OPERATOR))
    url = reverse("federation_check", args=[record.pk])

    english = findings_html(client.get(url).content.decode())["no_federation_permission"]
    ja = client.get(url, headers={"Accept-Language": "ja"}).content.decode()

    assert f"Repair fixes this in the step “{step}”." in english
    assert (
        f"修復のステップ「{japanese}」でこれを直します。"
        in findings_html(ja)["no_federation_permission"]
    )


@pytest.mark.parametrize("idp", ["entra", "okta"])
def test_an_operator_rotates_the_checked_federations_certificate(idp: str) -> None:
    record = check_record(idp)
    client = Client(enforce_csrf_checks=True)
    client.force_login(user("operator", OPERATOR))
    client.get(reverse("federation_check", args=[record.pk]))
    token = client.cookies["csrftoken"].value

    response = client.post(
        reverse("federation_check_rotate", args=[record.pk]), {"csrfmiddlewaretoken": token}
    )

    run = SetupRun.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/runs/{run.pk}/"
    assert (run.flow_key, run.instance_id, run.review_plans) == (
        ROTATION_FLOWS[idp],
        INSTANCE_ID,
        True,
    )
    assert (run.aws_connection_id, run.idp_connection_id) == (
        record.aws_connection_id,
        record.idp_connection_id,
    )
    assert run.inputs["app_id"] == "app-contoso"


def test_rotating_from_a_check_needs_the_csrf_token() -> None:
    record = check_record()
    client = Client(enforce_csrf_checks=True)
    client.force_login(user("operator", OPERATOR))

    response = client.post(reverse("federation_check_rotate", args=[record.pk]))

    assert response.status_code == 403
    assert not SetupRun.objects.exists()


def test_a_viewer_sees_the_console_steps_but_no_run_to_start_and_may_not_rotate() -> None:
    record = check_record()
    client = Client()
    client.force_login(user("viewer", VIEWER))

    page = client.get(reverse("federation_check", args=[record.pk])).content.decode()
    response = client.post(reverse("federation_check_rotate", args=[record.pk]))

    assert ROTATE not in page and USERS_RUN not in page
    assert "/rotate/" not in page and reverse("run_new") not in page
    assert CONSOLE in findings_html(page)["app_disabled"]
    assert response.status_code == 403
    assert not SetupRun.objects.exists()


def test_a_check_of_no_watched_federation_offers_no_rotation_and_refuses_one() -> None:
    record = check_record(watched=False)
    client = Client()
    client.force_login(user("operator", OPERATOR))

    page = client.get(reverse("federation_check", args=[record.pk])).content.decode()
    response = client.post(reverse("federation_check_rotate", args=[record.pk]), follow=True)

    assert ROTATE not in page
    assert _("This check found no federation whose certificate can be rotated.") in (
        response.content.decode()
    )
    assert not SetupRun.objects.exists()


@pytest.mark.parametrize("idp", ["entra", "okta"])
def test_the_users_link_opens_new_setup_with_the_users_flow_instance_and_connections_chosen(
    idp: str,
) -> None:
    record = check_record(idp)
    client = Client()
    client.force_login(user("operator", OPERATOR))
    page = client.get(reverse("federation_check", args=[record.pk])).content.decode()
    href = re.search(r'data-fix="users_run">.*?href="([^"]+)"', page, re.S)
    assert href is not None

    form = client.get(href.group(1).replace("&amp;", "&")).context["form"]

    assert form.initial["idp"] == idp
    assert form.initial["flow_key"] == USER_FLOWS[idp]
    assert (form.initial["instance_choice"], form.initial["instance_id"]) == (
        "existing",
        INSTANCE_ID,
    )
    assert form.initial["region"] == "ap-northeast-1"
    assert (form.initial["aws_connection"], form.initial["idp_connection"]) == (
        record.aws_connection_id,
        record.idp_connection_id,
    )
    # Submitted as chosen, it starts the users run on the checked instance.
    client.post(reverse("run_new"), {**form.initial, "review_plans": "on"})
    run = SetupRun.objects.get()
    assert (run.flow_key, run.instance_id, run.region) == (
        USER_FLOWS[idp],
        INSTANCE_ID,
        "ap-northeast-1",
    )


def test_new_setup_keeps_only_the_asked_answers_its_form_offers() -> None:
    okta = make_connection("okta")
    client = Client()
    client.force_login(user("operator", OPERATOR))
    query = {
        "idp": "entra",
        "flow_key": USER_FLOWS["okta"],
        "region": "mars-north-1",
        "instance_id": "<script>",
        "idp_connection": okta.pk,
        "aws_connection": okta.pk,
    }

    initial = client.get(reverse("run_new"), query).context["form"].initial

    assert not {"flow_key", "region", "instance_id", "instance_choice"} & set(initial)
    assert okta.pk not in (initial.get("aws_connection"), initial.get("idp_connection"))


def test_the_console_steps_for_a_disabled_app_are_in_japanese() -> None:
    record = check_record("okta")
    client = Client()
    client.force_login(user("operator", OPERATOR))

    page = client.get(
        reverse("federation_check", args=[record.pk]), headers={"Accept-Language": "ja"}
    ).content.decode()

    with translation.override("ja"):
        steps = str(CONSOLE_STEPS[("app_disabled", "okta")])
    with translation.override("en"):
        assert steps != str(CONSOLE_STEPS[("app_disabled", "okta")])
    assert steps in findings_html(page)["app_disabled"]
