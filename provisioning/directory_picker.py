"""The people picker of the assignment steps: the directory snapshot a plan stores, the form that
collects the admin's choice, and how a choice is read back.

An assignment step's plan() reads the IdP's users and groups in the worker and returns a
PickerPlan(needs_input=True, directory=directory_snapshot(...)); the run page shows a searchable
picker over that snapshot (wizard/views/directory_picker.py, templates/directory_picker.html), so
no web request calls the IdP. The choice comes back as step inputs:
- `picked`: ["user:<id>", "group:<id>", ...] (the picker's checkboxes), and/or
- `principals_text`: logins or group names, one a line (the no-JavaScript and plan-file way), and
- `exclude_logins`: logins to leave out; `exclude_offenders` (default true): leave out people whose
  sign-in name can't be a Connect username instead of stopping.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from provisioning.steps.base import Plan

# At most this many users and this many groups are kept in a snapshot (a plan is one JSON row;
# the picker's search covers the snapshot only, and the page says when it was capped).
DIRECTORY_CAP = 1000
USER = "user"
GROUP = "group"
# An Entra object id (a GUID) or an Okta id (20 letters and digits): nothing else is put into a
# URL path.
OBJECT_ID = re.compile(r"[A-Za-z0-9-]{1,64}")
# Graph caps a group's displayName at 256 characters and a userPrincipalName at 113; Okta a login
# at 100 (Graph's group and user resource types; Okta's Users API reference). No name a directory
# can hold is longer.
MAX_NAME_LENGTH = 256
# Names typed one a line; more people than this are picked as groups.
MAX_NAMES = 1000


@dataclass
class PickerPlan(Plan):
    """A plan that carries the directory snapshot the picker shows."""

    directory: dict[str, Any] = field(default_factory=dict)


def directory_snapshot(
    users: list[dict[str, str]],
    groups: list[dict[str, Any]],
    *,
    more_users: bool,
    more_groups: bool,
) -> dict[str, Any]:
    """{"users": [{id, login, name, email}], "groups": [{id, name, member_count, note?}],
    "capped": bool}, sorted by name, at most DIRECTORY_CAP of each. A snapshot may also carry
    "purpose": "sign_in_test" (the picker then asks whom to test, not who may sign in)."""
    users = sorted(users, key=lambda user: (user["name"].lower(), user["login"].lower()))
    groups = sorted(groups, key=lambda group: group["name"].lower())
    capped = more_users or more_groups or len(users) > DIRECTORY_CAP or len(groups) > DIRECTORY_CAP
    return {
        "users": users[:DIRECTORY_CAP],
        "groups": groups[:DIRECTORY_CAP],
        "capped": capped,
        "cap": DIRECTORY_CAP,
    }


def _lines(value: Any) -> list[str]:
    if isinstance(value, list | tuple):
        items = [str(item) for item in value]
    else:
        items = str(value or "").replace(",", "\n").splitlines()
    return [item.strip() for item in items if item.strip()]


@dataclass
class Choice:
    """What the admin picked, as ids and as typed names."""

    user_ids: list[str]
    group_ids: list[str]
    names: list[str]  # logins or group names typed in the text box
    excluded_logins: set[str]
    exclude_offenders: bool

    @property
    def is_empty(self) -> bool:
        return not (self.user_ids or self.group_ids or self.names)


def check_names(text: str) -> str:
    """Sign-in or group names, one a line, each within the directories' length limit and free of
    control and bidirectional-override characters (which would make a name read as another)."""
    names = _lines(text)
    if len(names) > MAX_NAMES:
        raise forms.ValidationError(
            _("Give at most %(count)d names; pick groups for more people.") % {"count": MAX_NAMES}
        )
    for name in names:
        if len(name) > MAX_NAME_LENGTH:
            raise forms.ValidationError(
                _(
                    "“%(start)s…” is longer than %(limit)d characters: "
                    "no directory holds such a name."
                )
                % {"start": name[:40], "limit": MAX_NAME_LENGTH}
            )
        if any(unicodedata.category(char) in ("Cc", "Cf") for char in name):
            raise forms.ValidationError(
                _("“%(name)s” holds control or direction characters; type the name again.")
                % {"name": name.encode("ascii", "backslashreplace").decode()[:80]}
            )
    return text


def read_choice(inputs: dict[str, Any]) -> Choice:
    """The admin's choice from a step's inputs (form or plan file)."""
    user_ids: list[str] = []
    group_ids: list[str] = []
    for value in _lines(inputs.get("picked")):
        kind, _, object_id = value.partition(":")
        if not OBJECT_ID.fullmatch(object_id):
            # Ids go into URL paths: only the directories' own id alphabet gets there.
            continue
        if kind == USER:
            user_ids.append(object_id)
        elif kind == GROUP:
            group_ids.append(object_id)
    return Choice(
        user_ids=list(dict.fromkeys(user_ids)),
        group_ids=list(dict.fromkeys(group_ids)),
        names=list(dict.fromkeys(_lines(inputs.get("principals_text")))),
        excluded_logins={login.lower() for login in _lines(inputs.get("exclude_logins"))},
        exclude_offenders=bool(inputs.get("exclude_offenders", True)),
    )


def picked_values(data: Any, name: str) -> list[str]:
    """The values of the picker's checkboxes in form data (a QueryDict, or a plain dict)."""
    if hasattr(data, "getlist"):
        return [str(value) for value in data.getlist(name)]
    value = data.get(name)
    if isinstance(value, list):
        return [str(item) for item in value]
    return [str(value)] if value else []


def picker_answers(answers: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    """A picker step's stored answers for the engine's check (Step.form_answers): the form's
    fields, and the ticks, which are no field (PeoplePickerForm.clean reads them from the data)."""
    return {**answers, "picked": inputs["picked"]} if "picked" in inputs else answers


class PeoplePickerForm(forms.Form):
    """The assignment form. The picker's checkboxes (name "<prefix>-picked") are read in clean()
    so that the field loop of the run page doesn't render them a second time."""

    principals_text = forms.CharField(
        label=_("Users and groups by name"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_(
            "Instead of (or as well as) ticking them above: sign-in names or group names, "
            "one a line."
        ),
    )
    exclude_logins = forms.CharField(
        label=_("Leave these people out"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("Sign-in names, one a line."),
    )
    exclude_offenders = forms.BooleanField(
        label=_("Leave out people whose sign-in name can't be a Connect username"),
        required=False,
        initial=True,
    )

    def clean_principals_text(self) -> str:
        return check_names(str(self.cleaned_data.get("principals_text") or ""))

    def clean_exclude_logins(self) -> str:
        return check_names(str(self.cleaned_data.get("exclude_logins") or ""))

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        picked = picked_values(self.data, self.add_prefix("picked"))
        cleaned["picked"] = [
            value
            for value in dict.fromkeys(picked)
            if value.partition(":")[0] in (USER, GROUP)
            and OBJECT_ID.fullmatch(value.partition(":")[2])
        ]
        if not cleaned["picked"] and not str(cleaned.get("principals_text") or "").strip():
            raise forms.ValidationError(_("Choose at least one user or group."))
        return cleaned


def search_directory(
    directory: dict[str, Any], query: str, *, limit: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
    """Users and groups of a snapshot matching `query` (in name, login or email, any case), at
    most `limit` of each, and how many matches were left out."""
    needle = query.strip().lower()

    def matches(item: dict[str, Any], keys: tuple[str, ...]) -> bool:
        return not needle or any(needle in str(item.get(key) or "").lower() for key in keys)

    users = [
        user for user in directory.get("users", []) if matches(user, ("name", "login", "email"))
    ]
    groups = [group for group in directory.get("groups", []) if matches(group, ("name",))]
    left_out = max(0, len(users) - limit) + max(0, len(groups) - limit)
    return users[:limit], groups[:limit], left_out
