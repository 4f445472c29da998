"""What changed in Entra ID groups and their users since a sync last read them, by Graph's delta
queries: "sync from now" links taken before a full read, and the changes those links show later.

Graph's documentation this follows (learn.microsoft.com/graph/delta-query-overview,
learn.microsoft.com/graph/api/group-delta, learn.microsoft.com/graph/api/user-delta):
- GET /groups/delta with $filter=id eq '…' or id eq '…' (the only filter delta takes: by id) and
  $select=members: a group whose direct members changed comes back with `members@delta`.
  A nested group's members are its own, so the filter names every group of each picked tree.
- GET /users/delta with $select of the fields a username and a Connect user are made of.
- `$deltatoken=latest` answers with a deltaLink and no resources; a deltaLink is followed page
  by page (@odata.nextLink) to the next deltaLink.
- A delta link lives seven days; after that Graph answers 400 syncStateNotFound ("The delta
  token is expired and data must be synchronized again"; devblogs.microsoft.com/microsoft365dev/
  duration-of-change-tracking-tokens-for-identity-and-education-resources/). Other Graph delta
  resources answer 410 Gone (delta-query-overview, "Synchronization reset"); either means: read
  everything again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.utils.translation import gettext_noop
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph.generated.groups.delta.delta_request_builder import (
    DeltaRequestBuilder as GroupsDelta,
)
from msgraph.generated.groups.item.transitive_members.graph_group.graph_group_request_builder import (  # noqa: E501
    GraphGroupRequestBuilder,
)
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.users.delta.delta_request_builder import DeltaRequestBuilder as UsersDelta

from provisioning.entra.client import run_graph
from provisioning.entra.graph_reads import all_pages_json
from provisioning.entra.group_members import PAGE_SIZE, USER_FIELDS
from provisioning.errors import PermanentError
from provisioning.messages import Message

# A user's fields a sync's plan is made of (USER_FIELDS) and whether they may sign in.
DELTA_USER_FIELDS = [*USER_FIELDS, "accountEnabled"]
# The error codes that mean "this delta link is no good any more: read everything again".
EXPIRED_CODES = frozenset({"syncStateNotFound", "resyncRequired", "http_410"})


class DeltaExpired(Exception):
    """Graph no longer knows the sync's delta links; a full read must start again."""


@dataclass
class EntraChanges:
    """What the delta links showed: the groups whose members changed, the users who changed,
    and the links to follow next time."""

    changed_groups: set[str] = field(default_factory=set)
    changed_users: set[str] = field(default_factory=set)
    links: dict[str, str] = field(default_factory=dict)


def tracked_groups(client: Any, group_ids: list[str]) -> list[str] | None:
    """The picked groups and every group inside them (transitiveMembers cast to group, an
    advanced query: ConsistencyLevel eventual and $count); None when there are more than a
    delta filter should name (such a sync always reads in full)."""
    found = list(dict.fromkeys(group_ids))
    for group_id in group_ids:
        builder = client.groups.by_group_id(group_id).transitive_members.graph_group
        query = GraphGroupRequestBuilder.GraphGroupRequestBuilderGetQueryParameters(
            select=["id"], top=PAGE_SIZE, count=True
        )
        configuration = RequestConfiguration(query_parameters=query)
        configuration.headers.add("ConsistencyLevel", "eventual")
        limit = settings.WIZARD_SYNC_DELTA_GROUPS_MAX
        nested, more = all_pages_json(
            builder, builder.to_get_request_information(configuration), limit=limit
        )
        if more:
            return None
        found.extend(str(group["id"]) for group in nested if str(group["id"]) not in found)
        if len(found) > limit:
            return None
    return found


def delta_links_from_now(client: Any, group_ids: list[str]) -> dict[str, str]:
    """Fresh "sync from now" links for the members of these groups and for users: taken before
    a full read, so whatever changes during the read shows up next time."""
    groups_query = GroupsDelta.DeltaRequestBuilderGetQueryParameters(
        filter=" or ".join(f"id eq '{group_id}'" for group_id in group_ids), select=["members"]
    )
    users_query = UsersDelta.DeltaRequestBuilderGetQueryParameters(select=DELTA_USER_FIELDS)
    links = {}
    for name, builder, query in (
        ("groups", client.groups.delta, groups_query),
        ("users", client.users.delta, users_query),
    ):
        request = builder.to_get_request_information(RequestConfiguration(query_parameters=query))
        # The adapter fills in its base URL when it sends; the URL is read before that here.
        request.path_parameters["baseurl"] = builder.request_adapter.base_url
        # The SDK's query parameters don't include $deltatoken; "latest" goes on the URL.
        latest = builder.with_url(f"{request.url}&%24deltatoken=latest")
        _items, links[name] = _round(latest)
    return links


def entra_changes(client: Any, links: dict[str, str]) -> EntraChanges:
    """Follow the stored links: the groups whose members changed, the users who changed, and
    the next links. DeltaExpired when Graph no longer knows a link."""
    changes = EntraChanges()
    group_items, changes.links["groups"] = _round(client.groups.delta.with_url(links["groups"]))
    for group in group_items:
        if group.get("members@delta"):
            changes.changed_groups.add(str(group["id"]))
    user_items, changes.links["users"] = _round(client.users.delta.with_url(links["users"]))
    changes.changed_users = {str(user["id"]) for user in user_items}
    return changes


def _round(builder: Any) -> tuple[list[dict[str, Any]], str]:
    """Every page of a delta round from the builder's URL (JSON, as all_pages_json reads it):
    the changed objects and the round's deltaLink."""
    adapter = builder.request_adapter
    errors: dict[str, Any] = {"XXX": ODataError}
    items: list[dict[str, Any]] = []
    request = builder.to_get_request_information()
    while True:
        try:
            body = run_graph(adapter.send_primitive_async(request, "bytes", errors))
        except PermanentError as error:
            if error.code in EXPIRED_CODES:
                raise DeltaExpired from error
            raise
        page = json.loads(body or b"{}")
        items.extend(page.get("value") or [])
        following = str(page.get("@odata.nextLink") or "")
        if not following:
            return items, _on_graph(adapter, str(page.get("@odata.deltaLink") or ""))
        request = builder.with_url(_on_graph(adapter, following)).to_get_request_information()


def _on_graph(adapter: Any, link: str) -> str:
    """A link Graph gave, refused unless it is on Graph's own host (as all_pages_json does)."""
    if not link.startswith(str(adapter.base_url).rstrip("/") + "/"):
        raise PermanentError(
            Message(
                gettext_noop(
                    "Graph sent a delta link on another host; the wizard does not follow it."
                )
            ),
            code="graph_next_link_elsewhere",
        )
    return link
