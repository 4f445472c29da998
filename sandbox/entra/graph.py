"""The Microsoft Graph v1.0 subset the Entra steps call, served from the sandbox tenant."""

from __future__ import annotations

import copy
import datetime as dt
import json
import math
import re
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from werkzeug.wrappers import Request, Response

from sandbox.entra import delta, directory_writes
from sandbox.entra.access_tokens import InvalidToken, TokenSigner
from sandbox.entra.odata import Query, QueryError, encode_skiptoken, project
from sandbox.entra.tenant import (
    APPLICATION_TEMPLATES,
    USER_DEFAULT_PROPERTIES,
    GraphError,
    Tenant,
    bad_request,
    not_found,
)
from sandbox.knobs import Knobs

READ_API = "graph:read"
WRITE_API = "graph:write"
# Throttled and unavailable answers carry Retry-After in whole seconds, as Graph's do: the Microsoft
# Graph throttling guidance (learn.microsoft.com/graph/throttling: "A suggested wait time is
# returned in the response header of the failed request"; 429 TooManyRequests, and 503 for an
# overloaded service) and real answers quoted on Microsoft Q&A (question 1138873: 429,
# "TooManyRequests", "... Please try again later.", Retry-After: 5).
# Seconds a client is told to wait after an injected failure.
INJECTED_FAILURE_RETRY_AFTER_S = 1

# Application permissions that satisfy each kind of call (Graph permissions reference; a
# ReadWrite permission covers the matching Read). A route needs one permission from each set.
APPLICATION_READ = frozenset(
    {
        "Application.Read.All",
        "Application.ReadWrite.All",
        "Application.ReadWrite.OwnedBy",
        "Directory.Read.All",
        "Directory.ReadWrite.All",
    }
)
APPLICATION_WRITE = frozenset({"Application.ReadWrite.All", "Application.ReadWrite.OwnedBy"})
ASSIGNMENT_WRITE = frozenset({"AppRoleAssignment.ReadWrite.All"})
ASSIGNMENT_READ = APPLICATION_READ | ASSIGNMENT_WRITE
POLICY_READ = frozenset({"Policy.Read.All", "Policy.ReadWrite.ApplicationConfiguration"})
POLICY_WRITE = frozenset({"Policy.ReadWrite.ApplicationConfiguration"})
USER_READ = frozenset(
    {"User.Read.All", "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"}
)
GROUP_READ = frozenset(
    {
        "Group.Read.All",
        "Group.ReadWrite.All",
        "GroupMember.Read.All",
        "Directory.Read.All",
        "Directory.ReadWrite.All",
    }
)
# Graph permissions reference: creating and updating users, and changing group members.
USER_WRITE = frozenset({"User.ReadWrite.All", "Directory.ReadWrite.All"})
GROUP_MEMBER_WRITE = frozenset(
    {"GroupMember.ReadWrite.All", "Group.ReadWrite.All", "Directory.ReadWrite.All"}
)

Handler = Callable[[Request, dict[str, str]], Response]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: str  # name of a GraphApi method
    permissions: tuple[frozenset[str], ...]
    write: bool


def _entity(collection: str, name: str = "id") -> str:
    """`/collection/{id}` or `/collection(appId='{appId}')` (Graph's alternate key)."""
    return rf"/{collection}(?:/(?P<{name}>[^/(]+)|\(appId='(?P<app_id>[^']+)'\))"


def _user_key() -> str:
    """`/users/{id or UPN}` or `/users('{UPN}')`, the form for UPNs with quotes in them."""
    return r"/users(?:/(?P<id>[^/(']+[^/]*)|\('(?P<quoted>(?:[^']|'')+)'\))"


# Type casts: msgraph-sdk sends the short form "/graph.user".
CAST = r"(?:/(?:microsoft\.)?graph\.(?P<cast>user|group))?"
ROUTES: list[tuple[str, str, str, tuple[frozenset[str], ...]]] = [
    ("GET", r"/applicationTemplates", "list_templates", (APPLICATION_READ,)),
    ("GET", r"/applicationTemplates/(?P<id>[^/]+)", "get_template", (APPLICATION_READ,)),
    (
        "POST",
        r"/applicationTemplates/(?P<id>[^/]+)/instantiate",
        "instantiate",
        (APPLICATION_WRITE,),
    ),
    ("GET", r"/applications", "list_applications", (APPLICATION_READ,)),
    ("GET", _entity("applications"), "get_application", (APPLICATION_READ,)),
    ("PATCH", _entity("applications"), "patch_application", (APPLICATION_WRITE,)),
    ("DELETE", _entity("applications"), "delete_application", (APPLICATION_WRITE,)),
    ("GET", r"/servicePrincipals", "list_service_principals", (APPLICATION_READ,)),
    ("GET", _entity("servicePrincipals"), "get_service_principal", (APPLICATION_READ,)),
    ("PATCH", _entity("servicePrincipals"), "patch_service_principal", (APPLICATION_WRITE,)),
    ("DELETE", _entity("servicePrincipals"), "delete_service_principal", (APPLICATION_WRITE,)),
    (
        "POST",
        r"/servicePrincipals/(?P<id>[^/]+)/addTokenSigningCertificate",
        "add_token_signing_certificate",
        (APPLICATION_WRITE,),
    ),
    (
        "GET",
        r"/servicePrincipals/(?P<id>[^/]+)/appRoleAssignedTo",
        "list_assignments",
        (ASSIGNMENT_READ,),
    ),
    (
        "POST",
        r"/servicePrincipals/(?P<id>[^/]+)/appRoleAssignedTo",
        "assign",
        (ASSIGNMENT_WRITE,),
    ),
    (
        "GET",
        r"/servicePrincipals/(?P<id>[^/]+)/appRoleAssignedTo/(?P<assignment>[^/]+)",
        "get_assignment",
        (ASSIGNMENT_READ,),
    ),
    (
        "DELETE",
        r"/servicePrincipals/(?P<id>[^/]+)/appRoleAssignedTo/(?P<assignment>[^/]+)",
        "unassign",
        (ASSIGNMENT_WRITE,),
    ),
    (
        "GET",
        r"/servicePrincipals/(?P<id>[^/]+)/claimsMappingPolicies",
        "list_linked_policies",
        (POLICY_READ, APPLICATION_READ),
    ),
    (
        "GET",
        r"/servicePrincipals/(?P<id>[^/]+)/claimsMappingPolicies/\$ref",
        "list_linked_policy_refs",
        (POLICY_READ, APPLICATION_READ),
    ),
    (
        "POST",
        r"/servicePrincipals/(?P<id>[^/]+)/claimsMappingPolicies/\$ref",
        "link_policy",
        (POLICY_WRITE, APPLICATION_WRITE),
    ),
    (
        "DELETE",
        r"/servicePrincipals/(?P<id>[^/]+)/claimsMappingPolicies/(?P<policy>[^/]+)/\$ref",
        "unlink_policy",
        (POLICY_WRITE, APPLICATION_WRITE),
    ),
    ("GET", r"/policies/claimsMappingPolicies", "list_policies", (POLICY_READ,)),
    ("POST", r"/policies/claimsMappingPolicies", "create_policy", (POLICY_WRITE,)),
    ("GET", r"/policies/claimsMappingPolicies/(?P<id>[^/]+)", "get_policy", (POLICY_READ,)),
    ("PATCH", r"/policies/claimsMappingPolicies/(?P<id>[^/]+)", "patch_policy", (POLICY_WRITE,)),
    ("DELETE", r"/policies/claimsMappingPolicies/(?P<id>[^/]+)", "delete_policy", (POLICY_WRITE,)),
    (
        "GET",
        r"/policies/claimsMappingPolicies/(?P<id>[^/]+)/appliesTo",
        "list_policy_targets",
        (POLICY_READ, APPLICATION_READ),
    ),
    # Delta queries (sandbox/entra/delta.py); before /users/{id} and /groups/{id}, which the
    # segment "delta()" would otherwise match. msgraph-sdk sends "/groups/delta()".
    ("GET", r"/users/(?:microsoft\.graph\.)?delta(?:\(\))?", "users_delta", (USER_READ,)),
    ("GET", r"/groups/(?:microsoft\.graph\.)?delta(?:\(\))?", "groups_delta", (GROUP_READ,)),
    ("GET", r"/users", "list_users", (USER_READ,)),
    ("GET", _user_key(), "get_user", (USER_READ,)),
    ("GET", _user_key() + r"/memberOf" + CAST, "list_user_groups", (USER_READ, GROUP_READ)),
    (
        "GET",
        _user_key() + r"/transitiveMemberOf" + CAST,
        "list_user_groups_transitive",
        (USER_READ, GROUP_READ),
    ),
    (
        "GET",
        _user_key() + r"/appRoleAssignments",
        "list_user_assignments",
        (USER_READ | ASSIGNMENT_READ,),
    ),
    ("GET", r"/groups", "list_groups", (GROUP_READ,)),
    ("GET", r"/groups/(?P<id>[^/]+)", "get_group", (GROUP_READ,)),
    ("GET", r"/groups/(?P<id>[^/]+)/members" + CAST, "list_members", (GROUP_READ,)),
    (
        "GET",
        r"/groups/(?P<id>[^/]+)/transitiveMembers" + CAST,
        "list_transitive_members",
        (GROUP_READ,),
    ),
    # Directory writes (sandbox/entra/directory_writes.py).
    ("POST", r"/users", "create_user", (USER_WRITE,)),
    ("PATCH", _user_key(), "update_user", (USER_WRITE,)),
    ("DELETE", _user_key(), "delete_user", (USER_WRITE,)),
    ("POST", r"/groups/(?P<id>[^/]+)/members/\$ref", "add_member", (GROUP_MEMBER_WRITE,)),
    (
        "DELETE",
        r"/groups/(?P<id>[^/]+)/members/(?P<member>[^/]+)/\$ref",
        "remove_member",
        (GROUP_MEMBER_WRITE,),
    ),
]


def _compile(routes: Sequence[tuple[str, str, str, tuple[frozenset[str], ...]]]) -> list[Route]:
    return [
        Route(
            method=method,
            # Graph resolves segment names case-insensitively (/serviceprincipals works too).
            pattern=re.compile(pattern + r"/?", re.IGNORECASE),
            handler=handler,
            permissions=permissions,
            write=method in {"POST", "PATCH", "DELETE", "PUT"},
        )
        for method, pattern, handler, permissions in routes
    ]


COMPILED_ROUTES = _compile(ROUTES)


class GraphApi:
    """Routes /v1.0/... requests: bearer token, permissions, knobs, then the tenant."""

    def __init__(self, tenant: Tenant, signer: TokenSigner, knobs: Knobs) -> None:
        self.tenant = tenant
        self.signer = signer
        self.knobs = knobs

    # Plumbing -----------------------------------------------------------------------------

    def __call__(self, request: Request, path: str) -> Response:
        request_id = str(uuid.uuid4())
        try:
            response = self._dispatch(request, path)
        except GraphError as error:
            response = self._error_response(request, error, request_id)
        except QueryError as error:
            response = self._error_response(
                request, GraphError(400, error.code, str(error)), request_id
            )
        response.headers["request-id"] = request_id
        response.headers["client-request-id"] = request.headers.get("client-request-id", request_id)
        return response

    def _dispatch(self, request: Request, path: str) -> Response:
        allowed_methods = []
        for route in COMPILED_ROUTES:
            match = route.pattern.fullmatch(path)
            if match is None:
                continue
            if route.method != request.method:
                allowed_methods.append(route.method)
                continue
            self._authorize(request, route)
            api = WRITE_API if route.write else READ_API
            self.knobs.delay(api)
            if self.knobs.should_fail(api):
                raise GraphError(
                    503,
                    "serviceNotAvailable",
                    "The service is temporarily unavailable. Retry after the Retry-After delay.",
                    {"Retry-After": str(INJECTED_FAILURE_RETRY_AFTER_S)},
                )
            wait = self.knobs.throttle_wait(api)
            if wait > 0:
                raise GraphError(
                    429,
                    "TooManyRequests",
                    "Too many requests from this application. Please try again later.",
                    {"Retry-After": str(max(1, math.ceil(wait)))},
                )
            groups = {key: value for key, value in match.groupdict().items() if value is not None}
            handler: Handler = getattr(self, route.handler)
            return handler(request, groups)
        if allowed_methods:
            raise GraphError(
                405, "Request_BadRequest", f"The HTTP method '{request.method}' is not allowed."
            )
        raise GraphError(
            400,
            "BadRequest",
            f"Resource not found for the segment '{path.strip('/').split('/')[0]}'.",
        )

    def _authorize(self, request: Request, route: Route) -> None:
        header = request.headers.get("Authorization", "")
        if not header.lower().startswith("bearer ") or not header[7:].strip():
            raise GraphError(401, "InvalidAuthenticationToken", "Access token is empty.")
        try:
            claims = self.signer.verify(header[7:].strip(), tenant_id=self.tenant.tenant_id)
        except InvalidToken as error:
            raise GraphError(401, "InvalidAuthenticationToken", str(error)) from error
        granted = set(claims.get("roles") or [])
        if not all(granted & needed for needed in route.permissions):
            raise GraphError(
                403,
                "Authorization_RequestDenied",
                "Insufficient privileges to complete the operation.",
            )

    def _error_response(self, request: Request, error: GraphError, request_id: str) -> Response:
        body = {
            "error": {
                "code": error.code,
                "message": error.message,
                "innerError": {
                    "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S"),
                    "request-id": request_id,
                    "client-request-id": request.headers.get("client-request-id", request_id),
                },
            }
        }
        headers = dict(error.headers)
        if error.status == 401:
            headers["WWW-Authenticate"] = (
                'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/'
                'oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000"'
            )
        return self._json(request, body, status=error.status, headers=headers)

    @staticmethod
    def _json(
        request: Request,
        body: Any,
        *,
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> Response:
        return Response(
            json.dumps(body),
            status=status,
            headers=headers or {},
            content_type="application/json;odata.metadata=minimal;odata.streaming=true;"
            "IEEE754Compatible=false;charset=utf-8",
        )

    @staticmethod
    def _no_content() -> Response:
        return Response(status=204)

    @staticmethod
    def _body(request: Request) -> dict[str, Any]:
        try:
            body = json.loads(request.get_data(as_text=True) or "{}")
        except ValueError as error:
            raise bad_request("Unable to read JSON request payload.", "BadRequest") from error
        if not isinstance(body, dict):
            raise bad_request("Unable to read JSON request payload.", "BadRequest")
        return body

    def _context(self, request: Request, fragment: str) -> str:
        return f"{request.host_url}v1.0/$metadata#{fragment}"

    def _entity(
        self,
        request: Request,
        obj: dict[str, Any],
        context: str,
        default: Sequence[str] | None = None,
        status: int = 200,
    ) -> Response:
        query = Query.from_args(dict(request.args), eventual_consistency=False)
        body = {
            "@odata.context": self._context(request, context),
            **project(copy.deepcopy(obj), query.select, default),
        }
        return self._json(request, body, status=status)

    def _collection(
        self,
        request: Request,
        objects: Sequence[dict[str, Any]],
        context: str,
        default: Sequence[str] | None = None,
    ) -> Response:
        """One page of a collection, with @odata.nextLink while more remain."""
        eventual = request.headers.get("ConsistencyLevel", "").lower() == "eventual"
        args = dict(request.args)
        query = Query.from_args(args, eventual_consistency=eventual)
        with self.tenant.lock:
            found = copy.deepcopy(query.matching(objects))
        page = found[query.offset : query.offset + query.top]
        body: dict[str, Any] = {"@odata.context": self._context(request, context)}
        if query.count:
            body["@odata.count"] = len(found)
        if query.offset + query.top < len(found):
            args["$skiptoken"] = encode_skiptoken(query.offset + query.top)
            body["@odata.nextLink"] = (
                request.base_url + "?" + urlencode(args, quote_via=quote, safe="$'(),:")
            )
        body["value"] = [project(obj, query.select, default) for obj in page]
        return self._json(request, body)

    def _visible(self, store: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
        self.tenant.mirror_app_roles()
        with self.tenant.lock:
            return [obj for obj in store.values() if self.tenant.is_visible(obj["id"])]

    def _user(self, groups: dict[str, str]) -> dict[str, Any]:
        key = groups.get("id") or groups.get("quoted", "").replace("''", "'")
        return self.tenant.find_user(key)

    def _directory_objects(self, ids: Sequence[str], cast: str | None) -> list[dict[str, Any]]:
        objects = [self.tenant.directory_object(object_id) for object_id in ids]
        found = [obj for obj in objects if obj is not None]
        if cast:
            found = [obj for obj in found if obj["@odata.type"] == f"#microsoft.graph.{cast}"]
        return [
            {key: obj[key] for key in ("@odata.type", *USER_DEFAULT_PROPERTIES)}
            if obj["@odata.type"] == "#microsoft.graph.user"
            else obj
            for obj in found
        ]

    # Application templates ----------------------------------------------------------------

    def list_templates(self, request: Request, groups: dict[str, str]) -> Response:
        return self._collection(request, APPLICATION_TEMPLATES, "applicationTemplates")

    def get_template(self, request: Request, groups: dict[str, str]) -> Response:
        template = self.tenant.find_template(groups["id"])
        return self._entity(request, template, "applicationTemplates/$entity")

    def instantiate(self, request: Request, groups: dict[str, str]) -> Response:
        body = self._body(request)
        application, service_principal = self.tenant.instantiate(
            groups["id"], body.get("displayName")
        )
        return self._json(
            request,
            {
                "@odata.context": self._context(
                    request, "microsoft.graph.applicationServicePrincipal"
                ),
                "application": application,
                "servicePrincipal": service_principal,
            },
            status=201,
        )

    # Applications and service principals --------------------------------------------------

    @staticmethod
    def _key(groups: dict[str, str]) -> tuple[str, bool]:
        if "app_id" in groups:
            return groups["app_id"], True
        return groups["id"], False

    def list_applications(self, request: Request, groups: dict[str, str]) -> Response:
        return self._collection(request, self._visible(self.tenant.applications), "applications")

    def get_application(self, request: Request, groups: dict[str, str]) -> Response:
        key, by_app_id = self._key(groups)
        application = self.tenant.find_application(key, by_app_id=by_app_id)
        return self._entity(request, application, "applications/$entity")

    def patch_application(self, request: Request, groups: dict[str, str]) -> Response:
        key, by_app_id = self._key(groups)
        self.tenant.patch_application(key, self._body(request), by_app_id=by_app_id)
        return self._no_content()

    def delete_application(self, request: Request, groups: dict[str, str]) -> Response:
        key, by_app_id = self._key(groups)
        self.tenant.delete_application(key, by_app_id=by_app_id)
        return self._no_content()

    def list_service_principals(self, request: Request, groups: dict[str, str]) -> Response:
        return self._collection(
            request, self._visible(self.tenant.service_principals), "servicePrincipals"
        )

    def get_service_principal(self, request: Request, groups: dict[str, str]) -> Response:
        key, by_app_id = self._key(groups)
        service_principal = self.tenant.find_service_principal(key, by_app_id=by_app_id)
        select = Query.from_args(dict(request.args), eventual_consistency=False).select
        if "keyCredentials" in (select or []):
            # keyCredential.key: "Returned only on $select for a single object, that is, GET
            # applications/{applicationId}?$select=keyCredentials or GET
            # servicePrincipals/{servicePrincipalId}?$select=keyCredentials; otherwise, it is
            # always null" (Graph reference, keyCredential resource type).
            service_principal = self.tenant.with_certificate_keys(service_principal)
        return self._entity(request, service_principal, "servicePrincipals/$entity")

    def patch_service_principal(self, request: Request, groups: dict[str, str]) -> Response:
        key, by_app_id = self._key(groups)
        self.tenant.patch_service_principal(key, self._body(request), by_app_id=by_app_id)
        return self._no_content()

    def delete_service_principal(self, request: Request, groups: dict[str, str]) -> Response:
        key, by_app_id = self._key(groups)
        self.tenant.delete_service_principal(key, by_app_id=by_app_id)
        return self._no_content()

    def add_token_signing_certificate(self, request: Request, groups: dict[str, str]) -> Response:
        certificate = self.tenant.add_token_signing_certificate(groups["id"], self._body(request))
        return self._json(
            request,
            {
                "@odata.context": self._context(request, "microsoft.graph.selfSignedCertificate"),
                **certificate,
            },
        )

    # App role assignments -----------------------------------------------------------------

    def list_assignments(self, request: Request, groups: dict[str, str]) -> Response:
        return self._collection(
            request,
            self.tenant.assignments_to(groups["id"]),
            f"servicePrincipals('{groups['id']}')/appRoleAssignedTo",
        )

    def assign(self, request: Request, groups: dict[str, str]) -> Response:
        assignment = self.tenant.assign(groups["id"], self._body(request))
        return self._entity(
            request,
            assignment,
            f"servicePrincipals('{groups['id']}')/appRoleAssignedTo/$entity",
            status=201,
        )

    def _assignment(self, groups: dict[str, str]) -> dict[str, Any]:
        for assignment in self.tenant.assignments_to(groups["id"]):
            if assignment["id"] == groups["assignment"]:
                return assignment
        raise not_found(groups["assignment"])

    def get_assignment(self, request: Request, groups: dict[str, str]) -> Response:
        return self._entity(
            request,
            self._assignment(groups),
            f"servicePrincipals('{groups['id']}')/appRoleAssignedTo/$entity",
        )

    def unassign(self, request: Request, groups: dict[str, str]) -> Response:
        self.tenant.unassign(groups["id"], groups["assignment"])
        return self._no_content()

    def list_user_assignments(self, request: Request, groups: dict[str, str]) -> Response:
        user = self._user(groups)
        return self._collection(
            request,
            self.tenant.assignments_of(user["id"]),
            f"users('{user['id']}')/appRoleAssignments",
        )

    # Claims mapping policies --------------------------------------------------------------

    def list_policies(self, request: Request, groups: dict[str, str]) -> Response:
        policies = self._visible(self.tenant.claims_mapping_policies)
        return self._collection(request, policies, "policies/claimsMappingPolicies")

    def create_policy(self, request: Request, groups: dict[str, str]) -> Response:
        policy = self.tenant.create_claims_mapping_policy(self._body(request))
        return self._entity(request, policy, "policies/claimsMappingPolicies/$entity", status=201)

    def get_policy(self, request: Request, groups: dict[str, str]) -> Response:
        policy = self.tenant.find_claims_mapping_policy(groups["id"])
        return self._entity(request, policy, "policies/claimsMappingPolicies/$entity")

    def patch_policy(self, request: Request, groups: dict[str, str]) -> Response:
        self.tenant.patch_claims_mapping_policy(groups["id"], self._body(request))
        return self._no_content()

    def delete_policy(self, request: Request, groups: dict[str, str]) -> Response:
        self.tenant.delete_claims_mapping_policy(groups["id"])
        return self._no_content()

    def list_policy_targets(self, request: Request, groups: dict[str, str]) -> Response:
        self.tenant.find_claims_mapping_policy(groups["id"])
        with self.tenant.lock:
            targets = [
                self.tenant.service_principals[sp_id]
                for sp_id, linked in self.tenant.policy_links.items()
                if groups["id"] in linked and sp_id in self.tenant.service_principals
            ]
        return self._collection(request, targets, "directoryObjects")

    def list_linked_policies(self, request: Request, groups: dict[str, str]) -> Response:
        service_principal = self.tenant.find_service_principal(groups["id"])
        return self._collection(
            request,
            self.tenant.policies_of(service_principal["id"]),
            "policies/claimsMappingPolicies",
        )

    def list_linked_policy_refs(self, request: Request, groups: dict[str, str]) -> Response:
        service_principal = self.tenant.find_service_principal(groups["id"])
        policies_url = f"{request.host_url}v1.0/policies/claimsMappingPolicies/"
        refs = [
            {"@odata.id": policies_url + policy["id"]}
            for policy in self.tenant.policies_of(service_principal["id"])
        ]
        return self._json(
            request, {"@odata.context": self._context(request, "Collection($ref)"), "value": refs}
        )

    def link_policy(self, request: Request, groups: dict[str, str]) -> Response:
        reference = self._body(request).get("@odata.id")
        if not isinstance(reference, str) or not reference.strip("/"):
            raise bad_request("Invalid object identifier: '@odata.id' is required.")
        self.tenant.link_claims_mapping_policy(
            groups["id"], reference.rstrip("/").rsplit("/", 1)[-1]
        )
        return self._no_content()

    def unlink_policy(self, request: Request, groups: dict[str, str]) -> Response:
        self.tenant.unlink_claims_mapping_policy(groups["id"], groups["policy"])
        return self._no_content()

    # Users and groups ---------------------------------------------------------------------

    def list_users(self, request: Request, groups: dict[str, str]) -> Response:
        with self.tenant.lock:
            users = list(self.tenant.users.values())
        return self._collection(request, users, "users", USER_DEFAULT_PROPERTIES)

    def get_user(self, request: Request, groups: dict[str, str]) -> Response:
        return self._entity(request, self._user(groups), "users/$entity", USER_DEFAULT_PROPERTIES)

    def list_user_groups(self, request: Request, groups: dict[str, str]) -> Response:
        user = self._user(groups)
        ids = self.tenant.direct_groups_of(user["id"])
        return self._collection(
            request, self._directory_objects(ids, groups.get("cast")), "directoryObjects"
        )

    @staticmethod
    def _check_transitive_cast(request: Request, groups: dict[str, str]) -> None:
        if groups.get("cast"):
            Query.require_advanced_query(
                groups["cast"],
                dict(request.args),
                eventual_consistency=request.headers.get("ConsistencyLevel", "").lower()
                == "eventual",
            )

    def list_user_groups_transitive(self, request: Request, groups: dict[str, str]) -> Response:
        self._check_transitive_cast(request, groups)
        user = self._user(groups)
        ids = self.tenant.transitive_groups_of(user["id"])
        return self._collection(
            request, self._directory_objects(ids, groups.get("cast")), "directoryObjects"
        )

    def list_groups(self, request: Request, groups: dict[str, str]) -> Response:
        with self.tenant.lock:
            found = list(self.tenant.groups.values())
        return self._collection(request, found, "groups")

    def get_group(self, request: Request, groups: dict[str, str]) -> Response:
        return self._entity(request, self.tenant.find_group(groups["id"]), "groups/$entity")

    def list_members(self, request: Request, groups: dict[str, str]) -> Response:
        group = self.tenant.find_group(groups["id"])
        with self.tenant.lock:
            ids = list(self.tenant.members.get(group["id"], []))
        return self._collection(
            request, self._directory_objects(ids, groups.get("cast")), "directoryObjects"
        )

    def list_transitive_members(self, request: Request, groups: dict[str, str]) -> Response:
        self._check_transitive_cast(request, groups)
        group = self.tenant.find_group(groups["id"])
        ids = self.tenant.transitive_members(group["id"])
        return self._collection(
            request, self._directory_objects(ids, groups.get("cast")), "directoryObjects"
        )

    # Delta queries ------------------------------------------------------------------------

    def users_delta(self, request: Request, groups: dict[str, str]) -> Response:
        return self._delta(request, "users")

    def groups_delta(self, request: Request, groups: dict[str, str]) -> Response:
        return self._delta(request, "groups")

    def _delta(self, request: Request, kind: str) -> Response:
        """One page of a delta round (sandbox/entra/delta.py has the sources)."""
        args = request.args
        log = self.tenant.delta_log
        with self.tenant.lock:
            try:
                state_token = args.get("$skiptoken") or args.get("$deltatoken")
                from_now = state_token == delta.FROM_NOW
                if state_token and not from_now:
                    state = delta.decode_state(state_token, log)
                else:
                    select = [name for name in args.get("$select", "").split(",") if name]
                    state = delta.new_state(
                        log, ids=delta.parse_id_filter(args.get("$filter")), select=select
                    )
                    if from_now:
                        return self._delta_page(request, kind, [], state)
                    state["initial"] = True
            except delta.DeltaTokenExpired:
                raise GraphError(
                    400,
                    "syncStateNotFound",
                    "The sync state generation is not found. The delta token is expired and "
                    "data must be synchronized again.",
                ) from None
            until = int(state.get("until", len(log.entries)))
            found = (
                self._delta_groups(state, until)
                if kind == "groups"
                else self._delta_users(state, until)
            )
            offset = int(state.get("offset", 0))
            page = copy.deepcopy(found[offset : offset + delta.DELTA_PAGE])
            if offset + delta.DELTA_PAGE < len(found):
                following = {**state, "until": until, "offset": offset + delta.DELTA_PAGE}
                return self._delta_page(request, kind, page, following, next_page=True)
            finished = {**state, "position": until, "issued": time.time()}
            for name in ("until", "offset", "initial"):
                finished.pop(name, None)
            return self._delta_page(request, kind, page, finished)

    def _delta_groups(self, state: dict[str, Any], until: int) -> list[dict[str, Any]]:
        ids, select = state.get("ids"), list(state.get("select") or [])
        with_members = not select or "members" in select
        if state.get("initial"):
            chosen = [g for g in self.tenant.groups.values() if ids is None or g["id"] in ids]
            return [
                {
                    "id": group["id"],
                    **(
                        {
                            "members@delta": [
                                {
                                    "@odata.type": str(
                                        (self.tenant.directory_object(member) or {}).get(
                                            "@odata.type", "#microsoft.graph.user"
                                        )
                                    ),
                                    "id": member,
                                }
                                for member in self.tenant.members.get(group["id"], [])
                            ]
                        }
                        if with_members
                        else {}
                    ),
                }
                for group in chosen
            ]
        changed = delta.changed_groups(self.tenant.delta_log, int(state["position"]), until, ids)
        if not with_members:
            return []
        return [
            {"id": group_id, "members@delta": list(members.values())}
            for group_id, members in changed.items()
        ]

    def _delta_users(self, state: dict[str, Any], until: int) -> list[dict[str, Any]]:
        ids, select = state.get("ids"), list(state.get("select") or [])
        names = [name for name in select if name != "id"]

        def shown(user: dict[str, Any]) -> dict[str, Any]:
            return {"id": user["id"], **project(user, names, USER_DEFAULT_PROPERTIES)}

        if state.get("initial"):
            return [
                shown(user)
                for user in self.tenant.users.values()
                if ids is None or user["id"] in ids
            ]
        changed = delta.changed_users(self.tenant.delta_log, int(state["position"]), until, ids)
        return [
            {"id": user_id, "@removed": {"reason": "changed"}}
            if removed or user_id not in self.tenant.users
            else shown(self.tenant.users[user_id])
            for user_id, removed in changed.items()
        ]

    def _delta_page(
        self,
        request: Request,
        kind: str,
        page: list[dict[str, Any]],
        state: dict[str, Any],
        *,
        next_page: bool = False,
    ) -> Response:
        name = "@odata.nextLink" if next_page else "@odata.deltaLink"
        parameter = "$skiptoken" if next_page else "$deltatoken"
        link = f"{request.base_url}?{parameter}={delta.encode_state(state)}"
        body = {"@odata.context": self._context(request, kind), "value": page, name: link}
        return self._json(request, body)

    # Directory writes ---------------------------------------------------------------------

    def create_user(self, request: Request, groups: dict[str, str]) -> Response:
        user = directory_writes.create_user(self.tenant, self._body(request))
        body = {key: user.get(key) for key in ("id", *USER_DEFAULT_PROPERTIES)}
        body["@odata.context"] = self._context(request, "users/$entity")
        return self._json(request, body, status=201)

    def update_user(self, request: Request, groups: dict[str, str]) -> Response:
        key = groups.get("id") or groups.get("quoted", "").replace("''", "'")
        directory_writes.update_user(self.tenant, key, self._body(request))
        return self._no_content()

    def delete_user(self, request: Request, groups: dict[str, str]) -> Response:
        directory_writes.delete_user(self.tenant, self._user(groups)["id"])
        return self._no_content()

    def add_member(self, request: Request, groups: dict[str, str]) -> Response:
        directory_writes.add_member(self.tenant, groups["id"], self._body(request))
        return self._no_content()

    def remove_member(self, request: Request, groups: dict[str, str]) -> Response:
        directory_writes.remove_member(self.tenant, groups["id"], groups["member"])
        return self._no_content()
