"""The live sign-in watch: the admin signs a test user in through the IdP, and a worker watches
CloudTrail for that attempt (AssumeRoleWithSAML on the run's role, GetFederationToken on its
instance) until it shows up or the watch's time is over, re-enqueued between looks (never a
sleeping worker). A watch is a SignInReading whose facts hold {"watch": {...}}."""

from __future__ import annotations

import datetime as dt
import socket
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from provisioning.audit import AuditScope
from provisioning.aws.client import aws_client
from provisioning.aws.cloudtrail import SeenEvent, WatchedSignIn, look_for_sign_in
from provisioning.errors import PermanentError, RetryableError
from provisioning.models import SetupRun, SignInReading, SignInReadingStatus

WATCH = "watch"
STEP_KEY = "sign_in_test"


class WatchRefused(Exception):
    """The run has nothing to watch yet (no role, instance or assigned person)."""


@dataclass(frozen=True)
class WatchPerson:
    login: str
    username: str
    sign_in_url: str


def _outputs(run: SetupRun) -> list[dict[str, Any]]:
    return [dict(step.outputs or {}) for step in run.steps.order_by("position")]


def _idp_outputs(outputs: list[dict[str, Any]]) -> dict[str, Any]:
    """The IdP app step's outputs: the sandbox's sign-on URL is there only when the IdP is the
    sandbox's (the sign-in test copies user_access_url into its own outputs, without it)."""
    for key in ("sandbox_sso_url", "user_access_url"):
        for found in reversed(outputs):
            if found.get(key):
                return found
    return {}


def _role_arn(run: SetupRun) -> str:
    step = run.steps.filter(key="federation_role").first()
    return str((step.outputs or {}).get("role_arn", "")) if step else ""


def watch_people(run: SetupRun) -> list[WatchPerson]:
    """The people assigned to the IdP app, each with the link that signs them in the way they
    will: the sandbox IdP's sign-on for them, or the IdP's user access URL (live)."""
    outputs = _outputs(run)
    idp = _idp_outputs(outputs)
    people: list[dict[str, Any]] = []
    for found in reversed(outputs):
        if isinstance(found.get("people"), list) and found["people"]:
            people = list(found["people"])
            break
    result = []
    for person in people:
        login = str(person.get("login") or person.get("username") or "")
        if idp.get("sandbox_sso_url"):
            url = f"{idp['sandbox_sso_url']}?{urlencode({'user': login})}"
        else:
            url = str(idp.get("user_access_url", ""))
        result.append(WatchPerson(login=login, username=str(person["username"]), sign_in_url=url))
    return result


def sign_in_watch_start(*, user: Any, run_id: uuid.UUID, login: str) -> SignInReading:
    """Saves what to watch and enqueues the first look (web requests never call AWS)."""
    from provisioning.tasks import watch_sign_in

    run = SetupRun.objects.select_related("aws_connection").get(pk=run_id)
    person = next((p for p in watch_people(run) if p.login == login), None)
    role_arn = _role_arn(run)
    if person is None or not role_arn or not run.instance_id or run.aws_connection is None:
        raise WatchRefused(login)
    now = timezone.now()
    reading = SignInReading.objects.create(
        requested_by=user,
        connection=run.aws_connection,
        role_arn=role_arn,
        instance_id=run.instance_id,
        region=run.region,
        facts={
            WATCH: {
                "run_id": str(run.pk),
                "login": person.login,
                "username": person.username,
                "sign_in_url": person.sign_in_url,
                "started_at": now.isoformat(),
                "until": (now + dt.timedelta(seconds=settings.WIZARD_SIGN_IN_WATCH_S)).isoformat(),
                "looks": 0,
                "assume_role": None,
                "federation": None,
                "timed_out": False,
            }
        },
    )
    transaction.on_commit(lambda: watch_sign_in.delay(str(reading.pk)))
    return reading


def _again(reading_id: str, seconds: float) -> None:
    from provisioning.tasks import watch_sign_in

    watch_sign_in.apply_async((reading_id,), countdown=max(0.0, seconds))


def sign_in_watch_look(*, reading_id: str) -> None:
    """The worker's half: one look at CloudTrail, then the next look enqueued, until the sign-in
    shows up or the watch's time is over."""
    reading = SignInReading.objects.select_related("connection").get(pk=uuid.UUID(reading_id))
    watch = dict((reading.facts or {}).get(WATCH) or {})
    if reading.status != SignInReadingStatus.PENDING or not watch:
        return
    now = timezone.now()
    until = dt.datetime.fromisoformat(watch["until"])
    # Events up to a minute older than the watch count: the admin may have signed in while the
    # page loaded, and CloudTrail's eventTime is AWS's clock, not ours.
    since = dt.datetime.fromisoformat(watch["started_at"]) - dt.timedelta(
        seconds=settings.WIZARD_SIGN_IN_WATCH_CLOCK_MARGIN_S
    )
    watched = WatchedSignIn(
        role_arn=reading.role_arn,
        instance_id=reading.instance_id,
        instance_region=reading.region,
        role_session_name=watch["username"],
        since=since,
        login=watch["login"],
    )
    scope = AuditScope(
        actor_label=f"sign-in watch@{socket.gethostname()}",
        actor_id=reading.requested_by_id,
        run_id=uuid.UUID(watch["run_id"]),
        step_key=STEP_KEY,
    )
    try:
        trail = look_for_sign_in(
            lambda region: aws_client(reading.connection, "cloudtrail", region=region, audit=scope),
            watched,
        )
    except RetryableError as error:
        if now >= until:
            _finish(reading, watch, timed_out=True)
            return
        _again(reading_id, error.retry_after_s or settings.WIZARD_SIGN_IN_WATCH_POLL_S)
        return
    except PermanentError as error:
        SignInReading.objects.filter(pk=reading.pk).update(
            status=SignInReadingStatus.FAILED,
            error_message=error.said(),
            read_at=timezone.now(),
        )
        return
    watch["looks"] = int(watch.get("looks", 0)) + 1
    watch["assume_role"] = _data(trail.assume_role)
    watch["federation"] = _data(trail.federation)
    if trail.finished or now >= until:
        _finish(reading, watch, timed_out=not trail.finished)
        return
    SignInReading.objects.filter(pk=reading.pk, status=SignInReadingStatus.PENDING).update(
        facts={WATCH: watch}
    )
    _again(reading_id, settings.WIZARD_SIGN_IN_WATCH_POLL_S)


def _data(event: SeenEvent | None) -> dict[str, Any] | None:
    return event.as_data() if event is not None else None


def _finish(reading: SignInReading, watch: dict[str, Any], *, timed_out: bool) -> None:
    watch["timed_out"] = timed_out
    SignInReading.objects.filter(pk=reading.pk, status=SignInReadingStatus.PENDING).update(
        status=SignInReadingStatus.DONE, facts={WATCH: watch}, read_at=timezone.now()
    )


def sign_in_readings_expire(*, now: dt.datetime | None = None) -> int:
    """Deletes sign-in readings (inspections and watches) older than
    WIZARD_SIGN_IN_READING_KEEP_DAYS; returns how many went."""
    cutoff = (now or timezone.now()) - dt.timedelta(days=settings.WIZARD_SIGN_IN_READING_KEEP_DAYS)
    deleted, _ = SignInReading.objects.filter(created_at__lt=cutoff).delete()
    return deleted
