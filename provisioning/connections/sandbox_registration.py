"""The sandbox's own connections, registered from the endpoints file the sandbox writes when it
starts (`make run` calls this), so a new user can start a setup without typing a credential."""

from __future__ import annotations

import json
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils.translation import gettext_noop

from provisioning.audit import AuditScope, record_state_change
from provisioning.connections.snapshot import connection_snapshot
from provisioning.messages import Message
from provisioning.models import AuditKind, Cloud, Connection

SANDBOX_NAMES = {
    Cloud.AWS.value: "Sandbox AWS",
    Cloud.ENTRA.value: "Sandbox Entra ID",
    Cloud.OKTA.value: "Sandbox Okta",
}
# The sandbox Okta's API service app, signed in with its private key and DPoP.
SANDBOX_OKTA_SERVICE_APP = "Sandbox Okta (OAuth service app)"


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
                    **connection_snapshot(connection, connection.secret_names),
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
                    **connection_snapshot(connection, list(secrets)),
                    "is_sandbox": True,
                    "changed_credentials": sorted(secrets),
                }
                record_state_change(
                    scope,
                    kind=AuditKind.CONNECTION,
                    old=old,
                    new=new,
                    message=Message(
                        gettext_noop("Sandbox connection “%(name)s” registered."),
                        {"name": connection.name},
                    ),
                )
            registered.append(connection)
    return registered
