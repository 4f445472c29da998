"""The Okta client against the sandbox org: token auth, audit rows, redaction, errors, trust."""

from __future__ import annotations

from typing import Any

import pytest

from provisioning.audit import AuditScope
from provisioning.errors import PermanentError, RetryableError
from provisioning.okta.client import okta_client, run_okta
from sandbox.knobs import Knobs
from sandbox.server import OKTA_TOKEN, Sandbox
from tests.clients.conftest import (
    all_audit_text,
    assert_every_call_started_and_finished,
    call_rows,
)
from wizard.models import AuditKind, Cloud, Connection

pytestmark = pytest.mark.django_db


def _sandbox_okta(sandbox: Sandbox, token: str) -> Connection:
    connection = Connection(
        cloud=Cloud.OKTA,
        name="okta",
        is_sandbox=True,
        config={"method": "api_token", "org_url": sandbox.endpoints["okta_org_url"]},
    )
    connection.set_secrets({"api_token": token})
    connection.save()
    return connection


def test_it_reads_the_tokens_own_user_with_the_call_audited(
    sandbox_connections: dict[str, Connection], scope: AuditScope
) -> None:
    client = okta_client(sandbox_connections[Cloud.OKTA], audit=scope)

    me = run_okta(client.get_user("me"))

    assert me.id and me.profile.login
    started, finished = assert_every_call_started_and_finished(Cloud.OKTA)
    assert (started.service, started.operation) == ("users", "GET /api/v1/users/me")
    assert finished.outcome == "ok"
    assert finished.response["http_status"] == 200
    assert finished.response["id"] == me.id


def test_it_writes_no_api_token_to_the_audit_log(
    sandbox_connections: dict[str, Connection], scope: AuditScope
) -> None:
    client = okta_client(sandbox_connections[Cloud.OKTA], audit=scope)

    run_okta(client.list_applications())

    text = all_audit_text()
    assert OKTA_TOKEN not in text
    assert "SSWS" not in text


def test_it_tells_the_admin_to_paste_a_current_api_token(
    sandbox_mode: Sandbox, scope: AuditScope
) -> None:
    client = okta_client(_sandbox_okta(sandbox_mode, "00not-the-right-token"), audit=scope)

    with pytest.raises(PermanentError) as raised:
        run_okta(client.get_user("me"))

    assert raised.value.code == "E0000011"
    assert "paste a current API token" in raised.value.hint
    finished = call_rows(Cloud.OKTA).filter(kind=AuditKind.CALL_FINISHED).get()
    assert (finished.outcome, finished.error_code) == ("error", "E0000011")


def test_it_raises_a_retryable_error_with_the_rate_limit_reset_time(
    sandbox_connections: dict[str, Connection], sandbox_knobs: Knobs, scope: AuditScope
) -> None:
    sandbox_knobs.rate_limits_enabled = True
    sandbox_knobs.rate_limits["okta:apps"] = (1 / 60, 1)
    sandbox_knobs.reset_buckets()
    client = okta_client(sandbox_connections[Cloud.OKTA], audit=scope)
    run_okta(client.list_applications())

    with pytest.raises(RetryableError) as raised:
        run_okta(client.list_applications())

    assert raised.value.code == "E0000047"
    assert "resets at" in raised.value.hint and "UTC" in raised.value.hint
    # One request: the SDK does not sleep until the reset, the wizard re-enqueues instead.
    finished = call_rows(Cloud.OKTA).filter(kind=AuditKind.CALL_FINISHED)
    assert [row.error_code for row in finished] == ["", "E0000047"]
    assert finished.last().response["x-rate-limit-remaining"] == "0"


def test_it_does_not_trust_the_sandbox_ca_in_live_mode(
    sandbox: Sandbox, settings: Any, scope: AuditScope
) -> None:
    settings.WIZARD_MODE = "live"
    live = Connection.objects.create(
        cloud=Cloud.OKTA,
        name="live",
        config={"method": "api_token", "org_url": "https://example.okta.com"},
    )
    live.set_secrets({"api_token": "00live-token"})
    executor = okta_client(live, audit=scope).get_request_executor()
    request = run_okta(executor.create_request("GET", "/api/v1/users/me"))
    # As if the org's name led to the sandbox: only the sandbox CA vouches for that host.
    request["url"] = f"{sandbox.endpoints['okta_org_url']}/api/v1/users/me"

    with pytest.raises(PermanentError) as raised:
        run_okta(executor.execute(request))

    assert raised.value.code == "okta_tls_untrusted"
    finished = call_rows(Cloud.OKTA).filter(kind=AuditKind.CALL_FINISHED).get()
    assert finished.outcome == "error"


def test_it_refuses_a_sandbox_connection_in_live_mode(
    sandbox_connections: dict[str, Connection], settings: Any, scope: AuditScope
) -> None:
    settings.WIZARD_MODE = "live"

    with pytest.raises(PermanentError) as raised:
        okta_client(sandbox_connections[Cloud.OKTA], audit=scope)

    assert raised.value.code == "sandbox_connection_in_live_mode"
