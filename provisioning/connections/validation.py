"""Checks what an admin typed for a connection: only the fields its sign-in method takes, the
required ones present, each in the format its cloud accepts. Invalid input raises
django.core.exceptions.ValidationError with a message per field name."""

from __future__ import annotations

import re
from typing import Any

from django.core.exceptions import ValidationError
from django.utils.translation import gettext

from provisioning.connections.formats import format_errors
from provisioning.connections.methods import sign_in_method
from provisioning.errors import PermanentError
from provisioning.models import Cloud
from provisioning.okta.org_url import validate_okta_org_url

_ROLE_ARN = re.compile(r"^arn:aws[\w-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_TENANT_DOMAIN = re.compile(r"^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")


def validate_connection(
    *,
    cloud: str,
    config: dict[str, Any],
    secrets: dict[str, str],
    stored_secret_names: frozenset[str] = frozenset(),
) -> tuple[dict[str, str], dict[str, str]]:
    """The cleaned (config, secrets) for this cloud and config["method"]: only known fields,
    stripped, empty secrets left out. Raises ValidationError naming each field to fix."""
    method = str(config.get("method", ""))
    spec = sign_in_method(cloud, method)
    if spec is None:
        raise ValidationError({"method": gettext("Choose a sign-in method for this cloud.")})
    errors: dict[str, str] = {}
    clean_config = {"method": method}
    for field in spec.config:
        value = str(config.get(field.name, "") or "").strip()
        if field.choices and value not in field.choices:
            errors[field.name] = gettext("Choose one of the options.")
        elif value:
            clean_config[field.name] = value
        elif field.required:
            errors[field.name] = gettext("This field is required.")
    clean_secrets = {}
    for field in spec.secrets:
        value = str(secrets.get(field.name, "") or "").strip()
        if value:
            clean_secrets[field.name] = value
        elif field.required and field.name not in stored_secret_names:
            errors[field.name] = gettext("This field is required.")
    errors.update(
        {
            name: message
            for name, message in format_errors({**clean_config, **clean_secrets}).items()
            if name not in errors
        }
    )
    errors.update(_check_values(cloud, clean_config))
    if errors:
        raise ValidationError(errors)
    return clean_config, clean_secrets


def _check_values(cloud: str, config: dict[str, str]) -> dict[str, str]:
    errors = {}
    if "role_arn" in config and not _ROLE_ARN.match(config["role_arn"]):
        errors["role_arn"] = gettext(
            "Type a role ARN such as arn:aws:iam::123456789012:role/ConnectSsoWizard."
        )
    if (
        cloud == Cloud.ENTRA
        and "tenant_id" in config
        and not (_GUID.match(config["tenant_id"]) or _TENANT_DOMAIN.match(config["tenant_id"]))
    ):
        errors["tenant_id"] = gettext("Type the tenant ID (a GUID) or its domain name.")
    if cloud == Cloud.ENTRA and "client_id" in config and not _GUID.match(config["client_id"]):
        errors["client_id"] = gettext("Type the application (client) ID, a GUID.")
    if "org_url" in config:
        try:
            config["org_url"] = validate_okta_org_url(config["org_url"])
        except PermanentError as error:
            errors["org_url"] = error.message
    return errors
