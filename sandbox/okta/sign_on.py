"""IdP-initiated sign-on into AWS as Okta's AWS app does it: claims, signed response, form."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

from sandbox.okta.org import AwsApp, OktaOrg, OrgUser
from sandbox.saml_idp import (
    ROLE_ATTRIBUTE,
    ROLE_SESSION_NAME_ATTRIBUTE,
    SESSION_DURATION_ATTRIBUTE,
    signed_saml_response,
)

# awsEnvironmentType -> (ACS URL = Recipient and Destination, Audience). The audience is AWS's own
# SP entity id (the entityID of https://signin.aws.amazon.com/static/saml-metadata.xml), which is
# what Okta's AWS app puts in AudienceRestriction; AWS accepts it as well as the ACS URL.
AWS_SIGN_IN = {
    "aws.amazon": ("https://signin.aws.amazon.com/saml", "urn:amazon:webservices"),
    "aws.cn": ("https://signin.amazonaws.cn/saml", "urn:amazon:webservices:cn-north-1"),
    "aws-us-gov": ("https://signin.amazonaws-us-gov.com/saml", "urn:amazon:webservices:govcloud"),
}
OKTA_ISSUER_PREFIX = "http://www.okta.com/"
DEFAULT_SESSION_DURATION_S = 3600
# Okta writes named groups in groupFilter as (?{{name}}...); Python spells them (?P<name>...).
_OKTA_NAMED_GROUP = re.compile(r"\(\?\{\{(\w+)\}\}")
_ROLE_PATTERN_VARIABLE = re.compile(r"\$\{(\w+)\}")
_PROVIDER_ARN = re.compile(r"^arn:(?P<partition>[\w-]+):iam::(?P<account>\d{12}):saml-provider/")


@dataclass(frozen=True)
class SignOn:
    saml_response: str
    relay_state: str
    action: str
    user_name: str
    roles: list[str]


def group_filter_regex(group_filter: str) -> re.Pattern[str]:
    """The app's groupFilter as a Python pattern; re.error if Okta would refuse it too."""
    return re.compile(_OKTA_NAMED_GROUP.sub(r"(?P<\1>", group_filter))


def issuer_of(app: AwsApp) -> str:
    return OKTA_ISSUER_PREFIX + app.external_key


def sso_url_of(org: OktaOrg, app: AwsApp) -> str:
    return f"{org.org_url}/app/amazon_aws/{app.external_key}/sso/saml"


def _fill_role_pattern(pattern: str, captured: dict[str, str | None]) -> str:
    return _ROLE_PATTERN_VARIABLE.sub(lambda m: captured.get(m[1]) or m[0], pattern)


def _group_mapped_roles(org: OktaOrg, app: AwsApp, user: OrgUser) -> list[str]:
    """Use Group Mapping: each of the user's Okta groups whose whole name matches groupFilter gives
    one Role value, roleValuePattern with ${accountid}, ${role} (any named group) filled in. An
    appFilter without "okta" excludes Okta-mastered groups, the only kind the sandbox has."""
    settings = app.app_settings
    app_filter = settings.get("appFilter")
    if app_filter and "okta" not in {part.strip().lower() for part in app_filter.split(",")}:
        return []
    group_filter, pattern = settings.get("groupFilter"), settings.get("roleValuePattern")
    if not group_filter or not pattern:
        return []
    regex = group_filter_regex(group_filter)
    values = []
    for group_id in org.group_ids_of(user.id):
        match = regex.fullmatch(org.groups[group_id].name)
        if match:
            values.append(_fill_role_pattern(pattern, match.groupdict()))
    return values


def _assigned_roles(org: OktaOrg, app: AwsApp, user: OrgUser) -> list[str]:
    """Roles picked in the assignments: the direct one's, or else the highest-priority group's;
    with joinAllRoles, all of them. Each becomes "<role ARN>,<identityProviderArn>"."""
    settings = app.app_settings
    direct = app.users.get(user.id)
    groups = org.assigning_groups(app, user.id)
    if settings.get("joinAllRoles"):
        profiles = ([direct.profile] if direct else []) + [g.profile for g in groups]
    elif direct is not None:
        profiles = [direct.profile]
    else:
        profiles = [groups[0].profile] if groups else []
    names: list[str] = []
    for profile in profiles:
        names += list(profile.get("samlRoles") or [])
        if profile.get("role"):
            names.append(profile["role"])
    provider_arn = settings.get("identityProviderArn") or ""
    provider = _PROVIDER_ARN.match(provider_arn)
    downloaded = app.provisioning.roles if app.provisioning else {}
    values = []
    for name in dict.fromkeys(names):
        role_arn = downloaded.get(name)
        if role_arn is None and provider is not None:
            role_arn = f"arn:{provider['partition']}:iam::{provider['account']}:role/{name}"
        if role_arn is not None:
            values.append(f"{role_arn},{provider_arn}")
    return values


def role_values(org: OktaOrg, app: AwsApp, user: OrgUser) -> list[str]:
    with org.lock:
        if app.app_settings.get("useGroupMapping"):
            return _group_mapped_roles(org, app, user)
        return _assigned_roles(org, app, user)


def sign_on(org: OktaOrg, app: AwsApp, user: OrgUser, *, action: str) -> SignOn:
    """The signed SAML response Okta would post to AWS for `user` opening `app`."""
    with org.lock:
        settings = app.app_settings
        acs_url, audience = AWS_SIGN_IN[settings.get("awsEnvironmentType") or "aws.amazon"]
        user_name = org.app_username(app, user)
        roles = role_values(org, app, user)
        duration = settings.get("sessionDuration") or DEFAULT_SESSION_DURATION_S
        relay_state = app.sign_on_settings.get("defaultRelayState") or ""
        certificate, issuer = app.certificate, issuer_of(app)
    attributes = {
        ROLE_SESSION_NAME_ATTRIBUTE: [user_name],
        SESSION_DURATION_ATTRIBUTE: [str(duration)],
    }
    if roles:
        attributes = {ROLE_ATTRIBUTE: roles, **attributes}
    response = signed_saml_response(
        issuer=issuer,
        audience=audience,
        recipient=acs_url,
        name_id=user_name,
        attributes=attributes,
        certificate=certificate,
    )
    return SignOn(response, relay_state, action, user_name, roles)


def form_page(result: SignOn, *, app_label: str) -> str:
    """The page Okta serves between sign-on and AWS: a form posting the response. Without inline
    script the user presses the button (a browser test clicks it)."""
    esc = html.escape
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f"<title>Signing in to {esc(app_label)}</title></head>\n"
        f"<body><h1>Signing in to {esc(app_label)}</h1>\n"
        f'<form id="appForm" method="POST" action="{esc(result.action)}">\n'
        f'<input type="hidden" name="SAMLResponse" value="{esc(result.saml_response)}">\n'
        f'<input type="hidden" name="RelayState" value="{esc(result.relay_state)}">\n'
        '<button type="submit">Continue</button>\n'
        "</form></body></html>\n"
    )


def error_page(title: str, message: str) -> str:
    esc = html.escape
    return (
        "<!doctype html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title></head>\n'
        f'<body><h1>{esc(title)}</h1><p class="okta-error">{esc(message)}</p></body></html>\n'
    )
