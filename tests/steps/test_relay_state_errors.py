"""A relay state the steps cannot build fails the step with the relay state's own message id, so
the step's error reads in the reader's language (not in the worker's)."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from django.utils import translation

from provisioning.audit import AuditScope
from provisioning.context import StepContext
from provisioning.errors import PermanentError
from provisioning.messages import Message
from provisioning.steps import entra_claims, okta_app


@pytest.mark.parametrize("relay_state", [entra_claims.relay_state, okta_app.relay_state])
def test_a_relay_state_it_cannot_build_fails_with_its_message_id(
    relay_state: Callable[[StepContext], str],
) -> None:
    ctx = StepContext(
        run_id=uuid.uuid4(),
        step_key="relay_state",
        region="ap-northeast-1",
        instance_id="11111111-2222-4333-8444-555555555555",
        mode="sandbox",
        inputs={"destination": "somewhere-else"},
        outputs={},
        audit=AuditScope(actor_label="tests"),
    )

    with pytest.raises(PermanentError) as failed:
        relay_state(ctx)

    said = failed.value.given_message
    assert isinstance(said, Message)
    assert said.msgid == "Unknown destination “%(destination)s”."
    assert failed.value.as_dict()["message"]["params"] == {"destination": "somewhere-else"}
    with translation.override("en"):
        english = failed.value.message
    with translation.override("ja"):
        assert failed.value.message != english and "somewhere-else" in failed.value.message
