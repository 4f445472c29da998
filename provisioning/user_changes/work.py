"""Workers make a change set's changes: each claims one pending change at a time (a conditional
UPDATE, so no two workers make the same one), makes it, and records how it went.

Every Connect call waits for its turn in the shared bucket of its API (provisioning/ratelimit.py,
hooked into the AWS client), so any number of workers on any number of hosts together run at the
API's quota. A change stays claimed only while one worker makes it: a worker that dies leaves a
claim that is stale as soon as its process is gone (same host) or its lease runs out, and the next
worker takes the change over. Making a change twice converges: a user created by an attempt that
died before recording it carries the run's tag, so the retry's "already exists" finds it ours.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_noop

from provisioning.errors import PermanentError, ProvisioningError, RetryableError
from provisioning.messages import Message, to_json
from provisioning.models import ChangeSetPurpose, ChangeStatus, RunStatus, SetupRun, UserChange
from provisioning.runs.runner import claim_is_stale
from provisioning.user_changes.instance import find_user
from provisioning.user_changes.planning import RUN_TAG

logger = logging.getLogger(__name__)

# The UpdateUser* call and its parameter for each attribute an update changes (botocore's model).
UPDATE_CALLS = {
    "SecurityProfileIds": ("update_user_security_profiles", "SecurityProfileIds"),
    "RoutingProfileId": ("update_user_routing_profile", "RoutingProfileId"),
    "PhoneConfig": ("update_user_phone_config", "PhoneConfig"),
    "IdentityInfo": ("update_user_identity_info", "IdentityInfo"),
}
NOT_FOUND = "ResourceNotFoundException"
DUPLICATE = "DuplicateResourceException"
# Stale claims are looked for among this many claimed changes at a time (about one per worker).
STALE_SCAN = 100


@dataclass
class WorkDone:
    made: int = 0
    # Unclaimed changes still waiting for a worker when this one stopped.
    waiting: int = 0
    # Seconds until the first waiting change may be taken (a retry's backoff), 0 for now.
    wait_s: float = 0.0
    # The run no longer wants this set's changes (cancelled, or rolling back).
    run_stopped: bool = False


def _required_run_status(change_set: Any) -> str:
    return (
        RunStatus.ROLLING_BACK
        if change_set.purpose == ChangeSetPurpose.ROLLBACK
        else RunStatus.RUNNING
    )


def _run_wants(change_set: Any) -> bool:
    """Work on a set only while its run is in the state that set belongs to: a cancelled run's
    creations stop, and its rollback doesn't race them."""
    return SetupRun.objects.filter(
        pk=change_set.step_run.run_id, status=_required_run_status(change_set)
    ).exists()


def _claim_next(change_set: Any, worker: str) -> Any | None:
    """The first pending change nobody holds (or whose holder is gone), now held by `worker`."""
    now = timezone.now()
    with transaction.atomic():
        # SKIP LOCKED on PostgreSQL; SQLite serialises write transactions instead.
        change = (
            UserChange.objects.select_for_update(skip_locked=True)
            .filter(change_set=change_set, status=ChangeStatus.PENDING, claimed_by="")
            .filter(Q(not_before__isnull=True) | Q(not_before__lte=now))
            .order_by("position")
            .first()
        )
        if change is not None:
            UserChange.objects.filter(pk=change.pk).update(
                claimed_by=worker, claimed_at=now, attempts=F("attempts") + 1
            )
            # The row as the UPDATE left it, without reading it again: it is locked since it
            # was read, so its attempts went up by exactly one.
            change.claimed_by, change.claimed_at = worker, now
            change.attempts += 1
            return change
    held = UserChange.objects.filter(change_set=change_set, status=ChangeStatus.PENDING).exclude(
        claimed_by=""
    )
    for change in held.order_by("position")[:STALE_SCAN]:
        if not claim_is_stale(
            change.claimed_by, change.claimed_at, settings.WIZARD_USER_CHANGE_LEASE_S
        ):
            continue
        taken = UserChange.objects.filter(
            pk=change.pk, claimed_by=change.claimed_by, claimed_at=change.claimed_at
        ).update(claimed_by=worker, claimed_at=now, attempts=F("attempts") + 1)
        if taken:
            logger.warning(
                "Change %s (%s) was held by %s, which is gone; taking it over.",
                change.pk,
                change.username,
                change.claimed_by,
            )
            change.refresh_from_db()
            return change
    return None


def _waiting(change_set: Any, done: WorkDone) -> None:
    waiting = UserChange.objects.filter(
        change_set=change_set, status=ChangeStatus.PENDING, claimed_by=""
    )
    done.waiting = waiting.count()
    now = timezone.now()
    if (
        done.waiting
        and not waiting.filter(Q(not_before__isnull=True) | Q(not_before__lte=now)).exists()
    ):
        first = waiting.order_by("not_before").values_list("not_before", flat=True).first()
        done.wait_s = max(0.0, (first - now).total_seconds()) if first else 0.0


def work_on(
    change_set: Any, *, connect: Any, worker: str, budget_s: float, helper: bool = True
) -> WorkDone:
    """Make changes of the set until none is left for this worker or `budget_s` has passed.

    A helper checks before each change that the run still wants them; the step's own worker
    (helper=False) runs under the runner, which only drives a run in the right state."""
    done = WorkDone()
    deadline = time.monotonic() + budget_s
    tags = _tags(change_set)
    while time.monotonic() < deadline:
        if helper and not _run_wants(change_set):
            done.run_stopped = True
            break
        change = _claim_next(change_set, worker)
        if change is None:
            break
        if change.attempts > settings.WIZARD_USER_CHANGE_MAX_ATTEMPTS:
            _fail(
                change,
                worker,
                {
                    "code": "worker_lost",
                    "message": Message(
                        gettext_noop("The workers making this change stopped %(count)d times."),
                        {"count": change.attempts - 1},
                    ).to_json(),
                    "hint": Message(
                        gettext_noop("Check the workers' logs and memory, then retry the step.")
                    ).to_json(),
                },
            )
            continue
        _make(change_set, change, connect=connect, worker=worker, tags=tags)
        done.made += 1
    _waiting(change_set, done)
    return done


def _tags(change_set: Any) -> dict[str, str]:
    """The tags of the users this set creates (the run's at least: it tells ours apart)."""
    return {RUN_TAG: str(change_set.step_run.run_id), **(change_set.tags or {})}


def _make(change_set: Any, change: Any, *, connect: Any, worker: str, tags: dict[str, str]) -> None:
    try:
        outcome, user_id = _call(change_set, change, connect=connect, tags=tags)
    except RetryableError as error:
        _retry_later(change, worker, error)
        return
    except ProvisioningError as error:
        _fail(change, worker, _stored(error))
        return
    except Exception as error:  # noqa: BLE001 - a bug or an unmapped SDK error: this change fails
        logger.error("Change %s failed unexpectedly", change.pk, exc_info=error)
        _fail(
            change,
            worker,
            {
                "code": type(error).__name__,
                "message": Message(
                    gettext_noop("Unexpected error: %(error)s"), {"error": str(error)}
                ).to_json(),
                "hint": Message(
                    gettext_noop(
                        "Retry the step; if it fails again, the worker's log has the details."
                    )
                ).to_json(),
            },
        )
        return
    _finish(change, worker, outcome=outcome, user_id=user_id)


def _call(change_set: Any, change: Any, *, connect: Any, tags: dict[str, str]) -> tuple[str, str]:
    """Make one change in Connect; (outcome, user id)."""
    instance_id = change_set.instance_id
    if change.action == "create":
        return _create(connect, instance_id, change, tags)
    if change.action == "update":
        try:
            for name, difference in change.details["call"].items():
                operation, parameter = UPDATE_CALLS[name]
                getattr(connect, operation)(
                    InstanceId=instance_id,
                    UserId=change.user_id,
                    **{parameter: difference["to"]},
                )
        except PermanentError as error:
            if error.code == NOT_FOUND:
                raise PermanentError(
                    Message(
                        gettext_noop("The Connect user %(username)s no longer exists."),
                        {"username": change.username},
                    ),
                    code=NOT_FOUND,
                    hint=Message(
                        gettext_noop("Retry the step: the new plan creates the user again.")
                    ),
                ) from error
            raise
        return "updated", change.user_id
    if change.action == "delete":
        try:
            connect.delete_user(InstanceId=instance_id, UserId=change.user_id)
        except PermanentError as error:
            if error.code != NOT_FOUND:
                raise
            return "gone", change.user_id
        return "deleted", change.user_id
    raise PermanentError(
        Message(
            gettext_noop("A change of kind “%(action)s” is not made by workers."),
            {"action": change.action},
        )
    )


def _create(connect: Any, instance_id: str, change: Any, tags: dict[str, str]) -> tuple[str, str]:
    call = change.details["call"]
    try:
        created = connect.create_user(
            InstanceId=instance_id,
            Username=change.username,
            # Email is left out: the model says SAML instances refuse it.
            IdentityInfo=call["IdentityInfo"],
            PhoneConfig=call["PhoneConfig"],
            SecurityProfileIds=call["SecurityProfileIds"],
            RoutingProfileId=call["RoutingProfileId"],
            Tags=tags,
        )
    except PermanentError as error:
        if error.code != DUPLICATE:
            raise
    else:
        return "created", str(created["UserId"])
    # It exists: made by an attempt of this run that died before recording it (ours: it carries
    # the run's tag), or by someone else since the plan (theirs: left alone).
    user = find_user(connect, instance_id, change.username)
    if user is None:
        raise RetryableError(
            Message(
                gettext_noop("Connect says %(username)s exists but does not list it yet."),
                {"username": change.username},
            ),
            code="user_not_listed_yet",
        )
    if user.tags.get(RUN_TAG) == tags[RUN_TAG]:
        return "created", user.id
    return "existed", user.id


def _finish(change: Any, worker: str, *, outcome: str, user_id: str) -> None:
    # claimed_by stays: it says which worker made the change (the page counts live workers).
    updated = UserChange.objects.filter(pk=change.pk, claimed_by=worker).update(
        status=ChangeStatus.DONE,
        outcome=outcome,
        user_id=user_id,
        error={},
        not_before=None,
        finished_at=timezone.now(),
    )
    if not updated:
        logger.warning("Change %s was taken over while %s made it.", change.pk, worker)


def _fail(change: Any, worker: str, error: dict[str, Any]) -> None:
    UserChange.objects.filter(pk=change.pk, claimed_by=worker).update(
        status=ChangeStatus.FAILED, outcome="failed", error=error, finished_at=timezone.now()
    )


def _retry_later(change: Any, worker: str, error: RetryableError) -> None:
    if change.attempts >= settings.WIZARD_USER_CHANGE_MAX_ATTEMPTS:
        message = Message(
            gettext_noop("%(message)s (still failing after %(count)d attempts)"),
            {"message": error.given_message, "count": change.attempts},
        )
        _fail(change, worker, {**_stored(error), "message": message.to_json()})
        return
    delay = (
        error.retry_after_s
        if error.retry_after_s is not None
        else settings.WIZARD_RETRY_BACKOFF_S * 2 ** (change.attempts - 1)
    )
    UserChange.objects.filter(pk=change.pk, claimed_by=worker, status=ChangeStatus.PENDING).update(
        claimed_by="",
        claimed_at=None,
        not_before=timezone.now() + timedelta(seconds=delay),
        error=_stored(error),
    )


def _stored(error: ProvisioningError) -> dict[str, Any]:
    """A change's error as the page reads it: message and hint as ids and parameters, rendered in
    the language of whoever opens the page."""
    return {
        "code": error.code,
        "message": to_json(error.given_message),
        "hint": to_json(error.given_hint),
    }
