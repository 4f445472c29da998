"""Indexes that keep the pages' cost flat as rows grow. The audit log at a million rows: (at, id)
for the keyset, and one per filter that keeps its rows in that order; on PostgreSQL a trigram
index answers the operation filter (a match anywhere in the name) without reading every row. The
dashboard: each sync's latest run, and succeeded setups apart from syncs' runs.

Only indexes are added: the table is not rebuilt, so the append-only triggers of migration 0002
stay in place on SQLite too.
"""

from __future__ import annotations

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


def _run(statements: list[str]):
    def operation(apps, schema_editor) -> None:
        if schema_editor.connection.vendor != "postgresql":
            return
        for statement in statements:
            schema_editor.execute(statement, params=None)

    return operation


class Migration(migrations.Migration):
    dependencies = [
        ("wizard", "0006_roles"),
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
        migrations.RunPython(_run(POSTGRESQL_CREATE), _run(POSTGRESQL_DROP)),
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
    ]
