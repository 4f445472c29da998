"""The user writes an Okta admin (or a test acting as one) makes: create a user and update a
user's profile, as the Okta Users API documents them (developer.okta.com/docs/api/openapi/
okta-management/management/tag/User/).

- Create user: POST /api/v1/users?activate=true|false with {"profile": {firstName, lastName,
  email, login}, "credentials": ...}; 200 with the user, ACTIVE when activated (the default),
  else STAGED. A login in use is 400 E0000001 "Api validation failed: login" with the cause
  "login: An object with this field already exists in the current organization".
- Update user (partial): POST /api/v1/users/{id} with {"profile": {...}} changes only the given
  profile fields; 200 with the user; an unknown user is 404 E0000007.
- Delete user: DELETE /api/v1/users/{id} deactivates a user that isn't DEPROVISIONED (204);
  called again on a deactivated user, it deletes the user for good (204), out of every group
  and every app's direct assignments.
Group membership (PUT/DELETE /api/v1/groups/{gid}/users/{uid}) is in app.py already.
"""

from __future__ import annotations

from typing import Any

from sandbox.okta.org import EVERYONE_GROUP, USER_ID_PREFIX, OktaOrg, OrgUser, now

REQUIRED_PROFILE = ("firstName", "lastName", "email", "login")
# Profile fields the sandbox keeps, by the OrgUser attribute that holds them.
PROFILE_FIELDS = {
    "firstName": "first_name",
    "lastName": "last_name",
    "email": "email",
    "login": "login",
}


class ProfileError(Exception):
    """An Okta validation error: the field and its causes (app.py turns it into E0000001)."""

    def __init__(self, field: str, *causes: str) -> None:
        super().__init__(field)
        self.field = field
        self.causes = list(causes)


def _profile(body: dict[str, Any]) -> dict[str, Any]:
    profile = body.get("profile")
    if not isinstance(profile, dict):
        raise ProfileError("profile", "profile: The field cannot be left blank")
    return profile


def _login_in_use(org: OktaOrg, login: str, except_id: str = "") -> bool:
    folded = login.casefold()
    return any(u.login.casefold() == folded and u.id != except_id for u in org.users.values())


def _login_taken() -> ProfileError:
    return ProfileError(
        "login", "login: An object with this field already exists in the current organization"
    )


def create_user(org: OktaOrg, body: dict[str, Any], *, activate: bool) -> OrgUser:
    profile = _profile(body)
    missing = [name for name in REQUIRED_PROFILE if not str(profile.get(name) or "").strip()]
    if missing:
        raise ProfileError(
            missing[0], *(f"{name}: The field cannot be left blank" for name in missing)
        )
    with org.lock:
        if _login_in_use(org, str(profile["login"])):
            raise _login_taken()
        user = OrgUser(
            id=org.new_id(USER_ID_PREFIX),
            login=str(profile["login"]),
            email=str(profile["email"]),
            first_name=str(profile["firstName"]),
            last_name=str(profile["lastName"]),
            created=now(),
            status="ACTIVE" if activate else "STAGED",
        )
        org.users[user.id] = user
        everyone = next(g for g in org.groups.values() if g.name == EVERYONE_GROUP)
        everyone.member_ids.append(user.id)
        everyone.last_membership_updated = user.created
        return user


def update_profile(org: OktaOrg, user: OrgUser, body: dict[str, Any]) -> OrgUser:
    profile = _profile(body)
    with org.lock:
        login = profile.get("login")
        if login is not None and _login_in_use(org, str(login), except_id=user.id):
            raise _login_taken()
        for name, attribute in PROFILE_FIELDS.items():
            if name in profile and profile[name] is not None:
                setattr(user, attribute, str(profile[name]))
        return user


def delete_user(org: OktaOrg, user: OrgUser) -> None:
    """Deactivate the user, or delete a deactivated one (and its memberships)."""
    with org.lock:
        if user.status != "DEPROVISIONED":
            user.status = "DEPROVISIONED"
            return
        del org.users[user.id]
        # A deleted user is gone from every app too: Okta lists an app's users from its
        # assignments, and a user that no longer exists has none (Deactivate a user: "The user
        # is deprovisioned from all assigned apps"; Delete a user then removes them for good).
        for app in org.apps.values():
            app.users.pop(user.id, None)
        for group in org.groups.values():
            if user.id in group.member_ids:
                group.member_ids.remove(user.id)
                # A deleted user leaves their groups: their memberships were updated.
                group.last_membership_updated = now()
