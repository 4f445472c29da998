"""The directory writes an admin (or a test acting as one) makes in Graph: create and update users,
add and remove group members, each as the Graph v1.0 API reference documents it.

- Create user (learn.microsoft.com/graph/api/user-post-users): POST /users needs accountEnabled,
  displayName, mailNickname, passwordProfile and userPrincipalName; 201 Created with the user. A
  UPN already in use is 400 "Another object with the same value for property userPrincipalName
  already exists." (the directory's message, quoted in issue threads such as
  microsoftgraph/msgraph-sdk-powershell).
- Update user (learn.microsoft.com/graph/api/user-update): PATCH /users/{id}, 204 No Content.
- Add member (learn.microsoft.com/graph/api/group-post-members): POST
  /groups/{id}/members/$ref with {"@odata.id": "https://graph.microsoft.com/v1.0/
  directoryObjects/{id}"}, 204 No Content; a member already there is 400 "One or more added
  object references already exist for the following modified properties: 'members'."
- Delete user (learn.microsoft.com/graph/api/user-delete): DELETE /users/{id}, 204 No Content;
  the user leaves every group it was in.
- Remove member (learn.microsoft.com/graph/api/group-delete-members): DELETE
  /groups/{id}/members/{id}/$ref, 204 No Content; unknown ids are 404 Request_ResourceNotFound.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from sandbox.entra.tenant import Tenant, bad_request, graph_timestamp, not_found

# user-post-users: the properties a create must carry.
REQUIRED_ON_CREATE = (
    "accountEnabled",
    "displayName",
    "mailNickname",
    "passwordProfile",
    "userPrincipalName",
)
# What PATCH /users/{id} may change in the sandbox's user (writable user properties).
WRITABLE_USER_PROPERTIES = {
    "accountEnabled",
    "department",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mailNickname",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "usageLocation",
    "userPrincipalName",
}
# The host and path an @odata.id reference names a directory object by.
REFERENCE = re.compile(
    r"https://graph\.microsoft\.com/v1\.0/(?:directoryObjects|users|groups)/(?P<id>[^/]+)"
)


def _upn_in_use(tenant: Tenant, upn: str, except_id: str = "") -> bool:
    folded = upn.casefold()
    return any(
        user["userPrincipalName"].casefold() == folded and user["id"] != except_id
        for user in tenant.users.values()
    )


def _upn_taken() -> Exception:
    return bad_request(
        "Another object with the same value for property userPrincipalName already exists."
    )


def create_user(tenant: Tenant, body: dict[str, Any]) -> dict[str, Any]:
    """A new member user from a create body; the stored user."""
    missing = [name for name in REQUIRED_ON_CREATE if body.get(name) in (None, "")]
    if missing:
        raise bad_request(
            f"Property '{missing[0]}' is required when creating the resource."
            if len(missing) == 1
            else "Invalid value specified for property "
            + ", ".join(f"'{name}'" for name in missing)
            + "."
        )
    upn = str(body["userPrincipalName"])
    if "@" not in upn or upn.split("@", 1)[1].casefold() != tenant.domain.casefold():
        raise bad_request(
            "The domain portion of the userPrincipalName property is invalid. You must use one "
            "of the verified domain names in your organization."
        )
    unknown = set(body) - WRITABLE_USER_PROPERTIES - {"passwordProfile", "@odata.type"}
    if unknown:
        raise bad_request(
            f"Property '{sorted(unknown)[0]}' does not exist as a declared property or extension "
            "property."
        )
    with tenant.lock:
        if _upn_in_use(tenant, upn):
            raise _upn_taken()
        template = next(iter(tenant.users.values()))
        user_id = str(uuid.uuid4())
        user = {
            **{key: None for key in template},
            "@odata.type": "#microsoft.graph.user",
            "id": user_id,
            "businessPhones": [],
            "createdDateTime": graph_timestamp(),
            "otherMails": [],
            "proxyAddresses": [],
            "userType": "Member",
            **{key: value for key, value in body.items() if key in WRITABLE_USER_PROPERTIES},
        }
        tenant.users[user_id] = user
        tenant.delta_log.user_changed(user_id)
        return user


def update_user(tenant: Tenant, key: str, body: dict[str, Any]) -> None:
    """Apply a PATCH body to a user (by id or UPN)."""
    user = tenant.find_user(key)
    unknown = set(body) - WRITABLE_USER_PROPERTIES - {"passwordProfile", "@odata.type"}
    if unknown:
        raise bad_request(
            f"Property '{sorted(unknown)[0]}' does not exist as a declared property or extension "
            "property."
        )
    with tenant.lock:
        upn = body.get("userPrincipalName")
        if upn is not None and _upn_in_use(tenant, str(upn), except_id=user["id"]):
            raise _upn_taken()
        user.update({k: v for k, v in body.items() if k in WRITABLE_USER_PROPERTIES})
        tenant.delta_log.user_changed(user["id"])


def add_member(tenant: Tenant, group_id: str, body: dict[str, Any]) -> None:
    """Add the directory object an @odata.id names to the group's direct members."""
    reference = body.get("@odata.id")
    if not isinstance(reference, str):
        raise bad_request("Invalid object identifier: '@odata.id' is required.")
    match = REFERENCE.fullmatch(reference)
    if match is None:
        raise bad_request(f"Invalid object identifier '{reference}'.")
    member_id = match["id"]
    with tenant.lock:
        group = tenant.find_group(group_id)
        if tenant.directory_object(member_id) is None:
            raise not_found(member_id)
        members = tenant.members.setdefault(group["id"], [])
        if member_id in members:
            raise bad_request(
                "One or more added object references already exist for the following modified "
                "properties: 'members'."
            )
        members.append(member_id)
        tenant.delta_log.member_changed(
            group["id"], tenant.directory_object(member_id) or {"id": member_id}, removed=False
        )


def remove_member(tenant: Tenant, group_id: str, member_id: str) -> None:
    """Remove a direct member from the group."""
    with tenant.lock:
        group = tenant.find_group(group_id)
        members = tenant.members.setdefault(group["id"], [])
        if member_id not in members:
            raise not_found(member_id)
        members.remove(member_id)
        tenant.delta_log.member_changed(
            group["id"], tenant.directory_object(member_id) or {"id": member_id}, removed=True
        )


def delete_user(tenant: Tenant, key: str) -> None:
    """Delete a user (by id or UPN), and with it their group memberships."""
    user = tenant.find_user(key)
    with tenant.lock:
        del tenant.users[user["id"]]
        for group_id, members in tenant.members.items():
            if user["id"] in members:
                members.remove(user["id"])
                tenant.delta_log.member_changed(group_id, user, removed=True)
        tenant.delta_log.user_changed(user["id"], removed=True)
