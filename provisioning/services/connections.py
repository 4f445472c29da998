"""Creates, changes, deletes and asks for tests of the admin's cloud connections, auditing every
change. What each sign-in method stores is in provisioning/connections/methods.py; invalid input
raises django.core.exceptions.ValidationError with a message per field name."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils.translation import gettext, gettext_noop

from provisioning.audit import AuditScope, record_state_change
from provisioning.connections.methods import SIGN_IN_METHODS
from provisioning.connections.snapshot import connection_snapshot
from provisioning.connections.validation import validate_connection
from provisioning.messages import Message
from provisioning.models import AuditKind, Cloud, Connection, SetupRun


def _user_scope(user: Any) -> AuditScope:
    return AuditScope(actor_label=user.get_username(), actor_id=user.pk)


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
            new=connection_snapshot(connection, list(clean_secrets)),
            message=Message(
                gettext_noop("Connection “%(name)s” created."), {"name": connection.name}
            ),
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
        method = SIGN_IN_METHODS[connection.cloud][clean_config["method"]]
        method_secrets = {field.name for field in method.secrets}
        kept = {k: v for k, v in stored.items() if k in method_secrets}
        new_secrets = {**kept, **given}
        changed = sorted(
            k for k in set(stored) | set(new_secrets) if stored.get(k) != new_secrets.get(k)
        )
        old = {**connection_snapshot(connection, list(stored)), "changed_credentials": []}
        connection.name = name.strip()
        connection.config = clean_config
        connection.set_secrets(new_secrets)
        new = {**connection_snapshot(connection, list(new_secrets)), "changed_credentials": changed}
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
            message=Message(
                gettext_noop("Connection “%(name)s” changed."), {"name": connection.name}
            ),
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
        old = connection_snapshot(connection, connection.secret_names)
        connection.delete()
        record_state_change(
            _user_scope(user),
            kind=AuditKind.CONNECTION,
            old=old,
            new={},
            message=Message(gettext_noop("Connection “%(name)s” deleted."), {"name": old["name"]}),
        )


def connection_request_test(*, user: Any, connection_id: int) -> None:
    """Queue a test of the connection; a worker runs it (web requests never call a cloud)."""
    from provisioning.tasks import test_connection

    Connection.objects.filter(pk=connection_id).get()
    transaction.on_commit(lambda: test_connection.delay(connection_id))
