"""Test flows and steps for the connect_users, okta_role_listing_user and phone_prerequisites
tests (registered on import, in the test process and in the worker): one-step flows of each, and
a connect_users that pauses right after its first CreateUser answered, before recording it.

Run input `pause_after_create_s`: the first time only, write
"<run>-test_connect_users_pausing.paused" (holding the pid) in the test effects folder and sleep
that long: the moment to SIGKILL the worker.
"""

from __future__ import annotations

import os
import time
from typing import Any

from provisioning.context import StepContext
from provisioning.flows import Flow, register_flow
from provisioning.steps.base import register
from provisioning.steps.connect_users import ConnectUsers, Person, Survey
from tests.engine_doubles import paused_path

PAUSING_STEP = "test_connect_users_pausing"


@register
class PausingConnectUsers(ConnectUsers):
    key = PAUSING_STEP
    title = "Connect users, pausing after the first CreateUser"

    def _create(self, ctx: StepContext, connect: Any, found: Survey, person: Person) -> None:
        pause_s = float(ctx.inputs.get("pause_after_create_s", 0))

        def pause(**_: Any) -> None:
            paused = paused_path(ctx.run_id, self.key)
            if pause_s and not paused.exists():
                paused.write_text(str(os.getpid()))
                time.sleep(pause_s)

        # After botocore parsed the answer, before _create records the user.
        connect.meta.events.register(
            "after-call.connect.CreateUser", pause, unique_id="test-pause-after-create"
        )
        super()._create(ctx, connect, found, person)


for _key, _idp in (
    ("connect_users", "entra"),
    ("okta_role_listing_user", "okta"),
    ("phone_prerequisites", "entra"),
    (PAUSING_STEP, "entra"),
):
    register_flow(Flow(key=f"test_only_{_key}", idp=_idp, title=_key, step_keys=(_key,)))
