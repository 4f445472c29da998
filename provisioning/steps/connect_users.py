"""Creates the Amazon Connect users whose usernames equal what the IdP sends as RoleSessionName.

People come from the step's form (a CSV, below), from the inputs key "people" (a plan file), or
from the latest earlier step whose outputs hold "people" (the IdP steps), each
{"username", "first_name", "last_name", "email"?, "desk_phone"?, "security_profiles"?,
"routing_profile"?, "phone_type"?}. The CSV has a header row; columns: username, first_name,
last_name, and optionally email and desk_phone (E.164, for desk phones), e.g.

    username,first_name,last_name,email
    keiko.mcdonald@example.com,Keiko,McDonald,keiko.mcdonald@example.com

Choices for everyone (inputs): security_profiles (names, ["Agent"]), routing_profile (name,
"Basic Routing Profile"), phone_type (SOFT_PHONE or DESK_PHONE), desk_phones (one line a person,
"username,+81312345678": CreateUser's PhoneConfig.DeskPhoneNumber, E.164 in botocore's Connect
model, which a DESK_PHONE user needs), update_existing (false: existing users are left alone).
When the people come from an earlier step (an SSO setup) and none of these choices is given, the
plan reads the instance's security and routing profiles (the instance exists by then: it may be
made by an earlier step of the same run) and waits for the form to offer them; `setup_sso` gives
the defaults instead (`headless_defaults`), so a plan file without them runs through. The users
plan keeps those choices (carried through the answers, read once for a plan file's), so the
answers offered again for editing (a failed step) come with the profiles, not plain text fields.

Every username is checked (provisioning/usernames.py) before any call: a refused person is listed
with the reasons and left out, the others go ahead. The plan stores one row per person (a change
set, provisioning/user_changes/) and apply makes the changes with as many workers as are free, at
the API's quota. Users are tagged with the run id, which is how a re-run tells a user a crashed
attempt of this run created from someone else's, and how rollback finds what to delete.

Outputs: counts of created, updated, unchanged, refused (and the first refused people with their
reasons); the change set id, whose rows list everyone.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Any, ClassVar, cast

from django import forms
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from provisioning.context import StepContext
from provisioning.errors import PermanentError
from provisioning.steps.base import Plan, StepOutputs, register
from provisioning.steps.inputs import carried_choices
from provisioning.user_changes.instance import Instance
from provisioning.user_changes.people import (
    DEFAULT_ROUTING_PROFILE,
    DEFAULT_SECURITY_PROFILES,
    DESK_PHONE,
    E164,
    MAX_SECURITY_PROFILES_PER_USER,
    PHONE_TYPES,
    SOFT_PHONE,
    Person,
    names,
    person_from,
)
from provisioning.user_changes.steps import (
    UserChangeCounts,
    UserChangesPlan,
    UsersStep,
    apply_user_changes,
    offered_profile_names,
    plan_user_changes,
    read_planned_instance,
    run_instance,
)

__all__ = ["PHONE_TYPES", "ConnectUsers", "ConnectUsersForm", "parse_people_csv", "run_instance"]

CSV_COLUMNS = ("username", "first_name", "last_name")
OPTIONAL_CSV_COLUMNS = ("email", "desk_phone")
# The inputs that say what every user gets; one of them given means the admin has chosen.
CHOICE_KEYS = ("security_profiles", "routing_profile", "phone_type")
# The form checks the desk phone lines against the people's usernames when there are at most
# this many (the plan carries them); beyond, the plan refuses whoever has no number.
USERNAMES_IN_CHOICES = 2000
# The desk phone lines name at most this many people left without a number.
NAMED_WITHOUT_NUMBER = 10


@dataclass
class ChoicesPlan(Plan):
    """Waits for the form; carries the instance's profiles it offers and who the people are."""

    user_choices: dict[str, Any] = field(default_factory=dict)


@dataclass
class ConnectUsersPlan(UserChangesPlan):
    """A users plan that also says, in a sentence, what every user gets, and keeps the choices
    the answers were made from (the instance's profiles, who the people are), so that its
    answers, offered again for editing (a failed step, a plan that waits again), come with them."""

    chosen: str = ""
    user_choices: dict[str, Any] = field(default_factory=dict)


@dataclass
class ConnectUsersOutputs(UserChangeCounts, StepOutputs):
    """The users it created, updated, found and refused (UserChangeCounts)."""

    step_key: ClassVar[str] = "connect_users"


def parse_desk_phones(text: str) -> dict[str, str]:
    """{username: number} from lines "username,+81312345678"; ValueError says which line is
    wrong and how."""
    numbers: dict[str, str] = {}
    for number, line in enumerate(str(text or "").splitlines(), start=1):
        if not line.strip():
            continue
        username, _comma, phone = (part.strip() for part in line.rpartition(","))
        if not username:
            raise ValueError(
                gettext("Line %(number)d: write username,+81312345678.") % {"number": number}
            )
        if not E164.match(phone):
            raise ValueError(
                gettext(
                    "Line %(number)d: “%(phone)s” is not a phone number in E.164 form (like "
                    "+81312345678)."
                )
                % {"number": number, "phone": phone}
            )
        numbers[username] = phone
    return numbers


class ConnectUsersForm(forms.Form):
    """What every user gets (the instance's profiles, offered from the plan the step waits on),
    and the people, when no earlier step brought them."""

    # The run page builds this form with the plan it waits on (the choices come from it);
    # without a plan it takes names as text, so a plan file's answers are checked at once. The
    # plan keeps the choices under this key, and submitting the answers keeps them
    # (inputs.kept_choices).
    takes_plan = True
    checks_without_plan = True
    choices_key = "user_choices"

    people_csv = forms.CharField(
        label=_("People (CSV)"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 8}),
        help_text=_(
            "A header row, then one person per line: username,first_name,last_name and "
            "optionally email and desk_phone. The username must be exactly what the identity "
            "provider sends as RoleSessionName."
        ),
    )
    # Text until the plan lists the instance's profiles (a plan file's answers, or a failed
    # step whose plan never read them); then the instance's own names to pick from.
    security_profiles = forms.CharField(
        label=_("Security profiles"),
        initial="Agent",
        help_text=_("Names, separated by commas, as the instance lists them."),
    )
    routing_profile = forms.CharField(label=_("Routing profile"), initial=DEFAULT_ROUTING_PROFILE)
    phone_type = forms.ChoiceField(
        label=_("Phone type"),
        choices=[(SOFT_PHONE, _("Soft phone")), (DESK_PHONE, _("Desk phone"))],
        initial=SOFT_PHONE,
        widget=forms.RadioSelect,
    )
    desk_phones = forms.CharField(
        label=_("Desk phone numbers"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "username,+81312345678"}),
        help_text=_(
            "Only for desk phones, which Connect rings at this number: one person per line, "
            "username,+81312345678 (E.164 form)."
        ),
    )
    update_existing = forms.BooleanField(label=_("Update users that already exist"), required=False)

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
        choices = (plan or {}).get(self.choices_key) or {}
        super().__init__(data, files, initial=initial, **kwargs)
        self.people_count = choices.get("people_count")
        self.usernames = [str(name) for name in choices.get("usernames") or []]
        profiles = [str(name) for name in choices.get("security_profiles") or []]
        if profiles:
            self.fields["security_profiles"] = forms.MultipleChoiceField(
                label=_("Security profiles"),
                choices=[(name, name) for name in profiles],
                widget=forms.CheckboxSelectMultiple,
                error_messages={"required": _("Tick at least one security profile.")},
                help_text=_("Every user gets all the profiles you tick."),
            )
            chosen = names(initial.get("security_profiles"), DEFAULT_SECURITY_PROFILES)
            self.initial["security_profiles"] = [name for name in chosen if name in profiles]
        routing = [str(name) for name in choices.get("routing_profiles") or []]
        if routing:
            self.fields["routing_profile"] = forms.ChoiceField(
                label=_("Routing profile"), choices=[(name, name) for name in routing]
            )
            if self.initial.get("routing_profile") not in routing:
                self.initial["routing_profile"] = (
                    DEFAULT_ROUTING_PROFILE if DEFAULT_ROUTING_PROFILE in routing else routing[0]
                )
        if self.people_count is not None:
            # An earlier step brought the people: only the choices are asked.
            del self.fields["people_csv"]
        elif choices:
            cast(forms.CharField, self.fields["people_csv"]).required = True

    def clean_people_csv(self) -> str:
        value = self.cleaned_data["people_csv"]
        if not value.strip():
            return value
        try:
            parse_people_csv(value)
        except ValueError as error:
            raise forms.ValidationError(str(error)) from error
        return value

    def clean_security_profiles(self) -> list[str]:
        chosen = names(self.cleaned_data["security_profiles"], [])
        if not chosen:
            raise forms.ValidationError(_("Tick at least one security profile."))
        if len(chosen) > MAX_SECURITY_PROFILES_PER_USER:
            raise forms.ValidationError(
                _("A user can have at most %(count)d security profiles.")
                % {"count": MAX_SECURITY_PROFILES_PER_USER}
            )
        return chosen

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if cleaned.get("phone_type") != DESK_PHONE or "desk_phones" not in self.fields:
            return cleaned
        try:
            numbers = parse_desk_phones(cleaned.get("desk_phones", ""))
        except ValueError as error:
            self.add_error("desk_phones", str(error))
            return cleaned
        if self.people_count is None:
            return cleaned  # people from the CSV: its desk_phone column serves too
        if not numbers:
            self.add_error(
                "desk_phones",
                _("A desk phone rings at the person's own number: give one line per person."),
            )
            return cleaned
        if self.usernames and len(self.usernames) == self.people_count:
            unknown = sorted(set(numbers) - set(self.usernames))
            missing = [name for name in self.usernames if name not in numbers]
            if unknown:
                self.add_error(
                    "desk_phones",
                    _("These are not people of this step: %(names)s.")
                    % {"names": ", ".join(unknown[:NAMED_WITHOUT_NUMBER])},
                )
            if missing:
                self.add_error(
                    "desk_phones",
                    ngettext(
                        "%(count)d person has no desk phone number: %(names)s.",
                        "%(count)d people have no desk phone number: %(names)s.",
                        len(missing),
                    )
                    % {
                        "count": len(missing),
                        "names": ", ".join(missing[:NAMED_WITHOUT_NUMBER]),
                    },
                )
        return cleaned


def parse_people_csv(text: str) -> list[dict[str, str]]:
    """People from the form's CSV (header row first); ValueError says what is wrong with it."""
    reader = csv.DictReader(io.StringIO(text.strip()))
    header = [name.strip().lower() for name in (reader.fieldnames or [])]
    missing = [column for column in CSV_COLUMNS if column not in header]
    if missing:
        raise ValueError(
            gettext(
                "The first line must be a header with %(columns)s (and optionally %(optional)s); "
                "missing: %(missing)s."
            )
            % {
                "columns": ",".join(CSV_COLUMNS),
                "optional": ", ".join(OPTIONAL_CSV_COLUMNS),
                "missing": ", ".join(missing),
            }
        )
    reader.fieldnames = header
    people = []
    for row in reader:
        person = {key: (value or "").strip() for key, value in row.items() if key in header}
        if any(person.values()):
            people.append(person)
    return people


def _people_input(ctx: StepContext) -> tuple[list[dict[str, Any]] | None, bool]:
    """The step's people as plain dicts (None: nobody given yet), and whether an earlier step
    brought them (rather than the admin's CSV or a plan file's list)."""
    if str(ctx.inputs.get("people_csv", "")).strip():
        try:
            return parse_people_csv(str(ctx.inputs["people_csv"])), False
        except ValueError as error:
            raise PermanentError(str(error), code="people_csv_invalid") from error
    if isinstance(ctx.inputs.get("people"), list):
        return list(ctx.inputs["people"]), False
    for outputs in reversed(list(ctx.outputs.values())):
        if isinstance(outputs.get("people"), list):
            return list(outputs["people"]), True
    return None, False


def _desk_phones(ctx: StepContext) -> dict[str, str]:
    try:
        return parse_desk_phones(str(ctx.inputs.get("desk_phones") or ""))
    except ValueError as error:
        raise PermanentError(
            gettext("The desk phone numbers can't be read: %(error)s") % {"error": error},
            code="desk_phones_invalid",
        ) from error


def people_of(ctx: StepContext) -> list[Person] | None:
    """The step's people with the run's choices, or None when nobody was given yet."""
    raw, _from_earlier_step = _people_input(ctx)
    if not raw:
        return None
    numbers = _desk_phones(ctx)
    people = [person_from(entry, ctx.inputs) for entry in raw]
    for person in people:
        person.desk_phone = numbers.get(person.username, person.desk_phone)
    return people


def _check_choices(inputs: dict[str, Any]) -> None:
    """A plan file's phone type is one Connect knows (profile names are checked against the
    instance when the plan reads it)."""
    phone_type = str(inputs.get("phone_type") or SOFT_PHONE)
    if phone_type not in PHONE_TYPES:
        raise PermanentError(
            gettext("The phone type must be SOFT_PHONE or DESK_PHONE, not “%(value)s”.")
            % {"value": phone_type},
            code="phone_type_invalid",
            hint=gettext("Use one of: %(choices)s.") % {"choices": ", ".join(PHONE_TYPES)},
        )


def _choices(
    ctx: StepContext, raw: list[dict[str, Any]] | None, instance: Instance | None = None
) -> dict[str, Any]:
    """What the form offers: the instance's profiles, and who the people are when known.
    `instance`: the instance as the plan read it a moment ago (else its profiles are read here)."""
    profiles, routing = offered_profile_names(ctx, instance)
    choices: dict[str, Any] = {"security_profiles": profiles, "routing_profiles": routing}
    if raw:
        choices["people_count"] = len(raw)
        choices["usernames"] = [str(entry.get("username", "")) for entry in raw][
            :USERNAMES_IN_CHOICES
        ]
    return choices


def chosen_sentence(inputs: dict[str, Any]) -> str:
    """What every user gets, in the admin's words, with the names the admin chose."""
    profiles = names(inputs.get("security_profiles"), DEFAULT_SECURITY_PROFILES)
    quoted = [gettext("“%(name)s”") % {"name": name} for name in profiles]
    phone = (
        gettext("a desk phone")
        if str(inputs.get("phone_type") or SOFT_PHONE) == DESK_PHONE
        else gettext("a soft phone")
    )
    return ngettext(
        "Every user gets the security profile %(profiles)s, the routing profile %(routing)s "
        "and %(phone)s.",
        "Every user gets the security profiles %(profiles)s, the routing profile %(routing)s "
        "and %(phone)s.",
        len(profiles),
    ) % {
        "profiles": gettext(", ").join(quoted),
        "routing": gettext("“%(name)s”")
        % {"name": str(inputs.get("routing_profile") or DEFAULT_ROUTING_PROFILE)},
        "phone": phone,
    }


@register
class ConnectUsers(UsersStep):
    key = "connect_users"
    title = _("Connect users")
    description = _(
        "Creates a Connect user for each person, with a username equal to what the identity "
        "provider sends, and the security and routing profiles you chose."
    )
    form_class = ConnectUsersForm
    # A plan file that gives none of the choices runs with these (setup_sso).
    headless_defaults = {
        "security_profiles": list(DEFAULT_SECURITY_PROFILES),
        "routing_profile": DEFAULT_ROUTING_PROFILE,
        "phone_type": SOFT_PHONE,
    }
    # Its people may come from a plan file's list or an earlier step's outputs, not only from the
    # form's CSV: people_of() says when nobody was given.
    inputs_checked_by_form = False

    def plan(self, ctx: StepContext) -> Plan:
        _check_choices(ctx.inputs)
        raw, from_earlier_step = _people_input(ctx)
        chosen = any(key in ctx.inputs for key in CHOICE_KEYS)
        if not raw or (from_earlier_step and not chosen):
            return ChoicesPlan(needs_input=True, user_choices=_choices(ctx, raw))
        people = people_of(ctx)
        assert people is not None
        # One reading of the instance serves the change set and the choices kept for the form.
        instance = read_planned_instance(ctx)
        plan = cast(
            ConnectUsersPlan,
            plan_user_changes(ctx, people, plan_class=ConnectUsersPlan, instance=instance),
        )
        # Everyone gets the same choices unless a plan file's list gives some their own.
        own = any(any(key in entry for key in CHOICE_KEYS) for entry in raw)
        plan.chosen = "" if own else chosen_sentence(ctx.inputs)
        # As the form offers them: the people are asked for unless an earlier step brought them.
        plan.user_choices = carried_choices(
            ConnectUsers, ctx, lambda: _choices(ctx, raw if from_earlier_step else None, instance)
        )
        return plan

    def apply(self, ctx: StepContext) -> ConnectUsersOutputs:
        return apply_user_changes(ctx, lambda: self.plan(ctx), ConnectUsersOutputs)
