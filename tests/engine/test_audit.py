"""The audit choke point: a started row committed before each call, a finished row after, state
changes written only when something changed."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from provisioning import audit
from provisioning.audit import AuditScope
from provisioning.errors import PermanentError
from provisioning.models import AuditEvent, AuditKind
from tests.engine.runs import calls, drive, start_run

SCOPE = AuditScope(actor_label="tester", step_key="a_step")


@pytest.mark.django_db
def test_it_writes_the_started_row_before_the_call_and_the_finished_row_after() -> None:
    seen_during_call: list[str] = []

    def call() -> dict[str, str]:
        seen_during_call.extend(AuditEvent.objects.values_list("kind", flat=True))
        return {"Arn": "arn:aws:iam::123456789012:role/x", "Extra": "not kept"}

    result = audit.audited_call(
        SCOPE,
        cloud="aws",
        service="iam",
        operation="CreateRole",
        request={"RoleName": "x"},
        call=call,
        summarize=lambda response: {"Arn": response["Arn"]},
    )

    assert result["Extra"] == "not kept"
    assert seen_during_call == [AuditKind.CALL_STARTED]
    started, finished = AuditEvent.objects.order_by("pk")
    assert started.call_id == finished.call_id
    assert (started.outcome, finished.outcome) == ("started", "ok")
    assert started.request == {"RoleName": "x"}
    assert finished.response == {"Arn": "arn:aws:iam::123456789012:role/x"}
    assert finished.duration_ms is not None
    assert (finished.actor_label, finished.step_key, finished.operation) == (
        "tester",
        "a_step",
        "CreateRole",
    )


@pytest.mark.django_db
def test_it_records_a_failed_call_and_raises_its_error() -> None:
    def call() -> None:
        raise PermanentError("Missing iam:CreateRole", code="AccessDenied")

    with pytest.raises(PermanentError):
        audit.audited_call(
            SCOPE, cloud="aws", service="iam", operation="CreateRole", request={}, call=call
        )

    finished = AuditEvent.objects.get(kind=AuditKind.CALL_FINISHED)
    assert finished.outcome == "error"
    assert finished.error_code == "AccessDenied"
    assert finished.response["message"] == "Missing iam:CreateRole"


@pytest.mark.django_db(transaction=True)
def test_it_commits_the_started_row_at_once_so_a_crash_leaves_it() -> None:
    record = audit.start_call(
        SCOPE, cloud="aws", service="sts", operation="GetCallerIdentity", request={}
    )

    # Never finished (the process "died"): the started row is there on its own.
    started = AuditEvent.objects.get(call_id=record.call_id)
    assert started.kind == AuditKind.CALL_STARTED
    assert not AuditEvent.objects.filter(kind=AuditKind.CALL_FINISHED).exists()


@pytest.mark.django_db(transaction=True)
def test_it_writes_a_calls_two_rows_with_one_statement_each() -> None:
    with CaptureQueriesContext(connection) as statements:
        audit.audited_call(
            SCOPE, cloud="aws", service="sts", operation="GetCallerIdentity", request={}, call=dict
        )

    # Each INSERT commits on its own (autocommit): no BEGIN/COMMIT round trips around it.
    assert [query["sql"].split(" ", 2)[:2] for query in statements.captured_queries] == [
        ["INSERT", "INTO"],
        ["INSERT", "INTO"],
    ]
    assert connection.get_autocommit()


@pytest.mark.django_db
def test_it_writes_nothing_for_a_change_that_changes_nothing() -> None:
    audit.record_state_change(
        SCOPE, kind=AuditKind.STEP_STATE, old={"status": "a"}, new={"status": "a"}
    )
    assert not AuditEvent.objects.exists()

    audit.record_state_change(
        SCOPE, kind=AuditKind.STEP_STATE, old={"status": "a"}, new={"status": "b"}
    )
    event = AuditEvent.objects.get()
    assert (event.old_value, event.new_value) == ({"status": "a"}, {"status": "b"})


# Transactional: inside a test's transaction a read's rows would wait until the end of the
# runner's batch, and the rows would not be in the order of the calls.
@pytest.mark.django_db(transaction=True)
def test_it_pairs_every_call_of_a_run_with_its_finished_row() -> None:
    run = start_run(inputs={"step_seconds": 0, "waits": {}})

    drive(run)

    rows = calls(run)
    started = [row.call_id for row in rows if row.kind == AuditKind.CALL_STARTED]
    finished = [row.call_id for row in rows if row.kind == AuditKind.CALL_FINISHED]
    assert started and sorted(map(str, started)) == sorted(map(str, finished))
    # plan looks up, apply looks up and creates: three calls per step.
    assert [row.operation for row in rows if row.kind == AuditKind.CALL_STARTED] == [
        "GetMarker",
        "GetMarker",
        "CreateMarker",
    ] * 3
    assert {row.run_id for row in rows} == {run.pk}


@pytest.mark.django_db(transaction=True)
def test_it_writes_a_reads_rows_with_the_next_row_inside_a_batch() -> None:
    def kinds() -> list[tuple[str, str]]:
        return list(AuditEvent.objects.order_by("pk").values_list("operation", "kind"))

    with audit.batched_finishes():
        with CaptureQueriesContext(connection) as statements:
            audit.audited_call(
                SCOPE, cloud="aws", service="iam", operation="GetRole", request={}, call=dict
            )
        # Both rows of the read wait: it costs no statement of its own.
        assert statements.captured_queries == []
        assert kinds() == []
        seen_during_write: list[tuple[str, str]] = []
        with CaptureQueriesContext(connection) as statements:
            audit.audited_call(
                SCOPE,
                cloud="aws",
                service="iam",
                operation="CreateRole",
                request={},
                call=lambda: seen_during_write.extend(kinds()),
            )
        # One INSERT each: the read's rows with the write's started row, committed before the
        # write goes out, then the write's finished row at once (a crashed run reads it to find
        # what it made).
        assert [query["sql"].split(" ", 1)[0] for query in statements.captured_queries] == [
            "INSERT",
            "SELECT",
            "INSERT",
        ]
        assert seen_during_write == [
            ("GetRole", AuditKind.CALL_STARTED),
            ("GetRole", AuditKind.CALL_FINISHED),
            ("CreateRole", AuditKind.CALL_STARTED),
        ]
        assert kinds()[3:] == [("CreateRole", AuditKind.CALL_FINISHED)]
        audit.audited_call(
            SCOPE, cloud="entra", service="graph", operation="GET /groups", request={}, call=dict
        )
    # The block's end writes what still waits.
    assert kinds()[-2:] == [
        ("GET /groups", AuditKind.CALL_STARTED),
        ("GET /groups", AuditKind.CALL_FINISHED),
    ]


@pytest.mark.django_db(transaction=True)
def test_it_writes_the_waiting_finished_rows_when_a_batch_ends_in_an_error() -> None:
    with pytest.raises(PermanentError), audit.batched_finishes():
        audit.audited_call(
            SCOPE, cloud="aws", service="iam", operation="ListRoles", request={}, call=dict
        )
        raise PermanentError("the step failed", code="x")

    assert list(AuditEvent.objects.order_by("pk").values_list("kind", flat=True)) == [
        AuditKind.CALL_STARTED,
        AuditKind.CALL_FINISHED,
    ]


@pytest.mark.django_db(transaction=True)
def test_it_keeps_waiting_rows_out_of_a_transaction_that_could_roll_back() -> None:
    with audit.batched_finishes():
        audit.audited_call(
            SCOPE, cloud="aws", service="iam", operation="GetRole", request={}, call=dict
        )
        with pytest.raises(RuntimeError), transaction.atomic():
            audit.record_state_change(
                SCOPE, kind=AuditKind.STEP_STATE, old={"status": "a"}, new={"status": "b"}
            )
            raise RuntimeError("rolled back")

    assert list(AuditEvent.objects.order_by("pk").values_list("operation", "kind")) == [
        ("GetRole", AuditKind.CALL_STARTED),
        ("GetRole", AuditKind.CALL_FINISHED),
    ]


@pytest.mark.django_db(transaction=True)
def test_it_writes_a_reads_rows_in_a_moves_state_row_insert_and_commit() -> None:
    def kinds() -> list[tuple[str, str]]:
        return list(AuditEvent.objects.order_by("pk").values_list("operation", "kind"))

    with audit.batched_finishes():
        audit.audited_call(
            SCOPE, cloud="aws", service="iam", operation="GetRole", request={}, call=dict
        )
        with (
            CaptureQueriesContext(connection) as statements,
            audit.reads_riding_along(),
            transaction.atomic(),
        ):
            audit.record_state_change(
                SCOPE, kind=AuditKind.STEP_STATE, old={"status": "a"}, new={"status": "b"}
            )
        # One INSERT for the move's row and the read's two, in the move's commit.
        inserts = [
            query["sql"] for query in statements.captured_queries if "INSERT" in query["sql"]
        ]
        assert len(inserts) == 1
        assert kinds() == [
            ("GetRole", AuditKind.CALL_STARTED),
            ("GetRole", AuditKind.CALL_FINISHED),
            ("", AuditKind.STEP_STATE),
        ]
    # Nothing left for the block's end to write.
    assert len(kinds()) == 3


@pytest.mark.django_db(transaction=True)
def test_it_keeps_a_reads_rows_waiting_when_a_move_rolls_back_or_writes_nothing() -> None:
    with audit.batched_finishes():
        audit.audited_call(
            SCOPE, cloud="aws", service="iam", operation="GetRole", request={}, call=dict
        )
        with pytest.raises(RuntimeError), audit.reads_riding_along(), transaction.atomic():
            audit.record_state_change(
                SCOPE, kind=AuditKind.STEP_STATE, old={"status": "a"}, new={"status": "b"}
            )
            raise RuntimeError("rolled back")
        with audit.reads_riding_along(), transaction.atomic():
            pass  # a move whose guarded UPDATE found nothing: it writes no row
        assert not AuditEvent.objects.exists()

    assert list(AuditEvent.objects.order_by("pk").values_list("operation", "kind")) == [
        ("GetRole", AuditKind.CALL_STARTED),
        ("GetRole", AuditKind.CALL_FINISHED),
    ]
