"""A federation the Entra or Okta flow built, broken on purpose at one link at a time: each break
comes back as its named finding on the right link, and the check exits 1 (0 for a warning)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from provisioning.models import SetupRun
from sandbox.server import Sandbox
from tests.federation_check.test_check_federation import args_for, built, check  # noqa: F401
from tests.federation_check.test_check_okta_federation import (  # noqa: F401
    okta_args,
    okta_built,
    okta_sandbox,
)
from tests.flows.entra_runs import entra_sandbox  # noqa: F401
from tests.sandbox.aws_clients import aws_client, default_profiles
from tests.sandbox.okta_sdk import okta_client, send


def broken_by(
    change: Callable[[], Any], run: SetupRun, args: Callable[..., list[str]] = args_for
) -> tuple[int, dict[str, str], list[str]]:
    change()
    code, output = check(*args(run, "--json"))
    result = json.loads(output)
    states = {link["key"]: link["state"] for link in result["links"]}
    return code, states, [f"{f['link']}:{f['code']}" for f in result["findings"]]


def test_it_names_each_link_broken_one_at_a_time(
    built: SetupRun,  # noqa: F811
    entra_sandbox: Sandbox,  # noqa: F811
) -> None:
    tenant = entra_sandbox.apps["entra"].tenant
    app_id = built.steps.get(key="entra_app").outputs["app_id"]
    role = built.steps.get(key="federation_role").outputs
    provider_arn = built.steps.get(key="saml_provider").outputs["provider_arn"]
    iam = aws_client(entra_sandbox, "iam")
    connect = aws_client(entra_sandbox, "connect")
    trust = iam.get_role(RoleName=role["role_name"])["Role"]["AssumeRolePolicyDocument"]

    def sso_mode(mode: str) -> Callable[[], Any]:
        return lambda: tenant.patch_service_principal(
            app_id, {"preferredSingleSignOnMode": mode}, by_app_id=True
        )

    def audience(value: str) -> Callable[[], Any]:
        document = json.loads(json.dumps(trust))
        for statement in document["Statement"]:
            statement["Condition"] = {"StringEquals": {"SAML:aud": value}}
        return lambda: iam.update_assume_role_policy(
            RoleName=role["role_name"], PolicyDocument=json.dumps(document)
        )

    def extra_user() -> None:
        security, routing = default_profiles(connect, built.instance_id)
        connect.create_user(
            Username="ops-nobody",
            IdentityInfo={"FirstName": "Ops", "LastName": "Nobody"},
            PhoneConfig={"PhoneType": "SOFT_PHONE"},
            SecurityProfileIds=[security["Agent"]],
            RoutingProfileId=routing,
            InstanceId=built.instance_id,
        )

    def one_user_deleted() -> None:
        users = connect.list_users(InstanceId=built.instance_id)["UserSummaryList"]
        victim = next(user for user in users if user["Username"] != "ops-nobody")
        connect.delete_user(InstanceId=built.instance_id, UserId=victim["Id"])

    code, states, codes = broken_by(sso_mode("password"), built)
    assert (code, states["idp_app"]) == (1, "broken"), codes
    assert "idp_app:app_not_saml" in codes
    sso_mode("saml")()

    code, states, codes = broken_by(
        audience("https://ap-northeast-1.signin.aws.amazon.com/saml"), built
    )
    assert (code, states["federation_role"]) == (1, "broken"), codes
    assert codes == ["federation_role:role_trust_refuses"]
    iam.update_assume_role_policy(RoleName=role["role_name"], PolicyDocument=json.dumps(trust))

    code, states, codes = broken_by(extra_user, built)
    assert (code, states["connect_users"]) == (0, "warning"), codes
    assert codes == ["connect_users:user_nobody_signs_in_as"]

    code, states, codes = broken_by(one_user_deleted, built)
    assert (code, states["connect_users"]) == (1, "broken"), codes
    assert "connect_users:person_without_user" in codes

    code, states, codes = broken_by(
        lambda: iam.delete_saml_provider(SAMLProviderArn=provider_arn), built
    )
    assert (code, states["saml_provider"]) == (1, "broken"), codes
    assert "saml_provider:provider_missing" in codes


def test_it_names_each_okta_link_broken_one_at_a_time(
    okta_built: SetupRun,  # noqa: F811
    okta_sandbox: Sandbox,  # noqa: F811
) -> None:
    app_path = f"/api/v1/apps/{okta_built.steps.get(key='okta_app').outputs['app_id']}"
    role = okta_built.steps.get(key="federation_role").outputs
    iam = aws_client(okta_sandbox, "iam")

    def okta(scenario: Callable[[Any], Any]) -> Any:
        async def run() -> Any:
            async with okta_client(okta_sandbox.endpoints) as client:
                return await scenario(client)

        return asyncio.run(run())

    async def replaced(client: Any, change: Callable[[dict[str, Any]], None]) -> None:
        # Okta replaces the whole app on PUT: send back what was read, changed.
        app, error = await send(client, "GET", app_path)
        assert error is None, error
        change(app)
        body = {k: app[k] for k in ("name", "label", "signOnMode", "settings", "credentials")}
        _, error = await send(client, "PUT", app_path, body)
        assert error is None, error

    def relay_state(value: str) -> Callable[[], Any]:
        def change(app: dict[str, Any]) -> None:
            app["settings"]["signOn"]["defaultRelayState"] = value

        return lambda: okta(lambda client: replaced(client, change))

    def signing_key_rolled() -> None:
        # Okta's "Update SAML certificates": generate a key credential, switch the app to it;
        # the IAM provider is not updated and still holds the old certificate.
        async def roll(client: Any) -> None:
            key, error = await send(
                client, "POST", f"{app_path}/credentials/keys/generate?validityYears=2"
            )
            assert error is None, error

            def change(app: dict[str, Any]) -> None:
                app["credentials"] = {"signing": {"kid": key["kid"]}}

            await replaced(client, change)

        okta(roll)

    relay = okta(lambda client: send(client, "GET", app_path))[0]["settings"]["signOn"]
    other_instance = relay["defaultRelayState"].replace(
        okta_built.instance_id, "00000000-0000-4000-8000-000000000000"
    )

    code, states, codes = broken_by(relay_state(other_instance), okta_built, okta_args)
    assert (code, states["claims"]) == (1, "broken"), codes
    assert codes == ["claims:relay_state_other_instance"]
    relay_state(relay["defaultRelayState"])()

    code, states, codes = broken_by(
        lambda: iam.detach_role_policy(RoleName=role["role_name"], PolicyArn=role["policy_arn"]),
        okta_built,
        okta_args,
    )
    assert (code, states["federation_role"]) == (1, "broken"), codes
    assert codes == ["federation_role:no_federation_permission"]
    iam.attach_role_policy(RoleName=role["role_name"], PolicyArn=role["policy_arn"])

    code, states, codes = broken_by(signing_key_rolled, okta_built, okta_args)
    assert (code, states["saml_provider"]) == (1, "broken"), codes
    assert codes == ["saml_provider:provider_certificate_mismatch"]
