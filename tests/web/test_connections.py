"""The connections page: list per cloud, add, edit with write-only secrets, test, delete."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from provisioning.connections.sign_in_tests import connection_test
from provisioning.models import Connection
from sandbox.server import AWS_ACCOUNT_ID, Sandbox
from tests.sandbox.aws_clients import aws_client, unique_alias
from tests.web.factories import make_connection, make_run

pytestmark = pytest.mark.django_db

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"  # noqa: S105 - a made-up test secret
TENANT = "11111111-2222-3333-4444-555555555555"
CLIENT_ID = "66666666-7777-8888-9999-000000000000"


def _entra_form(**overrides: str) -> dict[str, str]:
    data = {
        "name": "Contoso",
        "tenant_id": TENANT,
        "client_id": CLIENT_ID,
        "client_secret": SECRET,
    }
    data.update(overrides)
    return data


def test_it_lists_connections_per_cloud_with_badges_and_last_test(admin_client: Client) -> None:
    make_connection("aws", name="Sandbox AWS", is_sandbox=True)
    make_connection(
        "okta",
        name="Okta prod",
        config={"method": "api_token", "org_url": "https://example.okta.com"},
        last_tested_at=timezone.now(),
        last_test_ok=False,
        last_test_message="The API token was revoked.",
    )

    html = admin_client.get(reverse("connections")).content.decode()

    assert html.index("Sandbox AWS") < html.index("Okta prod")
    assert 'class="badge badge--sandbox"' in html
    assert "Test failed" in html and "The API token was revoked." in html
    assert "https://example.okta.com" in html and "Okta org URL" in html
    assert reverse("connection_new", args=["entra", "client_secret"]) in html
    assert reverse("connection_new", args=["aws", "assume_role"]) in html


def test_it_adds_a_connection_and_stores_its_secret_encrypted(admin_client: Client) -> None:
    response = admin_client.post(
        reverse("connection_new", args=["entra", "client_secret"]), _entra_form()
    )

    connection = Connection.objects.get(name="Contoso")
    assert response.status_code == 302
    assert connection.config == {
        "method": "client_secret",
        "tenant_id": TENANT,
        "client_id": CLIENT_ID,
    }
    assert connection.secrets == {"client_secret": SECRET}
    assert SECRET not in connection.secret_ciphertext


def test_it_shows_what_to_fix_and_keeps_everything_but_the_secret(admin_client: Client) -> None:
    response = admin_client.post(
        reverse("connection_new", args=["entra", "client_secret"]),
        _entra_form(client_id="not-a-guid"),
    )
    html = response.content.decode()

    assert response.status_code == 200
    assert Connection.objects.count() == 0
    assert "Type the application (client) ID, a GUID." in html
    assert 'value="not-a-guid"' in html and f'value="{TENANT}"' in html
    assert SECRET not in html


def test_it_never_sends_a_stored_secret_back_when_editing(admin_client: Client) -> None:
    connection = make_connection(
        "entra",
        name="Contoso",
        config={"method": "client_secret", "tenant_id": TENANT, "client_id": CLIENT_ID},
        secrets={"client_secret": SECRET},
    )

    html = admin_client.get(reverse("connection_edit", args=[connection.pk])).content.decode()
    secret_input = re.search(r'<input[^>]*name="client_secret"[^>]*>', html)

    assert SECRET not in html
    assert secret_input is not None
    assert 'type="password"' in secret_input[0]
    assert "value=" not in secret_input[0]
    assert "stored — leave blank to keep" in secret_input[0]
    assert "required" not in secret_input[0]


def test_it_keeps_the_stored_secret_when_left_blank(admin_client: Client) -> None:
    connection = make_connection(
        "entra",
        name="Contoso",
        config={"method": "client_secret", "tenant_id": TENANT, "client_id": CLIENT_ID},
        secrets={"client_secret": SECRET},
    )

    response = admin_client.post(
        reverse("connection_edit", args=[connection.pk]),
        _entra_form(name="Contoso Japan", client_secret=""),
    )

    connection.refresh_from_db()
    assert response.status_code == 302
    assert connection.name == "Contoso Japan"
    assert connection.secrets == {"client_secret": SECRET}


def test_it_never_sends_back_a_private_key_typed_into_a_form_with_a_mistake(
    admin_client: Client,
) -> None:
    pem = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----"

    html = admin_client.post(
        reverse("connection_new", args=["entra", "certificate"]),
        {"name": "", "tenant_id": TENANT, "client_id": CLIENT_ID, "certificate": pem},
    ).content.decode()

    assert "This field is required." in html
    assert "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC" not in html


def test_it_does_not_offer_to_edit_a_sandbox_connection(admin_client: Client) -> None:
    connection = make_connection("aws", name="Sandbox AWS", is_sandbox=True)

    listing = admin_client.get(reverse("connections")).content.decode()
    edit = admin_client.get(reverse("connection_edit", args=[connection.pk]), follow=True)

    assert reverse("connection_edit", args=[connection.pk]) not in listing
    assert "set up by the sandbox itself" in edit.content.decode()


def test_it_tests_a_connection_and_polls_until_the_result_arrives(admin_client: Client) -> None:
    connection = make_connection("aws", name="Prod AWS")
    status_url = reverse("connection_test_status", args=[connection.pk])

    response = admin_client.post(reverse("connection_test", args=[connection.pk]))
    pending_page = admin_client.get(reverse("connections")).content.decode()
    pending_poll = admin_client.get(status_url, HTTP_HX_REQUEST="true")
    Connection.objects.filter(pk=connection.pk).update(
        last_tested_at=timezone.now(), last_test_ok=True, last_test_message="Signed in to AWS."
    )
    done_poll = admin_client.get(status_url, HTTP_HX_REQUEST="true")

    assert response.status_code == 302
    assert response["Location"].endswith(f"#connection-{connection.pk}")
    assert f'hx-get="{status_url}"' in pending_page and "Testing…" in pending_page
    assert pending_poll.status_code == 200 and "hx-trigger" in pending_poll.content.decode()
    assert done_poll.status_code == 286
    assert "Test passed" in done_poll.content.decode()
    assert "hx-trigger" not in done_poll.content.decode()


def test_it_refuses_to_delete_a_connection_a_run_uses(admin_client: Client) -> None:
    connection = make_connection("aws", name="Prod AWS")
    make_run(aws_connection=connection)

    page = admin_client.get(reverse("connection_delete", args=[connection.pk])).content.decode()
    response = admin_client.post(reverse("connection_delete", args=[connection.pk]))

    assert "used by 1 setup run" in page
    assert 'name="csrfmiddlewaretoken"' not in page.split('class="card card--danger"')[1]
    assert response.status_code == 409
    assert Connection.objects.filter(pk=connection.pk).exists()


def test_it_deletes_an_unused_connection_after_confirmation(admin_client: Client) -> None:
    connection = make_connection("aws", name="Old AWS")

    page = admin_client.get(reverse("connection_delete", args=[connection.pk])).content.decode()
    response = admin_client.post(reverse("connection_delete", args=[connection.pk]), follow=True)

    assert "Delete “Old AWS”" in page
    assert not Connection.objects.filter(pk=connection.pk).exists()
    assert "Connection “Old AWS” deleted." in response.content.decode()


def _sandbox_iam_user(sandbox: Sandbox, *actions: str) -> tuple[str, dict[str, str]]:
    """An IAM user made through the sandbox's IAM API, allowed `actions`: its ARN and key."""
    iam = aws_client(sandbox, "iam")
    name = unique_alias("connection-user")
    arn = iam.create_user(UserName=name)["User"]["Arn"]
    document = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": list(actions), "Resource": "*"}],
    }
    iam.put_user_policy(UserName=name, PolicyName="limited", PolicyDocument=json.dumps(document))
    return arn, iam.create_access_key(UserName=name)["AccessKey"]


def test_it_makes_a_connection_to_the_sandbox_that_passes_its_test(
    admin_client: Client, sandbox: Sandbox, settings: Any
) -> None:
    settings.WIZARD_MODE = "sandbox"
    settings.SANDBOX_FILE = sandbox.state_dir / "sandbox.json"
    user_arn, key = _sandbox_iam_user(sandbox, "connect:ListInstances")
    url = reverse("connection_new", args=["aws", "access_key"])

    page = admin_client.get(url).content.decode()
    response = admin_client.post(
        url,
        {
            "name": "Sandbox IAM user",
            "target": "sandbox",
            "access_key_id": key["AccessKeyId"],
            "secret_access_key": key["SecretAccessKey"],
        },
    )
    connection = Connection.objects.get(name="Sandbox IAM user")
    ok, message = connection_test(connection_id=connection.pk)

    assert 'name="target"' in page and "Real AWS" in page
    assert response.status_code == 302
    assert connection.is_sandbox
    assert ok, message
    # It signed in as the IAM user, not with the sandbox's own keys.
    assert message == f"Signed in to AWS account {AWS_ACCOUNT_ID} as {user_arn}."


def test_it_offers_no_sandbox_target_in_live_mode(admin_client: Client, settings: Any) -> None:
    settings.WIZARD_MODE = "live"
    url = reverse("connection_new", args=["aws", "access_key"])

    page = admin_client.get(url).content.decode()
    admin_client.post(
        url,
        {
            "name": "Live keys",
            "target": "sandbox",
            "access_key_id": "AKIAPRODEXAMPLE01",
            "secret_access_key": SECRET,
        },
    )

    assert 'name="target"' not in page
    assert not Connection.objects.get(name="Live keys").is_sandbox


def test_it_adds_an_okta_service_app_connection_with_dpop_on_by_default(
    admin_client: Client,
) -> None:
    url = reverse("connection_new", args=["okta", "private_key"])
    form = admin_client.get(url).content.decode()
    private_key = (
        "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----"
    )

    response = admin_client.post(
        url,
        {
            "name": "Okta service app",
            "org_url": "https://example.okta.com",
            "client_id": "0oa1serviceapp00000",
            "dpop": "on",
            "private_key": private_key,
        },
    )

    assert re.search(r'<option value="on" selected>', form)
    assert "Require Demonstrating Proof of Possession (DPoP) header in token requests" in form
    assert response.status_code == 302
    connection = Connection.objects.get(name="Okta service app")
    assert connection.config["dpop"] == "on"
    assert connection.secrets["private_key"] == private_key
    assert "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC" not in connection.secret_ciphertext
    edit = admin_client.get(reverse("connection_edit", args=[connection.pk])).content.decode()
    assert "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC" not in edit


def test_it_refuses_a_dpop_value_that_is_not_offered(admin_client: Client) -> None:
    response = admin_client.post(
        reverse("connection_new", args=["okta", "private_key"]),
        {
            "name": "Okta service app",
            "org_url": "https://example.okta.com",
            "client_id": "0oa1serviceapp00000",
            "dpop": "maybe",
            "private_key": "-----BEGIN PRIVATE KEY-----",
        },
    )

    assert response.status_code == 200
    assert not Connection.objects.filter(name="Okta service app").exists()
