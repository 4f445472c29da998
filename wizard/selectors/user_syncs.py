"""Reads about syncs for the syncs page: each sync with its last run and what that run changed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from provisioning.models import SetupRun, UserSync

# The syncs page lists this many of each sync's latest runs.
RECENT_RUNS = 8


@dataclass
class SyncRow:
    sync: UserSync
    last_run: SetupRun | None
    recent_runs: list[SetupRun]
    # The users step's outputs of the last finished run: created, updated, deleted, ...
    summary: dict[str, Any]

    @property
    def group_names(self) -> list[str]:
        return [
            str(row.get("group_name") or row.get("group"))
            for row in self.sync.inputs.get("groups", [])
        ]


def sync_rows() -> list[SyncRow]:
    rows = []
    for sync in UserSync.objects.select_related("aws_connection", "idp_connection", "created_by"):
        recent = list(sync.runs.order_by("-created_at")[:RECENT_RUNS])
        last = recent[0] if recent else None
        summary: dict[str, Any] = {}
        if last is not None:
            step = last.steps.filter(key="group_users").first()
            summary = dict(step.outputs) if step is not None and step.outputs else {}
        rows.append(SyncRow(sync=sync, last_run=last, recent_runs=recent, summary=summary))
    return rows
