"""The result of checking one federation: the state of each link of the chain and the findings,
as plain data that goes to JSON and back (the stored check, `check_federation --json`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from provisioning.errors import AccessDenied, Text
from provisioning.messages import to_json

# The links, in chain order; the same keys as the run page's chain (wizard/selectors/chain.py).
LINK_ORDER = (
    "idp_app",
    "claims",
    "saml_provider",
    "federation_role",
    "connect_instance",
    "connect_users",
)


class LinkState(StrEnum):
    OK = "ok"
    WARNING = "warning"  # works today, but will break (a certificate expiring soon)
    BROKEN = "broken"
    UNREAD = "unread"  # could not be read, or not reached past a broken link


class Severity(StrEnum):
    BROKEN = "broken"  # sign-in fails for everyone, or for the people it names
    WARNING = "warning"


# What `check_federation` exits with (the issue: 0 healthy, 1 a link broken, 2 could not read).
EXIT_HEALTHY = 0
EXIT_BROKEN = 1
EXIT_UNREAD = 2
# What the IdP read says of a Role claim that is fixed text rather than a user attribute.
FIXED_ROLE_CLAIM = "fixed text"


@dataclass
class Link:
    """One link: its key (LINK_ORDER), state, and its key fact (a name, an ARN, a count)."""

    key: str
    state: str = LinkState.UNREAD
    fact: str = ""


@dataclass
class Finding:
    """One thing wrong: its message `code` (provisioning/federation_check/messages.py says what
    is wrong, why sign-in breaks and the fix, in the reader's language) with its parameters."""

    link: str
    code: str
    severity: str = Severity.BROKEN
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class FederationCheck:
    """Everything one check found. `unreadable` names what could not be read and the permission
    missing for it; `permissions` lists what the check needs, per cloud."""

    aws_connection: str
    region: str
    instance: str
    idp_connection: str
    idp: str = ""
    app_id: str = ""
    # The instance found (the watch keeps a federation by its ID, whatever the check was given).
    instance_id: str = ""
    instance_alias: str = ""
    links: list[Link] = field(default_factory=lambda: [Link(key) for key in LINK_ORDER])
    findings: list[Finding] = field(default_factory=list)
    unreadable: list[dict[str, Any]] = field(default_factory=list)
    permissions: dict[str, list[str]] = field(default_factory=dict)
    apps_found: list[dict[str, str]] = field(default_factory=list)
    read_only: bool = True
    # What a Repair run starts from (provisioning/federation_check/repair.py, repair_facts): the
    # relay state, the role and provider the app claims, ... as the check read them.
    read: dict[str, Any] = field(default_factory=dict)

    def link(self, key: str) -> Link:
        return next(link for link in self.links if link.key == key)

    def set_link(self, key: str, state: str, fact: str = "") -> None:
        link = self.link(key)
        link.state = state
        if fact:
            link.fact = fact

    def add(self, link: str, code: str, severity: str = Severity.BROKEN, **params: Any) -> None:
        self.findings.append(Finding(link=link, code=code, severity=severity, params=params))
        current = self.link(link)
        if severity == Severity.BROKEN:
            current.state = LinkState.BROKEN
        elif current.state == LinkState.OK:
            current.state = LinkState.WARNING

    def could_not_read(self, link: str, what: Text, permission: str, message: Text) -> None:
        """`what` and `message` are stored as message ids (or a name, a cloud's own words),
        rendered in the reader's language (messages.unread_text)."""
        self.unreadable.append(
            {
                "link": link,
                "what": to_json(what),
                "permission": permission,
                "message": to_json(message),
            }
        )
        self.link(link).state = LinkState.UNREAD

    @property
    def exit_code(self) -> int:
        if self.unreadable:
            return EXIT_UNREAD
        if any(link.state == LinkState.BROKEN for link in self.links):
            return EXIT_BROKEN
        return EXIT_HEALTHY

    @property
    def healthy(self) -> bool:
        return self.exit_code == EXIT_HEALTHY

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["exit_code"] = self.exit_code
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FederationCheck:
        values = {key: value for key, value in data.items() if key != "exit_code"}
        values["links"] = [Link(**link) for link in data.get("links", [])]
        values["findings"] = [Finding(**finding) for finding in data.get("findings", [])]
        return cls(**values)


class CouldNotRead(Exception):  # noqa: N818 - an answer of the check, like WaitForCloud
    """A read the cloud refused: which link, what was being read, the permission it needs."""

    def __init__(self, link: str, what: Text, permission: str, message: Text) -> None:
        super().__init__(str(message))
        self.link = link
        self.what = what
        self.permission = permission
        self.message = message


@contextmanager
def refused_as(link: str, what: Text, permission: str) -> Iterator[None]:
    """Turns a cloud's refusal of a read into CouldNotRead naming the permission it needs."""
    try:
        yield
    except AccessDenied as error:
        raise CouldNotRead(link, what, permission, error.given_message) from error
