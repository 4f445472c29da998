"""The run page's status poll costs the same for a users step of 20 changes as of 600: progress
comes from counters the database keeps on the change set, not from counting the rows."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from provisioning.models import RunStatus, SetupRun, UserChange, UserChangeSet
from tests.web.test_user_syncs import entra_setup, users_run

pytestmark = pytest.mark.django_db


def _applying(changes: int) -> tuple[SetupRun, UserChangeSet]:
    """A users run applying `changes` creations, the first half made."""
    run = users_run(entra_setup(), status=RunStatus.RUNNING)
    step = run.steps.get(key="group_users")
    change_set = UserChangeSet.objects.create(
        step_run=step,
        instance_id=run.instance_id,
        counts={"create": changes},
        dispatched_at=timezone.now(),
        rate={"per_second": 2.0, "burst": 5, "source": "service_quotas"},
    )
    step.plan = {"change_set": change_set.pk}
    step.status = "applying"
    step.save()
    UserChange.objects.bulk_create(
        UserChange(
            change_set=change_set,
            position=position,
            action="create",
            username=f"agent{position}@example.com",
            status="pending",
        )
        for position in range(changes)
    )
    made = UserChange.objects.filter(change_set=change_set, position__lt=changes // 2)
    made.update(status="done", outcome="created", claimed_by="host:1", finished_at=timezone.now())
    return run, change_set


def _poll(client: Client, run: SetupRun) -> tuple[Any, int]:
    page = client.get(reverse("run_detail", args=[run.pk])).content.decode()
    seen = re.findall(r'class="step-seen" name="seen" value="([^"]+)"', page)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(
            reverse("run_status", args=[run.pk]), {"seen": seen}, HTTP_HX_REQUEST="true"
        )
    return response, len(queries)


def test_it_counts_outcomes_in_the_statement_that_records_them() -> None:
    _run, change_set = _applying(10)
    change = UserChange.objects.filter(change_set=change_set, status="pending").first()
    assert change is not None

    UserChange.objects.filter(pk=change.pk).update(status="failed", outcome="failed")
    change_set.refresh_from_db()

    assert (change_set.created_count, change_set.failed_count) == (5, 1)


def test_it_answers_the_poll_of_600_changes_as_of_20(admin_client: Client) -> None:
    small, _ = _applying(20)
    large, _ = _applying(600)

    small_response, small_queries = _poll(admin_client, small)
    large_response, large_queries = _poll(admin_client, large)
    small_html = small_response.content.decode()
    large_html = large_response.content.decode()

    assert "10 of 20 changes made (50%)" in small_html
    assert "300 of 600 changes made (50%)" in large_html
    assert 'id="progress-group_users" hx-swap-oob="outerHTML"' in large_html
    assert large_queries == small_queries
    assert abs(len(large_html) - len(small_html)) < 10
    page = admin_client.get(reverse("run_detail", args=[large.pk])).content
    assert len(large_html) < 0.2 * len(page)


def test_a_users_step_waiting_for_a_rate_limit_counts_its_changes(admin_client: Client) -> None:
    run, _change_set = _applying(20)
    step = run.steps.get(key="group_users")
    next_try = timezone.now() + dt.timedelta(seconds=30)
    step.error = {
        "code": "E0000047",
        "message": "API call exceeded rate limit due to too many requests.",
        "retryable": True,
        "rate_limit_waits": 1,
        "rate_limited": True,
        "retry_at": next_try.isoformat(),
    }
    step.save()
    counter = (
        "Waiting for the API's rate limit: 10 of 20 done, next try at "
        f"{timezone.localtime(next_try):%Y-%m-%d %H:%M:%S %Z}."
    )

    _plain, plain_queries = _poll(admin_client, _applying(20)[0])
    page = admin_client.get(reverse("run_detail", args=[run.pk])).content.decode()
    response, queries = _poll(admin_client, run)
    html = response.content.decode()

    def text(markup: str) -> str:
        return re.sub(r"<[^>]+>", "", markup)

    assert counter in text(page) and counter in text(html)
    # The counter reads the progress the poll reads anyway: no query more.
    assert queries == plain_queries
    assert "exceeded rate limit" not in page and 'class="problem"' not in page


def test_it_asks_to_tick_assign_their_groups_only_while_the_plan_waits(
    admin_client: Client,
) -> None:
    run, change_set = _applying(4)
    step = run.steps.get(key="group_users")
    tick = "Tick “Assign their groups to the app” in the mapping to do it in this run."
    step.plan = {
        "change_set": change_set.pk,
        "warnings": [
            {
                "msgid": "Assigning these groups to the app would let them in: %(groups)s.",
                "params": {"groups": "“Agents”"},
            }
        ],
        "until_confirmed": [{"msgid": tick, "params": {}}],
        "needs_confirmation": True,
    }
    step.save()

    applying = admin_client.get(reverse("run_detail", args=[run.pk])).content.decode()
    step.status = "planned"
    step.save()
    SetupRun.objects.filter(pk=run.pk).update(status=RunStatus.WAITING)
    waiting = admin_client.get(reverse("run_detail", args=[run.pk])).content.decode()

    assert "would let them in" in applying and "Assign their groups to the app” in the" not in (
        applying
    )
    assert "Assign their groups to the app” in the mapping" in waiting
