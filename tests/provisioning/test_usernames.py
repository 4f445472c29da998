"""The username rules: what Connect (SAML instances) and STS's RoleSessionName both accept."""

from __future__ import annotations

import pytest

from provisioning import usernames
from provisioning.usernames import suggest_username
from sandbox.directory import seed_directory


def check_username(value: str) -> list[str]:
    """The refusals as an English-speaking admin reads them."""
    return [str(problem) for problem in usernames.check_username(value)]


def _awkward(reason_word: str) -> str:
    directory = seed_directory(domain="example.com")
    return next(p.login for p in directory.people if reason_word in p.awkward)


def test_it_accepts_an_email_and_a_plain_name() -> None:
    assert check_username("keiko.mcdonald@example.com") == []
    assert check_username("agent_01-tokyo") == []


def test_it_accepts_mixed_case_as_it_is() -> None:
    login = _awkward("mixed case")
    assert login != login.lower()
    assert check_username(login) == []
    # Changing the case is never offered: the IdP sends the login as it is.
    assert suggest_username(login) == ""


def test_it_refuses_an_apostrophe_and_suggests_the_name_without_it() -> None:
    login = _awkward("STS rejects")
    problems = check_username(login)
    assert any("“'”" in problem for problem in problems)
    assert login.replace("'", "") in problems[-1]
    assert check_username(suggest_username(login)) == []


def test_it_refuses_more_than_64_characters_without_truncating() -> None:
    login = _awkward("over 64")
    assert len(login) > 64
    problems = check_username(login)
    assert f"{len(login)} characters long" in problems[0]
    assert suggest_username(login) == ""
    assert check_username("a" * 64) == []


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("", "empty"),
        ("x", "at least 2"),
        ("testuser@example", "email"),
        ("a@b@example.com", "email"),
        ("sato+tokyo@example.com", "“+”"),
        ("山田@example.com", "“山”"),
        ("ta ro", "a space"),
    ],
)
def test_it_explains_each_refusal(value: str, words: str) -> None:
    problems = check_username(value)
    assert problems
    assert any(words in problem for problem in problems)
