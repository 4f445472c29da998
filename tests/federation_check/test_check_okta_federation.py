"""`manage.py check_federation` on a federation the Okta flow (role by group mapping) built."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from provisioning.connections.sandbox_registration import register_sandbox_connections
from provisioning.models import RunStatus, SetupRun
from sandbox.server import Sandbox
from tests.federation_check.test_check_federation import check
from tests.flows.entra_runs import setup_sso

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "okta-sandbox-group-mapping.toml"


@pytest.fixture
def okta_sandbox(sandbox: Sandbox, settings: Any, db: None) -> Sandbox:
    settings.WIZARD_MODE = "sandbox"
    settings.SANDBOX_FILE = sandbox.state_dir / "sandbox.json"
    register_sandbox_connections(sandbox_file=settings.SANDBOX_FILE)
    return sandbox


@pytest.fixture
def okta_built(okta_sandbox: Sandbox, tmp_path: Path) -> SetupRun:
    """A federation the Okta flow built, role by group mapping, on an instance of its own."""
    alias = f"okta-{uuid.uuid4().hex[:8]}"
    plan = tmp_path / "okta.toml"
    plan.write_text(
        EXAMPLE.read_text().replace('alias = "okta-sandbox-group-mapping"', f'alias = "{alias}"')
    )
    run, output = setup_sso(plan)
    assert run.status == RunStatus.SUCCEEDED, output
    return run


def okta_args(run: SetupRun, *extra: str) -> list[str]:
    return [
        "--aws", "Sandbox AWS", "--region", run.region, "--instance", run.instance_alias,
        "--idp", "Sandbox Okta", *extra,
    ]  # fmt: skip


def test_it_checks_an_okta_federation_the_wizard_built(okta_built: SetupRun) -> None:
    run = okta_built

    code, output = check(*okta_args(run, "--json"))

    assert code == 0, output
    result = json.loads(output)
    assert [link["state"] for link in result["links"]] == ["ok"] * 6
    role_arn = run.steps.get(key="federation_role").outputs["role_arn"]
    assert result["links"][3]["fact"] == role_arn.rsplit("/", 1)[-1]
