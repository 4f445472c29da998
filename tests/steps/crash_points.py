"""Crash points for any step, loaded by the test worker and by setup_sso subprocesses, so a test
can SIGKILL the process at the worst moment: the cloud changed, the run has not recorded it yet.
Each pauses the first time only, writing "<run>-<step>.paused" with its pid.

- AWS: with the run input `crash_after = {step_key: OperationName}`, right after that botocore
  call answered. It wraps StepContext.aws, the boundary where steps get their clients.
- Graph and Okta: with the run input `crash_after_call = {step_key: "<cloud> <METHOD> <path
  pattern>"}` (fnmatch, e.g. "entra POST /applicationTemplates/*/instantiate"), right after a call
  that matches answered successfully. It wraps `finish_call`, the audit choke point both clients
  call once a response is in (provisioning/audit.py), so every Graph and Okta call passes it.

Nothing else changes.
"""

from __future__ import annotations

import time
from fnmatch import fnmatchcase
from typing import Any

from provisioning import audit
from provisioning.aws.client import calling_scope
from provisioning.context import StepContext
from provisioning.entra import client as entra_client
from provisioning.okta import client as okta_client
from tests.engine_doubles import mark_paused, paused_path

# Long enough for the test to see the pause and kill the process.
DEFAULT_PAUSE_S = 60.0
_unpatched_aws = StepContext.aws
_unpatched_finish_call = audit.finish_call


def _pause_once(run_id: Any, step_key: str, pause_s: float) -> None:
    paused = paused_path(run_id, step_key)
    if not paused.exists():
        mark_paused(paused)
        time.sleep(pause_s)


def _aws_with_crash_point(self: StepContext, service: str) -> Any:
    client = _unpatched_aws(self, service)
    operation = (self.inputs.get("crash_after") or {}).get(self.step_key)
    if not operation:
        return client
    pause_s = float(self.inputs.get("crash_pause_s", DEFAULT_PAUSE_S))
    run_id, step_key = self.run_id, self.step_key

    def pause(**_: Any) -> None:
        # The worker shares the client with every run and step: pause only this one's call.
        scope = calling_scope()
        if scope is not None and (scope.run_id, scope.step_key) == (run_id, step_key):
            _pause_once(run_id, step_key, pause_s)

    event = f"after-call.{client.meta.service_model.service_id.hyphenize()}.{operation}"
    client.meta.events.register(
        event, pause, unique_id=f"crash-point-{run_id}-{step_key}-{operation}"
    )
    return client


def _finish_call_with_crash_point(record: audit.CallRecord, **kwargs: Any) -> None:
    _unpatched_finish_call(record, **kwargs)
    scope = record.scope
    if kwargs.get("outcome") != "ok" or scope.run_id is None or not scope.step_key:
        return
    from provisioning.models import SetupRun

    inputs = SetupRun.objects.filter(pk=scope.run_id).values_list("inputs", flat=True).first()
    pattern = ((inputs or {}).get("crash_after_call") or {}).get(scope.step_key)
    if pattern and fnmatchcase(f"{record.cloud} {record.operation}", pattern):
        pause_s = float((inputs or {}).get("crash_pause_s", DEFAULT_PAUSE_S))
        _pause_once(scope.run_id, scope.step_key, pause_s)


StepContext.aws = _aws_with_crash_point  # type: ignore[method-assign]
entra_client.finish_call = _finish_call_with_crash_point  # type: ignore[assignment]
okta_client.finish_call = _finish_call_with_crash_point  # type: ignore[assignment]
