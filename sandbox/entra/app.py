"""The sandbox Entra ID port: login authority, Graph v1.0, federation metadata and test sign-on."""

from __future__ import annotations

import html
import json
import re
from typing import Any

from werkzeug.wrappers import Request, Response

from sandbox.directory import seed_directory
from sandbox.entra.access_tokens import TokenSigner
from sandbox.entra.graph import GraphApi
from sandbox.entra.login import LoginAuthority, json_response
from sandbox.entra.sign_on import SignOnError, federation_metadata, idp_initiated_sign_on
from sandbox.entra.tenant import Tenant
from sandbox.server import (
    ENTRA_CLIENT_ID,
    ENTRA_CLIENT_SECRET,
    ENTRA_DOMAIN,
    ENTRA_TENANT_ID,
    Sandbox,
)

SIGN_ON_API = "entra:sso"
_TENANT = r"/(?P<tenant>[^/]+)"
OPENID_CONFIGURATION = re.compile(_TENANT + r"/v2\.0/\.well-known/openid-configuration")
KEYS = re.compile(_TENANT + r"/discovery/v2\.0/keys")
TOKEN = re.compile(_TENANT + r"/oauth2/v2\.0/token")
FEDERATION_METADATA = re.compile(
    _TENANT + r"/federationmetadata/2007-06/federationmetadata\.xml", re.IGNORECASE
)
INSTANCE_DISCOVERY = re.compile(r"/common/discovery/instance")
SIGN_ON = re.compile(r"/sandbox/sso/(?P<app_id>[^/]+)")
# Entra serves app federation metadata with a UTF-8 byte-order mark before the XML declaration
# (MicrosoftDocs/azure-docs issue 65434: "EF BB BF" in the hex view; microsoft-graph-docs PR 10562
# added the note that applications must cope with it).
METADATA_BYTE_ORDER_MARK = b"\xef\xbb\xbf"

SIGN_ON_FORM = """<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Working...</title></head>
<body>
<form method="POST" name="hiddenform" action="{action}">
<input type="hidden" name="SAMLResponse" value="{saml_response}">
{relay_state}<noscript><p>Script is disabled. Click Submit to continue.</p></noscript>
<p>Signing in to {app_name} as {user}.</p>
<button type="submit">Submit</button>
</form>
</body>
</html>
"""
ERROR_PAGE = """<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Sign in to your account</title></head>
<body>
<h1>Sign in</h1>
<p>Sorry, but we're having trouble signing you in.</p>
<p id="error">{code}: {message}</p>
</body>
</html>
"""


class EntraApp:
    """WSGI app for https://login.microsoftonline.com and https://graph.microsoft.com/v1.0 of the
    sandbox tenant. `tenant.granted_permissions` decides the roles in new access tokens."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.knobs = sandbox.knobs
        self.tenant = Tenant(
            tenant_id=ENTRA_TENANT_ID,
            domain=ENTRA_DOMAIN,
            client_id=ENTRA_CLIENT_ID,
            client_secret=ENTRA_CLIENT_SECRET,
            knobs=sandbox.knobs,
            directory=seed_directory(
                domain=ENTRA_DOMAIN,
                agents=sandbox.knobs.directory_agents,
                seed=sandbox.knobs.seed,
            ),
        )
        self.signer = TokenSigner(issuer=f"https://sts.windows.net/{ENTRA_TENANT_ID}/")
        self.login = LoginAuthority(self.tenant, self.signer, sandbox.knobs)
        self.graph = GraphApi(self.tenant, self.signer, sandbox.knobs)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        return self.respond(request)(environ, start_response)

    def respond(self, request: Request) -> Response:
        path = request.path
        if path == "/v1.0" or path.startswith("/v1.0/"):
            return self.graph(request, path.removeprefix("/v1.0"))
        if request.method == "GET" and (match := SIGN_ON.fullmatch(path)):
            return self.sign_on(request, match["app_id"])
        if request.method == "GET" and INSTANCE_DISCOVERY.fullmatch(path):
            return self.login.instance_discovery(request)
        if request.method == "GET" and (match := OPENID_CONFIGURATION.fullmatch(path)):
            return self.login.openid_configuration(request, match["tenant"])
        if request.method == "GET" and (match := KEYS.fullmatch(path)):
            return self.login.jwks(request, match["tenant"])
        if request.method == "POST" and (match := TOKEN.fullmatch(path)):
            return self.login.token(request, match["tenant"])
        if request.method == "GET" and (match := FEDERATION_METADATA.fullmatch(path)):
            return self.metadata(request, match["tenant"])
        return json_response(
            {"error": "not_found", "error_description": f"No sandbox Entra endpoint at {path}."},
            status=404,
        )

    def metadata(self, request: Request, tenant_name: str) -> Response:
        """/{tenant}/federationmetadata/2007-06/federationmetadata.xml?appid={appId}"""
        if not self.login.knows_tenant(tenant_name):
            return self.login.tenant_not_found(request, tenant_name)
        try:
            document = federation_metadata(
                self.tenant,
                authority=request.host_url.rstrip("/"),
                app_id=request.args.get("appid"),
            )
        except SignOnError as error:
            return self._sign_on_error(request, error)
        return Response(
            METADATA_BYTE_ORDER_MARK + document.encode("utf-8"),
            content_type="application/xml; charset=utf-8",
        )

    def sign_on(self, request: Request, app_id: str) -> Response:
        """The sandbox's "open the app from My Apps": GET /sandbox/sso/{appId}?user=UPN-or-id.

        HTML: an auto-postable form to the sandbox AWS sign-in. With Accept: application/json:
        {"action", "SAMLResponse", "RelayState"} for a server-side caller to post.
        """
        self.knobs.delay(SIGN_ON_API)
        user_key = request.args.get("user", "")
        try:
            if not user_key:
                raise SignOnError(
                    400,
                    "AADSTS900144",
                    "The request body must contain the following parameter: 'user'.",
                )
            saml_post = idp_initiated_sign_on(
                self.tenant,
                app_id=app_id,
                user_key=user_key,
                post_to=self.sandbox.endpoints["aws_signin_url"],
            )
        except SignOnError as error:
            return self._sign_on_error(request, error)
        if self._wants_json(request):
            return json_response(
                {
                    "action": saml_post.action,
                    "SAMLResponse": saml_post.saml_response,
                    "RelayState": saml_post.relay_state,
                }
            )
        relay_state = ""
        if saml_post.relay_state:
            relay_state = (
                '<input type="hidden" name="RelayState" '
                f'value="{html.escape(saml_post.relay_state)}">\n'
            )
        service_principal = self.tenant.find_service_principal(app_id, by_app_id=True)
        page = SIGN_ON_FORM.format(
            action=html.escape(saml_post.action),
            saml_response=html.escape(saml_post.saml_response),
            relay_state=relay_state,
            app_name=html.escape(service_principal["displayName"]),
            user=html.escape(user_key),
        )
        return Response(page, content_type="text/html; charset=utf-8")

    @staticmethod
    def _wants_json(request: Request) -> bool:
        best = request.accept_mimetypes.best_match(["text/html", "application/json"])
        return best == "application/json"

    def _sign_on_error(self, request: Request, error: SignOnError) -> Response:
        if self._wants_json(request):
            return Response(
                json.dumps(
                    {"error": error.code, "error_description": f"{error.code}: {error.message}"}
                ),
                status=error.status,
                content_type="application/json; charset=utf-8",
            )
        page = ERROR_PAGE.format(code=html.escape(error.code), message=html.escape(error.message))
        return Response(page, status=error.status, content_type="text/html; charset=utf-8")


def build_entra_app(sandbox: Sandbox) -> EntraApp:
    return EntraApp(sandbox)
