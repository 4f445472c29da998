"""Entra's SAML side for one app: its federation metadata and IdP-initiated sign-on responses."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sandbox.entra.tenant import AWS_SINGLE_ACCOUNT_TEMPLATE_ID, GraphError, Tenant
from sandbox.saml_idp import (
    ROLE_ATTRIBUTE,
    ROLE_SESSION_NAME_ATTRIBUTE,
    idp_metadata,
    signed_saml_response,
)

# The claims the AWS Single-Account Access gallery app comes with before any claims mapping
# policy (Microsoft's tutorial for the app: Role from user.assignedroles, RoleSessionName from
# user.userprincipalname).
TEMPLATE_DEFAULT_CLAIMS: dict[str, list[dict[str, str]]] = {
    AWS_SINGLE_ACCOUNT_TEMPLATE_ID: [
        {"Source": "user", "ID": "assignedroles", "SamlClaimType": ROLE_ATTRIBUTE},
        {"Source": "user", "ID": "userprincipalname", "SamlClaimType": ROLE_SESSION_NAME_ATTRIBUTE},
    ]
}
# Claims-mapping "user" source IDs and the user properties they read (Entra claims mapping
# policy reference, "Source: user" table; assignedroles is handled on its own).
USER_SOURCE_PROPERTIES = {
    "userprincipalname": "userPrincipalName",
    "mail": "mail",
    "givenname": "givenName",
    "surname": "surname",
    "displayname": "displayName",
    "objectid": "id",
    "mailnickname": "mailNickname",
    "employeeid": "employeeId",
    "department": "department",
    "jobtitle": "jobTitle",
    "usertype": "userType",
    "preferredlanguage": "preferredLanguage",
    "usagelocation": "usageLocation",
}
RESOURCE_SOURCE_PROPERTIES = {"displayname": "displayName", "objectid": "id", "appid": "appId"}
CLAIMS = "http://schemas.microsoft.com/identity/claims/"
XMLSOAP_CLAIMS = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/"
AUTHENTICATION_METHODS = "http://schemas.microsoft.com/ws/2008/06/identity/authenticationmethod/"


class SignOnError(Exception):
    """A sign-in Entra refuses: HTTP status, the AADSTS code and its message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class SamlPost:
    """What the browser posts to the service provider after an IdP-initiated sign-on."""

    action: str
    saml_response: str
    relay_state: str | None


def issuer(tenant: Tenant) -> str:
    """Entra's SAML issuer and metadata entityID for a tenant."""
    return f"https://sts.windows.net/{tenant.tenant_id}/"


def federation_metadata(tenant: Tenant, *, authority: str, app_id: str | None) -> str:
    """SAML IdP metadata carrying the app's current signing certificate (the tenant's own when
    no app is named or the app has no preferred certificate)."""
    certificate = tenant.tenant_signing_certificate
    if app_id:
        service_principal = _service_principal(tenant, app_id)
        certificate = tenant.active_signing_certificate(service_principal)
    return idp_metadata(
        entity_id=issuer(tenant),
        certificate=certificate,
        sso_url=f"{authority}/{tenant.tenant_id}/saml2",
    )


def _service_principal(tenant: Tenant, app_id: str) -> dict[str, Any]:
    try:
        return tenant.find_service_principal(app_id, by_app_id=True)
    except GraphError as error:
        raise SignOnError(
            400,
            "AADSTS700016",
            f"Application with identifier '{app_id}' was not found in the directory "
            f"'{tenant.domain}'. This can happen if the application has not been installed by "
            "the administrator of the tenant.",
        ) from error


def _user(tenant: Tenant, key: str) -> dict[str, Any]:
    try:
        return tenant.find_user(key)
    except GraphError as error:
        raise SignOnError(
            400,
            "AADSTS50034",
            f"The user account {key} does not exist in the {tenant.tenant_id} directory. To sign "
            "into this application, the account must be added to the directory.",
        ) from error


def assigned_app_roles(
    tenant: Tenant, service_principal: dict[str, Any], user: dict[str, Any]
) -> list[dict[str, Any]] | None:
    """The app roles a user holds on the app, directly or through a group they are a DIRECT
    member of; None when they hold no assignment at all.

    Entra ignores nested groups for app assignment ("group-based assignment ... nested group
    memberships aren't supported"), and AADSTS50105 says so: "not a direct member of a group
    with access".
    """
    with tenant.lock:
        principals = {user["id"], *tenant.direct_groups_of(user["id"])}
        assignments = [
            assignment
            for assignment in tenant.assignments_to(service_principal["id"])
            if assignment["principalId"] in principals
        ]
        if not assignments:
            return None
        roles = {role["id"]: role for role in service_principal["appRoles"]}
        # A role held through several assignments is still one role (one claim value).
        held = dict.fromkeys(a["appRoleId"] for a in assignments if a["appRoleId"] in roles)
        return [roles[role_id] for role_id in held]


def claims_schema(tenant: Tenant, service_principal: dict[str, Any]) -> tuple[list[dict], bool]:
    """The claims the app is configured with: its claims mapping policy's ClaimsSchema (as Graph
    stores it in `definition`) and whether the basic claim set comes too."""
    policies = tenant.policies_of(service_principal["id"])
    if not policies:
        defaults = TEMPLATE_DEFAULT_CLAIMS.get(service_principal.get("applicationTemplateId") or "")
        return list(defaults or []), True
    document = json.loads(policies[0]["definition"][0])["ClaimsMappingPolicy"]
    include_basic = str(document.get("IncludeBasicClaimSet", "false")).lower() == "true"
    return list(document.get("ClaimsSchema") or []), include_basic


def _basic_claims(tenant: Tenant, user: dict[str, Any]) -> dict[str, list[str]]:
    claims = {
        CLAIMS + "tenantid": [tenant.tenant_id],
        CLAIMS + "objectidentifier": [user["id"]],
        CLAIMS + "displayname": [user["displayName"]],
        CLAIMS + "identityprovider": [issuer(tenant)],
        "http://schemas.microsoft.com/claims/authnmethodsreferences": [
            AUTHENTICATION_METHODS + "password"
        ],
        XMLSOAP_CLAIMS + "givenname": [user.get("givenName") or ""],
        XMLSOAP_CLAIMS + "surname": [user.get("surname") or ""],
        XMLSOAP_CLAIMS + "emailaddress": [user.get("mail") or ""],
        XMLSOAP_CLAIMS + "name": [user["userPrincipalName"]],
    }
    return {name: values for name, values in claims.items() if all(values)}


def saml_attributes(
    tenant: Tenant,
    service_principal: dict[str, Any],
    user: dict[str, Any],
    roles: list[dict[str, Any]],
) -> dict[str, list[str]]:
    """Attribute name -> values, exactly as the app's claims configuration produces them."""
    schema, include_basic = claims_schema(tenant, service_principal)
    attributes = _basic_claims(tenant, user) if include_basic else {}
    for entry in schema:
        claim_type = entry.get("SamlClaimType")
        if not claim_type:
            continue
        source = str(entry.get("Source", "")).lower()
        claim_id = str(entry.get("ID", "")).lower()
        if "Value" in entry and not source:
            values = [str(entry["Value"])]
        elif claim_id == "assignedroles" and source in {"user", "application"}:
            values = [role["value"] for role in roles if role.get("value")]
        elif source == "user" and claim_id in USER_SOURCE_PROPERTIES:
            value = user.get(USER_SOURCE_PROPERTIES[claim_id])
            values = [str(value)] if value else []
        elif source in {"application", "resource"} and claim_id in RESOURCE_SOURCE_PROPERTIES:
            value = service_principal.get(RESOURCE_SOURCE_PROPERTIES[claim_id])
            values = [str(value)] if value else []
        else:
            values = []
        if values:
            attributes.setdefault(claim_type, []).extend(values)
    return attributes


def idp_initiated_sign_on(tenant: Tenant, *, app_id: str, user_key: str, post_to: str) -> SamlPost:
    """What Entra posts when a user opens the app from My Apps: a signed SAML response for
    the app's audience and reply URL. `post_to` replaces the reply URL as the form's target
    only (the sandbox's AWS sign-in stands in for signin.aws.amazon.com)."""
    with tenant.lock:
        service_principal = _service_principal(tenant, app_id)
        user = _user(tenant, user_key)
        if not service_principal.get("accountEnabled", True):
            raise SignOnError(
                403,
                "AADSTS7000112",
                f"Application '{app_id}'({service_principal['displayName']}) is disabled.",
            )
        if not user.get("accountEnabled", True):
            raise SignOnError(
                403,
                "AADSTS50057",
                "The user account is disabled. The account has been disabled by an administrator.",
            )
        roles = assigned_app_roles(tenant, service_principal, user)
        if roles is None and service_principal.get("appRoleAssignmentRequired"):
            raise SignOnError(
                403,
                "AADSTS50105",
                f"Your administrator has configured the application "
                f"{service_principal['displayName']} ('{app_id}') to block users unless they are "
                f"specifically granted ('assigned') access to the application. The signed in user "
                f"'{user['userPrincipalName']}' is blocked because they are not a direct member "
                "of a group with access, nor had access directly assigned by an administrator. "
                "Please contact your administrator to assign access to this application.",
            )
        if service_principal.get("preferredSingleSignOnMode") != "saml":
            raise SignOnError(
                400,
                "SandboxSingleSignOnNotSaml",
                f"The application's single sign-on mode is "
                f"'{service_principal.get('preferredSingleSignOnMode')}', not 'saml': set "
                "preferredSingleSignOnMode on the service principal.",
            )
        application = tenant.application_of(service_principal) or {}
        identifiers = application.get("identifierUris") or []
        reply_urls = (application.get("web") or {}).get("redirectUris") or []
        if not identifiers or not reply_urls:
            raise SignOnError(
                400,
                "SandboxSamlNotConfigured",
                "The application has no Identifier (Entity ID) or no Reply URL: set the "
                "application's identifierUris and web.redirectUris.",
            )
        attributes = saml_attributes(tenant, service_principal, user, roles or [])
        certificate = tenant.active_signing_certificate(service_principal)
        relay_state = (service_principal.get("samlSingleSignOnSettings") or {}).get("relayState")
    # Only one app per tenant may hold an identifier, so admins add "#suffix"; Entra drops the
    # fragment from the Audience it sends.
    audience = identifiers[0].split("#", 1)[0]
    response = signed_saml_response(
        issuer=issuer(tenant),
        audience=audience,
        recipient=reply_urls[0],
        name_id=user["userPrincipalName"],
        attributes=attributes,
        certificate=certificate,
    )
    return SamlPost(action=post_to, saml_response=response, relay_state=relay_state or None)
