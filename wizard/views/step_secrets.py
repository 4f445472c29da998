"""The page that shows a step's secret (the access key for Okta) once, with the guided steps to
paste it into Okta."""

from __future__ import annotations

import uuid

from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from provisioning.audit import AuditScope, record_state_change
from provisioning.messages import Message
from provisioning.models import AuditKind, StepRun
from provisioning.redaction import register_secret_values
from provisioning.steps.base import STEPS
from wizard.roles import ADMIN, role_required


def _get_step(run_id: uuid.UUID, step_key: str) -> StepRun:
    step = StepRun.objects.select_related("run").filter(run_id=run_id, key=step_key).first()
    if step is None or not step.secret_ciphertext:
        raise Http404(_("This step has no secret to show."))
    return step


@role_required(ADMIN, recent_password=True)
@never_cache
@require_POST
def reveal(request: HttpRequest, run_id: uuid.UUID, step_key: str) -> HttpResponse:
    """Show the secret if it has never been shown; the one UPDATE that sets secret_revealed_at
    decides, so two clicks (or two admins) can't both see it."""
    step = _get_step(run_id, step_key)
    with transaction.atomic():
        shown_now = StepRun.objects.filter(
            pk=step.pk, secret_revealed_at__isnull=True, secret_ciphertext=step.secret_ciphertext
        ).update(secret_revealed_at=timezone.now())
        if shown_now:
            record_state_change(
                AuditScope(
                    actor_label=request.user.get_username(),
                    actor_id=request.user.pk,
                    run_id=run_id,
                    step_key=step_key,
                ),
                kind=AuditKind.SECRET_REVEALED,
                old={"secret_shown": False},
                new={"secret_shown": True},
                message=Message(gettext_noop("The step's access key was shown to the admin.")),
            )
    step.refresh_from_db()
    secrets = step.secrets if shown_now else {}
    # Masked in anything this process logs from now on.
    register_secret_values(secrets.values())
    step_class = STEPS.get(step_key)
    return render(
        request,
        "step_secret.html",
        {
            "run": step.run,
            "step": step,
            "step_title": step_class.title if step_class else step_key,
            "shown_now": bool(shown_now),
            # store_secret() keeps one secret, named by its access key id.
            "access_key_id": next(iter(secrets), ""),
            "secret_access_key": next(iter(secrets.values()), ""),
        },
    )
