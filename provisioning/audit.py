"""The one choke point that writes every cloud call and state change to the audit log, redacted.

A call gets a "call_started" row, committed before the call goes out (so a crash mid-call still
leaves a trace), and a "call_finished" row with the outcome and duration after it. Inside
`batched_finishes()` (the runner opens it around each phase of a step) the finished row of a
read (a GET, or an AWS Describe/Get/List/Search) waits for the next row this thread writes and
goes into the same INSERT, or is written when the block ends: a read changes nothing in the
cloud, so its finished row witnesses nothing a crash could hide (the started row is still
there), and each read costs one commit instead of two. The finished row of every other call is
written at once: it is what a crashed run reads to find what it made. Nothing reaches
a row, or a log line, before `redact` has masked secrets: values under secret-looking keys, and any
connection secret this process has decrypted (`register_secret_values`).

This module is imported by the logging configuration, before Django's apps are ready, so it reads
the models inside functions.
"""

from __future__ import annotations

import datetime
import decimal
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

T = TypeVar("T")

REDACTED = "***"
# Key names (lowercase, with "_", "-", "." and spaces removed) containing one of these hold a
# secret: passwords, client secrets, API/session tokens, SAML responses, private keys, AWS
# SecretAccessKey, Authorization/Cookie headers.
SECRET_KEY_PARTS = (
    "password",
    "passwd",
    "secret",
    "token",
    "samlresponse",
    "samlassertion",
    "privatekey",
    "authorization",
    "apikey",
    "cookie",
    "clientassertion",
)
# Keys that contain "token" but hold no secret: AWS idempotency/pagination tokens, the thumbprint
# of an Entra signing certificate. Admins need these to follow what happened.
NOT_SECRET_KEYS = frozenset(
    {
        "clienttoken",
        "nexttoken",
        "paginationtoken",
        "continuationtoken",
        "idempotencytoken",
        "preferredtokensigningkeythumbprint",
        "tokentype",
    }
)
# "Bearer eyJ...", "SSWS 00ab...", "Basic dXNlcjpw...": credentials in a header value or a message.
AUTH_SCHEME_PATTERN = re.compile(r"(?i)\b(bearer|ssws|basic)\s+[A-Za-z0-9._~+/=-]{8,}")
# Registered secrets shorter than this are masked only where a whole value equals them: replacing
# every "abc" inside longer texts would mangle the log without protecting anything.
MIN_SECRET_SUBSTRING_CHARS = 6
# Audit rows stay readable and small: longer texts are cut (after redaction) to this length.
MAX_TEXT_CHARS = 4000
# Nesting deeper than this is summarised instead of walked (SDK objects can be recursive).
MAX_DEPTH = 12

_secret_values: set[str] = set()
_secret_lock = threading.Lock()
# AWS operations that only read (the API reference's naming: Describe*, Get*, List*, Search*);
# Graph and Okta operations are "<HTTP method> <path>", and only GET and HEAD read.
READ_OPERATION = re.compile(r"^(Describe|Get|List|Search)[A-Z]|^(GET|HEAD) ")
# Per thread: whether batched_finishes() is open, and the finished rows of reads waiting for the
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


def register_secret_values(values: Iterable[Any]) -> None:
    """Mask these values wherever they appear in audit rows and log lines of this process.

    Client modules call this with `connection.secrets.values()` each time they decrypt them.
    """
    cleaned = {value for value in values if isinstance(value, str) and value.strip()}
    if cleaned:
        with _secret_lock:
            _secret_values.update(cleaned)


def _registered_secrets() -> list[str]:
    with _secret_lock:
        # Longest first, so a secret that contains another is masked whole.
        return sorted(_secret_values, key=len, reverse=True)


def _is_secret_key(key: str) -> bool:
    normalized = re.sub(r"[\s_.\-]", "", key).lower()
    if normalized in NOT_SECRET_KEYS:
        return False
    return any(part in normalized for part in SECRET_KEY_PARTS)


def redact_text(text: str, secrets: list[str] | None = None) -> str:
    """`text` with registered secrets and credentials after an auth scheme replaced by "***"."""
    if secrets is None:
        secrets = _registered_secrets()
    for secret in secrets:
        if text == secret:
            return REDACTED
        if len(secret) >= MIN_SECRET_SUBSTRING_CHARS and secret in text:
            text = text.replace(secret, REDACTED)
    return AUTH_SCHEME_PATTERN.sub(lambda match: f"{match.group(1)} {REDACTED}", text)


def _truncate(text: str) -> str:
    if len(text) <= MAX_TEXT_CHARS:
        return text
    return f"{text[:MAX_TEXT_CHARS]}… ({len(text) - MAX_TEXT_CHARS} more characters)"


def _redact(value: Any, secrets: list[str], depth: int, truncate: bool) -> Any:
    if depth > MAX_DEPTH:
        return f"<{type(value).__name__} nested too deep>"
    if isinstance(value, Mapping):
        return {
            str(key): (
                REDACTED
                if _is_secret_key(str(key)) and item not in (None, "")
                else _redact(item, secrets, depth + 1, truncate)
            )
            for key, item in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [_redact(item, secrets, depth + 1, truncate) for item in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        text = redact_text(value, secrets)
        return _truncate(text) if truncate else text
    if isinstance(value, bytes | bytearray):
        return f"<{len(value)} bytes>"
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, uuid.UUID | decimal.Decimal):
        return str(value)
    return _truncate(redact_text(repr(value), secrets))


def redact(value: Any, *, truncate: bool = True) -> Any:
    """A JSON-safe copy of `value` with every secret replaced by "***".

    Audit summaries are truncated; step plans and outputs are not (truncate=False), because later
    steps read them: IdP metadata handed to saml_provider is often longer than an audit summary.
    """
    return _redact(value, _registered_secrets(), 0, truncate)


def _row(scope: AuditScope, **fields: Any) -> Any:
    from wizard.models import AuditEvent

    return AuditEvent(
        actor_id=scope.actor_id,
        actor_label=scope.actor_label[:200],
        run_id=scope.run_id,
        step_key=scope.step_key,
        **fields,
    )


def _insert(rows: list[Any]) -> None:
    """INSERT the rows with one statement. Outside a transaction it commits on its own
    (autocommit): bulk_create would add a BEGIN and a COMMIT round trip around it."""
    from django.db import router

    from wizard.models import AuditEvent

    fields = [field for field in AuditEvent._meta.concrete_fields if not field.primary_key]
    AuditEvent.objects._insert(rows, fields=fields, using=router.db_for_write(AuditEvent))


def _write(scope: AuditScope, **fields: Any) -> None:
    """Write one row; outside a transaction, the reads' finished rows waiting in this thread go
    into the same INSERT (inside one they wait on: a rollback would take them with it)."""
    from django.db import router, transaction

    from wizard.models import AuditEvent

    rows = [_row(scope, **fields)]
    pending = getattr(_batch, "pending", None)
    if pending and not transaction.get_connection(router.db_for_write(AuditEvent)).in_atomic_block:
        rows = [*pending, *rows]
        pending.clear()
    _insert(rows)


def flush_finishes() -> None:
    """Write the reads' finished rows waiting in this thread (one INSERT)."""
    pending = getattr(_batch, "pending", None)
    if pending:
        rows = list(pending)
        pending.clear()
        _insert(rows)


@contextmanager
def batched_finishes() -> Iterator[None]:
    """Within the block, a read's finished row waits for the next row this thread writes (see the
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


def start_call(
    scope: AuditScope, *, cloud: str, service: str, operation: str, request: dict[str, Any]
) -> CallRecord:
    """Write the "call_started" row, committed at once: callers hold no transaction open, so the
    row's one INSERT commits on its own (Django's autocommit); a transaction block around it
    would only add a BEGIN and a COMMIT round trip."""
    from wizard.models import AuditKind, AuditOutcome

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
    INSERT, committed on its own like the started row; a read's waits inside batched_finishes)."""
    from wizard.models import AuditKind

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
        message=_truncate(redact_text(message)),
    )


class RedactSecretsFilter(logging.Filter):
    """Masks registered secrets and auth-scheme credentials in log messages and tracebacks."""

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = _registered_secrets()
        message = record.getMessage()
        masked = redact_text(message, secrets)
        if masked != message:
            record.msg = masked
            record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text, secrets)
        return True
