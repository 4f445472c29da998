"""`check_federation` on an Okta federation built by hand through the okta SDK, step by step as
seed 002 does it (the "AWS Account Federation" app, its IdP metadata saved into an IAM provider,
a policy on the instance's user/${aws:userid}, a SAML role, an IAM user whose key lists the roles
on the Provisioning tab, people assigned with Role and SAML User Roles, Connect users typed by
hand), with the mistakes such federations carry: no default relay state, and a Connect user
typed in another case than the Okta username Okta sends as RoleSessionName."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
from django.utils import translation
from okta.models import AppUserAssignRequest

from provisioning.federation_check.messages import finding_text
from provisioning.federation_check.result import Finding
from sandbox.server import OKTA_DOMAIN, Sandbox
from tests.contract.wire_check import check_exchanges
from tests.federation_check.hand_made import (
    assert_healthy,
    check_args,
    check_json,
    findings,
    link_states,
    user_arn_policy,
)
from tests.federation_check.test_check_federation import REGION, check
from tests.federation_check.test_check_okta_federation import okta_sandbox  # noqa: F401
from tests.sandbox.aws_clients import (
    active_instance,
    aws_client,
    default_profiles,
    saml_trust_policy,
)
from tests.sandbox.okta_sdk import okta_client, send
from tests.sandbox.test_okta_sign_on import ROLE_LISTING_POLICY

AWS_SIGN_IN_URL = "https://signin.aws.amazon.com/saml"
KEIKO = f"Keiko.McDonald@{OKTA_DOMAIN}"
MADONNA = f"madonna@{OKTA_DOMAIN}"


def _okta(sandbox: Sandbox, scenario: Any) -> Any:
    async def run() -> Any:
        async with okta_client(sandbox.endpoints) as client:
            return await scenario(client)

    return asyncio.run(run())


def _sent(reply: tuple[Any, Any]) -> Any:
    body, error = reply
    assert error is None, error
    return body


def _metadata(sandbox: Sandbox, app: dict[str, Any]) -> str:
    """The app's "IDプロバイダーのメタデータ", as saved for the IAM provider."""

    async def metadata(client: Any) -> str:
        document, _, error = await client.preview_sam_lmetadata_for_application(
            app["id"], app["credentials"]["signing"]["kid"]
        )
        assert error is None, error
        return str(document)

    return _okta(sandbox, metadata)


def _aws(sandbox: Sandbox, alias: str) -> tuple[Any, Any, dict[str, Any], str]:
    """The Connect and IAM clients, a new active instance and the account's id."""
    connect = aws_client(sandbox, "connect")
    account = aws_client(sandbox, "sts").get_caller_identity()["Account"]
    return connect, aws_client(sandbox, "iam"), active_instance(connect, alias), account


def _connect_users(connect: Any, instance_id: str, *usernames: str) -> None:
    """The Connect users typed by hand, as agents."""
    security, routing = default_profiles(connect, instance_id)
    for username in usernames:
        connect.create_user(
            Username=username,
            IdentityInfo={"FirstName": username.split("@")[0], "LastName": "-"},
            PhoneConfig={"PhoneType": "SOFT_PHONE"},
            SecurityProfileIds=[security["Agent"]],
            RoutingProfileId=routing,
            InstanceId=instance_id,
        )


def build_by_hand(sandbox: Sandbox) -> dict[str, Any]:
    """Seed 002 from top to bottom, but the default relay state left empty; the Connect user for
    Keiko is typed in lower case."""
    connect, iam, instance, account = _aws(sandbox, "okta-handmade")
    suffix = uuid.uuid4().hex[:8]
    app_body = {
        "name": "amazon_aws",
        "label": f"Amazon Connect SAML {suffix}",
        "signOnMode": "SAML_2_0",
        "settings": {
            "app": {"loginURL": "https://console.aws.amazon.com/"},
            "signOn": {"defaultRelayState": ""},
        },
    }
    app = _okta(sandbox, lambda client: send(client, "POST", "/api/v1/apps", app_body))
    app = _sent(app)

    # "IDプロバイダーのメタデータ" saved and uploaded as the IAM provider.
    provider_arn = iam.create_saml_provider(
        Name=f"okta-{suffix}", SAMLMetadataDocument=_metadata(sandbox, app)
    )["SAMLProviderArn"]
    policy_arn = iam.create_policy(
        PolicyName=f"AmazonConnectOktaFederation-{suffix}",
        PolicyDocument=user_arn_policy(account, instance["Id"]),
    )["Policy"]["Arn"]
    role_name = f"AmazonConnectOkta-{suffix}"
    trust = saml_trust_policy(provider_arn, AWS_SIGN_IN_URL)
    role = iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=trust)["Role"]
    iam.attach_role_policy(RoleName=role_name, PolicyArn=policy_arn)
    # The IAM user whose key lists the roles for Okta ("okta 用ロール取得ポリシー").
    reader = f"okta-role-reader-{suffix}"
    iam.create_user(UserName=reader)
    iam.put_user_policy(
        UserName=reader, PolicyName="OktaListRoles", PolicyDocument=ROLE_LISTING_POLICY
    )
    key = iam.create_access_key(UserName=reader)["AccessKey"]
    # "高度なサインオン設定": the provider's ARN on the app.
    settings = {**app["settings"], "app": {**app["settings"]["app"]}}
    settings["app"]["identityProviderArn"] = provider_arn
    replaced = {k: app[k] for k in ("name", "label", "signOnMode")} | {"settings": settings}
    _sent(_okta(sandbox, lambda client: send(client, "PUT", f"/api/v1/apps/{app['id']}", replaced)))
    # The Provisioning tab has no public API: the sandbox's stand-in for the admin typing the
    # key and ticking "Update User Attributes" (sandbox/BEHAVIOURS.md).
    provisioned = httpx.post(
        f"{sandbox.endpoints['okta_org_url']}/sandbox/apps/{app['id']}/provisioning",
        json={
            "accessKeyId": key["AccessKeyId"],
            "secretAccessKey": key["SecretAccessKey"],
            "updateUserAttributes": True,
        },
        verify=sandbox.endpoints["ca_bundle"],
    )
    assert provisioned.status_code == 200, provisioned.text

    async def assign(client: Any) -> None:
        for login in (KEIKO, MADONNA):
            user, _, error = await client.get_user(login)
            assert error is None, error
            _, _, error = await client.assign_user_to_application(
                app["id"],
                AppUserAssignRequest(
                    id=user.id,
                    scope="USER",
                    profile={"role": role_name, "samlRoles": [role_name]},
                ),
            )
            assert error is None, error

    _okta(sandbox, assign)
    _connect_users(connect, instance["Id"], KEIKO.lower(), MADONNA)
    return {
        "app_id": app["id"],
        "alias": instance["InstanceAlias"],
        "instance_id": instance["Id"],
        "role_arn": role["Arn"],
        "provider_arn": provider_arn,
    }


def test_it_names_each_mistake_of_an_okta_federation_made_by_hand(
    okta_sandbox: Sandbox,  # noqa: F811
) -> None:
    built = build_by_hand(okta_sandbox)

    code, result = check_json("okta", built)

    assert code == 1, result
    assert link_states(result) == {
        "idp_app": "ok",
        "claims": "broken",
        "saml_provider": "ok",
        "federation_role": "ok",
        "connect_instance": "ok",
        "connect_users": "broken",
    }, result["findings"]
    found = findings(result)
    assert set(found) == {
        ("claims", "relay_state_missing"),
        ("connect_users", "username_case_differs"),
        ("connect_users", "user_nobody_signs_in_as"),
    }, result["findings"]
    assert found[("connect_users", "username_case_differs")]["names"] == KEIKO
    assert found[("connect_users", "user_nobody_signs_in_as")]["names"] == KEIKO.lower()
    assert found[("claims", "relay_state_missing")]["wanted"].endswith(
        f"/connect/federate/{built['instance_id']}"
    )

    code, text = check(*check_args("okta", built))

    assert code == 1
    assert "The app has no relay state." in text


def test_it_checks_the_same_federation_healthy_once_its_mistakes_are_fixed(
    okta_sandbox: Sandbox,  # noqa: F811
) -> None:
    relay = "https://{region}.console.aws.amazon.com/connect/federate/{instance}"
    built = build_by_hand(okta_sandbox)
    connect = aws_client(okta_sandbox, "connect")
    users = connect.list_users(InstanceId=built["instance_id"])["UserSummaryList"]
    keiko = next(user for user in users if user["Username"] == KEIKO.lower())
    connect.delete_user(InstanceId=built["instance_id"], UserId=keiko["Id"])
    security, routing = default_profiles(connect, built["instance_id"])
    connect.create_user(
        Username=KEIKO,
        IdentityInfo={"FirstName": "Keiko", "LastName": "McDonald"},
        PhoneConfig={"PhoneType": "SOFT_PHONE"},
        SecurityProfileIds=[security["Agent"]],
        RoutingProfileId=routing,
        InstanceId=built["instance_id"],
    )

    async def fix_relay_state(client: Any) -> None:
        app = _sent(await send(client, "GET", f"/api/v1/apps/{built['app_id']}"))
        app["settings"]["signOn"]["defaultRelayState"] = relay.format(
            region=REGION, instance=built["instance_id"]
        )
        body = {k: app[k] for k in ("name", "label", "signOnMode", "settings")}
        _sent(await send(client, "PUT", f"/api/v1/apps/{built['app_id']}", body))

    _okta(okta_sandbox, fix_relay_state)

    assert_healthy(*check_json("okta", built, "--app", built["app_id"]))


def build_custom_saml_app(
    sandbox: Sandbox,
    *,
    role_arn: str = "",
    relay_state: bool = True,
    session_name: str = "user.login",
    sign_on: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The other way Okta federations for Connect are made by hand: "Create App Integration" >
    SAML 2.0, with the AWS sign-in URL as ACS URL and audience, the relay state set, and the Role
    attribute statement typed as a quoted constant "<role ARN>,<provider ARN>". `role_arn`
    types another role than the one made (a typo in the statement); without `relay_state` the
    default relay state is left empty; `session_name` is the RoleSessionName statement's
    expression; `sign_on` overrides signOn settings (a mistyped ACS URL or audience)."""
    connect, iam, instance, account = _aws(sandbox, "okta-custom")
    suffix = uuid.uuid4().hex[:8]
    role_name = f"AmazonConnectOktaCustom-{suffix}"
    provider_name = f"okta-custom-{suffix}"
    provider_arn = f"arn:aws:iam::{account}:saml-provider/{provider_name}"
    typed_role = role_arn or f"arn:aws:iam::{account}:role/{role_name}"
    app_body = {
        "label": f"Amazon Connect custom {suffix}",
        "signOnMode": "SAML_2_0",
        "settings": {
            "signOn": {
                "ssoAcsUrl": AWS_SIGN_IN_URL,
                "audience": "urn:amazon:webservices",
                "defaultRelayState": f"https://{REGION}.console.aws.amazon.com/connect/federate/"
                f"{instance['Id']}"
                if relay_state
                else "",
                "attributeStatements": [
                    {
                        "type": "EXPRESSION",
                        "name": "https://aws.amazon.com/SAML/Attributes/Role",
                        "values": [f'"{typed_role},{provider_arn}"'],
                    },
                    {
                        "type": "EXPRESSION",
                        "name": "https://aws.amazon.com/SAML/Attributes/RoleSessionName",
                        "values": [session_name],
                    },
                ],
                **(sign_on or {}),
            }
        },
    }
    app = _sent(_okta(sandbox, lambda client: send(client, "POST", "/api/v1/apps", app_body)))
    assert app["name"] != "amazon_aws"

    iam.create_saml_provider(Name=provider_name, SAMLMetadataDocument=_metadata(sandbox, app))
    policy_arn = iam.create_policy(
        PolicyName=f"AmazonConnectOktaCustom-{suffix}",
        PolicyDocument=user_arn_policy(account, instance["Id"]),
    )["Policy"]["Arn"]
    trust = saml_trust_policy(provider_arn, AWS_SIGN_IN_URL)
    iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=trust)
    iam.attach_role_policy(RoleName=role_name, PolicyArn=policy_arn)

    async def assign(client: Any) -> None:
        for login in (KEIKO, MADONNA):
            user, _, error = await client.get_user(login)
            assert error is None, error
            _, _, error = await client.assign_user_to_application(
                app["id"], AppUserAssignRequest(id=user.id, scope="USER")
            )
            assert error is None, error

    _okta(sandbox, assign)
    _connect_users(connect, instance["Id"], KEIKO, MADONNA)
    return {"app_id": app["id"], "alias": instance["InstanceAlias"], "typed_role": typed_role}


def test_it_checks_a_custom_saml_app_with_a_fixed_text_role_statement_healthy(
    okta_sandbox: Sandbox,  # noqa: F811
) -> None:
    built = build_custom_saml_app(okta_sandbox)

    links = assert_healthy(*check_json("okta", built))
    assert links["federation_role"]["fact"] == built["typed_role"].rsplit("/", 1)[-1]


def test_it_names_a_wrong_role_arn_in_a_custom_apps_role_statement(
    okta_sandbox: Sandbox,  # noqa: F811
) -> None:
    account = aws_client(okta_sandbox, "sts").get_caller_identity()["Account"]
    built = build_custom_saml_app(
        okta_sandbox, role_arn=f"arn:aws:iam::{account}:role/AmazonConnectOktaTypo"
    )

    code, result = check_json("okta", built)

    assert code == 1, result
    found = findings(result)
    assert ("federation_role", "role_missing") in found, result["findings"]
    assert found[("federation_role", "role_missing")]["role"] == built["typed_role"]


def test_it_finds_a_custom_saml_app_by_its_role_statement_alone(
    okta_sandbox: Sandbox,  # noqa: F811
) -> None:
    built = build_custom_saml_app(okta_sandbox, relay_state=False)

    code, result = check_json("okta", built)

    assert code == 1, result
    assert set(findings(result)) == {("claims", "relay_state_missing")}, result["findings"]


@contextlib.contextmanager
def _new_people(sandbox: Sandbox, app_id: str, count: int) -> Iterator[list[str]]:
    """`count` new people assigned to the app, each with an e-mail other than their login: their
    e-mails; unassigned and deleted afterwards (Okta deletes a user on the second DELETE)."""
    suffix = uuid.uuid4().hex[:6]
    emails = [f"person{n}.{suffix}@mail.example.com" for n in range(count)]
    made: list[str] = []

    async def assign(client: Any) -> None:
        for n, email in enumerate(emails):
            login = f"person{n}.{suffix}@{OKTA_DOMAIN}"
            profile = {"firstName": f"Person{n}", "lastName": "New", "email": email, "login": login}
            user = _sent(
                await send(client, "POST", "/api/v1/users?activate=true", {"profile": profile})
            )
            made.append(user["id"])
            _sent(
                await send(
                    client,
                    "POST",
                    f"/api/v1/apps/{app_id}/users",
                    {"id": user["id"], "scope": "USER"},
                )
            )

    async def delete(client: Any) -> None:
        for user_id in made:
            _sent(await send(client, "DELETE", f"/api/v1/apps/{app_id}/users/{user_id}"))
            for _deactivate_then_delete in range(2):
                _sent(await send(client, "DELETE", f"/api/v1/users/{user_id}"))

    try:
        _okta(sandbox, assign)
        yield emails
    finally:
        _okta(sandbox, delete)


def _okta_requests(sandbox: Sandbox, built: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    """The requests the check sends the sandbox's Okta (checked against the okta SDK's API
    description, as the flow tests' are), and its result."""
    sandbox.wire_log.start()
    try:
        _code, result = check_json("okta", built)
    finally:
        exchanges = sandbox.wire_log.stop()
    report = check_exchanges(exchanges)
    assert not report.violations, report.describe()
    return [exchange for exchange in exchanges if exchange.cloud == "okta"], result


def test_it_reads_a_custom_apps_people_with_their_profiles_in_one_listing_however_many(
    okta_sandbox: Sandbox,  # noqa: F811
) -> None:
    """RoleSessionName from user.email: each person's profile comes embedded in the app's user
    listing (expand=user), not from a read per person."""
    built = build_custom_saml_app(okta_sandbox, session_name="user.email")
    few, _result = _okta_requests(okta_sandbox, built)
    with _new_people(okta_sandbox, built["app_id"], 6) as emails:
        many, result = _okta_requests(okta_sandbox, built)

    assert len(many) == len(few), [(e.method, e.path) for e in many]
    assert not [e for e in many if e.path.startswith("/api/v1/users/")]
    (listing,) = [e for e in many if e.path == f"/api/v1/apps/{built['app_id']}/users"]
    assert listing.query.get("expand") == ["user"]
    missing = findings(result)[("connect_users", "person_without_user")]
    assert all(email in missing["names"] for email in emails), missing


def test_it_names_a_custom_apps_wrong_single_sign_on_url_and_audience(
    okta_sandbox: Sandbox,  # noqa: F811
) -> None:
    """The ACS URL typed as the AWS console's address and the audience as the instance's
    URL: Okta would post to the console, and AWS would refuse the audience."""
    wrong_acs = "https://console.aws.amazon.com/saml"
    wrong_audience = "https://example.my.connect.aws"
    built = build_custom_saml_app(
        okta_sandbox,
        sign_on={
            "ssoAcsUrl": wrong_acs,
            "recipient": wrong_acs,
            "destination": wrong_acs,
            "audience": wrong_audience,
        },
    )

    code, result = check_json("okta", built)

    assert code == 1, result
    found = findings(result)
    assert found[("idp_app", "okta_sso_url_wrong")] == {
        "found": wrong_acs,
        "wanted": AWS_SIGN_IN_URL,
    }
    assert found[("idp_app", "okta_audience_wrong")] == {
        "found": wrong_audience,
        "wanted": AWS_SIGN_IN_URL,
    }
    # One finding for the URL the Recipient and Destination follow.
    assert ("idp_app", "okta_recipient_wrong") not in found
    assert link_states(result)["idp_app"] == "broken"
    wrong_url = Finding(
        link="idp_app",
        code="okta_sso_url_wrong",
        severity="broken",
        params=found[("idp_app", "okta_sso_url_wrong")],
    )
    text = finding_text(wrong_url)
    assert wrong_acs in text["what"] and AWS_SIGN_IN_URL in text["fix"], text
    with translation.override("ja"):
        japanese = finding_text(wrong_url)
    assert "シングルサインオンURL" in japanese["what"], japanese


def test_it_names_a_custom_apps_recipient_that_is_not_aws_sign_in(
    okta_sandbox: Sandbox,  # noqa: F811
) -> None:
    regional = f"https://{REGION}.signin.aws.amazon.com/saml"
    built = build_custom_saml_app(
        okta_sandbox,
        sign_on={
            "ssoAcsUrl": regional,
            "recipient": "https://sso.example.com/saml",
            "destination": regional,
            "audience": AWS_SIGN_IN_URL,
        },
    )

    code, result = check_json("okta", built)

    assert code == 1, result
    found = findings(result)
    assert found[("idp_app", "okta_recipient_wrong")]["found"] == "https://sso.example.com/saml"
    assert ("idp_app", "okta_sso_url_wrong") not in found
    assert ("idp_app", "okta_audience_wrong") not in found
