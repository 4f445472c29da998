"""The sandbox Graph's seeded users and groups through msgraph-sdk: paging, filters, search and
nested group membership."""

from __future__ import annotations

from typing import Any

import pytest
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph.generated.groups.groups_request_builder import GroupsRequestBuilder
from msgraph.generated.groups.item.transitive_members.graph_user.graph_user_request_builder import (  # noqa: E501
    GraphUserRequestBuilder,
)
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.users.users_request_builder import UsersRequestBuilder

from sandbox.directory import (
    AGENTS_GROUP,
    CONTACT_CENTRE_GROUP,
    SUPERVISORS_GROUP,
    seed_directory,
)
from sandbox.server import ENTRA_DOMAIN, Sandbox
from tests.sandbox.entra_graph import graph_client, run

PAGE_SIZE = 10


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
