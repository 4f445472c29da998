"""No SDK exception reaches a step: AWS calls that fail inside the IAM steps (a call, a page of a
paginator) come out as the project's errors, a step's "absent" answer is the project's NotFound,
and no step or user-change module can go back to catching botocore's errors itself."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import BotoCoreError, ClientError

from provisioning.errors import ProvisioningError, Unavailable
from provisioning.models import Connection
from provisioning.steps.base import STEPS
from sandbox.knobs import Knobs
from tests.steps import aws_step_runs
from tests.steps.aws_step_runs import unique
from tests.steps.iam_flow import metadata
from tests.steps.iam_runs import apply_all, iam_run, step_context

# The IAM step tests' fixtures (tests/steps/aws_step_runs.py).
aws_connection = aws_step_runs.aws_connection
instance = aws_step_runs.instance
connect = aws_step_runs.connect

ROOT = Path(__file__).resolve().parents[2]
# Where steps and the user-change engine live: they reach AWS only through aws_client().
NO_SDK_ERRORS = [ROOT / "provisioning" / "steps", ROOT / "provisioning" / "user_changes"]
# botocore imports there that make no call and so can't fail with an SDK error: the service
# model (an alias rule) and the endpoint data (a region's partition).
ALLOWED_BOTOCORE = {
    ("connect_instance.py", "botocore.session"),
    ("preflight.py", "botocore.exceptions.UnknownRegionError"),
}


@pytest.mark.parametrize(
    ("key", "api"),
    [
        ("saml_provider", "iam:ListSAMLProviders"),
        ("federation_policy", "iam:GetPolicy"),
        ("federation_role", "iam:GetRole"),
        # Read through a paginator: each page is its own call.
        ("federation_role", "iam:ListAttachedRolePolicies"),
    ],
)
def test_it_raises_the_projects_error_when_a_call_fails_inside_a_step(
    aws_connection: Connection, instance: dict[str, Any], sandbox_knobs: Knobs, key: str, api: str
) -> None:
    run = iam_run(aws_connection, instance, metadata_xml=metadata(unique("https://idp.test/e")))
    outputs = apply_all(run)
    sandbox_knobs.error_rates[api] = 1.0

    with pytest.raises(ProvisioningError) as raised:
        STEPS[key]().plan(step_context(run, key, outputs))

    assert isinstance(raised.value, Unavailable)
    assert api.split(":")[1] in raised.value.message
    # Mapped where the call was made: botocore's exception is only the cause.
    assert isinstance(raised.value.__cause__, ClientError)
    assert not isinstance(raised.value, BotoCoreError)


def test_it_treats_the_projects_not_found_as_absent_when_rolling_back(
    aws_connection: Connection, instance: dict[str, Any]
) -> None:
    run = iam_run(aws_connection, instance, metadata_xml=metadata(unique("https://idp.test/a")))
    outputs = apply_all(run)
    step = STEPS["federation_role"]()
    step.rollback(step_context(run, "federation_role", outputs))

    # The role, its attachment and the instance tag are gone: each is looked up and found absent.
    step.rollback(step_context(run, "federation_role", outputs))

    plan = step.plan(step_context(run, "federation_role", outputs))
    assert [change.action for change in plan.changes][0] == "create"


def _modules() -> list[Path]:
    return sorted(path for folder in NO_SDK_ERRORS for path in folder.rglob("*.py"))


def _sdk_error_uses(path: Path) -> list[str]:
    """What in `path` handles botocore's errors itself instead of the project's."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        imported: list[str] = []
        if isinstance(node, ast.Import):
            imported = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            imported = [f"{node.module}.{alias.name}" for alias in node.names]
        for name in imported:
            if name.startswith(("botocore", "boto3.exceptions")) and (
                (path.name, name) not in ALLOWED_BOTOCORE
            ):
                found.append(f"{path.name}:{node.lineno} imports {name}")
        if isinstance(node, ast.Name | ast.Attribute):
            name = node.id if isinstance(node, ast.Name) else node.attr
            if name in {"aws_errors", "ClientError", "BotoCoreError", "map_aws_error"}:
                found.append(f"{path.name}:{node.lineno} uses {name}")
        # client.exceptions.NoSuchEntityException: botocore's modelled error classes.
        if isinstance(node, ast.Attribute) and node.attr == "exceptions":
            found.append(f"{path.name}:{node.lineno} uses a client's .exceptions")
    return found


def test_no_step_handles_botocore_errors_itself() -> None:
    modules = _modules()

    found = [use for path in modules for use in _sdk_error_uses(path)]

    assert len(modules) > 20
    assert found == []


def test_the_check_finds_each_way_back_to_botocore_errors(tmp_path: Path) -> None:
    module = tmp_path / "some_step.py"
    module.write_text(
        "from botocore.exceptions import ClientError\n"
        "from provisioning.aws.client import aws_errors\n"
        "def read(iam):\n"
        "    with aws_errors():\n"
        "        try:\n"
        "            iam.get_role(RoleName='r')\n"
        "        except iam.exceptions.NoSuchEntityException:\n"
        "            return None\n"
    )

    found = _sdk_error_uses(module)

    assert "some_step.py:1 imports botocore.exceptions.ClientError" in found
    assert "some_step.py:4 uses aws_errors" in found
    assert "some_step.py:7 uses a client's .exceptions" in found
