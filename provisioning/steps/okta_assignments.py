"""Assigns the people the admin picks (users and/or groups of the Okta org) to the Okta app with
the Connect role, after checking that the app username Okta will send as RoleSessionName can be
a Connect username.

Until the admin has chosen, the plan reads the org's users and groups (in the worker) and waits
with the people picker (provisioning/directory_picker.py). Inputs: `picked`, `principals_text`,
`exclude_logins`, `exclude_offenders` (read_choice). A picked group counts as its members at
planning time (Okta groups don't nest, and a member is checked one by one); people who join the
group later are not assigned until the step runs again.

How the role is given depends on the flow's role step:
- group mapping (outputs["okta_group_mapping"]): people become members of the role group, and the
  role group is assigned to the app;
- role download: each person is assigned directly with the role in `samlRoles` (the role name
  Okta downloaded from AWS; outputs["federation_role"]["role_name"]).

Outputs: people ([{username, first_name, last_name, email, login}] for connect_users: username is
the app username Okta sends), assigned (logins), excluded ([{login, reasons}]), mode.
Rollback removes the assignments and memberships this run added.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop

from provisioning.context import StepContext
from provisioning.directory_picker import (
    DIRECTORY_CAP,
    PeoplePickerForm,
    PickerPlan,
    directory_snapshot,
    picker_answers,
    read_choice,
)
from provisioning.errors import PermanentError
from provisioning.messages import Message, joined, to_json
from provisioning.okta import aws_app
from provisioning.okta.rest import okta_call, okta_pages
from provisioning.steps.base import Change, Finding, Plan, Step, StepOutputs, register
from provisioning.steps.federation_role import FederationRoleOutputs
from provisioning.steps.okta_app import OktaAppOutputs
from provisioning.steps.okta_app_provider import existing_app
from provisioning.steps.okta_group_mapping import OktaGroupMappingOutputs
from provisioning.usernames import check_username

GROUP_MAPPING = "group_mapping"
ROLE_DOWNLOAD = "role_download"
# Page sizes: Okta's maxima for users (200), groups (10000) and app users (500).
USERS_PAGE = 200
# An Okta user id: "00u" and 17 letters or digits (Okta object ids are 20 characters).
OKTA_USER_ID = re.compile(r"00u[A-Za-z0-9]{17}")
GROUPS_PAGE = 10000
APP_USERS_PAGE = 500
# The app username templates Okta's "Application username format" offers for SAML apps, by what
# they send (Okta Help, "Application username formats").
USERNAME_TEMPLATES = {
    "${source.login}": lambda person: person.login,
    "${source.email}": lambda person: person.email,
    '${fn:substringBefore(source.login,"@")}': lambda person: person.login.split("@")[0],
    '${fn:substringBefore(source.email,"@")}': lambda person: person.email.split("@")[0],
}
DEFAULT_TEMPLATE = "${source.login}"


@dataclass
class Person:
    id: str
    login: str
    email: str
    first_name: str
    last_name: str
    username: str = ""
    reasons: list[Message] = field(default_factory=list)

    def as_output(self) -> dict[str, str]:
        return {
            "username": self.username,
            "first_name": self.first_name,
            "last_name": self.last_name,
            "email": self.email,
            "login": self.login,
        }


@dataclass
class Survey:
    mode: str
    app: dict[str, Any]
    accepted: list[Person]
    excluded: list[Person]
    warnings: list[Message | str]


def _person(user: dict[str, Any]) -> Person:
    profile = user.get("profile") or {}
    return Person(
        id=str(user["id"]),
        login=str(profile.get("login") or ""),
        email=str(profile.get("email") or ""),
        first_name=str(profile.get("firstName") or ""),
        last_name=str(profile.get("lastName") or ""),
    )


def _mode(ctx: StepContext) -> str:
    return GROUP_MAPPING if "okta_group_mapping" in ctx.outputs else ROLE_DOWNLOAD


def _role_name(ctx: StepContext) -> str:
    name = ctx.outputs_of(FederationRoleOutputs).role_name
    if not name:
        raise PermanentError(
            Message(_("This step needs the role of the step federation_role.")),
            code="okta_no_role",
        )
    return name


def _role_group_id(ctx: StepContext) -> str:
    return ctx.outputs_of(OktaGroupMappingOutputs).group_id


def read_directory(client: Any) -> dict[str, Any]:
    """The org's users and groups for the picker, at most DIRECTORY_CAP of each."""
    users: list[dict[str, str]] = []
    for user in okta_pages(client, "/api/v1/users", params={"limit": USERS_PAGE}):
        if len(users) > DIRECTORY_CAP:
            break
        person = _person(user)
        users.append(
            {
                "id": person.id,
                "login": person.login,
                "name": f"{person.first_name} {person.last_name}".strip() or person.login,
                "email": person.email,
            }
        )
    groups: list[dict[str, Any]] = []
    for group in okta_pages(
        client, "/api/v1/groups", params={"limit": GROUPS_PAGE, "expand": "stats"}
    ):
        if len(groups) > DIRECTORY_CAP:
            break
        stats = ((group.get("_embedded") or {}).get("stats") or {}).get("usersCount")
        if not isinstance(stats, int):
            # An org that doesn't expand stats: count the members (the groups API, not the
            # rate-limited apps API).
            stats = sum(1 for _member in okta_pages(client, f"/api/v1/groups/{group['id']}/users"))
        groups.append(
            {
                "id": str(group["id"]),
                "name": str((group.get("profile") or {}).get("name") or ""),
                "member_count": stats,
            }
        )
    return directory_snapshot(
        users,
        groups,
        more_users=len(users) > DIRECTORY_CAP,
        more_groups=len(groups) > DIRECTORY_CAP,
    )


def _group_members(client: Any, group_id: str) -> list[Person]:
    return [_person(user) for user in okta_pages(client, f"/api/v1/groups/{group_id}/users")]


def _find_group(client: Any, name: str) -> dict[str, Any] | None:
    for group in okta_pages(client, "/api/v1/groups", params={"q": name, "limit": GROUPS_PAGE}):
        if (group.get("profile") or {}).get("name") == name:
            return group
    return None


def _get_user(client: Any, reference: str) -> dict[str, Any] | None:
    """A user by id (a path), or by login through a quoted filter: a typed login never becomes
    part of the URL path (Okta's Users API: `filter=profile.login eq "..."`)."""
    if not OKTA_USER_ID.fullmatch(reference):
        escaped = reference.replace("\\", "\\\\").replace('"', '\\"')
        found = okta_call(
            client, "GET", "/api/v1/users", params={"filter": f'profile.login eq "{escaped}"'}
        )
        return (found or [None])[0]
    try:
        return okta_call(client, "GET", f"/api/v1/users/{reference}")
    except PermanentError as error:
        if error.code == aws_app.NOT_FOUND:
            return None
        raise


def _chosen_people(ctx: StepContext, client: Any) -> tuple[list[Person], list[Message | str]]:
    """Everyone the choice names, each once, and warnings about what it couldn't find."""
    choice = read_choice(ctx.inputs)
    people: dict[str, Person] = {}
    warnings: list[Message | str] = []
    for user_id in choice.user_ids:
        user = _get_user(client, user_id)
        if user is None:
            warnings.append(
                Message(
                    gettext_noop("The Okta user %(user)s no longer exists; left out."),
                    {"user": user_id},
                )
            )
        else:
            people.setdefault(user["id"], _person(user))
    group_names: list[str] = []
    for group_id in choice.group_ids:
        for person in _group_members(client, group_id):
            people.setdefault(person.id, person)
        group_names.append(group_id)
    for name in choice.names:
        group = _find_group(client, name)
        if group is not None:
            group_names.append(str((group.get("profile") or {}).get("name") or name))
            for person in _group_members(client, group["id"]):
                people.setdefault(person.id, person)
            continue
        user = _get_user(client, name)
        if user is None:
            raise PermanentError(
                Message(_("The Okta org has no user or group called “%(name)s”."), {"name": name}),
                code="okta_principal_not_found",
                hint=Message(
                    _("Check the sign-in name or group name, then save the step's form again.")
                ),
            )
        people.setdefault(user["id"], _person(user))
    if group_names:
        warnings.append(
            Message(
                _(
                    "Groups count as their members today: people who join them later are not "
                    "assigned until this step runs again."
                )
            )
        )
    excluded = {login for login in choice.excluded_logins}
    return [p for p in people.values() if p.login.lower() not in excluded], warnings


def _username(app: dict[str, Any], person: Person) -> str:
    template = ((app.get("credentials") or {}).get("userNameTemplate") or {}).get(
        "template"
    ) or DEFAULT_TEMPLATE
    render = USERNAME_TEMPLATES.get(template.replace(" ", ""))
    if render is None:
        raise PermanentError(
            Message(
                _("The app's username format “%(template)s” is not one the wizard can predict."),
                {"template": template},
            ),
            code="okta_unknown_username_template",
            hint=Message(
                _(
                    "In the app's Sign On tab, set Application username format to Okta username "
                    "or Email (or a prefix of them)."
                )
            ),
        )
    return render(person)


def survey(ctx: StepContext, client: Any) -> Survey:
    app = existing_app(ctx, client)
    people, warnings = _chosen_people(ctx, client)
    if not people:
        raise PermanentError(
            Message(_("The users and groups you chose hold nobody to assign.")),
            code="okta_nobody_chosen",
            hint=Message(_("Choose other users or groups.")),
        )
    accepted: list[Any] = []
    excluded: list[Any] = []
    for person in sorted(people, key=lambda p: p.login.lower()):
        person.username = _username(app, person)
        person.reasons = check_username(person.username)
        (excluded if person.reasons else accepted).append(person)
    if excluded and not read_choice(ctx.inputs).exclude_offenders:
        raise PermanentError(
            Message(
                gettext_noop(
                    "These people's Okta app usernames can't be Connect usernames: %(people)s"
                ),
                {
                    "people": joined(
                        [
                            Message(
                                gettext_noop("%(username)s: %(reasons)s"),
                                {"username": p.username, "reasons": joined(p.reasons, " ")},
                            )
                            for p in excluded
                        ],
                        " ",
                    )
                },
            ),
            code="okta_bad_usernames",
            hint=Message(
                gettext_noop(
                    "Fix them in Okta, or leave them out (tick “Leave out people whose sign-in "
                    "name can't be a Connect username”), then save the form again."
                )
            ),
        )
    for person in excluded:
        warnings.append(
            Message(
                gettext_noop("%(username)s is left out: %(reasons)s"),
                {"username": person.username, "reasons": joined(person.reasons, " ")},
            )
        )
    if not accepted:
        raise PermanentError(
            Message(_("None of the chosen people can become a Connect user.")),
            code="okta_no_valid_usernames",
            hint=Message(_("Fix the usernames in Okta, then save the form again.")),
        )
    return Survey(_mode(ctx), app, accepted, excluded, warnings)


def _app_users(client: Any, app_id: str) -> dict[str, dict[str, Any]]:
    return {
        str(user["id"]): user
        for user in okta_pages(
            client, f"{aws_app.app_path(app_id)}/users", params={"limit": APP_USERS_PAGE}
        )
    }


def app_group_assigned(client: Any, app_id: str, group_id: str) -> bool:
    try:
        okta_call(client, "GET", f"{aws_app.app_path(app_id)}/groups/{group_id}")
    except PermanentError as error:
        if error.code == aws_app.NOT_FOUND:
            return False
        raise
    return True


def _needs_role(app_user: dict[str, Any] | None, role: str) -> bool:
    """True when the person isn't assigned directly with the role in samlRoles."""
    if app_user is None or app_user.get("scope") != "USER":
        return True
    return role not in ((app_user.get("profile") or {}).get("samlRoles") or [])


@dataclass
class Work:
    """The writes a survey calls for."""

    members_to_add: list[Person] = field(default_factory=list)
    assign_group: bool = False
    users_to_assign: list[Person] = field(default_factory=list)
    # The app's current user assignments by user id (role download only).
    app_users: dict[str, dict[str, Any]] = field(default_factory=dict)


def _work(ctx: StepContext, client: Any, found: Survey) -> Work:
    work = Work()
    app_id = found.app["id"]
    if found.mode == GROUP_MAPPING:
        group_id = _role_group_id(ctx)
        members = {person.id for person in _group_members(client, group_id)}
        work.members_to_add = [p for p in found.accepted if p.id not in members]
        work.assign_group = not app_group_assigned(client, app_id, group_id)
    else:
        role = _role_name(ctx)
        work.app_users = _app_users(client, app_id)
        work.users_to_assign = [
            p for p in found.accepted if _needs_role(work.app_users.get(p.id), role)
        ]
    return work


def _changes(ctx: StepContext, found: Survey, work: Work) -> list[Change]:
    changes: list[Change] = []
    if found.mode == GROUP_MAPPING:
        group = ctx.outputs_of(OktaGroupMappingOutputs).group_name
        to_add = {p.id for p in work.members_to_add}
        for person in found.accepted:
            changes.append(
                Change(
                    "create" if person.id in to_add else "nothing",
                    "okta_group_member",
                    person.username,
                    details={"group": group},
                )
            )
        changes.append(
            Change("create" if work.assign_group else "nothing", "okta_app_group", str(group))
        )
        return changes
    to_assign = {p.id for p in work.users_to_assign}
    role = _role_name(ctx)
    for person in found.accepted:
        changes.append(
            Change(
                "create" if person.id in to_assign else "nothing",
                "okta_app_user",
                person.username,
                details={"samlRoles": [role]},
            )
        )
    return changes


def _excluded_output(found: Survey) -> list[dict[str, Any]]:
    return [{"login": p.login, "reasons": to_json(p.reasons)} for p in found.excluded]


@dataclass
class OktaAssignmentsOutputs(StepOutputs):
    """Who the step gave access to the Okta app, how, and who it left out."""

    step_key: ClassVar[str] = "okta_assignments"

    mode: str = ""  # group mapping or role download
    # {username, first_name, last_name, email, login} per person who may sign in.
    people: list[dict[str, str]] = field(default_factory=list)
    assigned: list[str] = field(default_factory=list)  # their logins
    # {login, reasons} per person left out; reasons are messages in their JSON form.
    excluded: list[dict[str, Any]] = field(default_factory=list)


@register
class OktaAssignments(Step):
    key = "okta_assignments"
    title = _("Okta: who may sign in")
    description = _(
        "Assigns the users and groups you pick to the Okta app with the Connect role, after "
        "checking that each username Okta sends can be a Connect username."
    )
    form_class = PeoplePickerForm

    def form_answers(self, ctx: StepContext) -> dict[str, Any]:
        return picker_answers(super().form_answers(ctx), ctx.inputs)

    def input_plan(self, ctx: StepContext) -> Plan:
        return PickerPlan(needs_input=True, directory=read_directory(ctx.okta()))

    def plan(self, ctx: StepContext) -> Plan:
        client = ctx.okta()
        found = survey(ctx, client)
        return Plan(
            changes=_changes(ctx, found, _work(ctx, client, found)), warnings=found.warnings
        )

    def apply(self, ctx: StepContext) -> OktaAssignmentsOutputs:
        client = ctx.okta()
        found = survey(ctx, client)
        work = _work(ctx, client, found)
        app_id = found.app["id"]
        group_id = _role_group_id(ctx)
        for person in work.members_to_add:
            okta_call(client, "PUT", f"/api/v1/groups/{group_id}/users/{person.id}")
            ctx.record_created("okta_group_member", person.id, group_id=group_id)
        if work.assign_group:
            okta_call(client, "PUT", f"{aws_app.app_path(app_id)}/groups/{group_id}", {})
            ctx.record_created("okta_app_group", group_id, app_id=app_id)
        if work.users_to_assign:
            role = _role_name(ctx)
            assigned = work.app_users
            for person in work.users_to_assign:
                profile = {"role": role, "samlRoles": [role]}
                if person.id in assigned and assigned[person.id].get("scope") == "USER":
                    okta_call(
                        client,
                        "POST",
                        f"{aws_app.app_path(app_id)}/users/{person.id}",
                        {"profile": profile},
                    )
                else:
                    okta_call(
                        client,
                        "POST",
                        f"{aws_app.app_path(app_id)}/users",
                        {"id": person.id, "scope": "USER", "profile": profile},
                    )
                    ctx.record_created("okta_app_user", person.id, app_id=app_id)
        return OktaAssignmentsOutputs(
            mode=found.mode,
            people=[person.as_output() for person in found.accepted],
            assigned=[person.login for person in found.accepted],
            excluded=_excluded_output(found),
        )

    def verify(self, ctx: StepContext) -> list[Finding]:
        client = ctx.okta()
        app_id = existing_app(ctx, client)["id"]
        app_users = _app_users(client, app_id)
        expected = ctx.outputs_of(OktaAppOutputs)
        findings = []
        for record in ctx.created_of("okta_app_user"):
            if record.identifier not in app_users:
                findings.append(
                    Finding(
                        check=Message(_("A person is assigned to the Okta app")),
                        ok=False,
                        detail=record.identifier,
                        fix=Message(_("Retry the step.")),
                    )
                )
        findings.append(
            Finding(
                check=Message(_("People are assigned to the Okta app")),
                ok=bool(app_users),
                detail=Message(
                    _("%(count)s assigned to %(app)s"),
                    {"count": len(app_users), "app": expected.app_label or app_id},
                ),
                fix=Message(_("Retry the step.")),
            )
        )
        return findings

    def rollback(self, ctx: StepContext) -> None:
        client = ctx.okta()
        made = ctx.created_of("okta_app_user", "okta_app_group", "okta_group_member")
        for record in reversed(made):
            kind, identifier, details = record.kind, record.identifier, record.details
            if kind == "okta_app_user":
                path = f"{aws_app.app_path(details['app_id'])}/users/{identifier}"
            elif kind == "okta_app_group":
                path = f"{aws_app.app_path(details['app_id'])}/groups/{identifier}"
            else:
                path = f"/api/v1/groups/{details['group_id']}/users/{identifier}"
            try:
                okta_call(client, "DELETE", path)
            except PermanentError as error:
                if error.code != aws_app.NOT_FOUND:
                    raise
