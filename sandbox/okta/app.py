"""The sandbox Okta org over HTTP: the wizard's management API subset, and sandbox hooks."""

from __future__ import annotations

import datetime as dt
import hmac
import json
import math
import re
import secrets
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from sandbox.okta import query
from sandbox.okta import users as okta_users
from sandbox.okta.oauth import (
    ENDPOINT_SCOPES,
    TOKEN_PATH,
    AuthorizationServer,
    OAuthError,
    ResourceError,
    new_service_app_key,
)
from sandbox.okta.org import (
    APP_ID_PREFIX,
    APP_KEY_PREFIX,
    AWS_APP_NAME,
    DEFAULT_USERNAME_TEMPLATE,
    AppGroup,
    AppKey,
    AppUser,
    AwsApp,
    OktaOrg,
    OrgGroup,
    OrgUser,
    RoleDownload,
    default_app_settings,
    merge,
    now,
    supported_username_template,
)
from sandbox.okta.provisioning import RoleDownloadFailed, download_roles
from sandbox.okta.sign_on import (
    AWS_SIGN_IN,
    error_page,
    form_page,
    group_filter_regex,
    issuer_of,
    sign_on,
    sso_url_of,
)
from sandbox.saml_idp import idp_metadata, issue_signing_certificate
from sandbox.server import OKTA_DOMAIN, Sandbox

# Knob names (sandbox.knobs): the rate-limit bucket, injected errors and latency per API family.
APPS_API = "okta:apps"
USERS_API = "okta:users"
GROUPS_API = "okta:groups"

# Page sizes: Okta's documented defaults and maxima for each list.
APPS_PAGE = (20, 200)
USERS_PAGE = (200, 200)
GROUPS_PAGE = (10000, 10000)
GROUP_USERS_PAGE = (1000, 1000)
APP_USERS_PAGE = (50, 500)
APP_GROUPS_PAGE = (20, 200)

# Okta's own limits on the AWS app: a session lasts 15 minutes to 12 hours, as STS allows.
SESSION_DURATION_RANGE = (900, 43200)
# Okta quotes rate limits per minute in X-Rate-Limit-Limit.
SECONDS_PER_LIMIT_WINDOW = 60
APP_SETTINGS_KEYS = frozenset(default_app_settings()["app"])
# Attribute statement types (okta-sdk-python 3.4.6, saml_application_settings_sign_on.py,
# attributeStatements: EXPRESSION or GROUP) and SAML's unspecified name format, Okta's default.
SAML_STATEMENT_TYPES = frozenset({"EXPRESSION", "GROUP"})
SAML_UNSPECIFIED_NAME_FORMAT = "urn:oasis:names:tc:SAML:2.0:attrname-format:unspecified"
APP_USER_PROFILE_KEYS = frozenset({"role", "samlRoles"})
SIGNING_CERT_CN = "CN=sandbox-okta amazon_aws"
# generateApplicationKey's validityYears (Okta Apps API reference: 2 to 10).
KEY_VALIDITY_YEARS = (2, 10)
ERROR_ID_PREFIX = "oae"
SSWS_SCHEME = "SSWS"
# OAuth 2.0 access tokens from the org authorization server (sandbox/okta/oauth.py).
OAUTH_SCHEMES = ("Bearer", "DPoP")
# The sandbox's own API service app and the Okta scopes granted to it: what both Okta flows do
# (okta_preflight.SCOPES, plus okta.groups.manage for group mapping's role group).
SERVICE_APP_LABEL = "Connect SSO wizard (sandbox)"
SERVICE_APP_SCOPES = ("okta.apps.manage", "okta.users.read", "okta.groups.manage")


class OktaError(Exception):
    """An error as Okta reports it: HTTP status plus errorCode, errorSummary and errorCauses."""

    def __init__(
        self, status: int, code: str, summary: str, causes: list[str] | None = None
    ) -> None:
        super().__init__(summary)
        self.status = status
        self.code = code
        self.summary = summary
        self.causes = causes or []

    def body(self) -> dict[str, Any]:
        return {
            "errorCode": self.code,
            "errorSummary": self.summary,
            "errorLink": self.code,
            "errorId": ERROR_ID_PREFIX + secrets.token_urlsafe(16).replace("-", "x"),
            "errorCauses": [{"errorSummary": cause} for cause in self.causes],
        }


def invalid_token() -> OktaError:
    return OktaError(401, "E0000011", "Invalid token provided")


def not_found(reference: str, kind: str) -> OktaError:
    return OktaError(404, "E0000007", f"Not found: Resource not found: {reference} ({kind})")


def validation_failed(field: str, *causes: str) -> OktaError:
    return OktaError(400, "E0000001", f"Api validation failed: {field}", list(causes))


def rate_limited() -> OktaError:
    return OktaError(429, "E0000047", "API call exceeded rate limit due to too many requests.")


def injected_failure() -> OktaError:
    # What knobs.error_rates injects: Okta's generic server error, which clients retry.
    return OktaError(500, "E0000009", "Internal Server Error")


def json_response(
    payload: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    response = Response(status=status, headers=headers)
    response.content_type = "application/json"
    response.set_data(json.dumps(payload))
    return response


Handler = Callable[..., Response]


class OktaSandboxApp:
    """WSGI app for the sandbox Okta org. `org` is exposed for the sandbox's own tooling."""

    def __init__(self, sandbox: Sandbox, org: OktaOrg) -> None:
        self.sandbox = sandbox
        self.knobs = sandbox.knobs
        self.org = org
        self.authorization_server = AuthorizationServer(org.org_url, org.new_id)
        self.url_map = Map(
            [
                Rule(TOKEN_PATH, methods=["POST"], endpoint="token"),
                Rule("/api/v1/apps", methods=["GET"], endpoint="list_apps"),
                Rule("/api/v1/apps", methods=["POST"], endpoint="create_app"),
                Rule("/api/v1/apps/<app_id>", methods=["GET"], endpoint="get_app"),
                Rule("/api/v1/apps/<app_id>", methods=["PUT"], endpoint="replace_app"),
                Rule("/api/v1/apps/<app_id>", methods=["DELETE"], endpoint="delete_app"),
                Rule(
                    "/api/v1/apps/<app_id>/lifecycle/<any(activate, deactivate):action>",
                    methods=["POST"],
                    endpoint="app_lifecycle",
                ),
                Rule(
                    "/api/v1/apps/<app_id>/sso/saml/metadata",
                    methods=["GET"],
                    endpoint="app_metadata",
                ),
                Rule(
                    "/api/v1/apps/<app_id>/credentials/keys",
                    methods=["GET"],
                    endpoint="list_app_keys",
                ),
                Rule(
                    "/api/v1/apps/<app_id>/credentials/keys/generate",
                    methods=["POST"],
                    endpoint="generate_app_key",
                ),
                Rule(
                    "/api/v1/apps/<app_id>/credentials/keys/<kid>",
                    methods=["GET"],
                    endpoint="get_app_key",
                ),
                Rule("/api/v1/apps/<app_id>/users", methods=["GET"], endpoint="list_app_users"),
                Rule("/api/v1/apps/<app_id>/users", methods=["POST"], endpoint="assign_user"),
                Rule(
                    "/api/v1/apps/<app_id>/users/<user_id>",
                    methods=["GET"],
                    endpoint="get_app_user",
                ),
                Rule(
                    "/api/v1/apps/<app_id>/users/<user_id>",
                    methods=["POST"],
                    endpoint="update_app_user",
                ),
                Rule(
                    "/api/v1/apps/<app_id>/users/<user_id>",
                    methods=["DELETE"],
                    endpoint="unassign_user",
                ),
                Rule("/api/v1/apps/<app_id>/groups", methods=["GET"], endpoint="list_app_groups"),
                Rule(
                    "/api/v1/apps/<app_id>/groups/<group_id>",
                    methods=["GET"],
                    endpoint="get_app_group",
                ),
                Rule(
                    "/api/v1/apps/<app_id>/groups/<group_id>",
                    methods=["PUT"],
                    endpoint="assign_group",
                ),
                Rule(
                    "/api/v1/apps/<app_id>/groups/<group_id>",
                    methods=["DELETE"],
                    endpoint="unassign_group",
                ),
                Rule("/api/v1/users", methods=["GET"], endpoint="list_users"),
                Rule("/api/v1/users/<user_ref>", methods=["GET"], endpoint="get_user"),
                # User writes (sandbox/okta/users.py).
                Rule("/api/v1/users", methods=["POST"], endpoint="create_user"),
                Rule("/api/v1/users/<user_ref>", methods=["POST"], endpoint="update_user"),
                Rule("/api/v1/users/<user_ref>", methods=["DELETE"], endpoint="delete_user"),
                Rule("/api/v1/users/<user_ref>/roles", methods=["GET"], endpoint="user_roles"),
                Rule("/api/v1/users/<user_ref>/groups", methods=["GET"], endpoint="user_groups"),
                Rule("/api/v1/groups", methods=["GET"], endpoint="list_groups"),
                Rule("/api/v1/groups", methods=["POST"], endpoint="create_group"),
                Rule("/api/v1/groups/<group_id>", methods=["GET"], endpoint="get_group"),
                Rule("/api/v1/groups/<group_id>", methods=["DELETE"], endpoint="delete_group"),
                Rule("/api/v1/groups/<group_id>/users", methods=["GET"], endpoint="group_users"),
                Rule(
                    "/api/v1/groups/<group_id>/users/<user_id>",
                    methods=["PUT"],
                    endpoint="add_group_member",
                ),
                Rule(
                    "/api/v1/groups/<group_id>/users/<user_id>",
                    methods=["DELETE"],
                    endpoint="remove_group_member",
                ),
                Rule(
                    "/sandbox/apps/<app_id>/provisioning",
                    methods=["POST"],
                    endpoint="set_provisioning",
                ),
                Rule(
                    "/sandbox/apps/<app_id>/provisioning",
                    methods=["GET"],
                    endpoint="get_provisioning",
                ),
                Rule("/sandbox/sso/<app_id>", methods=["GET"], endpoint="idp_sign_on"),
            ]
        )

    # -- plumbing --------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        response = self.dispatch(request)
        response.headers["X-Okta-Request-Id"] = uuid.uuid4().hex
        return response(environ, start_response)

    def dispatch(self, request: Request) -> Response:
        adapter = self.url_map.bind_to_environ(request.environ)
        try:
            endpoint, values = adapter.match()
        except NotFound:
            return json_response(not_found(request.path, "Route").body(), 404)
        except MethodNotAllowed:
            error = OktaError(
                405, "E0000022", "The endpoint does not support the provided HTTP method"
            )
            return json_response(error.body(), 405)
        handler: Handler = getattr(self, endpoint)
        if not request.path.startswith("/api/"):
            try:
                return handler(request, **values)
            except OktaError as error:
                return json_response(error.body(), error.status)
        api = self._api_of(request.path)
        limited = api == APPS_API
        wait = 0.0
        try:
            self._authenticate(request, endpoint)
            self.knobs.delay(api)
            if limited:
                wait = self.knobs.throttle_wait(api)
                if wait > 0:
                    raise rate_limited()
            if self.knobs.should_fail(api):
                raise injected_failure()
            response = handler(request, **values)
        except OktaError as error:
            response = json_response(error.body(), error.status)
        except ResourceError as error:
            response = Response(status=error.status)
            response.headers["WWW-Authenticate"] = error.www_authenticate(
                self.org.org_url, request.path
            )
        if limited:
            response.headers.update(self._rate_limit_headers(wait))
        return response

    @staticmethod
    def _api_of(path: str) -> str:
        if path.startswith("/api/v1/apps"):
            return APPS_API
        if path.startswith("/api/v1/groups"):
            return GROUPS_API
        return USERS_API

    def _authenticate(self, request: Request, endpoint: str) -> None:
        header = request.headers.get("Authorization") or ""
        scheme, _, token = header.partition(" ")
        if scheme in OAUTH_SCHEMES:
            self.authorization_server.authorize(
                scheme=scheme,
                token=token.strip(),
                dpop_headers=request.headers.getlist("DPoP"),
                method=request.method,
                path=request.path,
                required_scope=ENDPOINT_SCOPES[endpoint],
            )
            return
        # okta 3.4.6's generated methods send "SSWS<token>" with no space (its Configuration
        # concatenates authorizationMode and token), its request executor "SSWS <token>";
        # Okta takes both.
        token = header.removeprefix(SSWS_SCHEME).strip()
        expected = self.sandbox.endpoints["okta_token"]
        if not header.startswith(SSWS_SCHEME) or not hmac.compare_digest(
            token.encode(), expected.encode()
        ):
            raise invalid_token()

    def _rate_limit_headers(self, wait: float) -> dict[str, str]:
        """X-Rate-Limit-* as Okta sends them: the per-minute limit, what is left, and the epoch
        second when the whole limit is back (the bucket full again)."""
        rate, burst = self.knobs.rate_limits[APPS_API]
        per_second = rate * self.knobs.rate_scale
        limit = max(1, round(per_second * SECONDS_PER_LIMIT_WINDOW))
        bucket = self.knobs.bucket(APPS_API) if self.knobs.rate_limits_enabled else None
        left = bucket.tokens_left() if bucket is not None else float(burst)
        if bucket is not None and per_second > 0:
            # Okta's reset is when the minute's whole limit is back (its limits are per-minute
            # windows), not merely the next call: a client that honours it then has the full
            # quota again, as against Okta.
            until_reset = max(wait, (burst - left) / per_second)
        elif wait > 0:
            until_reset = wait
        else:
            until_reset = SECONDS_PER_LIMIT_WINDOW
        return {
            "X-Rate-Limit-Limit": str(limit),
            "X-Rate-Limit-Remaining": str(min(limit, max(0, math.floor(left)))),
            "X-Rate-Limit-Reset": str(math.ceil(time.time() + until_reset)),
        }

    @staticmethod
    def _body(request: Request) -> dict[str, Any]:
        body = request.get_json(silent=True, force=True) if request.content_length else {}
        if not isinstance(body, dict):
            raise OktaError(400, "E0000003", "The request body was not well-formed.")
        return body

    def _link_headers(
        self, request: Request, next_cursor: str | None, limit: int
    ) -> dict[str, str]:
        """`Link: <...>; rel="self"` and, if more pages follow, `<...after=...>; rel="next"`."""
        base = self.org.org_url + request.path
        params = {key: value for key, value in request.args.items() if key != "after"}
        links = [f'<{base}?{urlencode(params)}>; rel="self"' if params else f'<{base}>; rel="self"']
        if next_cursor is not None:
            params.update({"limit": str(limit), "after": next_cursor})
            links.append(f'<{base}?{urlencode(params)}>; rel="next"')
        return {"Link": ", ".join(links)}

    @staticmethod
    def _limit(request: Request, sizes: tuple[int, int]) -> int:
        default, maximum = sizes
        raw = request.args.get("limit")
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise validation_failed("limit", "limit: must be a number") from None
        return max(1, min(value, maximum))

    def _filtered(
        self,
        request: Request,
        documents: list[dict[str, Any]],
        *,
        q_fields: Callable[[dict[str, Any]], list[str | None]],
        sizes: tuple[int, int],
        extra: Callable[[dict[str, Any], str], Any] | None = None,
        embed: Callable[[dict[str, Any]], None] | None = None,
    ) -> Response:
        """The shared shape of Okta's list endpoints: q, filter, search, limit, after, Link.
        `embed` adds `_embedded` to each document of the page, after the filtering: Okta's
        `search` reads "all properties except for `_embedded`, `_links`, and `objectClass`"."""

        def fields_of(document: dict[str, Any]) -> Callable[[str], Any]:
            def lookup(path: str) -> Any:
                found = extra(document, path) if extra is not None else None
                return found if found is not None else query.json_path(document, path)

            return lookup

        q = request.args.get("q")
        if q:
            documents = [d for d in documents if query.starts_with_any(q, q_fields(d))]
        for parameter in ("filter", "search"):
            expression = request.args.get(parameter)
            if not expression:
                continue
            try:
                groups = query.parse_expression(expression)
            except query.InvalidQuery:
                raise OktaError(400, "E0000031", "Invalid search criteria.") from None
            documents = [d for d in documents if query.matches(groups, fields_of(d))]
        limit = self._limit(request, sizes)
        chunk, next_cursor = query.page(
            documents, key=lambda d: d["id"], limit=limit, after=request.args.get("after")
        )
        if embed is not None:
            for document in chunk:
                embed(document)
        return json_response(chunk, headers=self._link_headers(request, next_cursor, limit))

    # -- the org authorization server ------------------------------------------------------

    def token(self, request: Request) -> Response:
        """POST /oauth2/v1/token for API service apps (sandbox/okta/oauth.py)."""
        try:
            body, headers = self.authorization_server.issue_token(
                dict(request.form.items()), request.headers.getlist("DPoP"), request.method
            )
        except OAuthError as error:
            return json_response(error.body(), error.status, error.headers)
        return json_response(body, headers=headers)

    # -- lookups ---------------------------------------------------------------------------

    def _app(self, app_id: str) -> AwsApp:
        app = self.org.apps.get(app_id)
        if app is None:
            raise not_found(app_id, "AppInstance")
        return app

    def _user(self, reference: str) -> OrgUser:
        if reference == "me":
            return self.org.users[self.org.token_owner_id]
        user = self.org.find_user(reference)
        if user is None:
            raise not_found(reference, "User")
        return user

    def _group(self, group_id: str) -> OrgGroup:
        group = self.org.groups.get(group_id)
        if group is None:
            raise not_found(group_id, "UserGroup")
        return group

    # -- apps ------------------------------------------------------------------------------

    def _custom_saml_fields(
        self, body: dict[str, Any]
    ) -> tuple[str, dict[str, Any], dict[str, Any]]:
        """(label, settings, userNameTemplate) of a custom SAML 2.0 app ("Create App
        Integration" > SAML 2.0): settings.signOn holds the SP's ACS URL and audience, the
        default relay state and the attribute statements (okta-sdk-python 3.4.6,
        okta/models/saml_application_settings_sign_on.py: ssoAcsUrl, audience,
        defaultRelayState, attributeStatements; saml_attribute_statement_expression.py:
        type EXPRESSION, name, namespace, values, each value Okta Expression Language)."""
        label = body.get("label")
        if not isinstance(label, str) or not label.strip():
            raise validation_failed("label", "label: The field cannot be left blank")
        if body.get("signOnMode") != "SAML_2_0":
            raise validation_failed("signOnMode", "signOnMode: a custom app here is SAML_2_0")
        sign_on = dict(((body.get("settings") or {}).get("signOn")) or {})
        causes = [
            f"{key}: The field cannot be left blank"
            for key in ("ssoAcsUrl", "audience")
            if not isinstance(sign_on.get(key), str) or not sign_on[key]
        ]
        relay_state = sign_on.get("defaultRelayState")
        if relay_state is not None and not isinstance(relay_state, str):
            causes.append("defaultRelayState: must be a string")
        statements = sign_on.get("attributeStatements") or []
        names: set[str] = set()
        for statement in statements if isinstance(statements, list) else [None]:
            if (
                not isinstance(statement, dict)
                or statement.get("type", "EXPRESSION") not in SAML_STATEMENT_TYPES
                or not isinstance(statement.get("name"), str)
                or not all(isinstance(v, str) for v in statement.get("values") or [])
            ):
                causes.append("attributeStatements: each needs a type, a name and text values")
                continue
            if statement["name"] in names:
                # "The attribute name must be unique across all user and group attribute
                # statements" (saml_attribute_statement_expression.py, `name`).
                causes.append(f"attributeStatements: {statement['name']} is named twice")
            names.add(statement["name"])
        if causes:
            raise validation_failed("settings.signOn", *causes)
        sign_on["attributeStatements"] = [
            {"type": "EXPRESSION", "namespace": SAML_UNSPECIFIED_NAME_FORMAT, **statement}
            for statement in statements
        ]
        sign_on.setdefault("defaultRelayState", None)
        template = ((body.get("credentials") or {}).get("userNameTemplate")) or {}
        template = {"template": DEFAULT_USERNAME_TEMPLATE, "type": "BUILT_IN", **template}
        return label.strip(), {"app": {}, "signOn": sign_on}, template

    def _app_fields(self, body: dict[str, Any]) -> tuple[str, dict[str, Any], dict[str, Any]]:
        """(label, settings, userNameTemplate) from a create/replace body, validated as Okta
        validates the amazon_aws app; unknown settings.app keys are refused (a misspelt key
        would otherwise be silently ignored)."""
        if body.get("name") != AWS_APP_NAME:
            raise validation_failed(
                "name",
                f"name: the sandbox org offers only the {AWS_APP_NAME} catalog app "
                "(AWS Account Federation)",
            )
        if body.get("signOnMode", "SAML_2_0") != "SAML_2_0":
            raise validation_failed("signOnMode", "signOnMode: amazon_aws signs on with SAML_2_0")
        label = body.get("label")
        if not isinstance(label, str) or not label.strip():
            raise validation_failed("label", "label: The field cannot be left blank")
        requested = body.get("settings") or {}
        if not isinstance(requested, dict):
            raise validation_failed("settings", "settings: must be an object")
        unknown = set(requested.get("app") or {}) - APP_SETTINGS_KEYS
        if unknown:
            raise validation_failed(
                "settings.app",
                *(
                    f"settings.app.{key}: Property is not defined for amazon_aws"
                    for key in sorted(unknown)
                ),
            )
        settings = merge(default_app_settings(), requested)
        app_settings = settings["app"]
        causes = []
        duration = app_settings.get("sessionDuration")
        low, high = SESSION_DURATION_RANGE
        if (
            not isinstance(duration, int)
            or isinstance(duration, bool)
            or not low <= duration <= high
        ):
            causes.append(f"sessionDuration: must be a whole number from {low} to {high}")
        if app_settings.get("awsEnvironmentType") not in AWS_SIGN_IN:
            causes.append(f"awsEnvironmentType: must be one of {', '.join(sorted(AWS_SIGN_IN))}")
        for flag in ("joinAllRoles", "useGroupMapping"):
            if not isinstance(app_settings.get(flag), bool):
                causes.append(f"{flag}: must be true or false")
        if app_settings.get("groupFilter"):
            try:
                group_filter_regex(app_settings["groupFilter"])
            except re.error as error:
                causes.append(f"groupFilter: not a valid regular expression ({error})")
        relay_state = settings["signOn"].get("defaultRelayState")
        if relay_state is not None and not isinstance(relay_state, str):
            causes.append("defaultRelayState: must be a string")
        if causes:
            raise validation_failed("settings.app", *causes)
        template = ((body.get("credentials") or {}).get("userNameTemplate")) or {}
        template = {"template": DEFAULT_USERNAME_TEMPLATE, "type": "BUILT_IN", **template}
        if not supported_username_template(template["template"]):
            raise validation_failed(
                "credentials.userNameTemplate",
                "userNameTemplate.template: the sandbox supports the Okta username and email "
                "formats and their prefixes",
            )
        return label.strip(), settings, template

    def list_apps(self, request: Request) -> Response:
        with self.org.lock:
            apps = list(self.org.apps.values())
            documents = [self.org.app_json(app) for app in apps]
            assigned = {app.id: set(self.org.app_user_ids(app)) for app in apps}
            groups = {app.id: set(app.groups) for app in apps}

        def assignment(document: dict[str, Any], path: str) -> Any:
            # filter=user.id eq "00u..." / group.id eq "00g...": apps assigned to them.
            if path == "user.id":
                return sorted(assigned[document["id"]])
            if path == "group.id":
                return sorted(groups[document["id"]])
            return None

        return self._filtered(
            request,
            documents,
            q_fields=lambda d: [d["name"], d["label"]],
            sizes=APPS_PAGE,
            extra=assignment,
        )

    def create_app(self, request: Request) -> Response:
        body = self._body(request)
        # No name with signOnMode SAML_2_0 makes a custom SAML app, named by Okta.
        custom = "name" not in body
        fields = self._custom_saml_fields if custom else self._app_fields
        label, settings, template = fields(body)
        activate = request.args.get("activate", "true").lower() != "false"
        # Key generation is slow-ish; do it before taking the org lock.
        certificate = issue_signing_certificate(SIGNING_CERT_CN)
        moment = now()
        with self.org.lock:
            kid = secrets.token_urlsafe(32)
            app = AwsApp(
                id=self.org.new_id(APP_ID_PREFIX),
                label=label,
                status="ACTIVE" if activate else "INACTIVE",
                external_key=self.org.new_id(APP_KEY_PREFIX),
                kid=kid,
                certificate=certificate,
                keys={kid: AppKey(certificate, moment)},
                created=moment,
                last_updated=moment,
                settings=settings,
                username_template=template,
                name=self._custom_app_name(label) if custom else AWS_APP_NAME,
                visibility=merge(
                    {
                        "autoLaunch": False,
                        "autoSubmitToolbar": False,
                        "hide": {"iOS": False, "web": False},
                        "appLinks": {"login": True},
                    },
                    body.get("visibility") or {},
                ),
                accessibility=merge(
                    {"selfService": False, "errorRedirectUrl": None, "loginRedirectUrl": None},
                    body.get("accessibility") or {},
                ),
            )
            self.org.apps[app.id] = app
            return json_response(self.org.app_json(app))

    def get_app(self, request: Request, app_id: str) -> Response:
        with self.org.lock:
            return json_response(self.org.app_json(self._app(app_id)))

    def _custom_app_name(self, label: str) -> str:
        """Okta's generated key for a custom app: the org's name, the label's letters and a
        count (as "dev-123456_myapp_1")."""
        slug = re.sub(r"[^a-z0-9]", "", label.lower())[:20] or "app"
        taken = {app.name for app in self.org.apps.values()}
        count = 1
        while f"sandbox_{slug}_{count}" in taken:
            count += 1
        return f"sandbox_{slug}_{count}"

    def replace_app(self, request: Request, app_id: str) -> Response:
        body = self._body(request)
        with self.org.lock:
            custom = self._app(app_id).custom
        fields = self._custom_saml_fields if custom else self._app_fields
        label, settings, template = fields(body)
        kid = ((body.get("credentials") or {}).get("signing") or {}).get("kid")
        with self.org.lock:
            app = self._app(app_id)
            if kid is not None and kid not in app.keys:
                raise validation_failed(
                    "credentials.signing.kid",
                    "kid: The key ID does not match a key credential of this app",
                )
            app.label, app.settings, app.username_template = label, settings, template
            if kid is not None and kid != app.kid:
                # Okta, "Update SAML certificates" (guides/updating-saml-cert): replacing the
                # app with a new credentials.signing.kid makes it sign with that key.
                app.switch_signing_key(kid)
            if isinstance(body.get("visibility"), dict):
                app.visibility = merge(app.visibility, body["visibility"])
            if isinstance(body.get("accessibility"), dict):
                app.accessibility = merge(app.accessibility, body["accessibility"])
            app.last_updated = now()
            return json_response(self.org.app_json(app))

    def delete_app(self, request: Request, app_id: str) -> Response:
        with self.org.lock:
            app = self._app(app_id)
            if app.status == "ACTIVE":
                raise OktaError(
                    403,
                    "E0000056",
                    "Delete application forbidden.",
                    ["Deactivate the application before deleting it."],
                )
            del self.org.apps[app_id]
        return Response(status=204)

    def app_lifecycle(self, request: Request, app_id: str, action: str) -> Response:
        with self.org.lock:
            app = self._app(app_id)
            app.status = "ACTIVE" if action == "activate" else "INACTIVE"
            app.last_updated = now()
        return json_response({})

    def app_metadata(self, request: Request, app_id: str) -> Response:
        with self.org.lock:
            app = self._app(app_id)
            # ?kid= names any of the app's key credentials (the metadata an admin hands the
            # service provider before switching to it); without it, the signing key's.
            kid = request.args.get("kid", app.kid)
            if kid not in app.keys:
                raise not_found(kid, "AppInstanceKey")
            document = idp_metadata(
                entity_id=issuer_of(app),
                certificate=app.keys[kid].certificate,
                sso_url=sso_url_of(self.org, app),
            )
        # Okta's management OpenAPI: previewSAMLmetadataForApplication answers 200 in text/xml.
        return Response(document, status=200, content_type="text/xml")

    def list_app_keys(self, request: Request, app_id: str) -> Response:
        with self.org.lock:
            app = self._app(app_id)
            return json_response([self.org.key_json(kid, key) for kid, key in app.keys.items()])

    def get_app_key(self, request: Request, app_id: str, kid: str) -> Response:
        with self.org.lock:
            key = self._app(app_id).keys.get(kid)
            if key is None:
                raise not_found(kid, "AppInstanceKey")
            return json_response(self.org.key_json(kid, key))

    def generate_app_key(self, request: Request, app_id: str) -> Response:
        """POST .../credentials/keys/generate?validityYears=N: a new key credential the app does
        not sign with until credentials.signing.kid names it (Okta Apps API reference, "Generate
        new Application Key Credential": validityYears required; "out of range (2 - 10 years)"
        is an error; 201 Created)."""
        try:
            years = int(request.args.get("validityYears", ""))
        except ValueError:
            years = 0
        low, high = KEY_VALIDITY_YEARS
        if not low <= years <= high:
            raise validation_failed(
                "validityYears", f"validityYears: must be a whole number from {low} to {high}"
            )
        certificate = issue_signing_certificate(
            SIGNING_CERT_CN, not_after=now() + dt.timedelta(days=365 * years)
        )
        with self.org.lock:
            app = self._app(app_id)
            kid = secrets.token_urlsafe(32)
            app.keys[kid] = AppKey(certificate, now())
            return json_response(self.org.key_json(kid, app.keys[kid]), 201)

    # -- app assignments -------------------------------------------------------------------

    def _app_user_profile(self, app: AwsApp, profile: Any) -> dict[str, Any]:
        """An assignment profile, checked as Okta checks the amazon_aws app user schema: role and
        samlRoles are enums of the roles downloaded through the Provisioning tab."""
        if profile is None:
            return {}
        if not isinstance(profile, dict):
            raise validation_failed("profile", "profile: must be an object")
        unknown = set(profile) - APP_USER_PROFILE_KEYS
        if unknown:
            raise validation_failed(
                "profile",
                *(
                    f"{key}: Property name is not defined in the app user profile"
                    for key in sorted(unknown)
                ),
            )
        selectable = app.selectable_roles
        saml_roles = profile.get("samlRoles")
        causes = []
        if saml_roles is not None:
            if not isinstance(saml_roles, list) or not all(isinstance(r, str) for r in saml_roles):
                causes.append("samlRoles: must be a list of role names")
            elif any(role not in selectable for role in saml_roles):
                causes.append("samlRoles: Does not match required enum values")
        role = profile.get("role")
        if role is not None and role not in selectable:
            causes.append("role: Does not match required enum values")
        if causes:
            raise validation_failed("profile", *causes)
        return dict(profile)

    def list_app_users(self, request: Request, app_id: str) -> Response:
        """`expand=user` embeds each person's User object in `_embedded.user` (okta-sdk-python
        3.4.6, okta/api/application_users_api.py, list_application_users: "An optional query
        parameter to return the corresponding User object in the `_embedded` property. Valid
        value: `user`"; okta/models/app_user.py, `_embedded`)."""
        expand_user = request.args.get("expand") == "user"
        with self.org.lock:
            app = self._app(app_id)
            documents = []
            for user_id in self.org.app_user_ids(app):
                user = self.org.users[user_id]
                document = self.org.app_user_json(app, user)
                if expand_user:
                    document["_embedded"] = {"user": self.org.user_json(user)}
                documents.append(document)
            profiles = {u.id: u for u in self.org.users.values()}

        def q_fields(document: dict[str, Any]) -> list[str | None]:
            user = profiles[document["id"]]
            return [
                document["credentials"]["userName"],
                user.first_name,
                user.last_name,
                user.email,
            ]

        return self._filtered(request, documents, q_fields=q_fields, sizes=APP_USERS_PAGE)

    def assign_user(self, request: Request, app_id: str) -> Response:
        body = self._body(request)
        with self.org.lock:
            app = self._app(app_id)
            user_id = body.get("id")
            if not isinstance(user_id, str):
                raise validation_failed("id", "id: The field cannot be left blank")
            user = self._user(user_id)
            if body.get("scope", "USER") != "USER":
                raise validation_failed("scope", "scope: only USER can be assigned directly")
            profile = self._app_user_profile(app, body.get("profile"))
            user_name = (body.get("credentials") or {}).get("userName")
            moment = now()
            existing = app.users.get(user.id)
            app.users[user.id] = AppUser(
                user_id=user.id,
                user_name=user_name or (existing.user_name if existing else None),
                profile=profile,
                created=existing.created if existing else moment,
                last_updated=moment,
            )
            return json_response(self.org.app_user_json(app, user))

    def get_app_user(self, request: Request, app_id: str, user_id: str) -> Response:
        with self.org.lock:
            app = self._app(app_id)
            user = self._user(user_id)
            if not self.org.is_assigned(app, user.id):
                raise not_found(user_id, "AppUser")
            return json_response(self.org.app_user_json(app, user))

    def update_app_user(self, request: Request, app_id: str, user_id: str) -> Response:
        body = self._body(request)
        with self.org.lock:
            app = self._app(app_id)
            user = self._user(user_id)
            if not self.org.is_assigned(app, user.id):
                raise not_found(user_id, "AppUser")
            current = self.org.app_user_json(app, user)
            profile = self._app_user_profile(
                app, {**current["profile"], **(body.get("profile") or {})}
            )
            existing = app.users.get(user.id)
            moment = now()
            # Editing a group-assigned person's profile overrides it: they become assigned directly.
            app.users[user.id] = AppUser(
                user_id=user.id,
                user_name=(body.get("credentials") or {}).get("userName")
                or (existing.user_name if existing else None),
                profile=profile,
                created=existing.created if existing else moment,
                last_updated=moment,
            )
            return json_response(self.org.app_user_json(app, user))

    def unassign_user(self, request: Request, app_id: str, user_id: str) -> Response:
        with self.org.lock:
            app = self._app(app_id)
            user = self._user(user_id)
            if app.users.pop(user.id, None) is None:
                raise not_found(user_id, "AppUser")
        return Response(status=204)

    def list_app_groups(self, request: Request, app_id: str) -> Response:
        with self.org.lock:
            app = self._app(app_id)
            documents = [self.org.app_group_json(app, a) for a in app.groups.values()]
            names = {g.id: g.name for g in self.org.groups.values()}
        return self._filtered(
            request, documents, q_fields=lambda d: [names.get(d["id"])], sizes=APP_GROUPS_PAGE
        )

    def get_app_group(self, request: Request, app_id: str, group_id: str) -> Response:
        with self.org.lock:
            app = self._app(app_id)
            assignment = app.groups.get(group_id)
            if assignment is None:
                raise not_found(group_id, "AppGroup")
            return json_response(self.org.app_group_json(app, assignment))

    def assign_group(self, request: Request, app_id: str, group_id: str) -> Response:
        body = self._body(request)
        with self.org.lock:
            app = self._app(app_id)
            self._group(group_id)
            profile = self._app_user_profile(app, body.get("profile"))
            existing = app.groups.get(group_id)
            priority = body.get("priority")
            if not isinstance(priority, int):
                priority = existing.priority if existing else len(app.groups)
            app.groups[group_id] = AppGroup(group_id, priority, profile, now())
            return json_response(self.org.app_group_json(app, app.groups[group_id]))

    def unassign_group(self, request: Request, app_id: str, group_id: str) -> Response:
        with self.org.lock:
            app = self._app(app_id)
            if app.groups.pop(group_id, None) is None:
                raise not_found(group_id, "AppGroup")
        return Response(status=204)

    # -- users and groups ------------------------------------------------------------------

    def list_users(self, request: Request) -> Response:
        with self.org.lock:
            documents = [self.org.user_json(user) for user in self.org.users.values()]
        return self._filtered(
            request,
            documents,
            q_fields=lambda d: [
                d["profile"]["firstName"],
                d["profile"]["lastName"],
                d["profile"]["email"],
            ],
            sizes=USERS_PAGE,
        )

    def get_user(self, request: Request, user_ref: str) -> Response:
        with self.org.lock:
            return json_response(self.org.user_json(self._user(user_ref)))

    def create_user(self, request: Request) -> Response:
        activate = request.args.get("activate", "true").lower() != "false"
        try:
            user = okta_users.create_user(self.org, self._body(request), activate=activate)
        except okta_users.ProfileError as error:
            raise validation_failed(error.field, *error.causes) from error
        with self.org.lock:
            return json_response(self.org.user_json(user))

    def update_user(self, request: Request, user_ref: str) -> Response:
        with self.org.lock:
            user = self._user(user_ref)
        try:
            okta_users.update_profile(self.org, user, self._body(request))
        except okta_users.ProfileError as error:
            raise validation_failed(error.field, *error.causes) from error
        with self.org.lock:
            return json_response(self.org.user_json(user))

    def delete_user(self, request: Request, user_ref: str) -> Response:
        with self.org.lock:
            okta_users.delete_user(self.org, self._user(user_ref))
        return Response(status=204)

    def user_roles(self, request: Request, user_ref: str) -> Response:
        with self.org.lock:
            return json_response(self.org.roles_json(self._user(user_ref)))

    def user_groups(self, request: Request, user_ref: str) -> Response:
        with self.org.lock:
            user = self._user(user_ref)
            return json_response(
                [self.org.group_json(self.org.groups[g]) for g in self.org.group_ids_of(user.id)]
            )

    def list_groups(self, request: Request) -> Response:
        """`expand=stats` embeds each group's statistics in `_embedded.stats`; without it a group
        has no `_embedded` (okta/okta-management-openapi-spec fdda229,
        dist/current/management-minimal.yaml, listGroups `expand`: "If specified, additional
        metadata is included in the response. Possible values are `stats` and `app` ... the
        number of users within a group ... is listed as the `_embedded.stats.usersCount` value";
        the Group schema's `_embedded.stats`: usersCount, appsCount, groupPushMappingsCount,
        hasAdminPrivlege; okta-sdk-python 3.4.6 okta/models/group_embedded_stats.py). Not
        modelled: hasAdminPrivlege (so spelled there; the sandbox has no group-level role
        assignments), and `expand=app` (the app a group is sourced from; no sandbox group is an
        APP_GROUP): other values are ignored, as before."""
        expand_stats = request.args.get("expand") == "stats"
        with self.org.lock:
            documents = [self.org.group_json(group) for group in self.org.groups.values()]
            stats = {
                group.id: self.org.group_stats(group)
                for group in self.org.groups.values()
                if expand_stats
            }

        def embed_stats(document: dict[str, Any]) -> None:
            document["_embedded"] = {"stats": stats[document["id"]]}

        return self._filtered(
            request,
            documents,
            q_fields=lambda d: [d["profile"]["name"]],
            sizes=GROUPS_PAGE,
            embed=embed_stats if expand_stats else None,
        )

    def create_group(self, request: Request) -> Response:
        profile = self._body(request).get("profile") or {}
        name = profile.get("name") if isinstance(profile, dict) else None
        if not isinstance(name, str) or not name.strip():
            raise validation_failed("profile.name", "name: The field cannot be left blank")
        with self.org.lock:
            if any(g.name.lower() == name.lower() for g in self.org.groups.values()):
                raise validation_failed(
                    "name",
                    "name: An object with this field already exists in the current organization",
                )
            group = self.org.add_group(name, str(profile.get("description") or ""))
            return json_response(self.org.group_json(group))

    def get_group(self, request: Request, group_id: str) -> Response:
        with self.org.lock:
            return json_response(self.org.group_json(self._group(group_id)))

    def delete_group(self, request: Request, group_id: str) -> Response:
        with self.org.lock:
            group = self._group(group_id)
            if group.type != "OKTA_GROUP":
                raise OktaError(
                    403,
                    "E0000006",
                    "You do not have permission to perform the requested action",
                    [f"{group.name} is a built-in group"],
                )
            del self.org.groups[group_id]
            for app in self.org.apps.values():
                app.groups.pop(group_id, None)
        return Response(status=204)

    def group_users(self, request: Request, group_id: str) -> Response:
        with self.org.lock:
            group = self._group(group_id)
            documents = [self.org.user_json(self.org.users[u]) for u in group.member_ids]
        limit = self._limit(request, GROUP_USERS_PAGE)
        chunk, next_cursor = query.page(
            documents, key=lambda d: d["id"], limit=limit, after=request.args.get("after")
        )
        return json_response(chunk, headers=self._link_headers(request, next_cursor, limit))

    def _change_membership(self, group_id: str, user_id: str, *, add: bool) -> Response:
        with self.org.lock:
            group = self._group(group_id)
            user = self._user(user_id)
            if group.type != "OKTA_GROUP":
                raise OktaError(
                    403,
                    "E0000006",
                    "You do not have permission to perform the requested action",
                    [f"{group.name} membership is managed by Okta"],
                )
            # lastMembershipUpdated: "Timestamp when the Group's memberships were last updated"
            # (Okta Groups API, the Group object): it moves when a member comes or goes, and
            # not for a PUT of someone already in the group (nothing was updated).
            if add and user.id not in group.member_ids:
                group.member_ids.append(user.id)
                group.last_membership_updated = now()
            elif not add and user.id in group.member_ids:
                group.member_ids.remove(user.id)
                group.last_membership_updated = now()
        return Response(status=204)

    def add_group_member(self, request: Request, group_id: str, user_id: str) -> Response:
        return self._change_membership(group_id, user_id, add=True)

    def remove_group_member(self, request: Request, group_id: str, user_id: str) -> Response:
        return self._change_membership(group_id, user_id, add=False)

    # -- sandbox-only hooks ----------------------------------------------------------------

    def _provisioning_json(self, app: AwsApp) -> dict[str, Any]:
        download = app.provisioning
        if download is None:
            return {"appId": app.id, "enabled": False}
        return {
            "appId": app.id,
            "enabled": True,
            "accessKeyId": download.access_key_id,
            "updateUserAttributes": download.update_user_attributes,
            "roles": [{"name": name, "arn": arn} for name, arn in download.roles.items()],
            "samlRoles": sorted(app.selectable_roles),
            "accountAliases": download.account_aliases,
            "refreshed": download.refreshed.isoformat(),
        }

    def set_provisioning(self, request: Request, app_id: str) -> Response:
        """Stands in for the admin typing the IAM user's key into Provisioning > API Integration
        and pressing Test/Save (Okta has no public API for it); posting again is "Refresh
        Application Data". The AWS calls happen here, so the key shows as used."""
        body = self._body(request)
        access_key_id, secret = body.get("accessKeyId"), body.get("secretAccessKey")
        if not isinstance(access_key_id, str) or not isinstance(secret, str):
            raise validation_failed(
                "accessKeyId", "accessKeyId and secretAccessKey are both required"
            )
        with self.org.lock:
            self._app(app_id)
        endpoints = self.sandbox.endpoints
        try:
            roles, aliases = download_roles(
                endpoint_url=endpoints["aws_endpoint_url"],
                region=endpoints["aws_region"],
                ca_bundle=endpoints["ca_bundle"],
                access_key_id=access_key_id,
                secret_access_key=secret,
            )
        except RoleDownloadFailed as error:
            raise validation_failed("Provisioning", f"Verification failed: {error}") from None
        with self.org.lock:
            app = self._app(app_id)
            app.provisioning = RoleDownload(
                access_key_id=access_key_id,
                secret_access_key=secret,
                update_user_attributes=body.get("updateUserAttributes") is True,
                roles=roles,
                account_aliases=aliases,
                refreshed=dt.datetime.now(dt.UTC),
            )
            return json_response(self._provisioning_json(app))

    def get_provisioning(self, request: Request, app_id: str) -> Response:
        with self.org.lock:
            return json_response(self._provisioning_json(self._app(app_id)))

    def idp_sign_on(self, request: Request, app_id: str) -> Response:
        """What a person clicking the app's tile gets: a form posting a signed SAML response to
        the AWS sign-in endpoint (JSON with Accept: application/json)."""
        wants_json = (
            request.accept_mimetypes.best_match(["text/html", "application/json"])
            == "application/json"
        )

        def refuse(status: int, code: str, title: str, message: str) -> Response:
            if wants_json:
                return json_response(OktaError(status, code, message).body(), status)
            return Response(error_page(title, message), status=status, content_type="text/html")

        login = request.args.get("user", "")
        with self.org.lock:
            app = self.org.apps.get(app_id)
            user = self.org.find_user(login) if login else None
            if app is None or app.status != "ACTIVE":
                return refuse(404, "E0000007", "Page not found", "This app is not available.")
            if user is None or user.status != "ACTIVE":
                return refuse(404, "E0000007", "Sign-in failed", f"No active Okta user {login!r}.")
            if not self.org.is_assigned(app, user.id):
                return refuse(
                    403,
                    "E0000006",
                    "403 - Access denied",
                    f"Sorry, you can't access {app.label} because you are not assigned this "
                    "app in Okta.",
                )
            if app.custom:
                # Not modelled: a custom SAML app's assertion is built from its attribute
                # statements (sandbox/BEHAVIOURS.md, "Custom SAML 2.0 apps").
                return refuse(
                    501, "E0000060", "Not modelled", "The sandbox signs on to amazon_aws only."
                )
            label = app.label
        result = sign_on(self.org, app, user, action=self.sandbox.endpoints["aws_signin_url"])
        if wants_json:
            return json_response(
                {
                    "action": result.action,
                    "SAMLResponse": result.saml_response,
                    "RelayState": result.relay_state,
                }
            )
        return Response(form_page(result, app_label=label), content_type="text/html")


def build_okta_app(sandbox: Sandbox) -> OktaSandboxApp:
    """The sandbox's Okta org, seeded with the shared directory (sandbox.directory), and an API
    service app for the wizard's OAuth connection (its key and client ID go into the endpoints
    file, as an admin copies them from the Admin Console)."""
    org = OktaOrg(
        org_url=sandbox.endpoints["okta_org_url"],
        domain=OKTA_DOMAIN,
        agents=sandbox.knobs.directory_agents,
        seed=sandbox.knobs.seed,
    )
    app = OktaSandboxApp(sandbox, org)
    key = new_service_app_key()
    service_app = app.authorization_server.add_service_app(
        SERVICE_APP_LABEL, public_jwks=[key.public_jwk], scopes=list(SERVICE_APP_SCOPES)
    )
    sandbox.endpoints.update(
        okta_client_id=service_app.client_id,
        okta_key_id=key.kid,
        okta_private_key=key.private_pem,
        okta_scopes=" ".join(SERVICE_APP_SCOPES),
    )
    return app
