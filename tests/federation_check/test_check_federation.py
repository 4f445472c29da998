"""`manage.py check_federation` against the sandbox: a federation the Entra flow built checks
healthy; one broken by hand shows the broken link and its finding; a connection that may not read
stops with exit 2 naming the permission; the app is found without --app."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import translation

from provisioning.audit import AuditScope
from provisioning.entra.client import graph_client
from provisioning.federation_check.aws_reads import AWS_READ_ACTIONS
from provisioning.federation_check.messages import unread_text
from provisioning.models import AuditEvent, AuditKind, Cloud, Connection, RunStatus, SetupRun
from provisioning.saml import parse_idp_metadata
from sandbox import saml_idp
from sandbox.knobs import Knobs
from sandbox.server import Sandbox
from tests.flows.entra_runs import entra_sandbox, plan_file, setup_sso  # noqa: F401
from tests.sandbox.aws_clients import aws_client
from tests.sandbox.test_aws_permissions import allow, limited_user

REGION = "ap-northeast-1"


def check(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    try:
        call_command("check_federation", *args, stdout=out, stderr=out)
    except SystemExit as exit_:
        return int(exit_.code or 0), out.getvalue()
    return 0, out.getvalue()


def check_without_policy_read(entra_sandbox: Sandbox, *extra: str) -> tuple[int, str]:  # noqa: F811
    """A check through an Entra connection whose app lacks Policy.Read.All."""
    tenant = entra_sandbox.apps["entra"].tenant
    saved = set(tenant.granted_permissions)
    tenant.granted_permissions -= {"Policy.Read.All", "Policy.ReadWrite.ApplicationConfiguration"}
    try:
        return check(
            "--aws", "Sandbox AWS", "--region", REGION, "--instance", "any-instance",
            "--idp", "Sandbox Entra ID", *extra,
        )  # fmt: skip
    finally:
        tenant.granted_permissions = saved
        # The check signed in afresh without the permissions; the next Graph call of this
        # process signs in again, with them.
        graph_client(
            Connection.objects.get(name="Sandbox Entra ID"),
            audit=AuditScope(actor_label="test"),
            fresh_sign_in=True,
        )


@pytest.fixture
def built(entra_sandbox: Sandbox, sandbox_knobs: Knobs, tmp_path: Path) -> SetupRun:  # noqa: F811
    run, output = setup_sso(plan_file(tmp_path))
    assert run.status == RunStatus.SUCCEEDED, output
    return run


def args_for(run: SetupRun, *extra: str) -> list[str]:
    return [
        "--aws", "Sandbox AWS", "--region", REGION, "--instance", run.instance_alias,
        "--idp", "Sandbox Entra ID", *extra,
    ]  # fmt: skip


def test_it_checks_a_federation_the_wizard_built_healthy_and_changes_nothing(
    built: SetupRun,
) -> None:
    app_id = built.steps.get(key="entra_app").outputs["app_id"]
    before = AuditEvent.objects.count()

    code, output = check(*args_for(built, "--app", app_id))

    assert code == 0, output
    assert "Reading only" in output
    assert "Healthy" in output
    calls = AuditEvent.objects.filter(kind=AuditKind.CALL_STARTED).order_by("pk")[before:]
    writes = [
        f"{e.service} {e.operation}"
        for e in calls
        if e.cloud == "aws"
        and not e.operation.startswith(("Get", "List", "Describe", "Simulate"))
        or e.cloud != "aws"
        and not e.operation.startswith("GET ")
        and e.service != "login"
    ]
    assert writes == []


def test_it_finds_the_app_without_being_told_and_prints_json(built: SetupRun) -> None:
    app_id = built.steps.get(key="entra_app").outputs["app_id"]

    code, output = check(*args_for(built, "--json"))

    assert code == 0, output
    result = json.loads(output)
    assert result["app_id"] == app_id
    assert {"app_id": app_id, "name": built.steps.get(key="entra_app").outputs["display_name"]} in (
        result["apps_found"]
    )
    assert [link["state"] for link in result["links"]] == ["ok"] * 6
    assert result["exit_code"] == 0


def test_it_names_the_relay_state_edited_in_the_console(
    built: SetupRun,
    entra_sandbox: Sandbox,  # noqa: F811
) -> None:
    app_id = built.steps.get(key="entra_app").outputs["app_id"]
    other = (
        "https://ap-northeast-1.console.aws.amazon.com/connect/federate/"
        + "0" * 8
        + ("-0000-4000-8000-000000000000")
    )
    entra_sandbox.apps["entra"].tenant.patch_service_principal(
        app_id, {"samlSingleSignOnSettings": {"relayState": other}}, by_app_id=True
    )

    code, output = check(*args_for(built, "--app", app_id, "--json"))

    assert code == 1, output
    result = json.loads(output)
    states = {link["key"]: link["state"] for link in result["links"]}
    assert states["claims"] == "broken", states
    assert [f["code"] for f in result["findings"] if f["severity"] == "broken"] == [
        "relay_state_other_instance"
    ]
    code, text = check(*args_for(built, "--app", app_id))
    assert code == 1
    assert "The relay state leads to instance 00000000-0000-4000-8000-000000000000" in text


def test_it_names_the_federation_policy_detached_from_the_role(
    built: SetupRun,
    entra_sandbox: Sandbox,  # noqa: F811
) -> None:
    role = built.steps.get(key="federation_role").outputs
    policy_arn = built.steps.get(key="federation_policy").outputs["policy_arn"]
    iam = aws_client(entra_sandbox, "iam")
    iam.detach_role_policy(RoleName=role["role_name"], PolicyArn=policy_arn)

    code, output = check(*args_for(built, "--json"))

    assert code == 1, output
    result = json.loads(output)
    broken = [f for f in result["findings"] if f["severity"] == "broken"]
    assert [(f["link"], f["code"]) for f in broken] == [
        ("federation_role", "no_federation_permission")
    ]


def test_it_names_a_saml_provider_holding_another_certificate(
    built: SetupRun,
    entra_sandbox: Sandbox,  # noqa: F811
) -> None:
    provider_arn = built.steps.get(key="saml_provider").outputs["provider_arn"]
    iam = aws_client(entra_sandbox, "iam")
    held = iam.get_saml_provider(SAMLProviderArn=provider_arn)["SAMLMetadataDocument"]
    entity_id = parse_idp_metadata(held).entity_id
    replaced = saml_idp.idp_metadata(
        entity_id=entity_id,
        certificate=saml_idp.issue_signing_certificate("CN=Someone else"),
        sso_url="https://idp.example/sso",
    )
    iam.update_saml_provider(SAMLProviderArn=provider_arn, SAMLMetadataDocument=replaced)

    code, output = check(*args_for(built))

    assert code == 1, output
    assert "holds another certificate than the IdP signs with now" in output
    assert "Broken" in output.splitlines()[3] and "IAM SAML provider" in output.splitlines()[3]


def test_it_stops_with_exit_2_naming_the_permission_it_lacks(
    built: SetupRun,
    entra_sandbox: Sandbox,  # noqa: F811
) -> None:
    iam = aws_client(entra_sandbox, "iam")
    allowed = [action for action in AWS_READ_ACTIONS if action != "iam:ListRoles"]
    _arn, key = limited_user(iam, allow(*allowed, "iam:SimulatePrincipalPolicy"))
    limited = Connection(cloud=Cloud.AWS, name="Reads all but roles", is_sandbox=True)
    limited.config = {"method": "access_key"}
    limited.set_secrets(
        {"access_key_id": key["AccessKeyId"], "secret_access_key": key["SecretAccessKey"]}
    )
    limited.save()

    code, output = check(
        "--aws", limited.name, "--region", REGION, "--instance", built.instance_alias,
        "--idp", "Sandbox Entra ID",
    )  # fmt: skip

    assert code == 2, output
    assert "missing permission iam:ListRoles" in output


def test_it_stops_with_exit_2_naming_the_graph_permission_it_lacks(
    entra_sandbox: Sandbox,  # noqa: F811
) -> None:
    code, output = check_without_policy_read(entra_sandbox)

    assert code == 2, output
    assert "missing permission Policy.Read.All." in output
    assert "Not read" in output


def test_it_stores_what_it_could_not_read_as_message_ids_read_in_the_readers_language(
    entra_sandbox: Sandbox,  # noqa: F811
) -> None:
    code, output = check_without_policy_read(entra_sandbox, "--json")

    assert code == 2, output
    unread = json.loads(output)["unreadable"][0]
    assert unread["message"] == {
        "msgid": "%(connection)s lacks Microsoft Graph %(permission)s",
        "params": {"connection": "Sandbox Entra ID", "permission": "Policy.Read.All"},
    }
    with translation.override("ja"):
        text = unread_text(unread)
    assert text["message"] == (
        "Sandbox Entra ID には Microsoft Graph の Policy.Read.All がありません"
    )
