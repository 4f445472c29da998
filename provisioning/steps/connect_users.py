"""Creates the Amazon Connect users whose usernames equal what the IdP sends as RoleSessionName.

People come from the step's form (a CSV, below), from the inputs key "people" (a plan file), or
from the latest earlier step whose outputs hold "people" (the IdP steps), each
{"username", "first_name", "last_name", "email"?, "desk_phone"?, "security_profiles"?,
"routing_profile"?}. The CSV has a header row; columns: username, first_name, last_name, and
optionally email and desk_phone (E.164, for desk phones), e.g.

    username,first_name,last_name,email
    keiko.mcdonald@example.com,Keiko,McDonald,keiko.mcdonald@example.com

Defaults for everyone (inputs): security_profiles (names, ["Agent"]), routing_profile (name,
"Basic Routing Profile"), phone_type (SOFT_PHONE or DESK_PHONE), update_existing (false: existing
users are left alone).

Every username is checked (provisioning/usernames.py) before any call: a refused person is listed
with the reasons and left out, the others go ahead. Users are tagged with the run id, which is how
a re-run tells a user a crashed attempt of this run created from someone else's.

Outputs: created, updated, unchanged (usernames), refused ([{username, reasons}]).
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from django import forms
from django.utils.translation import gettext_lazy as _

from provisioning.aws.client import aws_errors, map_aws_error
from provisioning.context import StepContext
from provisioning.errors import PermanentError
from provisioning.steps.base import Change, Finding, Plan, Step, register
from provisioning.usernames import check_username

RUN_TAG = "connect-sso-wizard:run"
DEFAULT_SECURITY_PROFILES = ["Agent"]
DEFAULT_ROUTING_PROFILE = "Basic Routing Profile"
PHONE_TYPES = ("SOFT_PHONE", "DESK_PHONE")
# Service Quotas code of "Users per instance" and its documented default (Amazon Connect
# service quotas page of the admin guide).
USERS_PER_INSTANCE_QUOTA = "L-9A46857E"
DEFAULT_USERS_PER_INSTANCE = 500
# CreateUserRequest.SecurityProfileIds: 1 to 10 (botocore's Connect model).
MAX_SECURITY_PROFILES_PER_USER = 10
# UserPhoneConfig.DeskPhoneNumber and UserIdentityInfo.Mobile: E.164 (botocore's Connect model).
E164 = re.compile(r"^\+[1-9]\d{1,14}$")
# ListUsers pages hold up to 1000 users (botocore's model): one call covers most instances, where
# SearchUsers would cost one call per person at 2 per second.
LIST_USERS_PAGE_SIZE = 1000
CSV_COLUMNS = ("username", "first_name", "last_name")
OPTIONAL_CSV_COLUMNS = ("email", "desk_phone")


class ConnectUsersForm(forms.Form):
    people_csv = forms.CharField(
        label=_("People (CSV)"),
        widget=forms.Textarea(attrs={"rows": 8}),
        help_text=_(
            "A header row, then one person per line: username,first_name,last_name and "
            "optionally email and desk_phone. The username must be exactly what the identity "
            "provider sends as RoleSessionName."
        ),
    )
    security_profiles = forms.CharField(
        label=_("Security profiles"),
        initial="Agent",
        help_text=_("Names, separated by commas, as the instance lists them."),
    )
    routing_profile = forms.CharField(label=_("Routing profile"), initial=DEFAULT_ROUTING_PROFILE)
    phone_type = forms.ChoiceField(
        label=_("Phone type"),
        choices=[("SOFT_PHONE", _("Soft phone")), ("DESK_PHONE", _("Desk phone"))],
        initial="SOFT_PHONE",
    )
    update_existing = forms.BooleanField(label=_("Update users that already exist"), required=False)

    def clean_people_csv(self) -> str:
        value = self.cleaned_data["people_csv"]
        try:
            parse_people_csv(value)
        except ValueError as error:
            raise forms.ValidationError(str(error)) from error
        return value

    def clean_security_profiles(self) -> list[str]:
        names = [name.strip() for name in self.cleaned_data["security_profiles"].split(",")]
        return [name for name in names if name]


def parse_people_csv(text: str) -> list[dict[str, str]]:
    """People from the form's CSV (header row first); ValueError says what is wrong with it."""
    reader = csv.DictReader(io.StringIO(text.strip()))
    header = [name.strip().lower() for name in (reader.fieldnames or [])]
    missing = [column for column in CSV_COLUMNS if column not in header]
    if missing:
        raise ValueError(
            "The first line must be a header with "
            + ",".join(CSV_COLUMNS)
            + f" (and optionally {', '.join(OPTIONAL_CSV_COLUMNS)}); missing: {', '.join(missing)}."
        )
    reader.fieldnames = header
    people = []
    for row in reader:
        person = {key: (value or "").strip() for key, value in row.items() if key in header}
        if any(person.values()):
            people.append(person)
    return people


@dataclass
class Person:
    username: str
    first_name: str
    last_name: str
    email: str = ""
    desk_phone: str = ""
    security_profiles: list[str] = field(default_factory=list)
    routing_profile: str = ""
    reasons: list[str] = field(default_factory=list)


@dataclass
class Survey:
    """What the instance holds and what the run wants, read once per plan/apply/verify."""

    instance_id: str
    instance_arn: str
    security_profiles: dict[str, str]
    routing_profiles: dict[str, str]
    # Username (exact case) -> user id, for every user of the instance.
    existing: dict[str, str]
    people: list[Person]
    quota: int

    @property
    def accepted(self) -> list[Person]:
        return [person for person in self.people if not person.reasons]

    @property
    def refused(self) -> list[Person]:
        return [person for person in self.people if person.reasons]


def run_instance(ctx: StepContext) -> str:
    """The Connect instance id of the run: chosen at the start, or made by connect_instance."""
    instance_id = ctx.instance_id or str(
        ctx.outputs.get("connect_instance", {}).get("instance_id", "")
    )
    if not instance_id:
        raise PermanentError(
            "This run has no Amazon Connect instance yet.",
            code="instance_missing",
            hint="Run the Connect instance step first, or start a run for an existing instance.",
        )
    return instance_id


def _people_input(ctx: StepContext) -> list[dict[str, Any]] | None:
    if str(ctx.inputs.get("people_csv", "")).strip():
        try:
            return parse_people_csv(str(ctx.inputs["people_csv"]))
        except ValueError as error:
            raise PermanentError(str(error), code="people_csv_invalid") from error
    if isinstance(ctx.inputs.get("people"), list):
        return list(ctx.inputs["people"])
    for outputs in reversed(list(ctx.outputs.values())):
        if isinstance(outputs.get("people"), list):
            return list(outputs["people"])
    return None


def _names(value: Any, default: list[str]) -> list[str]:
    if isinstance(value, str):
        value = value.split(",")
    names = [str(name).strip() for name in (value or []) if str(name).strip()]
    return names or list(default)


def _people(ctx: StepContext, raw: list[dict[str, Any]]) -> list[Person]:
    default_profiles = _names(ctx.inputs.get("security_profiles"), DEFAULT_SECURITY_PROFILES)
    default_routing = str(ctx.inputs.get("routing_profile") or DEFAULT_ROUTING_PROFILE)
    desk = ctx.inputs.get("phone_type") == "DESK_PHONE"
    seen: set[str] = set()
    people = []
    for entry in raw:
        person = Person(
            username=str(entry.get("username", "")),
            first_name=str(entry.get("first_name", "")).strip(),
            last_name=str(entry.get("last_name", "")).strip(),
            email=str(entry.get("email", "") or "").strip(),
            desk_phone=str(entry.get("desk_phone", "") or "").strip(),
            security_profiles=_names(entry.get("security_profiles"), default_profiles),
            routing_profile=str(entry.get("routing_profile") or default_routing),
        )
        person.reasons = check_username(person.username)
        if person.username in seen:
            person.reasons.append("The username appears more than once in the list.")
        seen.add(person.username)
        if not person.first_name or not person.last_name:
            person.reasons.append(
                "Connect needs a first and a last name for users of a SAML instance."
            )
        if len(person.security_profiles) > MAX_SECURITY_PROFILES_PER_USER:
            person.reasons.append(
                f"A user can have at most {MAX_SECURITY_PROFILES_PER_USER} security profiles."
            )
        if desk and not E164.match(person.desk_phone):
            person.reasons.append(
                "A desk phone needs the person's phone number in E.164 form (like +81312345678)."
            )
        people.append(person)
    return people


def _names_to_ids(client: Any, operation: str, list_key: str, instance_id: str) -> dict[str, str]:
    found: dict[str, str] = {}
    with aws_errors():
        for page in client.get_paginator(operation).paginate(InstanceId=instance_id):
            for summary in page[list_key]:
                found[summary["Name"]] = summary["Id"]
    return found


def _existing_users(connect: Any, instance_id: str) -> dict[str, str]:
    users: dict[str, str] = {}
    with aws_errors():
        paginator = connect.get_paginator("list_users")
        for page in paginator.paginate(
            InstanceId=instance_id, PaginationConfig={"PageSize": LIST_USERS_PAGE_SIZE}
        ):
            for summary in page["UserSummaryList"]:
                users[summary["Username"]] = summary["Id"]
    return users


def _users_quota(ctx: StepContext, instance_arn: str) -> int:
    """The instance's Users per instance quota; the documented default when Service Quotas
    can't say (no permission, or the quota isn't offered in the region)."""
    quotas = ctx.aws("service-quotas")
    try:
        found = quotas.get_service_quota(
            ServiceCode="connect", QuotaCode=USERS_PER_INSTANCE_QUOTA, ContextId=instance_arn
        )
    except (ClientError, BotoCoreError) as error:
        mapped = map_aws_error(error)
        if mapped.retryable:
            raise mapped from error
        return DEFAULT_USERS_PER_INSTANCE
    return int(found["Quota"]["Value"])


def _resolve(names: list[str], available: dict[str, str], kind: str) -> list[str]:
    unknown = [name for name in names if name not in available]
    if unknown:
        raise PermanentError(
            f"The instance has no {kind} named {', '.join(repr(name) for name in unknown)}.",
            code=f"unknown_{kind.replace(' ', '_')}",
            hint=f"Use one of the instance's {kind}s: {', '.join(sorted(available))}.",
        )
    return [available[name] for name in names]


def survey(ctx: StepContext) -> Survey | None:
    """Read the instance and check the people; None when there is nobody to work on yet."""
    raw = _people_input(ctx)
    if not raw:
        return None
    people = _people(ctx, raw)
    instance_id = run_instance(ctx)
    connect = ctx.aws("connect")
    with aws_errors():
        instance = connect.describe_instance(InstanceId=instance_id)["Instance"]
    if instance.get("IdentityManagementType") != "SAML":
        raise PermanentError(
            f"Instance {instance_id} does not use SAML for identity management, so its users "
            "can't sign in through the identity provider.",
            code="instance_not_saml",
            hint="Choose or create an instance whose identity management is SAML.",
        )
    found = Survey(
        instance_id=instance_id,
        instance_arn=instance["Arn"],
        security_profiles=_names_to_ids(
            connect, "list_security_profiles", "SecurityProfileSummaryList", instance_id
        ),
        routing_profiles=_names_to_ids(
            connect, "list_routing_profiles", "RoutingProfileSummaryList", instance_id
        ),
        existing=_existing_users(connect, instance_id),
        people=people,
        quota=0,
    )
    for person in found.accepted:
        _resolve(person.security_profiles, found.security_profiles, "security profile")
        _resolve([person.routing_profile], found.routing_profiles, "routing profile")
    found.quota = _users_quota(ctx, found.instance_arn)
    return found


def _phone_config(ctx: StepContext, person: Person) -> dict[str, Any]:
    if ctx.inputs.get("phone_type") == "DESK_PHONE":
        return {"PhoneType": "DESK_PHONE", "DeskPhoneNumber": person.desk_phone}
    return {"PhoneType": "SOFT_PHONE"}


def _wanted(ctx: StepContext, found: Survey, person: Person) -> dict[str, Any]:
    return {
        "SecurityProfileIds": sorted(
            found.security_profiles[name] for name in person.security_profiles
        ),
        "RoutingProfileId": found.routing_profiles[person.routing_profile],
        "PhoneConfig": _phone_config(ctx, person),
        "IdentityInfo": {"FirstName": person.first_name, "LastName": person.last_name},
    }


def _differences(wanted: dict[str, Any], user: dict[str, Any]) -> dict[str, Any]:
    """What an update would change on an existing user (DescribeUser's shape)."""
    have = {
        "SecurityProfileIds": sorted(user.get("SecurityProfileIds", [])),
        "RoutingProfileId": user.get("RoutingProfileId", ""),
        "PhoneConfig": {
            key: value
            for key, value in (user.get("PhoneConfig") or {}).items()
            if key in wanted["PhoneConfig"]
        },
        "IdentityInfo": {
            key: (user.get("IdentityInfo") or {}).get(key, "") for key in wanted["IdentityInfo"]
        },
    }
    return {
        name: {"from": have[name], "to": value}
        for name, value in wanted.items()
        if have[name] != value
    }


def _describe(connect: Any, instance_id: str, user_id: str) -> dict[str, Any]:
    with aws_errors():
        return connect.describe_user(InstanceId=instance_id, UserId=user_id)["User"]


def _check_quota(found: Survey, to_create: int) -> None:
    in_use = len(found.existing)
    if in_use + to_create <= found.quota:
        return
    room = max(0, found.quota - in_use)
    raise PermanentError(
        f"The instance has {in_use} users and its Users per instance quota is {found.quota}: "
        f"{room} more fit, and this step would create {to_create}.",
        code="users_quota",
        hint=f"Request an increase of “Users per instance” ({USERS_PER_INSTANCE_QUOTA}) for this "
        "instance in Service Quotas (AWS console › Service Quotas › Amazon Connect), or remove "
        "people from the list, then retry.",
    )


def _refused_outputs(found: Survey) -> list[dict[str, Any]]:
    return [{"username": p.username, "reasons": p.reasons} for p in found.refused]


def _require_someone(found: Survey) -> None:
    if not found.accepted:
        raise PermanentError(
            "None of the people can become a Connect user: "
            + " ".join(f"{p.username or '(empty)'}: {' '.join(p.reasons)}" for p in found.refused),
            code="no_valid_usernames",
            hint="Fix the usernames in the identity provider (or the list), then retry.",
        )


@register
class ConnectUsers(Step):
    key = "connect_users"
    title = _("Connect users")
    description = _(
        "Creates a Connect user for each person, with a username equal to what the identity "
        "provider sends, and the security and routing profiles you chose."
    )
    form_class = ConnectUsersForm

    def plan(self, ctx: StepContext) -> Plan:
        found = survey(ctx)
        if found is None:
            return Plan(needs_input=True)
        _require_someone(found)
        connect = ctx.aws("connect")
        changes: list[Change] = []
        to_create = 0
        for person in found.accepted:
            wanted = _wanted(ctx, found, person)
            user_id = found.existing.get(person.username)
            if user_id is None:
                to_create += 1
                changes.append(
                    Change(
                        "create",
                        "connect_user",
                        person.username,
                        details={
                            "security_profiles": person.security_profiles,
                            "routing_profile": person.routing_profile,
                            "phone_type": wanted["PhoneConfig"]["PhoneType"],
                        },
                    )
                )
                continue
            differences = (
                _differences(wanted, _describe(connect, found.instance_id, user_id))
                if ctx.inputs.get("update_existing")
                else {}
            )
            changes.append(
                Change(
                    "update" if differences else "nothing",
                    "connect_user",
                    person.username,
                    details={"user_id": user_id, "changes": differences},
                )
            )
        for person in found.refused:
            changes.append(
                Change(
                    "nothing", "connect_user", person.username, details={"refused": person.reasons}
                )
            )
        _check_quota(found, to_create)
        warnings = [
            f"{person.username or '(empty username)'} is left out: {' '.join(person.reasons)}"
            for person in found.refused
        ]
        return Plan(changes=changes, warnings=warnings)

    def apply(self, ctx: StepContext) -> dict[str, Any]:
        found = survey(ctx)
        if found is None:
            raise PermanentError("No people were given.", code="people_missing")
        _require_someone(found)
        connect = ctx.aws("connect")
        missing = [p for p in found.accepted if p.username not in found.existing]
        _check_quota(found, len(missing))
        outputs: dict[str, Any] = {
            "created": [],
            "updated": [],
            "unchanged": [],
            "refused": _refused_outputs(found),
        }
        for person in found.accepted:
            user_id = found.existing.get(person.username)
            if user_id is None:
                self._create(ctx, connect, found, person)
                outputs["created"].append(person.username)
                continue
            user = _describe(connect, found.instance_id, user_id)
            if user.get("Tags", {}).get(RUN_TAG) == str(ctx.run_id):
                # A crashed attempt of this run created it; it is ours to report and roll back.
                ctx.record_created("connect_user", user_id, username=person.username)
            if any(r["identifier"] == user_id for r in ctx.created):
                outputs["created"].append(person.username)
                continue
            differences = _differences(_wanted(ctx, found, person), user)
            if differences and ctx.inputs.get("update_existing"):
                self._update(connect, found, user_id, differences)
                outputs["updated"].append(person.username)
            else:
                outputs["unchanged"].append(person.username)
        return outputs

    def _create(self, ctx: StepContext, connect: Any, found: Survey, person: Person) -> None:
        wanted = _wanted(ctx, found, person)
        try:
            with aws_errors():
                created = connect.create_user(
                    InstanceId=found.instance_id,
                    Username=person.username,
                    # Email is left out: the model says SAML instances refuse it.
                    IdentityInfo=wanted["IdentityInfo"],
                    PhoneConfig=wanted["PhoneConfig"],
                    SecurityProfileIds=wanted["SecurityProfileIds"],
                    RoutingProfileId=wanted["RoutingProfileId"],
                    Tags={RUN_TAG: str(ctx.run_id)},
                )
        except PermanentError as error:
            if error.code != "DuplicateResourceException":
                raise
            # Created since the survey: ours only if it carries this run's tag.
            user_id = _existing_users(connect, found.instance_id).get(person.username, "")
            user = _describe(connect, found.instance_id, user_id) if user_id else {}
            if user.get("Tags", {}).get(RUN_TAG) != str(ctx.run_id):
                raise
            ctx.record_created("connect_user", user_id, username=person.username)
            return
        ctx.record_created("connect_user", created["UserId"], username=person.username)

    def _update(
        self, connect: Any, found: Survey, user_id: str, differences: dict[str, Any]
    ) -> None:
        calls = {
            "SecurityProfileIds": ("update_user_security_profiles", "SecurityProfileIds"),
            "RoutingProfileId": ("update_user_routing_profile", "RoutingProfileId"),
            "PhoneConfig": ("update_user_phone_config", "PhoneConfig"),
            "IdentityInfo": ("update_user_identity_info", "IdentityInfo"),
        }
        with aws_errors():
            for name, change in differences.items():
                operation, parameter = calls[name]
                getattr(connect, operation)(
                    InstanceId=found.instance_id, UserId=user_id, **{parameter: change["to"]}
                )

    def verify(self, ctx: StepContext) -> list[Finding]:
        found = survey(ctx)
        if found is None:
            return []
        connect = ctx.aws("connect")
        created = {r["identifier"] for r in ctx.created if r["resource_type"] == "connect_user"}
        missing, wrong = [], []
        for person in found.accepted:
            user_id = found.existing.get(person.username)
            if user_id is None:
                missing.append(person.username)
                continue
            if user_id not in created and not ctx.inputs.get("update_existing"):
                continue
            if _differences(
                _wanted(ctx, found, person), _describe(connect, found.instance_id, user_id)
            ):
                wrong.append(person.username)
        findings = [
            Finding(
                check="Every person has a Connect user",
                ok=not missing,
                detail=f"missing: {', '.join(missing)}" if missing else "",
                fix="Retry the step." if missing else "",
            ),
            Finding(
                check="Users have the chosen security and routing profiles",
                ok=not wrong,
                detail=f"different: {', '.join(wrong)}" if wrong else "",
                fix="Retry the step with “Update users that already exist” ticked."
                if wrong
                else "",
            ),
        ]
        return findings

    def rollback(self, ctx: StepContext) -> None:
        instance_id = run_instance(ctx)
        connect = ctx.aws("connect")
        for resource in ctx.created:
            if resource["resource_type"] != "connect_user":
                continue
            try:
                with aws_errors():
                    connect.delete_user(InstanceId=instance_id, UserId=resource["identifier"])
            except PermanentError as error:
                if error.code != "ResourceNotFoundException":
                    raise
