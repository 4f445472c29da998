"""The sandbox's AWS sign-in endpoint end to end: boto3 builds the IAM and Connect side in the
sandbox's AWS, the sandbox IdP helpers sign the responses, and each misconfiguration admins hit
(Amazon Connect Administrator Guide, "Troubleshoot SAML with Amazon Connect") gives AWS's own
error."""

from __future__ import annotations

import base64
import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
import requests

from provisioning.signin_checks.refusals import (
    BAD_REQUEST,
    INVALID_SAML_RESPONSE,
    NO_FEDERATION_PERMISSION,
    NOT_AUTHORIZED_TO_ASSUME_ROLE,
    NOT_ONBOARDED,
    RELAY_STATE_MISSING,
    SESSION_DURATION_TOO_LONG,
)
from provisioning.signin_checks.sign_in_chain import SESSION_DURATION_ATTRIBUTE
from sandbox.saml_idp import (
    ROLE_ATTRIBUTE,
    ROLE_SESSION_NAME_ATTRIBUTE,
    SigningCertificate,
    idp_metadata,
    issue_signing_certificate,
    signed_saml_response,
)
from sandbox.server import Sandbox
from sandbox.signin.app import MAX_FORM_BYTES

GLOBAL_SIGNIN = "https://signin.aws.amazon.com/saml"
REGIONAL_SIGNIN = "https://ap-northeast-1.signin.aws.amazon.com/saml"
IDP_ENTITY_ID = "https://sts.windows.net/5a1d2b3c-0000-4000-8000-00000000aaaa/"
# How long the sandbox may take to make a new instance ACTIVE in tests (conftest sets 0.5 s).
INSTANCE_ACTIVE_TIMEOUT_S = 15


@dataclass(frozen=True)
class Federation:
    """One IdP federated with one Connect instance, as the wizard sets it up."""

    provider_arn: str
    instance_id: str
    instance_arn: str
    instance_alias: str
    role_arns: dict[str, str]  # which policy form or gap -> role ARN
    security_profile_id: str
    routing_profile_id: str


def _client(sandbox: Sandbox, service: str) -> Any:
    endpoints = sandbox.endpoints
    return boto3.client(
        service,
        endpoint_url=endpoints["aws_endpoint_url"],
        region_name=endpoints["aws_region"],
        aws_access_key_id=endpoints["aws_access_key_id"],
        aws_secret_access_key=endpoints["aws_secret_access_key"],
        verify=endpoints["ca_bundle"],
    )


def _trust_policy(provider_arn: str, audience: str = GLOBAL_SIGNIN) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": provider_arn},
                "Action": "sts:AssumeRoleWithSAML",
                "Condition": {"StringEquals": {"SAML:aud": audience}},
            }
        ],
    }


def _role(iam: Any, name: str, provider_arn: str, audience: str = GLOBAL_SIGNIN) -> str:
    return iam.create_role(
        RoleName=name, AssumeRolePolicyDocument=json.dumps(_trust_policy(provider_arn, audience))
    )["Role"]["Arn"]


@pytest.fixture(scope="module")
def idp_certificate() -> SigningCertificate:
    return issue_signing_certificate("CN=Microsoft Azure Federated SSO Certificate")


@pytest.fixture(scope="module")
def federation(sandbox: Sandbox, idp_certificate: SigningCertificate) -> Federation:
    iam = _client(sandbox, "iam")
    connect = _client(sandbox, "connect")
    tag = uuid.uuid4().hex[:8]
    account = sandbox.endpoints["aws_account_id"]
    region = sandbox.endpoints["aws_region"]
    provider_arn = iam.create_saml_provider(
        Name=f"SigninTestEntra-{tag}",
        SAMLMetadataDocument=idp_metadata(
            entity_id=IDP_ENTITY_ID,
            certificate=idp_certificate,
            sso_url="https://login.microsoftonline.com/sandbox/saml2",
        ),
    )["SAMLProviderArn"]
    alias = f"signin-test-{tag}"
    instance_id = connect.create_instance(
        IdentityManagementType="SAML",
        InstanceAlias=alias,
        InboundCallsEnabled=True,
        OutboundCallsEnabled=True,
    )["Id"]
    deadline = time.monotonic() + INSTANCE_ACTIVE_TIMEOUT_S
    instance = connect.describe_instance(InstanceId=instance_id)["Instance"]
    while instance["InstanceStatus"] != "ACTIVE" and time.monotonic() < deadline:
        time.sleep(0.1)
        instance = connect.describe_instance(InstanceId=instance_id)["Instance"]
    assert instance["InstanceStatus"] == "ACTIVE"
    instance_arn = instance["Arn"]

    # The two forms of the policy admins write by hand: a connect:InstanceId condition, and the
    # user ARN with ${aws:userid} (Amazon Connect Administrator Guide, "Configure SAML with IAM
    # for Amazon Connect").
    instance_id_form = iam.create_policy(
        PolicyName=f"SigninTestInstanceIdForm-{tag}",
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
    )["Policy"]["Arn"]
    userid_form = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "Statement1",
                "Effect": "Allow",
                "Action": "connect:GetFederationToken",
                "Resource": [
                    f"arn:aws:connect:{region}:{account}:instance/{instance_id}/user/${{aws:userid}}"
                ],
            }
        ],
    }
    other_instance_only = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "connect:GetFederationToken",
                "Resource": "*",
                "Condition": {"StringEquals": {"connect:InstanceId": str(uuid.uuid4())}},
            }
        ],
    }
    roles = {
        "instance_id_form": _role(iam, f"SigninTestManaged-{tag}", provider_arn),
        "userid_form": _role(iam, f"SigninTestInline-{tag}", provider_arn),
        "other_instance_only": _role(iam, f"SigninTestOther-{tag}", provider_arn),
        "regional_audience_only": _role(
            iam, f"SigninTestRegional-{tag}", provider_arn, REGIONAL_SIGNIN
        ),
    }
    iam.attach_role_policy(
        RoleName=roles["instance_id_form"].rsplit("/", 1)[-1], PolicyArn=instance_id_form
    )
    iam.put_role_policy(
        RoleName=roles["userid_form"].rsplit("/", 1)[-1],
        PolicyName="ConnectFederation",
        PolicyDocument=json.dumps(userid_form),
    )
    iam.put_role_policy(
        RoleName=roles["other_instance_only"].rsplit("/", 1)[-1],
        PolicyName="ConnectFederation",
        PolicyDocument=json.dumps(other_instance_only),
    )
    profiles = connect.list_security_profiles(InstanceId=instance_id)["SecurityProfileSummaryList"]
    routing = connect.list_routing_profiles(InstanceId=instance_id)["RoutingProfileSummaryList"]
    return Federation(
        provider_arn=provider_arn,
        instance_id=instance_id,
        instance_arn=instance_arn,
        instance_alias=alias,
        role_arns=roles,
        security_profile_id=next(p["Id"] for p in profiles if p["Name"] == "Agent"),
        routing_profile_id=routing[0]["Id"],
    )


def _agent(sandbox: Sandbox, federation: Federation, username: str) -> str:
    """A Connect user, as the wizard creates them; returns the username."""
    _client(sandbox, "connect").create_user(
        InstanceId=federation.instance_id,
        Username=username,
        IdentityInfo={"FirstName": "Test", "LastName": "Agent"},
        PhoneConfig={"PhoneType": "SOFT_PHONE"},
        SecurityProfileIds=[federation.security_profile_id],
        RoutingProfileId=federation.routing_profile_id,
    )
    return username


def _new_username() -> str:
    return f"agent-{uuid.uuid4().hex[:10]}@contoso-sandbox.onmicrosoft.com"


def _relay_state(federation: Federation, destination: str = "") -> str:
    base = (
        f"https://ap-northeast-1.console.aws.amazon.com/connect/federate/{federation.instance_id}"
    )
    return base + (f"?destination={destination}" if destination else "")


def _saml_response(
    federation: Federation,
    certificate: SigningCertificate,
    *,
    session_name: str,
    role: str = "instance_id_form",
    role_attribute: str = ROLE_ATTRIBUTE,
    extra: dict[str, list[str]] | None = None,
) -> str:
    return signed_saml_response(
        issuer=IDP_ENTITY_ID,
        audience=GLOBAL_SIGNIN,
        recipient=GLOBAL_SIGNIN,
        name_id=session_name,
        attributes={
            role_attribute: [f"{federation.role_arns[role]},{federation.provider_arn}"],
            ROLE_SESSION_NAME_ATTRIBUTE: [session_name],
            **(extra or {}),
        },
        certificate=certificate,
    )


def _post(
    sandbox: Sandbox, saml_response: str, relay_state: str, *, as_json: bool = True
) -> requests.Response:
    """The IdP's auto-submitting form, as a browser posts it (redirects not followed)."""
    return requests.post(
        sandbox.endpoints["aws_signin_url"],
        data={"SAMLResponse": saml_response, "RelayState": relay_state},
        headers={"Accept": "application/json"} if as_json else {},
        verify=sandbox.endpoints["ca_bundle"],
        allow_redirects=False,
        timeout=30,
    )


def test_it_signs_in_through_the_instance_id_condition_form(
    sandbox, federation, idp_certificate
) -> None:
    username = _agent(sandbox, federation, _new_username())
    saml_response = _saml_response(federation, idp_certificate, session_name=username)

    reply = _post(sandbox, saml_response, _relay_state(federation))

    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["ok"] is True
    assert body["destination"] == f"https://{federation.instance_alias}.my.connect.aws/connect/home"
    assert body["username"] == username
    assert body["role_arn"] == federation.role_arns["instance_id_form"]
    assert body["assumed_role_arn"].endswith(f"/{username}")


def test_it_shows_a_browser_the_connect_destination_without_leaving_the_machine(
    sandbox, federation, idp_certificate
) -> None:
    username = _agent(sandbox, federation, _new_username())
    saml_response = _saml_response(
        federation, idp_certificate, session_name=username, role="userid_form"
    )

    reply = _post(sandbox, saml_response, _relay_state(federation, "%2Fccp-v2"), as_json=False)

    assert reply.status_code == 200
    assert "Location" not in reply.headers
    assert f"https://{federation.instance_alias}.my.connect.aws/ccp-v2</code>" in reply.text
    assert f"<strong id=username>{username}</strong>" in reply.text


def test_it_signs_in_through_the_userid_resource_form(sandbox, federation, idp_certificate) -> None:
    username = _agent(sandbox, federation, _new_username())
    saml_response = _saml_response(
        federation, idp_certificate, session_name=username, role="userid_form"
    )

    reply = _post(sandbox, saml_response, _relay_state(federation))

    assert reply.json()["ok"] is True, reply.text
    assert reply.json()["role_arn"] == federation.role_arns["userid_form"]


def test_it_says_not_onboarded_when_the_username_differs_in_case(
    sandbox, federation, idp_certificate
) -> None:
    username = _agent(sandbox, federation, _new_username().capitalize())
    saml_response = _saml_response(federation, idp_certificate, session_name=username.lower())

    reply = _post(sandbox, saml_response, _relay_state(federation))

    assert reply.status_code == 403
    body = reply.json()
    assert (body["ok"], body["cause"], body["error"]) == (False, "not_onboarded", NOT_ONBOARDED)
    assert username in body["detail"]


def test_it_says_not_onboarded_when_no_user_exists(sandbox, federation, idp_certificate) -> None:
    saml_response = _saml_response(federation, idp_certificate, session_name=_new_username())

    body = _post(sandbox, saml_response, _relay_state(federation)).json()

    assert (body["cause"], body["error"]) == ("not_onboarded", NOT_ONBOARDED)


def test_it_denies_a_role_without_get_federation_token_on_the_instance(
    sandbox, federation, idp_certificate
) -> None:
    username = _agent(sandbox, federation, _new_username())
    saml_response = _saml_response(
        federation, idp_certificate, session_name=username, role="other_instance_only"
    )

    reply = _post(sandbox, saml_response, _relay_state(federation))

    assert reply.status_code == 403
    body = reply.json()
    assert (body["cause"], body["error"]) == ("no_federation_permission", NO_FEDERATION_PERMISSION)
    assert "connect:GetFederationToken" in body["detail"]


def test_it_gives_bad_request_to_a_user_bound_to_another_role(
    sandbox, federation, idp_certificate
) -> None:
    username = _agent(sandbox, federation, _new_username())
    first = _saml_response(federation, idp_certificate, session_name=username)
    second = _saml_response(federation, idp_certificate, session_name=username, role="userid_form")
    assert _post(sandbox, first, _relay_state(federation)).json()["ok"] is True

    reply = _post(sandbox, second, _relay_state(federation))

    assert reply.status_code == 400
    body = reply.json()
    assert (body["cause"], body["error"]) == ("bad_request_other_role", BAD_REQUEST)
    assert federation.role_arns["instance_id_form"] in body["detail"]
    assert _post(sandbox, first, _relay_state(federation)).json()["ok"] is True


def test_it_shows_the_invalid_saml_response_page_for_a_role_claim_in_the_wrong_case(
    sandbox, federation, idp_certificate
) -> None:
    username = _agent(sandbox, federation, _new_username())
    saml_response = _saml_response(
        federation,
        idp_certificate,
        session_name=username,
        role_attribute="https://aws.amazon.com/SAML/Attributes/role",
    )

    page = _post(sandbox, saml_response, _relay_state(federation), as_json=False)
    body = _post(sandbox, saml_response, _relay_state(federation)).json()

    assert page.status_code == 400
    assert page.headers["Content-Type"].startswith("text/html")
    assert INVALID_SAML_RESPONSE in page.text
    assert (body["cause"], body["check"]) == ("invalid_saml_response", "role_attribute")


def test_it_refuses_a_response_signed_by_another_key(sandbox, federation) -> None:
    username = _agent(sandbox, federation, _new_username())
    impostor = issue_signing_certificate("CN=Not the IdP")
    saml_response = _saml_response(federation, impostor, session_name=username)

    body = _post(sandbox, saml_response, _relay_state(federation)).json()

    assert (body["cause"], body["check"], body["error"]) == (
        "invalid_saml_response",
        "signature",
        INVALID_SAML_RESPONSE,
    )


def test_it_refuses_an_assertion_altered_after_signing(
    sandbox, federation, idp_certificate
) -> None:
    """A user edits the RoleSessionName to sign in as someone else."""
    victim = _agent(sandbox, federation, _new_username())
    attacker = _new_username()
    xml = base64.b64decode(_saml_response(federation, idp_certificate, session_name=attacker))
    forged = base64.b64encode(xml.replace(attacker.encode(), victim.encode())).decode()

    body = _post(sandbox, forged, _relay_state(federation)).json()

    assert (body["cause"], body["check"]) == ("invalid_saml_response", "signature")


def test_it_reports_a_missing_relay_state_as_landing_in_the_console(
    sandbox, federation, idp_certificate
) -> None:
    username = _agent(sandbox, federation, _new_username())
    saml_response = _saml_response(federation, idp_certificate, session_name=username)

    reply = _post(sandbox, saml_response, "")

    body = reply.json()
    assert (body["ok"], body["cause"], body["error"]) == (
        False,
        "relay_state_missing",
        RELAY_STATE_MISSING,
    )


def test_it_refuses_a_role_whose_trust_policy_wants_another_audience(
    sandbox, federation, idp_certificate
) -> None:
    username = _agent(sandbox, federation, _new_username())
    saml_response = _saml_response(
        federation, idp_certificate, session_name=username, role="regional_audience_only"
    )

    reply = _post(sandbox, saml_response, _relay_state(federation))

    assert reply.status_code == 403
    body = reply.json()
    assert (body["cause"], body["check"], body["error"]) == (
        "assume_role_denied",
        "trust_policy",
        NOT_AUTHORIZED_TO_ASSUME_ROLE,
    )


def test_it_refuses_a_relay_state_for_an_unknown_instance(
    sandbox, federation, idp_certificate
) -> None:
    username = _agent(sandbox, federation, _new_username())
    saml_response = _saml_response(federation, idp_certificate, session_name=username)
    unknown = _relay_state(federation).replace(federation.instance_id, str(uuid.uuid4()))

    body = _post(sandbox, saml_response, unknown).json()

    assert (body["cause"], body["check"]) == ("instance_unavailable", "connect_instance")


@pytest.mark.parametrize(
    ("seconds", "error"),
    [("43201", INVALID_SAML_RESPONSE), ("7200", SESSION_DURATION_TOO_LONG)],
)
def test_it_refuses_a_session_duration_past_the_range_or_the_roles_maximum(
    sandbox, federation, idp_certificate, seconds, error
) -> None:
    # The roles here keep IAM's default maximum session duration, one hour.
    username = _agent(sandbox, federation, _new_username())
    saml_response = _saml_response(
        federation,
        idp_certificate,
        session_name=username,
        extra={SESSION_DURATION_ATTRIBUTE: [seconds]},
    )

    body = _post(sandbox, saml_response, _relay_state(federation)).json()

    assert body["ok"] is False
    assert body["check"] == "session_duration"
    assert body["error"] == error


def test_it_accepts_only_post(sandbox) -> None:
    reply = requests.get(
        sandbox.endpoints["aws_signin_url"], verify=sandbox.endpoints["ca_bundle"], timeout=30
    )
    assert reply.status_code == 405
    assert reply.headers["Allow"] == "POST"


def test_it_takes_the_role_the_user_picks_when_the_idp_sends_several(
    sandbox, federation, idp_certificate
) -> None:
    username = _agent(sandbox, federation, _new_username())
    roles = [
        f"{federation.role_arns['other_instance_only']},{federation.provider_arn}",
        f"{federation.provider_arn},{federation.role_arns['userid_form']}",
    ]
    saml_response = signed_saml_response(
        issuer=IDP_ENTITY_ID,
        audience="urn:amazon:webservices",
        recipient=GLOBAL_SIGNIN,
        name_id=username,
        attributes={
            ROLE_ATTRIBUTE: roles,
            ROLE_SESSION_NAME_ATTRIBUTE: [username],
            "https://aws.amazon.com/SAML/Attributes/SessionDuration": ["3600"],
        },
        certificate=idp_certificate,
    )

    first = _post(sandbox, saml_response, _relay_state(federation)).json()
    picked = requests.post(
        sandbox.endpoints["aws_signin_url"],
        data={
            "SAMLResponse": saml_response,
            "RelayState": _relay_state(federation),
            "role": federation.role_arns["userid_form"],
        },
        headers={"Accept": "application/json"},
        verify=sandbox.endpoints["ca_bundle"],
        allow_redirects=False,
        timeout=30,
    ).json()

    assert first["cause"] == "no_federation_permission"
    assert picked["ok"] is True, picked
    assert picked["role_arn"] == federation.role_arns["userid_form"]


def test_it_refuses_an_oversized_post(sandbox) -> None:
    reply = requests.post(
        sandbox.endpoints["aws_signin_url"],
        data={"SAMLResponse": "A" * (MAX_FORM_BYTES + 1), "RelayState": ""},
        verify=sandbox.endpoints["ca_bundle"],
        allow_redirects=False,
        timeout=30,
    )
    assert reply.status_code == 413


@pytest.mark.parametrize(
    ("role", "session_case", "check"),
    [
        ("other_instance_only", str, "federation_permission"),
        ("regional_audience_only", str, "trust_policy"),
        ("instance_id_form", str.upper, "connect_user"),
    ],
)
def test_the_inspector_and_the_sandbox_reach_the_same_verdict_each_on_its_own(
    sandbox, federation, idp_certificate, role, session_case, check
) -> None:
    """The sandbox's sign-in shares no code with the wizard's inspector (import_graph --check):
    given the same broken response, each decides by itself, so a wrong idea of AWS in either
    shows here as a disagreement."""
    from provisioning.aws.signin_facts import _instance, _provider, _role
    from provisioning.signin_checks.saml_response import decode_saml_response
    from provisioning.signin_checks.sign_in_chain import check_sign_in, what_aws_knows

    username = _agent(sandbox, federation, _new_username())
    saml_response = _saml_response(
        federation, idp_certificate, session_name=session_case(username), role=role
    )
    relay_state = _relay_state(federation)
    region = sandbox.endpoints["aws_region"]
    facts = {
        "provider_metadata": _provider(_client(sandbox, "iam"), federation.provider_arn),
        "roles": _role(_client(sandbox, "iam"), federation.role_arns[role]),
        "instance": _instance(
            _client(sandbox, "connect"), federation.instance_id, region, session_case(username)
        ),
    }

    sandbox_verdict = _post(sandbox, saml_response, relay_state).json()
    inspector = check_sign_in(
        decode_saml_response(saml_response),
        relay_state,
        what_aws_knows(facts, now=datetime.now(UTC)),
    ).first_failure

    assert sandbox_verdict["ok"] is False
    assert inspector is not None
    assert (sandbox_verdict["check"], sandbox_verdict["cause"]) == (inspector.key, inspector.cause)
    assert sandbox_verdict["check"] == check
