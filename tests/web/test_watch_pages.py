"""The watch on the pages: the dashboard lists watched federations (broken first) with their
state and a link to the latest check; an admin changes a federation's interval (a bad one is
refused with its reason), which moves its next check and is in the audit log; an admin stops
watching one; the Notifications page sends a test and refuses a webhook inside the network."""

from __future__ import annotations

import datetime as dt
import html
import json
import re
from typing import Any
from unittest import mock

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.test import Client
from django.utils import timezone, translation

from provisioning.models import (
    AuditEvent,
    AuditKind,
    FederationCheckRecord,
    FederationCheckStatus,
    NotificationSettings,
    SetupRun,
    WatchedFederation,
    WatchState,
)
from provisioning.notifications import WebhookUrlRefused, check_webhook_url
from provisioning.services.federation_watch import notifications_save
from provisioning.tasks import send_test_notification
from tests.federation_check.test_watch import SECRET_PATH, Receiver, receiver  # noqa: F401
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


def test_an_admin_stops_watching_once_and_it_is_in_the_audit_log(
    admin_client: Client, admin_user: User
) -> None:
    federation = watched("osaka", WatchState.HEALTHY)
    WatchedFederation.objects.filter(pk=federation.pk).update(next_check_at=timezone.now())
    page = admin_client.get(f"/watch/{federation.pk}/").content.decode()
    assert f'action="/watch/{federation.pk}/stop/"' in page
    assert "Stop watching" in page

    response = admin_client.post(f"/watch/{federation.pk}/stop/", follow=True)

    assert response.redirect_chain == [(f"/watch/{federation.pk}/", 302)]
    page = response.content.decode()
    assert "is no longer watched: no more checks nor notifications." in page
    assert 'id="watch-stopped"' in page and "/stop/" not in page
    federation.refresh_from_db()
    assert (federation.enabled, federation.next_check_at) == (False, None)
    assert "App osaka" not in admin_client.get("/").content.decode()
    event = AuditEvent.objects.get(kind=AuditKind.FEDERATION)
    assert (event.old_value, event.new_value) == ({"watched": True}, {"watched": False})
    assert event.actor_label == admin_user.get_username()

    admin_client.post(f"/watch/{federation.pk}/stop/")
    assert AuditEvent.objects.filter(kind=AuditKind.FEDERATION).count() == 1


def test_an_admin_watches_a_stopped_federation_again_and_it_is_checked_at_once(
    admin_client: Client,
) -> None:
    federation = watched("kobe", WatchState.HEALTHY)
    admin_client.post(f"/watch/{federation.pk}/stop/")
    page = admin_client.get(f"/watch/{federation.pk}/").content.decode()
    assert f'action="/watch/{federation.pk}/resume/"' in page

    before = timezone.now()
    response = admin_client.post(f"/watch/{federation.pk}/resume/", follow=True)

    assert "is watched again: a check starts now." in response.content.decode()
    # The message names the federation as its page's heading does.
    lead = re.search(r'<p class="lead">([^·<]+) ·', response.content.decode())
    assert lead is not None
    assert f"{html.escape(str(federation))} is watched again" in response.content.decode()
    assert lead.group(1).strip() == html.escape(str(federation))
    assert str(federation).startswith("App kobe →")
    federation.refresh_from_db()
    assert federation.enabled and before <= federation.next_check_at <= timezone.now()
    moves = [
        e.new_value for e in AuditEvent.objects.filter(kind=AuditKind.FEDERATION).order_by("pk")
    ]
    assert moves == [{"watched": False}, {"watched": True}]
    with translation.override("ja"):
        latest = AuditEvent.objects.filter(kind=AuditKind.FEDERATION).latest("pk")
        assert "監視を再開しました" in latest.message_text
    # Watching again a federation already watched writes nothing.
    admin_client.post(f"/watch/{federation.pk}/resume/")
    assert AuditEvent.objects.filter(kind=AuditKind.FEDERATION).count() == 2


def test_an_operator_may_not_stop_watching() -> None:
    federation = watched("nagoya", WatchState.BROKEN)
    operator = User.objects.create_user("operator", password="x")
    operator.groups.add(role_group(OPERATOR))
    operator_client = Client()
    operator_client.force_login(operator)

    assert operator_client.post(f"/watch/{federation.pk}/stop/").status_code == 403
    federation.refresh_from_db()
    assert federation.enabled
    assert not AuditEvent.objects.filter(kind=AuditKind.FEDERATION).exists()


def _ask_for_a_test(client: Client, captured: Any, **headers: str) -> tuple[str, int]:
    """Press "Send a test notification": the page it lands on, and the test the worker was
    asked to send (the task is queued on commit; nothing is sent in the request)."""
    with (
        mock.patch("provisioning.tasks.send_test_notification.delay") as enqueued,
        captured(execute=True),
    ):
        response = client.post("/notifications/test/", follow=True, **headers)
    assert response.redirect_chain == [("/notifications/", 302)]
    ((test_id,), _kwargs) = enqueued.call_args
    return response.content.decode(), test_id


def test_the_test_notification_is_sent_by_the_worker_and_the_page_shows_how_it_went(
    admin_client: Client,
    admin_user: User,
    receiver: Receiver,  # noqa: F811
    django_capture_on_commit_callbacks: Any,
) -> None:
    notifications_save(
        user=None,
        email_recipients=["ops@example.com", "keiko@example.jp"],
        webhook_url=receiver.url,
        language="en",
    )

    page, test_id = _ask_for_a_test(admin_client, django_capture_on_commit_callbacks)

    # Nothing went out during the request: the page polls for the worker's result.
    assert mail.outbox == [] and receiver.bodies == []
    assert "The test notification is on its way" in page
    assert "Sending the test notification…" in page
    assert f'hx-get="/notifications/test/{test_id}/"' in page

    send_test_notification(test_id)

    fragment = admin_client.get(f"/notifications/test/{test_id}/").content.decode()
    assert "The test e-mail was sent to 2 recipients." in fragment
    assert "The webhook accepted the test notification." in fragment
    assert "hx-get" not in fragment
    (email,) = mail.outbox
    assert email.to == ["ops@example.com", "keiko@example.jp"]
    assert email.subject == "Connect SSO wizard: test notification"
    (body,) = receiver.bodies
    assert body["test"] is True
    assert body["text"].startswith("admin sent this test from the Notifications page.")
    event = AuditEvent.objects.filter(kind=AuditKind.NOTIFICATIONS).latest("pk")
    assert (event.actor_id, event.actor_label) == (admin_user.pk, "admin")
    assert event.new_value == {
        "test": test_id,
        "email": True,
        "email_recipients": 2,
        "webhook": True,
        "webhook_at": f"http://127.0.0.1:{receiver.server.server_address[1]}/…",
    }
    assert SECRET_PATH not in json.dumps([event.old_value, event.new_value, event.message])

    # A task delivered twice (acks_late after a lost worker) sends nothing more.
    send_test_notification(test_id)
    assert len(mail.outbox) == 1 and len(receiver.bodies) == 1
    assert AuditEvent.objects.filter(kind=AuditKind.NOTIFICATIONS).count() == 2  # save + test


def test_the_test_notification_says_what_failed_in_japanese(
    admin_client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    with Receiver(status=500) as failing:
        notifications_save(user=None, email_recipients=[], webhook_url=failing.url, language="ja")
        page, test_id = _ask_for_a_test(
            admin_client, django_capture_on_commit_callbacks, HTTP_ACCEPT_LANGUAGE="ja"
        )
        send_test_notification(test_id)
        assert len(failing.bodies) == 1

    page = admin_client.get("/notifications/", HTTP_ACCEPT_LANGUAGE="ja").content.decode()
    assert "Webhook がテスト通知を受け付けませんでした" in page
    assert mail.outbox == []
    event = AuditEvent.objects.filter(kind=AuditKind.NOTIFICATIONS).latest("pk")
    assert (event.new_value["webhook"], event.new_value["email"]) == (False, None)


def test_the_test_notification_says_when_there_is_nowhere_to_send(admin_client: Client) -> None:
    page = admin_client.post("/notifications/test/", follow=True).content.decode()

    assert "Nothing to send to: add e-mail recipients or a webhook first." in page
    assert mail.outbox == []


@pytest.mark.parametrize(
    ("url", "says"),
    [
        # An address typed as the host is named once; a name, with the address it resolves to.
        ("https://10.1.2.3/services/x", "address 10.1.2.3 is a private, loopback or link-local"),
        ("https://169.254.169.254/latest", "address 169.254.169.254 is a private, loopback"),
        ("https://[::1]:8443/hook", "address ::1 is a private, loopback or link-local address"),
        ("https://[::ffff:192.168.0.1]/hook", "address 192.168.0.1 is a private, loopback"),
        ("https://localhost/hook", "host localhost is at 127.0.0.1, a private, loopback or"),
        ("http://127.0.0.1:8000/hook", "must start with https://"),
        ("https://no-such-host.invalid/hook", "no-such-host.invalid could not be resolved"),
    ],
)
def test_outside_testing_a_webhook_inside_the_network_is_refused_with_what_to_fix(
    admin_client: Client, settings: Any, url: str, says: str
) -> None:
    settings.WIZARD_WEBHOOK_ALLOW_LOCAL_HTTP = False

    response = admin_client.post("/notifications/", {"email_recipients": "", "webhook_url": url})

    assert response.status_code == 200
    assert says in response.content.decode()
    assert not NotificationSettings.objects.exists()


def test_outside_testing_a_public_https_webhook_is_accepted(settings: Any) -> None:
    settings.WIZARD_WEBHOOK_ALLOW_LOCAL_HTTP = False

    assert check_webhook_url(" https://93.184.216.34/services/T0/B0/x ") == (
        "https://93.184.216.34/services/T0/B0/x"
    )


def test_the_refusal_is_in_japanese_too(settings: Any) -> None:
    settings.WIZARD_WEBHOOK_ALLOW_LOCAL_HTTP = False

    with pytest.raises(WebhookUrlRefused) as refused, translation.override("ja"):
        check_webhook_url("https://192.168.1.10/hook")
    with translation.override("ja"):
        assert "プライベート" in refused.value.reason.render()


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
