"""What the connection forms call each sign-in method and credential, with help in the admin's
words; CONNECTION_FIELDS joins these labels to the fields provisioning/connections/methods.py
says each method takes."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _

from provisioning.connections.methods import SIGN_IN_METHODS, CredentialField
from provisioning.models import Cloud

# cloud -> method -> (label, help)
METHOD_LABELS: dict[str, dict[str, tuple[Any, Any]]] = {
    Cloud.AWS.value: {
        "default_chain": (
            _("Default credentials of the worker's host"),
            _("Environment variables, shared credentials file or instance role."),
        ),
        "profile": (
            _("Named profile"),
            _("A profile in ~/.aws/config of the user the worker runs as."),
        ),
        "access_key": (_("Access key"), _("An IAM user's access key.")),
        "assume_role": (
            _("Assume a role"),
            _(
                "The wizard assumes this role; its base identity is the access key below "
                "or, if left empty, the worker host's default credentials."
            ),
        ),
    },
    Cloud.ENTRA.value: {
        "client_secret": (_("Client secret"), _("An app registration with a client secret.")),
        "certificate": (
            _("Certificate"),
            _("An app registration with a certificate credential."),
        ),
    },
    Cloud.OKTA.value: {
        "api_token": (
            _("API token"),
            _("Security › API › Tokens, created by a Super Administrator."),
        ),
        "private_key": (
            _("OAuth service app (private key)"),
            _("An API service app with a public key and admin role."),
        ),
    },
}

_ON_THE_OVERVIEW = _("On the app registration's Overview page.")

# (cloud, field) -> (label, help); a field's label is the same in every method of its cloud.
FIELD_LABELS: dict[tuple[str, str], tuple[Any, Any]] = {
    (Cloud.AWS.value, "profile"): (_("Profile name"), ""),
    (Cloud.AWS.value, "access_key_id"): (_("Access key ID"), ""),
    (Cloud.AWS.value, "secret_access_key"): (_("Secret access key"), ""),
    (Cloud.AWS.value, "role_arn"): (
        _("Role ARN"),
        _("For example arn:aws:iam::123456789012:role/ConnectSsoWizard"),
    ),
    (Cloud.AWS.value, "external_id"): (
        _("External ID"),
        _("Required if the role's trust policy asks for one."),
    ),
    (Cloud.AWS.value, "role_session_name"): (
        _("Session name"),
        _("Shown in CloudTrail; default connect-sso-wizard."),
    ),
    (Cloud.ENTRA.value, "tenant_id"): (_("Directory (tenant) ID"), _ON_THE_OVERVIEW),
    (Cloud.ENTRA.value, "client_id"): (_("Application (client) ID"), _ON_THE_OVERVIEW),
    (Cloud.ENTRA.value, "client_secret"): (
        _("Client secret value"),
        _("The secret's Value, not its Secret ID."),
    ),
    (Cloud.ENTRA.value, "certificate"): (_("Private key and certificate (PEM)"), ""),
    (Cloud.ENTRA.value, "certificate_password"): (_("Private key password"), ""),
    (Cloud.OKTA.value, "org_url"): (
        _("Okta org URL"),
        _("For example https://example.okta.com"),
    ),
    (Cloud.OKTA.value, "api_token"): (_("API token"), ""),
    (Cloud.OKTA.value, "client_id"): (_("Client ID"), ""),
    (Cloud.OKTA.value, "scopes"): (
        _("Scopes"),
        _("Space separated; default okta.apps.manage okta.users.read okta.groups.read."),
    ),
    (Cloud.OKTA.value, "key_id"): (_("Key ID (kid)"), ""),
    (Cloud.OKTA.value, "dpop"): (
        _("DPoP"),
        _(
            "On: tokens are bound to the wizard with DPoP, as new Okta API service "
            "apps require (General tab: “Require Demonstrating Proof of Possession "
            "(DPoP) header in token requests”). Choose off only for an app with "
            "that box unticked."
        ),
    ),
    (Cloud.OKTA.value, "private_key"): (_("Private key (PEM)"), ""),
}

# (cloud, field, choice) -> label
CHOICE_LABELS: dict[tuple[str, str, str], Any] = {
    (Cloud.OKTA.value, "dpop", "on"): _("On (the app requires DPoP)"),
    (Cloud.OKTA.value, "dpop", "off"): _("Off (the app accepts plain Bearer tokens)"),
}


def _labelled(cloud: str, field: CredentialField) -> dict[str, Any]:
    label, help_text = FIELD_LABELS[(cloud, field.name)]
    return {
        "name": field.name,
        "label": label,
        "required": field.required,
        "help": help_text,
        "multiline": field.multiline,
        "choices": [
            (choice, CHOICE_LABELS[(cloud, field.name, choice)]) for choice in field.choices
        ],
    }


# cloud -> method -> {"label", "help", "config": [field...], "secrets": [field...]}; a field is
# {"name", "label", "required", "help", "multiline", "choices"}. The web forms are built from this.
CONNECTION_FIELDS: dict[str, dict[str, dict[str, Any]]] = {
    cloud: {
        method: {
            "label": METHOD_LABELS[cloud][method][0],
            "help": METHOD_LABELS[cloud][method][1],
            "config": [_labelled(cloud, field) for field in spec.config],
            "secrets": [_labelled(cloud, field) for field in spec.secrets],
        }
        for method, spec in methods.items()
    }
    for cloud, methods in SIGN_IN_METHODS.items()
}
