"""Check a federation: save what the admin asked to check and enqueue the worker that reads it
(web requests never call a cloud); the worker's half runs the read-only check and saves its
result."""

from __future__ import annotations

import datetime as dt
import socket
import uuid
from typing import Any

from django.db import transaction
from django.utils import timezone, translation

from provisioning.audit import AuditScope
from provisioning.errors import ProvisioningError
from provisioning.federation_check.check import check_federation
from provisioning.federation_watch import watch_record_check
from provisioning.models import Connection, FederationCheckRecord, FederationCheckStatus


def federation_check_request(
    *,
    user: Any,
    aws_connection: Connection,
    idp_connection: Connection,
    region: str,
    instance: str,
    app_id: str,
) -> FederationCheckRecord:
    from provisioning.tasks import run_federation_check

    record = FederationCheckRecord.objects.create(
        requested_by=user,
        aws_connection=aws_connection,
        idp_connection=idp_connection,
        region=region,
        instance=instance,
        app_id=app_id,
        language=translation.get_language() or "en",
    )
    transaction.on_commit(lambda: run_federation_check.delay(str(record.pk)))
    return record


def federation_check_run(*, check_id: str, now: dt.datetime | None = None) -> None:
    """The worker's half. A check already finished (a redelivered task) is left as it is. Once
    saved, the federation it read is watched and takes its state (provisioning/services/
    federation_watch.py). `now` judges the certificate's expiry (tests move it)."""
    record = FederationCheckRecord.objects.select_related(
        "aws_connection", "idp_connection", "requested_by"
    ).get(pk=uuid.UUID(check_id))
    if record.status != FederationCheckStatus.PENDING:
        return
    scope = AuditScope(
        actor_label=f"federation check@{socket.gethostname()}",
        actor_id=record.requested_by_id,
    )
    with translation.override(record.language):
        try:
            result = check_federation(
                aws_connection=record.aws_connection,
                region=record.region,
                instance=record.instance,
                idp_connection=record.idp_connection,
                app_id=record.app_id,
                audit=scope,
                now=now,
            )
        except ProvisioningError as error:
            saved = FederationCheckRecord.objects.filter(
                pk=record.pk, status=FederationCheckStatus.PENDING
            ).update(
                status=FederationCheckStatus.FAILED,
                error=error.as_dict(),
                finished_at=timezone.now(),
            )
        else:
            saved = FederationCheckRecord.objects.filter(
                pk=record.pk, status=FederationCheckStatus.PENDING
            ).update(
                status=FederationCheckStatus.DONE,
                result=result.to_json(),
                finished_at=timezone.now(),
            )
    if saved:
        record.refresh_from_db()
        watch_record_check(record=record)
