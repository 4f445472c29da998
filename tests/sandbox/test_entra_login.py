"""The sandbox Entra login authority as azure-identity sees it, and Graph's token checks."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import ClientAuthenticationError
from msgraph.generated.models.claims_mapping_policy import ClaimsMappingPolicy
from msgraph.generated.models.o_data_errors.o_data_error import ODataError

from sandbox.entra.access_tokens import TokenSigner
from sandbox.entra.tenant import DEFAULT_GRANTED_PERMISSIONS
from sandbox.server import Sandbox
from tests.sandbox.entra_graph import GRAPH_SCOPE, graph_client, graph_credential, run


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


class _ForgedCredential:
    """A TokenCredential handing out a token signed by a key the tenant never issued."""

    def __init__(self, tenant_id: str, client_id: str) -> None:
        self.token = TokenSigner(issuer="https://sts.windows.net/forged/").mint(
            tenant_id=tenant_id, client_id=client_id, client_object_id=client_id, roles=[]
        )

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(self.token, int(time.time()) + 3600)


def test_it_issues_a_graph_token_to_client_secret_credential(sandbox: Sandbox) -> None:
    endpoints = sandbox.endpoints
    token = graph_credential(endpoints).get_token(GRAPH_SCOPE)

    claims = _claims(token.token)
    assert claims["tid"] == endpoints["entra_tenant_id"]
    assert claims["appid"] == endpoints["entra_client_id"]
    assert claims["aud"] == "https://graph.microsoft.com"
    assert set(claims["roles"]) == DEFAULT_GRANTED_PERMISSIONS
    assert token.expires_on > time.time() + 3000


def test_it_refuses_a_wrong_secret_with_aadsts7000215(sandbox: Sandbox) -> None:
    credential = graph_credential(sandbox.endpoints, secret="not-the-secret")

    with pytest.raises(ClientAuthenticationError, match="AADSTS7000215"):
        credential.get_token(GRAPH_SCOPE)


def test_it_refuses_a_scope_that_is_not_graph(sandbox: Sandbox) -> None:
    # What kiota asks for when the client isn't given Graph's scope explicitly.
    credential = graph_credential(sandbox.endpoints)

    with pytest.raises(ClientAuthenticationError, match="AADSTS500011"):
        credential.get_token("https://127.0.0.1/.default")


def test_it_refuses_graph_calls_with_a_token_it_did_not_sign(sandbox: Sandbox) -> None:
    endpoints = sandbox.endpoints
    forged = _ForgedCredential(endpoints["entra_tenant_id"], endpoints["entra_client_id"])

    async def scenario() -> ODataError:
        with pytest.raises(ODataError) as raised:
            await graph_client(endpoints, credential=forged).users.get()
        return raised.value

    error = run(scenario)
    assert error.response_status_code == 401
    assert error.error.code == "InvalidAuthenticationToken"


def test_it_refuses_calls_the_granted_permissions_do_not_cover(sandbox: Sandbox) -> None:
    tenant = sandbox.apps["entra"].tenant
    saved = set(tenant.granted_permissions)
    tenant.granted_permissions.discard("Policy.ReadWrite.ApplicationConfiguration")
    try:
        # A new credential: the token of another one would still carry the old roles.
        credential = graph_credential(sandbox.endpoints)
        roles = _claims(credential.get_token(GRAPH_SCOPE).token)["roles"]

        async def scenario() -> ODataError:
            client = graph_client(sandbox.endpoints, credential=credential)
            await client.policies.claims_mapping_policies.get()  # Policy.Read.All suffices
            with pytest.raises(ODataError) as raised:
                await client.policies.claims_mapping_policies.post(
                    ClaimsMappingPolicy(
                        display_name="needs Policy.ReadWrite.ApplicationConfiguration",
                        definition=['{"ClaimsMappingPolicy":{"Version":1,"ClaimsSchema":[]}}'],
                    )
                )
            return raised.value

        error = run(scenario)
    finally:
        tenant.granted_permissions = saved
    assert "Policy.ReadWrite.ApplicationConfiguration" not in roles
    assert error.response_status_code == 403
    assert error.error.code == "Authorization_RequestDenied"
