"""How far a change set is: done of total, the rate right now, the time left, errors so far,
read from the database, so a reload, a restarted worker or a restarted web server shows the same
numbers. The totals are counters on the change set (kept by a trigger in the statement that
records each change's outcome, migration 0007); only the last moments' changes are read, through
the (change set, finished_at) index, so the cost stays flat however many changes the set has."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, Max, Q
from django.utils import timezone

from provisioning.models import ACTIONS_THAT_CHANGE, CHANGE_OUTCOMES, UserChange, UserChangeSet


@dataclass
class Progress:
    total: int
    done: int
    failed: int
    by_outcome: dict[str, int] = field(default_factory=dict)
    # Changes per second over the last WIZARD_PROGRESS_RATE_WINDOW_S seconds.
    rate_now: float = 0.0
    # Distinct workers that finished a change in that window.
    workers: int = 0
    quota_per_second: float | None = None
    quota_source: str = ""
    started_at: datetime | None = None
    last_at: datetime | None = None

    @property
    def finished(self) -> int:
        return self.done + self.failed

    @property
    def left(self) -> int:
        return self.total - self.finished

    @property
    def percent(self) -> int:
        return 100 if not self.total else int(100 * self.finished / self.total)

    @property
    def eta_s(self) -> float | None:
        """Seconds left at the rate of the last moments (or, before any, at the quota)."""
        if not self.left:
            return 0.0
        rate = self.rate_now or self.quota_per_second or 0.0
        return self.left / rate if rate > 0 else None

    @property
    def elapsed_s(self) -> float:
        if self.started_at is None or self.last_at is None:
            return 0.0
        return max(0.0, (self.last_at - self.started_at).total_seconds())


def change_set_progress(change_set: Any) -> Progress:
    """The numbers for one change set: its counters as they are now (workers move them while
    the caller holds the set), and one read of its latest changes."""
    counters = [f"{name}_count" for name in CHANGE_OUTCOMES]
    current = UserChangeSet.objects.values(*counters, "counts", "dispatched_at", "rate").get(
        pk=change_set.pk
    )
    by_outcome = {
        name: count for name in CHANGE_OUTCOMES if (count := int(current[f"{name}_count"]))
    }
    # Only changes that call Connect get a finished_at (the others are listed, never made).
    window = settings.WIZARD_PROGRESS_RATE_WINDOW_S
    since = timezone.now() - timedelta(seconds=window)
    in_window = Q(finished_at__gte=since)
    recent = UserChange.objects.filter(change_set=change_set).aggregate(
        last=Max("finished_at"),
        n=Count("id", filter=in_window),
        workers=Count("claimed_by", distinct=True, filter=in_window),
    )
    last = recent["last"]
    # Early on, the window is the time since the work began, not the whole window.
    started = current["dispatched_at"]
    span = float(window)
    if started is not None and started > since:
        span = max(1.0, (timezone.now() - started).total_seconds())
    rate = dict(current["rate"] or {})
    failed = by_outcome.get("failed", 0)
    return Progress(
        total=sum(int(current["counts"].get(action, 0)) for action in ACTIONS_THAT_CHANGE),
        done=sum(by_outcome.values()) - failed,
        failed=failed,
        by_outcome=by_outcome,
        rate_now=recent["n"] / span if recent["n"] else 0.0,
        workers=recent["workers"],
        quota_per_second=rate.get("per_second"),
        quota_source=str(rate.get("source", "")),
        started_at=started,
        last_at=last,
    )
