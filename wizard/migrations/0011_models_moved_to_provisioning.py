"""wizard's models moved to provisioning (its migration 0001): forget them here, in Django's
state only. No table is dropped or renamed; the rows stay where they are.

The content types of the moved models follow them (app label wizard -> provisioning), so the
permissions and admin log entries that point at those content types keep pointing at the models.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations

MOVED = (
    "auditevent",
    "auditexport",
    "connection",
    "setuprun",
    "signinreading",
    "steprun",
    "userchange",
    "userchangeset",
    "usersync",
    "workerheartbeat",
)


def _relabel(apps: Any, old: str, new: str) -> None:
    content_type = apps.get_model("contenttypes", "ContentType")
    taken = set(
        content_type.objects.filter(app_label=new, model__in=MOVED).values_list("model", flat=True)
    )
    # A content type already under the new label (made by an earlier partial migrate) stays, and
    # the old one is left for `remove_stale_contenttypes`: the pair (app_label, model) is unique.
    content_type.objects.filter(app_label=old, model__in=set(MOVED) - taken).update(app_label=new)


def content_types_to_provisioning(apps: Any, schema_editor: Any) -> None:
    _relabel(apps, "wizard", "provisioning")


def content_types_to_wizard(apps: Any, schema_editor: Any) -> None:
    _relabel(apps, "provisioning", "wizard")


STATE_OPERATIONS = [
    migrations.RemoveField(
        model_name="auditevent",
        name="actor",
    ),
    migrations.RemoveField(
        model_name="auditevent",
        name="run",
    ),
    migrations.RemoveField(
        model_name="auditexport",
        name="requested_by",
    ),
    migrations.RemoveField(
        model_name="connection",
        name="created_by",
    ),
    migrations.RemoveField(
        model_name="setuprun",
        name="aws_connection",
    ),
    migrations.RemoveField(
        model_name="usersync",
        name="aws_connection",
    ),
    migrations.RemoveField(
        model_name="signinreading",
        name="connection",
    ),
    migrations.RemoveField(
        model_name="setuprun",
        name="idp_connection",
    ),
    migrations.RemoveField(
        model_name="usersync",
        name="idp_connection",
    ),
    migrations.RemoveField(
        model_name="setuprun",
        name="created_by",
    ),
    migrations.RemoveField(
        model_name="setuprun",
        name="parent",
    ),
    migrations.RemoveField(
        model_name="setuprun",
        name="sync",
    ),
    migrations.RemoveField(
        model_name="steprun",
        name="run",
    ),
    migrations.RemoveField(
        model_name="usersync",
        name="setup",
    ),
    migrations.RemoveField(
        model_name="signinreading",
        name="requested_by",
    ),
    migrations.RemoveField(
        model_name="userchangeset",
        name="step_run",
    ),
    migrations.RemoveField(
        model_name="userchange",
        name="change_set",
    ),
    migrations.RemoveField(
        model_name="usersync",
        name="created_by",
    ),
    migrations.DeleteModel(
        name="WorkerHeartbeat",
    ),
    migrations.DeleteModel(
        name="AuditEvent",
    ),
    migrations.DeleteModel(
        name="AuditExport",
    ),
    migrations.DeleteModel(
        name="Connection",
    ),
    migrations.DeleteModel(
        name="SetupRun",
    ),
    migrations.DeleteModel(
        name="SignInReading",
    ),
    migrations.DeleteModel(
        name="StepRun",
    ),
    migrations.DeleteModel(
        name="UserChange",
    ),
    migrations.DeleteModel(
        name="UserChangeSet",
    ),
    migrations.DeleteModel(
        name="UserSync",
    ),
]


class Migration(migrations.Migration):
    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("wizard", "0010_costs_flat_pages"),
        ("provisioning", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=STATE_OPERATIONS, database_operations=[]
        ),
        migrations.RunPython(content_types_to_provisioning, content_types_to_wizard),
    ]
