"""The sign-in endpoint's IAM policy evaluator: Allow/Deny, wildcards, variables, conditions."""

from __future__ import annotations

from provisioning.signin_checks.iam_policy import (
    NamedPolicy,
    PolicyRequest,
    evaluate_policies,
    wildcard_match,
)

INSTANCE_ID = "11111111-2222-4333-8444-555555555555"
OTHER_INSTANCE_ID = "99999999-2222-4333-8444-555555555555"
INSTANCE_ARN = f"arn:aws:connect:ap-northeast-1:123456789012:instance/{INSTANCE_ID}"
USER_ID = "AROAEXAMPLEROLEID:alice@example.com"
PROVIDER_ARN = "arn:aws:iam::123456789012:saml-provider/EntraSandbox"


def _federation_request(instance_id: str = INSTANCE_ID, user_id: str = USER_ID) -> PolicyRequest:
    arn = f"arn:aws:connect:ap-northeast-1:123456789012:instance/{instance_id}"
    return PolicyRequest(
        action="connect:GetFederationToken",
        resource=f"{arn}/user/{user_id}",
        context={"aws:userid": user_id, "connect:InstanceId": instance_id},
    )


def _policy(*statements: dict) -> list[NamedPolicy]:
    return [NamedPolicy(name="test", document={"Version": "2012-10-17", "Statement": statements})]


INSTANCE_ID_FORM = {
    "Effect": "Allow",
    "Action": "connect:GetFederationToken",
    "Resource": "*",
    "Condition": {"StringEquals": {"connect:InstanceId": INSTANCE_ID}},
}
USERID_RESOURCE_FORM = {
    "Sid": "Statement1",
    "Effect": "Allow",
    "Action": "connect:GetFederationToken",
    "Resource": [f"{INSTANCE_ARN}/user/${{aws:userid}}"],
}


def test_it_allows_the_instance_id_condition_form() -> None:
    decision = evaluate_policies(_policy(INSTANCE_ID_FORM), _federation_request())
    assert decision.allowed
    assert decision.deciding_statement == "test statement 0"


def test_it_refuses_the_instance_id_condition_form_for_another_instance() -> None:
    decision = evaluate_policies(_policy(INSTANCE_ID_FORM), _federation_request(OTHER_INSTANCE_ID))
    assert not decision.allowed
    assert "no statement allows" in str(decision.explanation)


def test_it_allows_the_userid_resource_form_by_filling_the_variable() -> None:
    decision = evaluate_policies(_policy(USERID_RESOURCE_FORM), _federation_request())
    assert decision.allowed
    assert decision.deciding_statement == "test statement Statement1"


def test_it_refuses_the_userid_resource_form_for_another_instance() -> None:
    decision = evaluate_policies(
        _policy(USERID_RESOURCE_FORM), _federation_request(OTHER_INSTANCE_ID)
    )
    assert not decision.allowed


def test_it_does_not_match_a_variable_without_a_value() -> None:
    request = PolicyRequest(
        action="connect:GetFederationToken",
        resource=f"{INSTANCE_ARN}/user/{USER_ID}",
        context={"connect:InstanceId": INSTANCE_ID},
    )
    assert not evaluate_policies(_policy(USERID_RESOURCE_FORM), request).allowed


def test_it_lets_an_explicit_deny_win_over_an_allow() -> None:
    deny = {"Effect": "Deny", "Action": "connect:*", "Resource": "*"}
    decision = evaluate_policies(_policy(INSTANCE_ID_FORM, deny), _federation_request())
    assert not decision.allowed
    assert str(decision.explanation).startswith("explicitly denied by test statement 1")


def test_it_denies_implicitly_when_nothing_matches() -> None:
    other = {"Effect": "Allow", "Action": "connect:ListUsers", "Resource": "*"}
    assert not evaluate_policies(_policy(other), _federation_request()).allowed
    assert not evaluate_policies([], _federation_request()).allowed


def test_it_matches_action_wildcards_case_insensitively() -> None:
    for action in (
        "connect:*",
        "*",
        "connect:Get*",
        "CONNECT:getfederationtoken",
        "connect:GetF?derationToken",
    ):
        statement = {"Effect": "Allow", "Action": action, "Resource": "*"}
        assert evaluate_policies(_policy(statement), _federation_request()).allowed, action


def test_it_matches_resources_case_sensitively_with_wildcards() -> None:
    allowed = {
        "Effect": "Allow",
        "Action": "connect:GetFederationToken",
        "Resource": f"{INSTANCE_ARN}/*",
    }
    upper = {
        "Effect": "Allow",
        "Action": "connect:GetFederationToken",
        "Resource": f"{INSTANCE_ARN.upper()}/*",
    }
    assert evaluate_policies(_policy(allowed), _federation_request()).allowed
    assert not evaluate_policies(_policy(upper), _federation_request()).allowed


def test_it_applies_not_action_and_not_resource() -> None:
    not_action = {"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}
    not_resource = {
        "Effect": "Allow",
        "Action": "connect:GetFederationToken",
        "NotResource": f"{INSTANCE_ARN}/*",
    }
    assert evaluate_policies(_policy(not_action), _federation_request()).allowed
    assert not evaluate_policies(_policy(not_resource), _federation_request()).allowed


def test_it_treats_condition_key_names_case_insensitively() -> None:
    statement = dict(
        INSTANCE_ID_FORM, Condition={"StringEquals": {"CONNECT:instanceid": INSTANCE_ID}}
    )
    assert evaluate_policies(_policy(statement), _federation_request()).allowed


def test_it_evaluates_string_like_and_negated_operators() -> None:
    like = dict(INSTANCE_ID_FORM, Condition={"StringLike": {"aws:userid": "AROA*:*@example.com"}})
    not_equals = dict(
        INSTANCE_ID_FORM, Condition={"StringNotEquals": {"connect:InstanceId": INSTANCE_ID}}
    )
    assert evaluate_policies(_policy(like), _federation_request()).allowed
    assert not evaluate_policies(_policy(not_equals), _federation_request()).allowed


def test_it_handles_missing_condition_keys_as_iam_does() -> None:
    missing_positive = dict(INSTANCE_ID_FORM, Condition={"StringEquals": {"aws:SourceIp": "x"}})
    missing_if_exists = dict(
        INSTANCE_ID_FORM, Condition={"StringEqualsIfExists": {"aws:SourceIp": "x"}}
    )
    missing_negated = dict(INSTANCE_ID_FORM, Condition={"StringNotEquals": {"aws:SourceIp": "x"}})
    null_check = dict(INSTANCE_ID_FORM, Condition={"Null": {"aws:SourceIp": "true"}})
    assert not evaluate_policies(_policy(missing_positive), _federation_request()).allowed
    assert evaluate_policies(_policy(missing_if_exists), _federation_request()).allowed
    assert evaluate_policies(_policy(missing_negated), _federation_request()).allowed
    assert evaluate_policies(_policy(null_check), _federation_request()).allowed


def test_it_requires_every_condition_and_any_listed_value() -> None:
    both = dict(
        INSTANCE_ID_FORM,
        Condition={
            "StringEquals": {"connect:InstanceId": [OTHER_INSTANCE_ID, INSTANCE_ID]},
            "StringLike": {"aws:userid": "AROA*"},
        },
    )
    one_fails = dict(
        INSTANCE_ID_FORM,
        Condition={
            "StringEquals": {"connect:InstanceId": INSTANCE_ID},
            "StringLike": {"aws:userid": "AIDA*"},
        },
    )
    assert evaluate_policies(_policy(both), _federation_request()).allowed
    assert not evaluate_policies(_policy(one_fails), _federation_request()).allowed


def test_it_skips_and_reports_statements_it_cannot_evaluate() -> None:
    unknown = dict(
        INSTANCE_ID_FORM,
        Condition={"ForAnyValue:StringEquals": {"connect:InstanceId": INSTANCE_ID}},
    )
    decision = evaluate_policies(_policy(unknown), _federation_request())
    assert not decision.allowed
    assert "ForAnyValue:StringEquals" in decision.skipped[0]


def test_it_checks_the_federated_principal_and_saml_aud_of_a_trust_policy() -> None:
    trust = [
        NamedPolicy(
            name="trust",
            document={
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Federated": PROVIDER_ARN},
                        "Action": ["sts:AssumeRoleWithSAML", "sts:TagSession"],
                        "Condition": {
                            "StringEquals": {"SAML:aud": "https://signin.aws.amazon.com/saml"}
                        },
                    }
                ],
            },
        )
    ]

    def request(provider: str, aud: str) -> PolicyRequest:
        return PolicyRequest(
            action="sts:AssumeRoleWithSAML",
            principal=("Federated", provider),
            context={"SAML:aud": aud},
        )

    global_url = "https://signin.aws.amazon.com/saml"
    regional_url = "https://ap-northeast-1.signin.aws.amazon.com/saml"
    other_provider = PROVIDER_ARN.replace("EntraSandbox", "Okta")
    assert evaluate_policies(trust, request(PROVIDER_ARN, global_url)).allowed
    assert not evaluate_policies(trust, request(PROVIDER_ARN, regional_url)).allowed
    assert not evaluate_policies(trust, request(other_provider, global_url)).allowed


def test_it_globs_like_iam() -> None:
    assert wildcard_match("a*c", "abbbc")
    assert wildcard_match("a?c", "abc")
    assert not wildcard_match("a?c", "abbc")
    assert not wildcard_match("a.c", "abc")  # a dot is a dot, not a regex wildcard
