"""The Graph client against the sandbox tenant: sign-in, audit rows, redaction, errors, trust."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.utils import translation
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph.generated.groups.item.transitive_members.graph_user.graph_user_request_builder import (  # noqa: E501
    GraphUserRequestBuilder,
)
from msgraph.generated.models.claims_mapping_policy import ClaimsMappingPolicy

from provisioning.audit import AuditScope
from provisioning.entra.client import (
    REQUIRED_GRAPH_PERMISSIONS,
    graph_client,
    run_graph,
    run_graph_together,
)
from provisioning.entra.graph_reads import all_pages_json
from provisioning.errors import PermanentError, RetryableError, WaitForCloud
from provisioning.messages import render
from provisioning.models import AuditEvent, AuditKind, Cloud, Connection, SetupRun
from sandbox.directory import CONTACT_CENTRE_GROUP
from sandbox.entra.graph import INJECTED_FAILURE_RETRY_AFTER_S
from sandbox.knobs import Knobs
from sandbox.server import ENTRA_CLIENT_SECRET, Sandbox
from tests.clients.conftest import (
    all_audit_text,
    assert_every_call_started_and_finished,
    call_rows,
)

pytestmark = pytest.mark.django_db


def _sandbox_entra(sandbox: Sandbox, secret: str) -> Connection:
    connection = Connection(
        cloud=Cloud.ENTRA,
        name="entra",
        is_sandbox=True,
        config={
            "method": "client_secret",
            "tenant_id": sandbox.endpoints["entra_tenant_id"],
            "client_id": sandbox.endpoints["entra_client_id"],
        },
    )
    connection.set_secrets({"client_secret": secret})
    connection.save()
    return connection


@pytest.fixture
def no_graph_permissions(sandbox: Sandbox) -> Iterator[None]:
    tenant = sandbox.apps["entra"].tenant
    granted = set(tenant.granted_permissions)
    tenant.granted_permissions.clear()
    yield
    tenant.granted_permissions.update(granted)


def test_it_signs_in_and_reads_graph_with_every_request_audited(
    sandbox_connections: dict[str, Connection], scope: AuditScope
) -> None:
    client = graph_client(sandbox_connections[Cloud.ENTRA], audit=scope)

    first = run_graph(client.users.get())
    again = run_graph(client.users.get())

    assert first.value and [user.id for user in first.value] == [user.id for user in again.value]
    rows = assert_every_call_started_and_finished(Cloud.ENTRA)
    graph = [r for r in rows if r.service == "graph"]
    assert [(r.kind, r.operation) for r in graph] == [
        (AuditKind.CALL_STARTED, "GET /users"),
        (AuditKind.CALL_FINISHED, "GET /users"),
    ] * 2
    assert graph[1].response["http_status"] == 200
    assert graph[1].response["request_id"]
    # One token for both calls (the credential caches it), after the authority's discovery.
    assert [(r.kind, r.operation.rsplit("/", 1)[-1]) for r in rows if r.service == "login"] == [
        (AuditKind.CALL_STARTED, "openid-configuration"),
        (AuditKind.CALL_FINISHED, "openid-configuration"),
        (AuditKind.CALL_STARTED, "token"),
        (AuditKind.CALL_FINISHED, "token"),
    ]


def _sign_ins(scope: AuditScope) -> int:
    return (
        call_rows(Cloud.ENTRA)
        .filter(kind=AuditKind.CALL_FINISHED, service="login", step_key=scope.step_key)
        .filter(operation__endswith="/token")
        .count()
    )


def test_it_signs_in_once_for_every_step_until_told_to_sign_in_afresh(
    sandbox_connections: dict[str, Connection],
) -> None:
    connection = sandbox_connections[Cloud.ENTRA]
    steps = [AuditScope(actor_label="client tests", step_key=key) for key in ("a", "b", "c")]

    for step in steps[:2]:
        run_graph(graph_client(connection, audit=step).users.get())
    run_graph(graph_client(connection, audit=steps[2], fresh_sign_in=True).users.get())
    run_graph(graph_client(connection, audit=steps[0]).users.get())

    # Step b's client reused step a's token; c signed in afresh, and a's next client used c's
    # token. Every Graph call is still audited under the step that made it.
    assert [_sign_ins(step) for step in steps] == [1, 0, 1]
    graph = call_rows(Cloud.ENTRA).filter(kind=AuditKind.CALL_FINISHED, service="graph")
    assert list(graph.values_list("step_key", flat=True)) == ["a", "b", "c", "a"]


def test_it_signs_in_again_once_the_connection_has_a_new_secret(
    sandbox_connections: dict[str, Connection],
) -> None:
    connection = sandbox_connections[Cloud.ENTRA]
    first, second = (AuditScope(actor_label="client tests", step_key=key) for key in "ab")
    run_graph(graph_client(connection, audit=first).users.get())

    connection.set_secrets({"client_secret": "a-new-secret-value"})
    connection.save()
    with pytest.raises(PermanentError) as raised:
        run_graph(graph_client(connection, audit=second).users.get())

    assert raised.value.code == "AADSTS7000215"
    assert _sign_ins(second) == 1


def test_it_writes_neither_the_secret_nor_the_token_to_the_audit_log(
    sandbox_connections: dict[str, Connection], scope: AuditScope
) -> None:
    client = graph_client(sandbox_connections[Cloud.ENTRA], audit=scope)

    run_graph(client.service_principals.get())

    text = all_audit_text()
    assert ENTRA_CLIENT_SECRET not in text
    assert "eyJ" not in text  # the start of every JWT access token
    assert "Bearer" not in text


def test_it_tells_which_field_to_fix_for_a_wrong_client_secret(
    sandbox_mode: Sandbox, scope: AuditScope
) -> None:
    client = graph_client(_sandbox_entra(sandbox_mode, "wrong-secret-value"), audit=scope)

    with pytest.raises(PermanentError) as raised:
        run_graph(client.service_principals.get())

    assert raised.value.code == "AADSTS7000215"
    assert "client secret is wrong" in raised.value.message
    assert "Value (not its Secret ID)" in raised.value.hint
    token = call_rows(Cloud.ENTRA).filter(kind=AuditKind.CALL_FINISHED, service="login").last()
    assert (token.outcome, token.error_code) == ("error", "invalid_client")


def test_it_stores_the_sign_in_refusal_with_its_reason_as_nested_message_ids(
    sandbox_mode: Sandbox, scope: AuditScope
) -> None:
    client = graph_client(_sandbox_entra(sandbox_mode, "wrong-secret-value"), audit=scope)

    with pytest.raises(PermanentError) as raised:
        run_graph(client.service_principals.get())

    stored = raised.value.as_dict()
    assert stored["message"]["msgid"] == "Entra ID refused the wizard's sign-in: %(reason)s"
    assert stored["message"]["params"]["reason"]["msgid"] == "The client secret is wrong."
    with translation.override("ja"):
        assert render(stored["message"]) == (
            "Entra ID がウィザードのサインインを拒否しました: "
            "クライアント シークレットが正しくありません。"
        )


def test_it_lists_the_graph_permissions_the_app_lacks(
    sandbox_connections: dict[str, Connection], no_graph_permissions: None, scope: AuditScope
) -> None:
    client = graph_client(sandbox_connections[Cloud.ENTRA], audit=scope)

    with pytest.raises(PermanentError) as raised:
        run_graph(client.service_principals.get())

    assert raised.value.code == "Authorization_RequestDenied"
    assert all(permission in raised.value.hint for permission in REQUIRED_GRAPH_PERMISSIONS)
    assert "admin consent" in raised.value.hint
    finished = call_rows(Cloud.ENTRA).filter(kind=AuditKind.CALL_FINISHED, service="graph").get()
    assert finished.error_code == "Authorization_RequestDenied"


def test_it_raises_a_retryable_error_with_graphs_retry_after(
    sandbox_connections: dict[str, Connection], sandbox_knobs: Knobs, scope: AuditScope
) -> None:
    sandbox_knobs.rate_limits_enabled = True
    sandbox_knobs.rate_limits["graph:read"] = (0.01, 1)
    sandbox_knobs.reset_buckets()
    client = graph_client(sandbox_connections[Cloud.ENTRA], audit=scope)
    run_graph(client.service_principals.get())

    with pytest.raises(RetryableError) as raised:
        run_graph(client.service_principals.get())

    assert raised.value.code == "TooManyRequests"
    # The header is the engine's retry delay, not just words in the hint.
    assert raised.value.retry_after_s == 100
    assert "Graph asked to wait 100 s" in raised.value.hint
    finished = call_rows(Cloud.ENTRA).filter(kind=AuditKind.CALL_FINISHED, service="graph").last()
    assert finished.response["retry_after"] == "100"
    # kiota's RetryHandler did not retry (and sleep) first: one request, one pair of audit rows.
    started = call_rows(Cloud.ENTRA).filter(kind=AuditKind.CALL_STARTED, service="graph")
    assert started.filter(operation="GET /servicePrincipals").count() == 2


def test_it_raises_a_retryable_error_when_graph_is_unavailable(
    sandbox_connections: dict[str, Connection], sandbox_knobs: Knobs, scope: AuditScope
) -> None:
    sandbox_knobs.error_rates["graph:read"] = 1.0
    client = graph_client(sandbox_connections[Cloud.ENTRA], audit=scope)

    with pytest.raises(RetryableError) as raised:
        run_graph(client.service_principals.get())

    assert raised.value.code == "serviceNotAvailable"
    assert raised.value.retry_after_s == INJECTED_FAILURE_RETRY_AFTER_S


def test_it_neither_trusts_the_sandbox_ca_nor_sends_a_token_off_graph_in_live_mode(
    sandbox: Sandbox, settings: Any, scope: AuditScope
) -> None:
    settings.WIZARD_MODE = "live"
    live = Connection.objects.create(
        cloud=Cloud.ENTRA,
        name="live",
        config={
            "method": "client_secret",
            "tenant_id": sandbox.endpoints["entra_tenant_id"],
            "client_id": sandbox.endpoints["entra_client_id"],
        },
    )
    live.set_secrets({"client_secret": "live-secret"})
    client = graph_client(live, audit=scope)
    elsewhere = f"{sandbox.endpoints['graph_base_url']}/servicePrincipals"

    with pytest.raises(PermanentError) as raised:
        run_graph(client.service_principals.with_url(elsewhere).get())

    assert raised.value.code == "entra_tls_untrusted"
    # No sign-in happened: the token is only ever fetched for graph.microsoft.com.
    assert not call_rows(Cloud.ENTRA).filter(service="login").exists()
    finished = call_rows(Cloud.ENTRA).filter(kind=AuditKind.CALL_FINISHED).get()
    assert finished.error_code == "ConnectError"


def test_it_says_how_to_fix_a_certificate_it_cannot_read(
    sandbox_mode: Sandbox, scope: AuditScope
) -> None:
    connection = _sandbox_entra(sandbox_mode, "unused")
    connection.config["method"] = "certificate"
    connection.set_secrets({"certificate": "-----BEGIN CERTIFICATE-----\nnot a certificate\n"})

    with pytest.raises(PermanentError) as raised:
        graph_client(connection, audit=scope)

    assert raised.value.code == "entra_bad_certificate"
    assert "private key and the certificate" in raised.value.hint


def test_it_sends_an_advanced_querys_header_with_every_page(
    sandbox: Sandbox, sandbox_connections: dict[str, Connection], scope: AuditScope
) -> None:
    client = graph_client(sandbox_connections[Cloud.ENTRA], audit=scope)
    tenant = sandbox.apps["entra"].tenant
    group_id = next(
        g["id"] for g in tenant.groups.values() if g["displayName"] == CONTACT_CENTRE_GROUP
    )
    builder = client.groups.by_group_id(group_id).transitive_members.graph_user
    configuration = RequestConfiguration(
        query_parameters=GraphUserRequestBuilder.GraphUserRequestBuilderGetQueryParameters(
            top=5, count=True
        )
    )
    configuration.headers.add("ConsistencyLevel", "eventual")

    users, more = all_pages_json(
        builder, builder.to_get_request_information(configuration), limit=1000
    )

    expected = [i for i in tenant.transitive_members(group_id) if i in tenant.users]
    assert sorted(user["id"] for user in users) == sorted(expected)
    assert not more and len(expected) > 5


def _new_policy_patch(client: Any) -> tuple[Any, Any]:
    """Create a claims-mapping policy and PATCH it at once (before it has replicated)."""
    policy = run_graph(
        client.policies.claims_mapping_policies.post(
            ClaimsMappingPolicy(
                display_name="Replication test",
                definition=['{"ClaimsMappingPolicy":{"Version":1,"ClaimsSchema":[]}}'],
            )
        )
    )
    item = client.policies.claims_mapping_policies.by_claims_mapping_policy_id(policy.id)
    return policy, item.patch(ClaimsMappingPolicy(description="changed"))


def test_it_waits_for_the_cloud_when_a_write_404s_on_an_object_this_run_just_created(
    sandbox_connections: dict[str, Connection], sandbox_knobs: Knobs, settings: Any
) -> None:
    # hashicorp/terraform-provider-azuread PR 656: Graph 404s writes to a new object for a while.
    sandbox_knobs.graph_visibility_delay_s = 30
    run = SetupRun.objects.create(idp="entra", flow_key="entra", region="ap-northeast-1")
    ours = AuditScope(actor_label="client tests", run_id=run.pk)
    client = graph_client(sandbox_connections[Cloud.ENTRA], audit=ours)

    policy, write = _new_policy_patch(client)
    with pytest.raises(WaitForCloud) as waiting:
        run_graph(write)
    settings.WIZARD_GRAPH_REPLICATION_WINDOW_S = 0
    with pytest.raises(PermanentError) as gone:
        run_graph(
            client.policies.claims_mapping_policies.by_claims_mapping_policy_id(policy.id).patch(
                ClaimsMappingPolicy(description="changed")
            )
        )
    # Another run's new object is not this run's to wait for: a plain "not found".
    other = graph_client(
        sandbox_connections[Cloud.ENTRA], audit=AuditScope(actor_label="another run")
    )
    settings.WIZARD_GRAPH_REPLICATION_WINDOW_S = 600
    with pytest.raises(PermanentError) as not_ours:
        run_graph(
            other.policies.claims_mapping_policies.by_claims_mapping_policy_id(policy.id).patch(
                ClaimsMappingPolicy(description="changed")
            )
        )

    assert policy.id in str(waiting.value.reason)
    assert gone.value.code == "graph_not_replicated"
    assert policy.id in gone.value.message and "0 minutes" in gone.value.hint
    assert not_ours.value.code == "Request_ResourceNotFound"
    # Each 404 is audited like any answer.
    finished = call_rows(Cloud.ENTRA).filter(
        kind=AuditKind.CALL_FINISHED, operation__startswith="PATCH /policies/"
    )
    assert [row.response["http_status"] for row in finished] == [404, 404, 404]


class _SlowGraph:
    """The sandbox's Entra app with each answer held back `delay` seconds, noting when each request
    arrived and when its answer was ready (the sandbox serves each connection in a thread of its
    own, so requests sent at once are held at once)."""

    def __init__(self, app: Any, delay: float) -> None:
        self.app, self.delay = app, delay
        self.spans: list[tuple[str, float, float]] = []
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.app, name)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        arrived = time.monotonic()
        time.sleep(self.delay)
        answer = list(self.app(environ, start_response))
        with self._lock:
            self.spans.append((environ["PATH_INFO"], arrived, time.monotonic()))
        return answer


def test_it_sends_reads_given_together_at_the_same_time_each_audited(
    sandbox: Sandbox,
    sandbox_connections: dict[str, Connection],
    scope: AuditScope,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = graph_client(sandbox_connections[Cloud.ENTRA], audit=scope)
    run_graph(client.service_principals.get())  # signed in, so only the two reads follow
    slow = _SlowGraph(sandbox.apps["entra"], delay=0.3)
    monkeypatch.setitem(sandbox.apps, "entra", slow)
    before = AuditEvent.objects.latest("id").id

    users, groups = run_graph_together(client.users.get(), client.groups.get())

    assert users.value and groups.value
    assert {str(user.id) for user in users.value}.isdisjoint(str(g.id) for g in groups.value)
    # Both requests were at the sandbox at once: the second arrived before the first's answer.
    (first, first_in, first_out), (second, second_in, second_out) = sorted(
        slow.spans, key=lambda span: span[1]
    )
    assert {first, second} == {"/v1.0/users", "/v1.0/groups"}
    assert second_in < first_out
    rows = [r for r in assert_every_call_started_and_finished(Cloud.ENTRA) if r.id > before]
    assert sorted(r.operation for r in rows if r.kind == AuditKind.CALL_FINISHED) == [
        "GET /groups",
        "GET /users",
    ]


def test_it_lets_every_read_given_together_finish_then_raises_the_first_failure(
    sandbox_connections: dict[str, Connection], scope: AuditScope
) -> None:
    client = graph_client(sandbox_connections[Cloud.ENTRA], audit=scope)
    missing = "00000000-0000-4000-8000-000000000001"

    with pytest.raises(PermanentError) as raised:
        run_graph_together(client.users.get(), client.applications.by_application_id(missing).get())

    assert raised.value.code == "Request_ResourceNotFound"
    # The read that succeeded was audited too, start and finish, before the error came out.
    rows = assert_every_call_started_and_finished(Cloud.ENTRA)
    finished = {r.operation: r.outcome for r in rows if r.kind == AuditKind.CALL_FINISHED}
    assert set(finished) >= {"GET /users", f"GET /applications/{missing}"}
