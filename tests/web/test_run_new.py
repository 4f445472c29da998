"""The new setup form: real choices, errors that say what to fix, nothing typed is lost."""

from __future__ import annotations

import re
from typing import Any

import boto3
import pytest
from django.test import Client
from django.urls import reverse

from provisioning.flows import ROTATION_FLOWS, Flow
from provisioning.models import Connection, SetupRun
from tests.web.factories import make_connection

pytestmark = pytest.mark.django_db

INSTANCE_ID = "12345678-aaaa-4bbb-8ccc-1234567890ab"


@pytest.fixture
def connections() -> dict[str, Connection]:
    return {
        "aws": make_connection("aws", name="Prod AWS"),
        "entra": make_connection(
            "entra", name="Contoso tenant", config={"method": "client_secret"}
        ),
        "okta": make_connection("okta", name="Okta org", config={"method": "api_token"}),
    }


def _form(connections: dict[str, Connection], **overrides: Any) -> dict[str, Any]:
    data = {
        "idp": "entra",
        "flow_key": "web_test_flow",
        "region": "ap-northeast-1",
        "instance_choice": "new",
        "instance_alias": "tokyo-support",
        "instance_id": "",
        "aws_connection": connections["aws"].pk,
        "idp_connection": connections["entra"].pk,
        "review_plans": "on",
    }
    data.update(overrides)
    return data


def test_it_offers_the_regions_botocore_knows_for_connect(
    admin_client: Client, web_flow: Flow, connections: dict[str, Connection]
) -> None:
    html = admin_client.get(reverse("run_new")).content.decode()

    for region in boto3.session.Session().get_available_regions("connect"):
        assert f'<option value="{region}"' in html
    assert 'value="us-east-2"' not in html  # no Connect in Ohio, so botocore doesn't list it
    assert "Web test flow" in html
    assert "Contoso tenant" in html and "Prod AWS" in html


def test_it_creates_a_run_and_opens_its_page(
    admin_client: Client, web_flow: Flow, connections: dict[str, Connection]
) -> None:
    response = admin_client.post(reverse("run_new"), _form(connections))

    run = SetupRun.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("run_detail", args=[run.pk])
    assert run.flow_key == "web_test_flow"
    assert run.instance_alias == "tokyo-support"
    assert run.region == "ap-northeast-1"
    assert run.aws_connection == connections["aws"]
    assert run.idp_connection == connections["entra"]
    assert run.created_by is not None and run.created_by.username == "admin"


@pytest.mark.parametrize(("ticked", "claims"), [({}, False), ({"claim_phone_numbers": "on"}, True)])
def test_it_asks_whether_to_claim_phone_numbers_unticked_by_default(
    admin_client: Client,
    web_flow: Flow,
    connections: dict[str, Connection],
    ticked: dict[str, str],
    claims: bool,
) -> None:
    html = admin_client.get(reverse("run_new")).content.decode()
    assert "Claim Japanese phone numbers" in html
    assert 'name="claim_phone_numbers"' in html
    assert not re.search(r'<input[^>]*name="claim_phone_numbers"[^>]*checked', html)
    japanese = admin_client.get(reverse("run_new"), HTTP_ACCEPT_LANGUAGE="ja").content.decode()
    assert "日本の電話番号を取得する" in japanese

    admin_client.post(reverse("run_new"), _form(connections, **ticked))

    assert SetupRun.objects.get().inputs == {"claim_phone_numbers": claims}


def test_it_explains_a_bad_alias_and_keeps_what_was_typed(
    admin_client: Client, web_flow: Flow, connections: dict[str, Connection]
) -> None:
    response = admin_client.post(
        reverse("run_new"), _form(connections, instance_alias="d-support", region="eu-west-2")
    )
    html = response.content.decode()

    assert response.status_code == 200
    assert SetupRun.objects.count() == 0
    assert "must not start with “d-”" in html
    assert 'value="d-support"' in html
    assert '<option value="eu-west-2" selected>' in html
    assert f'<option value="{connections["entra"].pk}" selected>' in html


def test_it_asks_for_an_alias_when_creating_an_instance(
    admin_client: Client, web_flow: Flow, connections: dict[str, Connection]
) -> None:
    html = admin_client.post(
        reverse("run_new"), _form(connections, instance_alias="")
    ).content.decode()

    assert "Type an alias for the new instance." in html


def test_it_refuses_a_connection_to_the_other_identity_provider(
    admin_client: Client, web_flow: Flow, connections: dict[str, Connection]
) -> None:
    html = admin_client.post(
        reverse("run_new"), _form(connections, idp_connection=connections["okta"].pk)
    ).content.decode()

    assert "This connection is to the other identity provider" in html
    assert SetupRun.objects.count() == 0


def test_it_refuses_a_flow_of_the_other_identity_provider(
    admin_client: Client, web_flow: Flow, connections: dict[str, Connection]
) -> None:
    html = admin_client.post(
        reverse("run_new"), _form(connections, idp="okta", idp_connection=connections["okta"].pk)
    ).content.decode()

    assert "This flow is for the other identity provider" in html
    assert SetupRun.objects.count() == 0


def test_it_takes_an_instance_arn_and_keeps_its_id(
    admin_client: Client, web_flow: Flow, connections: dict[str, Connection]
) -> None:
    arn = f"arn:aws:connect:ap-northeast-1:123456789012:instance/{INSTANCE_ID}"

    admin_client.post(
        reverse("run_new"),
        _form(connections, instance_choice="existing", instance_alias="", instance_id=arn),
    )

    run = SetupRun.objects.get()
    assert run.instance_id == INSTANCE_ID
    assert run.instance_alias == ""


def test_it_refuses_an_instance_arn_from_another_region(
    admin_client: Client, web_flow: Flow, connections: dict[str, Connection]
) -> None:
    arn = f"arn:aws:connect:us-east-1:123456789012:instance/{INSTANCE_ID}"

    html = admin_client.post(
        reverse("run_new"),
        _form(connections, instance_choice="existing", instance_id=arn),
    ).content.decode()

    assert "This instance is in us-east-1, but you chose ap-northeast-1." in html
    assert SetupRun.objects.count() == 0


def test_it_offers_only_the_chosen_providers_flows_and_connections(
    admin_client: Client, web_flow: Flow, connections: dict[str, Connection]
) -> None:
    entra_page = admin_client.get(reverse("run_new")).content.decode()
    okta_fields = admin_client.get(
        reverse("run_new"), {"idp": "okta"}, headers={"HX-Request": "true"}
    ).content.decode()
    okta_page = admin_client.get(reverse("run_new"), {"idp": "okta"}).content.decode()

    assert "Contoso tenant" in entra_page and "Okta org" not in entra_page
    assert "Web test flow" in entra_page  # the test flow is an Entra flow
    assert okta_fields.lstrip().startswith('<div id="idp-fields">')
    assert "Okta org" in okta_fields and "Contoso tenant" not in okta_fields
    assert "Web test flow" not in okta_fields
    assert 'value="okta" checked' in okta_page.replace(" required", "").replace(
        ' id="id_idp_1"', ""
    )


def test_a_rotation_is_not_offered_as_a_new_setup_nor_accepted_from_its_form(
    admin_client: Client, web_flow: Flow, connections: dict[str, Connection]
) -> None:
    """Rotating the signing certificate works on a federation that exists: it starts from the
    watched federation's page, never from New setup."""
    for idp in ("entra", "okta"):
        page = admin_client.get(reverse("run_new"), {"idp": idp}).content.decode()
        assert "Rotate the signing certificate" not in page
        assert ROTATION_FLOWS[idp] not in page
        # A flow is still offered there (the page is not simply empty).
        assert 'name="flow_key"' in page

    html = admin_client.post(
        reverse("run_new"), _form(connections, flow_key=ROTATION_FLOWS["entra"])
    ).content.decode()

    assert SetupRun.objects.count() == 0
    assert "This flow is for the other identity provider" in html  # its invalid-choice error


def test_switching_provider_without_javascript_shows_its_choices_and_keeps_the_rest(
    admin_client: Client, web_flow: Flow, connections: dict[str, Connection]
) -> None:
    html = admin_client.post(
        reverse("run_new"), _form(connections, idp="okta", instance_alias="osaka-support")
    ).content.decode()

    assert SetupRun.objects.count() == 0
    assert "This flow is for the other identity provider" in html
    assert "Okta org" in html and "Contoso tenant" not in html
    assert 'value="osaka-support"' in html
