"""The models moved from `wizard` to `provisioning` in Django's state only: a database made before
the move (wizard's migrations up to 0010) migrates forward with every row where it was, its
content types relabelled, and the triggers of wizard's 0002 and 0010 still at work."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.contrib.contenttypes.models import ContentType
from django.db import DatabaseError, connection, transaction
from django.db.migrations.executor import MigrationExecutor

from provisioning.models import UserChange, UserChangeSet

BEFORE_MOVE = [("wizard", "0010_costs_flat_pages"), ("provisioning", None)]
TABLES = (
    "wizard_connection",
    "wizard_setuprun",
    "wizard_steprun",
    "wizard_auditevent",
    "wizard_auditexport",
    "wizard_workerheartbeat",
    "wizard_usersync",
    "wizard_userchangeset",
    "wizard_userchange",
    "wizard_signinreading",
)
NOW = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)


def _counts() -> dict[str, int]:
    with connection.cursor() as cursor:
        counts = {}
        for table in TABLES:
            cursor.execute(f"SELECT COUNT(*) FROM {table}")  # noqa: S608 - our own names
            counts[table] = cursor.fetchone()[0]
    return counts


def _migrate(targets: list[tuple[str, str | None]]) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    ContentType.objects.clear_cache()


def _latest() -> list[tuple[str, str | None]]:
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


@pytest.fixture
def before_the_move() -> Iterator[Any]:
    """The database as the previous release left it; migrated to the latest again afterwards."""
    _migrate(BEFORE_MOVE)
    try:
        yield MigrationExecutor(connection).loader.project_state(BEFORE_MOVE[0]).apps
    finally:
        _migrate(_latest())


def _fill(apps: Any) -> User:
    """A row in every table, through the models as they were in wizard's migration 0010."""

    def model(name: str) -> Any:
        return apps.get_model("wizard", name)

    user = apps.get_model("auth", "User").objects.create(username="before-the-move")
    aws = model("Connection").objects.create(cloud="aws", name="aws", config={"method": "default"})
    entra = model("Connection").objects.create(cloud="entra", name="entra", config={"t": "x"})
    run = model("SetupRun").objects.create(
        idp="entra",
        flow_key="entra",
        flow_signature="s" * 64,
        region="us-east-1",
        aws_connection=aws,
        idp_connection=entra,
        created_by=user,
    )
    step = model("StepRun").objects.create(run=run, key="connect_users", position=0)
    sync = model("UserSync").objects.create(
        idp="entra",
        region="us-east-1",
        instance_id="i-1",
        aws_connection=aws,
        idp_connection=entra,
        setup=run,
    )
    model("SetupRun").objects.filter(pk=run.pk).update(sync=sync)
    change_set = model("UserChangeSet").objects.create(step_run=step, instance_id="i-1")
    for position, outcome in enumerate(("created", "created", "failed", "")):
        model("UserChange").objects.create(
            change_set=change_set,
            position=position,
            action="create",
            username=f"person{position}",
            status="done" if outcome else "pending",
            outcome=outcome,
        )
    for kind in ("login", "run_state", "call_started"):
        model("AuditEvent").objects.create(kind=kind, actor_id=user.pk, run_id=run.pk)
    model("AuditExport").objects.create(requested_by=user, file_format="csv")
    model("WorkerHeartbeat").objects.create(hostname="worker@host", seen_at=NOW)
    model("SignInReading").objects.create(requested_by=user, connection=aws)
    return user


def _refused(sql: str) -> None:
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql)


@pytest.mark.django_db(transaction=True)
def test_a_database_from_before_the_move_keeps_its_rows_and_triggers(before_the_move) -> None:
    user = _fill(before_the_move)
    wizard_type = ContentType.objects.get(app_label="wizard", model="connection")
    User.objects.get(pk=user.pk).user_permissions.add(
        Permission.objects.get(content_type=wizard_type, codename="add_connection")
    )
    before = _counts()

    _migrate(_latest())

    assert _counts() == before
    assert before["wizard_userchange"] == 4
    assert all(before.values()), before
    # The content types moved with their models: same rows, so permissions still point at them.
    moved = ContentType.objects.get(pk=wizard_type.pk)
    assert (moved.app_label, moved.model) == ("provisioning", "connection")
    assert not ContentType.objects.filter(app_label="wizard").exists()
    assert User.objects.get(pk=user.pk).has_perm("provisioning.add_connection")
    # The audit log is still append-only in the database itself (wizard's 0002).
    _refused("UPDATE wizard_auditevent SET message = 'rewritten'")
    _refused("DELETE FROM wizard_auditevent")
    # And the change counters are still kept by their trigger (wizard's 0010).
    change_set = UserChangeSet.objects.get()
    assert (change_set.created_count, change_set.failed_count) == (2, 1)
    UserChange.objects.filter(change_set=change_set, outcome="").update(outcome="created")
    change_set.refresh_from_db()
    assert (change_set.created_count, change_set.failed_count) == (3, 1)


@pytest.mark.django_db(transaction=True)
def test_the_move_touches_no_table_either_way() -> None:
    """Both migrations of the move are state-only: no SQL to run, forwards or back."""
    executor = MigrationExecutor(connection)
    plan = [
        (executor.loader.graph.nodes[("provisioning", "0001_initial")], False),
        (executor.loader.graph.nodes[("wizard", "0011_models_moved_to_provisioning")], False),
    ]
    statements = executor.loader.collect_sql(plan)

    sql = [line for line in statements if line.strip() and not line.startswith("--")]
    assert [line for line in sql if line not in {"BEGIN;", "COMMIT;"}] == []
