"""A working federation in the sandbox, and SAML responses minted by the sandbox IdP for it: one
good, and one broken at each link the inspector must name."""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import boto3

from sandbox.saml_idp import (
    ROLE_ATTRIBUTE,
    ROLE_SESSION_NAME_ATTRIBUTE,
    SigningCertificate,
    idp_metadata,
    issue_signing_certificate,
    signed_saml_response,
)
from sandbox.server import Sandbox

GLOBAL_SIGNIN = "https://signin.aws.amazon.com/saml"
IDP_ENTITY_ID = "https://sts.windows.net/5a1d2b3c-0000-4000-8000-00000000cccc/"
INSTANCE_ACTIVE_TIMEOUT_S = 15
# Each broken case and the link (check key) the verdict must name.
CASES = {
    "good": "",
    "wrong_audience": "audience",
    "expired": "time_window",
    "wrong_certificate": "signature",
    "tampered_signature": "signature",
    "other_provider": "saml_provider",
    "no_connect_user": "connect_user",
    "no_permission": "federation_permission",
}


@dataclass(frozen=True)
class InspectedFederation:
    provider_arn: str
    role_arn: str
    role_without_permission_arn: str
    instance_id: str
    region: str
    username: str
    certificate: SigningCertificate
    other_certificate: SigningCertificate

    @property
    def metadata(self) -> str:
        return idp_metadata(
            entity_id=IDP_ENTITY_ID, certificate=self.certificate, sso_url="https://idp.example/sso"
        )

    @property
    def relay_state(self) -> str:
        return f"https://{self.region}.console.aws.amazon.com/connect/federate/{self.instance_id}"


def aws(sandbox: Sandbox, service: str) -> Any:
    endpoints = sandbox.endpoints
    return boto3.client(
        service,
        endpoint_url=endpoints["aws_endpoint_url"],
        region_name=endpoints["aws_region"],
        aws_access_key_id=endpoints["aws_access_key_id"],
        aws_secret_access_key=endpoints["aws_secret_access_key"],
        verify=endpoints["ca_bundle"],
    )


def _role(iam: Any, name: str, provider_arn: str) -> str:
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": provider_arn},
                "Action": "sts:AssumeRoleWithSAML",
                "Condition": {"StringEquals": {"SAML:aud": GLOBAL_SIGNIN}},
            }
        ],
    }
    return iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]


def build_federation(sandbox: Sandbox) -> InspectedFederation:
    """The chain as the wizard builds it: provider, role trusting it with the usual policy, an
    ACTIVE SAML instance with one agent; and a second role without the policy."""
    iam, connect = aws(sandbox, "iam"), aws(sandbox, "connect")
    tag = uuid.uuid4().hex[:8]
    certificate = issue_signing_certificate("CN=Microsoft Azure Federated SSO Certificate")
    federation_metadata = idp_metadata(
        entity_id=IDP_ENTITY_ID, certificate=certificate, sso_url="https://idp.example/sso"
    )
    provider_arn = iam.create_saml_provider(
        Name=f"Inspected-{tag}", SAMLMetadataDocument=federation_metadata
    )["SAMLProviderArn"]
    instance_id = connect.create_instance(
        IdentityManagementType="SAML",
        InstanceAlias=f"inspected-{tag}",
        InboundCallsEnabled=True,
        OutboundCallsEnabled=True,
    )["Id"]
    deadline = time.monotonic() + INSTANCE_ACTIVE_TIMEOUT_S
    while connect.describe_instance(InstanceId=instance_id)["Instance"]["InstanceStatus"] != (
        "ACTIVE"
    ):
        assert time.monotonic() < deadline, "the sandbox instance never became ACTIVE"
        time.sleep(0.1)
    role_arn = _role(iam, f"Inspected-{tag}", provider_arn)
    iam.put_role_policy(
        RoleName=role_arn.rsplit("/", 1)[-1],
        PolicyName="ConnectFederation",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": "connect:GetFederationToken",
                        "Resource": "*",
                        "Condition": {"StringEquals": {"connect:InstanceId": instance_id}},
                    }
                ],
            }
        ),
    )
    bare_role_arn = _role(iam, f"InspectedBare-{tag}", provider_arn)
    username = f"agent-{tag}@contoso-sandbox.onmicrosoft.com"
    profiles = connect.list_security_profiles(InstanceId=instance_id)["SecurityProfileSummaryList"]
    routing = connect.list_routing_profiles(InstanceId=instance_id)["RoutingProfileSummaryList"]
    connect.create_user(
        InstanceId=instance_id,
        Username=username,
        IdentityInfo={"FirstName": "Test", "LastName": "Agent"},
        PhoneConfig={"PhoneType": "SOFT_PHONE"},
        SecurityProfileIds=[next(p["Id"] for p in profiles if p["Name"] == "Agent")],
        RoutingProfileId=routing[0]["Id"],
    )
    return InspectedFederation(
        provider_arn=provider_arn,
        role_arn=role_arn,
        role_without_permission_arn=bare_role_arn,
        instance_id=instance_id,
        region=sandbox.endpoints["aws_region"],
        username=username,
        certificate=certificate,
        other_certificate=issue_signing_certificate("CN=Someone Else"),
    )


def minted_response(federation: InspectedFederation, case: str) -> str:
    """The base64 SAMLResponse of `case`, signed by the sandbox IdP."""
    role_arn = (
        federation.role_without_permission_arn if case == "no_permission" else federation.role_arn
    )
    provider_arn = (
        federation.provider_arn.rsplit("/", 1)[0] + "/SomeoneElsesIdP"
        if case == "other_provider"
        else federation.provider_arn
    )
    username = (
        "nobody-here@contoso-sandbox.onmicrosoft.com"
        if case == "no_connect_user"
        else (federation.username)
    )
    response = signed_saml_response(
        issuer=IDP_ENTITY_ID,
        audience="https://signin.example.com/saml" if case == "wrong_audience" else GLOBAL_SIGNIN,
        recipient=GLOBAL_SIGNIN,
        name_id=username,
        attributes={
            ROLE_ATTRIBUTE: [f"{provider_arn},{role_arn}"],  # either order is accepted
            ROLE_SESSION_NAME_ATTRIBUTE: [username],
        },
        certificate=(
            federation.other_certificate if case == "wrong_certificate" else federation.certificate
        ),
        now=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1) if case == "expired" else None,
    )
    if case == "tampered_signature":
        xml = base64.b64decode(response).replace(
            username.encode(), b"someone-else@contoso-sandbox.onmicrosoft.com"
        )
        response = base64.b64encode(xml).decode()
    return response
