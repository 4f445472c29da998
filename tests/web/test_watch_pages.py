"""The watch on the pages: the dashboard lists watched federations (broken first) with their
state and a link to the latest check; an admin changes a federation's interval (a bad one is
refused with its reason), which moves its next check and is in the audit log."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from provisioning.models import (
    AuditEvent,
    AuditKind,
    FederationCheckRecord,
    FederationCheckStatus,
    SetupRun,
    WatchedFederation,
    WatchState,
)
from tests.web.factories import make_connection
from wizard.roles import OPERATOR, VIEWER, role_group

pytestmark = pytest.mark.django_db


def watched(alias: str, state: str) -> WatchedFederation:
    aws = make_connection("aws", name=f"AWS {alias}")
    idp = make_connection("entra", name=f"Entra {alias}")
    federation = WatchedFederation.objects.create(
        aws_connection=aws,
        idp_connection=idp,
        region="ap-northeast-1",
        instance_id=f"{alias}-id",
        instance_alias=alias,
        app_id=f"app-{alias}",
        app_name=f"App {alias}",
        state=state,
        last_checked_at=timezone.now(),
    )
    check = FederationCheckRecord.objects.create(
        aws_connection=aws,
        idp_connection=idp,
        region="ap-northeast-1",
        instance=federation.instance_id,
        status=FederationCheckStatus.DONE,
        watched=federation,
    )
    WatchedFederation.objects.filter(pk=federation.pk).update(latest_check=check)
    federation.refresh_from_db()
    return federation


def test_the_dashboard_lists_watched_federations_broken_first(admin_client: Client) -> None:
    fine = watched("fine", WatchState.HEALTHY)
    bad = watched("bad", WatchState.BROKEN)

    html = admin_client.get("/").content.decode()

    assert html.index("App bad") < html.index("App fine")
    assert f'href="/check/{bad.latest_check_id}/"' in html
    assert f'href="/watch/{fine.pk}/"' in html
    assert "badge--watch-broken" in html


def test_an_admin_changes_the_interval_and_a_viewer_only_reads_it(
    admin_client: Client, admin_user: User
) -> None:
    federation = watched("tokyo", WatchState.HEALTHY)

    refused = admin_client.post(f"/watch/{federation.pk}/interval/", {"every_hours": "0"})
    assert refused.status_code == 400
    assert "greater than or equal to 1" in refused.content.decode()

    response = admin_client.post(f"/watch/{federation.pk}/interval/", {"every_hours": "6"})
    assert response.status_code == 302
    federation.refresh_from_db()
    assert federation.every_hours == 6
    assert federation.last_checked_at is not None and federation.next_check_at is not None
    assert federation.next_check_at - federation.last_checked_at == dt.timedelta(hours=6)
    event = AuditEvent.objects.get(kind=AuditKind.FEDERATION)
    assert (event.old_value, event.new_value) == ({"every_hours": 24}, {"every_hours": 6})

    viewer = User.objects.create_user("viewer", password="x")
    viewer.groups.add(role_group(VIEWER))
    client = Client()
    client.force_login(viewer)
    page = client.get(f"/watch/{federation.pk}/").content.decode()
    assert "Checked every 6 hours" in page
    assert "/interval/" not in page


def test_an_operator_starts_the_certificate_rotation_and_a_viewer_sees_no_button() -> None:
    federation = watched("osaka", WatchState.HEALTHY)
    operator = User.objects.create_user("operator", password="x")
    operator.groups.add(role_group(OPERATOR))
    client = Client()
    client.force_login(operator)
    assert (
        f"/watch/{federation.pk}/rotate/" in client.get(f"/watch/{federation.pk}/").content.decode()
    )

    response = client.post(f"/watch/{federation.pk}/rotate/")

    run = SetupRun.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/runs/{run.pk}/"
    assert run.flow_key == "entra_signing_rotation"
    assert (run.region, run.instance_id) == ("ap-northeast-1", "osaka-id")
    assert (run.aws_connection_id, run.idp_connection_id) == (
        federation.aws_connection_id,
        federation.idp_connection_id,
    )
    # Found by a check, not built by a setup: the run asks for the IAM provider itself.
    assert run.inputs == {"app_id": "app-osaka"}
    viewer = User.objects.create_user("viewer", password="x")
    viewer.groups.add(role_group(VIEWER))
    client.force_login(viewer)
    assert "/rotate/" not in client.get(f"/watch/{federation.pk}/").content.decode()
    assert client.post(f"/watch/{federation.pk}/rotate/").status_code == 403
