"""A good Entra setup broken on purpose in one place at a time: sign_in_test names that link, in
sandbox mode (a real sign-in) and in live mode (each link read from the clouds)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from provisioning.errors import PermanentError
from provisioning.models import RunStatus, SetupRun
from provisioning.steps.entra_claims import policy_definition
from provisioning.steps.federation_role import trust_policy
from provisioning.steps.sign_in_test import SignInTest
from sandbox.server import Sandbox
from tests.flows.entra_runs import entra_sandbox, plan_file, setup_sso, step_context  # noqa: F401
from tests.flows.sign_in_live import live_context, live_failure, provider_document, replaced
from tests.sandbox.aws_clients import aws_client
from tests.steps.iam_flow import metadata

STALE_ENTITY_ID = "https://idp.example.test/stale-copy"


def _sign_in_failure(run: SetupRun) -> PermanentError:
    with pytest.raises(PermanentError) as failed:
        SignInTest().apply(step_context(run, "sign_in_test"))
    return failed.value


@contextmanager
def _changed(item: dict[str, Any], key: str, value: Any) -> Iterator[None]:
    saved = item.get(key)
    item[key] = value
    try:
        yield
    finally:
        item[key] = saved


def _outputs(run: SetupRun, key: str) -> dict[str, Any]:
    return run.steps.get(key=key).outputs


def test_it_names_the_failing_link_of_each_broken_setup(
    entra_sandbox: Sandbox,  # noqa: F811
    tmp_path: Path,
) -> None:
    run, output = setup_sso(plan_file(tmp_path))
    assert run.status == RunStatus.SUCCEEDED, output
    SignInTest().apply(step_context(run, "sign_in_test"))  # the unbroken setup signs in
    tenant = entra_sandbox.apps["entra"].tenant
    app = _outputs(run, "entra_app")
    claims = _outputs(run, "entra_claims")
    person = _outputs(run, "entra_assignments")["people"][0]
    user = tenant.find_user(person["login"])
    service_principal = tenant.service_principals[app["service_principal_id"]]
    policy = tenant.claims_mapping_policies[claims["policy_id"]]
    role = _outputs(run, "federation_role")
    iam = aws_client(entra_sandbox, "iam")
    connect = aws_client(entra_sandbox, "connect")

    breakages: dict[str, Callable[[], Any]] = {
        # RoleSessionName from mail, where the Connect username is the UPN.
        "claims": lambda: _both(
            _changed(user, "mail", "someone.else@contoso-sandbox.onmicrosoft.com"),
            _changed(
                policy,
                "definition",
                [policy_definition("mail", claims["session_duration_s"])],
            ),
        ),
        "relay_state": lambda: _changed(service_principal, "samlSingleSignOnSettings", None),
        "policy": lambda: _detached(iam, role["role_name"], role["policy_arn"]),
        "connect_user": lambda: _user_deleted(connect, run.instance_id, person["username"]),
    }
    for link, breakage in breakages.items():
        with breakage():
            failure = _sign_in_failure(run)
        assert failure.code == f"sign_in_{link}", (link, failure.message)
        assert failure.hint, link
    # connect_user goes last: the deleted user stays deleted.


@contextmanager
def _both(first: Any, second: Any) -> Iterator[None]:
    with first, second:
        yield


@contextmanager
def _detached(iam: Any, role_name: str, policy_arn: str) -> Iterator[None]:
    iam.detach_role_policy(RoleName=role_name, PolicyArn=policy_arn)
    try:
        yield
    finally:
        iam.attach_role_policy(RoleName=role_name, PolicyArn=policy_arn)


@contextmanager
def _user_deleted(connect: Any, instance_id: str, username: str) -> Iterator[None]:
    (summary,) = [
        user
        for page in connect.get_paginator("list_users").paginate(InstanceId=instance_id)
        for user in page["UserSummaryList"]
        if user["Username"] == username
    ]
    connect.delete_user(InstanceId=instance_id, UserId=summary["Id"])
    yield


def test_it_checks_each_link_from_the_clouds_in_live_mode(
    entra_sandbox: Sandbox,  # noqa: F811
    tmp_path: Path,
) -> None:
    run, output = setup_sso(plan_file(tmp_path))
    assert run.status == RunStatus.SUCCEEDED, output
    checked = SignInTest().apply(live_context(run, "entra_app"))
    assert {r["check"]: r["ok"] for r in checked.results}.items() >= {
        "iam_provider": True,
        "role_trust": True,
        "policy": True,
        "connect_user": True,
    }.items()
    role = _outputs(run, "federation_role")
    provider_arn = _outputs(run, "saml_provider")["provider_arn"]
    person = _outputs(run, "entra_assignments")["people"][0]
    iam = aws_client(entra_sandbox, "iam")
    connect = aws_client(entra_sandbox, "connect")
    # IAM made from a copy that is not what the IdP signs with now: the copy agrees with IAM, the
    # IdP's current metadata does not.
    stale = metadata(STALE_ENTITY_ID)
    # The wizard's own trust policy, but for an audience that is not AWS's sign-in.
    untrusting = trust_policy(provider_arn, run.region)
    untrusting["Statement"][0]["Condition"] = {
        "StringEquals": {"SAML:aud": "https://example.test/saml"}
    }
    role_trust = (
        lambda: iam.get_role(RoleName=role["role_name"])["Role"]["AssumeRolePolicyDocument"],
        lambda document: iam.update_assume_role_policy(
            RoleName=role["role_name"], PolicyDocument=json.dumps(document)
        ),
    )

    breakages: dict[str, tuple[Callable[[], Any], dict[str, dict[str, Any]]]] = {
        "iam_provider": (
            lambda: replaced(*provider_document(iam, provider_arn), stale),
            {"entra_app": {"metadata_xml": stale}},
        ),
        "role_trust": (lambda: replaced(*role_trust, untrusting), {}),
        "policy": (lambda: _detached(iam, role["role_name"], role["policy_arn"]), {}),
        "connect_user": (
            lambda: _user_deleted(connect, run.instance_id, person["username"]),
            {},
        ),
    }
    for link, (breakage, outputs) in breakages.items():
        with breakage():
            failure = live_failure(run, "entra_app", **outputs)
        assert failure.code == f"sign_in_{link}", (link, failure.message)
        assert failure.hint, link
    # connect_user goes last: the deleted user stays deleted.
