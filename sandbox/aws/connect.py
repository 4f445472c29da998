"""Amazon Connect beyond moto: instance lifecycle, users, profiles and phone numbers, on the wire
as botocore's Connect model defines them."""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import botocore.session
from moto.connect.models import ConnectBackend, Instance, connect_backends

from sandbox.aws.service_quotas import (
    PHONE_NUMBERS_PER_INSTANCE,
    USERS_PER_INSTANCE,
    ServiceQuotas,
)
from sandbox.aws.wire import ApiError

# Operations moto's Connect backend answers itself; the sandbox only keeps instance status current
# before passing them on (see ConnectService.settle).
MOTO_OPERATIONS = frozenset(
    {
        "DescribeInstance",
        "ListInstances",
        "TagResource",
        "UntagResource",
        "ListTagsForResource",
        "AssociateAnalyticsDataSet",
        "DisassociateAnalyticsDataSet",
        "ListAnalyticsDataAssociations",
    }
)

# CreateInstanceRequest.InstanceAlias in botocore's model (min 1, max 45).
INSTANCE_ALIAS = re.compile(r"^(?!d-)([\da-zA-Z]+)([-]*[\da-zA-Z])*$")
MAX_INSTANCE_ALIAS_LENGTH = 45
# CreateUserRequest.Username's documentation in botocore's model: SAML instances allow up to 64
# characters from [a-zA-Z0-9_-.\@]+, others up to 20; "@" only in an email format.
SAML_USERNAME_MAX_LENGTH = 64
OTHER_USERNAME_MAX_LENGTH = 20
USERNAME_CHARACTERS = re.compile(r"^[A-Za-z0-9_.@-]+$")
EMAIL_FORMAT = re.compile(r"^[^@]+@[^@.]+(\.[^@.]+)+$")
# CreateUserRequest.Password's pattern in botocore's model.
PASSWORD = re.compile(r"^(?=.*[a-z])(?=.*[A-Z])(?=.*\d)[a-zA-Z\d\S]{8,64}$")
# SecurityProfileIds: 1 to 10 (botocore's model).
MAX_SECURITY_PROFILES_PER_USER = 10
# Page sizes from botocore's model and the Connect API reference: List* default to 100 (max
# 1000), SearchUsers max 500, SearchSecurityProfiles max 100, SearchAvailablePhoneNumbers max 10.
LIST_PAGE_DEFAULT, LIST_PAGE_MAX = 100, 1000
SEARCH_USERS_PAGE_MAX = 500
SEARCH_PROFILES_PAGE_MAX = 100
AVAILABLE_NUMBERS_PAGE_MAX = 10

DEFAULT_SECURITY_PROFILES = {
    "Admin": "Grants full access to the Amazon Connect admin website.",
    "Agent": "Grants access to the Contact Control Panel.",
    "CallCenterManager": "Grants access to user management, metrics and routing.",
    "QualityAnalyst": "Grants access to metrics and contact search.",
}
DEFAULT_ROUTING_PROFILE = "Basic Routing Profile"
DEFAULT_QUEUE = "BasicQueue"

# The Japanese numbers the sandbox offers: Tokyo geographic (03-xxxx-xxxx, E.164 +81 3 ...) as
# DID and free dial (0120-xxx-xxx, +81 120 ...) as TOLL_FREE, a pool of each.
AVAILABLE_NUMBERS_PER_TYPE = 50
JP_NUMBER_POOLS = {
    "DID": [f"+8135550{n:04d}" for n in range(AVAILABLE_NUMBERS_PER_TYPE)],
    "TOLL_FREE": [f"+81120555{n:03d}" for n in range(AVAILABLE_NUMBERS_PER_TYPE)],
}


@dataclass(frozen=True)
class Route:
    operation: str
    method: str
    pattern: re.Pattern[str]
    # More literal characters win when two URI templates match (e.g. /phone-number/list).
    literal_length: int


@dataclass(frozen=True)
class ConnectCall:
    operation: str
    region: str
    account_id: str
    params: dict[str, Any]

    def require(self, name: str) -> Any:
        value = self.params.get(name)
        if value in (None, "", []):
            raise ApiError("InvalidParameterException", f"{name} is required.")
        return value


class ConnectModel:
    """botocore's Connect model as a router: (method, path, query, body) -> operation and params."""

    def __init__(self) -> None:
        self.model = botocore.session.get_session().get_service_model("connect")
        self.routes: list[Route] = []
        for name in self.model.operation_names:
            http = self.model.operation_model(name).http
            template = http["requestUri"].split("?", 1)[0]
            regex = re.sub(
                r"\{(\w+)(\+?)\}",
                lambda m: f"(?P<{m.group(1)}>{'.+' if m.group(2) else '[^/]+'})",
                template,
            )
            literal = len(re.sub(r"\{[^}]+\}", "", template))
            self.routes.append(Route(name, http["method"], re.compile(f"^{regex}/?$"), literal))
        self.routes.sort(key=lambda route: -route.literal_length)

    def error_status(self, code: str) -> int:
        try:
            shape = self.model.shape_for(code)
        except Exception:  # noqa: BLE001 - botocore raises several types for unknown shapes
            return 400
        return int(shape.metadata.get("error", {}).get("httpStatusCode", 400))

    def parse(
        self, method: str, raw_path: str, query: dict[str, list[str]], body: bytes
    ) -> tuple[str, dict[str, Any]] | None:
        for route in self.routes:
            if route.method != method:
                continue
            match = route.pattern.match(raw_path)
            if match is None:
                continue
            members = self.model.operation_model(route.operation).input_shape
            params: dict[str, Any] = {}
            if body.strip():
                try:
                    loaded = json.loads(body)
                except ValueError as error:
                    raise ApiError("InvalidRequestException", "The body is not JSON.") from error
                if isinstance(loaded, dict):
                    params.update(loaded)
            if members is not None:
                for name, member in members.members.items():
                    location = member.serialization.get("location")
                    wire_name = member.serialization.get("name", name)
                    if location == "uri":
                        params[name] = unquote(match.group(wire_name))
                    elif location == "querystring" and wire_name in query:
                        value: Any = query[wire_name][-1]
                        if member.type_name == "integer":
                            value = int(value)
                        params[name] = value
            return route.operation, params
        return None


@dataclass
class SecurityProfile:
    id: str
    arn: str
    name: str
    description: str
    last_modified: float


@dataclass
class RoutingProfile:
    id: str
    arn: str
    name: str
    description: str
    default_outbound_queue_id: str
    last_modified: float


@dataclass
class ConnectUser:
    id: str
    arn: str
    username: str
    identity_info: dict[str, Any]
    phone_config: dict[str, Any]
    security_profile_ids: list[str]
    routing_profile_id: str
    hierarchy_group_id: str | None
    directory_user_id: str | None
    tags: dict[str, str]
    last_modified: float

    def describe(self, region: str) -> dict[str, Any]:
        user = {
            **self.search_summary(),
            "IdentityInfo": dict(self.identity_info),
            "LastModifiedTime": self.last_modified,
            "LastModifiedRegion": region,
        }
        return user

    def search_summary(self) -> dict[str, Any]:
        summary: dict[str, Any] = {
            "Id": self.id,
            "Arn": self.arn,
            "Username": self.username,
            "IdentityInfo": {
                key: value
                for key, value in self.identity_info.items()
                if key in ("FirstName", "LastName")
            },
            "PhoneConfig": dict(self.phone_config),
            "SecurityProfileIds": list(self.security_profile_ids),
            "RoutingProfileId": self.routing_profile_id,
            "Tags": dict(self.tags),
        }
        if self.hierarchy_group_id:
            summary["HierarchyGroupId"] = self.hierarchy_group_id
        if self.directory_user_id:
            summary["DirectoryUserId"] = self.directory_user_id
        return summary


@dataclass
class InstanceState:
    """What the sandbox keeps for one of moto's instances."""

    id: str
    arn: str
    region: str
    identity_management_type: str
    ready_at: float
    security_profiles: dict[str, SecurityProfile] = field(default_factory=dict)
    routing_profiles: dict[str, RoutingProfile] = field(default_factory=dict)
    users: dict[str, ConnectUser] = field(default_factory=dict)
    # Set by a test hook (sandbox.apps["aws"].connect): the instance ends CREATION_FAILED with
    # this StatusReason instead of becoming ACTIVE.
    failure_reason: str = ""


@dataclass
class ClaimedNumber:
    id: str
    arn: str
    number: str
    number_type: str
    instance: InstanceState
    description: str
    tags: dict[str, str]
    # ClaimPhoneNumber only starts the claim: the number is IN_PROGRESS until this time, then
    # CLAIMED, or FAILED with `failure` as its message (ClaimedPhoneNumberSummary.
    # PhoneNumberStatus in botocore's Connect model).
    settles_at: float
    failure: str = ""

    def status(self, now: float) -> dict[str, str]:
        if now < self.settles_at:
            return {"Status": "IN_PROGRESS", "Message": "The phone number claim is in progress."}
        if self.failure:
            return {"Status": "FAILED", "Message": self.failure}
        return {"Status": "CLAIMED"}

    def summary(self) -> dict[str, Any]:
        return {
            "PhoneNumberId": self.id,
            "PhoneNumberArn": self.arn,
            "PhoneNumber": self.number,
            "PhoneNumberCountryCode": "JP",
            "PhoneNumberType": self.number_type,
            "TargetArn": self.instance.arn,
            "InstanceId": self.instance.id,
            "PhoneNumberDescription": self.description,
        }


def _token(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


def _untoken(token: str) -> Any:
    try:
        return json.loads(base64.urlsafe_b64decode(token.encode()).decode())
    except ValueError as error:
        raise ApiError("InvalidParameterException", "The NextToken is not valid.") from error


def _page_size(params: dict[str, Any], maximum: int, default: int) -> int:
    size = int(params.get("MaxResults") or default)
    if not 1 <= size <= maximum:
        raise ApiError("InvalidParameterException", f"MaxResults must be between 1 and {maximum}.")
    return size


def _offset_page(
    items: list[Any], params: dict[str, Any], maximum: int, default: int
) -> tuple[list[Any], str | None]:
    size = _page_size(params, maximum, default)
    start = _untoken(params["NextToken"]) if params.get("NextToken") else 0
    if not isinstance(start, int):
        raise ApiError("InvalidParameterException", "The NextToken is not valid.")
    end = start + size
    return items[start:end], (_token(end) if end < len(items) else None)


class ConnectService:
    """Connect state on top of moto's instances. One lock guards all of it (and moto's instance
    table while the sandbox changes it): the server answers each request on its own thread."""

    def __init__(
        self,
        *,
        account_id: str,
        quotas: ServiceQuotas,
        creation_delay_s: Callable[[], float],
        claim_delay_s: Callable[[], float],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.account_id = account_id
        self.quotas = quotas
        self.creation_delay_s = creation_delay_s
        self.claim_delay_s = claim_delay_s
        # Set by a test hook (fail_next_claim): the next claim ends FAILED with this message.
        self.next_claim_failure = ""
        self.clock = clock
        self.model = ConnectModel()
        self._instances: dict[str, InstanceState] = {}
        self._client_tokens: dict[tuple[str, str], str] = {}
        self._numbers: dict[str, ClaimedNumber] = {}
        self._number_tokens: dict[str, str] = {}
        self._lock = threading.RLock()
        self._handlers: dict[str, Callable[[ConnectCall], dict[str, Any]]] = {
            "CreateInstance": self.create_instance,
            "DeleteInstance": self.delete_instance,
            "CreateUser": self.create_user,
            "DescribeUser": self.describe_user,
            "ListUsers": self.list_users,
            "SearchUsers": self.search_users,
            "UpdateUserIdentityInfo": self.update_user_identity_info,
            "UpdateUserSecurityProfiles": self.update_user_security_profiles,
            "UpdateUserRoutingProfile": self.update_user_routing_profile,
            "UpdateUserPhoneConfig": self.update_user_phone_config,
            "DeleteUser": self.delete_user,
            "ListSecurityProfiles": self.list_security_profiles,
            "DescribeSecurityProfile": self.describe_security_profile,
            "SearchSecurityProfiles": self.search_security_profiles,
            "ListRoutingProfiles": self.list_routing_profiles,
            "DescribeRoutingProfile": self.describe_routing_profile,
            "SearchAvailablePhoneNumbers": self.search_available_phone_numbers,
            "ClaimPhoneNumber": self.claim_phone_number,
            "ListPhoneNumbersV2": self.list_phone_numbers_v2,
            "DescribePhoneNumber": self.describe_phone_number,
            "ReleasePhoneNumber": self.release_phone_number,
        }

    @property
    def operations(self) -> frozenset[str]:
        return frozenset(self._handlers)

    def call(self, call: ConnectCall) -> dict[str, Any]:
        with self._lock:
            self.settle()
            return self._handlers[call.operation](call)

    def settle(self) -> None:
        """Instances whose creation time has passed become ACTIVE (read by moto's Describe/List)."""
        with self._lock:
            now = self.clock()
            for state in self._instances.values():
                instance = self._backend(state.region).instances.get(state.id)
                if (
                    instance is not None
                    and instance.instance_status == "CREATION_IN_PROGRESS"
                    and now >= state.ready_at
                ):
                    instance.instance_status = (
                        "CREATION_FAILED" if state.failure_reason else "ACTIVE"
                    )

    def describe_failed_instance(self, call: ConnectCall) -> dict[str, Any] | None:
        """DescribeInstance of an instance whose creation failed, with the StatusReason moto
        doesn't keep; None for any other instance (moto answers)."""
        with self._lock:
            self.settle()
            state = self._instances.get(str(call.params.get("InstanceId", "")))
            instance = self._backend(call.region).instances.get(state.id) if state else None
            if state is None or instance is None or instance.instance_status != "CREATION_FAILED":
                return None
            return {
                "Instance": {
                    **instance.to_dict(),
                    "StatusReason": {"Message": state.failure_reason},
                }
            }

    # Lookups

    def _backend(self, region: str) -> ConnectBackend:
        return connect_backends[self.account_id][region]

    def _instance(self, call: ConnectCall, *, active: bool = True) -> InstanceState:
        reference = str(call.require("InstanceId"))
        # SearchUsers and friends accept the instance ARN as well as its id.
        instance_id = reference.rsplit("/", 1)[-1] if reference.startswith("arn:") else reference
        state = self._instances.get(instance_id)
        moto_instance = self._backend(call.region).instances.get(instance_id)
        if state is None or moto_instance is None or state.region != call.region:
            raise ApiError("ResourceNotFoundException", f"Instance not found: {reference}")
        if active and moto_instance.instance_status != "ACTIVE":
            raise ApiError(
                "InvalidRequestException",
                f"Instance {instance_id} is {moto_instance.instance_status}; wait until it is "
                "ACTIVE.",
            )
        return state

    def _user(self, call: ConnectCall) -> tuple[InstanceState, ConnectUser]:
        state = self._instance(call)
        user_id = str(call.require("UserId"))
        user = state.users.get(user_id.rsplit("/", 1)[-1])
        if user is None:
            raise ApiError("ResourceNotFoundException", f"User not found: {user_id}")
        return state, user

    def _target_instance(self, call: ConnectCall) -> InstanceState:
        target = call.params.get("TargetArn") or call.params.get("InstanceId")
        if not target:
            raise ApiError(
                "InvalidParameterException", "Either TargetArn or InstanceId is required."
            )
        return self._instance(
            ConnectCall(call.operation, call.region, call.account_id, {"InstanceId": target})
        )

    # Instances

    def create_instance(self, call: ConnectCall) -> dict[str, Any]:
        identity_type = str(call.require("IdentityManagementType"))
        alias = call.params.get("InstanceAlias")
        token = call.params.get("ClientToken")
        backend = self._backend(call.region)
        if token and (call.region, token) in self._client_tokens:
            instance_id = self._client_tokens[(call.region, token)]
            if instance_id in backend.instances:
                existing = backend.instances[instance_id]
                return {"Id": existing.id, "Arn": existing.arn}
        if identity_type not in ("SAML", "CONNECT_MANAGED", "EXISTING_DIRECTORY"):
            raise ApiError(
                "InvalidRequestException", f"Invalid IdentityManagementType: {identity_type}"
            )
        if identity_type == "EXISTING_DIRECTORY" and not call.params.get("DirectoryId"):
            raise ApiError(
                "InvalidRequestException", "DirectoryId is required for EXISTING_DIRECTORY."
            )
        if identity_type != "EXISTING_DIRECTORY" and call.params.get("DirectoryId"):
            raise ApiError(
                "InvalidRequestException",
                f"DirectoryId can't be used with IdentityManagementType {identity_type}.",
            )
        if alias is not None:
            if not (
                1 <= len(alias) <= MAX_INSTANCE_ALIAS_LENGTH and INSTANCE_ALIAS.match(str(alias))
            ):
                raise ApiError(
                    "InvalidRequestException",
                    "Invalid Input. Instance alias must be 1-45 letters, digits and hyphens, "
                    "start and end with a letter or digit, and not start with 'd-'.",
                )
            if any(
                (other.instance_alias or "").lower() == str(alias).lower()
                for other in backend.instances.values()
            ):
                # The message real Connect returns for a taken alias.
                raise ApiError(
                    "InvalidRequestException", "Invalid Input. Instance alias is already used."
                )
        created = backend.create_instance(
            identity_management_type=identity_type,
            inbound_calls_enabled=bool(call.params.get("InboundCallsEnabled")),
            outbound_calls_enabled=bool(call.params.get("OutboundCallsEnabled")),
            instance_alias=alias,
            tags=call.params.get("Tags"),
        )
        instance: Instance = backend.instances[created["Id"]]
        instance.instance_status = "CREATION_IN_PROGRESS"
        now = self.clock()
        state = InstanceState(
            id=instance.id,
            arn=instance.arn,
            region=call.region,
            identity_management_type=identity_type,
            ready_at=now + max(0.0, self.creation_delay_s()),
        )
        for name, description in DEFAULT_SECURITY_PROFILES.items():
            profile_id = str(uuid.uuid4())
            state.security_profiles[profile_id] = SecurityProfile(
                id=profile_id,
                arn=f"{instance.arn}/security-profile/{profile_id}",
                name=name,
                description=description,
                last_modified=now,
            )
        routing_id = str(uuid.uuid4())
        state.routing_profiles[routing_id] = RoutingProfile(
            id=routing_id,
            arn=f"{instance.arn}/routing-profile/{routing_id}",
            name=DEFAULT_ROUTING_PROFILE,
            description="Default routing profile",
            default_outbound_queue_id=str(uuid.uuid4()),
            last_modified=now,
        )
        self._instances[instance.id] = state
        if token:
            self._client_tokens[(call.region, token)] = instance.id
        self.settle()
        return {"Id": instance.id, "Arn": instance.arn}

    def delete_instance(self, call: ConnectCall) -> dict[str, Any]:
        state = self._instance(call, active=False)
        self._backend(call.region).delete_instance(state.id)
        del self._instances[state.id]
        for number_id in [n.id for n in self._numbers.values() if n.instance is state]:
            del self._numbers[number_id]
        return {}

    # Users

    def _check_username(self, state: InstanceState, username: str) -> None:
        saml = state.identity_management_type == "SAML"
        limit = SAML_USERNAME_MAX_LENGTH if saml else OTHER_USERNAME_MAX_LENGTH
        if len(username) > limit:
            raise ApiError(
                "InvalidParameterException",
                f"Username '{username}' is longer than {limit} characters, the limit for "
                f"{state.identity_management_type} instances.",
            )
        if not USERNAME_CHARACTERS.match(username):
            raise ApiError(
                "InvalidParameterException",
                f"Username '{username}' may only contain letters, digits and _ - . @",
            )
        if "@" in username and not EMAIL_FORMAT.match(username):
            raise ApiError(
                "InvalidParameterException",
                f"Username '{username}' may contain @ only in an email format (name@example.com).",
            )

    def _check_security_profiles(self, state: InstanceState, ids: Any) -> list[str]:
        if not isinstance(ids, list) or not 1 <= len(ids) <= MAX_SECURITY_PROFILES_PER_USER:
            raise ApiError(
                "InvalidParameterException",
                f"SecurityProfileIds must list 1 to {MAX_SECURITY_PROFILES_PER_USER} profiles.",
            )
        for profile_id in ids:
            if profile_id not in state.security_profiles:
                raise ApiError(
                    "InvalidParameterException", f"Security profile not found: {profile_id}"
                )
        return list(dict.fromkeys(ids))

    def _check_routing_profile(self, state: InstanceState, routing_id: str) -> str:
        if routing_id not in state.routing_profiles:
            raise ApiError("InvalidParameterException", f"Routing profile not found: {routing_id}")
        return routing_id

    @staticmethod
    def _phone_config(value: Any) -> dict[str, Any]:
        config = dict(value or {"PhoneType": "SOFT_PHONE"})
        if config.get("PhoneType") not in ("SOFT_PHONE", "DESK_PHONE"):
            raise ApiError("InvalidParameterException", "PhoneConfig.PhoneType is required.")
        if config["PhoneType"] == "DESK_PHONE" and not config.get("DeskPhoneNumber"):
            raise ApiError(
                "InvalidParameterException", "A DESK_PHONE needs PhoneConfig.DeskPhoneNumber."
            )
        config.setdefault("AutoAccept", False)
        config.setdefault("AfterContactWorkTimeLimit", 0)
        return config

    def create_user(self, call: ConnectCall) -> dict[str, Any]:
        state = self._instance(call)
        username = str(call.require("Username"))
        self._check_username(state, username)
        if state.identity_management_type == "SAML":
            for refused in ("Password", "DirectoryUserId"):
                if call.params.get(refused):
                    raise ApiError(
                        "InvalidParameterException",
                        f"{refused} must not be set: instance {state.id} uses SAML for identity "
                        "management, so users sign in through the identity provider.",
                    )
        elif state.identity_management_type == "CONNECT_MANAGED" and not PASSWORD.match(
            str(call.params.get("Password") or "")
        ):
            raise ApiError(
                "InvalidParameterException",
                "A Password of 8-64 characters with a lower-case letter, an upper-case "
                "letter and a digit is required for CONNECT_MANAGED instances.",
            )
        security_profile_ids = self._check_security_profiles(
            state, call.require("SecurityProfileIds")
        )
        routing_profile_id = self._check_routing_profile(state, call.require("RoutingProfileId"))
        phone_config = self._phone_config(call.params.get("PhoneConfig"))
        if any(user.username == username for user in state.users.values()):
            raise ApiError(
                "DuplicateResourceException", f"User with username {username} already exists."
            )
        limit = self.quotas.value(call.region, USERS_PER_INSTANCE, state.arn)
        if len(state.users) >= limit:
            # Connect's CreateUser reports quota breaches as LimitExceededException (the model
            # lists no ServiceQuotaExceededException for it).
            raise ApiError(
                "LimitExceededException",
                f"The allowed limit for the resource has been exceeded: instance {state.id} "
                f"already has {len(state.users)} users (Users per instance quota "
                f"{USERS_PER_INSTANCE} is {limit:g}).",
            )
        user_id = str(uuid.uuid4())
        user = ConnectUser(
            id=user_id,
            arn=f"{state.arn}/agent/{user_id}",
            username=username,
            identity_info=dict(call.params.get("IdentityInfo") or {}),
            phone_config=phone_config,
            security_profile_ids=security_profile_ids,
            routing_profile_id=routing_profile_id,
            hierarchy_group_id=call.params.get("HierarchyGroupId"),
            directory_user_id=call.params.get("DirectoryUserId"),
            tags=dict(call.params.get("Tags") or {}),
            last_modified=self.clock(),
        )
        state.users[user_id] = user
        return {"UserId": user.id, "UserArn": user.arn}

    def describe_user(self, call: ConnectCall) -> dict[str, Any]:
        _, user = self._user(call)
        return {"User": user.describe(call.region)}

    def list_users(self, call: ConnectCall) -> dict[str, Any]:
        state = self._instance(call)
        size = _page_size(call.params, LIST_PAGE_MAX, LIST_PAGE_DEFAULT)
        users = sorted(state.users.values(), key=lambda user: (user.username, user.id))
        if call.params.get("NextToken"):
            # The token is the last (username, id) returned, so users added or removed between
            # pages neither repeat nor shift the rest.
            after = _untoken(call.params["NextToken"])
            if not (isinstance(after, list) and len(after) == 2):
                raise ApiError("InvalidParameterException", "The NextToken is not valid.")
            after = tuple(after)
            users = [user for user in users if (user.username, user.id) > after]
        page = users[:size]
        result: dict[str, Any] = {
            "UserSummaryList": [
                {
                    "Id": user.id,
                    "Arn": user.arn,
                    "Username": user.username,
                    "LastModifiedTime": user.last_modified,
                    "LastModifiedRegion": call.region,
                }
                for user in page
            ]
        }
        if len(users) > size:
            result["NextToken"] = _token([page[-1].username, page[-1].id])
        return result

    def _user_matches(self, user: ConnectUser, criteria: dict[str, Any]) -> bool:
        if "OrConditions" in criteria:
            return any(self._user_matches(user, part) for part in criteria["OrConditions"])
        if "AndConditions" in criteria:
            return all(self._user_matches(user, part) for part in criteria["AndConditions"])
        if "StringCondition" in criteria:
            condition = criteria["StringCondition"]
            field_name = str(condition.get("FieldName", "")).lower()
            fields: dict[str, list[str]] = {
                "username": [user.username],
                "firstname": [str(user.identity_info.get("FirstName", ""))],
                "lastname": [str(user.identity_info.get("LastName", ""))],
                "resourceid": [user.id, user.arn],
                "routingprofileid": [user.routing_profile_id],
                "securityprofileid": list(user.security_profile_ids),
                "agentgroupid": [user.hierarchy_group_id or ""],
            }
            if field_name not in fields:
                raise ApiError(
                    "InvalidParameterException",
                    f"Unsupported FieldName {condition.get('FieldName')!r}; use one of "
                    f"{', '.join(sorted(fields))}.",
                )
            return _string_matches(fields[field_name], condition)
        if "HierarchyGroupCondition" in criteria:
            return user.hierarchy_group_id == criteria["HierarchyGroupCondition"].get("Value")
        # Sandbox users have no proficiencies, so a proficiency ListCondition matches none.
        return "ListCondition" not in criteria

    def search_users(self, call: ConnectCall) -> dict[str, Any]:
        state = self._instance(call)
        if call.params.get("SearchFilter"):
            raise ApiError(
                "InvalidParameterException", "The sandbox does not support SearchFilter on users."
            )
        criteria = call.params.get("SearchCriteria") or {}
        matches = sorted(
            (user for user in state.users.values() if self._user_matches(user, criteria)),
            key=lambda user: (user.username, user.id),
        )
        page, token = _offset_page(matches, call.params, SEARCH_USERS_PAGE_MAX, LIST_PAGE_DEFAULT)
        result: dict[str, Any] = {
            "Users": [user.search_summary() for user in page],
            "ApproximateTotalCount": len(matches),
        }
        if token:
            result["NextToken"] = token
        return result

    def update_user_identity_info(self, call: ConnectCall) -> dict[str, Any]:
        _, user = self._user(call)
        user.identity_info = dict(call.require("IdentityInfo"))
        user.last_modified = self.clock()
        return {}

    def update_user_security_profiles(self, call: ConnectCall) -> dict[str, Any]:
        state, user = self._user(call)
        user.security_profile_ids = self._check_security_profiles(
            state, call.require("SecurityProfileIds")
        )
        user.last_modified = self.clock()
        return {}

    def update_user_routing_profile(self, call: ConnectCall) -> dict[str, Any]:
        state, user = self._user(call)
        user.routing_profile_id = self._check_routing_profile(
            state, call.require("RoutingProfileId")
        )
        user.last_modified = self.clock()
        return {}

    def update_user_phone_config(self, call: ConnectCall) -> dict[str, Any]:
        _, user = self._user(call)
        user.phone_config = self._phone_config(call.require("PhoneConfig"))
        user.last_modified = self.clock()
        return {}

    def delete_user(self, call: ConnectCall) -> dict[str, Any]:
        state, user = self._user(call)
        del state.users[user.id]
        return {}

    # Security and routing profiles

    def list_security_profiles(self, call: ConnectCall) -> dict[str, Any]:
        profiles = self._instance(call).security_profiles.values()
        return _profile_summaries(call, profiles, "SecurityProfileSummaryList")

    def _security_profile_wire(self, state: InstanceState, profile: SecurityProfile) -> dict:
        return {
            "Id": profile.id,
            "OrganizationResourceId": state.id,
            "Arn": profile.arn,
            "SecurityProfileName": profile.name,
            "Description": profile.description,
            "Tags": {},
        }

    def describe_security_profile(self, call: ConnectCall) -> dict[str, Any]:
        state = self._instance(call)
        profile = state.security_profiles.get(str(call.require("SecurityProfileId")))
        if profile is None:
            raise ApiError(
                "ResourceNotFoundException",
                f"Security profile not found: {call.params['SecurityProfileId']}",
            )
        wire = self._security_profile_wire(state, profile)
        wire["LastModifiedTime"] = profile.last_modified
        wire["LastModifiedRegion"] = call.region
        return {"SecurityProfile": wire}

    def _profile_matches(self, profile: SecurityProfile, criteria: dict[str, Any]) -> bool:
        if "OrConditions" in criteria:
            return any(self._profile_matches(profile, part) for part in criteria["OrConditions"])
        if "AndConditions" in criteria:
            return all(self._profile_matches(profile, part) for part in criteria["AndConditions"])
        if "StringCondition" in criteria:
            condition = criteria["StringCondition"]
            fields = {
                "securityprofilename": [profile.name],
                "name": [profile.name],
                "description": [profile.description],
                "resourceid": [profile.id, profile.arn],
            }
            field_name = str(condition.get("FieldName", "")).lower()
            if field_name not in fields:
                raise ApiError(
                    "InvalidParameterException",
                    f"Unsupported FieldName {condition.get('FieldName')!r}; use one of "
                    f"{', '.join(sorted(fields))}.",
                )
            return _string_matches(fields[field_name], condition)
        return True

    def search_security_profiles(self, call: ConnectCall) -> dict[str, Any]:
        state = self._instance(call)
        criteria = call.params.get("SearchCriteria") or {}
        matches = sorted(
            (p for p in state.security_profiles.values() if self._profile_matches(p, criteria)),
            key=lambda profile: profile.name,
        )
        page, token = _offset_page(
            matches, call.params, SEARCH_PROFILES_PAGE_MAX, SEARCH_PROFILES_PAGE_MAX
        )
        result: dict[str, Any] = {
            "SecurityProfiles": [self._security_profile_wire(state, p) for p in page],
            "ApproximateTotalCount": len(matches),
        }
        if token:
            result["NextToken"] = token
        return result

    def list_routing_profiles(self, call: ConnectCall) -> dict[str, Any]:
        profiles = self._instance(call).routing_profiles.values()
        return _profile_summaries(call, profiles, "RoutingProfileSummaryList")

    def describe_routing_profile(self, call: ConnectCall) -> dict[str, Any]:
        state = self._instance(call)
        profile = state.routing_profiles.get(str(call.require("RoutingProfileId")))
        if profile is None:
            raise ApiError(
                "ResourceNotFoundException",
                f"Routing profile not found: {call.params['RoutingProfileId']}",
            )
        return {
            "RoutingProfile": {
                "InstanceId": state.id,
                "Name": profile.name,
                "RoutingProfileArn": profile.arn,
                "RoutingProfileId": profile.id,
                "Description": profile.description,
                "MediaConcurrencies": [
                    {"Channel": "VOICE", "Concurrency": 1},
                    {"Channel": "CHAT", "Concurrency": 2},
                    {"Channel": "TASK", "Concurrency": 10},
                ],
                "DefaultOutboundQueueId": profile.default_outbound_queue_id,
                "Tags": {},
                "NumberOfAssociatedQueues": 1,
                "NumberOfAssociatedUsers": sum(
                    1 for user in state.users.values() if user.routing_profile_id == profile.id
                ),
                "AgentAvailabilityTimer": "TIME_SINCE_LAST_ACTIVITY",
                "LastModifiedTime": profile.last_modified,
                "LastModifiedRegion": call.region,
                "IsDefault": profile.name == DEFAULT_ROUTING_PROFILE,
                "AssociatedQueueIds": [profile.default_outbound_queue_id],
            }
        }

    # Phone numbers

    def search_available_phone_numbers(self, call: ConnectCall) -> dict[str, Any]:
        self._target_instance(call)
        country = call.require("PhoneNumberCountryCode")
        number_type = call.require("PhoneNumberType")
        prefix = str(call.params.get("PhoneNumberPrefix") or "")
        if prefix and not prefix.startswith("+"):
            prefix = "+" + prefix
        claimed = {number.number for number in self._numbers.values()}
        pool = JP_NUMBER_POOLS.get(number_type, []) if country == "JP" else []
        available = [n for n in pool if n not in claimed and n.startswith(prefix)]
        page, token = _offset_page(
            available, call.params, AVAILABLE_NUMBERS_PAGE_MAX, AVAILABLE_NUMBERS_PAGE_MAX
        )
        result: dict[str, Any] = {
            "AvailableNumbersList": [
                {
                    "PhoneNumber": number,
                    "PhoneNumberCountryCode": country,
                    "PhoneNumberType": number_type,
                }
                for number in page
            ]
        }
        if token:
            result["NextToken"] = token
        return result

    def claim_phone_number(self, call: ConnectCall) -> dict[str, Any]:
        token = call.params.get("ClientToken")
        if token and token in self._number_tokens:
            claimed = self._numbers.get(self._number_tokens[token])
            if claimed is not None:
                return {"PhoneNumberId": claimed.id, "PhoneNumberArn": claimed.arn}
        state = self._target_instance(call)
        number = str(call.require("PhoneNumber"))
        number_type = next((kind for kind, pool in JP_NUMBER_POOLS.items() if number in pool), None)
        if number_type is None or any(n.number == number for n in self._numbers.values()):
            raise ApiError("InvalidParameterException", "Phone number not available")
        limit = self.quotas.value(call.region, PHONE_NUMBERS_PER_INSTANCE, state.arn)
        held = sum(1 for n in self._numbers.values() if n.instance is state)
        if held >= limit:
            raise ApiError(
                "LimitExceededException",
                f"The allowed limit for the resource has been exceeded: instance {state.id} "
                f"holds {held} phone numbers and its Phone numbers per instance quota "
                f"({PHONE_NUMBERS_PER_INSTANCE}) is {limit:g}. Request an increase in Service "
                "Quotas.",
            )
        number_id = str(uuid.uuid4())
        claimed = ClaimedNumber(
            id=number_id,
            arn=f"arn:aws:connect:{call.region}:{self.account_id}:phone-number/{number_id}",
            number=number,
            number_type=number_type,
            instance=state,
            description=str(call.params.get("PhoneNumberDescription") or ""),
            tags=dict(call.params.get("Tags") or {}),
            settles_at=self.clock() + self.claim_delay_s(),
            failure=self.next_claim_failure,
        )
        self.next_claim_failure = ""
        self._numbers[number_id] = claimed
        if token:
            self._number_tokens[token] = number_id
        return {"PhoneNumberId": claimed.id, "PhoneNumberArn": claimed.arn}

    def list_phone_numbers_v2(self, call: ConnectCall) -> dict[str, Any]:
        numbers = [n for n in self._numbers.values() if n.instance.region == call.region]
        if call.params.get("TargetArn") or call.params.get("InstanceId"):
            state = self._target_instance(call)
            numbers = [n for n in numbers if n.instance is state]
        if call.params.get("PhoneNumberCountryCodes"):
            numbers = [n for n in numbers if "JP" in call.params["PhoneNumberCountryCodes"]]
        if call.params.get("PhoneNumberTypes"):
            numbers = [n for n in numbers if n.number_type in call.params["PhoneNumberTypes"]]
        if call.params.get("PhoneNumberPrefix"):
            prefix = "+" + str(call.params["PhoneNumberPrefix"]).removeprefix("+")
            numbers = [n for n in numbers if n.number.startswith(prefix)]
        numbers.sort(key=lambda n: n.number)
        page, token = _offset_page(numbers, call.params, LIST_PAGE_MAX, LIST_PAGE_DEFAULT)
        result: dict[str, Any] = {"ListPhoneNumbersSummaryList": [n.summary() for n in page]}
        if token:
            result["NextToken"] = token
        return result

    def _claimed(self, call: ConnectCall) -> ClaimedNumber:
        reference = str(call.require("PhoneNumberId"))
        claimed = self._numbers.get(reference.rsplit("/", 1)[-1])
        if claimed is None or claimed.instance.region != call.region:
            raise ApiError("ResourceNotFoundException", f"Phone number not found: {reference}")
        return claimed

    def describe_phone_number(self, call: ConnectCall) -> dict[str, Any]:
        claimed = self._claimed(call)
        summary = claimed.summary()
        summary["Tags"] = dict(claimed.tags)
        summary["PhoneNumberStatus"] = claimed.status(self.clock())
        return {"ClaimedPhoneNumberSummary": summary}

    def fail_next_claim(self, message: str) -> None:
        """The test hook: the next ClaimPhoneNumber is accepted, then ends FAILED with `message`
        (the model's PhoneNumberStatus documentation names the commonest cause: the target has
        reached its limit of claimed numbers)."""
        with self._lock:
            self.next_claim_failure = message

    def release_phone_number(self, call: ConnectCall) -> dict[str, Any]:
        claimed = self._claimed(call)
        del self._numbers[claimed.id]
        return {}


def _string_matches(values: list[str], condition: dict[str, Any]) -> bool:
    """EXACT compares case-sensitively (a Connect username must equal the RoleSessionName
    exactly); STARTS_WITH and CONTAINS ignore case, as the admin website's search does."""
    wanted = str(condition.get("Value", ""))
    comparison = condition.get("ComparisonType", "EXACT")
    if comparison == "EXACT":
        return wanted in values
    if comparison == "STARTS_WITH":
        return any(value.lower().startswith(wanted.lower()) for value in values)
    if comparison == "CONTAINS":
        return any(wanted.lower() in value.lower() for value in values)
    raise ApiError("InvalidParameterException", f"Unsupported ComparisonType {comparison!r}.")


def _profile_summaries(call: ConnectCall, profiles: Any, list_key: str) -> dict[str, Any]:
    """One page of ListSecurityProfiles/ListRoutingProfiles: both answer with the same summary."""
    ordered = sorted(profiles, key=lambda profile: profile.name)
    page, token = _offset_page(ordered, call.params, LIST_PAGE_MAX, LIST_PAGE_DEFAULT)
    result: dict[str, Any] = {
        list_key: [
            {
                "Id": profile.id,
                "Arn": profile.arn,
                "Name": profile.name,
                "LastModifiedTime": profile.last_modified,
                "LastModifiedRegion": call.region,
            }
            for profile in page
        ]
    }
    if token:
        result["NextToken"] = token
    return result
