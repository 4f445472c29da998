"""A crash point for any AWS step, loaded by the test worker: with the run input
`crash_after = {step_key: OperationName}`, the worker pauses right after that call answered
(the first time only), writing "<run>-<step>.paused" with its pid, so a test can SIGKILL it at the
worst moment: the cloud changed, the run has not recorded it yet.

It wraps StepContext.aws, the boundary where steps get their clients; nothing else changes.
"""

from __future__ import annotations

import os
import time
from typing import Any

from provisioning.context import StepContext
from tests.engine_doubles import paused_path

# Long enough for the test to see the pause and kill the process.
DEFAULT_PAUSE_S = 60.0
_unpatched_aws = StepContext.aws


def _aws_with_crash_point(self: StepContext, service: str) -> Any:
    client = _unpatched_aws(self, service)
    operation = (self.inputs.get("crash_after") or {}).get(self.step_key)
    if not operation:
        return client
    pause_s = float(self.inputs.get("crash_pause_s", DEFAULT_PAUSE_S))
    run_id, step_key = self.run_id, self.step_key

    def pause(**_: Any) -> None:
        paused = paused_path(run_id, step_key)
        if not paused.exists():
            paused.write_text(str(os.getpid()))
            time.sleep(pause_s)

    event = f"after-call.{client.meta.service_model.service_id.hyphenize()}.{operation}"
    client.meta.events.register(event, pause, unique_id=f"crash-point-{operation}")
    return client


StepContext.aws = _aws_with_crash_point  # type: ignore[method-assign]
