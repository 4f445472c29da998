"""The wizard's records: connections, setup runs and their steps, the append-only audit log, and
Connect users at scale (change sets, changes, syncs).

They moved here from the `wizard` app; each keeps its table (`db_table = "wizard_..."`), and the
migrations that made those tables, their indexes and triggers are wizard's 0001-0010."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from provisioning import secret_box
from provisioning.messages import render


class Cloud(models.TextChoices):
    AWS = "aws", "AWS"
    ENTRA = "entra", "Microsoft Entra ID"
    OKTA = "okta", "Okta"


class Connection(models.Model):
    """Credentials for one cloud account. Secrets are encrypted at rest and never rendered back."""

    cloud = models.CharField(max_length=8, choices=Cloud.choices)
    name = models.CharField(_("name"), max_length=100)
    # Non-secret settings: AWS method/profile/role ARN/external id/region, Entra tenant and client
    # id, Okta org URL and auth method. Shown on the page.
    config = models.JSONField(default=dict, blank=True)
    # Fernet token of a JSON object (secret key, client secret, API token, private key).
    secret_ciphertext = models.TextField(blank=True, default="")
    is_sandbox = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    last_tested_at = models.DateTimeField(null=True, blank=True)
    last_test_ok = models.BooleanField(null=True, blank=True)
    last_test_message = models.TextField(blank=True, default="")

    class Meta:
        db_table = "wizard_connection"
        ordering = ["cloud", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["cloud", "name"], name="connection_unique_name_per_cloud"
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_cloud_display()}: {self.name}"

    @property
    def secrets(self) -> dict[str, str]:
        """Decrypted secrets. Only client modules call this, right before building an SDK client."""
        if not self.secret_ciphertext:
            return {}
        return secret_box.decrypt_json(self.secret_ciphertext)

    def set_secrets(self, values: dict[str, str]) -> None:
        self.secret_ciphertext = secret_box.encrypt_json(values) if values else ""

    @property
    def secret_names(self) -> list[str]:
        """Which secrets are stored (names only), for the page to say "set" without showing them."""
        return sorted(self.secrets)


class RunStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    RUNNING = "running", _("Running")
    WAITING = "waiting", _("Waiting for input")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")
    CANCELLED = "cancelled", _("Cancelled")
    ROLLING_BACK = "rolling_back", _("Rolling back")
    ROLLED_BACK = "rolled_back", _("Rolled back")


RUN_AT_REST = {
    RunStatus.WAITING,
    RunStatus.SUCCEEDED,
    RunStatus.FAILED,
    RunStatus.CANCELLED,
    RunStatus.ROLLED_BACK,
}
# What an admin may do with a run in each status, defined once: the pages offer these actions,
# and the services that do them (provisioning's state machine) check the same sets.
RUN_RESUMABLE = frozenset({RunStatus.FAILED, RunStatus.CANCELLED})
# A run still marked pending or running whose worker is gone (a killed `setup_sso`) can be
# resumed too, by whoever knows it stopped; pages don't offer it, a worker is normally on it.
RUN_RESUMABLE_IF_INTERRUPTED = RUN_RESUMABLE | {RunStatus.PENDING, RunStatus.RUNNING}
RUN_CANCELLABLE = frozenset({RunStatus.PENDING, RunStatus.RUNNING, RunStatus.WAITING})
# Rollback removes what the run created; it needs the run to be at rest, or waiting for the admin.
RUN_ROLLBACKABLE = frozenset(
    {RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.SUCCEEDED, RunStatus.WAITING}
)
# A succeeded step that can run again (Step.rerunnable) may, inside a run in one of these.
RUN_STEP_RERUNNABLE = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.WAITING})
# The worker works through a run's steps in these (a pending run becomes running on its first).
RUN_ADVANCING = frozenset({RunStatus.PENDING, RunStatus.RUNNING})
# A chain of worker tasks drives the run: the watchdog and a starting worker nudge these along.
RUN_WORKED_ON = RUN_ADVANCING | {RunStatus.ROLLING_BACK}
# Not finished: worked on, or waiting for the admin (a sync starts no second run beside one).
RUN_IN_PROGRESS = RUN_WORKED_ON | {RunStatus.WAITING}


class SetupRun(models.Model):
    """One setup of SSO for one Connect instance with one IdP, from the first step to the last."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    idp = models.CharField(max_length=8, choices=[(Cloud.ENTRA, "Entra ID"), (Cloud.OKTA, "Okta")])
    # Which flow (ordered step keys) this run follows, and a hash of those keys at creation time.
    flow_key = models.CharField(max_length=64)
    flow_signature = models.CharField(max_length=64)
    mode = models.CharField(max_length=8, default="sandbox")
    region = models.CharField(max_length=32)
    instance_alias = models.CharField(max_length=64, blank=True, default="")
    instance_id = models.CharField(max_length=64, blank=True, default="")
    aws_connection = models.ForeignKey(
        Connection, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    idp_connection = models.ForeignKey(
        Connection, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # The admin's answers for the whole run (per-step inputs live on StepRun.inputs).
    inputs = models.JSONField(default=dict, blank=True)
    # The admin asked to see and confirm every plan that changes something before it is applied.
    review_plans = models.BooleanField(default=False)
    # The language of the admin who started the run: workers write the run's plans, warnings and
    # messages in it, so a Japanese admin reads Japanese on the run page.
    language = models.CharField(max_length=8, default="en")
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.PENDING)
    error = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The SSO setup a users run works on (its app, claims and instance); None for a setup.
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children"
    )
    # The schedule that started this run, for a scheduled sync of Connect users.
    sync = models.ForeignKey(
        "UserSync", null=True, blank=True, on_delete=models.SET_NULL, related_name="runs"
    )
    # The one live chain of "advance" tasks: each task carries the token it was sent with, and a
    # task whose token is no longer the run's does nothing (provisioning/runs/chain.py). When the
    # next task is due; a run overdue by far lost its message (a broker restart) and is nudged.
    advance_token = models.UUIDField(null=True, blank=True)
    next_advance_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "wizard_setuprun"
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["status", "-created_at"], name="run_status_created"),
            models.Index(fields=["status", "next_advance_at"], name="run_status_next_advance"),
            # The dashboard: each sync's latest run, and succeeded setups apart from the many
            # succeeded runs of syncs.
            models.Index(fields=["sync", "-created_at"], name="run_sync_created"),
            models.Index(
                fields=["status", "-created_at"],
                name="run_setup_status_created",
                condition=models.Q(sync__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        return (
            f"{self.get_idp_display()} → {self.instance_alias or self.instance_id} ({self.status})"
        )

    @property
    def is_at_rest(self) -> bool:
        return self.status in RUN_AT_REST


class StepStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    PLANNING = "planning", _("Planning")
    PLANNED = "planned", _("Planned")
    APPLYING = "applying", _("Applying")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")
    ROLLED_BACK = "rolled_back", _("Rolled back")
    SKIPPED = "skipped", _("Skipped")


# A step in one of these is done: the run goes on with the next.
STEP_DONE = frozenset({StepStatus.SUCCEEDED, StepStatus.SKIPPED})
# A step in one of these is being worked on: a stopped run must not leave one there unheld.
STEP_IN_PROGRESS = frozenset({StepStatus.PLANNING, StepStatus.APPLYING})


class StepRun(models.Model):
    """One step of one run: its inputs, the plan shown to the admin, outputs and error."""

    run = models.ForeignKey(SetupRun, on_delete=models.CASCADE, related_name="steps")
    key = models.CharField(max_length=64)
    position = models.PositiveSmallIntegerField()
    status = models.CharField(max_length=16, choices=StepStatus.choices, default=StepStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    inputs = models.JSONField(default=dict, blank=True)
    plan = models.JSONField(default=dict, blank=True)
    outputs = models.JSONField(default=dict, blank=True)
    # Resources this run created (not adopted), so rollback removes exactly those.
    created_resources = models.JSONField(default=list, blank=True)
    # {"code", "message", "hint", "retryable"}: shown on the run page.
    error = models.JSONField(default=dict, blank=True)
    # Fernet token of a JSON object of secrets the step made for the admin to copy once (an
    # access key for Okta), never in plan/outputs; and when the admin was shown them.
    secret_ciphertext = models.TextField(blank=True, default="")
    secret_revealed_at = models.DateTimeField(null=True, blank=True)
    # Which worker holds the step, and since when (a claim by conditional UPDATE).
    claimed_by = models.CharField(max_length=200, blank=True, default="")
    claimed_at = models.DateTimeField(null=True, blank=True)
    # While a step waits on a cloud (instance ACTIVE, Graph object visible), when it began to wait.
    waiting_since = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "wizard_steprun"
        ordering = ["run", "position"]
        constraints = [
            models.UniqueConstraint(fields=["run", "key"], name="step_unique_key_per_run"),
            models.UniqueConstraint(
                fields=["run", "position"], name="step_unique_position_per_run"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.key} ({self.status})"

    @property
    def secrets(self) -> dict[str, str]:
        """The step's decrypted secrets, for the one page that shows them once."""
        if not self.secret_ciphertext:
            return {}
        return secret_box.decrypt_json(self.secret_ciphertext)


class AuditKind(models.TextChoices):
    CALL_STARTED = "call_started", _("Cloud call started")
    CALL_FINISHED = "call_finished", _("Cloud call finished")
    RUN_STATE = "run_state", _("Run state changed")
    STEP_STATE = "step_state", _("Step state changed")
    CONNECTION = "connection", _("Connection changed")
    LOGIN = "login", _("Signed in")
    SECRET_REVEALED = "secret_revealed", _("Secret shown")
    USER_SYNC = "user_sync", _("User sync changed")
    PERSON = "person", _("Person changed")
    FEDERATION = "federation", _("Federation state changed")
    NOTIFICATIONS = "notifications", _("Notifications changed")


class AuditOutcome(models.TextChoices):
    STARTED = "started", _("Started")
    OK = "ok", _("OK")
    ERROR = "error", _("Error")


class AuditEventQuerySet(models.QuerySet["AuditEvent"]):
    def update(self, **kwargs: Any) -> int:
        raise AuditLogIsAppendOnly("audit rows cannot be updated")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise AuditLogIsAppendOnly("audit rows cannot be deleted")


class AuditLogIsAppendOnly(Exception):
    pass


class AuditEvent(models.Model):
    """Append-only: one row per cloud call start, per call end, and per state change.

    The database refuses UPDATE and DELETE too (triggers in wizard's migration 0002), so even raw
    SQL from the app can't rewrite history.
    """

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    kind = models.CharField(max_length=16, choices=AuditKind.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    # Who, as text, so the row still says it after the user is gone ("worker@host" for workers).
    actor_label = models.CharField(max_length=200, blank=True, default="")
    run = models.ForeignKey(
        SetupRun,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="audit_events",
    )
    step_key = models.CharField(max_length=64, blank=True, default="")
    cloud = models.CharField(max_length=8, blank=True, default="")
    service = models.CharField(max_length=64, blank=True, default="")
    operation = models.CharField(max_length=128, blank=True, default="")
    # Pairs a call's "started" row with its "finished" row.
    call_id = models.UUIDField(null=True, blank=True, db_index=True)
    outcome = models.CharField(max_length=8, choices=AuditOutcome.choices, blank=True, default="")
    error_code = models.CharField(max_length=128, blank=True, default="")
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    # Redacted: no secret ever lands here (provisioning/audit.py redacts before writing).
    request = models.JSONField(default=dict, blank=True)
    response = models.JSONField(default=dict, blank=True)
    old_value = models.JSONField(default=dict, blank=True)
    new_value = models.JSONField(default=dict, blank=True)
    message = models.TextField(blank=True, default="")
    # The message as its id and parameters (provisioning/messages.py), rendered in the reader's
    # language; rows written before it existed hold their text in `message`. Nullable, so adding
    # it is a plain ADD COLUMN that writes no row (the append-only triggers stay as they are).
    translatable_message = models.JSONField(null=True, blank=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        db_table = "wizard_auditevent"
        ordering = ["-at", "-id"]
        # The log page reads newest first by (at, id), alone or under one filter: each of these
        # hands it the rows already in that order (the operation's trigram index is PostgreSQL's
        # own, in wizard's migration 0010).
        indexes = [
            models.Index(fields=["at", "id"], name="audit_at_id"),
            models.Index(fields=["run", "at", "id"], name="audit_run_at_id"),
            models.Index(fields=["actor_label", "at", "id"], name="audit_actor_at_id"),
            models.Index(fields=["cloud", "at", "id"], name="audit_cloud_at_id"),
            models.Index(fields=["outcome", "at", "id"], name="audit_outcome_at_id"),
            models.Index(fields=["cloud", "operation"], name="audit_cloud_operation"),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.kind} {self.cloud} {self.operation}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AuditLogIsAppendOnly("audit rows cannot be updated")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise AuditLogIsAppendOnly("audit rows cannot be deleted")

    @property
    def message_text(self) -> str:
        """The row's message in the active language (an older row: its text as written)."""
        if self.translatable_message:
            return str(render(self.translatable_message))
        return self.message


class ExportStatus(models.TextChoices):
    PENDING = "pending", _("Waiting for a worker")
    WRITING = "writing", _("Writing")
    READY = "ready", _("Ready to download")
    FAILED = "failed", _("Failed")


class AuditExport(models.Model):
    """An export of the audit log (the filters applied) that a worker writes into a private
    folder, for the person who asked to download until it expires."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    file_format = models.CharField(max_length=4, choices=[("csv", "CSV"), ("json", "JSON")])
    # The audit log page's query string (its filters), checked again by the worker.
    query = models.JSONField(default=dict, blank=True)
    status = models.CharField(
        max_length=8, choices=ExportStatus.choices, default=ExportStatus.PENDING
    )
    rows_total = models.PositiveIntegerField(null=True, blank=True)
    rows_written = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "wizard_auditexport"
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["created_at"], name="audit_export_created")]

    def __str__(self) -> str:
        return f"audit export {self.pk} ({self.status})"


class WorkerHeartbeat(models.Model):
    """Last sign of life of each Celery worker, for /healthz."""

    hostname = models.CharField(max_length=200, unique=True)
    seen_at = models.DateTimeField()

    class Meta:
        db_table = "wizard_workerheartbeat"

    def __str__(self) -> str:
        return f"{self.hostname} @ {self.seen_at:%H:%M:%S}"


class Departures(models.TextChoices):
    """What a sync does with Connect users it manages whose people left the groups."""

    REPORT = "report", _("Only report them")
    DELETE = "delete", _("Delete their Connect users")


class UserSync(models.Model):
    """A schedule that keeps the Connect users of one instance in step with IdP groups: every
    `every_hours` it starts a run that re-reads the groups and applies what changed."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    idp = models.CharField(max_length=8, choices=[(Cloud.ENTRA, "Entra ID"), (Cloud.OKTA, "Okta")])
    region = models.CharField(max_length=32)
    instance_id = models.CharField(max_length=64)
    instance_alias = models.CharField(max_length=64, blank=True, default="")
    aws_connection = models.ForeignKey(Connection, on_delete=models.PROTECT, related_name="+")
    idp_connection = models.ForeignKey(Connection, on_delete=models.PROTECT, related_name="+")
    # The SSO setup whose app and claims the people sign in through (None: typed by the admin).
    setup = models.ForeignKey(
        SetupRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The group_users step's answers: groups, their mapping, where usernames come from.
    inputs = models.JSONField(default=dict, blank=True)
    departures = models.CharField(
        max_length=8, choices=Departures.choices, default=Departures.REPORT
    )
    every_hours = models.PositiveSmallIntegerField(default=24)
    enabled = models.BooleanField(default=True)
    next_run_at = models.DateTimeField(null=True, blank=True, db_index=True)
    # A sync reads only what changed in the IdP since its last successful run (Entra delta
    # links, Okta groups' lastMembershipUpdated: provisioning/user_changes/sync_reading.py), and
    # reads everything, comparing with every Connect user, at least every `full_every_hours`.
    delta_state = models.JSONField(default=dict, blank=True)
    full_every_hours = models.PositiveSmallIntegerField(default=168)
    last_full_at = models.DateTimeField(null=True, blank=True)
    language = models.CharField(max_length=8, default="en")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "wizard_usersync"
        ordering = ["instance_alias", "instance_id", "created_at"]

    def __str__(self) -> str:
        return f"sync {self.get_idp_display()} → {self.instance_alias or self.instance_id}"


class ChangeSetPurpose(models.TextChoices):
    APPLY = "apply", _("Apply")
    ROLLBACK = "rollback", _("Roll back")


class UserChangeSet(models.Model):
    """The Connect user changes of one plan of a users step (or of its rollback), one row per
    person, applied by as many workers as are free, at the API's quota."""

    step_run = models.ForeignKey(StepRun, on_delete=models.CASCADE, related_name="change_sets")
    purpose = models.CharField(
        max_length=8, choices=ChangeSetPurpose.choices, default=ChangeSetPurpose.APPLY
    )
    instance_id = models.CharField(max_length=64)
    # Rows per action, written with the rows: {"create": 1985, "refused": 3, ...}.
    counts = models.JSONField(default=dict, blank=True)
    # The instance's users and Users per instance quota when planned, for the page.
    users_in_use = models.PositiveIntegerField(default=0)
    users_quota = models.PositiveIntegerField(default=0)
    # The tags the users it creates get: the run's, and the sync's (whose users it manages).
    tags = models.JSONField(default=dict, blank=True)
    # The CreateUser rate the work runs at ({"per_second", "burst", "source"}), once dispatched.
    rate = models.JSONField(default=dict, blank=True)
    # The IdP group ids the plan read its people from (group_users): a later run of any of these
    # groups manages the people this set held (provisioning/user_changes/sources.py).
    group_ids = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    dispatched_at = models.DateTimeField(null=True, blank=True)
    # When workers were last asked to help; they are asked again if the work stalls.
    helpers_sent_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # How many changes ended with each outcome, kept by a trigger in the statement that records
    # the outcome (wizard's migration 0010), so the run page reads its progress without counting
    # rows.
    created_count = models.PositiveIntegerField(default=0)
    updated_count = models.PositiveIntegerField(default=0)
    deleted_count = models.PositiveIntegerField(default=0)
    existed_count = models.PositiveIntegerField(default=0)
    gone_count = models.PositiveIntegerField(default=0)
    failed_count = models.PositiveIntegerField(default=0)

    class Meta:
        db_table = "wizard_userchangeset"
        ordering = ["step_run", "-created_at"]

    def __str__(self) -> str:
        return f"{self.purpose} {self.counts}"


class ChangeAction(models.TextChoices):
    CREATE = "create", _("Create")
    UPDATE = "update", _("Update")
    DELETE = "delete", _("Delete")
    NOTHING = "nothing", _("Left alone")
    REFUSED = "refused", _("Refused")
    DEPARTED = "departed", _("Left the groups")


# Actions that call Connect; the others are there to be listed.
ACTIONS_THAT_CHANGE = (ChangeAction.CREATE, ChangeAction.UPDATE, ChangeAction.DELETE)


class ChangeStatus(models.TextChoices):
    LISTED = "listed", _("Listed only")
    PENDING = "pending", _("Pending")
    DONE = "done", _("Done")
    FAILED = "failed", _("Failed")


# What a change can end as, each counted on its change set: all but "failed" mean done.
CHANGE_OUTCOMES = ("created", "updated", "deleted", "existed", "gone", "failed")


class UserChange(models.Model):
    """One person's change in a change set: what to do, and once a worker did it, how it went."""

    change_set = models.ForeignKey(UserChangeSet, on_delete=models.CASCADE, related_name="changes")
    position = models.PositiveIntegerField()
    action = models.CharField(max_length=8, choices=ChangeAction.choices)
    username = models.CharField(max_length=200)
    # What the page lists (names, profiles, reasons) and what the call needs (ids, attributes).
    details = models.JSONField(default=dict, blank=True)
    user_id = models.CharField(max_length=64, blank=True, default="")
    status = models.CharField(max_length=8, choices=ChangeStatus.choices)
    # created, updated, deleted; existed (someone else made it first), gone (already deleted).
    outcome = models.CharField(max_length=16, blank=True, default="")
    # {"code", "message", "hint"} of the last failure.
    error = models.JSONField(default=dict, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    claimed_by = models.CharField(max_length=200, blank=True, default="")
    claimed_at = models.DateTimeField(null=True, blank=True)
    # A retryable failure waits until then before another worker takes the change again.
    not_before = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "wizard_userchange"
        ordering = ["change_set", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["change_set", "position"], name="user_change_unique_position"
            )
        ]
        indexes = [
            models.Index(fields=["change_set", "status", "position"], name="user_change_work"),
            models.Index(fields=["change_set", "action", "position"], name="user_change_action"),
            models.Index(fields=["change_set", "finished_at"], name="user_change_finished"),
        ]

    def __str__(self) -> str:
        return f"{self.action} {self.username} ({self.status})"


class SignInReadingStatus(models.TextChoices):
    PENDING = "pending", _("reading AWS")
    DONE = "done", _("read")
    FAILED = "failed", _("could not read AWS")


class SignInReading(models.Model):
    """What a worker read from IAM and Connect for one inspected sign-in: the provider's metadata,
    the role with its trust and policies, the instance and the matching user. The SAML response
    itself is never saved; it stays in the inspecting admin's page."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="+")
    provider_arn = models.CharField(max_length=2048, blank=True)
    role_arn = models.CharField(max_length=2048, blank=True)
    instance_id = models.CharField(max_length=100, blank=True)
    region = models.CharField(max_length=32, blank=True)
    status = models.CharField(
        max_length=16, choices=SignInReadingStatus.choices, default=SignInReadingStatus.PENDING
    )
    facts = models.JSONField(null=True, blank=True)
    # Why the read failed: `error_message` as a message id and parameters (rendered in the
    # reader's language, provisioning/messages.py); `error` holds the text older rows were given.
    error = models.TextField(blank=True)
    error_message = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "wizard_signinreading"

    def __str__(self) -> str:
        return f"{self.role_arn} @ {self.instance_id or '-'}: {self.status}"

    @property
    def error_text(self) -> Any:
        """Why the read failed, in the active language (an older row's text as it is)."""
        return render(self.error_message) if self.error_message else self.error


class FederationCheckStatus(models.TextChoices):
    PENDING = "pending", _("checking")
    DONE = "done", _("checked")
    FAILED = "failed", _("could not check")


class FederationCheckRecord(models.Model):
    """One "Check a federation": what to check (connections, region, instance, the IdP app if
    given), and once a worker has read it, the result as JSON
    (provisioning/federation_check/result.py FederationCheck.to_json)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    aws_connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="+")
    idp_connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="+")
    region = models.CharField(max_length=32)
    instance = models.CharField(max_length=100)
    app_id = models.CharField(max_length=100, blank=True)
    # The language of the admin who asked: what the worker writes (an error) is in it.
    language = models.CharField(max_length=8, default="en")
    status = models.CharField(
        max_length=16, choices=FederationCheckStatus.choices, default=FederationCheckStatus.PENDING
    )
    result = models.JSONField(null=True, blank=True)
    error = models.JSONField(default=dict, blank=True)
    # The watched federation this check was made for (the watch's schedule, or a check that read
    # it); None for a check that found no federation.
    watched = models.ForeignKey(
        "WatchedFederation",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="checks",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "wizard_federationcheck"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.instance} ({self.region}): {self.status}"


class WatchState(models.TextChoices):
    UNCHECKED = "unchecked", _("not checked yet")
    HEALTHY = "healthy", _("healthy")
    WARNING = "warning", _("warning")
    BROKEN = "broken", _("broken")
    UNREADABLE = "unreadable", _("could not read")


class WatchedFederation(models.Model):
    """A federation the wizard keeps checking: one a setup run built, or one a check read. Its
    state is its latest check's; `next_check_at` is when the schedule checks it again."""

    aws_connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="+")
    idp_connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="+")
    region = models.CharField(max_length=32)
    instance_id = models.CharField(max_length=64)
    instance_alias = models.CharField(max_length=64, blank=True, default="")
    app_id = models.CharField(max_length=100)
    app_name = models.CharField(max_length=256, blank=True, default="")
    # The setup run that built it (None: found by a check).
    setup = models.ForeignKey(
        SetupRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    state = models.CharField(
        max_length=16, choices=WatchState.choices, default=WatchState.UNCHECKED
    )
    every_hours = models.PositiveSmallIntegerField(default=24)
    enabled = models.BooleanField(default=True)
    next_check_at = models.DateTimeField(null=True, blank=True, db_index=True)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    latest_check = models.ForeignKey(
        FederationCheckRecord, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The IdP signing certificate's expiry date the warnings below were sent for, and the
    # smallest threshold (days before it) already notified: each threshold notifies once.
    expiry_notified_for = models.CharField(max_length=32, blank=True, default="")
    expiry_notified_days = models.PositiveSmallIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "wizard_watchedfederation"
        ordering = ["instance_alias", "instance_id", "app_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["aws_connection", "idp_connection", "region", "instance_id", "app_id"],
                name="watched_federation_unique",
            )
        ]

    def __str__(self) -> str:
        # As its page heads it (templates/watched_federation.html): the app leads into the instance.
        return f"{self.app_name or self.app_id} → {self.instance_alias or self.instance_id}"


class NotificationSettings(models.Model):
    """Where a watched federation's changes of state are sent: e-mail recipients (through
    Django's mail settings) and one webhook. One row; the webhook URL is a secret (its path is
    the credential of Slack's and Teams' incoming webhooks), kept encrypted like connection
    secrets and never shown back whole."""

    email_recipients = models.JSONField(default=list, blank=True)
    webhook_ciphertext = models.TextField(blank=True, default="")
    # The language of the admin who saved these: notifications are written in it.
    language = models.CharField(max_length=8, default="en")
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "wizard_notificationsettings"

    def __str__(self) -> str:
        return "notification settings"

    @property
    def webhook_url(self) -> str:
        if not self.webhook_ciphertext:
            return ""
        return secret_box.decrypt_json(self.webhook_ciphertext).get("url", "")

    def set_webhook_url(self, url: str) -> None:
        self.webhook_ciphertext = secret_box.encrypt_json({"url": url}) if url else ""


class WatchNotification(models.Model):
    """One notification of a watched federation (a change of state, or a certificate threshold
    passed), written with the audit row before anything is sent and completed after (healthchecks'
    Channel.notify): a worker lost between the sending and `sent_at` leaves it unsent, and it is
    sent again. Its id is the event id the e-mail (Message-ID) and the webhook body (event_id)
    carry, so a receiver recognises the second delivery of the same event."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    watched = models.ForeignKey(
        WatchedFederation, on_delete=models.CASCADE, related_name="notifications"
    )
    # The check that found it (its page is linked from the notification).
    found_by = models.ForeignKey(
        FederationCheckRecord, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The state the federation went to, and what happened (a Message's JSON: rendered at send
    # time in the language notifications are set up in).
    state = models.CharField(max_length=16, choices=WatchState.choices)
    message = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)
    # When a worker last took it to send (a conditional UPDATE: one worker at a time), how many
    # times, and when one finished sending it; None until then.
    attempted_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    sent_at = models.DateTimeField(null=True, blank=True, db_index=True)
    email_ok = models.BooleanField(null=True, blank=True)
    webhook_ok = models.BooleanField(null=True, blank=True)

    class Meta:
        db_table = "wizard_watchnotification"
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"notification {self.pk}"


class NotificationTest(models.Model):
    """One "Send a test notification" from the Notifications page: who asked, and once the worker
    has sent it (finished_at), how each way took it: None where none is set up, else whether it
    was accepted."""

    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    requested_at = models.DateTimeField(auto_now_add=True)
    # The language of the page it was asked from: the test is written in it.
    language = models.CharField(max_length=8, default="en")
    finished_at = models.DateTimeField(null=True, blank=True)
    email_recipients = models.PositiveIntegerField(default=0)
    email_ok = models.BooleanField(null=True, blank=True)
    webhook_ok = models.BooleanField(null=True, blank=True)

    class Meta:
        db_table = "wizard_notificationtest"

    def __str__(self) -> str:
        return f"notification test {self.pk}"
