"""Seeded directory people and groups for the sandbox IdPs, including the cases admins trip on."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

GIVEN_NAMES = [
    "Haruto",
    "Yui",
    "Sota",
    "Hina",
    "Ren",
    "Aoi",
    "Minato",
    "Mei",
    "Yuto",
    "Sakura",
    "Alex",
    "Sam",
    "Jordan",
    "Taylor",
    "Chris",
    "Morgan",
    "Riley",
    "Casey",
]
SURNAMES = [
    "Sato",
    "Suzuki",
    "Takahashi",
    "Tanaka",
    "Ito",
    "Watanabe",
    "Yamamoto",
    "Nakamura",
    "Kobayashi",
    "Kato",
    "Smith",
    "Jones",
    "Brown",
    "Garcia",
    "Miller",
    "Davis",
]


@dataclass
class Person:
    key: str  # stable id within the directory
    given_name: str
    surname: str  # "" for the person without a surname
    login: str  # UPN in Entra, login in Okta
    email: str
    groups: list[str] = field(default_factory=list)
    # Why this person is in the seed, for the awkward ones ("" for ordinary people).
    awkward: str = ""

    @property
    def display_name(self) -> str:
        return f"{self.given_name} {self.surname}".strip()


@dataclass
class Directory:
    domain: str
    people: list[Person]
    # group name -> nested group names (members of the nested groups count transitively)
    nested_groups: dict[str, list[str]]

    @property
    def group_names(self) -> list[str]:
        names = {group for person in self.people for group in person.groups}
        names.update(self.nested_groups)
        for children in self.nested_groups.values():
            names.update(children)
        return sorted(names)


ADMINS_GROUP = "Connect Admins"
AGENTS_GROUP = "Connect Agents"
SUPERVISORS_GROUP = "Connect Supervisors"
# Contains AGENTS_GROUP and SUPERVISORS_GROUP: its members are only reachable transitively.
CONTACT_CENTRE_GROUP = "Contact Centre"


def seed_directory(*, domain: str, agents: int = 40, admins: int = 3, seed: int = 1) -> Directory:
    """Admins, agents (a tenth of them supervisors) and the awkward cases, deterministically."""
    rng = random.Random(seed)  # noqa: S311 - reproducible seed data, not secrets
    people: list[Person] = []

    def person(n: int, groups: list[str], prefix: str) -> Person:
        given = rng.choice(GIVEN_NAMES)
        surname = rng.choice(SURNAMES)
        login = f"{given.lower()}.{surname.lower()}.{prefix}{n:04d}@{domain}"
        return Person(f"{prefix}{n:04d}", given, surname, login, login, groups)

    for n in range(admins):
        people.append(person(n, [ADMINS_GROUP], "admin"))
    for n in range(agents):
        groups = [SUPERVISORS_GROUP] if n % 10 == 9 else [AGENTS_GROUP]
        people.append(person(n, groups, "agent"))

    awkward = [
        # STS's RoleSessionName pattern is [\w+=,.@-]{2,64}: the apostrophe and space break it.
        Person(
            "odd-upn",
            "Conan",
            "O'Brien",
            f"conan.o'brien@{domain}",
            f"conan.obrien@{domain}",
            [AGENTS_GROUP],
            "UPN has characters STS rejects",
        ),
        Person(
            "mixed-case",
            "Keiko",
            "McDonald",
            f"Keiko.McDonald@{domain}",
            f"Keiko.McDonald@{domain}",
            [AGENTS_GROUP],
            "mixed case: Connect usernames must match the RoleSessionName exactly",
        ),
        Person(
            "too-long",
            "Bartholomew",
            "Featherstonehaugh",
            f"bartholomew.featherstonehaugh.customer.experience.team@{domain}",
            f"bartholomew.featherstonehaugh.customer.experience.team@{domain}",
            [AGENTS_GROUP],
            "login over 64 characters",
        ),
        Person(
            "same-email-1",
            "Daichi",
            "Mori",
            f"daichi.mori@{domain}",
            f"shared.mailbox@{domain}",
            [AGENTS_GROUP],
            "shares an email with another person",
        ),
        Person(
            "same-email-2",
            "Daiki",
            "Mori",
            f"daiki.mori@{domain}",
            f"shared.mailbox@{domain}",
            [AGENTS_GROUP],
            "shares an email with another person",
        ),
        Person(
            "no-surname",
            "Madonna",
            "",
            f"madonna@{domain}",
            f"madonna@{domain}",
            [AGENTS_GROUP],
            "no surname",
        ),
    ]
    people.extend(awkward)
    return Directory(
        domain=domain,
        people=people,
        nested_groups={CONTACT_CENTRE_GROUP: [AGENTS_GROUP, SUPERVISORS_GROUP]},
    )
