"""Adds SetupRun.review_plans, and database triggers that make the audit log append-only.

The triggers refuse UPDATE and DELETE on wizard_auditevent for any client, the ORM and raw SQL
alike. SQLite drops a table's triggers when Django rebuilds the table (most AlterField/RemoveField
operations on SQLite do), so a later migration that alters AuditEvent must create them again with
the statements below.
"""

from __future__ import annotations

from django.db import migrations, models

TABLE = "wizard_auditevent"
REFUSAL = "wizard_auditevent is append-only: audit rows cannot be changed or deleted"

SQLITE_CREATE = [
    f"""CREATE TRIGGER IF NOT EXISTS wizard_auditevent_no_update BEFORE UPDATE ON {TABLE}
    BEGIN SELECT RAISE(ABORT, '{REFUSAL}'); END""",
    f"""CREATE TRIGGER IF NOT EXISTS wizard_auditevent_no_delete BEFORE DELETE ON {TABLE}
    BEGIN SELECT RAISE(ABORT, '{REFUSAL}'); END""",
]
SQLITE_DROP = [
    "DROP TRIGGER IF EXISTS wizard_auditevent_no_update",
    "DROP TRIGGER IF EXISTS wizard_auditevent_no_delete",
]

POSTGRESQL_CREATE = [
    f"""CREATE OR REPLACE FUNCTION wizard_auditevent_refuse_change() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '{REFUSAL} (% refused)', TG_OP
            USING ERRCODE = 'integrity_constraint_violation';
    END
    $$""",
    f"""CREATE TRIGGER wizard_auditevent_append_only BEFORE UPDATE OR DELETE ON {TABLE}
    FOR EACH ROW EXECUTE FUNCTION wizard_auditevent_refuse_change()""",
]
POSTGRESQL_DROP = [
    f"DROP TRIGGER IF EXISTS wizard_auditevent_append_only ON {TABLE}",
    "DROP FUNCTION IF EXISTS wizard_auditevent_refuse_change()",
]

CREATE = {"sqlite": SQLITE_CREATE, "postgresql": POSTGRESQL_CREATE}
DROP = {"sqlite": SQLITE_DROP, "postgresql": POSTGRESQL_DROP}


def _run(statements: dict[str, list[str]]):
    def operation(apps, schema_editor) -> None:
        vendor = schema_editor.connection.vendor
        if vendor not in statements:
            raise RuntimeError(f"No append-only audit triggers are written for {vendor}.")
        for statement in statements[vendor]:
            # No parameters: the PL/pgSQL body has a literal "%" placeholder of its own.
            schema_editor.execute(statement, params=None)

    return operation


class Migration(migrations.Migration):
    dependencies = [
        ("wizard", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="setuprun",
            name="review_plans",
            field=models.BooleanField(default=False),
        ),
        migrations.RunPython(_run(CREATE), _run(DROP)),
    ]
