"""The Okta client against the sandbox org: API token and OAuth service app (private key, DPoP),
audit rows, redaction, errors, trust."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest
from django.utils import translation
from okta.jwt import JWT

from provisioning.audit import AuditScope
from provisioning.errors import PermanentError, RetryableError
from provisioning.messages import render
from provisioning.models import AuditKind, Cloud, Connection
from provisioning.okta import aws_app
from provisioning.okta.client import forget_dpop_keys, okta_client, run_okta
from provisioning.okta.rest import okta_call
from provisioning.saml import parse_idp_metadata
from sandbox.knobs import Knobs
from sandbox.okta.oauth import ServiceAppKey, new_service_app_key
from sandbox.server import OKTA_TOKEN, Sandbox
from tests.clients.conftest import (
    all_audit_text,
    assert_every_call_started_and_finished,
    call_rows,
)

pytestmark = pytest.mark.django_db

# An hour is more than the 50 minutes the SDK's assertions last (okta/jwt.py JWT.EXPIRATION).
WORKER_CLOCK_BEHIND_S = 3600


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


def test_it_stores_the_refusal_as_a_message_a_japanese_admin_reads_in_japanese(
    sandbox_mode: Sandbox, scope: AuditScope
) -> None:
    client = okta_client(_sandbox_okta(sandbox_mode, "00not-the-right-token"), audit=scope)

    with pytest.raises(PermanentError) as raised:
        run_okta(client.get_user("me"))

    stored = raised.value.as_dict()
    assert stored["message"]["msgid"] == "Okta did not accept the connection's credentials.%(said)s"
    with translation.override("ja"):
        assert render(stored["message"]).startswith("Okta が接続の認証情報を受け付けませんでした。")
        assert "有効な API トークン" in render(stored["hint"])


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


def _service_app_connection(
    sandbox: Sandbox,
    *,
    app_dpop: bool,
    connection_dpop: str,
    scopes: tuple[str, ...] = ("okta.apps.manage",),
    signing_key: ServiceAppKey | None = None,
) -> Connection:
    """A new API service app in the sandbox org and a connection to it; the connection signs
    with `signing_key` when given (a key the app doesn't know), else with the app's own key."""
    key = new_service_app_key()
    app = sandbox.apps["okta"].authorization_server.add_service_app(
        "client test", public_jwks=[key.public_jwk], scopes=list(scopes), dpop_bound=app_dpop
    )
    connection = Connection(
        cloud=Cloud.OKTA,
        name=f"service app {app.client_id}",
        is_sandbox=True,
        config={
            "method": "private_key",
            "org_url": sandbox.endpoints["okta_org_url"],
            "client_id": app.client_id,
            "scopes": " ".join(scopes),
            "dpop": connection_dpop,
        },
    )
    connection.set_secrets({"private_key": (signing_key or key).private_pem})
    connection.save()
    return connection


def test_it_calls_okta_with_a_dpop_bound_token_and_keeps_the_token_out_of_the_audit_log(
    sandbox_okta_service_app: Connection, scope: AuditScope
) -> None:
    forget_dpop_keys()  # as a new worker process
    client = okta_client(sandbox_okta_service_app, audit=scope)

    apps = okta_call(client, "GET", "/api/v1/apps", params={"limit": 1})

    assert isinstance(apps, list)
    rows = assert_every_call_started_and_finished(Cloud.OKTA)
    finished = [row for row in rows if row.kind == AuditKind.CALL_FINISHED]
    # Okta's documented flow: a nonce challenge, the token, then the call.
    assert [(row.operation, row.error_code) for row in finished] == [
        ("POST /oauth2/v1/token", "use_dpop_nonce"),
        ("POST /oauth2/v1/token", ""),
        ("GET /api/v1/apps", ""),
    ]
    assert finished[1].response["token_type"] == "DPoP"
    token = client.get_request_executor()._oauth.get_current_token()[0]
    text = all_audit_text()
    assert token and token not in text
    assert sandbox_okta_service_app.secrets["private_key"].splitlines()[1] not in text


def test_it_keeps_one_dpop_key_and_its_nonce_for_the_next_client(
    sandbox_okta_service_app: Connection, scope: AuditScope
) -> None:
    forget_dpop_keys()
    first = okta_client(sandbox_okta_service_app, audit=scope)
    okta_call(first, "GET", "/api/v1/apps", params={"limit": 1})
    second = okta_client(sandbox_okta_service_app, audit=scope)
    okta_call(second, "GET", "/api/v1/apps", params={"limit": 1})

    generators = [c.get_request_executor()._oauth.get_dpop_generator() for c in (first, second)]
    assert generators[0] is generators[1]
    finished = [
        (row.operation, row.error_code)
        for row in assert_every_call_started_and_finished(Cloud.OKTA)
        if row.kind == AuditKind.CALL_FINISHED
    ]
    # The second client's token request already carries Okta's nonce: no second challenge.
    assert finished.count(("POST /oauth2/v1/token", "use_dpop_nonce")) == 1
    assert finished.count(("POST /oauth2/v1/token", "")) == 2


def test_it_says_to_turn_on_dpop_when_the_app_requires_it(
    sandbox_mode: Sandbox, scope: AuditScope
) -> None:
    connection = _service_app_connection(sandbox_mode, app_dpop=True, connection_dpop="off")
    client = okta_client(connection, audit=scope)

    with pytest.raises(PermanentError) as raised:
        okta_call(client, "GET", "/api/v1/apps")

    assert raised.value.code == "okta_dpop_required_by_app"
    assert "turn on DPoP" in raised.value.hint


def test_it_says_the_app_does_not_require_dpop_when_okta_issues_a_bearer_token(
    sandbox_mode: Sandbox, scope: AuditScope
) -> None:
    connection = _service_app_connection(sandbox_mode, app_dpop=False, connection_dpop="on")
    client = okta_client(connection, audit=scope)

    with pytest.raises(PermanentError) as raised:
        okta_call(client, "GET", "/api/v1/apps")

    assert raised.value.code == "okta_dpop_not_required_by_app"
    assert (
        "Require Demonstrating Proof of Possession (DPoP) header in token requests"
        in raised.value.hint
    )
    assert "turn off DPoP" in raised.value.hint


def test_it_uses_a_bearer_token_when_both_have_dpop_off(
    sandbox_mode: Sandbox, scope: AuditScope
) -> None:
    connection = _service_app_connection(sandbox_mode, app_dpop=False, connection_dpop="off")

    apps = okta_call(okta_client(connection, audit=scope), "GET", "/api/v1/apps")

    assert isinstance(apps, list)
    token = call_rows(Cloud.OKTA).filter(
        kind=AuditKind.CALL_FINISHED, operation="POST /oauth2/v1/token"
    )
    assert [row.response["token_type"] for row in token] == ["Bearer"]


def test_it_says_the_key_does_not_match_the_service_app(
    sandbox_mode: Sandbox, scope: AuditScope
) -> None:
    connection = _service_app_connection(
        sandbox_mode, app_dpop=True, connection_dpop="on", signing_key=new_service_app_key()
    )

    with pytest.raises(PermanentError) as raised:
        okta_call(okta_client(connection, audit=scope), "GET", "/api/v1/apps")

    assert raised.value.code == "okta_invalid_client"
    assert "The client_assertion signature is invalid." in raised.value.message
    assert "must match a public key" in raised.value.hint


def test_it_blames_the_workers_clock_for_an_expired_assertion(
    sandbox_mode: Sandbox, scope: AuditScope, monkeypatch: pytest.MonkeyPatch
) -> None:
    connection = _service_app_connection(sandbox_mode, app_dpop=True, connection_dpop="on")
    # As if the worker's clock ran an hour behind: the SDK signs an assertion already expired.
    monkeypatch.setattr(JWT, "EXPIRATION", -WORKER_CLOCK_BEHIND_S)

    with pytest.raises(PermanentError) as raised:
        okta_call(okta_client(connection, audit=scope), "GET", "/api/v1/apps")

    assert raised.value.code == "okta_assertion_time"
    assert "The client_assertion token is expired." in raised.value.message
    assert "clock" in raised.value.hint


def test_it_names_the_scope_a_call_lacks(sandbox_mode: Sandbox, scope: AuditScope) -> None:
    connection = _service_app_connection(sandbox_mode, app_dpop=True, connection_dpop="on")

    with pytest.raises(PermanentError) as raised:
        okta_call(okta_client(connection, audit=scope), "GET", "/api/v1/groups")

    assert raised.value.code == "okta_insufficient_scope"
    assert "okta.groups.read" in raised.value.message
    assert "Okta API Scopes tab" in raised.value.hint


def test_it_hands_on_the_metadata_of_the_key_the_app_signs_with_now(
    sandbox_connections: dict[str, Connection], scope: AuditScope
) -> None:
    client = okta_client(sandbox_connections[Cloud.OKTA], audit=scope)
    app = okta_call(
        client,
        "POST",
        "/api/v1/apps",
        {"name": aws_app.AWS_APP_NAME, "label": "metadata kid", "signOnMode": aws_app.SAML_2_0},
    )
    path = aws_app.app_path(app["id"])
    new_key = okta_call(client, "POST", f"{path}/credentials/keys/generate?validityYears=2")
    # The signing key is switched after the step read the app (an admin's rotation, or a run
    # resumed later): the metadata must follow the app as it is now.
    okta_call(client, "PUT", path, {**app, "credentials": {"signing": {"kid": new_key["kid"]}}})

    metadata = parse_idp_metadata(aws_app.metadata_xml(client, app["id"]))

    certificate = base64.b64decode(new_key["x5c"][0])
    digest = hashlib.sha256(certificate).hexdigest().upper()
    assert metadata.fingerprints == {":".join(digest[i : i + 2] for i in range(0, 64, 2))}
    reads = (
        call_rows(Cloud.OKTA)
        .filter(kind=AuditKind.CALL_STARTED)
        .values_list("operation", flat=True)
    )
    assert f"GET {path}/credentials/keys/{new_key['kid']}" in list(reads)
