"""Creates the Amazon Connect users whose usernames equal what the IdP sends as RoleSessionName.

People come from the step's form (a CSV, below), from the inputs key "people" (a plan file), or
from the latest earlier step whose outputs hold "people" (the IdP steps), each
{"username", "first_name", "last_name", "email"?, "desk_phone"?, "security_profiles"?,
"routing_profile"?, "phone_type"?}. The CSV has a header row; columns: username, first_name,
last_name, and optionally email and desk_phone (E.164, for desk phones), e.g.

    username,first_name,last_name,email
    keiko.mcdonald@example.com,Keiko,McDonald,keiko.mcdonald@example.com

Defaults for everyone (inputs): security_profiles (names, ["Agent"]), routing_profile (name,
"Basic Routing Profile"), phone_type (SOFT_PHONE or DESK_PHONE), update_existing (false: existing
users are left alone).

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
from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from provisioning.context import StepContext
from provisioning.errors import PermanentError
from provisioning.steps.base import Plan, register
from provisioning.user_changes.people import (
    DEFAULT_ROUTING_PROFILE,
    PHONE_TYPES,
    Person,
    person_from,
)
from provisioning.user_changes.steps import UsersStep, plan_user_changes, run_instance

__all__ = ["PHONE_TYPES", "ConnectUsers", "ConnectUsersForm", "parse_people_csv", "run_instance"]

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


def people_of(ctx: StepContext) -> list[Person] | None:
    """The step's people with the run's defaults, or None when nobody was given yet."""
    raw = _people_input(ctx)
    if not raw:
        return None
    return [person_from(entry, ctx.inputs) for entry in raw]


@register
class ConnectUsers(UsersStep):
    key = "connect_users"
    title = _("Connect users")
    description = _(
        "Creates a Connect user for each person, with a username equal to what the identity "
        "provider sends, and the security and routing profiles you chose."
    )
    form_class = ConnectUsersForm
    # Its people may come from a plan file's list or an earlier step's outputs, not only from the
    # form's CSV: people_of() says when nobody was given.
    inputs_checked_by_form = False

    def plan(self, ctx: StepContext) -> Plan:
        people = people_of(ctx)
        if people is None:
            return Plan(needs_input=True)
        return plan_user_changes(ctx, people)
