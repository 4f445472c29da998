"""The sandbox's own IAM policy evaluation (sandbox/aws/policy_evaluation.py), on the rules the IAM
User Guide states; the sign-in endpoint and the sandbox STS decide with it."""

from __future__ import annotations

from sandbox.aws.policy_evaluation import Ask, decide

INSTANCE = (
    "arn:aws:connect:ap-northeast-1:123456789012:instance/11111111-2222-3333-4444-555555555555"
)
ASK = Ask(
    action="connect:GetFederationToken",
    resource=f"{INSTANCE}/user/AROAEXAMPLE:agent@example.com",
    keys={
        "aws:userid": "AROAEXAMPLE:agent@example.com",
        "connect:InstanceId": "11111111-2222-3333-4444-555555555555",
    },
)


def _policy(*statements: dict) -> list[tuple[str, dict]]:
    return [("policy", {"Version": "2012-10-17", "Statement": list(statements)})]


def test_an_allow_on_the_user_resource_with_the_userid_variable_allows() -> None:
    allow = {
        "Effect": "Allow",
        "Action": "connect:*",
        "Resource": f"{INSTANCE}/user/${{aws:userid}}",
    }

    assert decide(_policy(allow), ASK).allowed


def test_an_instance_condition_for_another_instance_does_not_allow() -> None:
    other = {
        "Effect": "Allow",
        "Action": "connect:GetFederationToken",
        "Resource": "*",
        "Condition": {
            "StringEquals": {"connect:InstanceId": "99999999-2222-3333-4444-555555555555"}
        },
    }

    decision = decide(_policy(other), ASK)

    assert not decision.allowed
    assert "no statement allows" in decision.why


def test_an_explicit_deny_wins_over_an_allow() -> None:
    allow = {"Effect": "Allow", "Action": "*", "Resource": "*"}
    deny = {"Effect": "Deny", "Action": "connect:Get*", "Resource": "*"}

    decision = decide(_policy(allow, deny), ASK)

    assert not decision.allowed
    assert "explicitly denied" in decision.why


def test_a_failed_condition_on_one_allow_leaves_another_allow_standing() -> None:
    """moto's checker turns a failed condition into a deny; IAM just skips the statement."""
    other = {
        "Effect": "Allow",
        "Action": "connect:GetFederationToken",
        "Resource": "*",
        "Condition": {"StringEquals": {"connect:InstanceId": "another"}},
    }
    allow = {"Effect": "Allow", "Action": "connect:GetFederationToken", "Resource": "*"}

    assert decide(_policy(other, allow), ASK).allowed


def test_missing_keys_fail_positive_operators_and_pass_negated_and_ifexists_ones() -> None:
    def with_condition(condition: dict) -> bool:
        statement = {"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": condition}
        return decide(_policy(statement), ASK).allowed

    assert not with_condition({"StringEquals": {"aws:SourceIp": "10.0.0.1"}})
    assert with_condition({"StringNotEquals": {"aws:SourceIp": "10.0.0.1"}})
    assert with_condition({"StringEqualsIfExists": {"aws:SourceIp": "10.0.0.1"}})
    assert with_condition({"Null": {"aws:SourceIp": "true"}})


def test_a_trust_policy_checks_the_federated_principal_and_saml_aud() -> None:
    provider = "arn:aws:iam::123456789012:saml-provider/Entra"
    trust = {
        "Effect": "Allow",
        "Principal": {"Federated": provider},
        "Action": "sts:AssumeRoleWithSAML",
        "Condition": {"StringEquals": {"SAML:aud": "https://signin.aws.amazon.com/saml"}},
    }

    def ask(principal: str, aud: str) -> bool:
        request = Ask(
            action="sts:AssumeRoleWithSAML",
            principal=("Federated", principal),
            keys={"SAML:aud": aud},
        )
        return decide(_policy(trust), request).allowed

    assert ask(provider, "https://signin.aws.amazon.com/saml")
    assert not ask(provider, "https://ap-northeast-1.signin.aws.amazon.com/saml")
    assert not ask(provider + "-other", "https://signin.aws.amazon.com/saml")


def test_an_operator_it_does_not_model_is_named_not_guessed() -> None:
    statement = {
        "Effect": "Allow",
        "Action": "*",
        "Resource": "*",
        "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}},
    }

    decision = decide(_policy(statement), ASK)

    assert not decision.allowed
    assert "condition operator IpAddress" in decision.why
