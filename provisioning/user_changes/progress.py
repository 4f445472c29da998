"""How far a change set is: done of total, the rate right now, the time left, errors so far,
read from the change rows, so a reload, a restarted worker or a restarted web server shows the
same numbers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, Max, Min, Q
from django.utils import timezone


@dataclass
class Progress:
    total: int
    done: int
    failed: int
    # Pending changes a worker holds right now.
    in_hand: int
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
    """The numbers for one change set (a handful of aggregate queries over its rows)."""
    from wizard.models import ACTIONS_THAT_CHANGE, ChangeStatus, UserChange

    rows = UserChange.objects.filter(change_set=change_set, action__in=ACTIONS_THAT_CHANGE)
    totals = rows.aggregate(
        total=Count("id"),
        done=Count("id", filter=Q(status=ChangeStatus.DONE)),
        failed=Count("id", filter=Q(status=ChangeStatus.FAILED)),
        in_hand=Count("id", filter=Q(status=ChangeStatus.PENDING) & ~Q(claimed_by="")),
        started=Min("claimed_at"),
        last=Max("finished_at"),
    )
    outcomes = dict(
        rows.exclude(outcome="").values_list("outcome").annotate(n=Count("id")).order_by()
    )
    window = settings.WIZARD_PROGRESS_RATE_WINDOW_S
    since = timezone.now() - timedelta(seconds=window)
    recent = rows.filter(finished_at__gte=since).aggregate(
        n=Count("id"), workers=Count("claimed_by", distinct=True), first=Min("finished_at")
    )
    # Early on, the window is the time since the work began, not the whole window.
    started = change_set.dispatched_at or totals["started"]
    span = float(window)
    if started is not None and started > since:
        span = max(1.0, (timezone.now() - started).total_seconds())
    rate = dict(change_set.rate or {})
    return Progress(
        total=totals["total"],
        done=totals["done"],
        failed=totals["failed"],
        in_hand=totals["in_hand"],
        by_outcome={str(k): int(v) for k, v in outcomes.items()},
        rate_now=recent["n"] / span if recent["n"] else 0.0,
        workers=recent["workers"],
        quota_per_second=rate.get("per_second"),
        quota_source=str(rate.get("source", "")),
        started_at=started,
        last_at=totals["last"],
    )
