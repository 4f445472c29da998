"""The sign-in endpoint's checks on the SAML response itself and on the relay state, with the
sandbox IdP helpers signing real responses."""

from __future__ import annotations

import base64
import datetime as dt

import pytest

from provisioning.signin_checks.refusals import (
    INVALID_SAML_RESPONSE,
    ISSUER_NOT_IN_PROVIDER,
    RELAY_STATE_MISSING,
    ROLE_SESSION_NAME_PATTERN,
    ROLE_SESSION_NAME_REQUIRED,
    Cause,
    SignInRefused,
)
from provisioning.signin_checks.relay_state import parse_relay_state
from provisioning.signin_checks.saml_response import (
    CLOCK_SKEW,
    CheckedAssertion,
    RolePair,
    check_saml_response,
    claimed_role_pair,
    decode_saml_response,
    parse_idp_metadata,
    parse_role_pair,
)
from provisioning.steps.federation_role import trust_policy
from sandbox.aws.sts_saml import RoleFacts, check_saml_assertion
from sandbox.saml_idp import (
    ROLE_ATTRIBUTE,
    ROLE_SESSION_NAME_ATTRIBUTE,
    SigningCertificate,
    idp_metadata,
    issue_signing_certificate,
    moved_in_time,
    signed_saml_response,
)

ISSUER = "https://sts.windows.net/5a1d2b3c-0000-4000-8000-00000000aaaa/"
GLOBAL_SIGNIN = "https://signin.aws.amazon.com/saml"
ROLE_ARN = "arn:aws:iam::123456789012:role/ConnectFederation"
PROVIDER_ARN = "arn:aws:iam::123456789012:saml-provider/EntraSandbox"
INSTANCE_ID = "11111111-2222-4333-8444-555555555555"


@pytest.fixture(scope="module")
def idp_certificate() -> SigningCertificate:
    return issue_signing_certificate("CN=Microsoft Azure Federated SSO Certificate")


@pytest.fixture(scope="module")
def other_certificate() -> SigningCertificate:
    return issue_signing_certificate("CN=Someone Else")


def _metadata(certificate: SigningCertificate, entity_id: str = ISSUER) -> str:
    return idp_metadata(
        entity_id=entity_id, certificate=certificate, sso_url="https://idp.example/sso"
    )


def _response(
    certificate: SigningCertificate,
    *,
    attributes: dict[str, list[str]] | None = None,
    audience: str = GLOBAL_SIGNIN,
    recipient: str = GLOBAL_SIGNIN,
    issuer: str = ISSUER,
    now: dt.datetime | None = None,
) -> str:
    return signed_saml_response(
        issuer=issuer,
        audience=audience,
        recipient=recipient,
        name_id="alice@example.com",
        attributes=attributes
        or {
            ROLE_ATTRIBUTE: [f"{ROLE_ARN},{PROVIDER_ARN}"],
            ROLE_SESSION_NAME_ATTRIBUTE: ["alice@example.com"],
        },
        certificate=certificate,
        now=now,
    )


def _check(saml_response: str, metadata_xml: str, chosen_role: str = "") -> CheckedAssertion:
    xml = decode_saml_response(saml_response)
    claimed = claimed_role_pair(xml, chosen_role)
    return check_saml_response(
        xml,
        parse_idp_metadata(metadata_xml),
        claimed=claimed,
        chosen_role_arn=chosen_role,
        now=dt.datetime.now(dt.UTC),
    )


def _refusal(saml_response: str, metadata_xml: str) -> SignInRefused:
    with pytest.raises(SignInRefused) as caught:
        _check(saml_response, metadata_xml)
    return caught.value


def test_it_accepts_a_response_signed_by_the_providers_certificate(idp_certificate) -> None:
    checked = _check(_response(idp_certificate), _metadata(idp_certificate))
    assert checked.role_pair == RolePair(role_arn=ROLE_ARN, provider_arn=PROVIDER_ARN)
    assert checked.role_session_name == "alice@example.com"
    assert checked.recipient == GLOBAL_SIGNIN
    assert checked.issuer == ISSUER


def test_it_refuses_a_response_signed_by_another_key(idp_certificate, other_certificate) -> None:
    refusal = _refusal(_response(other_certificate), _metadata(idp_certificate))
    assert refusal.cause is Cause.INVALID_SAML_RESPONSE
    assert refusal.check == "signature"
    assert refusal.error == INVALID_SAML_RESPONSE
    assert "not among the IAM SAML provider's signing certificates" in str(refusal.detail)


def test_it_refuses_an_assertion_altered_after_signing(idp_certificate) -> None:
    xml = base64.b64decode(_response(idp_certificate))
    altered = xml.replace(b">alice@example.com<", b">mallory@example.com<")
    assert altered != xml
    refusal = _refusal(base64.b64encode(altered).decode(), _metadata(idp_certificate))
    assert (refusal.cause, refusal.check) == (Cause.INVALID_SAML_RESPONSE, "signature")
    assert "changed after the IdP signed it" in str(refusal.detail)


def test_it_refuses_a_second_unsigned_assertion_wrapped_around_the_signed_one(
    idp_certificate,
) -> None:
    xml = base64.b64decode(_response(idp_certificate))
    start = xml.index(b"<saml:Assertion")
    forged = xml[start : xml.index(b"</saml:Assertion>") + len(b"</saml:Assertion>")].replace(
        b">alice@example.com<", b">mallory@example.com<"
    )
    wrapped = xml[:start] + forged + xml[start:]
    refusal = _refusal(base64.b64encode(wrapped).decode(), _metadata(idp_certificate))
    assert (refusal.cause, refusal.check) == (Cause.INVALID_SAML_RESPONSE, "xml")


def test_it_refuses_a_role_attribute_whose_name_has_the_wrong_case(idp_certificate) -> None:
    attributes = {
        ROLE_ATTRIBUTE.replace("Role", "role"): [f"{ROLE_ARN},{PROVIDER_ARN}"],
        ROLE_SESSION_NAME_ATTRIBUTE: ["alice@example.com"],
    }
    refusal = _refusal(
        _response(idp_certificate, attributes=attributes), _metadata(idp_certificate)
    )
    assert refusal.error == INVALID_SAML_RESPONSE
    assert refusal.check == "role_attribute"
    assert "https://aws.amazon.com/SAML/Attributes/role" in str(refusal.detail)


def test_it_refuses_a_missing_role_session_name_with_the_sts_message(idp_certificate) -> None:
    attributes = {
        ROLE_ATTRIBUTE: [f"{ROLE_ARN},{PROVIDER_ARN}"],
        "https://aws.amazon.com/SAML/Attributes/rolesessionname": ["alice@example.com"],
    }
    refusal = _refusal(
        _response(idp_certificate, attributes=attributes), _metadata(idp_certificate)
    )
    assert refusal.cause is Cause.INVALID_SAML_RESPONSE
    assert refusal.error == ROLE_SESSION_NAME_REQUIRED
    assert "case-sensitive" in str(refusal.detail)


def test_it_refuses_a_role_session_name_outside_the_sts_pattern(idp_certificate) -> None:
    attributes = {
        ROLE_ATTRIBUTE: [f"{ROLE_ARN},{PROVIDER_ARN}"],
        ROLE_SESSION_NAME_ATTRIBUTE: ["Alice Example"],
    }
    refusal = _refusal(
        _response(idp_certificate, attributes=attributes), _metadata(idp_certificate)
    )
    assert refusal.error == ROLE_SESSION_NAME_PATTERN


def test_it_reads_role_pairs_in_either_order_and_refuses_spaces() -> None:
    pair = RolePair(role_arn=ROLE_ARN, provider_arn=PROVIDER_ARN)
    assert parse_role_pair(f"{ROLE_ARN},{PROVIDER_ARN}") == pair
    assert parse_role_pair(f"{PROVIDER_ARN},{ROLE_ARN}") == pair
    assert parse_role_pair(f"{ROLE_ARN}, {PROVIDER_ARN}") is None
    assert parse_role_pair(ROLE_ARN) is None


def test_it_takes_the_first_role_or_the_one_chosen(idp_certificate) -> None:
    second_role = ROLE_ARN.replace("ConnectFederation", "ConnectSupervisors")
    attributes = {
        ROLE_ATTRIBUTE: [
            "not a pair",
            f"{ROLE_ARN},{PROVIDER_ARN}",
            f"{PROVIDER_ARN},{second_role}",
        ],
        ROLE_SESSION_NAME_ATTRIBUTE: ["alice@example.com"],
    }
    response = _response(idp_certificate, attributes=attributes)
    metadata = _metadata(idp_certificate)
    assert _check(response, metadata).role_pair.role_arn == ROLE_ARN
    assert _check(response, metadata, chosen_role=second_role).role_pair.role_arn == second_role


@pytest.mark.parametrize(
    "audience",
    [
        GLOBAL_SIGNIN,
        "https://ap-northeast-1.signin.aws.amazon.com/saml",
        "urn:amazon:webservices",
    ],
)
def test_it_accepts_the_audiences_aws_accepts(idp_certificate, audience) -> None:
    assert _check(_response(idp_certificate, audience=audience), _metadata(idp_certificate))


@pytest.mark.parametrize(
    "audience",
    ["https://signin.aws.amazon.com/saml#connect-1", "https://idp.example/app", ""],
)
def test_it_refuses_other_audiences(idp_certificate, audience) -> None:
    refusal = _refusal(_response(idp_certificate, audience=audience), _metadata(idp_certificate))
    assert (refusal.check, refusal.error) == ("audience", INVALID_SAML_RESPONSE)


def test_it_refuses_a_recipient_that_is_not_aws_sign_in(idp_certificate) -> None:
    response = _response(idp_certificate, recipient="https://127.0.0.1:8443/saml")
    assert _refusal(response, _metadata(idp_certificate)).check == "recipient"


def test_it_accepts_a_regional_recipient(idp_certificate) -> None:
    regional = "https://ap-northeast-1.signin.aws.amazon.com/saml"
    checked = _check(_response(idp_certificate, recipient=regional), _metadata(idp_certificate))
    assert checked.recipient == regional


def test_it_refuses_expired_and_future_assertions_beyond_the_clock_skew(idp_certificate) -> None:
    now = dt.datetime.now(dt.UTC)
    lifetime = dt.timedelta(minutes=5)  # signed_saml_response's default
    expired = _response(idp_certificate, now=now - lifetime - CLOCK_SKEW - dt.timedelta(seconds=5))
    future = _response(idp_certificate, now=now + CLOCK_SKEW + dt.timedelta(minutes=2))
    within_skew = _response(idp_certificate, now=now - lifetime - CLOCK_SKEW / 2)
    metadata = _metadata(idp_certificate)
    assert _refusal(expired, metadata).check == "time_window"
    assert "expired" in str(_refusal(expired, metadata).detail)
    assert _refusal(future, metadata).check == "time_window"
    assert _check(within_skew, metadata)


def test_it_refuses_an_issuer_that_is_not_the_providers_entity_id(idp_certificate) -> None:
    refusal = _refusal(
        _response(idp_certificate, issuer="http://www.okta.com/exk1"), _metadata(idp_certificate)
    )
    assert (refusal.check, refusal.error) == ("issuer", ISSUER_NOT_IN_PROVIDER)


def test_it_verifies_against_any_signing_certificate_of_the_metadata(
    idp_certificate, other_certificate
) -> None:
    """During a certificate rollover the metadata lists the old and the new key."""
    metadata = _metadata(other_certificate).replace(
        "</md:KeyDescriptor>",
        "</md:KeyDescriptor>"
        '<md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>'
        f"{idp_certificate.cert_base64}"
        "</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>",
        1,
    )
    assert len(parse_idp_metadata(metadata).signing_certificates) == 2
    assert _check(_response(idp_certificate), metadata)


def test_it_refuses_xml_with_a_doctype(idp_certificate) -> None:
    xml = base64.b64decode(_response(idp_certificate))
    bomb = b'<!DOCTYPE r [<!ENTITY a "aaaaaaaa">]>' + xml
    refusal = _refusal(base64.b64encode(bomb).decode(), _metadata(idp_certificate))
    assert (refusal.check, refusal.error) == ("xml", INVALID_SAML_RESPONSE)


def test_it_refuses_a_response_that_is_not_base64() -> None:
    with pytest.raises(SignInRefused) as caught:
        decode_saml_response("<samlp:Response/>")
    assert caught.value.check == "form"


def test_it_reads_the_connect_relay_state() -> None:
    base = f"https://ap-northeast-1.console.aws.amazon.com/connect/federate/{INSTANCE_ID}"
    plain = parse_relay_state(base)
    ccp = parse_relay_state(base + "?destination=%2Fccp-v2")
    custom = parse_relay_state(base + "?destination=https://connect.example.com/ccp")
    assert (plain.region, plain.instance_id) == ("ap-northeast-1", INSTANCE_ID)
    assert plain.connect_url("acme") == "https://acme.my.connect.aws/connect/home"
    assert ccp.connect_url("acme") == "https://acme.my.connect.aws/ccp-v2"
    assert custom.connect_url("acme") == "https://connect.example.com/ccp"


@pytest.mark.parametrize(
    ("relay_state", "cause"),
    [
        ("", Cause.RELAY_STATE_MISSING),
        ("https://console.aws.amazon.com/", Cause.RELAY_STATE_INVALID),
        (
            f"https://ap-northeast-1.console.aws.amazon.com/connect/login/{INSTANCE_ID}",
            Cause.RELAY_STATE_INVALID,
        ),
        (
            f"https://ap-northeast-1.console.aws.amazon.com/connect/federate/{INSTANCE_ID}"
            "?destination=javascript:alert(1)",
            Cause.RELAY_STATE_INVALID,
        ),
    ],
)
def test_it_refuses_relay_states_that_do_not_reach_connect(relay_state, cause) -> None:
    with pytest.raises(SignInRefused) as caught:
        parse_relay_state(relay_state)
    assert caught.value.cause is cause
    if cause is Cause.RELAY_STATE_MISSING:
        assert caught.value.error == RELAY_STATE_MISSING


def test_it_accepts_a_response_signed_by_an_expired_certificate_as_aws_does(
    idp_certificate,
) -> None:
    """IAM does not look at a metadata certificate's dates during SAML authentication (IAM User
    Guide, "Create a SAML identity provider in IAM"); the key alone decides, here and in the
    sandbox's STS (sandbox/aws/sts_saml.py). A certificate whose key did not sign is still
    refused, expired or not."""
    expired = moved_in_time(idp_certificate, dt.datetime.now(dt.UTC) - dt.timedelta(days=1))

    checked = _check(_response(expired), _metadata(expired))
    assert checked.role_pair == RolePair(role_arn=ROLE_ARN, provider_arn=PROVIDER_ARN)
    sandbox_checked = check_saml_assertion(
        saml_response=_response(expired),
        role_arn=ROLE_ARN,
        principal_arn=PROVIDER_ARN,
        provider_metadata=_metadata(expired),
        role=RoleFacts(
            arn=ROLE_ARN,
            trust_policy=trust_policy(PROVIDER_ARN, "ap-northeast-1"),
            max_session_duration_s=3600,
        ),
    )
    assert sandbox_checked.role_arn == ROLE_ARN
    other = moved_in_time(
        issue_signing_certificate("CN=Someone Else"), dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    )
    assert _refusal(_response(other), _metadata(expired)).check == "signature"
