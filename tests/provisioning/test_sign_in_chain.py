"""The sign-in chain on its own, against a made-up picture of AWS: the order of the checks, the
Role pair in either order, the relay state against the instance the admin expects, and what
can't be checked without IAM."""

from __future__ import annotations

import base64
import datetime as dt

import pytest
from django.utils import translation

from provisioning.signin_checks.iam_policy import NamedPolicy
from provisioning.signin_checks.sign_in_chain import (
    CHECK_ORDER,
    KnownInstance,
    KnownRole,
    Outcome,
    WhatAwsKnows,
    check_sign_in,
)
from sandbox.saml_idp import (
    ROLE_ATTRIBUTE,
    ROLE_SESSION_NAME_ATTRIBUTE,
    SigningCertificate,
    idp_metadata,
    issue_signing_certificate,
    signed_saml_response,
)

ISSUER = "https://idp.example/"
SIGNIN = "https://signin.aws.amazon.com/saml"
ROLE = "arn:aws:iam::123456789012:role/ConnectFederation"
PROVIDER = "arn:aws:iam::123456789012:saml-provider/Idp"
INSTANCE = "11111111-2222-4333-8444-555555555555"
OTHER_INSTANCE = "99999999-2222-4333-8444-555555555555"
RELAY = f"https://ap-northeast-1.console.aws.amazon.com/connect/federate/{INSTANCE}"
NOW = dt.datetime.now(dt.UTC)


@pytest.fixture(scope="module")
def certificate() -> SigningCertificate:
    return issue_signing_certificate("CN=idp")


def _xml(certificate: SigningCertificate, *, role_value: str, session_name: str) -> bytes:
    return base64.b64decode(
        signed_saml_response(
            issuer=ISSUER,
            audience=SIGNIN,
            recipient=SIGNIN,
            name_id=session_name,
            attributes={ROLE_ATTRIBUTE: [role_value], ROLE_SESSION_NAME_ATTRIBUTE: [session_name]},
            certificate=certificate,
            now=NOW,
        )
    )


def _aws(certificate: SigningCertificate, **overrides: object) -> WhatAwsKnows:
    trust = {
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": PROVIDER},
                "Action": "sts:AssumeRoleWithSAML",
                "Condition": {"StringEquals": {"SAML:aud": SIGNIN}},
            }
        ]
    }
    permission = {
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "connect:GetFederationToken",
                "Resource": "*",
                "Condition": {"StringEquals": {"connect:InstanceId": INSTANCE}},
            }
        ]
    }
    values: dict[str, object] = {
        "now": NOW,
        "provider_metadata": {
            PROVIDER: idp_metadata(entity_id=ISSUER, certificate=certificate, sso_url=ISSUER)
        },
        "roles": {
            ROLE: KnownRole(
                arn=ROLE,
                role_id="AROAEXAMPLE",
                trust_policy=trust,
                max_session_duration=3600,
                policies=(NamedPolicy(name="ConnectFederation", document=permission),),
            )
        },
        "instance": KnownInstance(
            instance_id=INSTANCE,
            region="ap-northeast-1",
            arn=f"arn:aws:connect:ap-northeast-1:123456789012:instance/{INSTANCE}",
            status="ACTIVE",
            identity_management_type="SAML",
            usernames=frozenset({"agent@example.com"}),
        ),
    }
    values.update(overrides)
    return WhatAwsKnows(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize("role_value", [f"{ROLE},{PROVIDER}", f"{PROVIDER},{ROLE}"])
def test_it_passes_every_check_in_order_with_the_role_pair_either_way(
    certificate, role_value
) -> None:
    chain = check_sign_in(
        _xml(certificate, role_value=role_value, session_name="agent@example.com"),
        RELAY,
        _aws(certificate),
    )

    assert [check.key for check in chain.checks] == list(CHECK_ORDER)
    assert all(check.outcome == Outcome.PASSED for check in chain.checks), chain.checks
    assert chain.first_failure is None


def test_it_names_the_relay_state_when_it_goes_to_another_instance_than_expected(
    certificate,
) -> None:
    chain = check_sign_in(
        _xml(certificate, role_value=f"{ROLE},{PROVIDER}", session_name="agent@example.com"),
        RELAY,
        _aws(certificate, instance_id=OTHER_INSTANCE, region="ap-northeast-1"),
    )

    assert chain.first_failure is not None
    assert chain.first_failure.key == "relay_state"
    assert OTHER_INSTANCE in str(chain.first_failure.detail)


def test_it_refuses_a_role_session_name_sts_would_refuse_and_says_the_case_of_a_near_user(
    certificate,
) -> None:
    bad = check_sign_in(
        _xml(certificate, role_value=f"{ROLE},{PROVIDER}", session_name="山田 太郎"),
        RELAY,
        _aws(certificate),
    )
    near = check_sign_in(
        _xml(certificate, role_value=f"{ROLE},{PROVIDER}", session_name="Agent@example.com"),
        RELAY,
        _aws(certificate),
    )

    assert bad.first_failure is not None and bad.first_failure.key == "role_session_name"
    assert "must match" in bad.first_failure.error
    assert near.first_failure is not None and near.first_failure.key == "connect_user"
    assert "differs only in case" in str(near.first_failure.detail)
    # What was found reads in the inspecting admin's language, names and values as they are.
    with translation.override("ja"):
        assert "大文字と小文字" in str(near.first_failure.detail)


def test_it_leaves_what_needs_iam_and_connect_unchecked_with_pasted_metadata(certificate) -> None:
    chain = check_sign_in(
        _xml(certificate, role_value=f"{ROLE},{PROVIDER}", session_name="agent@example.com"),
        RELAY,
        WhatAwsKnows(
            now=NOW,
            pasted_metadata=idp_metadata(entity_id=ISSUER, certificate=certificate, sso_url=ISSUER),
        ),
    )

    outcomes = {check.key: check.outcome for check in chain.checks}
    assert chain.first_failure is None
    assert outcomes["signature"] == Outcome.PASSED
    assert {key for key, outcome in outcomes.items() if outcome == Outcome.NOT_CHECKED} == {
        "role",
        "trust_policy",
        "connect_instance",
        "federation_permission",
        "connect_user",
    }
