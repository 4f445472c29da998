"""The sandbox Graph's delta queries on groups and users through msgraph-sdk: "sync from now",
members@delta with @removed, changed and deleted users, pages, and an expired delta link."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph.generated.groups.delta.delta_request_builder import (
    DeltaRequestBuilder as GroupsDelta,
)
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.user import User
from msgraph.generated.users.delta.delta_request_builder import DeltaRequestBuilder as UsersDelta

from sandbox.entra import delta
from sandbox.server import ENTRA_DOMAIN, Sandbox
from tests.flows import user_runs
from tests.sandbox.entra_graph import add_member, create_user, graph_client, remove_member, run

directory_admin = user_runs.directory_admin


def _groups_from_now(client: Any, group_ids: list[str]) -> Any:
    query = GroupsDelta.DeltaRequestBuilderGetQueryParameters(
        filter=" or ".join(f"id eq '{group_id}'" for group_id in group_ids), select=["members"]
    )
    request = client.groups.delta.to_get_request_information(
        RequestConfiguration(query_parameters=query)
    )
    request.path_parameters["baseurl"] = client.request_adapter.base_url
    return client.groups.delta.with_url(f"{request.url}&%24deltatoken=latest")


def _users_from_now(client: Any) -> Any:
    query = UsersDelta.DeltaRequestBuilderGetQueryParameters(
        select=["userPrincipalName", "surname"]
    )
    request = client.users.delta.to_get_request_information(
        RequestConfiguration(query_parameters=query)
    )
    request.path_parameters["baseurl"] = client.request_adapter.base_url
    return client.users.delta.with_url(f"{request.url}&%24deltatoken=latest")


def test_it_tells_member_changes_of_the_filtered_groups_only_since_the_link(
    sandbox: Sandbox, directory_admin: Any
) -> None:
    tenant = sandbox.apps["entra"].tenant
    tracked = tenant.add_group(f"Tracked {uuid.uuid4().hex[:6]}", [])
    other = tenant.add_group(f"Other {uuid.uuid4().hex[:6]}", [])
    alice, bob = list(tenant.users)[:2]
    client = graph_client(sandbox.endpoints)

    async def scenario() -> tuple[Any, Any, Any]:
        await add_member(directory_admin, tracked, alice)
        start = await _groups_from_now(client, [tracked]).get()
        await add_member(directory_admin, tracked, bob)
        await remove_member(directory_admin, tracked, alice)
        await add_member(directory_admin, other, alice)
        changes = await client.groups.delta.with_url(start.odata_delta_link).get()
        quiet = await client.groups.delta.with_url(changes.odata_delta_link).get()
        return start, changes, quiet

    start, changes, quiet = run(scenario)

    assert start.value == [] and start.odata_next_link is None
    (group,) = changes.value
    assert group.id == tracked
    # The SDK reads the untyped members@delta entries itself (ids come out as UUIDs).
    members = {str(entry["id"]): entry for entry in group.additional_data["members@delta"]}
    assert members[bob]["@odata.type"] == "#microsoft.graph.user"
    assert "@removed" not in members[bob]
    assert members[alice]["@removed"] == {"reason": "deleted"}
    assert quiet.value == [] and quiet.odata_delta_link


def test_a_first_round_lists_every_member_in_pages_then_gives_a_delta_link(
    sandbox: Sandbox,
) -> None:
    tenant = sandbox.apps["entra"].tenant
    users = list(tenant.users)
    group_ids = [tenant.add_group(f"Big {n} {uuid.uuid4().hex[:6]}", users) for n in range(3)]
    client = graph_client(sandbox.endpoints)
    query = GroupsDelta.DeltaRequestBuilderGetQueryParameters(
        filter=" or ".join(f"id eq '{group_id}'" for group_id in group_ids), select=["members"]
    )
    # A page size of 2 objects, so three groups take two pages.
    original = delta.DELTA_PAGE
    delta.DELTA_PAGE = 2
    try:

        async def scenario() -> list[Any]:
            pages = [await client.groups.delta.get(RequestConfiguration(query_parameters=query))]
            while pages[-1].odata_next_link:
                pages.append(await client.groups.delta.with_url(pages[-1].odata_next_link).get())
            return pages

        pages = run(scenario)
    finally:
        delta.DELTA_PAGE = original

    assert len(pages) == 2
    assert pages[0].odata_delta_link is None and pages[-1].odata_delta_link
    listed = [group for page in pages for group in page.value]
    assert sorted(group.id for group in listed) == sorted(group_ids)
    assert all(len(group.additional_data["members@delta"]) == len(users) for group in listed)


def test_it_tells_changed_and_deleted_users(sandbox: Sandbox, directory_admin: Any) -> None:
    client = graph_client(sandbox.endpoints)
    stamp = uuid.uuid4().hex[:6]

    async def scenario() -> tuple[Any, str, str]:
        changed = await create_user(directory_admin, f"d.{stamp}@{ENTRA_DOMAIN}", "Dee", "Old")
        gone = await create_user(directory_admin, f"g.{stamp}@{ENTRA_DOMAIN}", "Gee", "Gone")
        start = await _users_from_now(client).get()
        await directory_admin.users.by_user_id(changed).patch(User(surname="New"))
        await directory_admin.users.by_user_id(gone).delete()
        return await client.users.delta.with_url(start.odata_delta_link).get(), changed, gone

    changes, changed, gone = run(scenario)
    # The seeded directory is shared: other tests count its users.
    run(lambda: directory_admin.users.by_user_id(changed).delete())

    by_id = {user.id: user for user in changes.value}
    assert set(by_id) == {changed, gone}
    assert by_id[changed].surname == "New"
    assert by_id[gone].additional_data["@removed"] == {"reason": "changed"}


def test_an_expired_delta_link_is_400_sync_state_not_found(sandbox: Sandbox) -> None:
    client = graph_client(sandbox.endpoints)
    start = run(lambda: _users_from_now(client).get())
    sandbox.apps["entra"].tenant.delta_log.forget()

    with pytest.raises(ODataError) as raised:
        run(lambda: client.users.delta.with_url(start.odata_delta_link).get())

    assert raised.value.response_status_code == 400
    assert raised.value.error.code == "syncStateNotFound"


def test_a_delta_filter_on_anything_but_ids_is_unsupported(sandbox: Sandbox) -> None:
    client = graph_client(sandbox.endpoints)
    query = UsersDelta.DeltaRequestBuilderGetQueryParameters(filter="startswith(mail,'a')")

    with pytest.raises(ODataError) as raised:
        run(lambda: client.users.delta.get(RequestConfiguration(query_parameters=query)))

    assert raised.value.response_status_code == 400
    assert raised.value.error.code == "Request_UnsupportedQuery"
