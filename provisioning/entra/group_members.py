"""Entra ID groups for the users steps: the groups to pick from, a group by id or name, and every
user in a group, nested groups included (transitiveMembers), read in pages of 999."""

from __future__ import annotations

import uuid
from typing import Any

from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph.generated.groups.groups_request_builder import GroupsRequestBuilder
from msgraph.generated.groups.item.transitive_members.graph_user.graph_user_request_builder import (  # noqa: E501
    GraphUserRequestBuilder,
)

from provisioning.entra.client import run_graph
from provisioning.entra.graph_reads import all_pages_json, get_or_none
from provisioning.user_changes.people import IdpPerson, group_too_large

# Graph's largest page for users and groups ($top 1-999).
PAGE_SIZE = 999
USER_FIELDS = ["id", "userPrincipalName", "givenName", "surname", "mail"]


def entra_groups(client: Any, *, limit: int) -> tuple[list[dict[str, Any]], bool]:
    """[{id, name}] of the tenant's groups, at most `limit`; and whether there were more."""
    query = GroupsRequestBuilder.GroupsRequestBuilderGetQueryParameters(
        select=["id", "displayName"], top=PAGE_SIZE
    )
    groups, more = all_pages_json(
        client.groups,
        client.groups.to_get_request_information(RequestConfiguration(query_parameters=query)),
        limit=limit,
    )
    return [
        {"id": str(g["id"]), "name": str(g.get("displayName") or g["id"])} for g in groups
    ], more


def entra_group(client: Any, reference: str) -> dict[str, Any] | None:
    """{id, name} of the group with this id, or else this display name; None if there is none.
    Only a reference that is a GUID goes into a URL path; a name goes into a quoted filter."""
    group = None
    if _is_guid(reference):
        group = get_or_none(client.groups.by_group_id(reference).get())
    if group is None:
        escaped = reference.replace("'", "''")
        query = GroupsRequestBuilder.GroupsRequestBuilderGetQueryParameters(
            filter=f"displayName eq '{escaped}'", select=["id", "displayName"]
        )
        found = run_graph(
            client.groups.get(request_configuration=RequestConfiguration(query_parameters=query))
        )
        group = (found.value or [None])[0]
    if group is None:
        return None
    return {"id": str(group.id), "name": str(group.display_name or group.id)}


def _is_guid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def transitive_user_members(
    client: Any, group_id: str, *, limit: int
) -> tuple[list[dict[str, Any]], bool]:
    """The users in the group or in a group inside it, as Graph's JSON, at most `limit`; and
    whether there were more. GET /groups/{id}/transitiveMembers/microsoft.graph.user is an OData
    cast on a transitive membership list, which Graph serves only as an advanced query: with the
    ConsistencyLevel: eventual header and $count=true (group-list-transitivemembers, "Optional
    query parameters"; learn.microsoft.com/graph/aad-advanced-queries)."""
    builder = client.groups.by_group_id(group_id).transitive_members.graph_user
    query = GraphUserRequestBuilder.GraphUserRequestBuilderGetQueryParameters(
        select=USER_FIELDS, top=PAGE_SIZE, count=True
    )
    configuration = RequestConfiguration(query_parameters=query)
    configuration.headers.add("ConsistencyLevel", "eventual")
    return all_pages_json(builder, builder.to_get_request_information(configuration), limit=limit)


def entra_group_members(client: Any, group_id: str, *, limit: int) -> list[IdpPerson]:
    """Every user in the group or in a group inside it. A group bigger than `limit` is refused
    rather than read in part: a sync must never take the missing people for departures."""
    users, more = transitive_user_members(client, group_id, limit=limit)
    if more:
        raise group_too_large(limit)
    return [graph_person(user) for user in users]


def graph_users(builder: Any, *, limit: int) -> tuple[list[dict[str, Any]], bool]:
    """The users a `.../graph_user` builder lists (as JSON, USER_FIELDS), at most `limit`; and
    whether there were more."""
    query = GraphUserRequestBuilder.GraphUserRequestBuilderGetQueryParameters(
        select=USER_FIELDS, top=PAGE_SIZE
    )
    return all_pages_json(
        builder,
        builder.to_get_request_information(RequestConfiguration(query_parameters=query)),
        limit=limit,
    )


def graph_person(user: dict[str, Any]) -> IdpPerson:
    """A Graph user (JSON) as the users steps see people."""
    return IdpPerson(
        id=str(user["id"]),
        login=str(user.get("userPrincipalName") or ""),
        email=str(user.get("mail") or ""),
        first_name=str(user.get("givenName") or ""),
        last_name=str(user.get("surname") or ""),
    )
