"""What each finding of a federation check says, in the reader's language: what is wrong, why it
breaks sign-in (with the error the user sees), and the fix. Findings keep only a code and
parameters; these texts render them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from provisioning.federation_check.result import Finding
from provisioning.messages import render


@dataclass(frozen=True)
class FindingText:
    what: Promise
    why: Promise
    fix: Promise


LINK_LABELS: dict[str, Promise] = {
    "idp_app": _("IdP app"),
    "claims": _("Claims and relay state"),
    "saml_provider": _("IAM SAML provider"),
    "federation_role": _("Federation role and policy"),
    "connect_instance": _("Connect instance"),
    "connect_users": _("Connect users"),
}

TEXTS: dict[str, FindingText] = {
    "instance_not_found": FindingText(
        _("No Connect instance %(instance)s in %(region)s."),
        _("The relay state can only lead into an instance that exists."),
        _("Check the instance ID or alias and the region."),
    ),
    "instance_not_active": FindingText(
        _("The Connect instance is %(status)s, not ACTIVE."),
        _("Connect refuses the federation with “Bad Request”."),
        _("Wait for the instance to become active, or check another instance."),
    ),
    "instance_not_saml": FindingText(
        _("The Connect instance manages identities as %(kind)s, not SAML."),
        _("Only an instance made for SAML accepts a federated sign-in: users see “Bad Request”."),
        _("Use an instance created with SAML identity management (it can't be changed later)."),
    ),
    "app_not_found": FindingText(
        _("The IdP has no app with the ID %(app_id)s."),
        _("Without the app, nobody can start a sign-in."),
        _("Copy the app's ID from the IdP's admin console, or leave it empty to search."),
    ),
    "no_app_points_here": FindingText(
        _("No app of the IdP has a relay state or role claim pointing at instance %(instance)s."),
        _("Nothing signs users in to this instance through this IdP."),
        _("Give the app's ID, or set the relay state of the app to this instance."),
    ),
    "several_apps": FindingText(
        _("Other apps point at this instance too: %(names)s."),
        _("Only the first was checked; the others may be broken and confuse users."),
        _("Check each one with its app ID, and remove the apps nobody uses."),
    ),
    "app_disabled": FindingText(
        _("The app %(name)s is disabled."),
        _("The IdP refuses every sign-in to a disabled app before AWS sees it."),
        _("Enable the app in the IdP's admin console."),
    ),
    "app_not_saml": FindingText(
        _("The app signs on with %(mode)s, not SAML."),
        _("AWS sign-in only accepts a SAML response, so nobody reaches Connect."),
        _("Set the app's single sign-on method to SAML."),
    ),
    "identifier_wrong": FindingText(
        _("The app's identifier is %(found)s, not %(wanted)s."),
        _(
            "AWS refuses an assertion for another audience: users see “Your request included an "
            "invalid SAML response.”"
        ),
        _("Set the identifier (Entity ID) to %(wanted)s, with a #suffix if several apps need it."),
    ),
    "reply_url_wrong": FindingText(
        _("The app's reply URL is %(found)s, not AWS sign-in's."),
        _("The IdP posts the response somewhere AWS doesn't receive it, or the role refuses it."),
        _("Set the reply URL (Assertion Consumer Service URL) to %(wanted)s."),
    ),
    "okta_sso_url_wrong": FindingText(
        _("The app's Single sign-on URL is %(found)s, not AWS sign-in's."),
        _(
            "Okta posts the SAML response to that address, not to AWS: users land on whatever "
            "answers there and never reach Connect."
        ),
        _(
            "In the app's SAML settings, set the Single sign-on URL to %(wanted)s and tick “Use "
            "this for Recipient URL and Destination URL”."
        ),
    ),
    "okta_recipient_wrong": FindingText(
        _("The app's Recipient URL or Destination URL is %(found)s, not AWS sign-in's."),
        _(
            "AWS refuses a response addressed elsewhere: users see “Your request included an "
            "invalid SAML response.”"
        ),
        _(
            "Set the Recipient URL and Destination URL to %(wanted)s, or tick “Use this for "
            "Recipient URL and Destination URL”."
        ),
    ),
    "okta_audience_wrong": FindingText(
        _("The app's Audience URI (SP Entity ID) is %(found)s, not %(wanted)s."),
        _(
            "AWS refuses an assertion for another audience: users see “Your request included an "
            "invalid SAML response.”"
        ),
        _(
            "Set the Audience URI (SP Entity ID) to %(wanted)s (urn:amazon:webservices is "
            "accepted too)."
        ),
    ),
    "metadata_unreadable": FindingText(
        _("The IdP's metadata for the app can't be read: %(error)s"),
        _("Without it the signing certificate can't be compared with IAM's."),
        _("Check that the app has an active signing certificate."),
    ),
    "certificate_expired": FindingText(
        _("The app's signing certificate expired on %(date)s."),
        _(
            "IAM does not check a signing certificate's dates, so sign-ins may still work; but the "
            "IdP now signs with a certificate past its end, and any part of the chain that "
            "enforces the dates refuses every sign-in at once."
        ),
        _(
            "Create a new signing certificate in the IdP, make it active, and upload the new "
            "metadata to the IAM SAML provider."
        ),
    ),
    "certificate_expiring": FindingText(
        _("The app's signing certificate expires on %(date)s, in %(days)s days."),
        _(
            "After that day the IdP signs with an expired certificate. IAM does not check the "
            "dates, but any part of the chain that does refuses every sign-in."
        ),
        _(
            "Create a new signing certificate in the IdP, then upload the new metadata to the IAM "
            "SAML provider before switching to it."
        ),
    ),
    "relay_state_missing": FindingText(
        _("The app has no relay state."),
        _("After sign-in, AWS opens the AWS console instead of Amazon Connect."),
        _("Set the relay state to %(wanted)s."),
    ),
    "relay_state_not_connect": FindingText(
        _("The relay state %(relay_state)s does not lead into Amazon Connect."),
        _("After sign-in, users land in the AWS console, not in Connect."),
        _("Set the relay state to %(wanted)s."),
    ),
    "relay_state_other_instance": FindingText(
        _("The relay state leads to instance %(found)s, not %(wanted)s."),
        _("Users are sent to another instance, where Connect answers “Bad Request”."),
        _("Set the relay state to this instance's federation URL."),
    ),
    "no_role_values": FindingText(
        _("The app sends no Role value (role ARN and SAML provider ARN)."),
        _(
            "AWS needs the Role attribute to choose a role: users see “Your request included an "
            "invalid SAML response.”"
        ),
        _(
            "Add an app role whose value is “<role ARN>,<provider ARN>” (Entra) or set the "
            "Identity Provider ARN and roles (Okta), and assign it."
        ),
    ),
    "role_claim_wrong": FindingText(
        _("The Role claim comes from %(source)s, not from the assigned roles."),
        _("AWS receives no usable role and refuses the sign-in as an invalid SAML response."),
        _("Map https://aws.amazon.com/SAML/Attributes/Role to user.assignedroles."),
    ),
    "no_session_name_claim": FindingText(
        _("The app sends no RoleSessionName."),
        _("AWS refuses a response without it as an invalid SAML response."),
        _(
            "Map https://aws.amazon.com/SAML/Attributes/RoleSessionName to the attribute that "
            "equals each Connect username."
        ),
    ),
    "session_duration_too_long": FindingText(
        _("The app asks for %(duration)s s sessions; role %(role)s allows at most %(maximum)s."),
        _(
            "AWS refuses the sign-in: “The requested DurationSeconds exceeds the "
            "MaxSessionDuration set for this role.”"
        ),
        _("Lower the SessionDuration claim, or raise the role's maximum session duration."),
    ),
    "provider_missing": FindingText(
        _("IAM has no SAML provider %(provider)s, which the Role value names."),
        _("AWS can't verify the response: users see “invalid SAML response”."),
        _("Create the IAM SAML provider with the IdP's metadata, or fix the Role value."),
    ),
    "provider_metadata_unreadable": FindingText(
        _("The metadata IAM holds for %(provider)s can't be read: %(error)s"),
        _("AWS can't verify responses against it."),
        _("Upload the IdP's current metadata to the IAM SAML provider."),
    ),
    "provider_certificate_mismatch": FindingText(
        _("IAM provider %(provider)s holds another certificate than the IdP signs with now."),
        _(
            "AWS can't verify the signature: users see “Your request included an invalid SAML "
            "response.”"
        ),
        _("Download the app's federation metadata and upload it to the IAM SAML provider."),
    ),
    "provider_issuer_mismatch": FindingText(
        _("IAM provider %(provider)s expects issuer %(held)s; the IdP is %(current)s."),
        _("AWS refuses responses from another issuer as an invalid SAML response."),
        _("Upload the IdP's current metadata to the IAM SAML provider."),
    ),
    "role_missing": FindingText(
        _("IAM has no role %(role)s, which the Role value names."),
        _("AWS says “Not authorized to perform sts:AssumeRoleWithSAML”."),
        _("Create the role, or fix the role ARN in the Role value."),
    ),
    "role_trust_refuses": FindingText(
        _("Role %(role)s does not trust %(provider)s for SAML:aud %(audience)s."),
        _("AWS says “Not authorized to perform sts:AssumeRoleWithSAML”."),
        _(
            "Let the trust policy allow sts:AssumeRoleWithSAML for the Federated principal "
            "%(provider)s with SAML:aud %(audience)s."
        ),
    ),
    "no_federation_permission": FindingText(
        _("Role %(role)s may not call connect:GetFederationToken on instance %(instance)s."),
        _(
            "Sign-in to AWS works, then Connect says “Access denied, contact your AWS account "
            "administrator”."
        ),
        _(
            "Attach a policy allowing connect:GetFederationToken on this instance's users "
            "(arn:…:instance/%(instance)s/user/${aws:userid})."
        ),
    ),
    "nobody_assigned": FindingText(
        _("Nobody is assigned to the app."),
        _("The IdP refuses everyone before AWS is asked."),
        _("Assign the people or groups who should sign in to Connect."),
    ),
    "session_name_invalid": FindingText(
        _("These people's RoleSessionName can't be a Connect username: %(names)s"),
        _(
            "AWS refuses the response: “RoleSessionName in AuthnResponse must match "
            "[a-zA-Z_0-9+=,.@-]{2,64}”, or no Connect user can have that name."
        ),
        _("Send another attribute as RoleSessionName, or change these people's attribute."),
    ),
    "username_case_differs": FindingText(
        _("These RoleSessionNames differ from their Connect username only in case: %(names)s"),
        _(
            "Connect usernames are case-sensitive: the user sees “Your account has not been "
            "onboarded to Amazon Connect”."
        ),
        _("Rename the Connect users to match exactly what the IdP sends."),
    ),
    "person_without_user": FindingText(
        _("These assigned people have no Connect user: %(names)s"),
        _("They get “Your account has not been onboarded to Amazon Connect”."),
        _("Create Connect users with exactly these usernames, or unassign these people."),
    ),
    "session_name_from_other_attribute": FindingText(
        _(
            "The app sends RoleSessionName from %(source)s, but these people's Connect users are "
            "named after their UPN: %(names)s"
        ),
        _(
            "AWS signs them in under the %(source)s value, which no Connect user has: they get "
            "“Your account has not been onboarded to Amazon Connect”."
        ),
        _(
            "Map RoleSessionName to user.userprincipalname, or rename the Connect users to what "
            "%(source)s holds."
        ),
    ),
    "user_nobody_signs_in_as": FindingText(
        _("Nobody assigned to the app signs in as these Connect users: %(names)s"),
        _("These users can't sign in through this IdP (it never sends their username)."),
        _("Assign the people they belong to, or remove users nobody uses."),
    ),
}


def _params(finding: Finding) -> dict[str, Any]:
    params = dict(finding.params)
    # Checks stored before the relay-state findings carried the URL to set.
    params.setdefault("wanted", "https://<region>.console.aws.amazon.com/connect/federate/<ID>")
    if params.get("more"):
        params["names"] = f"{params.get('names', '')} (+{params['more']})"
    return params


def unread_text(unread: dict[str, Any]) -> dict[str, str]:
    """What could not be read and the cloud's refusal, in the active language (a check stored
    before these were message ids holds English text, shown as it is)."""
    return {
        "link": str(unread.get("link", "")),
        "what": str(render(unread.get("what"))),
        "permission": str(unread.get("permission", "")),
        "message": str(render(unread.get("message"))),
    }


def finding_text(finding: Finding) -> dict[str, str]:
    """The finding's what, why and fix in the active language."""
    text = TEXTS[finding.code]
    params = _params(finding)
    return {
        "what": str(text.what) % params,
        "why": str(text.why) % params,
        "fix": str(text.fix) % params,
    }
