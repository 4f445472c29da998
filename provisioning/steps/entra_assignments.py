"""The entra_assignments step: the users and groups the admin picks are assigned the app role of
entra_claims, after every person's RoleSessionName has been checked against Connect's and STS's
username rules; the people who can sign in become outputs["people"] for connect_users.

Entra lets only DIRECT members of an assigned group sign in (nested group memberships are ignored
for app assignment; sign-in fails with AADSTS50105). So a picked group that contains other groups
is handled as the admin chooses (input `nested_groups`): "assign" (default) assigns each nested
group that directly holds users as well, "skip" leaves their members out (listed in the plan).

Reads outputs["entra_app"]["service_principal_id"], outputs["entra_claims"] (app_role_id,
session_name_source). Inputs: the picker's (provisioning/directory_picker.py) and `nested_groups`.
Outputs: people [{username, first_name, last_name, email, login}], assigned [{principal_id,
principal_type, name}], left_out [{login, reasons}].

Rollback removes only the assignments this run made (recorded before each is made).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, ClassVar

from django import forms
from django.utils.translation import gettext_lazy as _
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph.generated.groups.groups_request_builder import GroupsRequestBuilder
from msgraph.generated.models.app_role_assignment import AppRoleAssignment
from msgraph.generated.users.users_request_builder import UsersRequestBuilder

from provisioning.context import StepContext
from provisioning.directory_picker import (
    DIRECTORY_CAP,
    Choice,
    PeoplePickerForm,
    PickerPlan,
    directory_snapshot,
    picker_answers,
    read_choice,
)
from provisioning.entra.client import run_graph, run_graph_together
from provisioning.entra.graph_reads import all_pages, get_or_none, rest_of_pages
from provisioning.entra.group_members import transitive_user_members
from provisioning.errors import PermanentError
from provisioning.messages import Message, joined, to_json
from provisioning.steps.base import Change, Finding, Plan, Step, StepOutputs, register
from provisioning.steps.entra_app import EntraAppOutputs
from provisioning.steps.entra_claims import EntraClaimsOutputs
from provisioning.usernames import check_username

RESOURCE_TYPE = "entra_app_role_assignment"
# The key under which plan() hands apply(), and apply() verify(), the people it resolved
# (StepContext.read_by_plan, read_by_apply).
RESOLUTION = "resolution"
# The app's assignments as plan() read them, for the apply() that follows it at once.
ASSIGNED = "assigned"
USER_FIELDS = ["id", "userPrincipalName", "displayName", "givenName", "surname", "mail"]
# Graph's largest page for users and groups ($top 1-999).
PAGE_SIZE = 999
# Member counts are read for at most this many groups of the snapshot (one call each).
COUNTED_GROUPS = 100
NESTED_CHOICES = [
    ("assign", _("Also assign the nested groups, so their members can sign in")),
    ("skip", _("Leave the members of nested groups out")),
]
NESTED_EXPLANATION = _(
    "In Entra ID only direct members of an assigned group can sign in: members of a group "
    "inside it can't (AADSTS50105). Assign the group that directly holds the users, or the "
    "users themselves."
)


class EntraAssignmentsForm(PeoplePickerForm):
    nested_groups = forms.ChoiceField(
        label=_("Groups inside the groups you pick"),
        choices=NESTED_CHOICES,
        initial="assign",
        widget=forms.RadioSelect,
        help_text=NESTED_EXPLANATION,
    )


def _user_entry(user: Any) -> dict[str, str]:
    return {
        "id": str(user.id),
        "login": str(user.user_principal_name or ""),
        "name": str(user.display_name or user.user_principal_name or ""),
        "email": str(user.mail or ""),
    }


def read_directory(client: Any) -> dict[str, Any]:
    """The picker's snapshot: users and groups, with each group's direct member count and a
    note on nested groups."""
    users_query = UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(
        select=USER_FIELDS, top=PAGE_SIZE
    )
    users, more_users = all_pages(
        client.users,
        client.users.get(request_configuration=RequestConfiguration(query_parameters=users_query)),
        limit=DIRECTORY_CAP,
    )
    groups_query = GroupsRequestBuilder.GroupsRequestBuilderGetQueryParameters(
        select=["id", "displayName"], top=PAGE_SIZE
    )
    groups, more_groups = all_pages(
        client.groups,
        client.groups.get(
            request_configuration=RequestConfiguration(query_parameters=groups_query)
        ),
        limit=DIRECTORY_CAP,
    )
    group_entries = []
    for index, group in enumerate(groups):
        entry: dict[str, Any] = {"id": str(group.id), "name": str(group.display_name or "")}
        if index < COUNTED_GROUPS:
            direct_users, nested = _direct_members(client, str(group.id))
            entry["member_count"] = len(direct_users)
            if nested:
                entry["note"] = str(
                    _("contains {count} group(s): their members can't sign in through it")
                ).format(count=len(nested))
        group_entries.append(entry)
    return directory_snapshot(
        [_user_entry(user) for user in users],
        group_entries,
        more_users=more_users,
        more_groups=more_groups,
    )


def _direct_members(client: Any, group_id: str) -> tuple[list[Any], list[Any]]:
    """(users, groups) that are direct members of the group."""
    members = client.groups.by_group_id(group_id).members
    # Both first pages at once: neither read waits for the other's answer.
    user_page, group_page = run_graph_together(members.graph_user.get(), members.graph_group.get())
    users, _more = rest_of_pages(members.graph_user, user_page, limit=DIRECTORY_CAP * 50)
    groups, _more = rest_of_pages(members.graph_group, group_page, limit=DIRECTORY_CAP)
    return users, groups


@dataclass
class Resolution:
    """Who gets assigned, who can sign in, and who is left out and why."""

    principals: dict[str, tuple[str, str]] = field(default_factory=dict)  # id -> (type, name)
    people: dict[str, Any] = field(default_factory=dict)  # user id -> msgraph User
    left_out: list[dict[str, Any]] = field(default_factory=list)
    nested_only: dict[str, list[str]] = field(default_factory=dict)  # group -> member logins
    not_found: list[str] = field(default_factory=list)
    offenders: list[dict[str, Any]] = field(default_factory=list)


def _find_group_by_name(client: Any, name: str) -> Any | None:
    escaped = name.replace("'", "''")
    query = GroupsRequestBuilder.GroupsRequestBuilderGetQueryParameters(
        filter=f"displayName eq '{escaped}'"
    )
    found = run_graph(
        client.groups.get(request_configuration=RequestConfiguration(query_parameters=query))
    )
    return (found.value or [None])[0]


def _find_user_by_login(client: Any, login: str) -> Any | None:
    """A typed sign-in name is looked up by a quoted filter (OData doubles a quote inside a
    string), never put into the URL path, where a "/" in it would name another resource."""
    escaped = login.replace("'", "''")
    query = UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(
        filter=f"userPrincipalName eq '{escaped}'"
    )
    found = run_graph(
        client.users.get(request_configuration=RequestConfiguration(query_parameters=query))
    )
    return (found.value or [None])[0]


def _add_group(client: Any, group: Any, choice: Choice, nested: str, result: Resolution) -> None:
    name = str(group.display_name or group.id)
    result.principals[str(group.id)] = ("Group", name)
    users, inner_groups = _direct_members(client, str(group.id))
    for user in users:
        result.people.setdefault(str(user.id), user)
    for inner in inner_groups:
        if str(inner.id) in result.principals:
            continue
        if nested == "assign":
            _add_group(client, inner, choice, nested, result)
        else:
            inner_users, _more = transitive_user_members(
                client, str(inner.id), limit=DIRECTORY_CAP * 50
            )
            result.nested_only[str(inner.display_name)] = [
                str(user.get("userPrincipalName") or "") for user in inner_users
            ]


def session_name(user: Any, source: str) -> str:
    return str((user.mail if source == "mail" else user.user_principal_name) or "")


def resolve(ctx: StepContext, client: Any, choice: Choice) -> Resolution:
    source = ctx.outputs_of(EntraClaimsOutputs).session_name_source or "userprincipalname"
    nested = str(ctx.inputs.get("nested_groups") or "assign")
    result = Resolution()
    individual: list[Any] = []
    for user_id in choice.user_ids:
        user = get_or_none(client.users.by_user_id(user_id).get())
        if user is None:
            result.not_found.append(user_id)
        else:
            individual.append(user)
    for group_id in choice.group_ids:
        group = get_or_none(client.groups.by_group_id(group_id).get())
        if group is None:
            result.not_found.append(group_id)
        else:
            _add_group(client, group, choice, nested, result)
    for name in choice.names:
        user = _find_user_by_login(client, name) if "@" in name else None
        group = None if user is not None else _find_group_by_name(client, name)
        if user is not None:
            individual.append(user)
        elif group is not None:
            _add_group(client, group, choice, nested, result)
        else:
            result.not_found.append(name)
    for user in individual:
        result.people.setdefault(str(user.id), user)
        result.principals[str(user.id)] = ("User", str(user.user_principal_name))
    for user_id, user in list(result.people.items()):
        login = str(user.user_principal_name or "")
        if login.lower() in choice.excluded_logins:
            result.left_out.append({"login": login, "reasons": [Message(_("You left them out."))]})
            del result.people[user_id]
            continue
        value = session_name(user, source)
        reasons = (
            check_username(value)
            if value
            else [
                Message(
                    _("The user has no {source}, so Entra sends no RoleSessionName."),
                    {"source": source},
                )
            ]
        )
        if reasons:
            result.offenders.append({"login": login, "sends": value, "reasons": reasons})
            if choice.exclude_offenders:
                result.left_out.append({"login": login, "reasons": reasons})
                del result.people[user_id]
                # Picked on their own, they aren't assigned; in a group, the group still is.
                if result.principals.get(user_id, ("",))[0] == "User":
                    del result.principals[user_id]
    return result


def existing_assignments(client: Any, sp_id: str) -> dict[tuple[str, str], str]:
    """(principal id, app role id) -> assignment id, for the app's current assignments."""
    builder = client.service_principals.by_service_principal_id(sp_id).app_role_assigned_to
    items, _more = all_pages(builder, builder.get(), limit=DIRECTORY_CAP * 50)
    return {(str(a.principal_id), str(a.app_role_id)): str(a.id) for a in items}


def assign_to_app(
    ctx: StepContext,
    client: Any,
    sp_id: str,
    role_id: str,
    principals: dict[str, tuple[str, str]],
    existing: dict[tuple[str, str], str] | None = None,
) -> list[str]:
    """Assign each principal (id -> (kind "User"/"Group", name)) the app role, unless it has
    it; the ids of those assigned now. Each is recorded for rollback before it is made.
    `existing`: the app's assignments as the plan read them a moment ago (else read here)."""
    if existing is None:
        existing = existing_assignments(client, sp_id)
    assigned_to = client.service_principals.by_service_principal_id(sp_id).app_role_assigned_to
    made = []
    for principal_id, (kind, name) in principals.items():
        if (principal_id, role_id) in existing:
            continue
        # Recorded first: a crash after Graph made it still lets rollback find it.
        ctx.record_created(
            RESOURCE_TYPE,
            f"{principal_id}:{role_id}",
            service_principal_id=sp_id,
            principal=f"{kind}: {name}",
        )
        run_graph(
            assigned_to.post(
                AppRoleAssignment(
                    principal_id=uuid.UUID(principal_id),
                    resource_id=uuid.UUID(sp_id),
                    app_role_id=uuid.UUID(role_id),
                )
            )
        )
        made.append(principal_id)
    return made


def _warnings(result: Resolution) -> list[Message | str]:
    warnings: list[Message | str] = []
    for group, logins in result.nested_only.items():
        warnings.append(
            Message(
                _(
                    "The group “{group}” sits inside a group you picked: its {count} member(s) "
                    "can't sign in through that group and are left out. {why}"
                ),
                {"group": group, "count": len(logins), "why": NESTED_EXPLANATION},
            )
        )
    for offender in result.offenders:
        warnings.append(
            Message(
                _("{login} would sign in as “{sends}”: {reasons}"),
                {
                    "login": offender["login"],
                    "sends": offender["sends"],
                    "reasons": joined(offender["reasons"], " "),
                },
            )
        )
    return warnings


def _people_outputs(result: Resolution, source: str) -> list[dict[str, str]]:
    people = []
    for user in sorted(result.people.values(), key=lambda u: str(u.user_principal_name).lower()):
        people.append(
            {
                "username": session_name(user, source),
                "first_name": str(user.given_name or ""),
                "last_name": str(user.surname or ""),
                "email": str(user.mail or ""),
                "login": str(user.user_principal_name or ""),
            }
        )
    return people


@dataclass
class EntraAssignmentsOutputs(StepOutputs):
    """Who the step assigned to the app, and the people later steps make Connect users of."""

    step_key: ClassVar[str] = "entra_assignments"

    # {username, first_name, last_name, email, login} per person who may sign in.
    people: list[dict[str, str]] = field(default_factory=list)
    # {principal_id, principal_type, name} per user or group assigned.
    assigned: list[dict[str, str]] = field(default_factory=list)
    # {login, reasons} per person left out; reasons are messages in their JSON form.
    left_out: list[dict[str, Any]] = field(default_factory=list)


@register
class EntraAssignments(Step):
    key = "entra_assignments"
    title = _("Who may sign in")
    description = _(
        "Assigns the users and groups you pick to the app. In Entra ID only direct members of an "
        "assigned group can sign in, not members of groups inside it."
    )
    form_class = EntraAssignmentsForm

    def _context(self, ctx: StepContext) -> tuple[Any, str, str]:
        app = ctx.outputs_of(EntraAppOutputs)
        claims = ctx.outputs_of(EntraClaimsOutputs)
        if not app.service_principal_id or not claims.app_role_id:
            raise PermanentError(
                Message(_("No earlier step set up the Entra app and its role.")),
                code="entra_app_missing",
                hint=Message(_("This step follows entra_app and entra_claims in the flow.")),
            )
        return ctx.graph(), app.service_principal_id, claims.app_role_id

    def form_answers(self, ctx: StepContext) -> dict[str, Any]:
        return picker_answers(super().form_answers(ctx), ctx.inputs)

    def input_plan(self, ctx: StepContext) -> Plan:
        client, _sp_id, _role_id = self._context(ctx)
        return PickerPlan(
            needs_input=True,
            directory=read_directory(client),
            warnings=[str(NESTED_EXPLANATION)],
        )

    def plan(self, ctx: StepContext) -> Plan:
        client, sp_id, role_id = self._context(ctx)
        choice = read_choice(ctx.inputs)
        result = resolve(ctx, client, choice)
        ctx.read_by_plan[RESOLUTION] = result
        warnings = _warnings(result)
        if result.not_found:
            warnings.insert(
                0,
                Message(
                    _("Not found in the tenant: {names}."), {"names": ", ".join(result.not_found)}
                ),
            )
        if (
            result.not_found
            or (result.offenders and not choice.exclude_offenders)
            or not result.people
        ):
            if not result.people:
                warnings.append(
                    Message(_("Nobody who can sign in is left: pick other users or groups."))
                )
            return PickerPlan(needs_input=True, directory=read_directory(client), warnings=warnings)
        existing = existing_assignments(client, sp_id)
        ctx.read_by_plan[ASSIGNED] = existing
        changes = [
            Change(
                "nothing" if (principal_id, role_id) in existing else "create",
                RESOURCE_TYPE,
                f"{kind}: {name}",
                {"principal_id": principal_id},
            )
            for principal_id, (kind, name) in result.principals.items()
        ]
        return Plan(changes=changes, warnings=warnings)

    def apply(self, ctx: StepContext) -> EntraAssignmentsOutputs:
        client, sp_id, role_id = self._context(ctx)
        # The people the plan resolved a moment ago, when apply follows it at once.
        result = ctx.read_by_plan.get(RESOLUTION) or resolve(ctx, client, read_choice(ctx.inputs))
        # Assigning changes no group or user, so verify checks the assignments of the people
        # resolved here instead of reading the directory again.
        ctx.read_by_apply[RESOLUTION] = result
        assign_to_app(
            ctx, client, sp_id, role_id, result.principals, ctx.read_by_plan.pop(ASSIGNED, None)
        )
        source = ctx.outputs_of(EntraClaimsOutputs).session_name_source or "userprincipalname"
        return EntraAssignmentsOutputs(
            people=_people_outputs(result, source),
            assigned=[
                {"principal_id": pid, "principal_type": kind, "name": name}
                for pid, (kind, name) in result.principals.items()
            ],
            left_out=to_json(result.left_out),
        )

    def verify(self, ctx: StepContext) -> list[Finding]:
        client, sp_id, role_id = self._context(ctx)
        result = ctx.read_by_apply.get(RESOLUTION) or resolve(ctx, client, read_choice(ctx.inputs))
        existing = existing_assignments(client, sp_id)
        missing = [
            name for pid, (_k, name) in result.principals.items() if (pid, role_id) not in existing
        ]
        return [
            Finding(
                Message(_("The chosen people and groups are assigned to the app role")),
                ok=not missing,
                detail=", ".join(missing) or str(len(result.principals)),
                fix=Message(_("Retry the step to assign them again.")),
            )
        ]

    def rollback(self, ctx: StepContext) -> None:
        client = ctx.graph()
        by_app: dict[str, dict[tuple[str, str], str]] = {}
        for created in ctx.created_of(RESOURCE_TYPE):
            sp_id = created.details["service_principal_id"]
            if sp_id not in by_app:
                if (
                    get_or_none(client.service_principals.by_service_principal_id(sp_id).get())
                    is None
                ):
                    by_app[sp_id] = {}
                else:
                    by_app[sp_id] = existing_assignments(client, sp_id)
            principal_id, _sep, role_id = created.identifier.partition(":")
            assignment_id = by_app[sp_id].get((principal_id, role_id))
            if assignment_id:
                run_graph(
                    client.service_principals.by_service_principal_id(sp_id)
                    .app_role_assigned_to.by_app_role_assignment_id(assignment_id)
                    .delete()
                )
