"""A succeeded step runs again inside its run, from the run page's button through the real worker:
the sign-in test signs in with another person; a step that can't run again is refused."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from provisioning.models import AuditEvent, AuditKind, RunStatus, SetupRun, StepStatus
from sandbox.server import Sandbox
from tests.flows.entra_runs import entra_sandbox, plan_file, setup_sso  # noqa: F401
from wizard.roles import VIEWER, role_group

STEP = "sign_in_test"


def _settled(run_id: uuid.UUID, worker: Any, *statuses: str) -> SetupRun:
    deadline = time.monotonic() + 120
    while True:
        run = SetupRun.objects.get(pk=run_id)
        if run.status in statuses:
            return run
        assert time.monotonic() < deadline, (run.status, worker.log_text()[-3000:])
        time.sleep(0.3)


def _rerun_url(run: SetupRun, step_key: str) -> str:
    return reverse("step_rerun", args=[run.pk, step_key])


def test_it_runs_the_sign_in_test_again_with_another_person(
    entra_sandbox: Sandbox,  # noqa: F811
    tmp_path: Path,
    celery_worker: Any,
    admin_client: Client,
    admin_user: User,
) -> None:
    run, output = setup_sso(plan_file(tmp_path))
    assert run.status == RunStatus.SUCCEEDED, output
    step = run.steps.get(key=STEP)
    (first,) = step.outputs["results"]
    people = [
        str(person.get("login") or person["username"])
        for person in next(s.outputs["people"] for s in run.steps.all() if s.outputs.get("people"))
    ]
    other = next(login for login in people if login != first["login"])

    page = admin_client.get(reverse("run_detail", args=[run.pk])).content.decode()
    assert _rerun_url(run, STEP) in page
    assert _rerun_url(run, "entra_app") not in page
    # The button stays in sight when the finished step is folded: after its card's fold.
    start = page.index(f'id="step-{STEP}"')
    card = page[start : page.find('<li class="step-card', start)]
    assert _rerun_url(run, STEP) in card[card.rindex("</details>") :]

    response = admin_client.post(_rerun_url(run, STEP))
    assert response.status_code == 302

    # The re-run forgets whom to sign in: the worker plans and the picker asks again.
    waiting = _settled(run.pk, celery_worker, RunStatus.WAITING, RunStatus.FAILED)
    assert waiting.status == RunStatus.WAITING, waiting.error
    step.refresh_from_db()
    assert step.status == StepStatus.PLANNED and step.plan["needs_input"]
    page = admin_client.get(reverse("run_detail", args=[run.pk])).content.decode()
    assert _rerun_url(run, STEP) not in page  # the step is no longer succeeded

    admin_client.post(
        reverse("step_inputs", args=[run.pk, STEP]), {f"step-{STEP}-test_users": other}
    )
    done = _settled(run.pk, celery_worker, RunStatus.SUCCEEDED, RunStatus.FAILED)
    assert done.status == RunStatus.SUCCEEDED, done.error
    step.refresh_from_db()
    (second,) = step.outputs["results"]
    assert second["login"] == other and second["ok"], second
    moved = AuditEvent.objects.filter(run=run, kind=AuditKind.RUN_STATE, actor_id=admin_user.pk)
    # The audit line is stored as a message id, read in the reader's language.
    again = {"msgid": "Running “%(step)s” again.", "params": {"step": STEP}}
    assert [event.translatable_message for event in moved].count(again) == 1


def test_it_runs_a_succeeded_step_again_only_where_the_step_allows_it(
    entra_sandbox: Sandbox,  # noqa: F811
    tmp_path: Path,
    admin_client: Client,
) -> None:
    run, output = setup_sso(plan_file(tmp_path))
    assert run.status == RunStatus.SUCCEEDED, output
    viewer = User.objects.create_user("viewer-rerun")
    viewer.groups.add(role_group(VIEWER))
    viewer_client = Client()
    viewer_client.force_login(viewer)

    refused = admin_client.post(_rerun_url(run, "entra_app"), follow=True)
    by_viewer = viewer_client.post(_rerun_url(run, STEP))
    without_csrf = Client(enforce_csrf_checks=True)
    without_csrf.force_login(User.objects.get(username="admin"))

    assert "This step can&#x27;t be run again inside its run." in refused.content.decode()
    assert by_viewer.status_code == 403
    assert without_csrf.post(_rerun_url(run, STEP)).status_code == 403
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    assert run.steps.get(key=STEP).status == StepStatus.SUCCEEDED
