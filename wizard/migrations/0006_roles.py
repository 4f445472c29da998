"""The three roles as Django groups, and the audit kind for changes to people."""

from __future__ import annotations

from typing import Any

from django.db import migrations, models

ROLES = ("viewer", "operator", "admin")


def create_role_groups(apps: Any, schema_editor: Any) -> None:
    group = apps.get_model("auth", "Group")
    for name in ROLES:
        group.objects.get_or_create(name=name)


def remove_role_groups(apps: Any, schema_editor: Any) -> None:
    apps.get_model("auth", "Group").objects.filter(name__in=ROLES).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("wizard", "0005_user_changes_and_syncs"),
    ]

    operations = [
        migrations.RunPython(create_role_groups, remove_role_groups),
        migrations.AlterField(
            model_name="auditevent",
            name="kind",
            field=models.CharField(
                choices=[
                    ("call_started", "Cloud call started"),
                    ("call_finished", "Cloud call finished"),
                    ("run_state", "Run state changed"),
                    ("step_state", "Step state changed"),
                    ("connection", "Connection changed"),
                    ("login", "Signed in"),
                    ("secret_revealed", "Secret shown"),
                    ("user_sync", "User sync changed"),
                    ("person", "Person changed"),
                ],
                max_length=16,
            ),
        ),
    ]
