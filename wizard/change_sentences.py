"""How a step's plan and outputs read on the run page: each change as a sentence in the admin's
language, policy documents as pretty JSON, labelled values, booleans and empty values as words."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext_lazy

from provisioning.flows import SKIPPED_STEP
from provisioning.messages import render, render_within
from provisioning.steps.entra_claims import APP_ROLE
from provisioning.steps.federation_role import INSTANCE_TAG_RESOURCE
from provisioning.user_changes.steps import RESOURCE_TYPE as USERS_SUMMARY

# The admin's name for each kind of cloud resource a step plans or creates.
RESOURCE_NAMES = {
    "connect_instance": gettext_lazy("Amazon Connect instance"),
    "connect_instance_tag": gettext_lazy("tag on the Amazon Connect instance"),
    "saml_provider": gettext_lazy("IAM SAML provider"),
    "iam_role": gettext_lazy("IAM role"),
    "iam_role_policy_attachment": gettext_lazy("policy attachment of the IAM role"),
    "iam_policy": gettext_lazy("IAM policy"),
    "iam_policy_version": gettext_lazy("version of the IAM policy"),
    "iam_user": gettext_lazy("IAM user"),
    "iam_user_policy": gettext_lazy("inline policy of the IAM user"),
    "iam_access_key": gettext_lazy("access key"),
    "iam_permissions": gettext_lazy("IAM permissions of the connection"),
    "aws_identity": gettext_lazy("AWS identity"),
    "connect_region": gettext_lazy("Amazon Connect in the Region"),
    "entra_tenant": gettext_lazy("Entra ID tenant"),
    "entra_application": gettext_lazy("Entra ID enterprise application"),
    "entra_app_role": gettext_lazy("app role of the Entra ID application"),
    "entra_claims_mapping_policy": gettext_lazy("claims mapping policy"),
    "entra_app_role_assignment": gettext_lazy("assignment to the Entra ID application"),
    "relay_state": gettext_lazy("relay state"),
    "idp_app_assignment": gettext_lazy("assignment of a group to the IdP app"),
    "okta_admin": gettext_lazy("Okta administrator access"),
    "okta_app": gettext_lazy("Okta app"),
    "okta_app_setting": gettext_lazy("setting of the Okta app"),
    "okta_app_group": gettext_lazy("group assignment of the Okta app"),
    "okta_app_group_mapping": gettext_lazy("group mapping of the Okta app"),
    "okta_app_user": gettext_lazy("person assigned to the Okta app"),
    "okta_app_provisioning": gettext_lazy("provisioning of the Okta app"),
    "okta_group": gettext_lazy("Okta group"),
    "okta_group_member": gettext_lazy("member of the Okta group"),
    "okta_role_download": gettext_lazy("role download in Okta"),
    "sign_in_test": gettext_lazy("sign-in test"),
    "service_quota_request": gettext_lazy("Service Quotas request"),
    "phone_number": gettext_lazy("phone number"),
    "document_checklist": gettext_lazy("document checklist"),
}

# Labels of the values steps put in their plans and outputs; other keys read as their words.
VALUE_LABELS = {
    "arn": gettext_lazy("ARN"),
    "role_arn": gettext_lazy("Role ARN"),
    "role_name": gettext_lazy("Role name"),
    "role_id": gettext_lazy("Role ID"),
    "role_value": gettext_lazy("Role value (as the IdP sends it)"),
    "policy_arn": gettext_lazy("Policy ARN"),
    "policy_name": gettext_lazy("Policy name"),
    "provider_arn": gettext_lazy("SAML provider ARN"),
    "provider_name": gettext_lazy("SAML provider name"),
    "identity_provider_arn": gettext_lazy("SAML provider ARN"),
    "instance_id": gettext_lazy("Instance ID"),
    "instance_arn": gettext_lazy("Instance ARN"),
    "instance_alias": gettext_lazy("Instance alias"),
    "access_url": gettext_lazy("Access URL"),
    "relay_state": gettext_lazy("Relay state URL"),
    "relay_state_url": gettext_lazy("Relay state URL"),
    "entity_id": gettext_lazy("Entity ID"),
    "app_id": gettext_lazy("App ID"),
    "app_label": gettext_lazy("App name"),
    "display_name": gettext_lazy("Display name"),
    "user_access_url": gettext_lazy("Sign-in URL for users"),
    "sp_id": gettext_lazy("Service principal ID"),
    "application_id": gettext_lazy("Application ID"),
    "app_role_id": gettext_lazy("App role ID"),
    "policy_id": gettext_lazy("Policy ID"),
    "certificate_fingerprint": gettext_lazy("Certificate fingerprint"),
    "certificate_not_after": gettext_lazy("Certificate valid until"),
    "max_session_duration_s": gettext_lazy("Longest session (seconds)"),
    "session_duration_s": gettext_lazy("Session length (seconds)"),
    "identity_management_type": gettext_lazy("Identity management"),
    "adopted": gettext_lazy("Existed before this run"),
    "metadata_xml": gettext_lazy("Federation metadata"),
    "trust_policy": gettext_lazy("Trust policy"),
    "policy_document": gettext_lazy("Policy document"),
    # The steps' other values, as the run page's details and outputs show them.
    "access_key_id": gettext_lazy("Access key ID"),
    "account_id": gettext_lazy("AWS account ID"),
    "admin_login": gettext_lazy("Okta administrator"),
    "admin_roles": gettext_lazy("Administrator roles"),
    "app_object_id": gettext_lazy("Application object ID"),
    "allowedMemberTypes": gettext_lazy("Who can be assigned"),
    "assigned": gettext_lazy("Assigned"),
    "by": gettext_lazy("Confirmed by"),
    "caller_arn": gettext_lazy("Caller ARN"),
    "certificate": gettext_lazy("Certificate"),
    "certificate_subject": gettext_lazy("Certificate subject"),
    "certificate_thumbprint": gettext_lazy("Certificate thumbprint"),
    "certificates": gettext_lazy("Certificates"),
    "checked": gettext_lazy("Checked"),
    "checked_actions": gettext_lazy("Actions checked"),
    "connect_available": gettext_lazy("Amazon Connect offered in the region"),
    "created": gettext_lazy("Created"),
    "definition": gettext_lazy("Definition"),
    "excluded": gettext_lazy("Left out"),
    "granted_permissions": gettext_lazy("Permissions granted"),
    "group": gettext_lazy("Group"),
    "group_filter": gettext_lazy("Group filter"),
    "group_id": gettext_lazy("Group ID"),
    "group_name": gettext_lazy("Group name"),
    "identifier": gettext_lazy("Identifier"),
    "identifier_uri": gettext_lazy("Identifier (entity ID)"),
    "inbound_calls_enabled": gettext_lazy("Inbound calls"),
    "key_last_used": gettext_lazy("Key last used"),
    "key_used_by": gettext_lazy("Key last used by"),
    "left_out": gettext_lazy("Left out"),
    "missing_actions": gettext_lazy("Actions missing"),
    "mode": gettext_lazy("Mode"),
    "on": gettext_lazy("Added to"),
    "org_url": gettext_lazy("Okta org URL"),
    "outbound_calls_enabled": gettext_lazy("Outbound calls"),
    "partition": gettext_lazy("AWS partition"),
    "path": gettext_lazy("Path"),
    "people": gettext_lazy("People who may sign in"),
    "performed_by": gettext_lazy("Done by"),
    "permission_check": gettext_lazy("Permission check"),
    "principal_arn": gettext_lazy("Principal ARN"),
    "principal_id": gettext_lazy("Principal ID"),
    "reason": gettext_lazy("Reason"),
    "region": gettext_lazy("Region"),
    "reply_urls": gettext_lazy("Reply URLs (ACS)"),
    "results": gettext_lazy("Results"),
    "role_value_pattern": gettext_lazy("Role value pattern"),
    "roles": gettext_lazy("Roles"),
    "sandbox_sso_url": gettext_lazy("Sandbox sign-on URL"),
    "service_principal_id": gettext_lazy("Service principal ID"),
    "session_name_source": gettext_lazy("Session name from"),
    "signed_in": gettext_lazy("People signed in"),
    "sso_url": gettext_lazy("Sign-on URL"),
    "template": gettext_lazy("Template"),
    "template_id": gettext_lazy("Template ID"),
    "template_name": gettext_lazy("Template name"),
    "tenant_id": gettext_lazy("Tenant ID"),
    "unchecked_actions": gettext_lazy("Actions not checked"),
    "user_arn": gettext_lazy("User ARN"),
    "user_name": gettext_lazy("User name"),
    "value": gettext_lazy("Value"),
    "warnings": gettext_lazy("Warnings"),
}
# Values that are policy or trust documents: shown as pretty JSON with a copy button.
DOCUMENT_KEYS = {"trust_policy", "policy_document", "document", "policy"}
# Values an admin copies into another console: shown with a copy button.
COPYABLE_SUFFIXES = ("_arn", "_id", "_url", "_name", "arn", "entity_id", "fingerprint")


def resource_name(resource_type: str) -> str:
    name = RESOURCE_NAMES.get(resource_type)
    return str(name) if name is not None else resource_type.replace("_", " ")


def _trusted_provider(details: dict[str, Any]) -> str:
    """The SAML provider a role's trust policy names ("…:saml-provider/NAME" -> NAME)."""
    document = _as_document(details.get("trust_policy"))
    statements = document.get("Statement", []) if isinstance(document, dict) else []
    for statement in statements if isinstance(statements, list) else []:
        federated = (statement.get("Principal") or {}).get("Federated", "")
        if isinstance(federated, str) and "saml-provider/" in federated:
            return federated.rsplit("/", 1)[1]
    return ""


# Each row of a users step's summary ({"action", "count"} details) as a whole sentence with its
# count, so each language words and counts it its own way ("Create 43 Connect users.").
USERS_SENTENCES = {
    "create": ngettext_lazy(
        "Create %(count)d Connect user.", "Create %(count)d Connect users.", "count"
    ),
    "update": ngettext_lazy(
        "Update %(count)d Connect user.", "Update %(count)d Connect users.", "count"
    ),
    "delete": ngettext_lazy(
        "Delete %(count)d Connect user.", "Delete %(count)d Connect users.", "count"
    ),
    "departed": ngettext_lazy(
        "Keep %(count)d Connect user whose person left the groups.",
        "Keep %(count)d Connect users whose people left the groups.",
        "count",
    ),
    "refused": ngettext_lazy(
        "%(count)d person can't have a Connect user and is left out.",
        "%(count)d people can't have a Connect user and are left out.",
        "count",
    ),
    "nothing": ngettext_lazy(
        "%(count)d Connect user is already as planned.",
        "%(count)d Connect users are already as planned.",
        "count",
    ),
}


def users_sentence(kind: str, count: int) -> str:
    sentence = USERS_SENTENCES.get(kind, USERS_SENTENCES["nothing"])
    return str(sentence % {"count": count})


APP_ROLE_SENTENCES = {
    "create": gettext_lazy(
        "Create the Entra ID app role that signs people in as the IAM role %(role)s through the "
        "SAML provider %(provider)s."
    ),
    "update": gettext_lazy(
        "Enable the Entra ID app role that signs people in as the IAM role %(role)s through the "
        "SAML provider %(provider)s."
    ),
    "nothing": gettext_lazy(
        "The Entra ID app role that signs people in as the IAM role %(role)s through the SAML "
        "provider %(provider)s is already there: nothing to change."
    ),
}


# The tag federation_role puts on the instance: what it is for, said with the role it records.
INSTANCE_TAG_SENTENCES = {
    "create": gettext_lazy(
        "Tag the Amazon Connect instance with its federation role %(role)s: Connect ties each "
        "user to the role of their first sign-in, so a later run that would give the instance "
        "another role warns you first."
    ),
    "update": gettext_lazy(
        "Change the federation role the Amazon Connect instance's tag records to %(role)s."
    ),
}


def _role_pair(value: str) -> dict[str, str]:
    """The role and provider names of an Entra app role's value "roleArn,providerArn" ({} for
    another value)."""
    role_arn, _comma, provider_arn = value.partition(",")
    if ":role/" not in role_arn or ":saml-provider/" not in provider_arn:
        return {}
    return {"role": role_arn.rsplit("/", 1)[1], "provider": provider_arn.rsplit("/", 1)[1]}


def change_sentence(change: dict[str, Any]) -> str:
    """One planned change as a sentence: "Create IAM role X trusted by the SAML provider Y."."""
    action = change.get("action", "nothing")
    values = {
        "thing": resource_name(str(change.get("resource_type", ""))),
        "name": change.get("name", ""),
    }
    details = change.get("details") or {}
    if action == "nothing" and "reason" in details:
        # Why nothing is done (a skipped step, a sync whose groups didn't change), said whole.
        return str(render(details["reason"]))
    if change.get("resource_type") == SKIPPED_STEP:
        return str(values["name"])  # a plan written before the reason was a message id
    if change.get("resource_type") == USERS_SUMMARY and "count" in details:
        # The step names the row in English ("43 users to create"); the count reads in any.
        return users_sentence(str(details.get("action", action)), int(details["count"]))
    role_pair = _role_pair(str(values["name"])) if change.get("resource_type") == APP_ROLE else {}
    if role_pair:
        # The app role's value is "roleArn,providerArn": said by their names (the raw pair
        # stays in the plan's technical details).
        return str(APP_ROLE_SENTENCES.get(action, APP_ROLE_SENTENCES["nothing"]) % role_pair)
    if change.get("resource_type") == INSTANCE_TAG_RESOURCE and action in INSTANCE_TAG_SENTENCES:
        role = str(details.get("role_arn") or "").rsplit("/", 1)[-1]
        return str(INSTANCE_TAG_SENTENCES[action] % {"role": role})
    if change.get("resource_type") == "sign_in_test":
        return _("Sign in as %(name)s to test the whole chain.") % values
    if change.get("resource_type") == "okta_group_member":
        # A person joining a group reads as that, not as creating a "member".
        values["group"] = details.get("group") or "—"
        if action == "create":
            return _("Add %(name)s to the Okta group %(group)s.") % values
        if action == "delete":
            return _("Remove %(name)s from the Okta group %(group)s.") % values
        return _("%(name)s is already in the Okta group %(group)s.") % values
    provider = _trusted_provider(details) if change.get("resource_type") == "iam_role" else ""
    if provider and action in ("create", "update"):
        values["provider"] = provider
        if action == "create":
            return _("Create %(thing)s %(name)s, trusted by the SAML provider %(provider)s.") % (
                values
            )
        return _("Update %(thing)s %(name)s, trusted by the SAML provider %(provider)s.") % values
    if action == "create":
        return _("Create %(thing)s %(name)s.") % values
    if action == "update":
        return _("Update %(thing)s %(name)s.") % values
    if action == "adopt":
        return _("Use the existing %(thing)s %(name)s, as it is.") % values
    if action == "delete":
        return _("Delete %(thing)s %(name)s.") % values
    return _("%(thing)s %(name)s: nothing to change.") % values


def value_label(key: str) -> str:
    label = VALUE_LABELS.get(key)
    if label is not None:
        return str(label)
    if not re.fullmatch(r"[a-z0-9_]+", key):
        # A cloud's own field name (Okta's defaultRelayState, settings.app; IAM's Statement):
        # shown as the cloud spells it, which is what its console and API reference show.
        return key
    return key.replace("_", " ").capitalize()


def value_words(value: Any) -> str:
    """A plain value as the admin reads it: Yes/No, "None" for nothing, a list joined."""
    if value is True:
        return _("Yes")
    if value is False:
        return _("No")
    if value is None or value == "" or value == [] or value == {}:
        return _("None")
    if isinstance(value, list) and all(not isinstance(item, dict | list) for item in value):
        return ", ".join(str(item) for item in value)
    return str(value)


def _as_document(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


@dataclass
class LabelledValue:
    """One value of a plan's details or a step's outputs, ready to show."""

    key: str
    label: str
    text: str
    # Shown in a code block (a policy, a document, a long or structured value).
    block: bool = False
    copyable: bool = False


@dataclass
class ReadableChange:
    sentence: str
    action: str
    values: list[LabelledValue] = field(default_factory=list)
    diff: str = ""
    raw: dict[str, Any] = field(default_factory=dict)


# A text value longer than this, or with a line break, is shown as a block.
LONG_VALUE_CHARS = 120


def labelled_values(values: dict[str, Any]) -> list[LabelledValue]:
    shown = []
    for key, value in render_within(values).items():
        document = _as_document(value) if key in DOCUMENT_KEYS else value
        if isinstance(document, dict | list) and not (
            isinstance(document, list) and all(not isinstance(i, dict | list) for i in document)
        ):
            text = json.dumps(document, indent=2, ensure_ascii=False, default=str)
            shown.append(LabelledValue(key, value_label(key), text, block=True, copyable=True))
            continue
        text = value_words(document)
        block = isinstance(document, str) and (len(text) > LONG_VALUE_CHARS or "\n" in text)
        copyable = isinstance(document, str) and bool(document) and key.endswith(COPYABLE_SUFFIXES)
        shown.append(LabelledValue(key, value_label(key), text, block=block, copyable=copyable))
    return shown


def readable_changes(plan: dict[str, Any]) -> list[ReadableChange]:
    return [
        ReadableChange(
            sentence=change_sentence(change),
            action=str(change.get("action", "nothing")),
            values=labelled_values(change.get("details") or {}),
            diff=str(change.get("diff") or ""),
            raw=change,
        )
        for change in plan.get("changes", [])
    ]


# What names a created resource to the admin, first found first: an alias or a name beats an id.
RESOURCE_NAME_KEYS = ("alias", "name", "label", "display_name", "user_name")


def deletion_sentence(resource: dict[str, Any]) -> str:
    """What rollback will delete, in the admin's words: "Delete Amazon Connect instance sales."."""
    identifier = str(resource.get("identifier", ""))
    name = next(
        (str(resource[key]) for key in RESOURCE_NAME_KEYS if resource.get(key)),
        identifier.rsplit("/", 1)[-1] if identifier.startswith("arn:") else identifier,
    )
    return _("Delete %(thing)s %(name)s.") % {
        "thing": resource_name(str(resource.get("resource_type", ""))),
        "name": name,
    }
