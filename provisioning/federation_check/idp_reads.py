"""Reads the IdP half of a federation, whoever made it: the Entra enterprise app or the Okta AWS
Account Federation app (sign-on mode, identifier, reply URL, signing certificate, claims, relay
state, role values, the people assigned), or finds the apps that point at a Connect instance.
Read-only calls through the audited clients; a refused read names the permission it needs."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from django.utils.translation import gettext_lazy as _
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph.generated.service_principals.service_principals_request_builder import (
    ServicePrincipalsRequestBuilder,
)

from provisioning.audit import AuditScope
from provisioning.entra.client import graph_client, run_graph
from provisioning.entra.graph_reads import all_pages, all_pages_json, get_or_none
from provisioning.entra.group_members import transitive_user_members
from provisioning.entra.metadata import download_federation_metadata
from provisioning.errors import PermanentError, WaitForCloud
from provisioning.federation_check.result import FIXED_ROLE_CLAIM, refused_as
from provisioning.models import Cloud, Connection
from provisioning.okta import aws_app
from provisioning.okta.client import okta_client
from provisioning.okta.rest import okta_pages
from provisioning.saml import parse_idp_metadata
from provisioning.steps.entra_app import _app_by_key, _preferred_certificate, _service_principal
from provisioning.steps.entra_claims import (
    ROLE_ATTRIBUTE,
    ROLE_SESSION_NAME_ATTRIBUTE,
    SESSION_DURATION_ATTRIBUTE,
)

# The Graph application permissions these reads need (Microsoft Graph permissions reference),
# each with the permissions that cover it, as in provisioning/steps/entra_preflight.py.
ENTRA_READ_PERMISSIONS: dict[str, frozenset[str]] = {
    "Application.Read.All": frozenset(
        {"Application.Read.All", "Application.ReadWrite.All", "Directory.Read.All"}
    ),
    "Policy.Read.All": frozenset({"Policy.Read.All", "Policy.ReadWrite.ApplicationConfiguration"}),
    "User.Read.All": frozenset(
        {"User.Read.All", "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"}
    ),
    "GroupMember.Read.All": frozenset(
        {
            "GroupMember.Read.All",
            "Group.Read.All",
            "Group.ReadWrite.All",
            "Directory.Read.All",
            "Directory.ReadWrite.All",
        }
    ),
}
# Okta API token scopes are an admin role's: a read-only administrator may make these reads
# (Okta, "Administrator roles": Read-only Administrator views apps and users).
OKTA_READ_PERMISSIONS = ("okta.apps.read", "okta.users.read", "okta.groups.read")
# Without a claims mapping policy, the gallery app "AWS Single-Account Access" sends Role from
# user.assignedroles and RoleSessionName from user.userprincipalname (Microsoft Learn, "Configure
# AWS Single-Account Access for single sign-on", default attributes).
DEFAULT_ENTRA_SESSION_NAME_SOURCE = "userprincipalname"
# How many enterprise apps are looked through to find those pointing at an instance, and how many
# assigned people are read: a tenant has far fewer AWS apps; past the cap the check says so.
APP_SCAN_LIMIT = 5000
ASSIGNED_PEOPLE_LIMIT = 5000
# Graph's largest page of service principals ($top 1-999, "List servicePrincipals").
SERVICE_PRINCIPAL_PAGE = 999
# Okta's AWS app with "Use Group Mapping": each group whose whole name matches groupFilter gives a
# Role value, roleValuePattern with ${accountid}, ${role} (its named groups) filled in; Okta
# writes a named group (?{{name}}...) (Okta, "Connect Okta to multiple AWS instances by using
# user groups"; the sandbox's sign_on.py does the same from the same page).
_OKTA_NAMED_GROUP = re.compile(r"\(\?\{\{(\w+)\}\}")
_ROLE_PATTERN_VARIABLE = re.compile(r"\$\{(\w+)\}")


def _certificate(metadata_xml: str) -> dict[str, Any]:
    """The signing certificates the IdP's metadata publishes now (fingerprints, expiry)."""
    try:
        metadata = parse_idp_metadata(metadata_xml, check_dates=False)
    except PermanentError as error:
        return {"error": error.message}
    return {
        "entity_id": metadata.entity_id,
        "fingerprints": sorted(metadata.fingerprints),
        "not_after": metadata.certificate.not_after.isoformat(),
        "subject": metadata.certificate.subject,
    }


def _claims_by_type(definition: list[str] | None) -> dict[str, dict[str, Any]]:
    """A claims mapping policy's ClaimsSchema entries by their SAML claim type."""
    try:
        schema = json.loads((definition or [""])[0])["ClaimsMappingPolicy"]["ClaimsSchema"]
        return {str(entry.get("SamlClaimType")): entry for entry in schema}
    except (ValueError, KeyError, TypeError, AttributeError):
        return {}


def _fixed_role_value(by_type: dict[str, dict[str, Any]]) -> str | None:
    """The Role claim's fixed text, or None when it comes from an attribute. A claim with a Value
    and no Source is fixed text (Microsoft Graph, "claimsMappingPolicy": "Value: the claim's
    constant value"): seeds 000 and 004 type "<role ARN>,<provider ARN>" into the Role claim's
    source attribute, which Entra stores that way."""
    role = by_type.get(ROLE_ATTRIBUTE, {})
    return str(role["Value"]) if "Value" in role and not role.get("Source") else None


def _claims(policies: list[Any]) -> dict[str, Any]:
    """Where the Role, RoleSessionName and SessionDuration claims come from."""
    if not policies:
        return {
            "policy": False,
            "role": "assignedroles",
            "session_name": DEFAULT_ENTRA_SESSION_NAME_SOURCE,
            "session_duration": "",
        }
    by_type = _claims_by_type(policies[0].definition)
    role = by_type.get(ROLE_ATTRIBUTE, {})
    fixed = _fixed_role_value(by_type)
    if fixed is not None:
        return {
            "policy": True,
            "role": FIXED_ROLE_CLAIM,
            "role_value": fixed,
            "session_name": str(by_type.get(ROLE_SESSION_NAME_ATTRIBUTE, {}).get("ID", "")),
            "session_duration": str(by_type.get(SESSION_DURATION_ATTRIBUTE, {}).get("Value", "")),
        }
    return {
        "policy": True,
        "role": str(role.get("ID", "")),
        "session_name": str(by_type.get(ROLE_SESSION_NAME_ATTRIBUTE, {}).get("ID", "")),
        "session_duration": str(by_type.get(SESSION_DURATION_ATTRIBUTE, {}).get("Value", "")),
    }


def _entra_role_values(application: Any, claims: dict[str, Any]) -> list[str]:
    """The Role values the app sends: its fixed text when the claim is one (the app roles are
    then never sent), else the enabled app roles holding a role and provider ARN pair."""
    if claims["role"] == FIXED_ROLE_CLAIM:
        return [claims["role_value"]] if "," in claims["role_value"] else []
    return sorted(
        str(role.value)
        for role in application.app_roles or []
        if role.is_enabled and role.value and "," in str(role.value)
    )


def _entra_people(client: Any, sp_id: str, source: str) -> list[dict[str, str]]:
    """The people assigned to the app, directly or through a group (nested groups too), with
    the RoleSessionName Entra sends for each."""
    builder = client.service_principals.by_service_principal_id(sp_id).app_role_assigned_to
    with refused_as("connect_users", _("the app's assignments"), "Application.Read.All"):
        assignments, _more = all_pages(builder, builder.get(), limit=ASSIGNED_PEOPLE_LIMIT)
    people: dict[str, dict[str, str]] = {}

    def add(user: dict[str, Any], via: str) -> None:
        login = str(user.get("userPrincipalName") or "")
        sent = str((user.get("mail") if source == "mail" else login) or "")
        people.setdefault(str(user["id"]), {"login": login, "session_name": sent, "via": via})

    for assignment in assignments:
        principal = str(assignment.principal_id)
        if assignment.principal_type == "User":
            with refused_as("connect_users", _("an assigned user"), "User.Read.All"):
                user = get_or_none(client.users.by_user_id(principal).get())
            if user is not None:
                add(
                    {
                        "id": user.id,
                        "userPrincipalName": user.user_principal_name,
                        "mail": user.mail,
                    },
                    "",
                )
        elif assignment.principal_type == "Group":
            with refused_as(
                "connect_users", _("an assigned group's members"), "GroupMember.Read.All"
            ):
                members, _more = transitive_user_members(
                    client, principal, limit=ASSIGNED_PEOPLE_LIMIT
                )
            for member in members:
                add(member, str(assignment.principal_display_name or principal))
    return sorted(people.values(), key=lambda person: person["login"].lower())


def _entra_app(
    connection: Connection, client: Any, application: Any, audit: AuditScope
) -> dict[str, Any]:
    service_principal = _service_principal(client, str(application.app_id))
    if service_principal is None:
        return {"app_id": str(application.app_id), "name": str(application.display_name)}
    thumbprint, end = _preferred_certificate(service_principal)
    sp_id = str(service_principal.id)
    builder = client.service_principals.by_service_principal_id(sp_id).claims_mapping_policies
    with refused_as("claims", _("the app's claims mapping policy"), "Policy.Read.All"):
        policies = run_graph(builder.get()).value or []
    claims = _claims(list(policies))
    metadata_xml = download_federation_metadata(connection, str(application.app_id), audit=audit)
    settings = service_principal.saml_single_sign_on_settings
    return {
        "app_id": str(application.app_id),
        "name": str(application.display_name or ""),
        "enabled": bool(service_principal.account_enabled),
        "sso_mode": str(service_principal.preferred_single_sign_on_mode or ""),
        "identifiers": list(application.identifier_uris or []),
        "reply_urls": list((application.web.redirect_uris if application.web else None) or []),
        "relay_state": str((settings.relay_state if settings else "") or ""),
        "signing": {
            "thumbprint": thumbprint,
            "not_after": end.isoformat() if end else "",
        },
        "metadata": _certificate(metadata_xml),
        "role_values": _entra_role_values(application, claims),
        "claims": claims,
        "people": _entra_people(client, sp_id, claims["session_name"]),
    }


def _entra_candidates(client: Any, points_at: Callable[[str, list[str]], bool]) -> list[str]:
    """The appIds of the apps whose relay state, role values or fixed-text Role claim point at
    the instance. The service principals are read as plain JSON with only these fields: a tenant
    has thousands of them, and the SDK's models cost ~18 ms each (all_pages_json in
    provisioning/entra/graph_reads.py)."""
    builder = client.service_principals
    query = ServicePrincipalsRequestBuilder.ServicePrincipalsRequestBuilderGetQueryParameters(
        select=["appId", "samlSingleSignOnSettings", "appRoles"], top=SERVICE_PRINCIPAL_PAGE
    )
    request = builder.to_get_request_information(RequestConfiguration(query_parameters=query))
    with refused_as("idp_app", _("the enterprise apps"), "Application.Read.All"):
        found, _more = all_pages_json(builder, request, limit=APP_SCAN_LIMIT)
    matching = []
    for service_principal in found:
        relay = str(
            (service_principal.get("samlSingleSignOnSettings") or {}).get("relayState") or ""
        )
        values = [str(role.get("value") or "") for role in service_principal.get("appRoles") or []]
        if points_at(relay, values):
            matching.append(str(service_principal["appId"]))
    for app_id in _fixed_role_claim_apps(client, points_at):
        if app_id not in matching:
            matching.append(app_id)
    return matching


def _fixed_role_claim_apps(client: Any, points_at: Callable[[str, list[str]], bool]) -> list[str]:
    """The appIds of the apps whose claims mapping policy types the Role claim as fixed text
    pointing at the instance: such an app sends that text, not its app roles, and may have no
    relay state. Read from the tenant's policies, then each matching policy's appliesTo (Microsoft
    Graph, "List claimsMappingPolicies" and claimsMappingPolicy "List appliesTo"): one call per
    matching policy rather than one per service principal."""
    builder = client.policies.claims_mapping_policies
    with refused_as("idp_app", _("the claims mapping policies"), "Policy.Read.All"):
        policies, _more = all_pages_json(
            builder, builder.to_get_request_information(), limit=APP_SCAN_LIMIT
        )
    found: list[str] = []
    for policy in policies:
        fixed = _fixed_role_value(_claims_by_type(policy.get("definition")))
        if not fixed or not points_at("", [fixed]):
            continue
        applies_to = builder.by_claims_mapping_policy_id(str(policy["id"])).applies_to
        with refused_as("idp_app", _("the apps a policy applies to"), "Policy.Read.All"):
            targets, _more = all_pages_json(
                applies_to, applies_to.to_get_request_information(), limit=APP_SCAN_LIMIT
            )
        found.extend(str(target["appId"]) for target in targets if target.get("appId"))
    return found


def read_entra(
    connection: Connection,
    *,
    audit: AuditScope,
    app_id: str,
    points_at: Callable[[str, list[str]], bool],
) -> list[dict[str, Any]]:
    """The app `app_id` (appId or object id), or else every app that points at the instance."""
    client = graph_client(connection, audit=audit)
    if app_id:
        with refused_as("idp_app", app_id, "Application.Read.All"):
            application = _app_by_key(client, app_id)
        return [] if application is None else [_entra_app(connection, client, application, audit)]
    apps = []
    for candidate in _entra_candidates(client, points_at):
        application = _app_by_key(client, candidate)
        if application is not None:
            apps.append(_entra_app(connection, client, application, audit))
    return apps


def _fill_role_pattern(pattern: str, captured: dict[str, str | None]) -> str:
    return _ROLE_PATTERN_VARIABLE.sub(lambda m: captured.get(m[1]) or m[0], pattern)


def _group_mapped_roles(client: Any, settings: dict[str, Any]) -> list[str]:
    """The Role values the app's group mapping makes of the org's groups."""
    group_filter, pattern = settings.get("groupFilter"), settings.get("roleValuePattern")
    if not settings.get("useGroupMapping") or not group_filter or not pattern:
        return []
    try:
        regex = re.compile(_OKTA_NAMED_GROUP.sub(r"(?P<\1>", str(group_filter)))
    except re.error:
        return []
    with refused_as("claims", _("the Okta groups"), "okta.groups.read"):
        groups = list(okta_pages(client, "/api/v1/groups", params={"limit": 200}))
    values = []
    for group in groups:
        match = regex.fullmatch(str((group.get("profile") or {}).get("name") or ""))
        if match:
            values.append(_fill_role_pattern(str(pattern), match.groupdict()))
    return values


def _okta_app_users(client: Any, app_id: str, *, with_user: bool = False) -> list[dict[str, Any]]:
    """The app's assigned people, 500 a page (the list's largest); `with_user` has each one's
    User object embedded in `_embedded.user` (expand=user: okta-sdk-python 3.4.6,
    okta/api/application_users_api.py, list_application_users), rather than one read each."""
    params: dict[str, Any] = {"limit": 500, **({"expand": "user"} if with_user else {})}
    with refused_as("connect_users", _("the app's users"), "okta.apps.read"):
        return list(okta_pages(client, f"{aws_app.app_path(app_id)}/users", params=params))


def _okta_reading(
    client: Any, app: dict[str, Any], people: list[dict[str, str]], **read: Any
) -> dict[str, Any]:
    """What the check reads of any Okta SAML app: its own fields, its signing certificate from
    the metadata, its people; `read` adds where it keeps the SAML settings (identifiers,
    reply_urls, role_values, claims), which the AWS app and a custom one keep apart."""
    app_id = str(app["id"])
    try:
        metadata = _certificate(aws_app.metadata_xml(client, app_id))
    except WaitForCloud as waiting:
        metadata = {"error": waiting.reason}
    return {
        "app_id": app_id,
        # The app's kind: Okta's AWS Account Federation app (aws_app.AWS_APP_NAME), which the
        # Okta setup flows manage and so can repair, or a custom SAML app they can't.
        "okta_app_name": str(app.get("name") or ""),
        "name": str(app.get("label") or ""),
        "enabled": app.get("status") == "ACTIVE",
        "sso_mode": str(app.get("signOnMode") or ""),
        "relay_state": aws_app.relay_state_of(app),
        "signing": {"kid": aws_app.signing_kid(app), "not_after": ""},
        "metadata": metadata,
        "people": sorted(people, key=lambda person: person["login"].lower()),
        **read,
    }


def _okta_app(client: Any, app: dict[str, Any]) -> dict[str, Any]:
    """The AWS Account Federation app: Role from its users' samlRoles (or group mapping),
    RoleSessionName from its username template."""
    settings = aws_app.app_settings(app)
    provider_arn = str(settings.get("identityProviderArn") or "")
    account = provider_arn.split(":")[4] if provider_arn.count(":") >= 5 else ""
    people = []
    roles: set[str] = set()
    for user in _okta_app_users(client, str(app["id"])):
        profile = user.get("profile") or {}
        names = profile.get("samlRoles") or ([profile["role"]] if profile.get("role") else [])
        roles.update(str(name) for name in names)
        people.append(
            {
                "login": str((user.get("credentials") or {}).get("userName") or ""),
                "session_name": str((user.get("credentials") or {}).get("userName") or ""),
                "via": "",
            }
        )
    partition = provider_arn.split(":")[1] if provider_arn.count(":") >= 5 else "aws"
    template = ((app.get("credentials") or {}).get("userNameTemplate") or {}).get("template", "")
    return _okta_reading(
        client,
        app,
        people,
        identifiers=[],
        reply_urls=[str(settings.get("loginURL") or "")] if settings.get("loginURL") else [],
        role_values=sorted(
            {
                *_group_mapped_roles(client, settings),
                *(
                    f"arn:{partition}:iam::{account}:role/{name},{provider_arn}"
                    for name in (roles if account else ())
                ),
            }
        ),
        # Which Okta flow built it: the role by group mapping, or downloaded from AWS.
        use_group_mapping=bool(settings.get("useGroupMapping")),
        claims={
            "policy": False,
            "role": "samlRoles",
            "session_name": str(template),
            "session_duration": str(settings.get("sessionDuration") or ""),
        },
    )


def _statement_values(sign_on: dict[str, Any], name: str) -> list[str]:
    """The values of the custom SAML app's attribute statement `name` (okta-sdk-python 3.4.6,
    okta/models/saml_application_settings_sign_on.py, attributeStatements)."""
    for statement in sign_on.get("attributeStatements") or []:
        if isinstance(statement, dict) and statement.get("name") == name:
            return [str(value) for value in statement.get("values") or []]
    return []


def _fixed_text(expression: str) -> str:
    """The text of an Okta Expression Language string literal ("..." or '...'), else the
    expression unchanged: hand-made Connect apps type the Role value as a quoted constant."""
    stripped = expression.strip()
    if len(stripped) >= 2 and stripped[0] == stripped[-1] and stripped[0] in "\"'":
        return stripped[1:-1]
    return stripped


def _okta_custom_app(client: Any, app: dict[str, Any]) -> dict[str, Any]:
    """A custom SAML 2.0 app: Role, RoleSessionName and SessionDuration come from its attribute
    statements, the relay state from settings.signOn.defaultRelayState."""
    sign_on = _sign_on(app)
    session_source = next(iter(_statement_values(sign_on, ROLE_SESSION_NAME_ATTRIBUTE)), "")
    field = session_source.strip().removeprefix("user.")
    from_profile = session_source.strip().startswith("user.") and field != "login"
    people = []
    for user in _okta_app_users(client, str(app["id"]), with_user=from_profile):
        login = str((user.get("credentials") or {}).get("userName") or "")
        sent = login
        if from_profile:
            profile = ((user.get("_embedded") or {}).get("user") or {}).get("profile")
            sent = str((profile or {}).get(field) or "")
        people.append({"login": login, "session_name": sent, "via": ""})
    duration = next(iter(_statement_values(sign_on, SESSION_DURATION_ATTRIBUTE)), "")
    return _okta_reading(
        client,
        app,
        people,
        identifiers=[str(sign_on["audience"])] if sign_on.get("audience") else [],
        reply_urls=[str(sign_on["ssoAcsUrl"])] if sign_on.get("ssoAcsUrl") else [],
        # Where Okta posts the response, and the Recipient and Destination it writes in it
        # (okta-sdk-python 3.4.6, okta/models/saml_application_settings_sign_on.py: ssoAcsUrl,
        # recipient, destination; the admin console's "Use this for Recipient URL and
        # Destination URL" sets both to the single sign-on URL).
        sign_on_urls={
            key: str(sign_on.get(key) or "") for key in ("ssoAcsUrl", "recipient", "destination")
        },
        role_values=sorted(
            value
            for value in map(_fixed_text, _statement_values(sign_on, ROLE_ATTRIBUTE))
            if "," in value
        ),
        claims={
            "policy": False,
            "role": "attributeStatements",
            "session_name": session_source,
            "session_duration": _fixed_text(duration),
        },
    )


def _sign_on(app: dict[str, Any]) -> dict[str, Any]:
    return dict((app.get("settings") or {}).get("signOn") or {})


def _is_custom_saml(app: dict[str, Any]) -> bool:
    return app.get("name") != aws_app.AWS_APP_NAME and app.get("signOnMode") == aws_app.SAML_2_0


def _okta_read(client: Any, app: dict[str, Any]) -> dict[str, Any]:
    return _okta_custom_app(client, app) if _is_custom_saml(app) else _okta_app(client, app)


def read_okta(
    connection: Connection,
    *,
    audit: AuditScope,
    app_id: str,
    points_at: Callable[[str, list[str]], bool],
) -> list[dict[str, Any]]:
    """The app `app_id`, or else every AWS Account Federation app, and every custom SAML app
    with a Role attribute statement, pointing at the instance."""
    client = okta_client(connection, audit=audit)
    if app_id:
        with refused_as("idp_app", app_id, "okta.apps.read"):
            app = aws_app.get_app(client, app_id)
        return [] if app is None else [_okta_read(client, app)]
    with refused_as("idp_app", _("the Okta apps"), "okta.apps.read"):
        listed = list(okta_pages(client, "/api/v1/apps", params={"limit": 200}))
    apps = []
    for app in listed:
        if _is_custom_saml(app):
            if not _statement_values(_sign_on(app), ROLE_ATTRIBUTE):
                continue
        elif app.get("name") != aws_app.AWS_APP_NAME:
            continue
        read = _okta_read(client, app)
        if points_at(read["relay_state"], read["role_values"]):
            apps.append(read)
    return apps


def read_idp(
    connection: Connection,
    *,
    audit: AuditScope,
    app_id: str,
    points_at: Callable[[str, list[str]], bool],
) -> list[dict[str, Any]]:
    reader = read_entra if connection.cloud == Cloud.ENTRA else read_okta
    return reader(connection, audit=audit, app_id=app_id, points_at=points_at)
