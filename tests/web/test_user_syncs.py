"""Connect users from groups on the pages: a succeeded setup offers them, a succeeded users run
offers a sync; the syncs page edits, pauses, runs now and deletes; beat starts due syncs once;
a users step's lists download as CSV and its progress shows on the run page."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from provisioning.flows import USER_FLOWS
from provisioning.models import (
    AuditEvent,
    AuditKind,
    RunStatus,
    SetupRun,
    UserChange,
    UserChangeSet,
    UserSync,
)
from provisioning.runs.admin_moves import RunError
from provisioning.services import user_syncs as sync_services
from tests.web.factories import make_connection, make_run

pytestmark = pytest.mark.django_db

GROUPS = [
    {
        "group": "g-agents",
        "group_name": "Connect Agents",
        "security_profiles": ["Agent"],
        "routing_profile": "Basic Routing Profile",
        "phone_type": "SOFT_PHONE",
    }
]


def entra_setup(**fields: Any) -> SetupRun:
    fields.setdefault("status", RunStatus.SUCCEEDED)
    return make_run(
        flow_key="entra",
        instance_id=str(uuid.uuid4()),
        aws_connection=make_connection("aws"),
        idp_connection=make_connection("entra"),
        steps=[
            {
                "key": "entra_claims",
                "status": "succeeded",
                "outputs": {"session_name_source": "mail"},
            },
        ],
        **fields,
    )


def users_run(setup: SetupRun, *, status: str = RunStatus.SUCCEEDED, **fields: Any) -> SetupRun:
    return make_run(
        flow_key=USER_FLOWS["entra"],
        status=status,
        instance_id=setup.instance_id,
        instance_alias=setup.instance_alias,
        aws_connection=setup.aws_connection,
        idp_connection=setup.idp_connection,
        parent=setup,
        inputs={"username_source": "mail"},
        steps=[
            {"key": "preflight", "status": "succeeded"},
            {
                "key": "group_users",
                "status": "succeeded",
                "inputs": {"groups": GROUPS, "update_existing": False},
                "outputs": {
                    "change_set": 1,
                    "created": 12,
                    "updated": 1,
                    "deleted": 0,
                    "departed": 2,
                    "refused": 3,
                },
            },
        ],
        **fields,
    )


def test_a_succeeded_setup_offers_users_from_groups(
    admin_client: Client, django_capture_on_commit_callbacks
) -> None:
    setup = entra_setup()
    page = admin_client.get(reverse("run_detail", args=[setup.pk])).content.decode()
    assert reverse("users_from_groups", args=[setup.pk]) in page

    with django_capture_on_commit_callbacks(execute=False):
        response = admin_client.post(reverse("users_from_groups", args=[setup.pk]))

    run = SetupRun.objects.exclude(pk=setup.pk).get()
    assert response["Location"] == reverse("run_detail", args=[run.pk])
    assert (run.flow_key, run.parent_id, run.instance_id) == (
        "entra_users",
        setup.pk,
        setup.instance_id,
    )
    assert run.inputs == {"username_source": "mail"}
    assert run.review_plans
    assert list(run.steps.values_list("key", flat=True)) == ["preflight", "group_users"]


def test_a_setup_that_did_not_succeed_offers_no_users(admin_client: Client) -> None:
    setup = entra_setup(status=RunStatus.FAILED)

    response = admin_client.post(reverse("users_from_groups", args=[setup.pk]), follow=True)

    assert "once an SSO setup has succeeded" in response.content.decode()
    assert SetupRun.objects.count() == 1


def test_a_succeeded_users_run_becomes_a_sync(admin_client: Client, admin_user: Any) -> None:
    run = users_run(entra_setup())
    page = admin_client.get(reverse("run_detail", args=[run.pk])).content.decode()
    assert reverse("sync_new", args=[run.pk]) in page
    form = admin_client.get(reverse("sync_new", args=[run.pk])).content.decode()
    assert "Connect Agents" in form

    response = admin_client.post(
        reverse("sync_new", args=[run.pk]), {"every_hours": "6", "departures": "delete"}
    )

    assert response["Location"] == reverse("syncs")
    sync = UserSync.objects.get()
    assert (sync.every_hours, sync.departures, sync.setup_id) == (6, "delete", run.parent_id)
    assert sync.inputs == {
        "groups": GROUPS,
        "update_existing": False,
        "username_source": "mail",
    }
    assert timedelta(hours=5, minutes=59) < sync.next_run_at - timezone.now() <= timedelta(hours=6)
    event = AuditEvent.objects.get(kind=AuditKind.USER_SYNC)
    assert event.actor_label == admin_user.username
    assert event.new_value["departures"] == "delete"


def test_the_sync_form_says_what_to_fix(admin_client: Client) -> None:
    run = users_run(entra_setup())

    response = admin_client.post(reverse("sync_new", args=[run.pk]), {"every_hours": "5"})

    html = response.content.decode()
    assert response.status_code == 200
    assert "Select a valid choice. 5 is not one of the available choices." in html
    assert "This field is required." in html
    assert not UserSync.objects.exists()


def _sync(**fields: Any) -> UserSync:
    run = users_run(entra_setup())
    sync = sync_services.sync_create(user=None, run_id=run.pk, every_hours=24, departures="report")
    UserSync.objects.filter(pk=sync.pk).update(**fields)
    sync.refresh_from_db()
    return sync


def test_the_syncs_page_lists_each_sync_with_its_last_run(admin_client: Client) -> None:
    sync = _sync()
    last = users_run(UserSync.objects.get().setup, sync=sync)

    response = admin_client.get(reverse("syncs"))

    html = response.content.decode()
    assert "Connect Agents" in html and "Every 24 hours" in html
    assert reverse("run_detail", args=[last.pk]) in html
    assert re.search(
        r"12 created, 1 updated, 0 deleted, 2 left the groups \(kept\), 3 refused", html
    )
    assert not re.search(r"<style\b|\sstyle=|\son[a-z]+=", html)


def test_a_sync_is_paused_edited_and_deleted(admin_client: Client) -> None:
    sync = _sync()

    admin_client.post(
        reverse("sync_edit", args=[sync.pk]), {"every_hours": "2", "departures": "report"}
    )
    sync.refresh_from_db()
    assert (sync.enabled, sync.every_hours) == (False, 2)
    confirm = admin_client.get(reverse("sync_delete", args=[sync.pk]))
    assert "Delete this sync?" in confirm.content.decode()
    admin_client.post(reverse("sync_delete", args=[sync.pk]))

    assert not UserSync.objects.exists()
    assert AuditEvent.objects.filter(kind=AuditKind.USER_SYNC).count() == 3


def test_run_now_starts_one_run_at_a_time(
    admin_client: Client, django_capture_on_commit_callbacks
) -> None:
    sync = _sync()

    with django_capture_on_commit_callbacks(execute=False):
        first = admin_client.post(reverse("sync_run_now", args=[sync.pk]))
    again = admin_client.post(reverse("sync_run_now", args=[sync.pk]), follow=True)

    run = sync.runs.get()
    assert first["Location"] == reverse("run_detail", args=[run.pk])
    assert not run.review_plans and run.parent_id == sync.setup_id
    assert run.inputs == {
        "sync_id": str(sync.pk),
        "departures": "report",
    }
    assert run.steps.get(key="group_users").inputs == {
        "groups": GROUPS,
        "update_existing": False,
        "username_source": "mail",
    }
    assert "The previous run of this sync has not finished" in again.content.decode()
    page = admin_client.get(reverse("run_detail", args=[run.pk])).content.decode()
    assert "admin, with “Run now” of the sync" in page and "by the sync schedule" not in page
    dashboard = admin_client.get(reverse("dashboard")).content.decode()
    assert "by admin" in dashboard and "by the sync schedule" not in dashboard


def test_a_second_sync_of_a_group_on_the_same_instance_is_refused() -> None:
    setup = entra_setup()
    sync_services.sync_create(
        user=None, run_id=users_run(setup).pk, every_hours=24, departures="delete"
    )

    with pytest.raises(RunError) as refused:
        sync_services.sync_create(
            user=None, run_id=users_run(setup).pk, every_hours=6, departures="report"
        )

    assert "already keeps “Connect Agents” in step" in refused.value.message
    assert UserSync.objects.count() == 1


def test_beat_starts_each_due_sync_once(django_capture_on_commit_callbacks) -> None:
    due = _sync(next_run_at=timezone.now() - timedelta(minutes=1))
    _sync(next_run_at=timezone.now() + timedelta(minutes=5))
    _sync(next_run_at=timezone.now() - timedelta(minutes=1), enabled=False)

    with django_capture_on_commit_callbacks(execute=False):
        started = sync_services.syncs_start_due()
        again = sync_services.syncs_start_due()

    assert len(started) == 1 and again == []
    run = SetupRun.objects.get(pk=started[0])
    assert run.sync_id == due.pk
    due.refresh_from_db()
    assert due.next_run_at > timezone.now() + timedelta(hours=23)
    started_by = AuditEvent.objects.get(run=run, kind=AuditKind.RUN_STATE)
    assert started_by.actor_label == "sync schedule"


def test_a_sync_refuses_a_run_that_is_not_a_succeeded_users_run() -> None:
    setup = entra_setup()

    with pytest.raises(RunError, match="repeats a run"):
        sync_services.sync_create(user=None, run_id=setup.pk, every_hours=24, departures="report")
    with pytest.raises(RunError, match="reports or deletes"):
        sync_services.sync_create(user=None, run_id=setup.pk, every_hours=24, departures="ignore")


def _change_set(run: SetupRun, **fields: Any) -> UserChangeSet:
    step = run.steps.get(key="group_users")
    change_set = UserChangeSet.objects.create(
        step_run=step,
        instance_id=run.instance_id,
        counts={"create": 2, "refused": 1},
        users_in_use=37,
        users_quota=500,
        **fields,
    )
    step.plan = {"change_set": change_set.pk, "warnings": ["1 person can't have a Connect user"]}
    step.status = "applying"
    step.save()
    rows = [
        ("create", "ok@example.com", "done", "created", {"first_name": "Ok", "last_name": "One"}),
        (
            "create",
            "=cmd@example.com",
            "pending",
            "",
            {"first_name": "=HYPERLINK()", "last_name": "X"},
        ),
        ("refused", "bad name", "listed", "", {"reasons": ["The username has a space."]}),
    ]
    for position, (action, username, status, outcome, details) in enumerate(rows):
        UserChange.objects.create(
            change_set=change_set,
            position=position,
            action=action,
            username=username,
            status=status,
            outcome=outcome,
            details=details,
            claimed_by="host:1" if outcome else "",
            finished_at=timezone.now() if outcome else None,
        )
    return change_set


def test_the_run_page_shows_the_plan_lists_and_live_progress(admin_client: Client) -> None:
    run = users_run(entra_setup(), status=RunStatus.RUNNING)
    _change_set(
        run,
        dispatched_at=timezone.now() - timedelta(seconds=5),
        rate={"per_second": 2.0, "burst": 5, "source": "service_quotas"},
    )

    html = admin_client.get(reverse("run_detail", args=[run.pk])).content.decode()

    assert 'max="2" value="1"' in html
    assert "1 of 2 changes made (50%)" in html
    assert "quota 2 a second" in html and "from Service Quotas" in html
    assert "0 errors" in html
    assert "When planned, the instance had 37 users." in html
    assert "after this plan, 461 more fit." in html
    assert "The username has a space." in html
    csv_url = reverse("step_changes_csv", args=[run.pk, "group_users"])
    assert csv_url in html


def test_a_list_downloads_as_csv_that_cannot_run_a_formula(admin_client: Client) -> None:
    run = users_run(entra_setup(), status=RunStatus.RUNNING)
    change_set = _change_set(run)
    url = reverse("step_changes_csv", args=[run.pk, "group_users"])

    created = admin_client.get(url, {"action": "create"})
    refused = admin_client.get(url, {"action": "refused"})
    missing = admin_client.get(url, {"change_set": "999999"})

    text = b"".join(created.streaming_content).decode()
    assert created["Content-Disposition"] == (
        f'attachment; filename="connect-users-create-{change_set.pk}.csv"'
    )
    assert text.startswith("\ufeffaction,username,first_name,last_name")
    assert "'=cmd@example.com" in text and "'=HYPERLINK()" in text
    assert "bad name" not in text
    assert "The username has a space." in b"".join(refused.streaming_content).decode()
    assert missing.status_code == 404


def test_the_dashboard_shows_only_the_latest_succeeded_run_of_a_sync(admin_client: Client) -> None:
    sync = _sync()
    setup = UserSync.objects.get().setup
    older = users_run(setup, sync=sync)
    failed = users_run(setup, sync=sync, status=RunStatus.FAILED)
    latest = users_run(setup, sync=sync)
    for run, hours in ((older, 3), (failed, 2), (latest, 1)):
        SetupRun.objects.filter(pk=run.pk).update(
            created_at=timezone.now() - timedelta(hours=hours)
        )

    dashboard = admin_client.get(reverse("dashboard")).content.decode()
    syncs = admin_client.get(reverse("syncs")).content.decode()

    assert reverse("run_detail", args=[latest.pk]) in dashboard
    assert reverse("run_detail", args=[failed.pk]) in dashboard  # something to look at
    assert reverse("run_detail", args=[older.pk]) not in dashboard
    assert "Started" in dashboard and "by the sync schedule" in dashboard
    assert "Connect users: 12 created, 1 updated, 0 deleted, 3 refused" in dashboard
    assert reverse("run_detail", args=[older.pk]) in syncs


def test_a_csv_list_name_takes_only_the_lists_the_page_offers(admin_client: Client) -> None:
    run = users_run(entra_setup(), status=RunStatus.RUNNING)
    _change_set(run)
    url = reverse("step_changes_csv", args=[run.pk, "group_users"])

    nul = admin_client.get(url, {"action": "create\x00"})
    quote = admin_client.get(url, {"action": 'x"; filename="evil.exe'})
    status = admin_client.get(url, {"status": "done\r\nSet-Cookie: a=b"})

    assert [nul.status_code, quote.status_code, status.status_code] == [404, 404, 404]
    assert "evil" not in quote.get("Content-Disposition", "")


def test_the_users_step_takes_its_answers_from_the_run_page(
    admin_client: Client, django_capture_on_commit_callbacks
) -> None:
    """The page posts a multipart form (request.FILES too, for the steps that upload a file); the
    users step's form with its formset of group rows takes it and the step keeps the answers."""
    choices = {
        "idp": "entra",
        "groups": [{"id": "g-agents", "name": "Connect Agents", "member_count": 3}],
        "security_profiles": ["Agent", "Admin"],
        "routing_profiles": ["Basic Routing Profile"],
        "username_source": "mail",
    }
    run = make_run(
        flow_key=USER_FLOWS["entra"],
        status="waiting",
        steps=[
            {"key": "preflight", "status": "succeeded"},
            {
                "key": "group_users",
                "status": "planned",
                "plan": {"needs_input": True, "mapping_choices": choices},
            },
        ],
    )
    rows = "step-group_users-groups"
    answers = {
        "step-group_users-username_source": "mail",
        f"{rows}-TOTAL_FORMS": "1",
        f"{rows}-INITIAL_FORMS": "0",
        f"{rows}-0-group": "g-agents",
        f"{rows}-0-security_profiles": ["Agent"],
        f"{rows}-0-routing_profile": "Basic Routing Profile",
        f"{rows}-0-phone_type": "SOFT_PHONE",
    }

    with django_capture_on_commit_callbacks(execute=False):
        response = admin_client.post(reverse("step_inputs", args=[run.pk, "group_users"]), answers)

    assert response.status_code == 302, response.content.decode()[:2000]
    assert run.steps.get(key="group_users").inputs == {
        "groups": [{**GROUPS[0]}],
        "username_source": "mail",
        "assign_groups": False,
        "update_existing": False,
    }
