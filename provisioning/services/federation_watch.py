"""The watch's schedule and what an admin sets: beat starts the checks that are due (the same
read-only check as "Check a federation", provisioning/services/federation_checks.py, which hands
each result to provisioning/federation_watch.py), an admin changes a federation's interval and
where notifications go."""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from provisioning.audit import record_state_change
from provisioning.federation_watch import notification_settings, watch_scope
from provisioning.messages import Message
from provisioning.models import (
    AuditKind,
    FederationCheckRecord,
    NotificationSettings,
    NotificationTest,
    WatchedFederation,
)
from provisioning.notifications import (
    Notification,
    masked_webhook_url,
    send_email,
    send_webhook,
)

# The watch's interval an admin may choose, in hours: an hour to four weeks.
EVERY_HOURS_MIN = 1
EVERY_HOURS_MAX = 24 * 28


def watch_set_interval(*, user: Any, watched_id: int, every_hours: int) -> WatchedFederation:
    """An admin changes how often a federation is checked; the next check moves with it."""
    with transaction.atomic():
        watched = WatchedFederation.objects.select_for_update().get(pk=watched_id)
        old = {"every_hours": watched.every_hours}
        base = watched.last_checked_at or timezone.now()
        watched.every_hours = every_hours
        watched.next_check_at = base + dt.timedelta(hours=every_hours)
        watched.save(update_fields=["every_hours", "next_check_at"])
        record_state_change(
            watch_scope(user),
            kind=AuditKind.FEDERATION,
            old=old,
            new={"every_hours": every_hours},
            message=Message(
                gettext_noop("The federation %(federation)s is now checked every %(hours)s hours."),
                {"federation": str(watched), "hours": every_hours},
            ),
        )
    return watched


def watch_set_watching(*, user: Any, watched_id: int, watching: bool) -> WatchedFederation:
    """An admin stops watching a federation (no more scheduled checks nor notifications; its
    checks stay) or watches it again (checked at once, then on its interval). A move to the state
    it is in already changes nothing and writes nothing."""
    with transaction.atomic():
        watched = WatchedFederation.objects.select_for_update().get(pk=watched_id)
        if watched.enabled == watching:
            return watched
        watched.enabled = watching
        watched.next_check_at = timezone.now() if watching else None
        watched.save(update_fields=["enabled", "next_check_at"])
        said = (
            gettext_noop("The federation %(federation)s is watched again.")
            if watching
            else gettext_noop("The federation %(federation)s is no longer watched.")
        )
        record_state_change(
            watch_scope(user),
            kind=AuditKind.FEDERATION,
            old={"watched": not watching},
            new={"watched": watching},
            message=Message(said, {"federation": str(watched)}),
        )
    return watched


# The schedule --------------------------------------------------------------------------------


def watches_check_due(*, now: dt.datetime | None = None) -> list[FederationCheckRecord]:
    """Celery beat's turn: start a check of every watched federation whose time has come. Each is
    claimed by moving its next time on (a conditional UPDATE), so two beats start it once."""
    from provisioning.tasks import run_federation_check

    now = now or timezone.now()
    started = []
    due = WatchedFederation.objects.filter(enabled=True, next_check_at__lte=now).order_by(
        "next_check_at"
    )
    for watched in due[: settings.WIZARD_RUN_NUDGE_BATCH]:
        with transaction.atomic():
            claimed = WatchedFederation.objects.filter(
                pk=watched.pk, next_check_at=watched.next_check_at
            ).update(next_check_at=now + dt.timedelta(hours=watched.every_hours))
            if not claimed:
                continue
            record = FederationCheckRecord.objects.create(
                requested_by=None,
                aws_connection_id=watched.aws_connection_id,
                idp_connection_id=watched.idp_connection_id,
                region=watched.region,
                instance=watched.instance_id,
                app_id=watched.app_id,
                language=notification_settings().language,
                watched=watched,
            )
            transaction.on_commit(functools.partial(run_federation_check.delay, str(record.pk)))
        started.append(record)
    return started


# What a test notification's audit row says of each way (message ids: the log reads in each
# reader's language).
TEST_OUTCOMES = {
    None: gettext_noop("not set up"),
    True: gettext_noop("accepted"),
    False: gettext_noop("not accepted"),
}


def notifications_test_request(*, user: Any, language: str) -> NotificationTest:
    """An admin asks for a test notification: recorded now and sent by the worker
    (send_test_notification) once this commits, so the page never waits on a mail server or a
    webhook; the page shows the result when it is in."""
    from provisioning.tasks import send_test_notification

    with transaction.atomic():
        test = NotificationTest.objects.create(requested_by=user, language=language)
        transaction.on_commit(functools.partial(send_test_notification.delay, test.pk))
    return test


def notifications_test_send(*, test_id: int) -> NotificationTest:
    """The worker's half: sends the test through the e-mail recipients and webhook set up now, in
    the asker's language, records how each took it and writes the audit row (who asked, each
    way and its result; of the webhook only its scheme and host). A test already finished (a
    task delivered again) is not sent again."""
    test = NotificationTest.objects.select_related("requested_by").get(pk=test_id)
    if test.finished_at is not None:
        return test
    configured = notification_settings()
    recipients = list(configured.email_recipients)
    webhook_url = configured.webhook_url
    asker = test.requested_by.get_username() if test.requested_by else "—"
    with translation.override(test.language):
        notification = Notification(
            subject=str(_("Connect SSO wizard: test notification")),
            text=str(
                _(
                    "%(user)s sent this test from the Notifications page. Changes of state of "
                    "watched federations will arrive here."
                )
                % {"user": asker}
            ),
            fields={"test": True},
        )
    email = send_email(notification, recipients) if recipients else None
    webhook = send_webhook(notification, webhook_url) if webhook_url else None
    with transaction.atomic():
        finished = NotificationTest.objects.filter(pk=test.pk, finished_at__isnull=True).update(
            finished_at=timezone.now(),
            email_recipients=len(recipients),
            email_ok=email,
            webhook_ok=webhook,
        )
        if finished:
            record_state_change(
                watch_scope(test.requested_by),
                kind=AuditKind.NOTIFICATIONS,
                old={},
                new={
                    "test": test.pk,
                    "email": email,
                    "email_recipients": len(recipients),
                    "webhook": webhook,
                    "webhook_at": masked_webhook_url(webhook_url),
                },
                message=Message(
                    gettext_noop(
                        "A test notification was sent (e-mail: %(email)s; webhook: %(webhook)s)."
                    ),
                    {
                        "email": Message(TEST_OUTCOMES[email]),
                        "webhook": Message(TEST_OUTCOMES[webhook]),
                    },
                ),
            )
    test.refresh_from_db()
    return test


def notifications_save(
    *, user: Any, email_recipients: list[str], webhook_url: str | None, language: str
) -> NotificationSettings:
    """Saves where notifications go; `webhook_url` None keeps the stored one, "" removes it. The
    audit row says what changed, the webhook only as "set" or "removed"."""
    with transaction.atomic():
        configured = NotificationSettings.objects.select_for_update().first()
        if configured is None:
            configured = NotificationSettings.objects.create()
            configured = NotificationSettings.objects.select_for_update().get(pk=configured.pk)
        old = {
            "email_recipients": list(configured.email_recipients),
            "webhook": bool(configured.webhook_ciphertext),
        }
        configured.email_recipients = email_recipients
        configured.language = language
        configured.updated_by = user
        webhook_changed = webhook_url is not None and webhook_url != configured.webhook_url
        if webhook_url is not None:
            configured.set_webhook_url(webhook_url)
        configured.save()
        new = {"email_recipients": email_recipients, "webhook": bool(configured.webhook_ciphertext)}
        if webhook_changed and old["webhook"] and new["webhook"]:
            new["webhook_replaced"] = True
        record_state_change(
            watch_scope(user),
            kind=AuditKind.NOTIFICATIONS,
            old=old,
            new=new,
            message=Message(gettext_noop("Where the watch's notifications go was changed.")),
        )
    return configured
