"""Every connection field has its cloud's format and length; no field holds control or invisible
direction characters."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError

from provisioning.models import Cloud, Connection
from provisioning.services.connections import connection_create
from wizard.connection_labels import CONNECTION_FIELDS
from wizard.forms import ConnectionForm

pytestmark = pytest.mark.django_db

KEY = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----\n"
CERT = "-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n"
ASSUME = {"method": "assume_role", "role_arn": "arn:aws:iam::123456789012:role/Wizard"}
OKTA_APP = {
    "method": "private_key",
    "org_url": "https://example.okta.com",
    "client_id": "0oa1",
    "dpop": "on",
}
ENTRA = {
    "method": "certificate",
    "tenant_id": "0a1b2c3d-0000-4000-8000-000000000001",
    "client_id": "0a1b2c3d-0000-4000-8000-000000000002",
}


@pytest.fixture
def admin(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user("formats-admin")


@pytest.mark.parametrize(
    ("cloud", "config", "secrets", "field", "says"),
    [
        (
            Cloud.AWS,
            {"method": "access_key"},
            {"access_key_id": "AKIA 1", "secret_access_key": "x" * 40},
            "access_key_id",
            "16 to 128 letters and digits",
        ),
        (
            Cloud.AWS,
            {"method": "access_key"},
            {"access_key_id": "AKIAIOSFODNN7EXAMPLE", "secret_access_key": "has spaces in it ok"},
            "secret_access_key",
            "without spaces",
        ),
        (Cloud.AWS, {**ASSUME, "external_id": "a"}, {}, "external_id", "2 to 1224"),
        (Cloud.AWS, {**ASSUME, "role_session_name": "a b"}, {}, "role_session_name", "2 to 64"),
        (Cloud.AWS, {**ASSUME, "role_session_name": "x" * 65}, {}, "role_session_name", "At most"),
        (Cloud.AWS, {"method": "profile", "profile": "[default]"}, {}, "profile", "no spaces"),
        (Cloud.OKTA, {**OKTA_APP, "client_id": "0oa/1"}, {"private_key": KEY}, "client_id", "0oa"),
        (
            Cloud.OKTA,
            {**OKTA_APP, "scopes": "okta.apps.manage,"},
            {"private_key": KEY},
            "scopes",
            "",
        ),
        (Cloud.OKTA, {**OKTA_APP, "key_id": "k e y"}, {"private_key": KEY}, "key_id", "key ID"),
        (Cloud.OKTA, OKTA_APP, {"private_key": "MIIEvQIBADANBg"}, "private_key", "-----BEGIN"),
        (Cloud.OKTA, OKTA_APP, {"private_key": KEY * 400}, "private_key", "At most 16384"),
        (Cloud.ENTRA, ENTRA, {"certificate": KEY}, "certificate", "both in PEM"),
        (Cloud.AWS, {**ASSUME, "external_id": "abc\u202edef"}, {}, "external_id", "direction"),
        (Cloud.AWS, {"method": "profile", "profile": "dev\x1b[2J"}, {}, "profile", "control"),
    ],
)
def test_it_names_the_field_and_its_format(
    admin: Any, cloud: Cloud, config: dict[str, str], secrets: dict[str, str], field: str, says: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        connection_create(user=admin, cloud=cloud, name="bad", config=config, secrets=secrets)

    assert says in refused.value.message_dict[field][0]
    assert not Connection.objects.exists()


@pytest.mark.parametrize(
    ("cloud", "config", "secrets"),
    [
        (
            Cloud.AWS,
            {"method": "access_key"},
            {"access_key_id": "AKIAIOSFODNN7EXAMPLE", "secret_access_key": "wJalrXUtnFEMI/K7MDENG"},
        ),
        (Cloud.AWS, {**ASSUME, "external_id": "Tokyo-2026", "role_session_name": "wizard@ops"}, {}),
        (Cloud.AWS, {"method": "profile", "profile": "connect-admin"}, {}),
        (
            Cloud.OKTA,
            {**OKTA_APP, "scopes": "okta.apps.manage okta.groups.read", "key_id": "kid-1_a.b"},
            {"private_key": KEY},
        ),
        (Cloud.ENTRA, ENTRA, {"certificate": KEY + CERT}),
    ],
)
def test_it_accepts_what_the_clouds_accept(
    admin: Any, cloud: Cloud, config: dict[str, str], secrets: dict[str, str]
) -> None:
    connection_create(user=admin, cloud=cloud, name="good", config=config, secrets=secrets)

    assert Connection.objects.count() == 1


def test_it_refuses_a_name_with_a_direction_override() -> None:
    spec = CONNECTION_FIELDS["aws"]["default_chain"]
    form = ConnectionForm({"name": "Prod\u202eved"}, cloud="aws", method="default_chain", spec=spec)

    assert not form.is_valid()
    assert "direction characters" in form.errors["name"][0]
