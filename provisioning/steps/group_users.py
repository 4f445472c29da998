"""The group_users step: Connect users for everyone in the IdP groups the admin picks, with the
security profiles, routing profile and phone type the admin maps to each group; run again (a
scheduled sync), it creates the newcomers, updates who changed and reports or deletes who left.

People: Entra ID groups count their nested groups' members (transitiveMembers); Okta groups don't
nest. Someone in several mapped groups gets the security profiles of all of them, and the routing
profile and phone type of the first of those groups in the mapping.

Inputs (the form, a plan file, or a sync):
- groups: [{"group": id or name, "security_profiles": [names], "routing_profile": name,
  "phone_type": "SOFT_PHONE" | "DESK_PHONE"}]
- username_source: what the IdP sends as RoleSessionName: Entra "userprincipalname" | "mail";
  Okta an app username format ("${source.login}", "${source.email}", ...). Default: the setup's.
- update_existing (bool), departures ("ignore" | "report" | "delete"), sync_id
  (provisioning/user_changes/planning.py).
- assign_groups (bool): assign to the IdP app the groups that would let in the people who can't
  sign in yet (Entra: the group each is a direct member of; Okta: their picked group).

Until groups are chosen, the plan reads the IdP's groups and the instance's profiles (in the
worker) and waits for the mapping form. Then it is a users plan (provisioning/user_changes/) that
keeps those choices (carried through the answers, read once for a plan file's), so the answers
offered again for editing (a failed step) never come with an empty picker.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, cast

from django import forms
from django.conf import settings
from django.forms import formset_factory
from django.utils.translation import gettext, gettext_noop
from django.utils.translation import gettext_lazy as _

from provisioning.context import StepContext
from provisioning.entra.group_members import (
    entra_group,
    entra_group_members,
    entra_groups,
    graph_person,
)
from provisioning.errors import PermanentError
from provisioning.messages import Message, joined
from provisioning.okta import aws_app
from provisioning.okta.group_members import okta_group, okta_group_members, okta_groups
from provisioning.okta.rest import okta_call
from provisioning.steps.base import Change, Plan, StepOutputs, register
from provisioning.steps.entra_app import EntraAppOutputs
from provisioning.steps.entra_assignments import EntraAssignments, assign_to_app
from provisioning.steps.entra_claims import (
    DEFAULT_SESSION_NAME_SOURCE,
    SESSION_NAME_SOURCES,
    EntraClaimsOutputs,
)
from provisioning.steps.federation_role import FederationRoleOutputs
from provisioning.steps.inputs import carried_choices
from provisioning.steps.okta_app import OktaAppOutputs
from provisioning.steps.okta_assignments import (
    DEFAULT_TEMPLATE,
    USERNAME_TEMPLATES,
    OktaAssignments,
    app_group_assigned,
)
from provisioning.user_changes.instance import Instance
from provisioning.user_changes.people import (
    DEFAULT_ROUTING_PROFILE,
    DEFAULT_SECURITY_PROFILES,
    PHONE_TYPES,
    SOFT_PHONE,
    IdpPerson,
    Person,
)
from provisioning.user_changes.planning import NAMED_IN_WARNINGS
from provisioning.user_changes.sources import (
    AppAccess,
    Grant,
    entra_app_access,
    entra_direct_groups,
    okta_app_access,
    other_syncs_people,
    setup_outputs,
    sso_setup_of,
)
from provisioning.user_changes.steps import (
    RESOURCE_TYPE,
    UserChangeCounts,
    UserChangesPlan,
    UsersStep,
    apply_user_changes,
    offered_profile_names,
    plan_user_changes,
    read_planned_instance,
    record_unchanged_sync,
    run_instance,
)
from provisioning.user_changes.sync_reading import store_reading, sync_reading

PHONE_TYPE_CHOICES = [("SOFT_PHONE", _("Soft phone")), ("DESK_PHONE", _("Desk phone"))]
OKTA_USERNAME_SOURCES = [
    ("${source.login}", _("Okta username")),
    ("${source.email}", _("Email")),
    ('${fn:substringBefore(source.login,"@")}', _("Okta username prefix (before @)")),
    ('${fn:substringBefore(source.email,"@")}', _("Email prefix (before @)")),
]
# The mapping form shows this many empty rows after the chosen ones.
EMPTY_MAPPING_ROWS = 3
APP_ASSIGNMENT = "idp_app_assignment"


def username_sources(idp: str) -> list[tuple[str, Any]]:
    return list(SESSION_NAME_SOURCES) if idp == "entra" else list(OKTA_USERNAME_SOURCES)


def default_username_source(idp: str) -> str:
    return DEFAULT_SESSION_NAME_SOURCE if idp == "entra" else DEFAULT_TEMPLATE


@dataclass
class GroupUsersOutputs(UserChangeCounts, StepOutputs):
    """The users it changed (UserChangeCounts; `unchanged` is True for a sync run that found
    nothing changed in its groups), the groups it assigned to the IdP app, and how a sync run
    read its groups ({"mode", "reason"}; stored only for a sync run)."""

    step_key: ClassVar[str] = "group_users"
    assigned_groups: list[str] = field(default_factory=list)
    read: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = super().to_json()
        if not data["read"]:
            del data["read"]
        return data


@dataclass
class UnchangedPlan(Plan):
    """A sync run whose groups and people didn't change since its last run: nothing to do."""

    unchanged: bool = True
    sync_reading: dict[str, Any] = field(default_factory=dict)


@dataclass
class MappingPlan(Plan):
    """Waits for the mapping form; carries what its choices are made of."""

    mapping_choices: dict[str, Any] = field(default_factory=dict)


@dataclass
class GroupUsersPlan(UserChangesPlan):
    """A users plan that keeps the choices the mapping was made from (the IdP's groups, the
    instance's profiles, as the mapping plan read them), so that its answers, offered again for
    editing (a failed step, a plan that waits again), come with something to choose from."""

    mapping_choices: dict[str, Any] = field(default_factory=dict)


class MappingRowForm(forms.Form):
    """One group and what its people get."""

    group = forms.ChoiceField(label=_("Group"), required=False)
    security_profiles = forms.MultipleChoiceField(
        label=_("Security profiles"), required=False, widget=forms.CheckboxSelectMultiple
    )
    routing_profile = forms.ChoiceField(label=_("Routing profile"), required=False)
    phone_type = forms.ChoiceField(
        label=_("Phone type"), choices=PHONE_TYPE_CHOICES, initial=SOFT_PHONE
    )

    def __init__(self, *args: Any, choices: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        groups = [("", gettext("Choose a group"))] + [
            (
                group["id"],
                gettext("%(name)s (%(count)d people)")
                % {"name": group["name"], "count": group["member_count"]}
                if "member_count" in group
                else group["name"],
            )
            for group in choices.get("groups", [])
        ]
        cast(forms.ChoiceField, self.fields["group"]).choices = groups
        cast(forms.MultipleChoiceField, self.fields["security_profiles"]).choices = [
            (name, name) for name in choices.get("security_profiles", [])
        ]
        cast(forms.ChoiceField, self.fields["routing_profile"]).choices = [
            (name, name) for name in choices.get("routing_profiles", [])
        ]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if not cleaned.get("group"):
            return cleaned
        if not cleaned.get("security_profiles"):
            self.add_error("security_profiles", _("Tick at least one security profile."))
        if not cleaned.get("routing_profile"):
            self.add_error("routing_profile", _("Choose a routing profile."))
        return cleaned


MappingRows = formset_factory(MappingRowForm, extra=0)


class GroupUsersForm(forms.Form):
    """The groups and their mapping (a formset of rows), and where usernames come from."""

    # The run page builds this form with the plan it waits on (the choices come from it); the
    # plan keeps them under this key, and submitting the answers keeps them (inputs.kept_choices).
    takes_plan = True
    choices_key = "mapping_choices"

    username_source = forms.ChoiceField(
        label=_("What the identity provider sends as the Connect username"),
        widget=forms.RadioSelect,
        help_text=_(
            "Each Connect username must equal it exactly, case included. The setup's choice is "
            "preselected."
        ),
    )
    assign_groups = forms.BooleanField(
        label=_("Assign their groups to the app"),
        required=False,
        help_text=_(
            "The plan lists everyone the identity provider app won't let in. Ticked, the run "
            "assigns the group that would let each of them in (in Entra ID, the group they are "
            "a direct member of: groups inside an assigned group don't count)."
        ),
    )
    update_existing = forms.BooleanField(
        label=_("Also update Connect users the wizard did not create"),
        required=False,
        help_text=_(
            "Users that already exist get the mapped profiles too. Left unticked, they are "
            "listed and left alone."
        ),
    )

    def __init__(
        self,
        data: Any = None,
        files: Any = None,
        *,
        plan: dict[str, Any] | None = None,
        initial: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        # What else Django's Form takes (prefix, auto_id, …) passes through untouched.
        initial = dict(initial or {})
        choices = (plan or {}).get("mapping_choices", {})
        idp = str(choices.get("idp", "entra"))
        initial.setdefault("username_source", choices.get("username_source"))
        super().__init__(data, files, initial=initial, **kwargs)
        cast(forms.ChoiceField, self.fields["username_source"]).choices = username_sources(idp)
        self.choices = choices
        chosen = [row for row in initial.get("groups") or [] if isinstance(row, dict)]
        by_name = {group["name"]: group["id"] for group in choices.get("groups", [])}
        rows = [
            {**row, "group": by_name.get(str(row.get("group")), row.get("group"))} for row in chosen
        ]
        blank = {
            "security_profiles": [
                name
                for name in DEFAULT_SECURITY_PROFILES
                if name in choices.get("security_profiles", [])
            ],
            "routing_profile": DEFAULT_ROUTING_PROFILE,
            "phone_type": SOFT_PHONE,
        }
        self.rows = MappingRows(
            data,
            prefix=f"{self.prefix or 'form'}-groups",
            initial=rows + [dict(blank) for _ in range(EMPTY_MAPPING_ROWS)],
            form_kwargs={"choices": choices},
        )

    def is_valid(self) -> bool:
        form_ok = super().is_valid()
        return self.rows.is_valid() and form_ok

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if not self.rows.is_valid():
            return cleaned
        names = {group["id"]: group["name"] for group in self.choices.get("groups", [])}
        groups: list[dict[str, Any]] = []
        for row in self.rows:
            data = row.cleaned_data
            if not data.get("group"):
                continue
            if any(chosen["group"] == data["group"] for chosen in groups):
                raise forms.ValidationError(
                    _("“%(group)s” is in the mapping twice; keep one row for it.")
                    % {"group": names.get(data["group"], data["group"])}
                )
            groups.append(
                {
                    "group": data["group"],
                    "group_name": names.get(data["group"], data["group"]),
                    "security_profiles": list(data["security_profiles"]),
                    "routing_profile": data["routing_profile"],
                    "phone_type": data["phone_type"],
                }
            )
        if not groups:
            raise forms.ValidationError(_("Choose at least one group and what its people get."))
        cleaned["groups"] = groups
        return cleaned


@dataclass
class GroupRow:
    reference: str
    security_profiles: list[str]
    routing_profile: str
    phone_type: str


def read_mapping(inputs: dict[str, Any]) -> list[GroupRow]:
    """The mapping rows of the inputs; PermanentError names a row that can't be used."""
    rows = []
    for number, row in enumerate(inputs.get("groups") or [], start=1):
        if not isinstance(row, dict) or not str(row.get("group") or "").strip():
            raise PermanentError(
                Message(
                    gettext_noop("Row %(number)d of the group mapping names no group."),
                    {"number": number},
                ),
                code="group_mapping_invalid",
                hint=Message(gettext_noop('Each row needs group = "<id or name>".')),
            )
        profiles = row.get("security_profiles") or DEFAULT_SECURITY_PROFILES
        if isinstance(profiles, str):
            profiles = [name.strip() for name in profiles.split(",") if name.strip()]
        phone_type = str(row.get("phone_type") or SOFT_PHONE)
        if phone_type not in PHONE_TYPES:
            raise PermanentError(
                Message(
                    gettext_noop("The phone type of “%(group)s” must be SOFT_PHONE or DESK_PHONE."),
                    {"group": row["group"]},
                ),
                code="group_mapping_invalid",
            )
        rows.append(
            GroupRow(
                reference=str(row["group"]).strip(),
                security_profiles=[str(name) for name in profiles],
                routing_profile=str(row.get("routing_profile") or DEFAULT_ROUTING_PROFILE),
                phone_type=phone_type,
            )
        )
    return rows


class _Directory:
    """The run's IdP: its groups, a group by id or name, a group's people, and usernames."""

    def __init__(self, ctx: StepContext) -> None:
        self.idp = str(ctx.idp_connection().cloud)
        self.client = ctx.graph() if self.idp == "entra" else ctx.okta()
        source = str(ctx.inputs.get("username_source") or default_username_source(self.idp))
        if source not in dict(username_sources(self.idp)):
            raise PermanentError(
                Message(
                    gettext_noop("“%(source)s” is not a username source the wizard can predict."),
                    {"source": source},
                ),
                code="username_source_invalid",
                hint=Message(
                    gettext_noop("Use one of: %(choices)s."),
                    {"choices": ", ".join(dict(username_sources(self.idp)))},
                ),
            )
        self.source = source

    def groups(self) -> tuple[list[dict[str, Any]], bool]:
        cap = settings.WIZARD_GROUPS_LISTED_CAP
        if self.idp == "entra":
            return entra_groups(self.client, limit=cap)
        return okta_groups(self.client, limit=cap)

    def group(self, reference: str) -> dict[str, Any] | None:
        if self.idp == "entra":
            return entra_group(self.client, reference)
        return okta_group(self.client, reference)

    def members(self, group_id: str) -> list[IdpPerson]:
        cap = settings.WIZARD_GROUP_MEMBERS_CAP
        if self.idp == "entra":
            return entra_group_members(self.client, group_id, limit=cap)
        return okta_group_members(self.client, group_id, limit=cap)

    def app_access(self, instance_id: str) -> AppAccess:
        """Who the SSO setup's app lets in (nobody known when no setup of the instance is found)."""
        setup = sso_setup_of(instance_id, self.idp)
        if setup is None:
            return AppAccess()
        if self.idp == "entra":
            return entra_app_access(
                self.client, setup_outputs(setup), lambda user: self.username(graph_person(user))
            )
        return okta_app_access(self.client, setup)

    def offer_groups(
        self, people: list[Person], rows: list[tuple[GroupRow, dict[str, Any]]]
    ) -> None:
        """Give each person who can't sign in the group whose app assignment would let them in:
        in Entra the group of the picked tree they are a direct member of, in Okta the first
        picked group that holds them."""
        if self.idp != "entra":
            for person in people:
                person.assign_group = {"id": person.group_ids[0], "name": person.groups[0]}
            return
        direct: dict[str, Grant] = {}
        for _row, group in rows:
            tree = entra_direct_groups(self.client, group["id"], group["name"])
            for user_id, grant in tree.items():
                direct.setdefault(user_id, grant)
        for person in people:
            picked = direct.get(person.idp_id)
            if picked is not None:
                person.assign_group = {"id": picked.group_id, "name": picked.group_name}

    def username(self, person: IdpPerson) -> str:
        if self.idp == "entra":
            return person.email if self.source == "mail" else person.login
        return str(USERNAME_TEMPLATES[self.source](person))


def _choices(
    ctx: StepContext, directory: _Directory, instance: Instance | None = None
) -> dict[str, Any]:
    """What the mapping form offers: the IdP's groups and the instance's profiles. `instance`:
    the instance as the plan read it a moment ago (else its profiles are read here)."""
    profiles, routing = offered_profile_names(ctx, instance)
    groups, capped = directory.groups()
    return {
        "idp": directory.idp,
        "groups": sorted(groups, key=lambda group: group["name"].lower()),
        "groups_capped": capped,
        "security_profiles": profiles,
        "routing_profiles": routing,
        "username_source": directory.source,
    }


def _kept_choices(
    ctx: StepContext, directory: _Directory, instance: Instance | None = None
) -> dict[str, Any]:
    """The choices a users plan keeps for its answers' form (inputs.carried_choices), never read
    for a sync, which has no form."""
    return carried_choices(
        GroupUsers,
        ctx,
        lambda: {} if ctx.inputs.get("sync_id") else _choices(ctx, directory, instance),
    )


def _people(directory: _Directory, rows: list[tuple[GroupRow, dict[str, Any]]]) -> list[Person]:
    """Everyone in the groups, once, with the mapping merged for people in several groups."""
    people: dict[str, Person] = {}
    for row, group in rows:
        for member in directory.members(group["id"]):
            person = people.get(member.id)
            if person is None:
                people[member.id] = Person(
                    username=directory.username(member),
                    first_name=member.first_name.strip(),
                    last_name=member.last_name.strip(),
                    email=member.email,
                    security_profiles=list(row.security_profiles),
                    routing_profile=row.routing_profile,
                    phone_type=row.phone_type,
                    login=member.login,
                    groups=[group["name"]],
                    idp_id=member.id,
                    group_ids=[group["id"]],
                )
                continue
            person.groups.append(group["name"])
            person.group_ids.append(group["id"])
            person.security_profiles.extend(
                name for name in row.security_profiles if name not in person.security_profiles
            )
    return sorted(people.values(), key=lambda person: person.username.lower())


def quoted(name: str) -> str:
    """A group's name in the quotation marks of the admin's language."""
    return gettext("“%(name)s”") % {"name": name}


def _offered_groups(people: list[Person]) -> list[dict[str, str]]:
    """The groups whose app assignment would let in the people who can't sign in (and can have
    a user), each once."""
    found: dict[str, dict[str, str]] = {}
    for person in people:
        if person.assign_group and not person.reasons:
            found.setdefault(person.assign_group["id"], person.assign_group)
    return list(found.values())


def _assign_groups(ctx: StepContext, groups: list[dict[str, str]]) -> None:
    """Assign the groups to the SSO setup's app, as the plan said; each assignment is recorded
    for rollback before it is made, and one already there is left alone."""
    idp = str(ctx.idp_connection().cloud)
    outputs = setup_outputs(sso_setup_of(run_instance(ctx), idp))
    if idp == "entra":
        sp_id = EntraAppOutputs.from_json(outputs.get("entra_app") or {}).service_principal_id
        role_id = EntraClaimsOutputs.from_json(outputs.get("entra_claims") or {}).app_role_id
        if not sp_id or not role_id:
            raise _no_app()
        principals = {group["id"]: ("Group", group["name"]) for group in groups}
        assign_to_app(ctx, ctx.graph(), sp_id, role_id, principals)
        return
    app_id = OktaAppOutputs.from_json(outputs.get("okta_app") or {}).app_id
    if not app_id:
        raise _no_app()
    # The AWS app's assignment profile carries the role people sign in with (samlRoles), as the
    # SSO setup gives it to the people it assigns; with group mapping the role comes from the
    # role group instead, and the assignment carries none.
    role = FederationRoleOutputs.from_json(outputs.get("federation_role") or {}).role_name
    body = (
        {}
        if "okta_group_mapping" in outputs or not role
        else {"profile": {"role": role, "samlRoles": [role]}}
    )
    client = ctx.okta()
    for group in groups:
        if not app_group_assigned(client, app_id, group["id"]):
            ctx.record_created("okta_app_group", group["id"], app_id=app_id)
            okta_call(client, "PUT", f"{aws_app.app_path(app_id)}/groups/{group['id']}", body)


def _no_app() -> PermanentError:
    return PermanentError(
        Message(
            gettext_noop(
                "The SSO setup of this instance has no identity provider app to assign groups to."
            )
        ),
        code="idp_app_missing",
        hint=Message(
            gettext_noop("Run the SSO setup again, or untick “Assign their groups to the app”.")
        ),
    )


def _shared_with_other_syncs(
    ctx: StepContext, instance_id: str, people: list[Person]
) -> list[Message]:
    shared = sorted(
        {p.username for p in people}
        & other_syncs_people(instance_id, str(ctx.inputs.get("sync_id") or ""))
    )
    if not shared:
        return []
    return [
        Message.counted(
            gettext_noop(
                "%(count)d person is also in the groups of another sync of this instance: "
                "%(names)s. Each sync changes their user; keep each person in one sync's groups."
            ),
            gettext_noop(
                "%(count)d people are also in the groups of another sync of this instance: "
                "%(names)s. Each sync changes their users; keep each person in one sync's groups."
            ),
            len(shared),
            {"count": len(shared), "names": ", ".join(shared[:NAMED_IN_WARNINGS])},
        )
    ]


@register
class GroupUsers(UsersStep):
    key = "group_users"
    title = _("Amazon Connect users from groups")
    description = _(
        "Gives everyone in the identity provider groups you pick a Connect user, with the "
        "profiles you map to each group. Run again, or on a schedule, it adds newcomers, updates "
        "who changed and reports or removes who left."
    )
    form_class = GroupUsersForm

    def plan(self, ctx: StepContext) -> Plan:
        directory = _Directory(ctx)
        mapping = read_mapping(ctx.inputs)
        if not mapping:
            return MappingPlan(needs_input=True, mapping_choices=_choices(ctx, directory))
        rows, missing = [], []
        for row in mapping:
            group = directory.group(row.reference)
            if group is None:
                missing.append(row.reference)
            else:
                rows.append((row, group))
        if missing:
            message = Message(
                gettext_noop("These groups are not in the identity provider: %(names)s."),
                {"names": ", ".join(missing)},
            )
            if ctx.inputs.get("sync_id"):
                # Nobody is there to answer; never read a missing group as "everyone left".
                raise PermanentError(
                    message,
                    code="group_missing",
                    hint=Message(
                        gettext_noop(
                            "Restore the group in the identity provider and retry; or delete this "
                            "sync and keep a run with the groups you want in sync instead."
                        )
                    ),
                )
            return MappingPlan(
                needs_input=True, warnings=[message], mapping_choices=_choices(ctx, directory)
            )
        instance_id = run_instance(ctx)
        reading = None
        if ctx.inputs.get("sync_id"):
            reading = sync_reading(
                sync_id=str(ctx.inputs["sync_id"]),
                idp=directory.idp,
                client=directory.client,
                inputs=ctx.inputs,
                groups=[group for _row, group in rows],
                instance_id=instance_id,
            )
            if reading.unchanged:
                return UnchangedPlan(
                    changes=[
                        Change(
                            "nothing",
                            RESOURCE_TYPE,
                            "unchanged",
                            # Read in the reader's language (wizard/change_sentences.py).
                            {
                                "reason": Message(
                                    gettext_noop(
                                        "Nothing changed in the groups since the last sync run."
                                    )
                                )
                            },
                        )
                    ],
                    sync_reading=reading.to_json(),
                )
        people = _people(directory, rows)
        access = directory.app_access(instance_id)
        if access.setup_found:
            directory.offer_groups([p for p in people if not access.of(p.username)], rows)
        # One reading of the instance serves the change set and the choices kept for the form.
        instance = read_planned_instance(ctx)
        plan = cast(
            GroupUsersPlan,
            plan_user_changes(
                ctx,
                people,
                group_ids=[group["id"] for _row, group in rows],
                access=access,
                warnings=_shared_with_other_syncs(ctx, instance_id, people),
                plan_class=GroupUsersPlan,
                instance=instance,
            ),
        )
        plan.mapping_choices = _kept_choices(ctx, directory, instance)
        if reading is not None:
            plan.sync_reading = reading.to_json()
        offered = _offered_groups(people)
        if offered and ctx.inputs.get("assign_groups"):
            plan.assign_groups = offered
            plan.changes.extend(
                Change("create", APP_ASSIGNMENT, group["name"], details={"group_id": group["id"]})
                for group in offered
            )
        elif offered:
            # Messages, not text: the run page shows the warning in its reader's language.
            names = [Message(gettext_noop("“%(name)s”"), {"name": g["name"]}) for g in offered]
            warning = Message(
                gettext_noop("Assigning these groups to the app would let them in: %(groups)s."),
                {"groups": joined(names)},
            )
            plan.warnings.append(warning)
            if not ctx.inputs.get("sync_id"):
                plan.until_confirmed.append(
                    Message(
                        gettext_noop(
                            "Tick “Assign their groups to the app” in the mapping to do it in "
                            "this run."
                        )
                    )
                )
        return plan

    def apply(self, ctx: StepContext) -> GroupUsersOutputs:
        reading = dict(ctx.plan.get("sync_reading") or {})
        if ctx.plan.get("unchanged"):
            # Nothing changed in the groups: no Connect call, the sync's delta state moves on.
            record_unchanged_sync(ctx)
            store_reading(sync_id=str(ctx.inputs["sync_id"]), reading=reading)
            read = {"mode": reading.get("mode"), "reason": reading.get("reason")}
            return GroupUsersOutputs(unchanged=True, read=read)
        groups = list(ctx.plan.get("assign_groups") or [])
        if groups:
            _assign_groups(ctx, groups)
        outputs = apply_user_changes(ctx, lambda: self.plan(ctx), GroupUsersOutputs)
        if reading and ctx.inputs.get("sync_id"):
            store_reading(sync_id=str(ctx.inputs["sync_id"]), reading=reading)
            outputs.read = {"mode": reading.get("mode"), "reason": reading.get("reason")}
        outputs.assigned_groups = [group["name"] for group in groups]
        return outputs

    def rollback(self, ctx: StepContext) -> None:
        super().rollback(ctx)
        # The app assignments this run made (recorded as it made them), and only those.
        if str(ctx.idp_connection().cloud) == "entra":
            EntraAssignments().rollback(ctx)
        else:
            OktaAssignments().rollback(ctx)
