"""What one Amazon Connect instance holds for the users plan: its security and routing profiles,
every user with the attributes a plan compares (read with SearchUsers, 500 a page, instead of a
DescribeUser per person), and its Users per instance quota."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.utils.translation import gettext_noop

from provisioning.errors import PermanentError
from provisioning.messages import Message

# Service Quotas code of "Users per instance" and its documented default (Amazon Connect
# service quotas page of the admin guide).
USERS_PER_INSTANCE_QUOTA = "L-9A46857E"
DEFAULT_USERS_PER_INSTANCE = 500
# SearchUsers pages hold up to 500 users (botocore's Connect model, MaxResult500).
SEARCH_USERS_PAGE_SIZE = 500
# ListUsers pages hold up to 1000 (botocore's model): the fallback when search lags behind.
LIST_USERS_PAGE_SIZE = 1000


@dataclass
class ConnectUser:
    """A user of the instance, with what a plan compares and the tags that say who made it."""

    id: str
    username: str
    first_name: str = ""
    last_name: str = ""
    security_profile_ids: list[str] = field(default_factory=list)
    routing_profile_id: str = ""
    phone_config: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_wire(cls, user: dict[str, Any]) -> ConnectUser:
        """From SearchUsers' UserSearchSummary or DescribeUser's User: both carry these keys."""
        identity = user.get("IdentityInfo") or {}
        return cls(
            id=str(user["Id"]),
            username=str(user["Username"]),
            first_name=str(identity.get("FirstName") or ""),
            last_name=str(identity.get("LastName") or ""),
            security_profile_ids=sorted(user.get("SecurityProfileIds") or []),
            routing_profile_id=str(user.get("RoutingProfileId") or ""),
            phone_config=dict(user.get("PhoneConfig") or {}),
            tags=dict(user.get("Tags") or {}),
        )


@dataclass
class Instance:
    id: str
    arn: str
    security_profiles: dict[str, str]  # name -> id
    routing_profiles: dict[str, str]  # name -> id
    users: dict[str, ConnectUser]  # username (exact case) -> user
    quota: int

    def profile_names(self) -> tuple[list[str], list[str]]:
        """The names of its security and routing profiles, sorted as profile_names() sorts them."""
        return _sorted_names(self.security_profiles), _sorted_names(self.routing_profiles)

    @property
    def room(self) -> int:
        """How many more users fit under the Users per instance quota."""
        return max(0, self.quota - len(self.users))


def _names_to_ids(connect: Any, operation: str, list_key: str, instance_id: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for page in connect.get_paginator(operation).paginate(InstanceId=instance_id):
        for summary in page[list_key]:
            found[summary["Name"]] = summary["Id"]
    return found


def _sorted_names(found: dict[str, str]) -> list[str]:
    """Names sorted as an admin reads a list."""
    return sorted(found, key=str.lower)


def profile_names(connect: Any, instance_id: str) -> tuple[list[str], list[str]]:
    """The names of the instance's security profiles and routing profiles, each sorted as an
    admin reads a list (what a users form offers)."""
    lists = [
        _names_to_ids(connect, operation, list_key, instance_id)
        for operation, list_key in (
            ("list_security_profiles", "SecurityProfileSummaryList"),
            ("list_routing_profiles", "RoutingProfileSummaryList"),
        )
    ]
    profiles, routing = (_sorted_names(found) for found in lists)
    return profiles, routing


def all_users(connect: Any, instance_id: str) -> dict[str, ConnectUser]:
    """Every user of the instance, with profiles, phone and tags: one SearchUsers call per 500."""
    users: dict[str, ConnectUser] = {}
    paginator = connect.get_paginator("search_users")
    for page in paginator.paginate(
        InstanceId=instance_id, PaginationConfig={"PageSize": SEARCH_USERS_PAGE_SIZE}
    ):
        for summary in page.get("Users", []):
            user = ConnectUser.from_wire(summary)
            users[user.username] = user
    return users


def find_user(connect: Any, instance_id: str, username: str) -> ConnectUser | None:
    """The user with exactly this username, tags included, or None. SearchUsers first; search is
    an index that may lag behind a CreateUser of a moment ago, so ListUsers settles a miss."""
    found = connect.search_users(
        InstanceId=instance_id,
        SearchCriteria={
            "StringCondition": {
                "FieldName": "Username",
                "Value": username,
                "ComparisonType": "EXACT",
            }
        },
        MaxResults=1,
    ).get("Users", [])
    if found and found[0].get("Username") == username:
        return ConnectUser.from_wire(found[0])
    paginator = connect.get_paginator("list_users")
    for page in paginator.paginate(
        InstanceId=instance_id, PaginationConfig={"PageSize": LIST_USERS_PAGE_SIZE}
    ):
        for summary in page["UserSummaryList"]:
            if summary["Username"] == username:
                user = connect.describe_user(InstanceId=instance_id, UserId=summary["Id"])
                return ConnectUser.from_wire(user["User"])
    return None


def users_quota(quotas: Any, instance_arn: str) -> int:
    """The instance's Users per instance quota; the documented default when Service Quotas can't
    say (no permission, or the quota isn't offered in the region)."""
    try:
        found = quotas.get_service_quota(
            ServiceCode="connect", QuotaCode=USERS_PER_INSTANCE_QUOTA, ContextId=instance_arn
        )
    except PermanentError:
        return DEFAULT_USERS_PER_INSTANCE
    return int(found["Quota"]["Value"])


def saml_instance(connect: Any, instance_id: str) -> dict[str, Any]:
    """DescribeInstance's Instance; refused when its users can't sign in through an IdP."""
    instance: dict[str, Any] = connect.describe_instance(InstanceId=instance_id)["Instance"]
    if instance.get("IdentityManagementType") != "SAML":
        raise PermanentError(
            Message(
                gettext_noop(
                    "Instance %(id)s does not use SAML for identity management, so its users can't "
                    "sign in through the identity provider."
                ),
                {"id": instance_id},
            ),
            code="instance_not_saml",
            hint=Message(
                gettext_noop("Choose or create an instance whose identity management is SAML.")
            ),
        )
    return instance


def read_instance(connect: Any, quotas: Any, instance_id: str) -> Instance:
    """Profiles, users and quota of a SAML instance."""
    instance = saml_instance(connect, instance_id)
    return Instance(
        id=instance_id,
        arn=instance["Arn"],
        security_profiles=_names_to_ids(
            connect, "list_security_profiles", "SecurityProfileSummaryList", instance_id
        ),
        routing_profiles=_names_to_ids(
            connect, "list_routing_profiles", "RoutingProfileSummaryList", instance_id
        ),
        users=all_users(connect, instance_id),
        quota=users_quota(quotas, instance["Arn"]),
    )
