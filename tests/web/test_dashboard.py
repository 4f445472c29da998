"""The dashboard: runs in progress first, each linked; an empty state that says what to do."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from provisioning.flows import Flow
from provisioning.runs import admin_moves
from tests.web.factories import WEB_FLOW, make_connection, make_run
from wizard.selectors.runs import DASHBOARD_RUN_LIMIT

pytestmark = pytest.mark.django_db


def test_it_points_a_new_admin_to_connections_and_new_setup(admin_client: Client) -> None:
    html = admin_client.get(reverse("dashboard")).content.decode()

    assert "No setup runs yet" in html
    assert f'href="{reverse("connections")}"' in html
    assert f'href="{reverse("run_new")}"' in html


def test_it_lists_runs_in_progress_before_finished_ones(
    admin_client: Client, web_flow: Flow
) -> None:
    finished = make_run(status="succeeded", instance_alias="finished-one")
    running = make_run(status="running", instance_alias="running-one")
    make_connection()

    html = admin_client.get(reverse("dashboard")).content.decode()

    assert html.index("running-one") < html.index("finished-one")
    assert f'href="{reverse("run_detail", args=[running.pk])}"' in html
    assert f'href="{reverse("run_detail", args=[finished.pk])}"' in html
    assert "Web test flow" in html
    assert "Succeeded" in html and "Running" in html


def test_it_says_who_started_each_run_never_a_dash(
    admin_client: Client, admin_user: User, web_flow: Flow
) -> None:
    make_run(status="succeeded", instance_alias="by-admin", created_by=admin_user)
    make_run(status="succeeded", instance_alias="from-cli")  # setup_sso: no admin, no schedule

    english = admin_client.get(reverse("dashboard")).content.decode()
    japanese = admin_client.get(reverse("dashboard"), HTTP_ACCEPT_LANGUAGE="ja").content.decode()

    assert f"by {admin_user.get_username()}" in english
    assert "from the command line" in english and "by —" not in english
    assert "にコマンドラインから開始" in japanese and "— が開始" not in japanese


def test_it_reads_as_many_queries_and_no_step_plans_for_sixty_runs_as_for_three(
    admin_client: Client, web_flow: Flow
) -> None:
    steps = [
        {"key": "web_ask", "status": "succeeded", "plan": {"big": "x" * 1000}},
        {"key": "web_create", "status": "pending"},
    ]
    for status in ("running", "failed", "succeeded"):
        make_run(status=status, steps=steps)
    admin_client.get(reverse("dashboard"))
    with CaptureQueriesContext(connection) as few:
        admin_client.get(reverse("dashboard"))
    for index in range(60):
        make_run(status=("running", "failed", "succeeded", "rolled_back")[index % 4], steps=steps)

    with CaptureQueriesContext(connection) as many:
        html = admin_client.get(reverse("dashboard")).content.decode()

    assert len(many) == len(few)
    assert html.count("1 of 2 steps done") == DASHBOARD_RUN_LIMIT
    # Only what the page shows: no step's plan or outputs but a users step's.
    assert not any('"wizard_steprun"."plan"' in query["sql"] for query in many)


def test_a_run_whose_admin_was_deleted_says_so_not_the_command_line(
    admin_client: Client, web_flow: Flow
) -> None:
    leaver = get_user_model().objects.create_user("leaver", password="x")
    theirs = admin_moves.run_create(
        user=leaver, flow_key=WEB_FLOW, region="ap-northeast-1", instance_alias="by-leaver",
        enqueue=False,
    )  # fmt: skip
    headless = admin_moves.run_create(
        user=None, flow_key=WEB_FLOW, region="ap-northeast-1", instance_alias="headless",
        enqueue=False,
    )  # fmt: skip
    leaver.delete()

    dashboard = admin_client.get(reverse("dashboard")).content.decode()
    run_page = admin_client.get(reverse("run_detail", args=[theirs.pk])).content.decode()
    japanese = admin_client.get(
        reverse("run_detail", args=[theirs.pk]), HTTP_ACCEPT_LANGUAGE="ja"
    ).content.decode()
    headless_page = admin_client.get(reverse("run_detail", args=[headless.pk])).content.decode()

    assert dashboard.count("by a deleted account") == 1
    assert dashboard.count("from the command line") == 1
    assert "by a deleted account" in run_page and "from the command line" not in run_page
    assert "削除済みのアカウント" in japanese
    assert "from the command line" in headless_page and "deleted account" not in headless_page
