"""Where a person's access comes from: which Connect users a users run answers for (the people its
groups held before), and who the IdP app lets sign in (assigned directly or through a group), with
which of those assignments the SSO setup made.

Both the web (a users run, a sync) and headless (setup_sso) paths plan through `managed_usernames`
and `app_access`, so they decide alike who a run may update or delete.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.utils.translation import gettext_noop

from provisioning.context import created_of
from provisioning.entra.graph_reads import all_pages_json
from provisioning.entra.group_members import graph_users
from provisioning.flows import not_sso_setup_keys
from provisioning.messages import Message
from provisioning.models import RunStatus, SetupRun, UserChangeSet, UserSync
from provisioning.okta import aws_app
from provisioning.okta.group_members import okta_group
from provisioning.okta.rest import okta_pages
from provisioning.steps.entra_app import EntraAppOutputs
from provisioning.steps.entra_assignments import EntraAssignmentsOutputs
from provisioning.steps.okta_app import OktaAppOutputs
from provisioning.steps.okta_assignments import OktaAssignmentsOutputs
from provisioning.user_changes.people import group_too_large

# A change set row whose person its groups held (a later run of the groups may change or delete
# their user): made, changed, left alone, or kept although they left (reported).
HELD_ACTIONS = ("create", "update", "nothing", "departed")
USERS_STEP = "group_users"
# Okta's largest page for app users and group members (Okta API reference).
OKTA_PAGE = 500


def managed_usernames(
    *, instance_id: str, group_ids: Iterable[str], exclude_step_run_id: int | None = None
) -> dict[str, list[str]]:
    """username -> the ids of these groups that held the person at each group's last applied run
    on this instance: the Connect users a run of these groups answers for. A user the groups
    never held (made by the SSO setup, another sync, by hand) is never one of them."""
    pending = set(group_ids)
    found: dict[str, list[str]] = {}
    if not pending:
        return found
    change_sets = (
        UserChangeSet.objects.filter(
            purpose="apply",
            instance_id=instance_id,
            step_run__key=USERS_STEP,
            finished_at__isnull=False,
        )
        .exclude(step_run_id=exclude_step_run_id)
        .order_by("-finished_at", "-pk")
        .only("pk", "group_ids")
    )
    for change_set in change_sets.iterator():
        covered = pending & set(change_set.group_ids)
        if not covered:
            continue
        pending -= covered
        rows = change_set.changes.filter(action__in=HELD_ACTIONS).only("username", "details")
        for row in rows:
            held = covered & set(row.details.get("group_ids") or [])
            if held:
                found.setdefault(row.username, []).extend(sorted(held))
        if not pending:
            break
    return found


# Ids per query when looking rows up by IdP id (SQLite's default limit is 999 variables).
IDS_PER_QUERY = 500


def people_among(*, instance_id: str, group_ids: list[str], idp_ids: set[str]) -> bool:
    """Whether any of these IdP users was one of the people (made, kept, refused or reported)
    of the last applied run of exactly these groups on this instance. True when nothing says
    otherwise: no such run, or rows that don't carry IdP ids."""
    if not idp_ids:
        return False
    wanted = set(group_ids)
    change_set = next(
        (
            found
            for found in UserChangeSet.objects.filter(
                purpose="apply",
                instance_id=instance_id,
                step_run__key=USERS_STEP,
                finished_at__isnull=False,
            )
            .order_by("-finished_at", "-pk")
            .only("pk", "group_ids")
            .iterator()
            if set(found.group_ids) == wanted
        ),
        None,
    )
    if change_set is None or not change_set.changes.filter(details__has_key="idp_id").exists():
        return True
    ids = sorted(idp_ids)
    return any(
        change_set.changes.filter(details__idp_id__in=ids[start : start + IDS_PER_QUERY]).exists()
        for start in range(0, len(ids), IDS_PER_QUERY)
    )


def other_syncs_people(instance_id: str, sync_id: str) -> set[str]:
    """The usernames the instance's other syncs manage (their groups' people at their last run):
    people in two syncs would be changed, or deleted, by one while the other keeps them."""
    others = UserSync.objects.filter(instance_id=instance_id)
    if sync_id:
        others = others.exclude(pk=sync_id)
    group_ids = {
        str(row.get("group"))
        for other in others
        for row in other.inputs.get("groups") or []
        if isinstance(row, dict) and row.get("group")
    }
    if not group_ids:
        return set()
    return set(managed_usernames(instance_id=instance_id, group_ids=group_ids))


@dataclass(frozen=True)
class Grant:
    """One way a person reaches the IdP app: directly, or through a group (by id and name)."""

    group_id: str = ""
    group_name: str = ""
    by_setup: bool = False

    @property
    def direct(self) -> bool:
        return not self.group_id


@dataclass
class AppAccess:
    """Who the IdP app lets in, by Connect username; `setup_found` says whether the SSO setup's
    app was found at all (without it nobody's access is known)."""

    grants: dict[str, list[Grant]] = field(default_factory=dict)
    setup_found: bool = False
    # Why someone without a grant can't sign in, in the IdP's terms (a message, shown in the
    # language of whoever reads the plan).
    refusal: Message = field(default_factory=lambda: Message(""))

    def of(self, username: str) -> list[Grant]:
        return self.grants.get(username, [])

    def add(self, username: str, grant: Grant) -> None:
        if username:
            self.grants.setdefault(username, []).append(grant)


def sso_setup_of(instance_id: str, idp: str) -> Any | None:
    """The newest succeeded SSO setup (not a users run) of this instance and IdP."""
    return (
        SetupRun.objects.filter(instance_id=instance_id, idp=idp, status=RunStatus.SUCCEEDED)
        .exclude(flow_key__in=not_sso_setup_keys())
        .order_by("-created_at")
        .first()
    )


def setup_outputs(setup: Any) -> dict[str, dict[str, Any]]:
    return {step.key: step.outputs for step in setup.steps.all()} if setup is not None else {}


def entra_app_access(client: Any, outputs: dict[str, dict[str, Any]], username: Any) -> AppAccess:
    """Entra: users assigned to the setup's service principal, directly or through a group they
    are a direct member of ("nested group memberships are not supported" for group-based
    assignment: learn.microsoft.com/entra/identity/enterprise-apps/assign-user-or-group-access-
    portal). `username(person_json)` is the Connect username of a Graph user."""
    sp_id = EntraAppOutputs.from_json(outputs.get("entra_app") or {}).service_principal_id
    access = AppAccess(
        setup_found=bool(sp_id),
        refusal=Message(
            gettext_noop(
                "not assigned to the Entra ID app, directly or through a group they are a direct "
                "member of; a group inside an assigned group doesn't count"
            )
        ),
    )
    if not sp_id:
        return access
    by_setup = {
        str(entry.get("principal_id"))
        for entry in EntraAssignmentsOutputs.from_json(
            outputs.get("entra_assignments") or {}
        ).assigned
    }
    builder = client.service_principals.by_service_principal_id(sp_id).app_role_assigned_to
    assignments = _in_full(
        all_pages_json(builder, builder.to_get_request_information(), limit=_cap())
    )
    for assignment in assignments:
        principal = str(assignment.get("principalId"))
        setup_made = principal in by_setup
        if assignment.get("principalType") == "Group":
            grant = Grant(principal, str(assignment.get("principalDisplayName") or ""), setup_made)
            for member in group_direct_users(client, principal):
                access.add(username(member), grant)
        elif assignment.get("principalType") == "User":
            for member in _users_by_id(client, [principal]):
                access.add(username(member), Grant(by_setup=setup_made))
    return access


def _cap() -> int:
    return int(settings.WIZARD_GROUP_MEMBERS_CAP)


def _in_full(read: tuple[list[dict[str, Any]], bool]) -> list[dict[str, Any]]:
    """The items of a read, refused when there were more than the wizard reads: a person the
    wizard didn't read would look unassigned, and a sync could delete someone still let in."""
    items, more = read
    if more:
        raise group_too_large(_cap())
    return items


def group_direct_users(client: Any, group_id: str) -> list[dict[str, Any]]:
    """The users who are direct members of the group (Graph JSON)."""
    return _in_full(
        graph_users(client.groups.by_group_id(group_id).members.graph_user, limit=_cap())
    )


def group_direct_groups(client: Any, group_id: str) -> list[dict[str, Any]]:
    """The groups that are direct members of the group (Graph JSON: id, displayName)."""
    builder = client.groups.by_group_id(group_id).members.graph_group
    return _in_full(all_pages_json(builder, builder.to_get_request_information(), limit=_cap()))


def _users_by_id(client: Any, user_ids: list[str]) -> list[dict[str, Any]]:
    from provisioning.entra.client import run_graph

    found = []
    for user_id in user_ids:
        user = run_graph(client.users.by_user_id(user_id).get())
        found.append(
            {
                "id": str(user.id),
                "userPrincipalName": user.user_principal_name or "",
                "mail": user.mail or "",
            }
        )
    return found


def entra_direct_groups(client: Any, group_id: str, group_name: str) -> dict[str, Grant]:
    """user id -> the group of the tree under `group_id` (itself included) they are a direct
    member of: the group whose assignment would let them sign in."""
    direct: dict[str, Grant] = {}
    pending, seen = [(group_id, group_name)], set()
    while pending:
        current, name = pending.pop(0)
        if current in seen:
            continue
        seen.add(current)
        for user in group_direct_users(client, current):
            direct.setdefault(str(user["id"]), Grant(current, name))
        pending.extend(
            (str(child["id"]), str(child.get("displayName") or child["id"]))
            for child in group_direct_groups(client, current)
        )
    return direct


def okta_app_access(client: Any, setup: Any) -> AppAccess:
    """Okta: the app's users, assigned directly (scope USER) or through a group (scope GROUP),
    by the username the app sends (credentials.userName)."""
    outputs = setup_outputs(setup)
    app_id = OktaAppOutputs.from_json(outputs.get("okta_app") or {}).app_id
    access = AppAccess(
        setup_found=bool(app_id),
        refusal=Message(gettext_noop("not assigned to the Okta app, directly or through a group")),
    )
    if not app_id:
        return access
    assignments = next((s for s in setup.steps.all() if s.key == "okta_assignments"), None)
    setup_users = {
        str(person.get("username"))
        for person in (
            OktaAssignmentsOutputs.from_json(assignments.outputs).people if assignments else []
        )
    }
    setup_groups = {
        made.identifier
        for made in created_of(
            assignments.created_resources if assignments else [], "okta_app_group"
        )
    }
    member_of: dict[str, list[Grant]] = {}
    for group in okta_pages(
        client, f"{aws_app.app_path(app_id)}/groups", params={"limit": OKTA_PAGE}
    ):
        group_id = str(group["id"])
        details = okta_group(client, group_id) or {"name": group_id}
        grant = Grant(group_id, str(details["name"]), group_id in setup_groups)
        for member in okta_pages(
            client, f"/api/v1/groups/{group_id}/users", params={"limit": OKTA_PAGE}
        ):
            member_of.setdefault(str(member["id"]), []).append(grant)
    for app_user in okta_pages(
        client, f"{aws_app.app_path(app_id)}/users", params={"limit": OKTA_PAGE}
    ):
        name = str((app_user.get("credentials") or {}).get("userName") or "")
        if app_user.get("scope") == "GROUP":
            for grant in member_of.get(str(app_user["id"]), []):
                access.add(name, grant)
        else:
            access.add(name, Grant(by_setup=name in setup_users))
    return access
