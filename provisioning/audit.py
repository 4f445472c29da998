"""The one choke point that writes every cloud call and state change to the audit log, redacted.

A call gets a "call_started" row, committed before the call goes out (so a crash mid-call still
leaves a trace), and a "call_finished" row with the outcome and duration after it. Inside
`batched_finishes()` (the runner opens it around each phase of a step) both rows of a read (a
GET, or an AWS Describe/Get/List/Search) wait for the next row this thread writes and go into
the same INSERT, or are written when the block ends, however it ends: a read changes nothing in
the cloud, so its rows witness nothing a crashed run needs to find what it made, and a phase's
reads cost no commit of their own. A move of a step or a run (`reads_riding_along()` around its
transaction) takes them into its state row's INSERT, in its commit. The rows of every other call
are written at once, the started row before the call goes out and the finished row after it: they
are what a crashed run reads to find what it made. Nothing reaches a row before
`provisioning.redaction` has masked its secrets.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from django.db import router, transaction

from provisioning.messages import Message, is_message, to_json
from provisioning.models import AuditEvent, AuditKind, AuditOutcome
from provisioning.redaction import redact, redact_text, truncate_text

T = TypeVar("T")

# AWS operations that only read (the API reference's naming: Describe*, Get*, List*, Search*);
# Graph and Okta operations are "<HTTP method> <path>", and only GET and HEAD read.
READ_OPERATION = re.compile(r"^(Describe|Get|List|Search)[A-Z]|^(GET|HEAD) ")
# Per thread: whether batched_finishes() is open, and the rows of reads waiting for the
# next write.
_batch = threading.local()


@dataclass(frozen=True)
class AuditScope:
    """Who acts, and for which run and step, on every row written through this module."""

    actor_label: str
    actor_id: int | None = None
    run_id: uuid.UUID | None = None
    step_key: str = ""


@dataclass
class CallRecord:
    """A started call, handed back to `finish_call` to write its finished row."""

    scope: AuditScope
    call_id: uuid.UUID
    cloud: str
    service: str
    operation: str
    started: float = field(default_factory=time.monotonic)


def _row(scope: AuditScope, **fields: Any) -> AuditEvent:
    return AuditEvent(
        actor_id=scope.actor_id,
        actor_label=scope.actor_label[:200],
        run_id=scope.run_id,
        step_key=scope.step_key,
        **fields,
    )


def _insert(rows: list[AuditEvent]) -> None:
    """INSERT the rows with one statement. Outside a transaction it commits on its own
    (autocommit): bulk_create would add a BEGIN and a COMMIT round trip around it."""
    fields = [field for field in AuditEvent._meta.concrete_fields if not field.primary_key]
    # QuerySet._insert is what bulk_create calls inside its transaction; called alone, the INSERT
    # is its own autocommitted statement. Private to Django, so its stubs leave it out.
    manager: Any = AuditEvent.objects
    manager._insert(rows, fields=fields, using=router.db_for_write(AuditEvent))


def _riding(rows: list[AuditEvent]) -> list[AuditEvent]:
    """`rows`, after the reads' rows riding along with this block's first write
    (reads_riding_along), which then ride no further."""
    riding = getattr(_batch, "riding", None)
    if not riding:
        return rows
    _batch.riding = []
    return [*riding, *rows]


def _write(scope: AuditScope, **fields: Any) -> None:
    """Write one row; outside a transaction, the reads' rows waiting in this thread go
    into the same INSERT (inside one they wait on: a rollback would take them with it, unless
    reads_riding_along() holds them for the block's commit)."""
    rows = _riding([_row(scope, **fields)])
    pending = getattr(_batch, "pending", None)
    if pending and not transaction.get_connection(router.db_for_write(AuditEvent)).in_atomic_block:
        rows = [*pending, *rows]
        pending.clear()
    _insert(rows)


def flush_finishes() -> None:
    """Write the reads' rows waiting in this thread (one INSERT)."""
    pending = getattr(_batch, "pending", None)
    if pending:
        rows = list(pending)
        pending.clear()
        _insert(rows)


@contextmanager
def batched_finishes() -> Iterator[None]:
    """Within the block, a read's rows wait for the next row this thread writes (see the
    module's docstring); every waiting row is written when the block ends, however it ends."""
    if getattr(_batch, "pending", None) is not None:
        yield  # already open further up this thread
        return
    _batch.pending = []
    try:
        yield
    finally:
        try:
            flush_finishes()
        finally:
            _batch.pending = None


@contextmanager
def reads_riding_along() -> Iterator[None]:
    """Around a transaction block that writes a state row (a move of a step or a run): the reads'
    rows waiting in this thread go into that row's INSERT and commit with it, instead of costing a
    statement of their own at the end of batched_finishes(). If the block writes nothing or
    fails (its rollback took them), they wait again. Inside an outer transaction they wait as
    before: its later rollback would take them away unseen."""
    pending = getattr(_batch, "pending", None)
    connection = transaction.get_connection(router.db_for_write(AuditEvent))
    if not pending or connection.in_atomic_block:
        yield
        return
    riding = list(pending)
    pending.clear()
    _batch.riding = riding
    try:
        yield
    except BaseException:
        pending[:0] = riding
        raise
    else:
        if _batch.riding:
            pending[:0] = riding
    finally:
        _batch.riding = None


def start_call(
    scope: AuditScope, *, cloud: str, service: str, operation: str, request: dict[str, Any]
) -> CallRecord:
    """Write the "call_started" row, committed at once (a read's waits inside batched_finishes):
    callers hold no transaction open, so the row's one INSERT commits on its own (Django's
    autocommit); a transaction block around it would only add a BEGIN and a COMMIT round trip."""

    record = CallRecord(
        scope=scope, call_id=uuid.uuid4(), cloud=cloud, service=service, operation=operation
    )
    fields = {
        "kind": AuditKind.CALL_STARTED,
        "cloud": cloud,
        "service": service,
        "operation": operation,
        "call_id": record.call_id,
        "outcome": AuditOutcome.STARTED,
        "request": redact(request),
    }
    pending = getattr(_batch, "pending", None)
    if pending is not None and READ_OPERATION.match(operation):
        # A read inside a batch: written with its finished row (the module's docstring).
        pending.append(_row(scope, **fields))
        return record
    _write(scope, **fields)
    return record


def finish_call(
    record: CallRecord,
    *,
    outcome: Literal["ok", "error"],
    response: dict[str, Any] | None = None,
    error_code: str = "",
) -> None:
    """Write the "call_finished" row of a started call: outcome, redacted response, duration (one
    INSERT, committed on its own like the started row; a read's waits inside batched_finishes)."""
    duration_ms = int((time.monotonic() - record.started) * 1000)
    fields = {
        "kind": AuditKind.CALL_FINISHED,
        "cloud": record.cloud,
        "service": record.service,
        "operation": record.operation,
        "call_id": record.call_id,
        "outcome": outcome,
        "error_code": error_code[:128],
        "duration_ms": duration_ms,
        "response": redact(response or {}),
    }
    pending = getattr(_batch, "pending", None)
    if pending is not None and READ_OPERATION.match(record.operation):
        pending.append(_row(record.scope, **fields))
        return
    _write(record.scope, **fields)


def audited_call(
    scope: AuditScope,
    *,
    cloud: str,
    service: str,
    operation: str,
    request: dict[str, Any],
    call: Callable[[], T],
    summarize: Callable[[T], dict[str, Any]] | None = None,
) -> T:
    """Start the audit record, make the call, finish the record (on error too); return or raise."""
    from provisioning.errors import ProvisioningError

    record = start_call(scope, cloud=cloud, service=service, operation=operation, request=request)
    try:
        result = call()
    except ProvisioningError as error:
        finish_call(record, outcome="error", error_code=error.code, response=error.as_dict())
        raise
    except BaseException as error:
        # SystemExit and Celery's soft time limit too: the row says how the call ended.
        finish_call(
            record,
            outcome="error",
            error_code=type(error).__name__,
            response={"message": str(error)},
        )
        raise
    finish_call(record, outcome="ok", response=summarize(result) if summarize else {})
    return result


def record_state_change(
    scope: AuditScope,
    *,
    kind: str,
    old: dict[str, Any],
    new: dict[str, Any],
    message: Any = "",
) -> None:
    """Write one state-change row; a change that changes nothing writes nothing. `message` is a
    Message (or its stored form, or a lazy translation), kept as its id and parameters so the log
    reads in each reader's language; plain text is kept as it is.

    Call it inside the transaction that makes the change, so both commit or neither does.
    """
    if old == new:
        return
    _write(scope, **_state_fields(kind, old, new, message))


def record_state_changes(
    scope: AuditScope, *, kind: str, changes: list[tuple[dict[str, Any], dict[str, Any]]]
) -> None:
    """Write the rows of several state changes made by one UPDATE (a step planned and claimed
    for apply at once), in order, with one INSERT; as record_state_change, inside the
    transaction that makes them."""
    rows = [_row(scope, **_state_fields(kind, old, new, "")) for old, new in changes if old != new]
    if rows:
        _insert(_riding(rows))


def _state_fields(
    kind: str, old: dict[str, Any], new: dict[str, Any], message: Any
) -> dict[str, Any]:
    text, translatable = "", None
    if isinstance(message, Message) or is_message(message) or not isinstance(message, str):
        translatable = redact(to_json(message)) if message else None
    else:
        text = truncate_text(redact_text(message))
    return {
        "kind": kind,
        "old_value": redact(old),
        "new_value": redact(new),
        "message": text,
        "translatable_message": translatable,
    }
