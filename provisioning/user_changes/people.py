"""A person to give a Connect user, as the IdP or a list describes them, and the checks that say
why one can't have one (username rules, names, duplicates) before any call is made."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from django.utils.translation import gettext_noop

from provisioning.errors import PermanentError
from provisioning.messages import Message
from provisioning.usernames import check_username

DEFAULT_SECURITY_PROFILES = ["Agent"]
DEFAULT_ROUTING_PROFILE = "Basic Routing Profile"
SOFT_PHONE = "SOFT_PHONE"
DESK_PHONE = "DESK_PHONE"
PHONE_TYPES = (SOFT_PHONE, DESK_PHONE)
# CreateUserRequest.SecurityProfileIds: 1 to 10 (botocore's Connect model).
MAX_SECURITY_PROFILES_PER_USER = 10
# UserPhoneConfig.DeskPhoneNumber: E.164 (botocore's Connect model).
E164 = re.compile(r"^\+[1-9]\d{1,14}$")


@dataclass(frozen=True)
class IdpPerson:
    """A user as the identity provider lists them (Entra: login is the UPN; Okta: the login)."""

    id: str
    login: str
    email: str
    first_name: str
    last_name: str


@dataclass
class Person:
    """Who should have a Connect user, and with which profiles (names, as the instance lists
    them). `groups` and `login` say where the person came from, for the plan's lists."""

    username: str
    first_name: str
    last_name: str
    email: str = ""
    desk_phone: str = ""
    security_profiles: list[str] = field(default_factory=list)
    routing_profile: str = ""
    phone_type: str = SOFT_PHONE
    login: str = ""
    groups: list[str] = field(default_factory=list)
    reasons: list[Message] = field(default_factory=list)
    # Where an IdP group brought them from: their IdP id, the picked groups' ids, and the group
    # whose app assignment would let them sign in ({"id", "name"}; empty when none is needed).
    idp_id: str = ""
    group_ids: list[str] = field(default_factory=list)
    assign_group: dict[str, str] = field(default_factory=dict)


def group_too_large(limit: int) -> PermanentError:
    """A group is refused rather than read in part: a sync must never take the people it didn't
    read for departures."""
    return PermanentError(
        Message(
            gettext_noop(
                "A group holds more than %(limit)d people, more than the wizard reads at once."
            ),
            {"limit": limit},
        ),
        code="group_too_large",
        hint=Message(gettext_noop("Pick smaller groups, or raise WIZARD_GROUP_MEMBERS_CAP.")),
    )


def names(value: Any, default: list[str]) -> list[str]:
    """Profile names from a list or a comma-separated text; `default` when there are none."""
    if isinstance(value, str):
        value = value.split(",")
    found = [str(name).strip() for name in (value or []) if str(name).strip()]
    return list(dict.fromkeys(found)) or list(default)


def person_from(entry: dict[str, Any], defaults: dict[str, Any]) -> Person:
    """A Person from a plain dict (a plan file, a CSV row, an IdP step's outputs), with the run's
    defaults for what the entry leaves out."""
    default_profiles = names(defaults.get("security_profiles"), DEFAULT_SECURITY_PROFILES)
    phone_type = str(entry.get("phone_type") or defaults.get("phone_type") or SOFT_PHONE)
    return Person(
        username=str(entry.get("username", "")),
        first_name=str(entry.get("first_name", "") or "").strip(),
        last_name=str(entry.get("last_name", "") or "").strip(),
        email=str(entry.get("email", "") or "").strip(),
        desk_phone=str(entry.get("desk_phone", "") or "").strip(),
        security_profiles=names(entry.get("security_profiles"), default_profiles),
        routing_profile=str(
            entry.get("routing_profile")
            or defaults.get("routing_profile")
            or DEFAULT_ROUTING_PROFILE
        ),
        phone_type=phone_type,
        login=str(entry.get("login", "") or ""),
        groups=[str(group) for group in entry.get("groups", []) or []],
    )


def check_people(people: list[Person]) -> list[Person]:
    """Give each person the reasons they can't have a Connect user (none: they can)."""
    seen: set[str] = set()
    for person in people:
        person.reasons = check_username(person.username)
        if person.username in seen:
            person.reasons.append(
                Message(gettext_noop("The username appears more than once in the list."))
            )
        seen.add(person.username)
        if not person.first_name or not person.last_name:
            person.reasons.append(
                Message(
                    gettext_noop(
                        "Connect needs a first and a last name for users of a SAML instance."
                    )
                )
            )
        if len(person.security_profiles) > MAX_SECURITY_PROFILES_PER_USER:
            person.reasons.append(
                Message(
                    gettext_noop("A user can have at most %(count)d security profiles."),
                    {"count": MAX_SECURITY_PROFILES_PER_USER},
                )
            )
        if person.phone_type not in PHONE_TYPES:
            person.reasons.append(
                Message(
                    gettext_noop(
                        "The phone type must be SOFT_PHONE or DESK_PHONE, not “%(value)s”."
                    ),
                    {"value": person.phone_type},
                )
            )
        elif person.phone_type == DESK_PHONE and not E164.match(person.desk_phone):
            person.reasons.append(
                Message(
                    gettext_noop(
                        "A desk phone needs the person's phone number in E.164 form (like "
                        "+81312345678)."
                    )
                )
            )
    return people
