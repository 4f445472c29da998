"""The IAM federation steps as a test flow, a federation role step that pauses right after IAM
created the role (the moment to SIGKILL its worker), and IdP metadata for the tests.

Imported by the IAM step tests and by the test worker (WIZARD_EXTRA_STEP_MODULES), so both
processes know the flows and the pausing step.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from provisioning.aws.client import calling_scope
from provisioning.context import StepContext
from provisioning.flows import Flow, register_flow
from provisioning.steps.base import register
from provisioning.steps.federation_role import FederationRoleStep
from sandbox.saml_idp import SigningCertificate, idp_metadata, issue_signing_certificate
from tests.engine_doubles import mark_paused, paused_path

IAM_STEPS = ("saml_provider", "federation_policy", "federation_role")
PAUSING_ROLE_STEP = "test_federation_role_pausing"
SSO_URL = "https://login.example.test/saml2"


@register
class PausingFederationRole(FederationRoleStep):
    """The federation role step, except that the first time IAM has created the role it writes
    "<run>-<step>.paused" holding its pid and sleeps inputs["pause_s"] seconds."""

    key = PAUSING_ROLE_STEP
    title = "Federation role that pauses after creating it"

    def apply(self, ctx: StepContext) -> dict[str, Any]:
        make_client = ctx.aws
        pause_s = float(ctx.inputs.get("pause_s", 0))

        def pause(**_: Any) -> None:
            # The worker shares the client with every run: pause only this run's call.
            scope = calling_scope()
            if scope is None or scope.run_id != ctx.run_id:
                return
            paused = paused_path(ctx.run_id, self.key)
            if pause_s and not paused.exists():
                mark_paused(paused)
                time.sleep(pause_s)

        def aws(service: str) -> Any:
            client = make_client(service)
            client.meta.events.register(
                "after-call.iam.CreateRole", pause, unique_id=f"pause-role-{ctx.run_id}"
            )
            return client

        ctx.aws = aws  # type: ignore[method-assign]
        return super().apply(ctx)


register_flow(Flow(key="test_iam_federation", idp="entra", title="IAM steps", step_keys=IAM_STEPS))
register_flow(
    Flow(
        key="test_iam_federation_pausing",
        idp="entra",
        title="IAM steps, the role step pausing",
        step_keys=(*IAM_STEPS[:2], PAUSING_ROLE_STEP),
    )
)


def certificate(days: float = 3 * 365, name: str = "CN=Test IdP signing") -> SigningCertificate:
    return issue_signing_certificate(
        name, not_after=dt.datetime.now(dt.UTC) + dt.timedelta(days=days)
    )


def metadata(entity_id: str, cert: SigningCertificate | None = None) -> str:
    return idp_metadata(entity_id=entity_id, certificate=cert or certificate(), sso_url=SSO_URL)
