"""The dashboard: runs in progress first, each linked; an empty state that says what to do."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from provisioning.flows import Flow
from tests.web.factories import make_connection, make_run

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
