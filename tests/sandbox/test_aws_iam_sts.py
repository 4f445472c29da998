"""The sandbox's IAM SAML providers and STS AssumeRoleWithSAML, through real boto3 clients."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError

from sandbox import saml_idp
from sandbox.server import Sandbox
from tests.sandbox.aws_clients import aws_client

SIGNIN_AUDIENCE = "https://signin.aws.amazon.com/saml"
IDP_ENTITY_ID = "https://sts.windows.net/sandbox-tenant/"


@pytest.fixture(scope="module")
def iam(sandbox: Sandbox) -> Any:
    return aws_client(sandbox, "iam")


@pytest.fixture(scope="module")
def sts(sandbox: Sandbox) -> Any:
    return aws_client(sandbox, "sts")


@pytest.fixture(scope="module")
def certificate() -> saml_idp.SigningCertificate:
    return saml_idp.issue_signing_certificate("CN=Microsoft Azure Federated SSO Certificate")


@pytest.fixture(scope="module")
def metadata(certificate: saml_idp.SigningCertificate) -> str:
    return saml_idp.idp_metadata(
        entity_id=IDP_ENTITY_ID, certificate=certificate, sso_url="https://idp.example/sso"
    )


@pytest.fixture(scope="module")
def federation(iam: Any, metadata: str) -> dict[str, str]:
    """A SAML provider and a role trusted for SAML sign-in through it, as the wizard makes them."""
    suffix = uuid.uuid4().hex[:8]
    provider_arn = iam.create_saml_provider(
        Name=f"EntraSandbox-{suffix}", SAMLMetadataDocument=metadata
    )["SAMLProviderArn"]
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": provider_arn},
                "Action": "sts:AssumeRoleWithSAML",
                "Condition": {"StringEquals": {"SAML:aud": SIGNIN_AUDIENCE}},
            }
        ],
    }
    role_arn = iam.create_role(
        RoleName=f"ConnectFederation-{suffix}", AssumeRolePolicyDocument=json.dumps(trust)
    )["Role"]["Arn"]
    return {"provider_arn": provider_arn, "role_arn": role_arn}


def _padded(text: str) -> str:
    """IAM's model wants at least 1000 characters, which botocore checks before sending."""
    return text + "<!--" + "x" * 1000 + "-->"


def _saml_response(
    federation: dict[str, str],
    certificate: saml_idp.SigningCertificate,
    *,
    roles: list[str] | None = None,
    session_name: str = "hanako@example.com",
) -> str:
    pair = f"{federation['role_arn']},{federation['provider_arn']}"
    return saml_idp.signed_saml_response(
        issuer=IDP_ENTITY_ID,
        audience=SIGNIN_AUDIENCE,
        recipient=SIGNIN_AUDIENCE,
        name_id="hanako@example.com",
        attributes={
            saml_idp.ROLE_ATTRIBUTE: roles if roles is not None else [pair],
            saml_idp.ROLE_SESSION_NAME_ATTRIBUTE: [session_name],
            saml_idp.SESSION_DURATION_ATTRIBUTE: ["3600"],
        },
        certificate=certificate,
    )


@pytest.mark.parametrize(
    "document",
    [
        _padded("<html><body>not metadata</body></html>"),
        _padded("this is not XML at all"),
        _padded(
            '<?xml version="1.0"?><!DOCTYPE d [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
            '<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" '
            'entityID="x">&e;</md:EntityDescriptor>'
        ),
        _padded(
            '<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="x">'
            '<md:SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"'
            "/></md:EntityDescriptor>"
        ),
    ],
    ids=["html", "not-xml", "external-entity", "sp-metadata"],
)
def test_it_refuses_a_saml_provider_whose_document_is_not_idp_metadata(
    iam: Any, document: str
) -> None:
    with pytest.raises(ClientError) as raised:
        iam.create_saml_provider(Name=f"Junk-{uuid.uuid4().hex[:8]}", SAMLMetadataDocument=document)
    assert raised.value.response["Error"]["Code"] == "InvalidInput"
    assert "Could not parse metadata" in raised.value.response["Error"]["Message"]


def test_it_refuses_metadata_without_a_signing_certificate(iam: Any, metadata: str) -> None:
    encryption_only = metadata.replace('use="signing"', 'use="encryption"')
    with pytest.raises(ClientError) as raised:
        iam.create_saml_provider(Name="NoSigningKey", SAMLMetadataDocument=encryption_only)
    assert raised.value.response["Error"]["Code"] == "InvalidInput"


def test_it_stores_idp_metadata_and_refuses_junk_on_update(
    iam: Any, metadata: str, federation: dict[str, str]
) -> None:
    stored = iam.get_saml_provider(SAMLProviderArn=federation["provider_arn"])
    assert stored["SAMLMetadataDocument"] == metadata
    with pytest.raises(ClientError) as raised:
        iam.update_saml_provider(
            SAMLProviderArn=federation["provider_arn"],
            SAMLMetadataDocument=_padded("<junk/>"),
        )
    assert raised.value.response["Error"]["Code"] == "InvalidInput"
    iam.update_saml_provider(
        SAMLProviderArn=federation["provider_arn"], SAMLMetadataDocument=metadata
    )


def test_it_assumes_the_role_named_by_a_signed_assertion_with_several_roles(
    sts: Any, federation: dict[str, str], certificate: saml_idp.SigningCertificate
) -> None:
    other = "arn:aws:iam::123456789012:role/Other," + federation["provider_arn"]
    response = sts.assume_role_with_saml(
        RoleArn=federation["role_arn"],
        PrincipalArn=federation["provider_arn"],
        SAMLAssertion=_saml_response(
            federation,
            certificate,
            roles=[other, f"{federation['role_arn']},{federation['provider_arn']}"],
        ),
    )
    role_name = federation["role_arn"].rsplit("/", 1)[-1]
    assert response["AssumedRoleUser"]["Arn"].endswith(f"{role_name}/hanako@example.com")
    assert response["Credentials"]["AccessKeyId"]


def test_it_refuses_an_assertion_signed_by_another_key(
    sts: Any, federation: dict[str, str]
) -> None:
    stranger = saml_idp.issue_signing_certificate("CN=Someone else")
    with pytest.raises(ClientError) as raised:
        sts.assume_role_with_saml(
            RoleArn=federation["role_arn"],
            PrincipalArn=federation["provider_arn"],
            SAMLAssertion=_saml_response(federation, stranger),
        )
    assert raised.value.response["Error"]["Code"] == "InvalidIdentityToken"


def test_it_refuses_a_role_the_assertion_does_not_grant(
    sts: Any, federation: dict[str, str], certificate: saml_idp.SigningCertificate
) -> None:
    with pytest.raises(ClientError) as raised:
        sts.assume_role_with_saml(
            RoleArn=federation["role_arn"],
            PrincipalArn=federation["provider_arn"],
            SAMLAssertion=_saml_response(
                federation,
                certificate,
                roles=["arn:aws:iam::123456789012:role/Other," + federation["provider_arn"]],
            ),
        )
    assert raised.value.response["Error"]["Code"] == "AccessDenied"


def test_it_refuses_a_role_session_name_sts_would_not_take(
    sts: Any, federation: dict[str, str], certificate: saml_idp.SigningCertificate
) -> None:
    with pytest.raises(ClientError) as raised:
        sts.assume_role_with_saml(
            RoleArn=federation["role_arn"],
            PrincipalArn=federation["provider_arn"],
            SAMLAssertion=_saml_response(federation, certificate, session_name="has space"),
        )
    assert raised.value.response["Error"]["Code"] == "InvalidIdentityToken"


def test_it_throttles_iam_in_the_query_protocols_words(
    sandbox_knobs: Any, iam: Any, federation: dict[str, str]
) -> None:
    sandbox_knobs.rate_limits_enabled = True
    sandbox_knobs.rate_limits["iam:GetRole"] = (1, 1)
    sandbox_knobs.reset_buckets()
    role_name = federation["role_arn"].rsplit("/", 1)[-1]
    iam.get_role(RoleName=role_name)
    with pytest.raises(ClientError) as raised:
        iam.get_role(RoleName=role_name)
    assert raised.value.response["Error"]["Code"] == "Throttling"
