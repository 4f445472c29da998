"""`manage.py inspect_saml_response` on responses minted by the sandbox IdP: good, and broken at
each link, read against the sandbox's IAM and Connect through the sandbox AWS connection."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from django.core.management import call_command
from django.utils import translation

from provisioning.connections.sandbox_registration import register_sandbox_connections
from provisioning.models import Cloud, Connection
from provisioning.services.sign_in_inspection import LINKS
from sandbox.server import Sandbox
from tests.web.sign_in_cases import (
    CASES,
    InspectedFederation,
    build_federation,
    minted_response,
)


@pytest.fixture(scope="module")
def federation(sandbox: Sandbox) -> InspectedFederation:
    return build_federation(sandbox)


@pytest.fixture
def aws_connection(sandbox: Sandbox, settings: Any, db: None) -> Connection:
    settings.WIZARD_MODE = "sandbox"
    settings.SANDBOX_FILE = sandbox.state_dir / "sandbox.json"
    registered = register_sandbox_connections(sandbox_file=settings.SANDBOX_FILE)
    return next(connection for connection in registered if connection.cloud == Cloud.AWS)


def _inspect(capsys: Any, *args: str) -> tuple[int, str, str]:
    try:
        call_command("inspect_saml_response", *args)
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    else:
        code = 0
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("case", list(CASES))
def test_it_names_the_broken_link_of_each_case_through_the_aws_connection(
    case, federation, aws_connection, tmp_path: Path, capsys
) -> None:
    posted = tmp_path / "response.txt"
    posted.write_text(
        urlencode(
            {
                "SAMLResponse": minted_response(federation, case),
                "RelayState": federation.relay_state,
            }
        )
    )

    code, out, _err = _inspect(
        capsys, str(posted), "--aws", aws_connection.name, "--region", federation.region
    )

    lines = out.splitlines()
    assert len(lines) == 16, out + _err  # 15 checks and the verdict
    if CASES[case]:
        assert code == 1, out
        assert lines[-1].startswith(f"Broken link: {LINKS[CASES[case]].name}."), out
    else:
        assert code == 0, out
        assert lines[-1] == "No broken link: AWS would accept this sign-in.", out
        assert all(line.startswith("passed") for line in lines[:-1]), out


def test_it_checks_against_pasted_metadata_and_says_in_japanese_what_it_could_not_check(
    federation, db, tmp_path: Path, capsys
) -> None:
    posted = tmp_path / "response.b64"
    posted.write_text(minted_response(federation, "wrong_certificate"))
    metadata = tmp_path / "metadata.xml"
    metadata.write_text(federation.metadata)

    with translation.override("ja"):
        code, out, _err = _inspect(capsys, str(posted), "--metadata", str(metadata))
        expected = f"壊れている最初の箇所: {LINKS['signature'].name}。"

    assert code == 1
    assert out.splitlines()[-1].startswith(expected), out
    assert "確認していません" in out


def test_it_exits_2_for_a_file_it_cannot_read(db, tmp_path: Path, capsys) -> None:
    posted = tmp_path / "not-saml.txt"
    posted.write_text("hello, this is not a SAML response")

    code, _out, err = _inspect(capsys, str(posted))

    assert code == 2
    assert "this is not a SAML response" in err
