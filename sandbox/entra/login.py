"""Entra's login authority for the sandbox tenant: discovery documents and the token endpoint."""

from __future__ import annotations

import base64
import datetime as dt
import hmac
import json
import uuid
from typing import Any
from urllib.parse import unquote, urlsplit

from werkzeug.wrappers import Request, Response

from sandbox.entra.access_tokens import GRAPH_APP_ID, GRAPH_RESOURCE, TOKEN_LIFETIME_S, TokenSigner
from sandbox.entra.tenant import Tenant
from sandbox.knobs import Knobs

# Scopes a client-credentials request may name for Graph: "<resource>/.default".
GRAPH_SCOPES = {
    f"{GRAPH_RESOURCE}/.default",
    f"{GRAPH_RESOURCE}//.default",
    f"{GRAPH_APP_ID}/.default",
}
OIDC_SCOPES = {"openid", "profile", "offline_access", "email"}
TOKEN_API = "entra:token"  # noqa: S105 - a knobs API name, not a secret


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body),
        status=status,
        headers=headers or {},
        content_type="application/json; charset=utf-8",
    )


class LoginAuthority:
    """https://login.microsoftonline.com as far as MSAL's confidential client needs it."""

    def __init__(self, tenant: Tenant, signer: TokenSigner, knobs: Knobs) -> None:
        self.tenant = tenant
        self.signer = signer
        self.knobs = knobs

    def knows_tenant(self, name: str) -> bool:
        return name.casefold() in {
            self.tenant.tenant_id.casefold(),
            self.tenant.domain.casefold(),
            "organizations",
        }

    def aadsts_error(
        self, request: Request, status: int, error: str, code: int, message: str
    ) -> Response:
        """Entra's OAuth error body: error, "AADSTSnnnn: ..." description, codes and ids."""
        now = dt.datetime.now(dt.UTC)
        trace_id = str(uuid.uuid4())
        correlation_id = request.headers.get("client-request-id") or str(uuid.uuid4())
        stamp = now.strftime("%Y-%m-%d %H:%M:%SZ")
        return json_response(
            {
                "error": error,
                "error_description": (
                    f"AADSTS{code}: {message} Trace ID: {trace_id} Correlation ID: "
                    f"{correlation_id} Timestamp: {stamp}"
                ),
                "error_codes": [code],
                "timestamp": stamp,
                "trace_id": trace_id,
                "correlation_id": correlation_id,
                "error_uri": f"{request.host_url}error?code={code}",
            },
            status=status,
        )

    def tenant_not_found(self, request: Request, name: str) -> Response:
        return self.aadsts_error(
            request,
            400,
            "invalid_request",
            90002,
            f"Tenant '{name}' not found. Check to make sure you have the correct tenant ID and "
            "are signing into the correct cloud.",
        )

    def openid_configuration(self, request: Request, tenant_name: str) -> Response:
        """/{tenant}/v2.0/.well-known/openid-configuration: where MSAL finds the token endpoint."""
        if not self.knows_tenant(tenant_name):
            return self.tenant_not_found(request, tenant_name)
        authority = request.host_url.rstrip("/")
        tid = self.tenant.tenant_id
        prefix = f"{authority}/{tid}/oauth2/v2.0"
        return json_response(
            {
                "token_endpoint": f"{prefix}/token",
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "private_key_jwt",
                    "client_secret_basic",
                ],
                "jwks_uri": f"{authority}/{tid}/discovery/v2.0/keys",
                "response_modes_supported": ["query", "fragment", "form_post"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "issuer": f"{authority}/{tid}/v2.0",
                "request_uri_parameter_supported": False,
                "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
                "authorization_endpoint": f"{prefix}/authorize",
                "device_authorization_endpoint": f"{prefix}/devicecode",
                "http_logout_supported": True,
                "frontchannel_logout_supported": True,
                "end_session_endpoint": f"{prefix}/logout",
                "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "tid", "roles"],
                "tenant_region_scope": "AS",
                "cloud_instance_name": "microsoftonline.com",
                "cloud_graph_host_name": "graph.windows.net",
                "msgraph_host": "graph.microsoft.com",
                "rbac_url": "https://pas.windows.net",
            }
        )

    def instance_discovery(self, request: Request) -> Response:
        """/common/discovery/instance: what MSAL asks when instance discovery is left on."""
        endpoint = request.args.get("authorization_endpoint", "")
        path = urlsplit(endpoint).path.strip("/").split("/")
        tenant_name = unquote(path[0]) if path and path[0] else "common"
        authority = request.host_url.rstrip("/")
        host = urlsplit(authority).netloc
        return json_response(
            {
                "tenant_discovery_endpoint": (
                    f"{authority}/{tenant_name}/v2.0/.well-known/openid-configuration"
                ),
                "api-version": "1.1",
                "metadata": [
                    {"preferred_network": host, "preferred_cache": host, "aliases": [host]}
                ],
            }
        )

    def jwks(self, request: Request, tenant_name: str) -> Response:
        if not self.knows_tenant(tenant_name):
            return self.tenant_not_found(request, tenant_name)
        return json_response(self.signer.jwks())

    def _client_credentials(self, request: Request) -> tuple[str, str | None]:
        header = request.headers.get("Authorization", "")
        if header.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(header[6:]).decode()
            except ValueError:
                decoded = ":"
            client_id, _, secret = decoded.partition(":")
            return unquote(client_id), unquote(secret)
        return request.form.get("client_id", ""), request.form.get("client_secret")

    def token(self, request: Request, tenant_name: str) -> Response:
        """POST /{tenant}/oauth2/v2.0/token with grant_type=client_credentials."""
        self.knobs.delay(TOKEN_API)
        if self.knobs.should_fail(TOKEN_API):
            return self.aadsts_error(
                request,
                503,
                "temporarily_unavailable",
                90033,
                "A transient error has occurred. Please try again.",
            )
        if not self.knows_tenant(tenant_name):
            return self.tenant_not_found(request, tenant_name)
        grant_type = request.form.get("grant_type", "")
        if grant_type != "client_credentials":
            return self.aadsts_error(
                request,
                400,
                "unsupported_grant_type",
                70003,
                f"The app requested an unsupported grant type '{grant_type}'.",
            )
        client_id, secret = self._client_credentials(request)
        if client_id.casefold() != self.tenant.client_id.casefold():
            return self.aadsts_error(
                request,
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory "
                f"'{self.tenant.domain}'. This can happen if the application has not been "
                "installed by the administrator of the tenant or consented to by any user in "
                "the tenant.",
            )
        if not secret:
            return self.aadsts_error(
                request,
                401,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or "
                "'client_secret'.",
            )
        if not hmac.compare_digest(secret.encode(), self.tenant.client_secret.encode()):
            return self.aadsts_error(
                request,
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is "
                "the client secret value, not the client secret ID, for a secret added to app "
                f"'{client_id}'.",
            )
        scopes = set(request.form.get("scope", "").split()) - OIDC_SCOPES
        resource_scopes = [scope for scope in scopes if scope.endswith("/.default")]
        if len(resource_scopes) != 1 or len(scopes) != 1:
            return self.aadsts_error(
                request,
                400,
                "invalid_scope",
                1002012,
                f"The provided value for scope {' '.join(sorted(scopes)) or '(none)'} is not "
                "valid. Client credential flows must have a scope value with /.default suffixed "
                "to the resource identifier (application ID URI).",
            )
        if resource_scopes[0] not in GRAPH_SCOPES:
            resource = resource_scopes[0].removesuffix("/.default")
            return self.aadsts_error(
                request,
                400,
                "invalid_resource",
                500011,
                f"The resource principal named {resource} was not found in the tenant named "
                f"{self.tenant.domain}. This can happen if the application has not been "
                "installed by the administrator of the tenant or consented to by any user in the "
                "tenant. You might have sent your authentication request to the wrong tenant.",
            )
        with self.tenant.lock:
            roles = sorted(self.tenant.granted_permissions)
        access_token = self.signer.mint(
            tenant_id=self.tenant.tenant_id,
            client_id=self.tenant.client_id,
            client_object_id=self.tenant.client_object_id,
            roles=roles,
        )
        return json_response(
            {
                "token_type": "Bearer",
                "expires_in": TOKEN_LIFETIME_S,
                "ext_expires_in": TOKEN_LIFETIME_S,
                "access_token": access_token,
            },
            headers={"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"},
        )
