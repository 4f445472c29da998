"""Test steps and flows (registered on import) whose effects are real, idempotent and countable.

Each marker step creates one file named after (run, step) through the audit choke point, looking
it up first, and appends a line to a creations log each time it really creates one, so a test can
count that every step was applied exactly once. Inputs of the run tune their behaviour:

    step_seconds            how long each apply takes (default 1 s, so a page can watch it)
    waits                   {step_key: n}  raise WaitForCloud n times first (test_marker_two: 2)
    retryable_failures      {step_key: n}  raise RetryableError n times first
    rate_limited            {step_key: n}  raise RetryableError(retry_after_s=0.01) n times first
    fail_steps              [step_key]     raise PermanentError in apply
    fail_after_create       {step_key: n}  raise RetryableError n times right after creating
    pause                   {step_key: s}  inside the create call, after creating, write a
                                           "<run>-<step>.paused" file holding the pid, then sleep
                                           s seconds (only the first time): the moment to SIGKILL
    confirm_steps           [step_key]     the plan asks for confirmation
    input_steps             [step_key]     the plan needs an "answer" input (a form)
    verify_fail_steps       [step_key]     verify reports a failing check

The effects folder is WIZARD_TEST_EFFECTS_DIR (tests/worker_process.py sets it for the test
process and its worker).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any, ClassVar

from django import forms

from provisioning.audit import audited_call
from provisioning.context import StepContext
from provisioning.errors import PermanentError, RetryableError, WaitForCloud
from provisioning.flows import Flow, register_flow
from provisioning.redaction import register_secret_values
from provisioning.steps.base import Change, Finding, Plan, Step, register

logger = logging.getLogger(__name__)

# The audit rows of the doubles' calls say this cloud, so tests can tell them apart.
TEST_CLOUD = "test"
# What a step takes by default: long enough for a browser test to see it running.
DEFAULT_STEP_SECONDS = 1.0


def effects_dir() -> Path:
    path = Path(os.environ.get("WIZARD_TEST_EFFECTS_DIR", "var/test-effects"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def marker_path(run_id: Any, step_key: str) -> Path:
    return effects_dir() / f"{run_id}-{step_key}.marker"


def paused_path(run_id: Any, step_key: str) -> Path:
    return effects_dir() / f"{run_id}-{step_key}.paused"


def mark_paused(path: Path) -> None:
    """Write this process's pid into the pause file in one step (a rename), so a test that sees
    the file always reads a whole pid."""
    partial = path.with_suffix(".partial")
    partial.write_text(str(os.getpid()))
    partial.replace(path)


def creations(run_id: Any) -> list[str]:
    """The step keys whose marker this run really created, one entry per creation."""
    log = effects_dir() / "creations.log"
    if not log.exists():
        return []
    prefix = f"{run_id} "
    return [line.split()[1] for line in log.read_text().splitlines() if line.startswith(prefix)]


def _bump(run_id: Any, step_key: str, counter: str) -> int:
    """Count how often something happened to a step (its claim makes this single-writer)."""
    path = effects_dir() / f"{run_id}-{step_key}.{counter}"
    count = int(path.read_text()) + 1 if path.exists() else 1
    path.write_text(str(count))
    return count


class AnswerForm(forms.Form):
    answer = forms.CharField(max_length=100, help_text="Anything; the test step records it.")


class MarkerStep(Step):
    """Creates the marker file of (run, step) unless it exists; removes it on rollback."""

    default_waits: ClassVar[int] = 0
    fails_first_apply: ClassVar[bool] = False
    form_class = AnswerForm

    def _wants(self, ctx: StepContext, name: str) -> bool:
        return self.key in ctx.inputs.get(name, [])

    def _lookup(self, ctx: StepContext) -> str | None:
        path = marker_path(ctx.run_id, self.key)
        return audited_call(
            ctx.audit,
            cloud=TEST_CLOUD,
            service="markers",
            operation="GetMarker",
            request={"name": path.name},
            call=lambda: path.read_text() if path.exists() else None,
            summarize=lambda found: {"found": found is not None},
        )

    def _create(self, ctx: StepContext) -> None:
        path = marker_path(ctx.run_id, self.key)
        pause_s = float(ctx.inputs.get("pause", {}).get(self.key, 0))

        def create() -> None:
            # O_EXCL: two processes can never both create it.
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as marker:
                marker.write(str(ctx.run_id))
            with open(effects_dir() / "creations.log", "a") as log:
                log.write(f"{ctx.run_id} {self.key} {os.getpid()}\n")
            paused = paused_path(ctx.run_id, self.key)
            if pause_s and not paused.exists():
                mark_paused(paused)
                time.sleep(pause_s)

        audited_call(
            ctx.audit,
            cloud=TEST_CLOUD,
            service="markers",
            operation="CreateMarker",
            request={"name": path.name},
            call=create,
        )
        ctx.record_created("test_marker", path.name)

    def form_answers(self, ctx: StepContext) -> dict[str, Any]:
        # Only a step the run names in input_steps asks its question (the engine checks the
        # answer with AnswerForm); the others count as answered.
        if self._wants(ctx, "input_steps"):
            return super().form_answers(ctx)
        return {"answer": "not asked"}

    def plan(self, ctx: StepContext) -> Plan:
        found = self._lookup(ctx)
        name = marker_path(ctx.run_id, self.key).name
        return Plan(
            changes=[Change("nothing" if found else "create", "test_marker", name)],
            needs_confirmation=self._wants(ctx, "confirm_steps"),
        )

    def apply(self, ctx: StepContext) -> dict[str, Any]:
        waits = int(ctx.inputs.get("waits", {}).get(self.key, self.default_waits))
        if waits and _bump(ctx.run_id, self.key, "waited") <= waits:
            raise WaitForCloud(f"the test marker of {self.key} is not visible yet")
        failures = int(ctx.inputs.get("retryable_failures", {}).get(self.key, 0))
        if failures and _bump(ctx.run_id, self.key, "throttled") <= failures:
            raise RetryableError("The test cloud is throttling.", code="Throttling")
        limited = int(ctx.inputs.get("rate_limited", {}).get(self.key, 0))
        if limited and _bump(ctx.run_id, self.key, "rate_limited") <= limited:
            raise RetryableError(
                "The test cloud's rate limit is used up.", code="RateLimited", retry_after_s=0.01
            )
        if self._wants(ctx, "fail_steps"):
            raise PermanentError(
                "The test inputs ask this step to fail.",
                code="test_failure",
                hint="Start a run without fail_steps.",
            )
        if self.fails_first_apply and _bump(ctx.run_id, self.key, "failed") == 1:
            raise PermanentError("This step fails the first time; retry it.", code="test_failure")
        found = self._lookup(ctx)
        if found is None:
            self._create(ctx)
            broken = int(ctx.inputs.get("fail_after_create", {}).get(self.key, 0))
            if broken and _bump(ctx.run_id, self.key, "broke_after_create") <= broken:
                raise RetryableError("The test cloud stopped answering.", code="Timeout")
        elif found == str(ctx.run_id):
            # Created by this run in a call whose worker died before it could record it.
            ctx.record_created("test_marker", marker_path(ctx.run_id, self.key).name)
        time.sleep(float(ctx.inputs.get("step_seconds", DEFAULT_STEP_SECONDS)))
        return {
            "marker": marker_path(ctx.run_id, self.key).name,
            "answer": ctx.inputs.get("answer"),
        }

    def verify(self, ctx: StepContext) -> list[Finding]:
        exists = marker_path(ctx.run_id, self.key).exists() and not self._wants(
            ctx, "verify_fail_steps"
        )
        return [
            Finding(
                check="The marker exists",
                ok=exists,
                detail="" if exists else "the marker file is missing",
                fix="" if exists else "Retry the step.",
            )
        ]

    def rollback(self, ctx: StepContext) -> None:
        for resource in ctx.created_of("test_marker"):
            path = effects_dir() / resource.identifier
            audited_call(
                ctx.audit,
                cloud=TEST_CLOUD,
                service="markers",
                operation="DeleteMarker",
                request={"name": path.name},
                call=lambda path=path: path.unlink(missing_ok=True),
            )


@register
class MarkerOne(MarkerStep):
    key = "test_marker_one"
    title = "Test marker one"
    description = "Creates the first test marker."


@register
class MarkerTwo(MarkerStep):
    key = "test_marker_two"
    title = "Test marker two"
    description = "Creates the second test marker, after waiting for the test cloud twice."
    default_waits = 2


@register
class MarkerThree(MarkerStep):
    key = "test_marker_three"
    title = "Test marker three"
    description = "Creates the third test marker."


@register
class MarkerFailsOnce(MarkerStep):
    key = "test_marker_fails_once"
    title = "Test marker that fails once"
    description = "Fails with a permanent error the first time; succeeds when retried."
    fails_first_apply = True


@register
class CanaryCall(Step):
    """Uses the run's IdP connection secret the way a client module does: decrypts it, registers
    it for redaction, puts it in an audited request, gets it echoed back, and logs carelessly."""

    key = "test_canary_call"
    title = "Test call with the connection's secret"

    def plan(self, ctx: StepContext) -> Plan:
        return Plan(changes=[Change("create", "test_token", "canary")])

    def apply(self, ctx: StepContext) -> dict[str, Any]:
        from provisioning.models import Connection

        connection = Connection.objects.get(pk=ctx.idp_connection_id)
        secrets = connection.secrets
        register_secret_values(secrets.values())
        secret = secrets["client_secret"]
        response = audited_call(
            ctx.audit,
            cloud=TEST_CLOUD,
            service="token",
            operation="GetToken",
            request={
                "client_id": connection.config.get("client_id", ""),
                "client_secret": secret,
                "headers": {"Authorization": f"Basic {secret}"},
                "note": f"asking with {secret}",
            },
            call=lambda: {"issued_for": secret, "expires_in": 3600},
            summarize=lambda issued: issued,
        )
        logger.info("Got a token for the secret %s", secret)
        if ctx.inputs.get("fail_with_secret"):
            raise PermanentError(f"The IdP refused the secret {secret}.", code="invalid_client")
        return {"echo": response["issued_for"]}

    def verify(self, ctx: StepContext) -> list[Finding]:
        return []

    def rollback(self, ctx: StepContext) -> None:
        # The token it asked for expires on its own.
        return None


register_flow(
    Flow(
        key="test_flow",
        idp="entra",
        title="Test setup: three markers",
        step_keys=("test_marker_one", "test_marker_two", "test_marker_three"),
    )
)
register_flow(
    Flow(
        key="test_flow_fails_once",
        idp="entra",
        title="Test setup: a step that fails once",
        step_keys=("test_marker_one", "test_marker_fails_once", "test_marker_three"),
    )
)
register_flow(
    Flow(
        key="test_canary_flow",
        idp="entra",
        title="Test setup: a call with a secret",
        step_keys=("test_marker_one", "test_canary_call"),
    )
)
