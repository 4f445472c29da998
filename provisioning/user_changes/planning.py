"""People against what the instance holds: the change set a users plan stores (one row per
person: create, update, delete, left alone, refused, left the groups) and the summary it shows.

Who a run may change: users it creates carry the run's tag (and a sync's, the sync's tag too). A
user is *managed* when the wizard made it (it carries a run tag) and the run's groups held its
person at their last applied run (`managed` usernames, sources.managed_usernames): managed users
are kept in step with the groups and, if the admin chose so, deleted when their person leaves the
groups and every other way in the SSO setup gave them (its app assignments). Users the groups
never held (the SSO setup's admins, another sync's people, users made by hand) are left alone
unless `update_existing` is set, and never deleted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.utils.translation import gettext_noop

from provisioning.errors import PermanentError
from provisioning.messages import Message, joined, to_json
from provisioning.models import ACTIONS_THAT_CHANGE, ChangeStatus, UserChange, UserChangeSet
from provisioning.user_changes.instance import USERS_PER_INSTANCE_QUOTA, ConnectUser, Instance
from provisioning.user_changes.people import DESK_PHONE, Person
from provisioning.user_changes.sources import AppAccess, Grant

RUN_TAG = "connect-sso-wizard:run"
SYNC_TAG = "connect-sso-wizard:sync"
IGNORE, REPORT, DELETE = "ignore", "report", "delete"
DEPARTURE_CHOICES = (IGNORE, REPORT, DELETE)
# Rows are written in batches of this size (one INSERT each).
INSERT_BATCH = 1000
# The plan names at most this many people per list in its warnings; the CSV has them all.
NAMED_IN_WARNINGS = 10


@dataclass
class ChangeOptions:
    run_id: str
    update_existing: bool = False
    departures: str = IGNORE
    sync_id: str = ""
    # username -> the run's groups that held the person before (sources.managed_usernames).
    managed: dict[str, list[str]] = field(default_factory=dict)
    # Who the IdP app lets in (None: not checked, as for a list of people without an IdP app).
    access: AppAccess | None = None
    # Deleting more than this many users (and more than `confirm_delete_share` of the managed
    # ones) waits for the admin: a group emptied by mistake must not empty the instance.
    confirm_delete_over: int = 10
    confirm_delete_share: float = 0.1

    def tags(self) -> dict[str, str]:
        tags = {RUN_TAG: self.run_id}
        if self.sync_id:
            tags[SYNC_TAG] = self.sync_id
        return tags

    def manages(self, user: ConnectUser) -> bool:
        made_by = user.tags.get(RUN_TAG, "")
        return made_by == self.run_id or (bool(made_by) and user.username in self.managed)


@dataclass
class PlannedChange:
    action: str
    username: str
    details: dict[str, Any] = field(default_factory=dict)
    user_id: str = ""


@dataclass
class ChangePlan:
    changes: list[PlannedChange]
    in_use: int
    quota: int
    warnings: list[Message | str] = field(default_factory=list)
    needs_confirmation: bool = False

    def count(self, action: str) -> int:
        return sum(1 for change in self.changes if change.action == action)

    @property
    def counts(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for change in self.changes:
            found[change.action] = found.get(change.action, 0) + 1
        return found


def wanted_attributes(person: Person, instance: Instance) -> dict[str, Any]:
    """The user's attributes as CreateUser and the UpdateUser* calls take them."""
    phone: dict[str, Any] = {"PhoneType": person.phone_type}
    if person.phone_type == DESK_PHONE:
        phone["DeskPhoneNumber"] = person.desk_phone
    return {
        "SecurityProfileIds": sorted(
            instance.security_profiles[n] for n in person.security_profiles
        ),
        "RoutingProfileId": instance.routing_profiles[person.routing_profile],
        "PhoneConfig": phone,
        "IdentityInfo": {"FirstName": person.first_name, "LastName": person.last_name},
    }


def differences(wanted: dict[str, Any], user: ConnectUser) -> dict[str, Any]:
    """{attribute: {"from", "to"}} for the attributes of `wanted` (all four, or some) that
    differ on an existing user: what an update would change, or what verify finds wrong."""
    have = {
        "SecurityProfileIds": sorted(user.security_profile_ids),
        "RoutingProfileId": user.routing_profile_id,
        "PhoneConfig": {
            k: v for k, v in user.phone_config.items() if k in wanted.get("PhoneConfig", {})
        },
        "IdentityInfo": {"FirstName": user.first_name, "LastName": user.last_name},
    }
    return {
        name: {"from": have[name], "to": value}
        for name, value in wanted.items()
        if have[name] != (sorted(value) if name == "SecurityProfileIds" else value)
    }


def _unknown_profiles(people: list[Person], instance: Instance) -> None:
    """Stop before anything is written if the mapping names a profile the instance lacks."""
    for code, kind, available, wanted in (
        (
            "unknown_security_profile",
            Message(gettext_noop("security profile")),
            instance.security_profiles,
            {name for p in people for name in p.security_profiles},
        ),
        (
            "unknown_routing_profile",
            Message(gettext_noop("routing profile")),
            instance.routing_profiles,
            {p.routing_profile for p in people},
        ),
    ):
        unknown = sorted(wanted - set(available))
        if unknown:
            raise PermanentError(
                Message(
                    gettext_noop("The instance has no %(kind)s named %(names)s."),
                    {"kind": kind, "names": ", ".join(repr(name) for name in unknown)},
                ),
                code=code,
                hint=Message(
                    gettext_noop("The instance has: %(names)s."),
                    {"names": ", ".join(sorted(available))},
                ),
            )


def _readable(changes: dict[str, Any], instance: Instance) -> dict[str, Any]:
    """The differences with profile ids turned back into the names admins know."""
    profile_names = {v: k for k, v in instance.security_profiles.items()}
    routing_names = {v: k for k, v in instance.routing_profiles.items()}
    readable: dict[str, Any] = {}
    for name, change in changes.items():
        if name == "SecurityProfileIds":
            readable["security_profiles"] = {
                side: sorted(profile_names.get(i, i) for i in change[side]) for side in change
            }
        elif name == "RoutingProfileId":
            readable["routing_profile"] = {
                side: routing_names.get(change[side], change[side]) for side in change
            }
        elif name == "PhoneConfig":
            readable["phone"] = change
        else:
            readable["name"] = {
                side: f"{change[side].get('FirstName', '')} {change[side].get('LastName', '')}"
                for side in change
            }
    return readable


def _described(person: Person) -> dict[str, Any]:
    return {
        "first_name": person.first_name,
        "last_name": person.last_name,
        "login": person.login,
        "groups": person.groups,
        "security_profiles": person.security_profiles,
        "routing_profile": person.routing_profile,
        "phone_type": person.phone_type,
        "group_ids": person.group_ids,
        # Who the person is in the IdP: a sync reading only what changed finds their row by it.
        "idp_id": person.idp_id,
    }


def grant_text(grant: Grant) -> Message:
    """How a person reaches the IdP app, in the admin's words."""
    if grant.direct:
        return Message(gettext_noop("assigned to the app directly"))
    return Message(
        gettext_noop("assigned to the app through the group “%(group)s”"),
        {"group": grant.group_name},
    )


def _cannot_sign_in(person: Person, access: AppAccess | None) -> dict[str, Any]:
    """Why the IdP won't let the person in (empty when it will, or when nobody can tell)."""
    if access is None or not access.setup_found or access.of(person.username):
        return {}
    found: dict[str, Any] = {"cannot_sign_in": access.refusal.to_json()}
    if person.assign_group:
        found["assign_group"] = person.assign_group
    return found


def plan_changes(people: list[Person], instance: Instance, options: ChangeOptions) -> ChangePlan:
    """Every person's change (people already checked), refusals included, and the departures.

    Raises PermanentError, before anything is written, when the mapping names an unknown profile
    or the creations don't fit in the Users per instance quota."""
    accepted = [person for person in people if not person.reasons]
    if not accepted:
        empty = Message(gettext_noop("(empty username)"))
        listed = [
            Message(
                gettext_noop("%(username)s: %(reasons)s"),
                {"username": p.username or empty, "reasons": joined(p.reasons, " ")},
            )
            for p in people[:NAMED_IN_WARNINGS]
        ]
        raise PermanentError(
            joined(
                [Message(gettext_noop("None of the people can become a Connect user.")), *listed],
                " ",
            ),
            code="no_valid_usernames",
            hint=Message(
                gettext_noop(
                    "Fix the usernames in the identity provider (or the list), then retry."
                )
            ),
        )
    _unknown_profiles(accepted, instance)
    deletes: list[PlannedChange] = []
    others: list[PlannedChange] = []
    wanted_usernames = {person.username for person in people}
    for person in people:
        if person.reasons:
            others.append(
                PlannedChange(
                    "refused",
                    person.username,
                    {
                        "reasons": to_json(person.reasons),
                        "login": person.login,
                        "groups": person.groups,
                        "idp_id": person.idp_id,
                    },
                )
            )
            continue
        wanted = wanted_attributes(person, instance)
        user = instance.users.get(person.username)
        described = {**_described(person), **_cannot_sign_in(person, options.access)}
        if user is None:
            others.append(PlannedChange("create", person.username, {**described, "call": wanted}))
            continue
        managed = options.manages(user)
        found = differences(wanted, user)
        details = {**described, "managed": managed}
        if found and (managed or options.update_existing):
            details.update(call=found, changes=_readable(found, instance))
            others.append(PlannedChange("update", person.username, details, user.id))
        else:
            if found:
                details["differs"] = _readable(found, instance)
            others.append(PlannedChange("nothing", person.username, details, user.id))
    if options.departures != IGNORE:
        for user in sorted(instance.users.values(), key=lambda u: u.username.lower()):
            if user.username in wanted_usernames or not options.manages(user):
                continue
            departure: dict[str, Any] = {
                "first_name": user.first_name,
                "last_name": user.last_name,
                "group_ids": options.managed.get(user.username, []),
            }
            grants = options.access.of(user.username) if options.access else []
            kept = [grant for grant in grants if grant.by_setup]
            if kept:
                # Another source of this wizard still gives them access: not a departure.
                departure["kept_because"] = grant_text(kept[0])
                others.append(PlannedChange("departed", user.username, departure, user.id))
                continue
            if grants:
                departure["can_sign_in"] = grant_text(grants[0])
            action = "delete" if options.departures == DELETE else "departed"
            (deletes if action == "delete" else others).append(
                PlannedChange(action, user.username, departure, user.id)
            )
    # Deletions first: workers take changes in order, so they make room before creations.
    plan = ChangePlan(changes=deletes + others, in_use=len(instance.users), quota=instance.quota)
    _check_quota(plan)
    plan.warnings = _warnings(plan)
    signing_in = [c for c in plan.changes if c.action == "delete" and "can_sign_in" in c.details]
    if signing_in:
        # Whatever the thresholds: deleting the user of someone the IdP still lets in breaks
        # their next sign-in ("not been onboarded"), so an admin decides.
        plan.needs_confirmation = True
        plan.warnings.insert(
            0,
            Message.counted(
                gettext_noop(
                    "%(count)d person whose Connect user this would delete can still sign in "
                    "through "
                    "the identity provider app; check before you confirm: %(names)s."
                ),
                gettext_noop(
                    "%(count)d people whose Connect users this would delete can still sign in "
                    "through "
                    "the identity provider app; check before you confirm: %(names)s."
                ),
                len(signing_in),
                {"count": len(signing_in), "names": _named_with(signing_in, "can_sign_in")},
            ),
        )
    managed_count = sum(1 for user in instance.users.values() if options.manages(user))
    deleting = plan.count("delete")
    if (
        deleting > options.confirm_delete_over
        and deleting > managed_count * options.confirm_delete_share
    ):
        plan.needs_confirmation = True
        plan.warnings.insert(
            0,
            Message(
                gettext_noop(
                    "This would delete %(count)d Connect users, %(share)d%% of the users this sync "
                    "manages. Check that the groups are right before you apply: a group emptied by "
                    "mistake would sign all of them out for good."
                ),
                {"count": deleting, "share": round(100 * deleting / max(1, managed_count))},
            ),
        )
    return plan


def _check_quota(plan: ChangePlan) -> None:
    creating = plan.count("create")
    after = plan.in_use - plan.count("delete") + creating
    if after <= plan.quota:
        return
    room = max(0, plan.quota - plan.in_use + plan.count("delete"))
    raise PermanentError(
        Message(
            gettext_noop(
                "The instance has %(in_use)d users and its Users per instance quota is %(quota)d: "
                "%(room)d more fit, and this plan would create %(creating)d."
            ),
            {"in_use": plan.in_use, "quota": plan.quota, "room": room, "creating": creating},
        ),
        code="users_quota",
        hint=Message(
            gettext_noop(
                "Request an increase of “Users per instance” (%(code)s) to at least %(needed)d for "
                "this instance in Service Quotas (AWS console › Service Quotas › Amazon Connect), "
                "or pick fewer people, then retry."
            ),
            {"code": USERS_PER_INSTANCE_QUOTA, "needed": after},
        ),
    )


def _named(changes: list[PlannedChange]) -> dict[str, Any]:
    names = joined(
        [
            change.username or Message(gettext_noop("(empty username)"))
            for change in changes[:NAMED_IN_WARNINGS]
        ]
    )
    return _and_more(names, len(changes))


def _named_with(changes: list[PlannedChange], reason: str) -> dict[str, Any]:
    """The people grouped by why, each reason said once: "43 people: not assigned to the app
    (alice, bob and 41 more)"; reasons in the order they first come."""
    by_reason: dict[str, list[PlannedChange]] = {}
    for change in changes:
        key = json.dumps(change.details[reason], sort_keys=True, default=str)
        by_reason.setdefault(key, []).append(change)
    return joined(
        [
            Message.counted(
                gettext_noop("%(count)d person: %(reason)s (%(names)s)"),
                gettext_noop("%(count)d people: %(reason)s (%(names)s)"),
                len(group),
                {
                    "count": len(group),
                    "reason": group[0].details[reason],
                    "names": _named(group),
                },
            )
            for group in by_reason.values()
        ],
        "; ",
    )


def _and_more(names: dict[str, Any], total: int) -> dict[str, Any]:
    """The names shown, then "and N more" for those left out."""
    more = total - NAMED_IN_WARNINGS
    if more <= 0:
        return names
    and_more = Message.counted(
        gettext_noop("and %(count)d more"),
        gettext_noop("and %(count)d more"),
        more,
        {"count": more},
    )
    return joined([names, and_more], " ")


def _warnings(plan: ChangePlan) -> list[Message | str]:
    warnings: list[Message | str] = []
    kept = [change for change in plan.changes if "kept_because" in change.details]
    if kept:
        warnings.append(
            Message.counted(
                gettext_noop(
                    "%(count)d person left the groups but the SSO setup still gives them access, "
                    "so "
                    "their Connect user is kept: %(names)s."
                ),
                gettext_noop(
                    "%(count)d people left the groups but the SSO setup still gives them access, "
                    "so "
                    "their Connect users are kept: %(names)s."
                ),
                len(kept),
                {"count": len(kept), "names": _named_with(kept, "kept_because")},
            )
        )
    blocked = [change for change in plan.changes if "cannot_sign_in" in change.details]
    if blocked:
        warnings.append(
            Message.counted(
                gettext_noop(
                    "%(count)d person with a Connect user in this plan can't sign in yet: "
                    "%(names)s."
                ),
                gettext_noop(
                    "%(count)d people with a Connect user in this plan can't sign in yet: "
                    "%(names)s."
                ),
                len(blocked),
                {"count": len(blocked), "names": _named_with(blocked, "cannot_sign_in")},
            )
        )
    refused = [change for change in plan.changes if change.action == "refused"]
    if refused:
        warnings.append(
            Message.counted(
                gettext_noop(
                    "%(count)d person can't have a Connect user and is left out (download the list "
                    "for the reasons): %(names)s."
                ),
                gettext_noop(
                    "%(count)d people can't have a Connect user and are left out (download the "
                    "list "
                    "for the reasons): %(names)s."
                ),
                len(refused),
                {"count": len(refused), "names": _named(refused)},
            )
        )
    departed = [
        change
        for change in plan.changes
        if change.action == "departed" and "kept_because" not in change.details
    ]
    if departed:
        warnings.append(
            Message.counted(
                gettext_noop(
                    "%(count)d Connect user this sync manages belongs to someone who left the "
                    "groups; "
                    "it is kept (the sync only reports departures): %(names)s."
                ),
                gettext_noop(
                    "%(count)d Connect users this sync manages belong to people who left the "
                    "groups; "
                    "they are kept (the sync only reports departures): %(names)s."
                ),
                len(departed),
                {"count": len(departed), "names": _named(departed)},
            )
        )
    return warnings


def save_change_set(
    *,
    step_run_id: int,
    instance_id: str,
    plan: ChangePlan,
    tags: dict[str, str],
    purpose: str = "apply",
    group_ids: list[str] | None = None,
) -> Any:
    """Store the plan's rows (one per person) as a new change set of the step; return it."""
    with transaction.atomic():
        change_set = UserChangeSet.objects.create(
            step_run_id=step_run_id,
            purpose=purpose,
            instance_id=instance_id,
            counts=plan.counts,
            users_in_use=plan.in_use,
            users_quota=plan.quota,
            tags=tags,
            group_ids=list(group_ids or []),
        )
        UserChange.objects.bulk_create(
            (
                UserChange(
                    change_set=change_set,
                    position=position,
                    action=change.action,
                    username=change.username,
                    details=to_json(change.details),
                    user_id=change.user_id,
                    status=(
                        ChangeStatus.PENDING
                        if change.action in ACTIONS_THAT_CHANGE
                        else ChangeStatus.LISTED
                    ),
                )
                for position, change in enumerate(plan.changes)
            ),
            batch_size=INSERT_BATCH,
        )
    return change_set
