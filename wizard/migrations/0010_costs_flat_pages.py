"""Indexes that keep the pages' cost flat as rows grow. The audit log at a million rows: (at, id)
for the keyset, and one per filter that keeps its rows in that order; on PostgreSQL a trigram
index answers the operation filter (a match anywhere in the name) without reading every row. The
dashboard: each sync's latest run, and succeeded setups apart from syncs' runs. The run page:
counters of outcomes on each change set, kept by a trigger on the change rows. Exports: the
audit log exports workers write.

Only indexes are added to the audit table: it is not rebuilt, so the append-only triggers of
migration 0002 stay in place on SQLite too. SQLite drops a table's triggers when Django rebuilds
it, so a later migration that rebuilds wizard_userchange there must create the counting trigger
again with the statements below.
"""

from __future__ import annotations

import uuid

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

# pg_trgm ships with PostgreSQL and is a trusted extension (PostgreSQL 13+), so the database's
# owner may create it: https://www.postgresql.org/docs/current/pgtrgm.html
# The indexed expression is the one Django writes for `icontains` on PostgreSQL.
POSTGRESQL_CREATE = [
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE INDEX IF NOT EXISTS audit_operation_trgm ON wizard_auditevent "
    "USING gin (UPPER(operation::text) gin_trgm_ops)",
]
POSTGRESQL_DROP = ["DROP INDEX IF EXISTS audit_operation_trgm"]


OUTCOMES = ("created", "updated", "deleted", "existed", "gone", "failed")


def _counting(cast: str, *, moved: bool = True) -> str:
    """SET clauses that count one change's outcome: NEW's, less OLD's when it moved from one."""
    return ", ".join(
        f"{name}_count = {name}_count + (NEW.outcome = '{name}'){cast}"
        + (f" - (OLD.outcome = '{name}'){cast}" if moved else "")
        for name in OUTCOMES
    )


COUNT_TRIGGER = "wizard_userchange_outcome_counts"
COUNT_NEW_TRIGGER = "wizard_userchange_outcome_counts_new"
# Built from this file's own constants only.
COUNTS_CREATE = {
    "postgresql": [
        f"""CREATE OR REPLACE FUNCTION wizard_userchange_count_outcome() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'INSERT' THEN
                UPDATE wizard_userchangeset SET {_counting("::int", moved=False)}
                WHERE id = NEW.change_set_id;
            ELSE
                UPDATE wizard_userchangeset SET {_counting("::int")}
                WHERE id = NEW.change_set_id;
            END IF;
            RETURN NULL;
        END
        $$""",  # noqa: S608
        f"""CREATE TRIGGER {COUNT_TRIGGER} AFTER UPDATE OF outcome ON wizard_userchange
        FOR EACH ROW WHEN (OLD.outcome IS DISTINCT FROM NEW.outcome)
        EXECUTE FUNCTION wizard_userchange_count_outcome()""",
        # Plans write their rows without an outcome: the WHEN keeps their inserts free.
        f"""CREATE TRIGGER {COUNT_NEW_TRIGGER} AFTER INSERT ON wizard_userchange
        FOR EACH ROW WHEN (NEW.outcome <> '')
        EXECUTE FUNCTION wizard_userchange_count_outcome()""",
    ],
    "sqlite": [
        f"""CREATE TRIGGER IF NOT EXISTS {COUNT_TRIGGER} AFTER UPDATE OF outcome
        ON wizard_userchange FOR EACH ROW WHEN OLD.outcome IS NOT NEW.outcome
        BEGIN UPDATE wizard_userchangeset SET {_counting("")}
        WHERE id = NEW.change_set_id; END""",  # noqa: S608
        f"""CREATE TRIGGER IF NOT EXISTS {COUNT_NEW_TRIGGER} AFTER INSERT
        ON wizard_userchange FOR EACH ROW WHEN NEW.outcome <> ''
        BEGIN UPDATE wizard_userchangeset SET {_counting("", moved=False)}
        WHERE id = NEW.change_set_id; END""",  # noqa: S608
    ],
}
COUNTS_DROP = {
    "postgresql": [
        f"DROP TRIGGER IF EXISTS {COUNT_TRIGGER} ON wizard_userchange",
        f"DROP TRIGGER IF EXISTS {COUNT_NEW_TRIGGER} ON wizard_userchange",
        "DROP FUNCTION IF EXISTS wizard_userchange_count_outcome()",
    ],
    "sqlite": [
        f"DROP TRIGGER IF EXISTS {COUNT_TRIGGER}",
        f"DROP TRIGGER IF EXISTS {COUNT_NEW_TRIGGER}",
    ],
}
# Change sets made before this migration: their counters from their rows, once.
COUNTS_FILL = tuple(
    f"""UPDATE wizard_userchangeset SET {name}_count = (SELECT COUNT(*) FROM wizard_userchange
    WHERE change_set_id = wizard_userchangeset.id AND outcome = '{name}')"""  # noqa: S608
    for name in OUTCOMES
)


def _run(statements: dict[str, list[str]], *, everywhere: bool = False):
    """Run the statements written for this database; `everywhere`: refuse a database that has
    none (the counters would silently stay at zero)."""

    def operation(apps, schema_editor) -> None:
        vendor = schema_editor.connection.vendor
        if vendor not in statements:
            if everywhere:
                raise RuntimeError(f"No change counting trigger is written for {vendor}.")
            return
        for statement in statements[vendor]:
            # No parameters: the PL/pgSQL body is sent as it is.
            schema_editor.execute(statement, params=None)

    return operation


class Migration(migrations.Migration):
    dependencies = [
        ("wizard", "0009_sign_in_readings"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RemoveIndex(model_name="auditevent", name="audit_run_at"),
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
        migrations.RunPython(
            _run({"postgresql": POSTGRESQL_CREATE}), _run({"postgresql": POSTGRESQL_DROP})
        ),
        migrations.AddIndex(
            model_name="setuprun",
            index=models.Index(fields=["sync", "-created_at"], name="run_sync_created"),
        ),
        migrations.AddIndex(
            model_name="setuprun",
            index=models.Index(
                condition=models.Q(sync__isnull=True),
                fields=["status", "-created_at"],
                name="run_setup_status_created",
            ),
        ),
        migrations.AddField(
            model_name="userchangeset",
            name="created_count",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="userchangeset",
            name="updated_count",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="userchangeset",
            name="deleted_count",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="userchangeset",
            name="existed_count",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="userchangeset",
            name="gone_count",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="userchangeset",
            name="failed_count",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.RunSQL(COUNTS_FILL, migrations.RunSQL.noop),
        migrations.RunPython(_run(COUNTS_CREATE, everywhere=True), _run(COUNTS_DROP)),
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
                "ordering": ["-created_at"],
                "indexes": [models.Index(fields=["created_at"], name="audit_export_created")],
            },
        ),
    ]
