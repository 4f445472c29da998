"""The database itself refuses to change or delete audit rows (migration 0002's triggers), for
the ORM and raw SQL alike, on SQLite and PostgreSQL (run the suite with DATABASE_URL for that)."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, connection, models, transaction

from provisioning.models import AuditEvent, AuditKind, AuditLogIsAppendOnly

pytestmark = pytest.mark.django_db


@pytest.fixture
def event() -> AuditEvent:
    return AuditEvent.objects.create(
        kind=AuditKind.LOGIN, actor_label="someone", message="signed in"
    )


def _refused(statement) -> None:
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        statement()


def test_it_has_the_triggers_on_this_database() -> None:
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute(
                "SELECT name FROM sqlite_master"
                " WHERE type = 'trigger' AND tbl_name = 'wizard_auditevent'"
            )
        else:
            cursor.execute(
                "SELECT tgname FROM pg_trigger"
                " WHERE tgrelid = 'wizard_auditevent'::regclass AND NOT tgisinternal"
            )
        names = sorted(row[0] for row in cursor.fetchall())
    expected = {
        "sqlite": ["wizard_auditevent_no_delete", "wizard_auditevent_no_update"],
        "postgresql": ["wizard_auditevent_append_only"],
    }
    assert names == expected[connection.vendor]


def test_it_refuses_updates_and_deletes_through_the_orm(event: AuditEvent) -> None:
    with pytest.raises(AuditLogIsAppendOnly):
        AuditEvent.objects.filter(pk=event.pk).update(message="rewritten")
    with pytest.raises(AuditLogIsAppendOnly):
        event.delete()
    # A plain queryset skips the model's guards; the database still refuses.
    plain = models.QuerySet(AuditEvent).filter(pk=event.pk)
    _refused(lambda: plain.update(message="rewritten"))
    _refused(lambda: plain._raw_delete(connection.alias))

    event.refresh_from_db()
    assert event.message == "signed in"


def test_it_refuses_updates_and_deletes_in_raw_sql(event: AuditEvent) -> None:
    def execute(sql: str) -> None:
        with connection.cursor() as cursor:
            cursor.execute(sql, [event.pk])

    _refused(lambda: execute("UPDATE wizard_auditevent SET message = 'rewritten' WHERE id = %s"))
    _refused(lambda: execute("DELETE FROM wizard_auditevent WHERE id = %s"))

    assert AuditEvent.objects.get(pk=event.pk).message == "signed in"


def test_it_still_accepts_new_rows(event: AuditEvent) -> None:
    AuditEvent.objects.create(kind=AuditKind.LOGIN, actor_label="someone else")

    assert AuditEvent.objects.count() == 2
