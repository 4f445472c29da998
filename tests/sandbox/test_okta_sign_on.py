"""The sandbox Okta org's AWS app end to end: metadata, role download and IdP-initiated sign-on."""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import uuid
from dataclasses import dataclass
from typing import Any

import boto3
import httpx
import pytest
from lxml import etree, html
from okta.models import (
    AddGroupRequest,
    ApplicationGroupAssignment,
    AppUserAssignRequest,
    OktaUserGroupProfile,
)
from signxml import XMLVerifier

from sandbox.saml_idp import (
    ROLE_ATTRIBUTE,
    ROLE_SESSION_NAME_ATTRIBUTE,
    SAML_ASSERTION,
    SAML_METADATA,
    SESSION_DURATION_ATTRIBUTE,
    XMLDSIG,
)
from sandbox.server import OKTA_DOMAIN, Sandbox
from tests.sandbox.okta_sdk import okta_client, send

AWS_SIGN_IN_URL = "https://signin.aws.amazon.com/saml"
AWS_AUDIENCE = "urn:amazon:webservices"
RELAY_STATE = "https://ap-northeast-1.console.aws.amazon.com/connect/federate/i-123"
ROLE_VALUE_PATTERN = (
    "arn:aws:iam::${accountid}:saml-provider/Okta,arn:aws:iam::${accountid}:role/${role}"
)
AGENT = f"Keiko.McDonald@{OKTA_DOMAIN}"
OTHER_AGENT = f"madonna@{OKTA_DOMAIN}"
SAFE_XML = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
# The sandbox is shared by the whole test session: names carry a run suffix so that other tests'
# groups and IAM objects can't collide with these.
RUN = uuid.uuid4().hex[:8]
# The policy of the IAM user whose key Okta lists roles with (Okta's "Configure SAML 2.0 for
# Amazon Web Services"; seed 002's "okta 用ロール取得ポリシー").
ROLE_LISTING_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["iam:ListRoles", "iam:ListAccountAliases"],
                "Resource": "*",
            }
        ],
    }
)
# Okta's documented role-group filter, with a per-run prefix in place of "aws".
GROUP_PREFIX = f"aws{RUN}"
GROUP_FILTER = GROUP_PREFIX + r"_(?{{accountid}}\d+)_(?{{role}}[a-zA-Z0-9+=,.@\-_]+)"


@dataclass(frozen=True)
class Claims:
    issuer: str
    audience: str
    recipient: str
    destination: str
    attributes: dict[str, list[str]]


def trust(sandbox: Sandbox) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=sandbox.endpoints["ca_bundle"])


def iam_client(endpoints: dict[str, str], **credentials: str) -> Any:
    return boto3.client(
        "iam",
        endpoint_url=endpoints["aws_endpoint_url"],
        region_name=endpoints["aws_region"],
        aws_access_key_id=credentials.get("key", endpoints["aws_access_key_id"]),
        aws_secret_access_key=credentials.get("secret", endpoints["aws_secret_access_key"]),
        verify=endpoints["ca_bundle"],
    )


def create_app(sandbox: Sandbox, label: str, **app_settings: Any) -> dict[str, Any]:
    body = {
        "name": "amazon_aws",
        "label": label,
        "signOnMode": "SAML_2_0",
        "settings": {
            "app": {
                "identityProviderArn": "arn:aws:iam::123456789012:saml-provider/Okta",
                "sessionDuration": 3600,
                **app_settings,
            },
            "signOn": {"defaultRelayState": RELAY_STATE},
        },
    }

    async def scenario() -> dict[str, Any]:
        async with okta_client(sandbox.endpoints) as client:
            created, error = await send(client, "POST", "/api/v1/apps", body)
            assert error is None, error
            return created

    return asyncio.run(scenario())


def metadata_of(sandbox: Sandbox, app: dict[str, Any]) -> str:
    async def scenario() -> str:
        async with okta_client(sandbox.endpoints) as client:
            document, _, error = await client.preview_sam_lmetadata_for_application(
                app["id"], app["credentials"]["signing"]["kid"]
            )
            assert error is None, error
            return document

    return asyncio.run(scenario())


def signing_cert_pem(metadata: str) -> str:
    root = etree.fromstring(metadata.encode(), parser=SAFE_XML)
    body = root.findtext(f".//{{{XMLDSIG}}}X509Certificate")
    return f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n"


def sign_on(sandbox: Sandbox, app_id: str, login: str, accept: str) -> httpx.Response:
    return httpx.get(
        f"{sandbox.endpoints['okta_org_url']}/sandbox/sso/{app_id}",
        params={"user": login},
        headers={"Accept": accept},
        verify=trust(sandbox),
    )


def verified_claims(saml_response: str, metadata: str) -> Claims:
    """The response checked as AWS checks it: the assertion's signature against the metadata's
    certificate, then its audience, recipient and attributes."""
    document = base64.b64decode(saml_response)
    assertion = XMLVerifier().verify(document, x509_cert=signing_cert_pem(metadata)).signed_xml
    response = etree.fromstring(document, parser=SAFE_XML)
    saml = f"{{{SAML_ASSERTION}}}"
    attributes = {
        attribute.get("Name"): [value.text for value in attribute.iter(saml + "AttributeValue")]
        for attribute in assertion.iter(saml + "Attribute")
    }
    return Claims(
        issuer=assertion.findtext(saml + "Issuer"),
        audience=assertion.findtext(f".//{saml}Audience"),
        recipient=assertion.find(f".//{saml}SubjectConfirmationData").get("Recipient"),
        destination=response.get("Destination"),
        attributes=attributes,
    )


def test_it_serves_idp_metadata_for_the_app_key(sandbox: Sandbox) -> None:
    app = create_app(sandbox, "Connect metadata")
    root = etree.fromstring(metadata_of(sandbox, app).encode(), parser=SAFE_XML)
    assert root.tag == f"{{{SAML_METADATA}}}EntityDescriptor"
    assert root.get("entityID").startswith("http://www.okta.com/exk")
    locations = [e.get("Location") for e in root.iter(f"{{{SAML_METADATA}}}SingleSignOnService")]
    assert locations and all(
        location.startswith(sandbox.endpoints["okta_org_url"]) for location in locations
    )


def test_it_signs_on_with_roles_from_group_mapping(sandbox: Sandbox) -> None:
    app = create_app(
        sandbox,
        "Connect group mapping",
        useGroupMapping=True,
        groupFilter=GROUP_FILTER,
        roleValuePattern=ROLE_VALUE_PATTERN,
        sessionDuration=7200,
    )

    async def assign() -> None:
        async with okta_client(sandbox.endpoints) as client:
            group, _, error = await client.add_group(
                AddGroupRequest(
                    profile=OktaUserGroupProfile(name=f"{GROUP_PREFIX}_123456789012_ConnectAgent")
                )
            )
            assert error is None
            agent, _, _ = await client.get_user(AGENT)
            await client.assign_user_to_group(group.id, agent.id)
            *_, error = await client.assign_group_to_application(
                app["id"], group.id, ApplicationGroupAssignment(priority=0)
            )
            assert error is None

    asyncio.run(assign())
    reply = sign_on(sandbox, app["id"], AGENT.lower(), "application/json")
    assert reply.status_code == 200
    body = reply.json()
    assert body["action"] == sandbox.endpoints["aws_signin_url"]
    assert body["RelayState"] == RELAY_STATE

    metadata = metadata_of(sandbox, app)
    claims = verified_claims(body["SAMLResponse"], metadata)
    entity_id = etree.fromstring(metadata.encode(), parser=SAFE_XML).get("entityID")
    assert claims.issuer == entity_id
    assert claims.audience == AWS_AUDIENCE
    assert claims.recipient == claims.destination == AWS_SIGN_IN_URL
    assert claims.attributes == {
        ROLE_ATTRIBUTE: [
            "arn:aws:iam::123456789012:saml-provider/Okta,"
            "arn:aws:iam::123456789012:role/ConnectAgent"
        ],
        ROLE_SESSION_NAME_ATTRIBUTE: [AGENT],
        SESSION_DURATION_ATTRIBUTE: ["7200"],
    }


def test_it_posts_a_form_to_the_aws_sign_in_endpoint(sandbox: Sandbox) -> None:
    app = create_app(sandbox, "Connect form")

    async def assign() -> None:
        async with okta_client(sandbox.endpoints) as client:
            agent, _, _ = await client.get_user(OTHER_AGENT)
            await client.assign_user_to_application(
                app["id"], AppUserAssignRequest(id=agent.id, scope="USER")
            )

    asyncio.run(assign())
    reply = sign_on(sandbox, app["id"], OTHER_AGENT, "text/html,*/*;q=0.8")
    assert reply.status_code == 200
    form = html.fromstring(reply.text).forms[0]
    assert form.action == sandbox.endpoints["aws_signin_url"]
    assert form.method == "POST"
    assert form.fields["RelayState"] == RELAY_STATE
    claims = verified_claims(form.fields["SAMLResponse"], metadata_of(sandbox, app))
    assert claims.attributes[ROLE_SESSION_NAME_ATTRIBUTE] == [OTHER_AGENT]
    assert form.xpath(".//button[@type='submit']")


def test_it_refuses_a_person_not_assigned_to_the_app(sandbox: Sandbox) -> None:
    app = create_app(sandbox, "Connect nobody")
    reply = sign_on(sandbox, app["id"], OTHER_AGENT, "text/html")
    assert reply.status_code == 403
    assert "not assigned this app" in reply.text
    assert sign_on(sandbox, app["id"], OTHER_AGENT, "application/json").json()["errorCode"] == (
        "E0000006"
    )


@dataclass(frozen=True)
class RoleReader:
    app: dict[str, Any]
    provider_arn: str
    role_arns: dict[str, str]
    access_key_id: str
    secret_access_key: str


@pytest.fixture(scope="module")
def role_reader(sandbox: Sandbox) -> RoleReader:
    """What the admin does by hand for the role-download variant: an IAM SAML provider from the
    app's metadata, roles trusting it, and an IAM user whose key goes into the Provisioning tab."""
    app = create_app(sandbox, "Connect role download")
    iam = iam_client(sandbox.endpoints)
    provider_arn = iam.create_saml_provider(
        Name=f"OktaRoleDownload{RUN}", SAMLMetadataDocument=metadata_of(sandbox, app)
    )["SAMLProviderArn"]
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": provider_arn},
                "Action": "sts:AssumeRoleWithSAML",
                "Condition": {"StringEquals": {"SAML:aud": AWS_SIGN_IN_URL}},
            }
        ],
    }
    role_arns = {
        name: iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"][
            "Arn"
        ]
        for name in (f"ConnectAgent{RUN}", f"ConnectSupervisor{RUN}")
    }
    iam.create_role(
        RoleName=f"NotForSaml{RUN}",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "ec2.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
        ),
    )
    iam.create_user(UserName=f"okta-role-reader-{RUN}")
    # Okta's AWS app reads roles with this user's key: Okta's "Configure SAML 2.0 for Amazon Web
    # Services" guide gives it a policy allowing iam:ListRoles and iam:ListAccountAliases.
    iam.put_user_policy(
        UserName=f"okta-role-reader-{RUN}",
        PolicyName="OktaListRoles",
        PolicyDocument=ROLE_LISTING_POLICY,
    )
    key = iam.create_access_key(UserName=f"okta-role-reader-{RUN}")["AccessKey"]
    app = set_app_settings(sandbox, app, identityProviderArn=provider_arn)
    return RoleReader(app, provider_arn, role_arns, key["AccessKeyId"], key["SecretAccessKey"])


def provision(sandbox: Sandbox, app_id: str, reader: RoleReader, *, update: bool) -> httpx.Response:
    return httpx.post(
        f"{sandbox.endpoints['okta_org_url']}/sandbox/apps/{app_id}/provisioning",
        json={
            "accessKeyId": reader.access_key_id,
            "secretAccessKey": reader.secret_access_key,
            "updateUserAttributes": update,
        },
        verify=trust(sandbox),
    )


def set_app_settings(sandbox: Sandbox, app: dict[str, Any], **app_settings: Any) -> dict[str, Any]:
    body = {
        "name": "amazon_aws",
        "label": app["label"],
        "signOnMode": "SAML_2_0",
        "settings": {
            **app["settings"],
            "app": {**app["settings"]["app"], **app_settings},
        },
    }

    async def scenario() -> dict[str, Any]:
        async with okta_client(sandbox.endpoints) as client:
            replaced, error = await send(client, "PUT", f"/api/v1/apps/{app['id']}", body)
            assert error is None, error
            return replaced

    return asyncio.run(scenario())


def test_it_downloads_saml_roles_with_the_iam_users_key(
    sandbox: Sandbox, role_reader: RoleReader
) -> None:
    iam = iam_client(sandbox.endpoints)
    before = iam.get_access_key_last_used(AccessKeyId=role_reader.access_key_id)
    assert "LastUsedDate" not in before["AccessKeyLastUsed"]

    reply = provision(sandbox, role_reader.app["id"], role_reader, update=True)
    assert reply.status_code == 200, reply.text
    assert set(role_reader.role_arns) <= set(reply.json()["samlRoles"])
    assert f"NotForSaml{RUN}" not in reply.json()["samlRoles"]
    assert "secretAccessKey" not in reply.text
    after = iam.get_access_key_last_used(AccessKeyId=role_reader.access_key_id)
    assert "LastUsedDate" in after["AccessKeyLastUsed"]


def test_it_fails_okta_s_verification_for_a_key_whose_user_may_not_list_roles(
    sandbox: Sandbox, role_reader: RoleReader
) -> None:
    iam = iam_client(sandbox.endpoints)
    name = f"okta-no-policy-{RUN}"
    iam.create_user(UserName=name)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    reader = RoleReader(
        role_reader.app,
        role_reader.provider_arn,
        role_reader.role_arns,
        key["AccessKeyId"],
        key["SecretAccessKey"],
    )

    reply = provision(sandbox, role_reader.app["id"], reader, update=True)

    assert reply.status_code == 400
    assert "is not authorized to perform: iam:ListRoles" in reply.text


def test_it_offers_no_roles_without_update_user_attributes(
    sandbox: Sandbox, role_reader: RoleReader
) -> None:
    app = create_app(sandbox, "Connect unticked")
    reply = provision(sandbox, app["id"], role_reader, update=False)
    assert reply.status_code == 200
    assert reply.json()["samlRoles"] == []


def test_it_signs_on_with_downloaded_roles_joining_group_roles_only_when_asked(
    sandbox: Sandbox, role_reader: RoleReader
) -> None:
    app = role_reader.app
    assert provision(sandbox, app["id"], role_reader, update=True).status_code == 200
    agent_role, supervisor_role = f"ConnectAgent{RUN}", f"ConnectSupervisor{RUN}"

    async def assign() -> None:
        async with okta_client(sandbox.endpoints) as client:
            agent, _, _ = await client.get_user(OTHER_AGENT)
            _, _, error = await client.assign_user_to_application(
                app["id"],
                AppUserAssignRequest(
                    id=agent.id,
                    scope="USER",
                    profile={"role": agent_role, "samlRoles": [agent_role]},
                ),
            )
            assert error is None
            group, _, _ = await client.add_group(
                AddGroupRequest(profile=OktaUserGroupProfile(name=f"Connect role download {RUN}"))
            )
            await client.assign_user_to_group(group.id, agent.id)
            *_, error = await client.assign_group_to_application(
                app["id"],
                group.id,
                ApplicationGroupAssignment(priority=0, profile={"samlRoles": [supervisor_role]}),
            )
            assert error is None

    asyncio.run(assign())
    metadata = metadata_of(sandbox, app)

    def roles() -> list[str]:
        body = sign_on(sandbox, app["id"], OTHER_AGENT, "application/json").json()
        return verified_claims(body["SAMLResponse"], metadata).attributes[ROLE_ATTRIBUTE]

    provider = role_reader.provider_arn
    assert roles() == [f"{role_reader.role_arns[agent_role]},{provider}"]
    set_app_settings(sandbox, app, joinAllRoles=True)
    assert roles() == [
        f"{role_reader.role_arns[agent_role]},{provider}",
        f"{role_reader.role_arns[supervisor_role]},{provider}",
    ]
