"""sign_in_test's live branch on an Okta setup, against the sandbox's endpoints: it downloads the
app's metadata from Okta again and names the IAM provider when IAM trusts another certificate."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from django.core.management import call_command

from provisioning.models import RunStatus, SetupRun
from provisioning.steps.sign_in_test import SignInTest
from sandbox.server import Sandbox
from tests.flows.entra_runs import entra_sandbox  # noqa: F401 - a fixture
from tests.flows.sign_in_live import live_context, live_failure, provider_document, replaced
from tests.sandbox.aws_clients import aws_client
from tests.steps.iam_flow import metadata

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "okta-sandbox-group-mapping.toml"


def test_it_compares_okta_current_certificate_with_iams_in_live_mode(
    entra_sandbox: Sandbox,  # noqa: F811 - also registers the sandbox's Okta connection
    tmp_path: Path,
) -> None:
    plan = tmp_path / "okta.toml"
    alias = f"okta-live-{uuid.uuid4().hex[:8]}"
    plan.write_text(
        "\n".join(
            f'alias = "{alias}"' if line.startswith("alias = ") else line
            for line in EXAMPLE.read_text().splitlines()
        )
    )
    call_command("setup_sso", str(plan))
    run = SetupRun.objects.get(instance_alias=alias)
    assert run.status == RunStatus.SUCCEEDED
    checked = SignInTest().apply(live_context(run, "okta_app"))
    assert all(result["ok"] for result in checked.results), checked.results
    provider_arn = run.steps.get(key="saml_provider").outputs["provider_arn"]
    stale = metadata("https://idp.example.test/okta-stale-copy")
    iam: Any = aws_client(entra_sandbox, "iam")

    # IAM and the copy the run kept agree; the app's metadata as Okta serves it now does not.
    with replaced(*provider_document(iam, provider_arn), stale):
        failure = live_failure(run, "okta_app", okta_app={"metadata_xml": stale})

    assert failure.code == "sign_in_iam_provider"
    assert failure.hint
