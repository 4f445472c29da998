"""Creates, changes, deletes and tests the admin's cloud connections, auditing every change.

What each connection stores, per cloud and sign-in method (CONNECTION_FIELDS below is the same
list in the shape the forms use; config is shown on the page, secrets are encrypted and never
shown back):

- AWS (config "method"):
  - "default_chain": nothing; the worker host's environment, shared files or instance role.
  - "profile": config "profile".
  - "access_key": secrets "access_key_id", "secret_access_key".
  - "assume_role": config "role_arn", optional "external_id", "role_session_name"; optional
    secrets "access_key_id", "secret_access_key" for the base identity (else the default chain).
- Entra ID: config "tenant_id", "client_id" and
  - "client_secret": secret "client_secret".
  - "certificate": secret "certificate" (PEM: private key + certificate), optional
    "certificate_password".
- Okta: config "org_url" (https://<org>.okta.com and Okta's other domains) and
  - "api_token": secret "api_token".
  - "private_key": config "client_id", optional "scopes" (space separated) and "key_id",
    "dpop" ("on" by default, or "off"); secret "private_key" (PEM).

Invalid input raises django.core.exceptions.ValidationError with a message per field name.
"""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from provisioning.audit import AuditScope, record_state_change
from provisioning.errors import PermanentError, ProvisioningError
from provisioning.okta.org_url import validate_okta_org_url
from wizard.models import AuditKind, Cloud, Connection, SetupRun
from wizard.secret_box import SecretUnreadable
from wizard.services.connection_formats import format_errors


def _field(
    name: str,
    label: Any,
    *,
    required: bool = True,
    help_text: Any = "",
    multiline: bool = False,
    choices: list[tuple[str, Any]] | None = None,
) -> dict[str, Any]:
    """A connection field; one with `choices` is a menu whose first choice is the default."""
    return {
        "name": name,
        "label": label,
        "required": required,
        "help": help_text,
        "multiline": multiline,
        "choices": choices or [],
    }


_ENTRA_IDS = [
    _field(
        "tenant_id",
        _("Directory (tenant) ID"),
        help_text=_("On the app registration's Overview page."),
    ),
    _field(
        "client_id",
        _("Application (client) ID"),
        help_text=_("On the app registration's Overview page."),
    ),
]
_OKTA_ORG = _field(
    "org_url", _("Okta org URL"), help_text=_("For example https://example.okta.com")
)

# cloud -> method -> {"label", "help", "config": [field...], "secrets": [field...]}; a field is
# {"name", "label", "required", "help", "multiline"}. The web forms are built from this.
CONNECTION_FIELDS: dict[str, dict[str, dict[str, Any]]] = {
    Cloud.AWS.value: {
        "default_chain": {
            "label": _("Default credentials of the worker's host"),
            "help": _("Environment variables, shared credentials file or instance role."),
            "config": [],
            "secrets": [],
        },
        "profile": {
            "label": _("Named profile"),
            "help": _("A profile in ~/.aws/config of the user the worker runs as."),
            "config": [_field("profile", _("Profile name"))],
            "secrets": [],
        },
        "access_key": {
            "label": _("Access key"),
            "help": _("An IAM user's access key."),
            "config": [],
            "secrets": [
                _field("access_key_id", _("Access key ID")),
                _field("secret_access_key", _("Secret access key")),
            ],
        },
        "assume_role": {
            "label": _("Assume a role"),
            "help": _(
                "The wizard assumes this role; its base identity is the access key below "
                "or, if left empty, the worker host's default credentials."
            ),
            "config": [
                _field(
                    "role_arn",
                    _("Role ARN"),
                    help_text=_("For example arn:aws:iam::123456789012:role/ConnectSsoWizard"),
                ),
                _field(
                    "external_id",
                    _("External ID"),
                    required=False,
                    help_text=_("Required if the role's trust policy asks for one."),
                ),
                _field(
                    "role_session_name",
                    _("Session name"),
                    required=False,
                    help_text=_("Shown in CloudTrail; default connect-sso-wizard."),
                ),
            ],
            "secrets": [
                _field("access_key_id", _("Access key ID"), required=False),
                _field("secret_access_key", _("Secret access key"), required=False),
            ],
        },
    },
    Cloud.ENTRA.value: {
        "client_secret": {
            "label": _("Client secret"),
            "help": _("An app registration with a client secret."),
            "config": _ENTRA_IDS,
            "secrets": [
                _field(
                    "client_secret",
                    _("Client secret value"),
                    help_text=_("The secret's Value, not its Secret ID."),
                )
            ],
        },
        "certificate": {
            "label": _("Certificate"),
            "help": _("An app registration with a certificate credential."),
            "config": _ENTRA_IDS,
            "secrets": [
                _field("certificate", _("Private key and certificate (PEM)"), multiline=True),
                _field("certificate_password", _("Private key password"), required=False),
            ],
        },
    },
    Cloud.OKTA.value: {
        "api_token": {
            "label": _("API token"),
            "help": _("Security › API › Tokens, created by a Super Administrator."),
            "config": [_OKTA_ORG],
            "secrets": [_field("api_token", _("API token"))],
        },
        "private_key": {
            "label": _("OAuth service app (private key)"),
            "help": _("An API service app with a public key and admin role."),
            "config": [
                _OKTA_ORG,
                _field("client_id", _("Client ID")),
                _field(
                    "scopes",
                    _("Scopes"),
                    required=False,
                    help_text=_(
                        "Space separated; default okta.apps.manage okta.users.read "
                        "okta.groups.read."
                    ),
                ),
                _field("key_id", _("Key ID (kid)"), required=False),
                _field(
                    "dpop",
                    _("DPoP"),
                    help_text=_(
                        "On: tokens are bound to the wizard with DPoP, as new Okta API service "
                        "apps require (General tab: “Require Demonstrating Proof of Possession "
                        "(DPoP) header in token requests”). Choose off only for an app with "
                        "that box unticked."
                    ),
                    choices=[
                        ("on", _("On (the app requires DPoP)")),
                        ("off", _("Off (the app accepts plain Bearer tokens)")),
                    ],
                ),
            ],
            "secrets": [_field("private_key", _("Private key (PEM)"), multiline=True)],
        },
    },
}

_ROLE_ARN = re.compile(r"^arn:aws[\w-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_TENANT_DOMAIN = re.compile(r"^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
# Where connection_test checks AWS credentials: STS answers GetCallerIdentity for every account in
# us-east-1, which is never an opt-in region.
STS_TEST_REGION = "us-east-1"
SANDBOX_NAMES = {
    Cloud.AWS.value: "Sandbox AWS",
    Cloud.ENTRA.value: "Sandbox Entra ID",
    Cloud.OKTA.value: "Sandbox Okta",
}
# The sandbox Okta's API service app, signed in with its private key and DPoP.
SANDBOX_OKTA_SERVICE_APP = "Sandbox Okta (OAuth service app)"


def _user_scope(user: Any) -> AuditScope:
    return AuditScope(actor_label=user.get_username(), actor_id=user.pk)


def _worker_scope() -> AuditScope:
    return AuditScope(actor_label=f"connection test@{socket.gethostname()}")


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
    spec = CONNECTION_FIELDS.get(cloud, {}).get(method)
    if spec is None:
        raise ValidationError({"method": gettext("Choose a sign-in method for this cloud.")})
    errors: dict[str, str] = {}
    clean_config = {"method": method}
    for field in spec["config"]:
        value = str(config.get(field["name"], "") or "").strip()
        allowed = [choice for choice, _label in field["choices"]]
        if allowed and value not in allowed:
            errors[field["name"]] = gettext("Choose one of the options.")
        elif value:
            clean_config[field["name"]] = value
        elif field["required"]:
            errors[field["name"]] = gettext("This field is required.")
    clean_secrets = {}
    for field in spec["secrets"]:
        value = str(secrets.get(field["name"], "") or "").strip()
        if value:
            clean_secrets[field["name"]] = value
        elif field["required"] and field["name"] not in stored_secret_names:
            errors[field["name"]] = gettext("This field is required.")
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


def _snapshot(connection: Connection, secret_names: list[str]) -> dict[str, Any]:
    return {
        "cloud": connection.cloud,
        "name": connection.name,
        "config": connection.config,
        "stored_credentials": sorted(secret_names),
    }


def connection_create(
    *,
    user: Any,
    cloud: str,
    name: str,
    config: dict[str, Any],
    secrets: dict[str, str],
    is_sandbox: bool = False,
) -> Connection:
    """Save a new connection. `is_sandbox` sends its calls to the sandbox (AWS only, and only in
    sandbox mode: a sandbox connection can never reach a real account)."""
    if is_sandbox and (cloud != Cloud.AWS or settings.WIZARD_MODE != "sandbox"):
        raise ValidationError(
            {
                "target": gettext(
                    "Only an AWS connection made while the wizard runs in sandbox mode can "
                    "target the sandbox."
                )
            }
        )
    clean_config, clean_secrets = validate_connection(cloud=cloud, config=config, secrets=secrets)
    with transaction.atomic():
        connection = Connection(
            cloud=cloud,
            name=name.strip(),
            config=clean_config,
            created_by=user,
            is_sandbox=is_sandbox,
        )
        connection.set_secrets(clean_secrets)
        connection.full_clean(exclude=["secret_ciphertext"])
        connection.save()
        record_state_change(
            _user_scope(user),
            kind=AuditKind.CONNECTION,
            old={},
            new=_snapshot(connection, list(clean_secrets)),
            message=f"Connection “{connection.name}” created.",
        )
    return connection


def connection_update(
    *, user: Any, connection_id: int, name: str, config: dict[str, Any], secrets: dict[str, str]
) -> Connection:
    """Change a connection. An empty secret keeps the stored one; secrets the new method does
    not use are dropped. A change clears the last test result, which no longer holds."""
    with transaction.atomic():
        connection = Connection.objects.select_for_update().get(pk=connection_id)
        if connection.is_sandbox:
            raise ValidationError(
                gettext("Sandbox connections are set up by the sandbox itself and can't be edited.")
            )
        stored = connection.secrets
        clean_config, given = validate_connection(
            cloud=connection.cloud,
            config=config,
            secrets=secrets,
            stored_secret_names=frozenset(stored),
        )
        method_secrets = {
            field["name"]
            for field in CONNECTION_FIELDS[connection.cloud][clean_config["method"]]["secrets"]
        }
        kept = {k: v for k, v in stored.items() if k in method_secrets}
        new_secrets = {**kept, **given}
        changed = sorted(
            k for k in set(stored) | set(new_secrets) if stored.get(k) != new_secrets.get(k)
        )
        old = {**_snapshot(connection, list(stored)), "changed_credentials": []}
        connection.name = name.strip()
        connection.config = clean_config
        connection.set_secrets(new_secrets)
        new = {**_snapshot(connection, list(new_secrets)), "changed_credentials": changed}
        if old == new:
            return connection
        connection.last_tested_at = None
        connection.last_test_ok = None
        connection.last_test_message = ""
        connection.full_clean(exclude=["secret_ciphertext"])
        connection.save()
        record_state_change(
            _user_scope(user),
            kind=AuditKind.CONNECTION,
            old=old,
            new=new,
            message=f"Connection “{connection.name}” changed.",
        )
    return connection


def connection_delete(*, user: Any, connection_id: int) -> None:
    """Delete a connection no setup run uses (runs keep theirs for resume and rollback)."""
    with transaction.atomic():
        connection = Connection.objects.select_for_update().get(pk=connection_id)
        if SetupRun.objects.filter(
            Q(aws_connection=connection) | Q(idp_connection=connection)
        ).exists():
            raise ValidationError(
                gettext("This connection is used by a setup run, so it can't be deleted.")
            )
        old = _snapshot(connection, connection.secret_names)
        connection.delete()
        record_state_change(
            _user_scope(user),
            kind=AuditKind.CONNECTION,
            old=old,
            new={},
            message=f"Connection “{old['name']}” deleted.",
        )


def connection_request_test(*, user: Any, connection_id: int) -> None:
    """Queue a test of the connection; a worker runs it (web requests never call a cloud)."""
    from wizard.tasks import test_connection

    Connection.objects.filter(pk=connection_id).get()
    transaction.on_commit(lambda: test_connection.delay(connection_id))


def connection_test(*, connection_id: int) -> tuple[bool, str]:
    """Sign in to the cloud with the connection and make one harmless read; save and return
    (ok, a message the admin can act on). Runs in the worker."""
    connection = Connection.objects.get(pk=connection_id)
    checks = {Cloud.AWS: _test_aws, Cloud.ENTRA: _test_entra, Cloud.OKTA: _test_okta}
    try:
        ok, message = True, checks[Cloud(connection.cloud)](connection, _worker_scope())
    except ProvisioningError as error:
        ok, message = False, f"{error.message} {error.hint}".strip()
    except SecretUnreadable as error:
        ok, message = False, str(error)
    Connection.objects.filter(pk=connection_id).update(
        last_tested_at=timezone.now(), last_test_ok=ok, last_test_message=message
    )
    return ok, message


# The cloud SDKs take seconds to import: the checks below import their client modules when they
# run (in the worker), so the web process can import CONNECTION_FIELDS without them.


def _test_aws(connection: Connection, scope: AuditScope) -> str:
    from provisioning.aws.client import aws_client

    sts = aws_client(connection, "sts", region=STS_TEST_REGION, audit=scope)
    identity = sts.get_caller_identity()
    return gettext("Signed in to AWS account %(account)s as %(arn)s.") % {
        "account": identity["Account"],
        "arn": identity["Arn"],
    }


def _test_entra(connection: Connection, scope: AuditScope) -> str:
    from kiota_abstractions.base_request_configuration import RequestConfiguration
    from msgraph.generated.service_principals.service_principals_request_builder import (
        ServicePrincipalsRequestBuilder,
    )

    from provisioning.entra.client import graph_client, run_graph

    # A test signs in, whatever token this process holds: that is what it proves.
    client = graph_client(connection, audit=scope, fresh_sign_in=True)
    # One service principal is enough to prove the token works and Application.Read is granted.
    query = ServicePrincipalsRequestBuilder.ServicePrincipalsRequestBuilderGetQueryParameters(
        top=1, select=["id"]
    )
    run_graph(client.service_principals.get(RequestConfiguration(query_parameters=query)))
    return gettext(
        "Signed in to tenant %(tenant)s as application %(client)s; Microsoft Graph answered."
    ) % {
        "tenant": connection.config.get("tenant_id", ""),
        "client": connection.config.get("client_id", ""),
    }


def _test_okta(connection: Connection, scope: AuditScope) -> str:
    from provisioning.okta.client import okta_client, run_okta, uses_dpop
    from provisioning.okta.rest import okta_call

    client = okta_client(connection, audit=scope)
    if connection.config.get("method") == "private_key":
        # A service app has no user of its own ("me"); one app read needs a real token, from
        # the token endpoint, with okta.apps.read (or .manage).
        okta_call(client, "GET", "/api/v1/apps", params={"limit": 1})
        message = (
            gettext("Signed in to %(org)s as service app %(client)s with a DPoP-bound token.")
            if uses_dpop(connection)
            else gettext("Signed in to %(org)s as service app %(client)s with a Bearer token.")
        )
        return message % {
            "org": client.get_base_url(),
            "client": connection.config.get("client_id", ""),
        }
    user = run_okta(client.get_user("me"))
    login = getattr(getattr(user, "profile", None), "login", "") or getattr(user, "id", "")
    return gettext("Signed in to %(org)s as %(login)s.") % {
        "org": client.get_base_url(),
        "login": login,
    }


def register_sandbox_connections(*, sandbox_file: Path | None = None) -> list[Connection]:
    """Create or refresh the sandbox connections from the sandbox's endpoints file (one per
    cloud, and the Okta API service app's with its private key and DPoP), so a new user can start
    a setup at once. Running it again changes (and audits) nothing unless the
    sandbox's endpoints changed."""
    path = Path(sandbox_file or settings.SANDBOX_FILE)
    endpoints = json.loads(path.read_text())
    wanted = {
        Cloud.AWS.value: (
            {"method": "access_key"},
            {
                "access_key_id": endpoints["aws_access_key_id"],
                "secret_access_key": endpoints["aws_secret_access_key"],
            },
        ),
        Cloud.ENTRA.value: (
            {
                "method": "client_secret",
                "tenant_id": endpoints["entra_tenant_id"],
                "client_id": endpoints["entra_client_id"],
            },
            {"client_secret": endpoints["entra_client_secret"]},
        ),
        Cloud.OKTA.value: (
            {"method": "api_token", "org_url": endpoints["okta_org_url"]},
            {"api_token": endpoints["okta_token"]},
        ),
    }
    wanted_connections = [
        (cloud, SANDBOX_NAMES[cloud], config, secrets)
        for cloud, (config, secrets) in wanted.items()
    ]
    # A stand-in that serves no Okta service app (plain moto in tests) registers the others only.
    if "okta_client_id" in endpoints:
        wanted_connections.append(
            (
                Cloud.OKTA.value,
                SANDBOX_OKTA_SERVICE_APP,
                {
                    "method": "private_key",
                    "org_url": endpoints["okta_org_url"],
                    "client_id": endpoints["okta_client_id"],
                    "scopes": endpoints["okta_scopes"],
                    "key_id": endpoints["okta_key_id"],
                    "dpop": "on",
                },
                {"private_key": endpoints["okta_private_key"]},
            )
        )
    scope = AuditScope(actor_label="sandbox")
    registered = []
    with transaction.atomic():
        for cloud, name, config, secrets in wanted_connections:
            connection = Connection.objects.filter(cloud=cloud, name=name).first()
            old = (
                {
                    **_snapshot(connection, connection.secret_names),
                    "is_sandbox": connection.is_sandbox,
                }
                if connection
                else {}
            )
            if connection is None:
                connection = Connection(cloud=cloud, name=name)
            unchanged = (
                connection.pk is not None
                and connection.is_sandbox
                and connection.config == config
                and connection.secrets == secrets
            )
            if not unchanged:
                connection.config = config
                connection.is_sandbox = True
                connection.set_secrets(secrets)
                connection.save()
                new = {
                    **_snapshot(connection, list(secrets)),
                    "is_sandbox": True,
                    "changed_credentials": sorted(secrets),
                }
                record_state_change(
                    scope,
                    kind=AuditKind.CONNECTION,
                    old=old,
                    new=new,
                    message=f"Sandbox connection “{connection.name}” registered.",
                )
            registered.append(connection)
    return registered
