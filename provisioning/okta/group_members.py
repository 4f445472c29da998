"""Okta groups for the users steps: the groups to pick from (with their member counts), a group by
id or name, and every user in a group (Okta groups don't nest), read in pages."""

from __future__ import annotations

import json
import re
from typing import Any

from provisioning.errors import PermanentError
from provisioning.okta import aws_app
from provisioning.okta.rest import okta_call, okta_pages, send_page
from provisioning.user_changes.people import IdpPerson, group_too_large

# An Okta group id: "00g" and 17 letters or digits (Okta object ids are 20 characters).
GROUP_ID = re.compile(r"00g[A-Za-z0-9]{17}")
# Okta's page limits: groups up to 10000, group members up to 1000 (Okta API reference).
GROUPS_PAGE = 10000
MEMBERS_PAGE = 1000


def okta_groups(client: Any, *, limit: int) -> tuple[list[dict[str, Any]], bool]:
    """[{id, name, member_count}] of the org's groups, at most `limit`; and whether there were
    more."""
    groups: list[dict[str, Any]] = []
    for group in okta_pages(
        client, "/api/v1/groups", params={"limit": GROUPS_PAGE, "expand": "stats"}
    ):
        if len(groups) >= limit:
            return groups, True
        entry: dict[str, Any] = {
            "id": str(group["id"]),
            "name": str((group.get("profile") or {}).get("name") or group["id"]),
        }
        count = ((group.get("_embedded") or {}).get("stats") or {}).get("usersCount")
        if isinstance(count, int):
            entry["member_count"] = count
        groups.append(entry)
    return groups, False


def okta_group(client: Any, reference: str) -> dict[str, Any] | None:
    """{id, name, last_membership_updated} of the group with this id, or else this name; None if
    there is none. Only a reference shaped like an Okta group id goes into a URL path; a name is
    a query value."""
    group = None
    if GROUP_ID.fullmatch(reference):
        try:
            group = okta_call(client, "GET", f"/api/v1/groups/{reference}")
        except PermanentError as error:
            if error.code != aws_app.NOT_FOUND:
                raise
    if group is None:
        group = next(
            (
                found
                for found in okta_pages(
                    client, "/api/v1/groups", params={"q": reference, "limit": GROUPS_PAGE}
                )
                if (found.get("profile") or {}).get("name") == reference
            ),
            None,
        )
    if group is None:
        return None
    return {
        "id": str(group["id"]),
        "name": str((group.get("profile") or {}).get("name") or ""),
        # "Timestamp when the group's memberships were last updated" (Okta Groups API, the
        # Group object): a sync whose groups all still show the time it read them skips reading.
        "last_membership_updated": str(group.get("lastMembershipUpdated") or ""),
    }


def okta_group_members(client: Any, group_id: str, *, limit: int) -> list[IdpPerson]:
    """Every user in the group. A group bigger than `limit` is refused rather than read in part:
    a sync must never take the missing people for departures."""
    people: list[IdpPerson] = []
    url: str | None = f"/api/v1/groups/{group_id}/users?limit={MEMBERS_PAGE}"
    while url:
        text, url = send_page(client, url)
        for user in json.loads(text) if text else []:
            profile = user.get("profile") or {}
            people.append(
                IdpPerson(
                    id=str(user["id"]),
                    login=str(profile.get("login") or ""),
                    email=str(profile.get("email") or ""),
                    first_name=str(profile.get("firstName") or ""),
                    last_name=str(profile.get("lastName") or ""),
                )
            )
        if len(people) > limit:
            raise group_too_large(limit)
    return people
