"""The watch: which federations are watched (each one a setup run built or a check read), the
state a finished check gives one, and, when that state changes or the IdP signing certificate
nears its expiry, an audit row and a notification to the admins (e-mail and webhook,
provisioning/notifications.py), written before it is sent and sent again if its worker is
lost. The schedule and the admin's settings are provisioning/services/federation_watch.py."""

from __future__ import annotations

import datetime as dt
import functools
import logging
import socket
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone, translation
from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop

from provisioning.audit import AuditScope, record_state_change
from provisioning.federation_check.messages import finding_text, unread_text
from provisioning.federation_check.result import (
    EXIT_BROKEN,
    EXIT_UNREAD,
    FederationCheck,
    LinkState,
    Severity,
)
from provisioning.flows import is_sso_setup
from provisioning.messages import Message
from provisioning.models import (
    AuditKind,
    FederationCheckRecord,
    FederationCheckStatus,
    NotificationSettings,
    RunStatus,
    SetupRun,
    WatchedFederation,
    WatchNotification,
    WatchState,
)
from provisioning.notifications import Notification, send_email, send_webhook

logger = logging.getLogger(__name__)

# The steps whose outputs name a setup's IdP app.
APP_STEPS = ("entra_app", "okta_app")
# How many broken findings a notification lists (the check's page has them all).
FINDINGS_NOTIFIED = 5
STATE_LABELS = dict(WatchState.choices)


def watch_scope(user: Any = None) -> AuditScope:
    if user is not None:
        return AuditScope(actor_label=user.get_username(), actor_id=user.pk)
    return AuditScope(actor_label=f"federation watch@{socket.gethostname()}")


# Which federations are watched ---------------------------------------------------------------


def watch_from_run(*, run: SetupRun) -> WatchedFederation | None:
    """Watch the federation a succeeded SSO setup built (its instance, connections and IdP app);
    None for a users run or a run that did not get that far. A second call finds the first."""
    if run.status != RunStatus.SUCCEEDED or not is_sso_setup(run.flow_key):
        return None
    if not (run.instance_id and run.aws_connection_id and run.idp_connection_id):
        return None
    outputs = {step.key: step.outputs for step in run.steps.filter(key__in=APP_STEPS)}
    app = next((outputs[key] for key in APP_STEPS if outputs.get(key, {}).get("app_id")), None)
    if app is None:
        return None
    watched, _created = WatchedFederation.objects.get_or_create(
        aws_connection_id=run.aws_connection_id,
        idp_connection_id=run.idp_connection_id,
        region=run.region,
        instance_id=run.instance_id,
        app_id=str(app["app_id"]),
        defaults={
            "instance_alias": run.instance_alias,
            "app_name": str(app.get("display_name") or app.get("label") or ""),
            "setup": run,
            "every_hours": settings.WIZARD_WATCH_EVERY_HOURS,
            # Checked at the next beat: the dashboard shows its state from the start.
            "next_check_at": timezone.now(),
        },
    )
    return watched


def watch_from_check(*, record: FederationCheckRecord) -> WatchedFederation | None:
    """The watched federation a finished check read (made now if it is new), or None when the
    check found no federation (no instance, no app)."""
    if record.watched_id is not None:
        return record.watched
    result = record.result or {}
    instance_id = result.get("instance_id") or ""
    app_id = result.get("app_id") or ""
    if record.status != FederationCheckStatus.DONE or not (instance_id and app_id):
        return None
    names = {app["app_id"]: app["name"] for app in result.get("apps_found", [])}
    watched, created = WatchedFederation.objects.get_or_create(
        aws_connection_id=record.aws_connection_id,
        idp_connection_id=record.idp_connection_id,
        region=record.region,
        instance_id=instance_id,
        app_id=app_id,
        defaults={
            "instance_alias": result.get("instance_alias") or "",
            "app_name": names.get(app_id, ""),
            "every_hours": settings.WIZARD_WATCH_EVERY_HOURS,
        },
    )
    if created:
        WatchedFederation.objects.filter(pk=watched.pk).update(
            next_check_at=timezone.now() + dt.timedelta(hours=watched.every_hours)
        )
    FederationCheckRecord.objects.filter(pk=record.pk).update(watched=watched)
    record.watched = watched
    return watched


# A finished check --------------------------------------------------------------------------


def state_of(record: FederationCheckRecord) -> str:
    """The watched state a finished check gives: a check that could not read (or failed) is
    "unreadable", a broken link "broken", a warning (a certificate expiring) "warning"."""
    if record.status != FederationCheckStatus.DONE or not record.result:
        return WatchState.UNREADABLE
    result = FederationCheck.from_json(record.result)
    if result.exit_code == EXIT_UNREAD:
        return WatchState.UNREADABLE
    if result.exit_code == EXIT_BROKEN:
        return WatchState.BROKEN
    if any(link.state == LinkState.WARNING for link in result.links):
        return WatchState.WARNING
    return WatchState.HEALTHY


@dataclass(frozen=True)
class Expiry:
    """The IdP signing certificate's expiry as the check judged it: its date, and the smallest
    notification threshold (days) it has passed."""

    date: str
    days_left: int
    threshold: int


def expiry_of(record: FederationCheckRecord) -> Expiry | None:
    if record.status != FederationCheckStatus.DONE or not record.result:
        return None
    for finding in FederationCheck.from_json(record.result).findings:
        if finding.code == "certificate_expiring":
            days = int(finding.params["days"])
            passed = [t for t in settings.WIZARD_CERTIFICATE_NOTIFY_DAYS if days <= t]
            if passed:
                return Expiry(str(finding.params["date"]), days, min(passed))
    return None


def watch_record_check(*, record: FederationCheckRecord) -> WatchedFederation | None:
    """After a check finished: the watched federation takes its state and date; a change of state
    is an audit row and a notification, and so is each certificate threshold passed once."""
    watched = watch_from_check(record=record)
    if watched is None:
        return None
    new_state = state_of(record)
    expiry = expiry_of(record)
    with transaction.atomic():
        watched = WatchedFederation.objects.select_for_update().get(pk=watched.pk)
        if (
            watched.last_checked_at
            and record.finished_at
            and (record.finished_at < watched.last_checked_at)
        ):
            return watched  # an older check finishing late says nothing new
        old_state = watched.state
        watched.state = new_state
        watched.last_checked_at = record.finished_at or timezone.now()
        watched.latest_check = record
        fields = ["state", "last_checked_at", "latest_check"]
        notify_expiry = expiry is not None and (
            watched.expiry_notified_for != expiry.date
            or watched.expiry_notified_days is None
            or expiry.threshold < watched.expiry_notified_days
        )
        if expiry is not None and notify_expiry:
            watched.expiry_notified_for = expiry.date
            watched.expiry_notified_days = expiry.threshold
            fields += ["expiry_notified_for", "expiry_notified_days"]
        watched.save(update_fields=fields)
        # The first check sets the baseline: only a federation found unwell at once is news.
        changed = old_state != new_state and not (
            old_state == WatchState.UNCHECKED and new_state == WatchState.HEALTHY
        )
        message = None
        if changed:
            message = Message(
                gettext_noop("The federation %(federation)s went from %(old)s to %(new)s."),
                {
                    "federation": str(watched),
                    "old": Message(STATE_LABELS[old_state]),
                    "new": Message(STATE_LABELS[new_state]),
                },
            )
        elif notify_expiry and expiry is not None:
            message = Message(
                gettext_noop(
                    "The IdP signing certificate of the federation %(federation)s expires on "
                    "%(date)s, in %(days)s days."
                ),
                {"federation": str(watched), "date": expiry.date, "days": expiry.days_left},
            )
        if message is not None:
            record_state_change(
                watch_scope(),
                kind=AuditKind.FEDERATION,
                old={"state": old_state},
                new={
                    "state": new_state,
                    "check": str(record.pk),
                    **({"certificate_days": expiry.threshold} if notify_expiry and expiry else {}),
                },
                message=message,
            )
            # A federation an admin stopped watching may still be checked by hand: its page
            # shows the state, but nobody is notified.
            if watched.enabled:
                pending = WatchNotification.objects.create(
                    watched=watched, found_by=record, state=new_state, message=message.to_json()
                )
                transaction.on_commit(
                    functools.partial(watch_notification_send, notification_id=pending.pk)
                )
    return watched


# Notifications -------------------------------------------------------------------------------


def notification_settings() -> NotificationSettings:
    return NotificationSettings.objects.first() or NotificationSettings()


def _notification(pending: WatchNotification) -> Notification:
    """The notification in the language of whoever set notifications up."""
    watched, record, state = pending.watched, pending.found_by, pending.state
    lines = [Message.from_json(pending.message).render()]
    if record is not None and record.result:
        result = FederationCheck.from_json(record.result)
        shown = [f for f in result.findings if f.severity == Severity.BROKEN][:FINDINGS_NOTIFIED]
        shown += [
            f for f in result.findings if f.code in {"certificate_expiring", "certificate_expired"}
        ][:1]
        for finding in shown:
            text = finding_text(finding)
            lines.append(f"- {text['what']} {text['fix']}")
        for unread in result.unreadable[:FINDINGS_NOTIFIED]:
            lines.append(f"- {unread_text(unread)['message']}")
    elif record is not None and record.error:
        lines.append(f"- {record.error.get('message', '')}")
    check_id = str(record.pk) if record is not None else ""
    page = f"/check/{check_id}/" if check_id else ""
    if settings.WIZARD_BASE_URL and page:
        lines.append(str(_("Latest check: %(url)s")) % {"url": settings.WIZARD_BASE_URL + page})
    subject = str(
        _("Connect SSO wizard: %(federation)s is %(state)s")
        % {"federation": str(watched), "state": STATE_LABELS[state]}
    )
    return Notification(
        subject=subject,
        text="\n".join(str(line) for line in lines),
        event_id=str(pending.pk),
        fields={
            "state": state,
            "federation": {
                "region": watched.region,
                "instance_id": watched.instance_id,
                "instance_alias": watched.instance_alias,
                "app_id": watched.app_id,
                "app_name": watched.app_name,
            },
            "check_id": check_id,
            "check_path": page,
        },
    )


def watch_notification_send(
    *, notification_id: uuid.UUID, now: dt.datetime | None = None
) -> WatchNotification | None:
    """Sends one watch notification not sent yet: taken with a conditional UPDATE (another
    worker sending it now keeps it), sent by e-mail and webhook, then marked sent. A worker lost
    in between leaves it taken and unsent: watch_notifications_resend sends it again, with the
    same event id. None when it is sent already or another worker has it."""
    now = now or timezone.now()
    pending = (
        WatchNotification.objects.select_related("watched", "found_by")
        .filter(pk=notification_id, sent_at__isnull=True)
        .first()
    )
    if pending is None:
        return None
    taken = WatchNotification.objects.filter(
        pk=pending.pk, sent_at__isnull=True, attempted_at=pending.attempted_at
    ).update(attempted_at=now, attempts=F("attempts") + 1)
    if not taken:
        return None
    configured = notification_settings()
    recipients = list(configured.email_recipients)
    webhook_url = configured.webhook_url
    with translation.override(configured.language):
        notification = _notification(pending)
    email = send_email(notification, recipients) if recipients else None
    webhook = send_webhook(notification, webhook_url) if webhook_url else None
    _record_sent(pending, email=email, webhook=webhook)
    return pending


def _record_sent(pending: WatchNotification, *, email: bool | None, webhook: bool | None) -> None:
    """The attempt completed: how each way took it (None: not set up)."""
    WatchNotification.objects.filter(pk=pending.pk, sent_at__isnull=True).update(
        sent_at=timezone.now(), email_ok=email, webhook_ok=webhook
    )
    pending.refresh_from_db()


def watch_notifications_resend(*, now: dt.datetime | None = None) -> list[WatchNotification]:
    """Beat's turn: the notifications not sent WIZARD_NOTIFICATION_RESEND_AFTER_S after they
    were written or last taken (the worker sending them was lost) are sent again."""
    now = now or timezone.now()
    before = now - dt.timedelta(seconds=settings.WIZARD_NOTIFICATION_RESEND_AFTER_S)
    stale = WatchNotification.objects.filter(sent_at__isnull=True).filter(
        Q(attempted_at__lt=before) | Q(attempted_at__isnull=True, created_at__lt=before)
    )
    sent = []
    for pending_id in stale.values_list("pk", flat=True)[: settings.WIZARD_RUN_NUDGE_BATCH]:
        done = watch_notification_send(notification_id=pending_id, now=now)
        if done is not None:
            sent.append(done)
    return sent
