"""Start "Rotate the signing certificate" for a watched federation (from its page, or from a check
of it whose findings say the certificate expires): the run takes the
federation's connections, region, instance and IdP app, and what the setup that built it knows
(its IAM identity provider, the person its sign-in test signed in). A refused start raises
RunError."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext

from provisioning.flows import ROTATION_FLOWS
from provisioning.models import FederationCheckRecord, SetupRun, WatchedFederation
from provisioning.runs import admin_moves
from provisioning.runs.admin_moves import RunError
from provisioning.user_changes.sources import setup_outputs


def rotation_inputs(watched: WatchedFederation) -> dict[str, Any]:
    """The rotation's answers known already; the first step asks for any missing (a federation
    found by a check has no setup to read the IAM identity provider from)."""
    inputs: dict[str, Any] = {"app_id": watched.app_id}
    outputs = setup_outputs(watched.setup)
    provider_arn = outputs.get("saml_provider", {}).get("provider_arn")
    if provider_arn:
        inputs["provider_arn"] = provider_arn
    results = outputs.get("sign_in_test", {}).get("results") or []
    login = next((r.get("login") for r in results if r.get("ok") and r.get("login")), "")
    if login:
        inputs["test_user"] = login
    return inputs


def rotation_run_create(*, user: Any, watched_id: int, enqueue: bool = True) -> SetupRun:
    watched = (
        WatchedFederation.objects.select_related("idp_connection", "setup")
        .filter(pk=watched_id)
        .first()
    )
    if watched is None:
        raise RunError(gettext("No watched federation has this ID."))
    flow_key = ROTATION_FLOWS.get(str(watched.idp_connection.cloud))
    if flow_key is None:
        raise RunError(gettext("This federation's IdP has no certificate rotation."))
    return admin_moves.run_create(
        user=user,
        flow_key=flow_key,
        region=watched.region,
        instance_alias=watched.instance_alias,
        instance_id=watched.instance_id,
        aws_connection_id=watched.aws_connection_id,
        idp_connection_id=watched.idp_connection_id,
        inputs=rotation_inputs(watched),
        review_plans=True,
        enqueue=enqueue,
    )


def check_rotation_run_create(*, user: Any, check_id: Any, enqueue: bool = True) -> SetupRun:
    """Start the rotation of the federation the check `check_id` read (its watched federation:
    every finished check that found one is watched)."""
    record = FederationCheckRecord.objects.filter(pk=check_id).first()
    if record is None:
        raise RunError(gettext("No federation check has this ID."))
    if record.watched_id is None:
        raise RunError(gettext("This check found no federation whose certificate can be rotated."))
    return rotation_run_create(user=user, watched_id=record.watched_id, enqueue=enqueue)
