"""The connections service: sandbox registration, tests in the worker, audited changes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.core.exceptions import ValidationError

from provisioning.connections.sandbox_registration import register_sandbox_connections
from provisioning.connections.sign_in_tests import connection_test
from provisioning.models import AuditEvent, AuditKind, Cloud, Connection, SetupRun
from provisioning.okta.client import forget_dpop_keys
from provisioning.services.connections import (
    connection_create,
    connection_delete,
    connection_request_test,
    connection_update,
)
from sandbox.server import AWS_ACCOUNT_ID, ENTRA_TENANT_ID, Sandbox
from tests.clients.conftest import all_audit_text
from wizard.celery import app as celery_app
from wizard.connection_labels import CONNECTION_FIELDS

pytestmark = pytest.mark.django_db

SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYCANARY"  # noqa: S105
NEW_SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYCHANGED"  # noqa: S105


@pytest.fixture
def admin(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user(username="admin", password="x")


@pytest.fixture
def eager_tasks() -> Iterator[None]:
    """Queued tasks run at once in this process (the real task body, without a broker)."""
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False


def _connection_rows() -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(kind=AuditKind.CONNECTION).order_by("id"))


def _aws_key_connection(admin: Any) -> Connection:
    return connection_create(
        user=admin,
        cloud=Cloud.AWS,
        name="Production",
        config={"method": "access_key"},
        secrets={"access_key_id": "AKIAPRODEXAMPLE01", "secret_access_key": SECRET_KEY},
    )


def test_it_registers_the_sandbox_connections_once(sandbox_mode: Sandbox) -> None:
    endpoints = sandbox_mode.state_dir / "sandbox.json"

    first = register_sandbox_connections(sandbox_file=endpoints)
    again = register_sandbox_connections(sandbox_file=endpoints)

    assert [c.pk for c in first] == [c.pk for c in again]
    assert sorted((c.cloud, c.name, c.is_sandbox) for c in again) == [
        ("aws", "Sandbox AWS", True),
        ("entra", "Sandbox Entra ID", True),
        ("okta", "Sandbox Okta", True),
        ("okta", "Sandbox Okta (OAuth service app)", True),
    ]
    assert Connection.objects.count() == 4
    assert len(_connection_rows()) == 4


@pytest.mark.parametrize(
    ("cloud", "expected"),
    [
        (Cloud.AWS, f"Signed in to AWS account {AWS_ACCOUNT_ID} as arn:aws:"),
        (Cloud.ENTRA, f"Signed in to tenant {ENTRA_TENANT_ID} as application "),
        (Cloud.OKTA, "Signed in to https://localhost:"),
    ],
)
def test_it_tests_each_sandbox_connection(
    sandbox_connections: dict[str, Connection], cloud: Cloud, expected: str
) -> None:
    ok, message = connection_test(connection_id=sandbox_connections[cloud].pk)

    assert ok, message
    assert message.startswith(expected)
    saved = Connection.objects.get(pk=sandbox_connections[cloud].pk)
    assert (saved.last_test_ok, saved.last_test_message) == (True, message)
    assert saved.last_tested_at is not None


def test_it_tests_the_service_app_connection_through_the_dpop_token_flow(
    sandbox_okta_service_app: Connection,
) -> None:
    forget_dpop_keys()  # the test runs as a fresh worker process would: Okta's nonce unknown

    ok, message = connection_test(connection_id=sandbox_okta_service_app.pk)

    assert ok, message
    assert message.endswith("with a DPoP-bound token.")
    calls = AuditEvent.objects.filter(kind=AuditKind.CALL_FINISHED, cloud=Cloud.OKTA).order_by("id")
    assert list(calls.values_list("operation", "error_code")) == [
        ("POST /oauth2/v1/token", "use_dpop_nonce"),
        ("POST /oauth2/v1/token", ""),
        ("GET /api/v1/apps", ""),
    ]


def test_it_names_the_dpop_setting_to_change_when_a_service_app_test_fails(
    sandbox_okta_service_app: Connection,
) -> None:
    Connection.objects.filter(pk=sandbox_okta_service_app.pk).update(
        config={**sandbox_okta_service_app.config, "dpop": "off"}
    )

    ok, message = connection_test(connection_id=sandbox_okta_service_app.pk)

    assert not ok
    assert "requires DPoP-bound tokens" in message
    assert "Edit the connection and turn on DPoP." in message


def test_it_saves_an_actionable_message_when_a_test_fails(sandbox_mode: Sandbox) -> None:
    connection = Connection(
        cloud=Cloud.OKTA,
        name="Wrong token",
        is_sandbox=True,
        config={"method": "api_token", "org_url": "https://localhost"},
    )
    connection.set_secrets({"api_token": "00wrong"})
    connection.save()

    ok, message = connection_test(connection_id=connection.pk)

    assert not ok
    assert "did not accept the connection's credentials" in message
    assert "paste a current API token" in message
    assert Connection.objects.get(pk=connection.pk).last_test_ok is False


def test_it_runs_a_requested_test_in_a_task_after_commit(
    sandbox_connections: dict[str, Connection],
    admin: Any,
    eager_tasks: None,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    aws = sandbox_connections[Cloud.AWS]

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        connection_request_test(user=admin, connection_id=aws.pk)
    assert Connection.objects.get(pk=aws.pk).last_tested_at is None
    for callback in callbacks:
        callback()

    assert len(callbacks) == 1
    assert Connection.objects.get(pk=aws.pk).last_test_ok is True


def test_it_audits_a_new_connection_without_its_secrets(admin: Any) -> None:
    connection = _aws_key_connection(admin)

    assert connection.secrets["secret_access_key"] == SECRET_KEY
    (row,) = _connection_rows()
    assert (row.actor_id, row.actor_label, row.old_value) == (admin.pk, "admin", {})
    assert row.new_value["stored_credentials"] == ["access_key_id", "secret_access_key"]
    assert row.new_value["config"] == {"method": "access_key"}
    assert SECRET_KEY not in all_audit_text()


def test_it_keeps_a_secret_left_blank_and_audits_only_real_changes(admin: Any) -> None:
    connection = _aws_key_connection(admin)
    Connection.objects.filter(pk=connection.pk).update(last_test_ok=True)

    unchanged = connection_update(
        user=admin,
        connection_id=connection.pk,
        name="Production",
        config={"method": "access_key"},
        secrets={"access_key_id": "", "secret_access_key": ""},
    )
    assert unchanged.secrets["secret_access_key"] == SECRET_KEY
    assert unchanged.last_test_ok is True
    assert len(_connection_rows()) == 1

    changed = connection_update(
        user=admin,
        connection_id=connection.pk,
        name="Production",
        config={"method": "access_key"},
        secrets={"access_key_id": "", "secret_access_key": NEW_SECRET_KEY},
    )

    assert changed.secrets == {
        "access_key_id": "AKIAPRODEXAMPLE01",
        "secret_access_key": NEW_SECRET_KEY,
    }
    assert changed.last_test_ok is None
    row = _connection_rows()[-1]
    assert row.new_value["changed_credentials"] == ["secret_access_key"]
    text = all_audit_text()
    assert SECRET_KEY not in text and NEW_SECRET_KEY not in text


def test_it_drops_the_secrets_a_new_method_does_not_use(admin: Any) -> None:
    connection = _aws_key_connection(admin)

    changed = connection_update(
        user=admin,
        connection_id=connection.pk,
        name="Production",
        config={"method": "profile", "profile": "connect-admin"},
        secrets={},
    )

    assert changed.secrets == {}
    assert changed.config == {"method": "profile", "profile": "connect-admin"}
    assert _connection_rows()[-1].new_value["changed_credentials"] == [
        "access_key_id",
        "secret_access_key",
    ]


def test_it_refuses_to_delete_a_connection_a_run_uses(admin: Any) -> None:
    connection = _aws_key_connection(admin)
    SetupRun.objects.create(
        idp=Cloud.OKTA,
        flow_key="okta",
        flow_signature="x",
        region="ap-northeast-1",
        aws_connection=connection,
    )

    with pytest.raises(ValidationError):
        connection_delete(user=admin, connection_id=connection.pk)

    assert Connection.objects.filter(pk=connection.pk).exists()


def test_it_deletes_an_unused_connection_and_audits_it(admin: Any) -> None:
    connection = _aws_key_connection(admin)

    connection_delete(user=admin, connection_id=connection.pk)

    assert not Connection.objects.exists()
    row = _connection_rows()[-1]
    assert (row.old_value["name"], row.new_value) == ("Production", {})


@pytest.mark.parametrize(
    ("cloud", "config", "secrets", "field"),
    [
        (
            Cloud.OKTA,
            {"method": "api_token", "org_url": "https://evil.com@x.okta.com"},
            {"api_token": "00t"},
            "org_url",
        ),
        (Cloud.OKTA, {"method": "api_token", "org_url": "https://x.okta.com"}, {}, "api_token"),
        (Cloud.AWS, {"method": "assume_role", "role_arn": "wizard"}, {}, "role_arn"),
        (
            Cloud.ENTRA,
            {"method": "client_secret", "tenant_id": "t", "client_id": "c"},
            {"client_secret": "s"},
            "client_id",
        ),
        (Cloud.AWS, {"method": "telepathy"}, {}, "method"),
    ],
)
def test_it_names_the_field_to_fix(
    admin: Any, cloud: Cloud, config: dict[str, str], secrets: dict[str, str], field: str
) -> None:
    with pytest.raises(ValidationError) as raised:
        connection_create(user=admin, cloud=cloud, name="bad", config=config, secrets=secrets)

    assert field in raised.value.message_dict
    assert not Connection.objects.exists()


def test_it_describes_the_fields_of_every_method_for_the_forms() -> None:
    assert set(CONNECTION_FIELDS) == {"aws", "entra", "okta"}
    assert set(CONNECTION_FIELDS["aws"]) == {
        "default_chain",
        "profile",
        "access_key",
        "assume_role",
    }
    for methods in CONNECTION_FIELDS.values():
        for spec in methods.values():
            assert str(spec["label"])
            for field in [*spec["config"], *spec["secrets"]]:
                assert set(field) == {"name", "label", "required", "help", "multiline", "choices"}


@pytest.mark.parametrize(
    ("mode", "cloud"), [("live", Cloud.AWS), ("sandbox", Cloud.ENTRA)], ids=["live", "entra"]
)
def test_it_refuses_a_sandbox_target_outside_sandbox_mode_or_aws(
    admin: Any, settings: Any, mode: str, cloud: Cloud
) -> None:
    settings.WIZARD_MODE = mode
    method = "access_key" if cloud == Cloud.AWS else "client_secret"
    fields = CONNECTION_FIELDS[cloud][method]

    with pytest.raises(ValidationError) as refused:
        connection_create(
            user=admin,
            cloud=cloud,
            name="Made up",
            config={"method": method, **{f["name"]: ENTRA_TENANT_ID for f in fields["config"]}},
            secrets={f["name"]: SECRET_KEY for f in fields["secrets"]},
            is_sandbox=True,
        )

    assert "can target the sandbox" in str(refused.value.message_dict["target"])
    assert not Connection.objects.filter(name="Made up").exists()
