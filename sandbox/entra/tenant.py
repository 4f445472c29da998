"""The sandbox Entra tenant's objects in memory, and the rules Entra enforces when they change."""

from __future__ import annotations

import base64
import copy
import datetime as dt
import json
import re
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509

from sandbox.directory import Directory
from sandbox.entra.delta import DeltaLog
from sandbox.knobs import Knobs
from sandbox.saml_idp import SigningCertificate, issue_signing_certificate

# The application permissions the wizard asks an admin to grant (the least privileged ones the
# Microsoft Graph API reference lists for each call the flow makes).
DEFAULT_GRANTED_PERMISSIONS = frozenset(
    {
        "Application.ReadWrite.All",
        "AppRoleAssignment.ReadWrite.All",
        "Policy.ReadWrite.ApplicationConfiguration",
        "Policy.Read.All",
        "User.Read.All",
        "Group.Read.All",
    }
)
AWS_SINGLE_ACCOUNT_TEMPLATE_ID = "8b1025e4-1dd2-430b-a150-2ef79cd700f5"
# The "Custom" (non-gallery) template id Microsoft's docs use to create non-gallery apps.
CUSTOM_TEMPLATE_ID = "8adf8e6e-67b2-4cf2-a259-e3dc5476c621"
# A sandbox-made id: the real one is not needed, only a near-namesake to look past.
AWS_IDENTITY_CENTER_TEMPLATE_ID = "f3c6b4a2-5d1e-4c1b-9a57-1c2d3e4f5a6b"
APPLICATION_TEMPLATES: list[dict[str, Any]] = [
    {
        "id": AWS_SINGLE_ACCOUNT_TEMPLATE_ID,
        "displayName": "AWS Single-Account Access",
        "homePageUrl": "aws.amazon.com/",
        "supportedSingleSignOnModes": ["saml", "external"],
        "supportedProvisioningTypes": ["sync"],
        "logoUrl": "https://az495088.vo.msecnd.net/app-logo/amazonwebservices_215.png",
        "categories": ["developerServices", "itInfrastructure", "security"],
        "publisher": "Amazon",
        "description": "Federate one AWS account with Microsoft Entra ID using SAML 2.0.",
    },
    {
        "id": AWS_IDENTITY_CENTER_TEMPLATE_ID,
        "displayName": "AWS IAM Identity Center (successor to AWS Single Sign-On)",
        "homePageUrl": "aws.amazon.com/single-sign-on/",
        "supportedSingleSignOnModes": ["saml", "external"],
        "supportedProvisioningTypes": ["sync"],
        "logoUrl": "https://az495088.vo.msecnd.net/app-logo/awssinglesignon_215.png",
        "categories": ["developerServices", "itInfrastructure", "security"],
        "publisher": "Amazon",
        "description": "Sign in to many AWS accounts through AWS IAM Identity Center.",
    },
    {
        "id": CUSTOM_TEMPLATE_ID,
        "displayName": "Custom",
        "homePageUrl": "http://www.microsoft.com",
        "supportedSingleSignOnModes": ["password", "saml", "external"],
        "supportedProvisioningTypes": ["sync"],
        "logoUrl": "https://az495088.vo.msecnd.net/app-logo/customappsso_215.png",
        "categories": [],
        "publisher": "Microsoft Corporation",
        "description": "Integrate any other application that you don't find in the gallery.",
    },
]
SINGLE_SIGN_ON_MODES = {"saml", "password", "notSupported", "oidc", None}
# addTokenSigningCertificate: "The endDateTime can be up to three years after the certificate
# is created" (Graph servicePrincipal docs); a day of slack for clients that round up.
DEFAULT_CERTIFICATE_LIFETIME = dt.timedelta(days=3 * 365)
MAX_CERTIFICATE_LIFETIME = DEFAULT_CERTIFICATE_LIFETIME + dt.timedelta(days=1)
# When the seeded directory objects say they were created: any fixed moment in the past.
SEEDED_AT = dt.datetime(2024, 4, 1, 9, 0, tzinfo=dt.UTC)
# Characters Entra accepts in an app role's value (Graph appRole resource docs): no spaces.
APP_ROLE_VALUE = re.compile(r"^[A-Za-z0-9:!#$%&'()*+,\-./;<=>?@\[\]^_`{|}~]+$")
DEFAULT_ACCESS_ROLE_ID = "00000000-0000-0000-0000-000000000000"
# Graph's answer to appRoles PATCHed on a service principal that differ from its application's:
# a service principal only mirrors them (microsoft-graph-docs-contrib issue 8801; manicminer in
# hamilton PR 42: "the appRoles for a service principal simply echo the appRoles for the linked
# application").
SERVICE_PRINCIPAL_APP_ROLES_REFUSED = (
    "Property appRoles on the service principal does not match the application object."
)
# The default tenant policy on identifierUris that Microsoft enabled in June and July 2025
# (entra-docs, identity-platform/identifier-uri-restrictions.md, "Policy behavior"): the doc gives
# the message, not the error code, so the code is Graph's generic one for a refused property.
IDENTIFIER_URI_REFUSED = (
    "Failed to add identifier URI {uri}. All newly added URIs must contain a tenant verified "
    "domain, tenant ID, or app ID, as per the default tenant policy of your organization. See "
    "https://aka.ms/identifier-uri-addition-error for more information on this error."
)
APPLICATION_WRITABLE = {
    "api",
    "appRoles",
    "description",
    "displayName",
    "groupMembershipClaims",
    "identifierUris",
    "info",
    "isFallbackPublicClient",
    "notes",
    "optionalClaims",
    "publicClient",
    "requiredResourceAccess",
    "signInAudience",
    "spa",
    "tags",
    "web",
}
SERVICE_PRINCIPAL_WRITABLE = {
    "accountEnabled",
    "appRoleAssignmentRequired",
    "appRoles",
    "description",
    "displayName",
    "homepage",
    "loginUrl",
    "logoutUrl",
    "notes",
    "notificationEmailAddresses",
    "preferredSingleSignOnMode",
    "preferredTokenSigningKeyThumbprint",
    "replyUrls",
    "samlSingleSignOnSettings",
    "servicePrincipalNames",
    "tags",
}
# Complex properties whose PATCH merges into the stored value instead of replacing it.
MERGED_COMPLEX_PROPERTIES = {
    "web",
    "samlSingleSignOnSettings",
    "info",
    "publicClient",
    "spa",
    "api",
}
USER_DEFAULT_PROPERTIES = (
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "id",
)


class GraphError(Exception):
    """A Graph error response: HTTP status, Graph's error code and message."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def not_found(object_id: str) -> GraphError:
    return GraphError(
        404,
        "Request_ResourceNotFound",
        f"Resource '{object_id}' does not exist or one of its queried reference-property objects "
        "are not present.",
    )


def bad_request(message: str, code: str = "Request_BadRequest") -> GraphError:
    return GraphError(400, code, message)


def graph_timestamp(moment: dt.datetime | None = None) -> str:
    return (moment or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_datetime(value: Any, name: str) -> dt.datetime:
    if not isinstance(value, str):
        raise bad_request(f"Invalid value specified for property '{name}'.")
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as error:
        raise bad_request(f"Invalid value specified for property '{name}'.") from error
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _is_guid(value: Any) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


def _default_app_roles() -> list[dict[str, Any]]:
    # Every SAML gallery app starts with these two; their value is null, so they add no claim.
    return [
        {
            "allowedMemberTypes": ["User"],
            "description": "msiam_access",
            "displayName": "msiam_access",
            "id": str(uuid.uuid4()),
            "isEnabled": True,
            "origin": "Application",
            "value": None,
        },
        {
            "allowedMemberTypes": ["User"],
            "description": "User",
            "displayName": "User",
            "id": str(uuid.uuid4()),
            "isEnabled": True,
            "origin": "Application",
            "value": None,
        },
    ]


@dataclass
class Tenant:
    """Users, groups, applications, service principals, policies and assignments of one tenant.

    Every read and write holds `lock`: the sandbox server handles requests on many threads.
    """

    tenant_id: str
    domain: str
    client_id: str
    client_secret: str
    knobs: Knobs
    directory: Directory
    granted_permissions: set[str] = field(default_factory=lambda: set(DEFAULT_GRANTED_PERMISSIONS))
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    # group id -> ids of its direct members (users and groups)
    members: dict[str, list[str]] = field(default_factory=dict)
    applications: dict[str, dict[str, Any]] = field(default_factory=dict)
    service_principals: dict[str, dict[str, Any]] = field(default_factory=dict)
    # object id -> time.monotonic() from which GET sees it (Graph's replication delay)
    visible_from: dict[str, float] = field(default_factory=dict)
    # service principal id -> thumbprint -> certificate with its private key
    signing_certificates: dict[str, dict[str, SigningCertificate]] = field(default_factory=dict)
    claims_mapping_policies: dict[str, dict[str, Any]] = field(default_factory=dict)
    # service principal id -> ids of the claims mapping policies linked to it
    policy_links: dict[str, list[str]] = field(default_factory=dict)
    app_role_assignments: dict[str, dict[str, Any]] = field(default_factory=dict)
    # service principal id -> time.monotonic() from which it shows its application's appRoles:
    # "properties are synchronized from the app registration, but the synchronization isn't
    # immediate" (Graph, applications-api-overview); the window is knobs.graph_visibility_delay_s.
    app_roles_mirrored_from: dict[str, float] = field(default_factory=dict)
    # The identifier URI policy exempts SAML apps by default ("excludeSaml" of Graph's
    # identifierUriRestriction); an admin may take the exemption away, and a test may too.
    identifier_uri_policy_excludes_saml: bool = True
    # The directory's changes, for delta queries (sandbox/entra/delta.py).
    delta_log: DeltaLog = field(default_factory=DeltaLog)
    tenant_signing_certificate: SigningCertificate = field(
        default_factory=lambda: issue_signing_certificate("CN=accounts.accesscontrol.windows.net")
    )

    def __post_init__(self) -> None:
        self._seed_directory()

    @property
    def client_object_id(self) -> str:
        return self._stable_id("client-service-principal", self.client_id)

    def _stable_id(self, kind: str, key: str) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.tenant_id}/{kind}/{key}"))

    def _seed_directory(self) -> None:
        created = graph_timestamp(SEEDED_AT)
        group_ids = {name: self._stable_id("group", name) for name in self.directory.group_names}
        for name, group_id in group_ids.items():
            nickname = re.sub(r"[^A-Za-z0-9]", "", name).lower()
            self.groups[group_id] = {
                "@odata.type": "#microsoft.graph.group",
                "id": group_id,
                "deletedDateTime": None,
                "classification": None,
                "createdDateTime": created,
                "description": f"{name} (sandbox directory)",
                "displayName": name,
                "groupTypes": [],
                "isAssignableToRole": None,
                "mail": None,
                "mailEnabled": False,
                "mailNickname": nickname,
                "membershipRule": None,
                "onPremisesSyncEnabled": None,
                "proxyAddresses": [],
                "renewedDateTime": created,
                "securityEnabled": True,
                "visibility": None,
            }
            self.members[group_id] = []
        for person in self.directory.people:
            user_id = self._stable_id("user", person.key)
            self.users[user_id] = {
                "@odata.type": "#microsoft.graph.user",
                "id": user_id,
                "accountEnabled": True,
                "businessPhones": [],
                "createdDateTime": created,
                "department": "Contact Centre",
                "displayName": person.display_name,
                "employeeId": None,
                "givenName": person.given_name,
                "jobTitle": None,
                "mail": person.email,
                "mailNickname": person.login.split("@")[0].replace("'", ""),
                "mobilePhone": None,
                "officeLocation": None,
                "otherMails": [],
                "preferredLanguage": "ja-JP",
                "proxyAddresses": [f"SMTP:{person.email}"],
                "surname": person.surname or None,
                "usageLocation": "JP",
                "userPrincipalName": person.login,
                "userType": "Member",
            }
            for group in person.groups:
                self.members[group_ids[group]].append(user_id)
        for parent, children in self.directory.nested_groups.items():
            self.members[group_ids[parent]].extend(group_ids[child] for child in children)

    def add_group(self, name: str, member_ids: list[str]) -> str:
        """A test hook: a new security group with these direct members; its id."""
        with self.lock:
            group_id = self._stable_id("group", f"{name}/{uuid.uuid4()}")
            template = next(iter(self.groups.values()))
            self.groups[group_id] = {
                **template,
                "id": group_id,
                "displayName": name,
                "description": f"{name} (added by a test)",
                "mailNickname": re.sub(r"[^A-Za-z0-9]", "", name).lower(),
            }
            self.members[group_id] = list(member_ids)
            return group_id

    # Visibility ---------------------------------------------------------------------------

    def is_visible(self, object_id: str) -> bool:
        return time.monotonic() >= self.visible_from.get(object_id, 0.0)

    # Directory ----------------------------------------------------------------------------

    def find_user(self, key: str) -> dict[str, Any]:
        """A user by object id or userPrincipalName (case-insensitive, as Graph resolves it)."""
        with self.lock:
            if key in self.users:
                return self.users[key]
            folded = key.casefold()
            for user in self.users.values():
                if user["userPrincipalName"].casefold() == folded:
                    return user
        raise not_found(key)

    def find_group(self, group_id: str) -> dict[str, Any]:
        with self.lock:
            if group_id in self.groups:
                return self.groups[group_id]
        raise not_found(group_id)

    def directory_object(self, object_id: str) -> dict[str, Any] | None:
        return (
            self.users.get(object_id)
            or self.groups.get(object_id)
            or self.service_principals.get(object_id)
        )

    def transitive_members(self, group_id: str) -> list[str]:
        """Every member reachable through nested groups, each once, nested groups included."""
        with self.lock:
            seen: list[str] = []
            pending = list(self.members.get(group_id, []))
            while pending:
                member = pending.pop(0)
                if member in seen:
                    continue
                seen.append(member)
                pending.extend(self.members.get(member, []))
            return seen

    def direct_groups_of(self, user_id: str) -> list[str]:
        with self.lock:
            return [group_id for group_id, ids in self.members.items() if user_id in ids]

    def transitive_groups_of(self, object_id: str) -> list[str]:
        with self.lock:
            found: list[str] = []
            pending = [object_id]
            while pending:
                current = pending.pop(0)
                for group_id, ids in self.members.items():
                    if current in ids and group_id not in found:
                        found.append(group_id)
                        pending.append(group_id)
            return found

    # Gallery templates --------------------------------------------------------------------

    def find_template(self, template_id: str) -> dict[str, Any]:
        for template in APPLICATION_TEMPLATES:
            if template["id"].casefold() == template_id.casefold():
                return template
        raise not_found(template_id)

    def instantiate(
        self, template_id: str, display_name: Any
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The application and service principal of a new gallery app, hidden from reads for
        knobs.graph_visibility_delay_s as real Graph's replicas catch up."""
        template = self.find_template(template_id)
        if not isinstance(display_name, str) or not display_name.strip():
            raise bad_request("Property displayName is required.")
        now = graph_timestamp()
        app_id = str(uuid.uuid4())
        roles = _default_app_roles()
        application = {
            "@odata.type": "#microsoft.graph.application",
            "id": str(uuid.uuid4()),
            "deletedDateTime": None,
            "appId": app_id,
            "applicationTemplateId": template["id"],
            "createdDateTime": now,
            "description": None,
            "displayName": display_name,
            "groupMembershipClaims": None,
            "identifierUris": [],
            "isFallbackPublicClient": None,
            "notes": None,
            "publisherDomain": self.domain,
            "signInAudience": "AzureADMyOrg",
            "tags": [],
            "api": {"requestedAccessTokenVersion": None, "oauth2PermissionScopes": []},
            "appRoles": copy.deepcopy(roles),
            "info": {
                "marketingUrl": None,
                "privacyStatementUrl": None,
                "supportUrl": None,
                "termsOfServiceUrl": None,
                "logoUrl": None,
            },
            "keyCredentials": [],
            "optionalClaims": None,
            "passwordCredentials": [],
            "publicClient": {"redirectUris": []},
            "requiredResourceAccess": [],
            "spa": {"redirectUris": []},
            "web": {
                "homePageUrl": template["homePageUrl"],
                "logoutUrl": None,
                "redirectUris": [],
                "implicitGrantSettings": {
                    "enableAccessTokenIssuance": False,
                    "enableIdTokenIssuance": False,
                },
                "redirectUriSettings": [],
            },
        }
        service_principal = {
            "@odata.type": "#microsoft.graph.servicePrincipal",
            "id": str(uuid.uuid4()),
            "deletedDateTime": None,
            "accountEnabled": True,
            "alternativeNames": [],
            "appDescription": None,
            "appDisplayName": display_name,
            "appId": app_id,
            "applicationTemplateId": template["id"],
            "appOwnerOrganizationId": self.tenant_id,
            # Gallery SAML apps ask for assignment: unassigned users get AADSTS50105.
            "appRoleAssignmentRequired": True,
            "description": None,
            "displayName": display_name,
            "homepage": template["homePageUrl"],
            "loginUrl": None,
            "logoutUrl": None,
            "notes": None,
            "notificationEmailAddresses": [],
            "preferredSingleSignOnMode": None,
            "preferredTokenSigningKeyThumbprint": None,
            "replyUrls": [],
            "servicePrincipalNames": [app_id],
            "servicePrincipalType": "Application",
            "signInAudience": "AzureADMyOrg",
            "tags": ["WindowsAzureActiveDirectoryIntegratedApp"],
            "tokenEncryptionKeyId": None,
            "samlSingleSignOnSettings": None,
            "appRoles": copy.deepcopy(roles),
            "info": copy.deepcopy(application["info"]),
            "keyCredentials": [],
            "oauth2PermissionScopes": [],
            "passwordCredentials": [],
        }
        visible_from = time.monotonic() + self.knobs.graph_visibility_delay_s
        with self.lock:
            self.applications[application["id"]] = application
            self.service_principals[service_principal["id"]] = service_principal
            self.visible_from[application["id"]] = visible_from
            self.visible_from[service_principal["id"]] = visible_from
        return copy.deepcopy(application), copy.deepcopy(service_principal)

    # Applications and service principals --------------------------------------------------

    def mirror_app_roles(self) -> None:
        """Service principals whose mirror window has passed show their application's appRoles."""
        now = time.monotonic()
        with self.lock:
            for sp_id, due in list(self.app_roles_mirrored_from.items()):
                if now < due:
                    continue
                del self.app_roles_mirrored_from[sp_id]
                service_principal = self.service_principals.get(sp_id)
                if service_principal is None:
                    continue
                application = self.application_of(service_principal)
                if application:
                    service_principal["appRoles"] = copy.deepcopy(application["appRoles"])

    def _find(self, store: dict[str, dict[str, Any]], key: str, by_app_id: bool) -> dict[str, Any]:
        self.mirror_app_roles()
        with self.lock:
            if by_app_id:
                found = next(
                    (obj for obj in store.values() if obj["appId"].casefold() == key.casefold()),
                    None,
                )
            else:
                found = store.get(key)
            if found is None or not self.is_visible(found["id"]):
                raise not_found(key)
            return found

    def find_application(self, key: str, *, by_app_id: bool = False) -> dict[str, Any]:
        return self._find(self.applications, key, by_app_id)

    def find_service_principal(self, key: str, *, by_app_id: bool = False) -> dict[str, Any]:
        return self._find(self.service_principals, key, by_app_id)

    def service_principal_of(self, application: dict[str, Any]) -> dict[str, Any] | None:
        return next(
            (sp for sp in self.service_principals.values() if sp["appId"] == application["appId"]),
            None,
        )

    def application_of(self, service_principal: dict[str, Any]) -> dict[str, Any] | None:
        return next(
            (
                app
                for app in self.applications.values()
                if app["appId"] == service_principal["appId"]
            ),
            None,
        )

    @staticmethod
    def _check_writable(body: dict[str, Any], writable: set[str], stored: dict[str, Any]) -> None:
        for name in body:
            if name.startswith("@odata."):
                continue
            if name in writable:
                continue
            if name in stored:
                raise bad_request(f"Property '{name}' is read-only and cannot be set.")
            raise bad_request(
                f"Property '{name}' does not exist as a declared property or extension property."
            )

    @staticmethod
    def _apply(stored: dict[str, Any], body: dict[str, Any]) -> None:
        for name, value in body.items():
            if name.startswith("@odata."):
                continue
            value = copy.deepcopy(value)
            if isinstance(value, dict):
                value = {key: item for key, item in value.items() if not key.startswith("@odata.")}
            if name in MERGED_COMPLEX_PROPERTIES and isinstance(value, dict):
                stored[name] = {**(stored.get(name) or {}), **value}
            else:
                stored[name] = value

    def _validated_app_roles(
        self, current: list[dict[str, Any]], roles: Any
    ) -> list[dict[str, Any]]:
        if not isinstance(roles, list) or not all(isinstance(role, dict) for role in roles):
            raise bad_request("Invalid value specified for property 'appRoles'.")
        cleaned: list[dict[str, Any]] = []
        ids: set[str] = set()
        values: set[str] = set()
        for role in roles:
            role = {key: value for key, value in role.items() if not key.startswith("@odata.")}
            if not _is_guid(role.get("id")):
                raise bad_request(
                    "Invalid value specified for property 'id' of resource 'AppRole'."
                )
            role_id = str(uuid.UUID(str(role["id"])))
            if role_id in ids:
                raise bad_request(f"App role id '{role_id}' is used more than once.")
            ids.add(role_id)
            members = role.get("allowedMemberTypes") or []
            if not members or not set(members) <= {"User", "Application"}:
                raise bad_request(
                    "Invalid value specified for property 'allowedMemberTypes' of resource "
                    "'AppRole'."
                )
            if not role.get("displayName"):
                raise bad_request("Property 'displayName' of resource 'AppRole' is required.")
            value = role.get("value")
            if value is not None:
                if not isinstance(value, str) or not APP_ROLE_VALUE.match(value):
                    raise bad_request(
                        f"Invalid value '{value}' for property 'value' of resource 'AppRole': "
                        "spaces and other special characters are not allowed."
                    )
                if value.casefold() in values:
                    raise bad_request(
                        f"Request contains a property with duplicate values: appRoles value "
                        f"'{value}'."
                    )
                values.add(value.casefold())
            cleaned.append(
                {
                    "allowedMemberTypes": list(members),
                    "description": role.get("description"),
                    "displayName": role["displayName"],
                    "id": role_id,
                    "isEnabled": bool(role.get("isEnabled", True)),
                    "origin": role.get("origin") or "Application",
                    "value": value,
                }
            )
        by_id = {role["id"]: role for role in cleaned}
        for old in current:
            if not old.get("isEnabled"):
                continue
            new = by_id.get(old["id"])
            if new is None or new["value"] != old.get("value"):
                # The real error when a PATCH drops or rewrites an enabled role.
                raise bad_request(
                    "Permission (scope or role) cannot be deleted or updated unless disabled "
                    "first.",
                    "CannotDeleteOrUpdateEnabledEntitlement",
                )
        return cleaned

    def _validated_identifier_uris(self, application_id: str, uris: Any) -> list[str]:
        if not isinstance(uris, list) or not all(isinstance(uri, str) for uri in uris):
            raise bad_request("Invalid value specified for property 'identifierUris'.")
        for uri in uris:
            parts = urlsplit(uri)
            if not parts.scheme or not (parts.netloc or parts.scheme in {"urn", "api"}):
                raise bad_request(
                    f"Invalid value specified for property 'identifierUris' of resource "
                    f"'Application': '{uri}' is not an absolute URI."
                )
            for other in self.applications.values():
                if other["id"] == application_id:
                    continue
                if uri.casefold() in (value.casefold() for value in other["identifierUris"]):
                    raise bad_request(
                        "Another object with the same value for property identifierUris "
                        "already exists."
                    )
        return list(uris)

    def _check_identifier_uri_policy(self, application: dict[str, Any], uris: list[str]) -> None:
        """The default identifierUris policy: a newly added URI names a verified domain, the
        tenant ID or the app ID, unless the app takes v2.0 tokens or its service principal is in
        SAML mode (identifier-uri-restrictions.md: both "are exempted by default")."""
        service_principal = self.service_principal_of(application)
        saml = (service_principal or {}).get("preferredSingleSignOnMode") or ""
        if saml.casefold() == "saml" and self.identifier_uri_policy_excludes_saml:
            return
        if (application.get("api") or {}).get("requestedAccessTokenVersion") == 2:
            return
        existing = {uri.casefold() for uri in application["identifierUris"]}
        for uri in uris:
            folded = uri.casefold()
            if folded in existing:
                continue
            if self.tenant_id.casefold() in folded or application["appId"].casefold() in folded:
                continue
            host = (urlsplit(uri).hostname or "").casefold()
            if host == self.domain.casefold() or host.endswith("." + self.domain.casefold()):
                continue
            raise bad_request(IDENTIFIER_URI_REFUSED.format(uri=uri))

    @staticmethod
    def _validated_redirect_uris(uris: Any) -> list[str]:
        if not isinstance(uris, list) or not all(isinstance(uri, str) for uri in uris):
            raise bad_request("Invalid value specified for property 'redirectUris'.")
        for uri in uris:
            parts = urlsplit(uri)
            local = parts.scheme == "http" and parts.hostname in {"localhost", "127.0.0.1"}
            if parts.scheme != "https" and not local:
                raise bad_request(
                    "Invalid value specified for property 'redirectUris' of resource "
                    f"'Application': '{uri}' must use https."
                )
        return list(uris)

    def _sync_service_principal(self, application: dict[str, Any]) -> None:
        service_principal = self.service_principal_of(application)
        if service_principal is None:
            return
        service_principal["servicePrincipalNames"] = [
            *application["identifierUris"],
            application["appId"],
        ]
        service_principal["replyUrls"] = list(
            (application.get("web") or {}).get("redirectUris") or []
        )
        if service_principal["appRoles"] != application["appRoles"]:
            self.app_roles_mirrored_from[service_principal["id"]] = (
                time.monotonic() + self.knobs.graph_visibility_delay_s
            )
        service_principal["appDisplayName"] = application["displayName"]

    def patch_application(self, key: str, body: dict[str, Any], *, by_app_id: bool = False) -> None:
        with self.lock:
            application = self.find_application(key, by_app_id=by_app_id)
            self._check_writable(body, APPLICATION_WRITABLE, application)
            changes = dict(body)
            if "identifierUris" in changes:
                changes["identifierUris"] = self._validated_identifier_uris(
                    application["id"], changes["identifierUris"]
                )
                self._check_identifier_uri_policy(application, changes["identifierUris"])
            if isinstance(changes.get("web"), dict) and "redirectUris" in changes["web"]:
                changes["web"] = {
                    **changes["web"],
                    "redirectUris": self._validated_redirect_uris(changes["web"]["redirectUris"]),
                }
            if "appRoles" in changes:
                changes["appRoles"] = self._validated_app_roles(
                    application["appRoles"], changes["appRoles"]
                )
            self._apply(application, changes)
            self._sync_service_principal(application)

    def patch_service_principal(
        self, key: str, body: dict[str, Any], *, by_app_id: bool = False
    ) -> None:
        with self.lock:
            service_principal = self.find_service_principal(key, by_app_id=by_app_id)
            self._check_writable(body, SERVICE_PRINCIPAL_WRITABLE, service_principal)
            changes = dict(body)
            mode = changes.get("preferredSingleSignOnMode")
            if "preferredSingleSignOnMode" in changes and mode not in SINGLE_SIGN_ON_MODES:
                raise bad_request(
                    "Invalid value specified for property 'preferredSingleSignOnMode' of "
                    "resource 'ServicePrincipal'."
                )
            if "samlSingleSignOnSettings" in changes:
                settings = changes["samlSingleSignOnSettings"]
                if settings is not None and not isinstance(settings, dict):
                    raise bad_request(
                        "Invalid value specified for property 'samlSingleSignOnSettings'."
                    )
            if "appRoles" in changes:
                self._check_mirrored_app_roles(service_principal, changes.pop("appRoles"))
            self._apply(service_principal, changes)

    def _check_mirrored_app_roles(self, service_principal: dict[str, Any], roles: Any) -> None:
        """appRoles on a service principal PATCH pass only when they equal its application's (a
        no-op); anything else is refused as Graph refuses it."""
        application = self.application_of(service_principal)
        wanted = application["appRoles"] if application else service_principal["appRoles"]
        try:
            sent = self._validated_app_roles([], roles)
        except GraphError:
            sent = None
        if sent is None or sorted(sent, key=lambda r: r["id"]) != sorted(
            wanted, key=lambda r: r["id"]
        ):
            raise bad_request(SERVICE_PRINCIPAL_APP_ROLES_REFUSED)

    def delete_service_principal(self, key: str, *, by_app_id: bool = False) -> None:
        with self.lock:
            service_principal = self.find_service_principal(key, by_app_id=by_app_id)
            self._forget_service_principal(service_principal["id"])

    def _forget_service_principal(self, sp_id: str) -> None:
        self.service_principals.pop(sp_id, None)
        self.signing_certificates.pop(sp_id, None)
        self.policy_links.pop(sp_id, None)
        self.visible_from.pop(sp_id, None)
        self.app_roles_mirrored_from.pop(sp_id, None)
        for assignment_id, assignment in list(self.app_role_assignments.items()):
            if sp_id in (assignment["resourceId"], assignment["principalId"]):
                del self.app_role_assignments[assignment_id]

    def delete_application(self, key: str, *, by_app_id: bool = False) -> None:
        """Deleting an application deletes its service principal in its home tenant too."""
        with self.lock:
            application = self.find_application(key, by_app_id=by_app_id)
            service_principal = self.service_principal_of(application)
            if service_principal is not None:
                self._forget_service_principal(service_principal["id"])
            del self.applications[application["id"]]
            self.visible_from.pop(application["id"], None)

    # Signing certificates -----------------------------------------------------------------

    def add_token_signing_certificate(self, sp_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """A new self-signed SAML signing certificate; the sandbox keeps its private key."""
        display_name = body.get("displayName")
        if not isinstance(display_name, str) or not display_name.startswith("CN="):
            raise bad_request("The displayName must start with 'CN=' (the certificate subject).")
        now = dt.datetime.now(dt.UTC)
        if body.get("endDateTime") is None:
            end = now + DEFAULT_CERTIFICATE_LIFETIME
        else:
            end = _parse_datetime(body["endDateTime"], "endDateTime")
        if end <= now or end - now > MAX_CERTIFICATE_LIFETIME:
            raise bad_request(
                "Invalid value specified for property 'endDateTime': it must be in the future and "
                "at most three years away."
            )
        with self.lock:
            service_principal = self.find_service_principal(sp_id)
        certificate = issue_signing_certificate(display_name, not_after=end)
        custom_key_identifier = base64.b64encode(bytes.fromhex(certificate.thumbprint)).decode()
        start = graph_timestamp(now)
        end_text = graph_timestamp(certificate.not_after)
        verify_key_id, sign_key_id = str(uuid.uuid4()), str(uuid.uuid4())
        shared = {
            "customKeyIdentifier": custom_key_identifier,
            "displayName": display_name,
            "endDateTime": end_text,
            "key": None,
            "startDateTime": start,
        }
        with self.lock:
            self.signing_certificates.setdefault(service_principal["id"], {})[
                certificate.thumbprint
            ] = certificate
            # Graph adds a Verify key (the public certificate), a Sign key (the private key,
            # a PFX) and the PFX's password, all with the same customKeyIdentifier.
            service_principal["keyCredentials"].extend(
                [
                    {
                        **shared,
                        "keyId": verify_key_id,
                        "type": "AsymmetricX509Cert",
                        "usage": "Verify",
                    },
                    {
                        **shared,
                        "keyId": sign_key_id,
                        "type": "X509CertAndPassword",
                        "usage": "Sign",
                    },
                ]
            )
            service_principal["passwordCredentials"].append(
                {
                    "customKeyIdentifier": custom_key_identifier,
                    "displayName": None,
                    "endDateTime": end_text,
                    "hint": None,
                    "keyId": sign_key_id,
                    "secretText": None,
                    "startDateTime": start,
                }
            )
        return {
            "customKeyIdentifier": custom_key_identifier,
            "displayName": display_name,
            "endDateTime": end_text,
            "key": certificate.cert_base64,
            "keyId": verify_key_id,
            "startDateTime": start,
            "thumbprint": certificate.thumbprint,
            "type": "AsymmetricX509Cert",
            "usage": "Verify",
        }

    def with_certificate_keys(self, service_principal: dict[str, Any]) -> dict[str, Any]:
        """A copy of the service principal whose signing certificates' Verify key credentials
        carry their `key` (the certificate, base64 DER), as a $select=keyCredentials read of
        one object answers."""
        with self.lock:
            certificates = self.signing_certificates.get(service_principal["id"], {})
            answered = copy.deepcopy(service_principal)
            for credential in answered["keyCredentials"]:
                identifier = credential.get("customKeyIdentifier") or ""
                thumbprint = base64.b64decode(identifier).hex().upper() if identifier else ""
                if credential.get("usage") == "Verify" and thumbprint in certificates:
                    credential["key"] = certificates[thumbprint].cert_base64
            return answered

    def find_signing_certificate(self, thumbprint: str) -> SigningCertificate | None:
        with self.lock:
            for certificates in self.signing_certificates.values():
                if thumbprint.upper() in certificates:
                    return certificates[thumbprint.upper()]
        return None

    def replace_signing_certificate(self, old: SigningCertificate, new: SigningCertificate) -> None:
        """`new` where `old` was: the service principal's certificate, its key and password
        credentials (customKeyIdentifier is the thumbprint, dates follow the certificate) and
        preferredTokenSigningKeyThumbprint (the sandbox's certificate clock, not a Graph call)."""
        old_identifier = base64.b64encode(bytes.fromhex(old.thumbprint)).decode()
        new_identifier = base64.b64encode(bytes.fromhex(new.thumbprint)).decode()
        new_start = x509.load_pem_x509_certificate(new.cert_pem.encode()).not_valid_before_utc
        with self.lock:
            for sp_id, certificates in self.signing_certificates.items():
                if certificates.pop(old.thumbprint, None) is None:
                    continue
                certificates[new.thumbprint] = new
                service_principal = self.service_principals[sp_id]
                for credential in (
                    service_principal["keyCredentials"] + service_principal["passwordCredentials"]
                ):
                    if credential.get("customKeyIdentifier") == old_identifier:
                        credential["customKeyIdentifier"] = new_identifier
                        credential["startDateTime"] = graph_timestamp(new_start)
                        credential["endDateTime"] = graph_timestamp(new.not_after)
                preferred = service_principal.get("preferredTokenSigningKeyThumbprint") or ""
                if preferred.upper() == old.thumbprint:
                    service_principal["preferredTokenSigningKeyThumbprint"] = new.thumbprint

    def active_signing_certificate(self, service_principal: dict[str, Any]) -> SigningCertificate:
        """The certificate Entra signs this app's SAML responses with: the one named by
        preferredTokenSigningKeyThumbprint, else the tenant's own signing certificate."""
        with self.lock:
            certificates = self.signing_certificates.get(service_principal["id"], {})
            preferred = (service_principal.get("preferredTokenSigningKeyThumbprint") or "").upper()
            return certificates.get(preferred, self.tenant_signing_certificate)

    # Claims mapping policies --------------------------------------------------------------

    @staticmethod
    def _validated_definition(definition: Any) -> list[str]:
        if (
            not isinstance(definition, list)
            or len(definition) != 1
            or not isinstance(definition[0], str)
        ):
            raise bad_request("Property 'definition' must hold one JSON string.")
        try:
            parsed = json.loads(definition[0])
            schema = parsed["ClaimsMappingPolicy"]
        except (ValueError, KeyError, TypeError) as error:
            raise bad_request(
                "Invalid value specified for property 'definition': not a ClaimsMappingPolicy "
                "document."
            ) from error
        if not isinstance(schema, dict) or not isinstance(schema.get("ClaimsSchema", []), list):
            raise bad_request("Invalid value specified for property 'definition'.")
        return list(definition)

    def create_claims_mapping_policy(self, body: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(body.get("displayName"), str) or not body["displayName"]:
            raise bad_request("Property 'displayName' is required.")
        policy = {
            "@odata.type": "#microsoft.graph.claimsMappingPolicy",
            "id": str(uuid.uuid4()),
            "deletedDateTime": None,
            "definition": self._validated_definition(body.get("definition")),
            "description": body.get("description"),
            "displayName": body["displayName"],
            "isOrganizationDefault": bool(body.get("isOrganizationDefault", False)),
        }
        with self.lock:
            self.claims_mapping_policies[policy["id"]] = policy
            # A new policy replicates like any directory object: until then reads, writes and
            # references to it ($ref) answer 404 (the azuread provider retries 404s after
            # creating: hashicorp/terraform-provider-azuread PR 656).
            self.visible_from[policy["id"]] = time.monotonic() + self.knobs.graph_visibility_delay_s
        return copy.deepcopy(policy)

    def find_claims_mapping_policy(self, policy_id: str) -> dict[str, Any]:
        with self.lock:
            if policy_id in self.claims_mapping_policies and self.is_visible(policy_id):
                return self.claims_mapping_policies[policy_id]
        raise not_found(policy_id)

    def patch_claims_mapping_policy(self, policy_id: str, body: dict[str, Any]) -> None:
        with self.lock:
            policy = self.find_claims_mapping_policy(policy_id)
            self._check_writable(
                body, {"definition", "description", "displayName", "isOrganizationDefault"}, policy
            )
            changes = dict(body)
            if "definition" in changes:
                changes["definition"] = self._validated_definition(changes["definition"])
            self._apply(policy, changes)

    def delete_claims_mapping_policy(self, policy_id: str) -> None:
        with self.lock:
            self.find_claims_mapping_policy(policy_id)
            del self.claims_mapping_policies[policy_id]
            self.visible_from.pop(policy_id, None)
            for linked in self.policy_links.values():
                if policy_id in linked:
                    linked.remove(policy_id)

    def link_claims_mapping_policy(self, sp_id: str, policy_id: str) -> None:
        with self.lock:
            service_principal = self.find_service_principal(sp_id)
            self.find_claims_mapping_policy(policy_id)
            linked = self.policy_links.setdefault(service_principal["id"], [])
            if policy_id in linked:
                raise bad_request(
                    "One or more added object references already exist for the following "
                    "modified properties: 'claimsMappingPolicies'."
                )
            if linked:
                # Entra allows one claims mapping policy per service principal.
                raise GraphError(
                    409,
                    "Request_BadRequest",
                    "Only one policy of type ClaimsMappingPolicy can be assigned to a service "
                    "principal; remove the current one first.",
                )
            linked.append(policy_id)

    def unlink_claims_mapping_policy(self, sp_id: str, policy_id: str) -> None:
        with self.lock:
            service_principal = self.find_service_principal(sp_id)
            linked = self.policy_links.get(service_principal["id"], [])
            if policy_id not in linked:
                raise not_found(policy_id)
            linked.remove(policy_id)

    def policies_of(self, sp_id: str) -> list[dict[str, Any]]:
        with self.lock:
            return [
                self.claims_mapping_policies[policy_id]
                for policy_id in self.policy_links.get(sp_id, [])
                if policy_id in self.claims_mapping_policies
            ]

    # App role assignments -----------------------------------------------------------------

    def assign(self, sp_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST /servicePrincipals/{id}/appRoleAssignedTo: grant a user, group or app a role."""
        with self.lock:
            resource = self.find_service_principal(sp_id)
            if body.get("resourceId") != resource["id"]:
                raise bad_request(
                    "resourceId must be the id of the service principal in the request URL."
                )
            principal_id = str(body.get("principalId") or "")
            principal = self.directory_object(principal_id)
            if principal is None:
                raise not_found(principal_id)
            principal_type = principal["@odata.type"].rsplit(".", 1)[-1]
            principal_type = principal_type[0].upper() + principal_type[1:]
            role_id = str(body.get("appRoleId") or "")
            roles = {role["id"]: role for role in resource["appRoles"] if role.get("isEnabled")}
            member_type = "Application" if principal_type == "ServicePrincipal" else "User"
            role = roles.get(role_id)
            allowed = role_id == DEFAULT_ACCESS_ROLE_ID and not roles
            if role is not None and member_type in role["allowedMemberTypes"]:
                allowed = True
            if not allowed:
                raise bad_request(
                    f"Permission being assigned was not found on application '{resource['appId']}'."
                )
            for existing in self.app_role_assignments.values():
                if (existing["resourceId"], existing["principalId"], existing["appRoleId"]) == (
                    resource["id"],
                    principal_id,
                    role_id,
                ):
                    raise bad_request("Permission being assigned already exists on the object.")
            assignment = {
                "@odata.type": "#microsoft.graph.appRoleAssignment",
                # Graph's assignment ids are 43 url-safe base64 characters.
                "id": secrets.token_urlsafe(32)[:43],
                "deletedDateTime": None,
                "appRoleId": role_id,
                "createdDateTime": graph_timestamp(),
                "principalDisplayName": principal["displayName"],
                "principalId": principal_id,
                "principalType": principal_type,
                "resourceDisplayName": resource["displayName"],
                "resourceId": resource["id"],
            }
            self.app_role_assignments[assignment["id"]] = assignment
            return copy.deepcopy(assignment)

    def assignments_to(self, sp_id: str) -> list[dict[str, Any]]:
        with self.lock:
            resource = self.find_service_principal(sp_id)
            return [
                assignment
                for assignment in self.app_role_assignments.values()
                if assignment["resourceId"] == resource["id"]
            ]

    def assignments_of(self, principal_id: str) -> list[dict[str, Any]]:
        with self.lock:
            return [
                assignment
                for assignment in self.app_role_assignments.values()
                if assignment["principalId"] == principal_id
            ]

    def unassign(self, sp_id: str, assignment_id: str) -> None:
        with self.lock:
            resource = self.find_service_principal(sp_id)
            assignment = self.app_role_assignments.get(assignment_id)
            if assignment is None or assignment["resourceId"] != resource["id"]:
                raise not_found(assignment_id)
            del self.app_role_assignments[assignment_id]
