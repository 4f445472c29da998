"""Checks that a username can be both a Connect user's Username and the RoleSessionName the IdP
sends, and says what to change when it can't.

Sources:
- STS AssumeRoleWithSAML: RoleSessionName is 2-64 characters matching `[\\w+=,.@-]*` (botocore's
  sts model, shape roleSessionNameType; AWS's `\\w` is ASCII letters, digits and underscore).
- Connect CreateUser: Username (shape AgentUsername, 1-100 characters, no pattern in the model);
  its documentation: "If you are using SAML for identity management, the user name can include up
  to 64 characters from [a-zA-Z0-9_-.\\@]+. Username can include @ only if used in an email
  format" (testuser@example.com is correct, testuser@example is not).
- Sign-in: Connect compares the Username with the RoleSessionName exactly, case included
  (what admins find when they set it up by hand): changing the case is never a fix, it must match
  what the IdP sends.
"""

from __future__ import annotations

import re

from django.utils.translation import gettext_noop

from provisioning.messages import Message, joined

# STS roleSessionNameType: min 2, max 64.
ROLE_SESSION_NAME_MIN_LENGTH = 2
ROLE_SESSION_NAME_MAX_LENGTH = 64
# Connect CreateUser documentation: up to 64 characters on SAML instances.
SAML_USERNAME_MAX_LENGTH = 64
# Characters both rules allow: Connect's [a-zA-Z0-9_-.@] (STS also allows + = , which Connect
# does not).
ALLOWED_CHARACTER = re.compile(r"[A-Za-z0-9_.@-]")
# "@ only if used in an email format": one @, a non-empty name before it, and a domain of at
# least two non-empty labels after it.
EMAIL_FORMAT = re.compile(r"^[^@]+@[^@.]+(\.[^@.]+)+$")


def _disallowed_characters(value: str) -> list[str]:
    return sorted({character for character in value if not ALLOWED_CHARACTER.fullmatch(character)})


def _describe(character: str) -> Message | str:
    if character == " ":
        return Message(gettext_noop("a space"))
    if character.isspace():
        return Message(gettext_noop("a line break or tab"))
    return f"“{character}”"


def suggest_username(value: str) -> str:
    """A username close to `value` that passes every rule (disallowed characters removed), or ""
    when there is no obvious one. Case is kept: it must match what the IdP sends."""
    stripped = "".join(ALLOWED_CHARACTER.findall(value))
    if stripped == value or _problems(stripped):
        return ""
    return stripped


def _problems(value: str) -> list[Message]:
    problems: list[Message] = []
    if not value:
        return [Message(gettext_noop("The username is empty."))]
    disallowed = _disallowed_characters(value)
    if disallowed:
        listed = joined([_describe(character) for character in disallowed])
        problems.append(
            Message(
                gettext_noop(
                    "The username contains %(listed)s: Connect and STS allow only letters A-Z and "
                    "a-z, digits, and _ - . @ in a username."
                ),
                {"listed": listed},
            )
        )
    if len(value) > SAML_USERNAME_MAX_LENGTH:
        problems.append(
            Message(
                gettext_noop(
                    "The username is %(length)d characters long; Connect and STS allow at most "
                    "%(max)d."
                ),
                {"length": len(value), "max": SAML_USERNAME_MAX_LENGTH},
            )
        )
    elif len(value) < ROLE_SESSION_NAME_MIN_LENGTH:
        problems.append(
            Message(
                gettext_noop(
                    "The username is %(length)d character long; STS needs at least %(min)d for "
                    "the RoleSessionName."
                ),
                {"length": len(value), "min": ROLE_SESSION_NAME_MIN_LENGTH},
            )
        )
    if "@" in value and not EMAIL_FORMAT.match(value):
        problems.append(
            Message(
                gettext_noop(
                    "The username contains @ but is not an email address (like "
                    "name@example.com); Connect allows @ only in an email format."
                )
            )
        )
    return problems


def check_username(value: str) -> list[Message]:
    """What stops `value` from being a Connect username that equals the RoleSessionName, one
    sentence each for an admin ([] when it is fine). The last sentence suggests a fix when there
    is an obvious one."""
    problems = _problems(value)
    if not problems:
        return []
    suggestion = suggest_username(value)
    if suggestion:
        problems.append(
            Message(
                gettext_noop(
                    "Use “%(suggestion)s” instead, and make the identity provider send exactly "
                    "that (change the user's sign-in name, or the attribute the RoleSessionName "
                    "claim uses)."
                ),
                {"suggestion": suggestion},
            )
        )
    elif len(value) > SAML_USERNAME_MAX_LENGTH:
        problems.append(
            Message(
                gettext_noop(
                    "Give the user a shorter sign-in name in the identity provider, or map the "
                    "RoleSessionName claim to a shorter attribute, and use that as the username."
                )
            )
        )
    return problems
