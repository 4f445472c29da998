"""How a scheduled sync reads its groups: only what changed since its last successful run, when the
IdP can say (Entra delta links, Okta groups' lastMembershipUpdated), and nothing more when
nothing changed; everything (every member, every Connect user) the first time, when the delta
state is gone or no longer fits the sync's answers, when something changed, and on the sync's own
rarer schedule (`UserSync.full_every_hours`), which is what catches changes made on the Connect
side (a user edited in the console), which no IdP delta shows.

A run's reading is decided in plan and stored on the sync only when the run's apply succeeds:
the delta state always describes a Connect side that a successful run left in step with the
groups. A full plan forgets the stored state first, so a full run that fails or is abandoned
is followed by another full one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any

from django.utils import timezone

from provisioning.entra.directory_changes import (
    DeltaExpired,
    delta_links_from_now,
    entra_changes,
    tracked_groups,
)
from provisioning.models import UserSync
from provisioning.user_changes.sources import people_among

# The run inputs a stored delta state was made for: another mapping, username source or
# departures answer means the last run's plan no longer stands, whatever the IdP says.
BASIS_INPUTS = ("groups", "username_source", "update_existing", "departures", "okta_app_id")
FULL = "full"
DELTA = "delta"


@dataclass
class SyncReading:
    """How this run reads the IdP (`mode`), why (`reason`), and the delta state to store on the
    sync when the run succeeds ({}: none; the next run reads in full)."""

    mode: str
    reason: str
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def unchanged(self) -> bool:
        return self.mode == DELTA and self.reason == "unchanged"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def basis(inputs: dict[str, Any]) -> str:
    """A fingerprint of the sync's answers that decide its plan."""
    chosen = {key: inputs.get(key) for key in BASIS_INPUTS}
    return hashlib.sha256(json.dumps(chosen, sort_keys=True, default=str).encode()).hexdigest()


def sync_reading(
    *,
    sync_id: str,
    idp: str,
    client: Any,
    inputs: dict[str, Any],
    groups: list[dict[str, Any]],
    instance_id: str,
) -> SyncReading:
    """Decide how this run of the sync reads its `groups` ([{id, name, ...}] as the directory
    found them just now)."""
    sync = UserSync.objects.filter(pk=sync_id).first()
    if sync is None:
        # A run that names a sync no longer there (deleted meanwhile): read in full, keep nothing.
        return SyncReading(FULL, "first")
    group_ids = [str(group["id"]) for group in groups]
    stored = dict(sync.delta_state or {})
    fingerprint = basis(inputs)
    due = sync.last_full_at is None or timezone.now() - sync.last_full_at >= timedelta(
        hours=sync.full_every_hours
    )
    if not stored:
        reason = "first"
    elif stored.get("basis") != fingerprint or stored.get("group_ids") != group_ids:
        reason = "inputs_changed"
    elif due:
        reason = "scheduled"
    else:
        try:
            reason, state = _changes(idp, client, stored, groups, instance_id)
        except DeltaExpired:
            reason = "expired"
        else:
            if reason == "unchanged":
                return SyncReading(DELTA, reason, state)
    # Forget the stored state before reading in full (module docstring).
    UserSync.objects.filter(pk=sync.pk).update(delta_state={})
    state = _from_now(idp, client, groups)
    if state:
        state.update(basis=fingerprint, group_ids=group_ids)
    return SyncReading(FULL, reason, state)


def _changes(
    idp: str, client: Any, stored: dict[str, Any], groups: list[dict[str, Any]], instance_id: str
) -> tuple[str, dict[str, Any]]:
    """("unchanged", the state to store next) or (what changed, {})."""
    if idp == "okta":
        seen = stored.get("okta_groups") or {}
        for group in groups:
            if seen.get(str(group["id"])) != group.get("last_membership_updated"):
                return "members_changed", {}
        return "unchanged", stored
    changes = entra_changes(client, stored["links"])
    if changes.changed_groups:
        return "members_changed", {}
    if people_among(
        instance_id=instance_id,
        group_ids=stored["group_ids"],
        idp_ids=changes.changed_users,
    ):
        return "users_changed", {}
    return "unchanged", {**stored, "links": changes.links}


def _from_now(idp: str, client: Any, groups: list[dict[str, Any]]) -> dict[str, Any]:
    """The delta state as of now, taken before the full read ({} when the IdP can't give one)."""
    if idp == "okta":
        stamps = {str(group["id"]): group.get("last_membership_updated") for group in groups}
        if not all(stamps.values()):
            return {}
        return {"okta_groups": stamps}
    tracked = tracked_groups(client, [str(group["id"]) for group in groups])
    if tracked is None:
        return {}
    return {"links": delta_links_from_now(client, tracked)}


def store_reading(*, sync_id: str, reading: dict[str, Any]) -> None:
    """After a successful apply: keep the run's delta state; a full run also moves the time of
    the last full reconciliation on."""
    changes: dict[str, Any] = {"delta_state": reading.get("state") or {}}
    if reading.get("mode") == FULL:
        changes["last_full_at"] = timezone.now()
    UserSync.objects.filter(pk=sync_id).update(**changes)
