"""The sandbox Graph's seeded users and groups through msgraph-sdk: paging, filters, search and
nested group membership."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph.generated.groups.groups_request_builder import GroupsRequestBuilder
from msgraph.generated.groups.item.transitive_members.graph_user.graph_user_request_builder import (  # noqa: E501
    GraphUserRequestBuilder,
)
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.user import User
from msgraph.generated.users.users_request_builder import UsersRequestBuilder

from sandbox.directory import (
    AGENTS_GROUP,
    CONTACT_CENTRE_GROUP,
    SUPERVISORS_GROUP,
    seed_directory,
)
from sandbox.server import ENTRA_DOMAIN, Sandbox
from tests.flows import user_runs
from tests.sandbox.entra_graph import (
    add_member,
    create_user,
    graph_client,
    remove_member,
    run,
)

PAGE_SIZE = 10
directory_admin = user_runs.directory_admin


def _users_query(**parameters: Any) -> RequestConfiguration[Any]:
    return RequestConfiguration(
        query_parameters=UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(**parameters)
    )


async def _group_id(client: Any, name: str) -> str:
    query = GroupsRequestBuilder.GroupsRequestBuilderGetQueryParameters(
        filter=f"displayName eq '{name}'"
    )
    groups = await client.groups.get(
        request_configuration=RequestConfiguration(query_parameters=query)
    )
    (group,) = groups.value
    return str(group.id)


def test_it_pages_users_with_next_links(sandbox: Sandbox) -> None:
    async def scenario() -> tuple[list[int], list[str]]:
        client = graph_client(sandbox.endpoints)
        page = await client.users.get(
            request_configuration=_users_query(top=PAGE_SIZE, select=["id", "userPrincipalName"])
        )
        sizes, upns = [], []
        while True:
            sizes.append(len(page.value))
            upns.extend(user.user_principal_name for user in page.value)
            if not page.odata_next_link:
                return sizes, upns
            page = await client.users.with_url(page.odata_next_link).get()

    sizes, upns = run(scenario)
    people = seed_directory(domain=ENTRA_DOMAIN, agents=sandbox.knobs.directory_agents).people
    assert sorted(upns) == sorted(person.login for person in people)
    assert sizes[:-1] == [PAGE_SIZE] * (len(sizes) - 1)
    assert len(sizes) == -(-len(people) // PAGE_SIZE)


def test_it_filters_users_by_a_upn_with_an_apostrophe(sandbox: Sandbox) -> None:
    upn = f"conan.o'brien@{ENTRA_DOMAIN}"

    async def scenario() -> tuple[list[str], str, list[str]]:
        client = graph_client(sandbox.endpoints)
        escaped = upn.replace("'", "''")
        found = await client.users.get(
            request_configuration=_users_query(filter=f"userPrincipalName eq '{escaped}'")
        )
        by_upn = await client.users.by_user_id(upn.upper()).get()
        shared = await client.users.get(
            request_configuration=_users_query(filter=f"mail eq 'shared.mailbox@{ENTRA_DOMAIN}'")
        )
        return (
            [user.user_principal_name for user in found.value],
            by_upn.user_principal_name,
            [user.user_principal_name for user in shared.value],
        )

    found, by_upn, shared = run(scenario)
    assert found == [upn]
    assert by_upn == upn
    assert len(shared) == 2


def test_it_searches_users_only_with_eventual_consistency(sandbox: Sandbox) -> None:
    async def scenario() -> tuple[ODataError, list[str], int]:
        client = graph_client(sandbox.endpoints)
        with pytest.raises(ODataError) as refused:
            await client.users.get(request_configuration=_users_query(search='"displayName:Mori"'))
        configuration = _users_query(search='"displayName:Mori"', count=True)
        configuration.headers.add("ConsistencyLevel", "eventual")
        found = await client.users.get(request_configuration=configuration)
        return (
            refused.value,
            sorted(user.display_name for user in found.value),
            found.odata_count,
        )

    refused, names, count = run(scenario)
    assert refused.response_status_code == 400
    assert "ConsistencyLevel" in refused.error.message
    assert names == ["Daichi Mori", "Daiki Mori"]
    assert count == 2


def _transitive_users_query(*, count: bool, eventual: bool) -> RequestConfiguration[Any]:
    configuration = RequestConfiguration(
        query_parameters=GraphUserRequestBuilder.GraphUserRequestBuilderGetQueryParameters(
            count=count
        )
    )
    if eventual:
        configuration.headers.add("ConsistencyLevel", "eventual")
    return configuration


def test_it_lists_direct_and_transitive_members_of_nested_groups(sandbox: Sandbox) -> None:
    async def scenario() -> tuple[list[str], list[str], int, int]:
        client = graph_client(sandbox.endpoints)
        contact_centre = client.groups.by_group_id(await _group_id(client, CONTACT_CENTRE_GROUP))
        direct = await contact_centre.members.get()
        transitive = await contact_centre.transitive_members.get()
        only_users = await contact_centre.transitive_members.graph_user.get(
            request_configuration=_transitive_users_query(count=True, eventual=True)
        )
        agents = await client.groups.by_group_id(
            await _group_id(client, AGENTS_GROUP)
        ).members.get()
        return (
            sorted(member.display_name for member in direct.value),
            sorted(type(member).__name__ for member in transitive.value),
            len(only_users.value),
            len(agents.value),
        )

    direct, transitive_types, transitive_users, agents = run(scenario)
    people = seed_directory(domain=ENTRA_DOMAIN, agents=sandbox.knobs.directory_agents).people
    in_contact_centre = [
        person for person in people if {AGENTS_GROUP, SUPERVISORS_GROUP} & set(person.groups)
    ]
    assert direct == sorted([AGENTS_GROUP, SUPERVISORS_GROUP])
    assert transitive_types.count("Group") == 2
    assert transitive_types.count("User") == len(in_contact_centre)
    assert transitive_users == len(in_contact_centre)
    assert agents == len([person for person in people if AGENTS_GROUP in person.groups])


@pytest.mark.parametrize(("count", "eventual"), [(False, False), (True, False), (False, True)])
def test_it_serves_a_cast_of_transitive_members_only_as_an_advanced_query(
    sandbox: Sandbox, count: bool, eventual: bool
) -> None:
    # group-list-transitivemembers: an OData cast needs ConsistencyLevel: eventual and $count=true.
    async def scenario() -> ODataError:
        client = graph_client(sandbox.endpoints)
        group = client.groups.by_group_id(await _group_id(client, CONTACT_CENTRE_GROUP))
        with pytest.raises(ODataError) as refused:
            await group.transitive_members.graph_user.get(
                request_configuration=_transitive_users_query(count=count, eventual=eventual)
            )
        return refused.value

    refused = run(scenario)

    assert refused.response_status_code == 400
    assert refused.error.code == "Request_UnsupportedQuery"
    assert refused.error.message.startswith(
        "OData cast 'microsoft.graph.user' is not supported because the required parameters "
        "might be missing. Try adding $count=true query parameter and ConsistencyLevel:eventual "
        "header."
    )


def test_it_creates_updates_and_deletes_users_as_graph_documents(
    sandbox: Sandbox, directory_admin: Any
) -> None:
    upn = f"new.hire.{uuid.uuid4().hex[:6]}@{ENTRA_DOMAIN}"

    async def scenario() -> tuple[str, str | None, int, str | None, int]:
        user_id = await create_user(directory_admin, upn, "New", "Hire")
        try:
            await create_user(directory_admin, upn.upper(), "Same", "Upn")
        except ODataError as error:
            duplicate = str(error.error.message if error.error else "")
        await directory_admin.users.by_user_id(user_id).patch(User(surname="Hired"))
        changed = await directory_admin.users.by_user_id(user_id).get()
        await directory_admin.users.by_user_id(user_id).delete()
        try:
            await directory_admin.users.by_user_id(user_id).get()
        except ODataError as error:
            gone = error.response_status_code
        try:
            await graph_client(sandbox.endpoints).users.by_user_id(user_id).patch(User(surname="X"))
        except ODataError as error:
            missing = error.response_status_code
        return duplicate, changed.surname, gone, changed.user_principal_name, missing

    duplicate, surname, gone, found_upn, missing = run(scenario)

    assert "same value for property userPrincipalName already exists" in duplicate
    assert (surname, found_upn) == ("Hired", upn)
    assert gone == 404 and missing == 404


def test_it_refuses_directory_writes_without_write_permissions(sandbox: Sandbox) -> None:
    async def scenario() -> int:
        try:
            await create_user(graph_client(sandbox.endpoints), f"x@{ENTRA_DOMAIN}", "X", "Y")
        except ODataError as error:
            return int(error.response_status_code or 0)
        return 201

    assert run(scenario) == 403


def test_it_adds_and_removes_group_members_by_reference(
    sandbox: Sandbox, directory_admin: Any
) -> None:
    tenant = sandbox.apps["entra"].tenant
    group_id = tenant.add_group(f"Refs {uuid.uuid4().hex[:6]}", [])

    async def scenario() -> tuple[list[str], str, list[str], int, int]:
        user_id = await create_user(
            directory_admin, f"ref.{uuid.uuid4().hex[:6]}@{ENTRA_DOMAIN}", "Ref", "Member"
        )
        await add_member(directory_admin, group_id, user_id)
        members = await directory_admin.groups.by_group_id(group_id).members.get()
        try:
            await add_member(directory_admin, group_id, user_id)
        except ODataError as error:
            duplicate = f"{error.response_status_code} {error.error.message if error.error else ''}"
        await remove_member(directory_admin, group_id, user_id)
        after = await directory_admin.groups.by_group_id(group_id).members.get()
        codes = []
        for unknown_group, member in ((group_id, user_id), (str(uuid.uuid4()), user_id)):
            try:
                await remove_member(directory_admin, unknown_group, member)
            except ODataError as error:
                codes.append(int(error.response_status_code or 0))
        await directory_admin.users.by_user_id(user_id).delete()
        return (
            [m.id for m in members.value],
            duplicate,
            [m.id for m in after.value],
            *codes,
        )

    listed, duplicate, after, not_member, no_group = run(scenario)

    assert len(listed) == 1 and after == []
    assert duplicate == (
        "400 One or more added object references already exist for the following modified "
        "properties: 'members'."
    )
    assert (not_member, no_group) == (404, 404)
