"""The one choke point that writes every cloud call and state change to the audit log, redacted.

A call gets a "call_started" row, committed before the call goes out (so a crash mid-call still
leaves a trace), and a "call_finished" row with the outcome and duration after it. Nothing reaches
a row before `provisioning.redaction` has masked its secrets.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from provisioning.redaction import redact, redact_text, truncate_text

T = TypeVar("T")


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


def _write(scope: AuditScope, **fields: Any) -> Any:
    # The models are imported inside the functions of this module: settings' LOGGING loads it
    # (RedactSecretsFilter) while Django configures logging, before any model can be defined.
    from provisioning.models import AuditEvent

    return AuditEvent.objects.create(
        actor_id=scope.actor_id,
        actor_label=scope.actor_label[:200],
        run_id=scope.run_id,
        step_key=scope.step_key,
        **fields,
    )


def start_call(
    scope: AuditScope, *, cloud: str, service: str, operation: str, request: dict[str, Any]
) -> CallRecord:
    """Write the "call_started" row, committed at once: callers hold no transaction open, so the
    row's one INSERT commits on its own (Django's autocommit); a transaction block around it
    would only add a BEGIN and a COMMIT round trip."""
    from provisioning.models import AuditKind, AuditOutcome

    record = CallRecord(
        scope=scope, call_id=uuid.uuid4(), cloud=cloud, service=service, operation=operation
    )
    _write(
        scope,
        kind=AuditKind.CALL_STARTED,
        cloud=cloud,
        service=service,
        operation=operation,
        call_id=record.call_id,
        outcome=AuditOutcome.STARTED,
        request=redact(request),
    )
    return record


def finish_call(
    record: CallRecord,
    *,
    outcome: Literal["ok", "error"],
    response: dict[str, Any] | None = None,
    error_code: str = "",
) -> None:
    """Write the "call_finished" row of a started call: outcome, redacted response, duration (one
    INSERT, committed on its own like the started row)."""
    from provisioning.models import AuditKind

    duration_ms = int((time.monotonic() - record.started) * 1000)
    _write(
        record.scope,
        kind=AuditKind.CALL_FINISHED,
        cloud=record.cloud,
        service=record.service,
        operation=record.operation,
        call_id=record.call_id,
        outcome=outcome,
        error_code=error_code[:128],
        duration_ms=duration_ms,
        response=redact(response or {}),
    )


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
    message: str = "",
) -> None:
    """Write one state-change row; a change that changes nothing writes nothing.

    Call it inside the transaction that makes the change, so both commit or neither does.
    """
    if old == new:
        return
    _write(
        scope,
        kind=kind,
        old_value=redact(old),
        new_value=redact(new),
        message=truncate_text(redact_text(message)),
    )
