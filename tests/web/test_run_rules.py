"""What an admin may do with a run is defined once (provisioning.models): the page offers an
action exactly when the service that does it accepts it."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from provisioning.flows import Flow
from provisioning.models import (
    RUN_CANCELLABLE,
    RUN_RESUMABLE,
    RUN_RESUMABLE_IF_INTERRUPTED,
    RunStatus,
)
from provisioning.runs import admin_moves
from provisioning.runs.admin_moves import RunError
from tests.web.factories import make_run

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("status", [status.value for status in RunStatus])
def test_the_page_offers_resume_and_cancel_exactly_when_the_rules_allow(
    admin_client: Client, web_flow: Flow, status: str
) -> None:
    run = make_run(status=status, steps=[{"key": "web_create", "status": "failed"}])

    html = admin_client.get(reverse("run_detail", args=[run.pk])).content.decode()

    assert (reverse("run_resume", args=[run.pk]) in html) == (status in RUN_RESUMABLE)
    assert (reverse("run_cancel", args=[run.pk]) in html) == (status in RUN_CANCELLABLE)


@pytest.mark.parametrize("status", [status.value for status in RunStatus])
def test_the_resume_service_accepts_the_statuses_the_rules_name(
    web_flow: Flow, status: str
) -> None:
    run = make_run(status=status, steps=[{"key": "web_create", "status": "failed"}])

    try:
        admin_moves.run_resume(user=None, run_id=run.pk, enqueue=False)
    except RunError:
        accepted = False
    else:
        accepted = True

    assert accepted == (status in RUN_RESUMABLE_IF_INTERRUPTED)
    assert RUN_RESUMABLE <= RUN_RESUMABLE_IF_INTERRUPTED
