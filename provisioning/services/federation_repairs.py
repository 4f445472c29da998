"""Repair a federation a check found broken: a run of the IdP's SSO setup flow against it, its
inputs filled from what the check read so that every step adopts what exists and plans only the
fixes (provisioning/federation_check/repair.py). Every plan that changes something waits for the
admin's confirmation, as in a setup. A refused start raises RunError."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext

from provisioning.federation_check.repair import (
    REPAIR_OF_CHECK,
    fixable,
    repair_flow,
    repair_inputs,
)
from provisioning.federation_check.result import FederationCheck
from provisioning.models import (
    FederationCheckRecord,
    FederationCheckStatus,
    SetupRun,
    WatchedFederation,
)
from provisioning.runs import admin_moves
from provisioning.runs.admin_moves import RunError


def repairable(record: FederationCheckRecord | None) -> FederationCheck | None:
    """The check's result when a repair can start from it (it finished and has findings a repair
    fixes), else None."""
    if record is None or record.status != FederationCheckStatus.DONE or not record.result:
        return None
    result = FederationCheck.from_json(record.result)
    return result if fixable(result) else None


def repair_run_create(*, user: Any, check_id: Any, enqueue: bool = True) -> SetupRun:
    """Start the repair of the federation the check `check_id` read."""
    record = FederationCheckRecord.objects.filter(pk=check_id).first()
    if record is None:
        raise RunError(gettext("No federation check has this ID."))
    result = repairable(record)
    if result is None:
        raise RunError(gettext("This check found nothing a repair fixes."))
    return admin_moves.run_create(
        user=user,
        # fixable() finds nothing for a federation no flow repairs, so this one has a flow.
        flow_key=repair_flow(result),
        region=record.region,
        instance_alias=result.instance_alias,
        instance_id=result.instance_id,
        aws_connection_id=record.aws_connection_id,
        idp_connection_id=record.idp_connection_id,
        inputs={**repair_inputs(result), REPAIR_OF_CHECK: str(record.pk)},
        review_plans=True,
        enqueue=enqueue,
    )


def watched_repair_run_create(*, user: Any, watched_id: int, enqueue: bool = True) -> SetupRun:
    """Start the repair of a watched federation, from its latest check."""
    watched = WatchedFederation.objects.filter(pk=watched_id).first()
    if watched is None:
        raise RunError(gettext("No watched federation has this ID."))
    if watched.latest_check_id is None:
        raise RunError(gettext("This check found nothing a repair fixes."))
    return repair_run_create(user=user, check_id=watched.latest_check_id, enqueue=enqueue)
