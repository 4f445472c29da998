"""Judging what was read of a federation, link by link: the certificate's expiry, the trust's
SAML:aud, and Connect usernames against what the IdP sends (no cloud needed: the reads are data)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from provisioning.federation_check.judge import judge
from provisioning.federation_check.messages import finding_text
from provisioning.federation_check.result import EXIT_BROKEN, EXIT_HEALTHY, FederationCheck
from provisioning.saml import parse_idp_metadata
from sandbox import saml_idp

# Certificates are issued valid from now on; the check is judged at a moment after that.
NOW = dt.datetime.now(dt.UTC)
ACCOUNT = "123456789012"
INSTANCE_ID = "11111111-2222-4333-8444-555555555555"
REGION = "ap-northeast-1"
PROVIDER = f"arn:aws:iam::{ACCOUNT}:saml-provider/Contoso"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/ConnectAgents"
INSTANCE_ARN = f"arn:aws:connect:{REGION}:{ACCOUNT}:instance/{INSTANCE_ID}"
ENTITY_ID = "https://sts.windows.net/contoso/"


def metadata(not_after: dt.datetime) -> str:
    return saml_idp.idp_metadata(
        entity_id=ENTITY_ID,
        certificate=saml_idp.issue_signing_certificate("CN=Contoso", not_after=not_after),
        sso_url="https://login.example/sso",
    )


def trust(audience: str) -> dict[str, Any]:
    return {
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": PROVIDER},
                "Action": "sts:AssumeRoleWithSAML",
                "Condition": {"StringEquals": {"SAML:aud": audience}},
            }
        ]
    }


FEDERATE = {
    "Statement": [
        {
            "Effect": "Allow",
            "Action": "connect:GetFederationToken",
            "Resource": f"{INSTANCE_ARN}/user/${{aws:userid}}",
        }
    ]
}


def judged(
    *,
    not_after: dt.datetime = NOW + dt.timedelta(days=400),
    audience: str = "https://signin.aws.amazon.com/saml",
    people: list[str] = ["ana@contoso.jp"],  # noqa: B006 - read only
    usernames: list[str] = ["ana@contoso.jp"],  # noqa: B006 - read only
    now: dt.datetime = NOW,
    held: str = "",
) -> FederationCheck:
    """`held`: what IAM holds for the provider, when not the IdP's metadata."""
    document = metadata(not_after)
    parsed = parse_idp_metadata(document, check_dates=False)
    app = {
        "app_id": "app",
        "name": "Amazon Connect",
        "enabled": True,
        "sso_mode": "saml",
        "identifiers": ["https://signin.aws.amazon.com/saml#contoso"],
        "reply_urls": ["https://signin.aws.amazon.com/saml"],
        "relay_state": f"https://{REGION}.console.aws.amazon.com/connect/federate/{INSTANCE_ID}",
        "metadata": {
            "entity_id": ENTITY_ID,
            "fingerprints": sorted(parsed.fingerprints),
            "not_after": parsed.certificate.not_after.isoformat(),
        },
        "role_values": [f"{ROLE},{PROVIDER}"],
        "claims": {"role": "assignedroles", "session_name": "userprincipalname"},
        "people": [{"login": name, "session_name": name, "via": ""} for name in people],
    }
    connect = {
        "instance": {
            "instance_id": INSTANCE_ID,
            "alias": "contoso",
            "arn": INSTANCE_ARN,
            "status": "ACTIVE",
            "identity_management_type": "SAML",
        },
        "usernames": usernames,
    }
    iam = {
        "providers": {PROVIDER: held or document},
        "roles": {
            ROLE: {
                "arn": ROLE,
                "role_id": "AROAEXAMPLE",
                "trust_policy": trust(audience),
                "max_session_duration": 3600,
                "policies": [{"name": "federate", "document": FEDERATE}],
            }
        },
    }
    check = FederationCheck(
        aws_connection="a", region=REGION, instance="contoso", idp_connection="i", idp="entra"
    )
    judge(check, app=app, connect=connect, iam=iam, now=now)
    return check


def codes(check: FederationCheck) -> list[tuple[str, str, str]]:
    return [(f.link, f.code, f.severity) for f in check.findings]


def test_it_finds_nothing_wrong_with_a_sound_federation() -> None:
    check = judged()

    assert codes(check) == []
    assert check.exit_code == EXIT_HEALTHY


@pytest.mark.parametrize(
    ("checked_after_days", "finding", "exit_code"),
    [
        (10, ("idp_app", "certificate_expiring", "warning"), EXIT_HEALTHY),
        (71, ("idp_app", "certificate_expired", "broken"), EXIT_BROKEN),
    ],
)
def test_it_warns_before_the_signing_certificate_expires_and_breaks_after(
    checked_after_days: int, finding: tuple[str, str, str], exit_code: int
) -> None:
    # A certificate valid 70 days: 60 days left after 10, expired after 71.
    check = judged(
        not_after=NOW + dt.timedelta(days=70),
        now=NOW + dt.timedelta(days=checked_after_days),
    )

    assert codes(check) == [finding]
    assert check.exit_code == exit_code
    assert check.link("idp_app").state == finding[2]


def test_it_names_a_trust_that_expects_another_audience() -> None:
    check = judged(audience="https://ap-northeast-1.signin.aws.amazon.com/saml")

    assert codes(check) == [("federation_role", "role_trust_refuses", "broken")]


def test_it_stores_why_the_providers_metadata_can_not_be_read() -> None:
    check = judged(held="<md:EntityDescriptor/>")

    assert codes(check) == [("saml_provider", "provider_metadata_unreadable", "broken")]
    # Stored as JSON with the check, read back for the page.
    (finding,) = FederationCheck.from_json(json.loads(json.dumps(check.to_json()))).findings
    assert "unbound prefix" in finding_text(finding)["what"], finding_text(finding)


def test_it_sorts_people_and_users_that_can_not_meet() -> None:
    check = judged(
        people=["ana@contoso.jp", "Ben@contoso.jp", "chie@contoso.jp", "d"],
        usernames=["ana@contoso.jp", "ben@contoso.jp", "ops-admin"],
    )

    assert codes(check) == [
        ("connect_users", "session_name_invalid", "broken"),
        ("connect_users", "username_case_differs", "broken"),
        ("connect_users", "person_without_user", "broken"),
        ("connect_users", "user_nobody_signs_in_as", "warning"),
    ]
    by_code = {f.code: f.params["names"] for f in check.findings}
    assert by_code["username_case_differs"] == "Ben@contoso.jp"
    assert by_code["person_without_user"] == "chie@contoso.jp"
    assert by_code["user_nobody_signs_in_as"] == "ben@contoso.jp, ops-admin"
