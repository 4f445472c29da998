"""The models move here from `wizard`, in Django's state only: their tables keep their names
(wizard_connection, wizard_setuprun, ...), their rows, indexes, constraints and the triggers
wizard's migrations 0002 and 0010 put on them (the append-only audit log, the change counters).

On an existing database wizard's migrations 0001-0010 made the tables; on a fresh one they make
them too, before this runs. So this migration only tells Django the models are provisioning's:
it touches no table. wizard's 0011_models_moved_to_provisioning then forgets them in wizard.
A later migration here that rebuilds wizard_auditevent or wizard_userchange on SQLite must put
those triggers back (SQLite drops a table's triggers with the table; see wizard's 0002 and 0010).
"""

from __future__ import annotations

import uuid

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


STATE_OPERATIONS = [
    migrations.CreateModel(
        name="WorkerHeartbeat",
        fields=[
            (
                "id",
                models.BigAutoField(
                    auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                ),
            ),
            ("hostname", models.CharField(max_length=200, unique=True)),
            ("seen_at", models.DateTimeField()),
        ],
        options={
            "db_table": "wizard_workerheartbeat",
        },
    ),
    migrations.CreateModel(
        name="Connection",
        fields=[
            (
                "id",
                models.BigAutoField(
                    auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                ),
            ),
            (
                "cloud",
                models.CharField(
                    choices=[("aws", "AWS"), ("entra", "Microsoft Entra ID"), ("okta", "Okta")],
                    max_length=8,
                ),
            ),
            ("name", models.CharField(max_length=100, verbose_name="name")),
            ("config", models.JSONField(blank=True, default=dict)),
            ("secret_ciphertext", models.TextField(blank=True, default="")),
            ("is_sandbox", models.BooleanField(default=False)),
            ("created_at", models.DateTimeField(auto_now_add=True)),
            ("updated_at", models.DateTimeField(auto_now=True)),
            ("last_tested_at", models.DateTimeField(blank=True, null=True)),
            ("last_test_ok", models.BooleanField(blank=True, null=True)),
            ("last_test_message", models.TextField(blank=True, default="")),
            (
                "created_by",
                models.ForeignKey(
                    blank=True,
                    null=True,
                    on_delete=django.db.models.deletion.SET_NULL,
                    related_name="+",
                    to=settings.AUTH_USER_MODEL,
                ),
            ),
        ],
        options={
            "db_table": "wizard_connection",
            "ordering": ["cloud", "name"],
        },
    ),
    migrations.CreateModel(
        name="SetupRun",
        fields=[
            (
                "id",
                models.UUIDField(
                    default=uuid.uuid4, editable=False, primary_key=True, serialize=False
                ),
            ),
            (
                "idp",
                models.CharField(choices=[("entra", "Entra ID"), ("okta", "Okta")], max_length=8),
            ),
            ("flow_key", models.CharField(max_length=64)),
            ("flow_signature", models.CharField(max_length=64)),
            ("mode", models.CharField(default="sandbox", max_length=8)),
            ("region", models.CharField(max_length=32)),
            ("instance_alias", models.CharField(blank=True, default="", max_length=64)),
            ("instance_id", models.CharField(blank=True, default="", max_length=64)),
            ("inputs", models.JSONField(blank=True, default=dict)),
            ("review_plans", models.BooleanField(default=False)),
            ("language", models.CharField(default="en", max_length=8)),
            (
                "status",
                models.CharField(
                    choices=[
                        ("pending", "Pending"),
                        ("running", "Running"),
                        ("waiting", "Waiting for input"),
                        ("succeeded", "Succeeded"),
                        ("failed", "Failed"),
                        ("cancelled", "Cancelled"),
                        ("rolling_back", "Rolling back"),
                        ("rolled_back", "Rolled back"),
                    ],
                    default="pending",
                    max_length=16,
                ),
            ),
            ("error", models.JSONField(blank=True, default=dict)),
            ("advance_token", models.UUIDField(blank=True, null=True)),
            ("next_advance_at", models.DateTimeField(blank=True, null=True)),
            ("created_at", models.DateTimeField(auto_now_add=True)),
            ("updated_at", models.DateTimeField(auto_now=True)),
            ("finished_at", models.DateTimeField(blank=True, null=True)),
            (
                "aws_connection",
                models.ForeignKey(
                    blank=True,
                    null=True,
                    on_delete=django.db.models.deletion.PROTECT,
                    related_name="+",
                    to="provisioning.connection",
                ),
            ),
            (
                "created_by",
                models.ForeignKey(
                    blank=True,
                    null=True,
                    on_delete=django.db.models.deletion.SET_NULL,
                    related_name="+",
                    to=settings.AUTH_USER_MODEL,
                ),
            ),
            (
                "idp_connection",
                models.ForeignKey(
                    blank=True,
                    null=True,
                    on_delete=django.db.models.deletion.PROTECT,
                    related_name="+",
                    to="provisioning.connection",
                ),
            ),
            (
                "parent",
                models.ForeignKey(
                    blank=True,
                    null=True,
                    on_delete=django.db.models.deletion.SET_NULL,
                    related_name="children",
                    to="provisioning.setuprun",
                ),
            ),
        ],
        options={
            "db_table": "wizard_setuprun",
            "ordering": ["-created_at"],
        },
    ),
    migrations.CreateModel(
        name="AuditEvent",
        fields=[
            (
                "id",
                models.BigAutoField(
                    auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                ),
            ),
            ("at", models.DateTimeField(auto_now_add=True, db_index=True)),
            (
                "kind",
                models.CharField(
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
            ("actor_label", models.CharField(blank=True, default="", max_length=200)),
            ("step_key", models.CharField(blank=True, default="", max_length=64)),
            ("cloud", models.CharField(blank=True, default="", max_length=8)),
            ("service", models.CharField(blank=True, default="", max_length=64)),
            ("operation", models.CharField(blank=True, default="", max_length=128)),
            ("call_id", models.UUIDField(blank=True, db_index=True, null=True)),
            (
                "outcome",
                models.CharField(
                    blank=True,
                    choices=[("started", "Started"), ("ok", "OK"), ("error", "Error")],
                    default="",
                    max_length=8,
                ),
            ),
            ("error_code", models.CharField(blank=True, default="", max_length=128)),
            ("duration_ms", models.PositiveIntegerField(blank=True, null=True)),
            ("request", models.JSONField(blank=True, default=dict)),
            ("response", models.JSONField(blank=True, default=dict)),
            ("old_value", models.JSONField(blank=True, default=dict)),
            ("new_value", models.JSONField(blank=True, default=dict)),
            ("message", models.TextField(blank=True, default="")),
            (
                "actor",
                models.ForeignKey(
                    blank=True,
                    db_constraint=False,
                    null=True,
                    on_delete=django.db.models.deletion.DO_NOTHING,
                    related_name="+",
                    to=settings.AUTH_USER_MODEL,
                ),
            ),
            (
                "run",
                models.ForeignKey(
                    blank=True,
                    db_constraint=False,
                    null=True,
                    on_delete=django.db.models.deletion.DO_NOTHING,
                    related_name="audit_events",
                    to="provisioning.setuprun",
                ),
            ),
        ],
        options={
            "db_table": "wizard_auditevent",
            "ordering": ["-at", "-id"],
        },
    ),
    migrations.CreateModel(
        name="SignInReading",
        fields=[
            (
                "id",
                models.UUIDField(
                    default=uuid.uuid4, editable=False, primary_key=True, serialize=False
                ),
            ),
            ("provider_arn", models.CharField(blank=True, max_length=2048)),
            ("role_arn", models.CharField(blank=True, max_length=2048)),
            ("instance_id", models.CharField(blank=True, max_length=100)),
            ("region", models.CharField(blank=True, max_length=32)),
            (
                "status",
                models.CharField(
                    choices=[
                        ("pending", "reading AWS"),
                        ("done", "read"),
                        ("failed", "could not read AWS"),
                    ],
                    default="pending",
                    max_length=16,
                ),
            ),
            ("facts", models.JSONField(blank=True, null=True)),
            ("error", models.TextField(blank=True)),
            ("created_at", models.DateTimeField(auto_now_add=True)),
            ("read_at", models.DateTimeField(blank=True, null=True)),
            (
                "connection",
                models.ForeignKey(
                    on_delete=django.db.models.deletion.CASCADE,
                    related_name="+",
                    to="provisioning.connection",
                ),
            ),
            (
                "requested_by",
                models.ForeignKey(
                    on_delete=django.db.models.deletion.CASCADE,
                    related_name="+",
                    to=settings.AUTH_USER_MODEL,
                ),
            ),
        ],
        options={
            "db_table": "wizard_signinreading",
        },
    ),
    migrations.CreateModel(
        name="StepRun",
        fields=[
            (
                "id",
                models.BigAutoField(
                    auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                ),
            ),
            ("key", models.CharField(max_length=64)),
            ("position", models.PositiveSmallIntegerField()),
            (
                "status",
                models.CharField(
                    choices=[
                        ("pending", "Pending"),
                        ("planning", "Planning"),
                        ("planned", "Planned"),
                        ("applying", "Applying"),
                        ("succeeded", "Succeeded"),
                        ("failed", "Failed"),
                        ("rolled_back", "Rolled back"),
                        ("skipped", "Skipped"),
                    ],
                    default="pending",
                    max_length=16,
                ),
            ),
            ("attempts", models.PositiveIntegerField(default=0)),
            ("inputs", models.JSONField(blank=True, default=dict)),
            ("plan", models.JSONField(blank=True, default=dict)),
            ("outputs", models.JSONField(blank=True, default=dict)),
            ("created_resources", models.JSONField(blank=True, default=list)),
            ("error", models.JSONField(blank=True, default=dict)),
            ("secret_ciphertext", models.TextField(blank=True, default="")),
            ("secret_revealed_at", models.DateTimeField(blank=True, null=True)),
            ("claimed_by", models.CharField(blank=True, default="", max_length=200)),
            ("claimed_at", models.DateTimeField(blank=True, null=True)),
            ("waiting_since", models.DateTimeField(blank=True, null=True)),
            ("started_at", models.DateTimeField(blank=True, null=True)),
            ("finished_at", models.DateTimeField(blank=True, null=True)),
            ("updated_at", models.DateTimeField(auto_now=True)),
            (
                "run",
                models.ForeignKey(
                    on_delete=django.db.models.deletion.CASCADE,
                    related_name="steps",
                    to="provisioning.setuprun",
                ),
            ),
        ],
        options={
            "db_table": "wizard_steprun",
            "ordering": ["run", "position"],
        },
    ),
    migrations.CreateModel(
        name="UserChangeSet",
        fields=[
            (
                "id",
                models.BigAutoField(
                    auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                ),
            ),
            (
                "purpose",
                models.CharField(
                    choices=[("apply", "Apply"), ("rollback", "Roll back")],
                    default="apply",
                    max_length=8,
                ),
            ),
            ("instance_id", models.CharField(max_length=64)),
            ("counts", models.JSONField(blank=True, default=dict)),
            ("users_in_use", models.PositiveIntegerField(default=0)),
            ("users_quota", models.PositiveIntegerField(default=0)),
            ("tags", models.JSONField(blank=True, default=dict)),
            ("rate", models.JSONField(blank=True, default=dict)),
            ("group_ids", models.JSONField(blank=True, default=list)),
            ("created_at", models.DateTimeField(auto_now_add=True)),
            ("dispatched_at", models.DateTimeField(blank=True, null=True)),
            ("helpers_sent_at", models.DateTimeField(blank=True, null=True)),
            ("finished_at", models.DateTimeField(blank=True, null=True)),
            ("created_count", models.PositiveIntegerField(default=0)),
            ("updated_count", models.PositiveIntegerField(default=0)),
            ("deleted_count", models.PositiveIntegerField(default=0)),
            ("existed_count", models.PositiveIntegerField(default=0)),
            ("gone_count", models.PositiveIntegerField(default=0)),
            ("failed_count", models.PositiveIntegerField(default=0)),
            (
                "step_run",
                models.ForeignKey(
                    on_delete=django.db.models.deletion.CASCADE,
                    related_name="change_sets",
                    to="provisioning.steprun",
                ),
            ),
        ],
        options={
            "db_table": "wizard_userchangeset",
            "ordering": ["step_run", "-created_at"],
        },
    ),
    migrations.CreateModel(
        name="UserChange",
        fields=[
            (
                "id",
                models.BigAutoField(
                    auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                ),
            ),
            ("position", models.PositiveIntegerField()),
            (
                "action",
                models.CharField(
                    choices=[
                        ("create", "Create"),
                        ("update", "Update"),
                        ("delete", "Delete"),
                        ("nothing", "Left alone"),
                        ("refused", "Refused"),
                        ("departed", "Left the groups"),
                    ],
                    max_length=8,
                ),
            ),
            ("username", models.CharField(max_length=200)),
            ("details", models.JSONField(blank=True, default=dict)),
            ("user_id", models.CharField(blank=True, default="", max_length=64)),
            (
                "status",
                models.CharField(
                    choices=[
                        ("listed", "Listed only"),
                        ("pending", "Pending"),
                        ("done", "Done"),
                        ("failed", "Failed"),
                    ],
                    max_length=8,
                ),
            ),
            ("outcome", models.CharField(blank=True, default="", max_length=16)),
            ("error", models.JSONField(blank=True, default=dict)),
            ("attempts", models.PositiveSmallIntegerField(default=0)),
            ("claimed_by", models.CharField(blank=True, default="", max_length=200)),
            ("claimed_at", models.DateTimeField(blank=True, null=True)),
            ("not_before", models.DateTimeField(blank=True, null=True)),
            ("finished_at", models.DateTimeField(blank=True, null=True)),
            (
                "change_set",
                models.ForeignKey(
                    on_delete=django.db.models.deletion.CASCADE,
                    related_name="changes",
                    to="provisioning.userchangeset",
                ),
            ),
        ],
        options={
            "db_table": "wizard_userchange",
            "ordering": ["change_set", "position"],
        },
    ),
    migrations.CreateModel(
        name="UserSync",
        fields=[
            (
                "id",
                models.UUIDField(
                    default=uuid.uuid4, editable=False, primary_key=True, serialize=False
                ),
            ),
            (
                "idp",
                models.CharField(choices=[("entra", "Entra ID"), ("okta", "Okta")], max_length=8),
            ),
            ("region", models.CharField(max_length=32)),
            ("instance_id", models.CharField(max_length=64)),
            ("instance_alias", models.CharField(blank=True, default="", max_length=64)),
            ("inputs", models.JSONField(blank=True, default=dict)),
            (
                "departures",
                models.CharField(
                    choices=[
                        ("report", "Only report them"),
                        ("delete", "Delete their Connect users"),
                    ],
                    default="report",
                    max_length=8,
                ),
            ),
            ("every_hours", models.PositiveSmallIntegerField(default=24)),
            ("enabled", models.BooleanField(default=True)),
            ("next_run_at", models.DateTimeField(blank=True, db_index=True, null=True)),
            ("language", models.CharField(default="en", max_length=8)),
            ("created_at", models.DateTimeField(auto_now_add=True)),
            ("updated_at", models.DateTimeField(auto_now=True)),
            (
                "aws_connection",
                models.ForeignKey(
                    on_delete=django.db.models.deletion.PROTECT,
                    related_name="+",
                    to="provisioning.connection",
                ),
            ),
            (
                "created_by",
                models.ForeignKey(
                    blank=True,
                    null=True,
                    on_delete=django.db.models.deletion.SET_NULL,
                    related_name="+",
                    to=settings.AUTH_USER_MODEL,
                ),
            ),
            (
                "idp_connection",
                models.ForeignKey(
                    on_delete=django.db.models.deletion.PROTECT,
                    related_name="+",
                    to="provisioning.connection",
                ),
            ),
            (
                "setup",
                models.ForeignKey(
                    blank=True,
                    null=True,
                    on_delete=django.db.models.deletion.SET_NULL,
                    related_name="+",
                    to="provisioning.setuprun",
                ),
            ),
        ],
        options={
            "db_table": "wizard_usersync",
            "ordering": ["instance_alias", "instance_id", "created_at"],
        },
    ),
    migrations.AddField(
        model_name="setuprun",
        name="sync",
        field=models.ForeignKey(
            blank=True,
            null=True,
            on_delete=django.db.models.deletion.SET_NULL,
            related_name="runs",
            to="provisioning.usersync",
        ),
    ),
    migrations.CreateModel(
        name="AuditExport",
        fields=[
            (
                "id",
                models.UUIDField(
                    default=uuid.uuid4, editable=False, primary_key=True, serialize=False
                ),
            ),
            (
                "file_format",
                models.CharField(choices=[("csv", "CSV"), ("json", "JSON")], max_length=4),
            ),
            ("query", models.JSONField(blank=True, default=dict)),
            (
                "status",
                models.CharField(
                    choices=[
                        ("pending", "Waiting for a worker"),
                        ("writing", "Writing"),
                        ("ready", "Ready to download"),
                        ("failed", "Failed"),
                    ],
                    default="pending",
                    max_length=8,
                ),
            ),
            ("rows_total", models.PositiveIntegerField(blank=True, null=True)),
            ("rows_written", models.PositiveIntegerField(default=0)),
            ("error", models.TextField(blank=True, default="")),
            ("created_at", models.DateTimeField(auto_now_add=True)),
            ("finished_at", models.DateTimeField(blank=True, null=True)),
            (
                "requested_by",
                models.ForeignKey(
                    on_delete=django.db.models.deletion.CASCADE,
                    related_name="+",
                    to=settings.AUTH_USER_MODEL,
                ),
            ),
        ],
        options={
            "db_table": "wizard_auditexport",
            "ordering": ["-created_at"],
            "indexes": [models.Index(fields=["created_at"], name="audit_export_created")],
        },
    ),
    migrations.AddConstraint(
        model_name="connection",
        constraint=models.UniqueConstraint(
            fields=("cloud", "name"), name="connection_unique_name_per_cloud"
        ),
    ),
    migrations.AddIndex(
        model_name="auditevent",
        index=models.Index(fields=["at", "id"], name="audit_at_id"),
    ),
    migrations.AddIndex(
        model_name="auditevent",
        index=models.Index(fields=["run", "at", "id"], name="audit_run_at_id"),
    ),
    migrations.AddIndex(
        model_name="auditevent",
        index=models.Index(fields=["actor_label", "at", "id"], name="audit_actor_at_id"),
    ),
    migrations.AddIndex(
        model_name="auditevent",
        index=models.Index(fields=["cloud", "at", "id"], name="audit_cloud_at_id"),
    ),
    migrations.AddIndex(
        model_name="auditevent",
        index=models.Index(fields=["outcome", "at", "id"], name="audit_outcome_at_id"),
    ),
    migrations.AddIndex(
        model_name="auditevent",
        index=models.Index(fields=["cloud", "operation"], name="audit_cloud_operation"),
    ),
    migrations.AddConstraint(
        model_name="steprun",
        constraint=models.UniqueConstraint(fields=("run", "key"), name="step_unique_key_per_run"),
    ),
    migrations.AddConstraint(
        model_name="steprun",
        constraint=models.UniqueConstraint(
            fields=("run", "position"), name="step_unique_position_per_run"
        ),
    ),
    migrations.AddIndex(
        model_name="userchange",
        index=models.Index(fields=["change_set", "status", "position"], name="user_change_work"),
    ),
    migrations.AddIndex(
        model_name="userchange",
        index=models.Index(fields=["change_set", "action", "position"], name="user_change_action"),
    ),
    migrations.AddIndex(
        model_name="userchange",
        index=models.Index(fields=["change_set", "finished_at"], name="user_change_finished"),
    ),
    migrations.AddConstraint(
        model_name="userchange",
        constraint=models.UniqueConstraint(
            fields=("change_set", "position"), name="user_change_unique_position"
        ),
    ),
    migrations.AddIndex(
        model_name="setuprun",
        index=models.Index(fields=["status", "-created_at"], name="run_status_created"),
    ),
    migrations.AddIndex(
        model_name="setuprun",
        index=models.Index(fields=["status", "next_advance_at"], name="run_status_next_advance"),
    ),
    migrations.AddIndex(
        model_name="setuprun",
        index=models.Index(fields=["sync", "-created_at"], name="run_sync_created"),
    ),
    migrations.AddIndex(
        model_name="setuprun",
        index=models.Index(
            condition=models.Q(("sync__isnull", True)),
            fields=["status", "-created_at"],
            name="run_setup_status_created",
        ),
    ),
]


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
        # The tables exist (made by wizard's migrations) before provisioning claims them.
        ("wizard", "0010_costs_flat_pages"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=STATE_OPERATIONS, database_operations=[]
        ),
    ]
