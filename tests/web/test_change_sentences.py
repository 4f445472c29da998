"""Plans and outputs in the admin's words: a sentence per change kind, documents as JSON,
booleans and empty values as words, what rollback deletes by its name."""

from __future__ import annotations

import json

import pytest
from django.utils import translation

from wizard.change_sentences import (
    change_sentence,
    deletion_sentence,
    labelled_values,
    users_sentence,
    value_words,
)

TRUST = json.dumps(
    {
        "Statement": [
            {
                "Principal": {"Federated": "arn:aws:iam::1:saml-provider/ConnectSSO-sales"},
                "Action": "sts:AssumeRoleWithSAML",
            }
        ]
    }
)

ROLE_ARN = "arn:aws:iam::1:role/ConnectSSO-sales"


@pytest.mark.parametrize(
    ("action", "sentence"),
    [
        ("create", "Create IAM SAML provider EntraID-demo."),
        ("update", "Update IAM SAML provider EntraID-demo."),
        ("adopt", "Use the existing IAM SAML provider EntraID-demo, as it is."),
        ("delete", "Delete IAM SAML provider EntraID-demo."),
        ("nothing", "IAM SAML provider EntraID-demo: nothing to change."),
    ],
)
def test_it_reads_each_change_kind_as_a_sentence(action: str, sentence: str) -> None:
    change = {"action": action, "resource_type": "saml_provider", "name": "EntraID-demo"}
    assert change_sentence(change) == sentence


@pytest.mark.parametrize(
    ("action", "sentence"),
    [
        ("create", "Add keiko@example.com to the Okta group Connect Agents."),
        ("nothing", "keiko@example.com is already in the Okta group Connect Agents."),
        ("delete", "Remove keiko@example.com from the Okta group Connect Agents."),
    ],
)
def test_a_person_joining_a_group_reads_as_joining(action: str, sentence: str) -> None:
    change = {
        "action": action,
        "resource_type": "okta_group_member",
        "name": "keiko@example.com",
        "details": {"group": "Connect Agents"},
    }
    assert change_sentence(change) == sentence


@pytest.mark.parametrize(
    ("language", "count", "sentence"),
    [
        ("en", 1, "Create 1 Connect user."),
        ("en", 43, "Create 43 Connect users."),
        ("ja", 43, "Connect ユーザーを 43 人作成します。"),
    ],
)
def test_a_users_summary_row_reads_as_a_counted_sentence_in_the_readers_language(
    language: str, count: int, sentence: str
) -> None:
    # The step names the row in English for the CLI; the page words it from the count.
    change = {
        "action": "create",
        "resource_type": "connect_users",
        "name": f"{count} users to create",
        "details": {"action": "create", "count": count},
    }

    with translation.override(language):
        assert change_sentence(change) == sentence


def test_every_kind_of_users_summary_row_has_a_japanese_sentence() -> None:
    kinds = ("create", "update", "delete", "departed", "nothing", "refused")
    with translation.override("ja"):
        sentences = [users_sentence(kind, 3) for kind in kinds]

    assert all("3 人" in sentence and sentence.endswith("。") for sentence in sentences)
    assert len(set(sentences)) == len(kinds)


def test_the_sign_in_test_reads_as_what_it_will_do() -> None:
    change = {"action": "nothing", "resource_type": "sign_in_test", "name": "ana@example.test"}

    assert change_sentence(change) == "Sign in as ana@example.test to test the whole chain."


def test_a_new_role_names_the_provider_that_it_trusts() -> None:
    change = {
        "action": "create",
        "resource_type": "iam_role",
        "name": "ConnectSSO-sales",
        "details": {"trust_policy": TRUST},
    }
    assert change_sentence(change) == (
        "Create IAM role ConnectSSO-sales, trusted by the SAML provider ConnectSSO-sales."
    )


@pytest.mark.parametrize(
    ("language", "action", "sentence"),
    [
        (
            "en",
            "create",
            "Tag the Amazon Connect instance with its federation role ConnectSSO-sales: Connect "
            "ties each user to the role of their first sign-in, so a later run that would give "
            "the instance another role warns you first.",
        ),
        (
            "ja",
            "update",
            "Amazon Connect インスタンスのタグが記録するフェデレーションロールを "
            "ConnectSSO-sales に変更します。",
        ),
    ],
)
def test_the_instance_tag_reads_as_the_role_it_records_and_why(
    language: str, action: str, sentence: str
) -> None:
    change = {
        "action": action,
        "resource_type": "connect_instance_tag",
        "name": "connect-sso-wizard:federation-role",
        "details": {"instance_arn": "arn:aws:connect:r:1:instance/i", "role_arn": ROLE_ARN},
    }

    with translation.override(language):
        assert change_sentence(change) == sentence


def test_values_are_labelled_documents_pretty_and_booleans_words() -> None:
    values = {
        v.key: v
        for v in labelled_values(
            {
                "trust_policy": TRUST,
                "adopted": False,
                "role_arn": "arn:aws:iam::1:role/R",
                "x": None,
            }
        )
    }

    assert values["trust_policy"].block and values["trust_policy"].copyable
    assert values["trust_policy"].text.startswith('{\n  "Statement"')
    assert values["adopted"].text == "No" and not values["adopted"].copyable
    assert values["role_arn"].label == "Role ARN" and values["role_arn"].copyable
    assert values["x"].text == "None"
    assert value_words(True) == "Yes"
    assert value_words(["a", "b"]) == "a, b"


def test_rollback_names_what_it_deletes_by_alias_or_name() -> None:
    instance = {"resource_type": "connect_instance", "identifier": "0f3a-uuid", "alias": "sales"}
    role = {"resource_type": "iam_role", "identifier": "ConnectSSO-sales"}
    policy = {"resource_type": "iam_policy", "identifier": "arn:aws:iam::1:policy/P-Get"}

    assert deletion_sentence(instance) == "Delete Amazon Connect instance sales."
    assert deletion_sentence(role) == "Delete IAM role ConnectSSO-sales."
    assert deletion_sentence(policy) == "Delete IAM policy P-Get."


def test_it_names_an_entra_app_roles_iam_role_and_provider_in_words() -> None:
    change = {
        "action": "create",
        "resource_type": "entra_app_role",
        "name": "arn:aws:iam::1:role/ConnectSSO-sales,arn:aws:iam::1:saml-provider/ConnectSSO-idp",
    }

    english = change_sentence(change)
    with translation.override("ja"):
        japanese = change_sentence({**change, "action": "nothing"})

    assert english == (
        "Create the Entra ID app role that signs people in as the IAM role ConnectSSO-sales "
        "through the SAML provider ConnectSSO-idp."
    )
    assert "arn:" not in english and "arn:" not in japanese
    assert "ConnectSSO-sales" in japanese and "すでにあります" in japanese
