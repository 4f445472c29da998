"""The sandbox Okta management API, driven only through the okta SDK."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from okta.models import (
    AddGroupRequest,
    ApplicationGroupAssignment,
    AppUserAssignRequest,
    OktaUserGroupProfile,
    SamlApplication,
)
from okta.pagination import PaginationHelper

from sandbox.directory import AGENTS_GROUP, CONTACT_CENTRE_GROUP, SUPERVISORS_GROUP
from sandbox.server import OKTA_DOMAIN, Sandbox
from tests.sandbox.okta_sdk import okta_client, send

# The shared sandbox fixture (tests/conftest.py) seeds 40 agents.
DIRECTORY_AGENTS = 40
SEEDED_ADMINS = 3
AWKWARD_PEOPLE = 6
PROVIDER_ARN = "arn:aws:iam::123456789012:saml-provider/Okta"


def aws_app_body(label: str, **app_settings: Any) -> dict[str, Any]:
    return {
        "name": "amazon_aws",
        "label": label,
        "signOnMode": "SAML_2_0",
        "settings": {
            "app": {
                "awsEnvironmentType": "aws.amazon",
                "loginURL": "https://console.aws.amazon.com/ec2/home",
                "identityProviderArn": PROVIDER_ARN,
                "sessionDuration": 3600,
                "joinAllRoles": False,
                **app_settings,
            },
            "signOn": {
                "defaultRelayState": "https://ap-northeast-1.console.aws.amazon.com/connect/federate/i-1"
            },
        },
    }


def test_it_creates_reads_lists_and_replaces_an_aws_app(sandbox: Sandbox) -> None:
    async def scenario() -> None:
        async with okta_client(sandbox.endpoints) as client:
            label = f"CRUD {uuid.uuid4().hex}"
            created, error = await send(client, "POST", "/api/v1/apps", aws_app_body(label))
            assert error is None
            app, response, error = await client.get_application(created["id"])
            assert error is None
            assert isinstance(app, SamlApplication)
            assert app.label == label
            assert app.status.value == "ACTIVE"
            assert app.credentials.signing.kid == created["credentials"]["signing"]["kid"]
            assert app.settings.sign_on.default_relay_state.endswith("/connect/federate/i-1")
            # The SDK's model has no settings.app: the raw body carries it.
            raw = json.loads(response.raw_data)
            assert raw["name"] == "amazon_aws"
            assert raw["settings"]["app"]["identityProviderArn"] == PROVIDER_ARN

            listed, _, error = await client.list_applications(q=label[:12].lower())
            assert error is None
            assert [a.id for a in listed] == [created["id"]]
            by_kid, _, _ = await client.list_applications(
                filter=f'credentials.signing.kid eq "{app.credentials.signing.kid}"'
            )
            assert [a.id for a in by_kid] == [created["id"]]

            replaced, error = await send(
                client,
                "PUT",
                f"/api/v1/apps/{created['id']}",
                aws_app_body(f"{label} renamed", sessionDuration=7200),
            )
            assert error is None
            assert replaced["credentials"]["signing"]["kid"] == app.credentials.signing.kid
            again, response, _ = await client.get_application(created["id"])
            assert again.label == f"{label} renamed"
            assert json.loads(response.raw_data)["settings"]["app"]["sessionDuration"] == 7200

    asyncio.run(scenario())


def test_it_refuses_an_app_setting_amazon_aws_does_not_have(sandbox: Sandbox) -> None:
    async def scenario() -> None:
        async with okta_client(sandbox.endpoints) as client:
            created, error = await send(
                client, "POST", "/api/v1/apps", aws_app_body("Typo", loginUrl="https://x")
            )
            assert created is None
            assert error.status == 400
            assert error.error_code == "E0000001"
            assert "settings.app.loginUrl" in error.message

    asyncio.run(scenario())


def test_it_deletes_an_app_only_once_deactivated(sandbox: Sandbox) -> None:
    async def scenario() -> None:
        async with okta_client(sandbox.endpoints) as client:
            created, _ = await send(client, "POST", "/api/v1/apps", aws_app_body("Connect delete"))
            *_, error = await client.delete_application(created["id"])
            assert error.status == 403
            assert error.error_code == "E0000056"

            *_, error = await client.deactivate_application(created["id"])
            assert error is None
            app, _, _ = await client.get_application(created["id"])
            assert app.status.value == "INACTIVE"
            # Calls without a response model answer (response, error) when they fail and
            # (None, response, None) when they succeed.
            deleted = await client.delete_application(created["id"])
            assert deleted[-1] is None
            assert deleted[-2].status_code == 204

            _, _, error = await client.get_application(created["id"])
            assert error.status == 404
            assert error.error_code == "E0000007"

    asyncio.run(scenario())


def test_it_activates_an_app_created_inactive(sandbox: Sandbox) -> None:
    async def scenario() -> None:
        async with okta_client(sandbox.endpoints) as client:
            created, _ = await send(
                client, "POST", "/api/v1/apps?activate=false", aws_app_body("Connect later")
            )
            assert created["status"] == "INACTIVE"
            *_, error = await client.activate_application(created["id"])
            assert error is None
            app, _, _ = await client.get_application(created["id"])
            assert app.status.value == "ACTIVE"

    asyncio.run(scenario())


def test_it_pages_users_through_link_headers(sandbox: Sandbox) -> None:
    async def scenario() -> list[str]:
        async with okta_client(sandbox.endpoints) as client:
            ids: list[str] = []
            cursor = None
            pages = 0
            while True:
                users, response, error = await client.list_users(limit=10, after=cursor)
                assert error is None
                ids += [user.id for user in users]
                pages += 1
                cursor = PaginationHelper.extract_next_cursor(response.headers)
                if cursor is None:
                    break
            assert pages == 5
            return ids

    ids = asyncio.run(scenario())
    assert len(ids) == SEEDED_ADMINS + DIRECTORY_AGENTS + AWKWARD_PEOPLE
    assert len(set(ids)) == len(ids)


def test_it_finds_users_by_login_search_and_filter(sandbox: Sandbox) -> None:
    async def scenario() -> None:
        async with okta_client(sandbox.endpoints) as client:
            user, _, error = await client.get_user(f"keiko.mcdonald@{OKTA_DOMAIN}")
            assert error is None
            assert user.profile.login == f"Keiko.McDonald@{OKTA_DOMAIN}"

            shared, _, _ = await client.list_users(
                search=f'profile.email eq "shared.mailbox@{OKTA_DOMAIN}"'
            )
            assert sorted(u.profile.first_name for u in shared) == ["Daichi", "Daiki"]

            exact, _, _ = await client.list_users(
                filter=f'profile.login eq "madonna@{OKTA_DOMAIN}"'
            )
            assert [u.profile.last_name for u in exact] == [None]

            _, _, error = await client.list_users(search="profile.login is madonna")
            assert error.status == 400

    asyncio.run(scenario())


def test_it_flattens_nested_groups_into_members(sandbox: Sandbox) -> None:
    async def scenario() -> None:
        async with okta_client(sandbox.endpoints) as client:
            sizes = {}
            for name in (AGENTS_GROUP, SUPERVISORS_GROUP, CONTACT_CENTRE_GROUP):
                groups, _, error = await client.list_groups(q=name)
                assert error is None
                group = next(g for g in groups if g.profile.actual_instance.name == name)
                members, _, error = await client.list_group_users(group.id)
                assert error is None
                sizes[name] = {m.id for m in members}
            assert sizes[CONTACT_CENTRE_GROUP] == sizes[AGENTS_GROUP] | sizes[SUPERVISORS_GROUP]
            assert len(sizes[SUPERVISORS_GROUP]) == DIRECTORY_AGENTS // 10

    asyncio.run(scenario())


def test_it_creates_a_role_group_and_adds_members(sandbox: Sandbox) -> None:
    name = f"aws_123456789012_ConnectAgentRole{uuid.uuid4().hex[:8]}"

    async def scenario() -> None:
        async with okta_client(sandbox.endpoints) as client:
            group, _, error = await client.add_group(
                AddGroupRequest(profile=OktaUserGroupProfile(name=name, description="role group"))
            )
            assert error is None
            user, _, _ = await client.get_user(f"madonna@{OKTA_DOMAIN}")
            *_, error = await client.assign_user_to_group(group.id, user.id)
            assert error is None
            members, _, _ = await client.list_group_users(group.id)
            assert [m.id for m in members] == [user.id]

            _, _, error = await client.add_group(
                AddGroupRequest(profile=OktaUserGroupProfile(name=name))
            )
            assert error.error_code == "E0000001"

    asyncio.run(scenario())


def test_it_counts_a_groups_members_and_apps_only_when_asked_for_stats(sandbox: Sandbox) -> None:
    """expand=stats embeds _embedded.stats (okta-management-openapi-spec, listGroups `expand`);
    without it a group has no _embedded at all."""
    name = f"Stats {uuid.uuid4().hex[:8]}"
    org = sandbox.apps["okta"].org
    people = [user.id for user in org.users.values() if ".agent" in user.login][:4]

    async def scenario() -> None:
        async with okta_client(sandbox.endpoints) as client:
            group, _, _ = await client.add_group(
                AddGroupRequest(profile=OktaUserGroupProfile(name=name))
            )
            for user_id in people:
                *_, error = await client.assign_user_to_group(group.id, user_id)
                assert error is None
            created, _ = await send(client, "POST", "/api/v1/apps", aws_app_body("Stats app"))
            await client.assign_group_to_application(
                created["id"], group.id, ApplicationGroupAssignment(priority=0)
            )

            listed, response, error = await client.list_groups(q=name, expand="stats")
            assert error is None
            assert [g.id for g in listed] == [group.id]
            stats = listed[0].embedded.stats
            assert stats.users_count == len(people) == 4
            assert stats.apps_count == 1
            assert stats.group_push_mappings_count == 0

            plain, response, error = await client.list_groups(q=name)
            assert error is None
            assert plain[0].embedded is None
            assert "_embedded" not in json.loads(response.raw_data)[0]

    asyncio.run(scenario())


def test_it_assigns_people_and_groups_to_an_app(sandbox: Sandbox) -> None:
    async def scenario() -> None:
        async with okta_client(sandbox.endpoints) as client:
            created, _ = await send(client, "POST", "/api/v1/apps", aws_app_body("Connect assign"))
            app_id = created["id"]
            person, _, _ = await client.get_user(f"madonna@{OKTA_DOMAIN}")
            assigned, _, error = await client.assign_user_to_application(
                app_id, AppUserAssignRequest(id=person.id, scope="USER")
            )
            assert error is None
            assert assigned.scope == "USER"
            assert assigned.credentials.user_name == f"madonna@{OKTA_DOMAIN}"

            groups, _, _ = await client.list_groups(q=SUPERVISORS_GROUP)
            group_id = groups[0].id
            assignment, _, error = await client.assign_group_to_application(
                app_id, group_id, ApplicationGroupAssignment(priority=0)
            )
            assert error is None
            assert assignment.id == group_id
            listed, _, _ = await client.list_application_group_assignments(app_id)
            assert [a.id for a in listed] == [group_id]

            app_users, _, error = await client.list_application_users(app_id)
            assert error is None
            scopes = {u.id: u.scope for u in app_users}
            assert scopes[person.id] == "USER"
            assert list(scopes.values()).count("GROUP") == DIRECTORY_AGENTS // 10

            one, _, error = await client.get_application_user(app_id, person.id)
            assert error is None
            assert one.id == person.id

            *_, error = await client.unassign_user_from_application(app_id, person.id)
            assert error is None
            _, _, error = await client.get_application_user(app_id, person.id)
            assert error.status == 404
            *_, error = await client.unassign_application_from_group(app_id, group_id)
            assert error is None
            assert (await client.list_application_users(app_id))[0] == []

    asyncio.run(scenario())


def test_it_refuses_saml_roles_before_they_are_downloaded(sandbox: Sandbox) -> None:
    async def scenario() -> None:
        async with okta_client(sandbox.endpoints) as client:
            created, _ = await send(client, "POST", "/api/v1/apps", aws_app_body("Connect roles"))
            person, _, _ = await client.get_user(f"madonna@{OKTA_DOMAIN}")
            _, _, error = await client.assign_user_to_application(
                created["id"],
                AppUserAssignRequest(
                    id=person.id,
                    scope="USER",
                    profile={"role": "ConnectAgent", "samlRoles": ["ConnectAgent"]},
                ),
            )
            assert error.status == 400
            assert error.error_code == "E0000001"
            assert "samlRoles: Does not match required enum values" in error.message

    asyncio.run(scenario())


def test_it_refuses_a_wrong_token(sandbox: Sandbox) -> None:
    async def scenario() -> None:
        async with okta_client(sandbox.endpoints, token="00wrong-token") as client:
            apps, _, error = await client.list_applications()
            assert apps is None
            assert error.status == 401
            assert error.error_code == "E0000011"
            _, _, error = await client.list_users()
            assert error.error_code == "E0000011"

    asyncio.run(scenario())


def test_it_reports_the_token_owner_as_super_admin(sandbox: Sandbox) -> None:
    async def scenario() -> None:
        async with okta_client(sandbox.endpoints) as client:
            me, _, error = await client.get_user("me")
            assert error is None
            roles, _, error = await client.list_assigned_roles_for_user(me.id)
            assert error is None
            assert [r.actual_instance.type.value for r in roles] == ["SUPER_ADMIN"]
            agent, _, _ = await client.get_user(f"madonna@{OKTA_DOMAIN}")
            assert (await client.list_assigned_roles_for_user(agent.id))[0] == []

    asyncio.run(scenario())


def test_it_switches_the_signing_key_to_a_generated_key_credential(sandbox: Sandbox) -> None:
    async def scenario() -> None:
        async with okta_client(sandbox.endpoints) as client:
            created, _ = await send(
                client, "POST", "/api/v1/apps", aws_app_body(f"keys {uuid.uuid4().hex}")
            )
            path = f"/api/v1/apps/{created['id']}"
            old_kid = created["credentials"]["signing"]["kid"]
            too_short, error = await send(
                client, "POST", f"{path}/credentials/keys/generate?validityYears=1"
            )
            assert error is not None and error.status == 400
            new_key, error = await send(
                client, "POST", f"{path}/credentials/keys/generate?validityYears=2"
            )
            assert error is None
            # The SDK's JsonWebKey model reads the key credential Okta serves.
            key, _, error = await client.get_application_key(created["id"], new_key["kid"])
            assert error is None and key.x5c == new_key["x5c"]
            unknown = {**created, "credentials": {"signing": {"kid": "not-a-key"}}}
            _, error = await send(client, "PUT", path, unknown)
            assert error is not None and error.status == 400
            body = {**created, "credentials": {"signing": {"kid": new_key["kid"]}}}
            replaced, error = await send(client, "PUT", path, body)
            assert error is None
            assert replaced["credentials"]["signing"]["kid"] == new_key["kid"]
            keys, _ = await send(client, "GET", f"{path}/credentials/keys")
            assert {k["kid"] for k in keys} == {old_kid, new_key["kid"]}

    asyncio.run(scenario())
    app = next(a for a in sandbox.apps["okta"].org.apps.values() if a.label.startswith("keys "))
    assert app.certificate.cert_base64 == app.keys[app.kid].certificate.cert_base64


def test_it_creates_updates_groups_and_deletes_a_user_as_the_users_api_documents(
    sandbox: Sandbox,
) -> None:
    login = f"new.hire.{uuid.uuid4().hex[:6]}@{OKTA_DOMAIN}"
    profile = {"firstName": "New", "lastName": "Hire", "email": login, "login": login}

    async def scenario() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        async with okta_client(sandbox.endpoints) as client:
            made, error = await send(
                client, "POST", "/api/v1/users?activate=true", {"profile": profile}
            )
            assert error is None, error
            seen["status"] = made["status"]
            _, error = await send(
                client, "POST", "/api/v1/users?activate=true", {"profile": profile}
            )
            seen["duplicate"] = (error.error_code, error.error_causes)
            changed, error = await send(
                client, "POST", f"/api/v1/users/{made['id']}", {"profile": {"lastName": "Hired"}}
            )
            assert error is None, error
            seen["profile"] = changed["profile"]
            groups, _, _ = await client.list_groups(q=AGENTS_GROUP)
            group_id = groups[0].id
            _, error = await send(client, "PUT", f"/api/v1/groups/{group_id}/users/{made['id']}")
            members, _ = await send(client, "GET", f"/api/v1/groups/{group_id}/users?limit=200")
            seen["member"] = made["id"] in {member["id"] for member in members}
            await send(client, "DELETE", f"/api/v1/groups/{group_id}/users/{made['id']}")
            members, _ = await send(client, "GET", f"/api/v1/groups/{group_id}/users?limit=200")
            seen["left"] = made["id"] not in {member["id"] for member in members}
            for _time in range(2):  # deactivate, then delete
                _, error = await send(client, "DELETE", f"/api/v1/users/{made['id']}")
                assert error is None, error
            _, error = await send(client, "GET", f"/api/v1/users/{made['id']}")
            seen["gone"] = error.error_code
            _, error = await send(client, "POST", "/api/v1/users/00uunknown", {"profile": {}})
            seen["unknown"] = error.error_code
        return seen

    seen = asyncio.run(scenario())

    assert seen["status"] == "ACTIVE"
    assert seen["duplicate"][0] == "E0000001"
    assert "already exists in the current organization" in str(seen["duplicate"][1])
    assert (seen["profile"]["lastName"], seen["profile"]["firstName"]) == ("Hired", "New")
    assert seen["member"] and seen["left"]
    assert (seen["gone"], seen["unknown"]) == ("E0000007", "E0000007")


def custom_saml_body(label: str, *statements: dict[str, Any]) -> dict[str, Any]:
    return {
        "label": label,
        "signOnMode": "SAML_2_0",
        "settings": {
            "signOn": {
                "ssoAcsUrl": "https://signin.aws.amazon.com/saml",
                "audience": "urn:amazon:webservices",
                "defaultRelayState": "https://ap-northeast-1.console.aws.amazon.com/connect/federate/i-1",
                "attributeStatements": list(statements),
            }
        },
    }


def test_it_creates_a_custom_saml_app_with_attribute_statements(sandbox: Sandbox) -> None:
    role = {
        "type": "EXPRESSION",
        "name": "https://aws.amazon.com/SAML/Attributes/Role",
        "values": [f'"arn:aws:iam::123456789012:role/Connect,{PROVIDER_ARN}"'],
    }

    async def scenario() -> None:
        async with okta_client(sandbox.endpoints) as client:
            label = f"Custom {uuid.uuid4().hex[:8]}"
            created, error = await send(
                client, "POST", "/api/v1/apps", custom_saml_body(label, role)
            )
            assert error is None, error
            assert created["name"] not in ("amazon_aws", "")
            app, response, error = await client.get_application(created["id"])
            assert error is None
            assert isinstance(app, SamlApplication)
            # The SDK's anyOf model leaves each statement's actual_instance empty: read the body.
            sign_on = json.loads(response.raw_data)["settings"]["signOn"]
            assert sign_on["attributeStatements"] == [
                {**role, "namespace": "urn:oasis:names:tc:SAML:2.0:attrname-format:unspecified"}
            ]
            assert app.settings.sign_on.sso_acs_url == "https://signin.aws.amazon.com/saml"
            twice, error = await send(
                client, "POST", "/api/v1/apps", custom_saml_body(label, role, role)
            )
            assert twice is None
            assert error.status == 400
            assert "named twice" in error.message

    asyncio.run(scenario())


def test_a_deleted_user_leaves_the_apps_they_were_assigned(sandbox: Sandbox) -> None:
    login = f"leaver.{uuid.uuid4().hex[:6]}@{OKTA_DOMAIN}"
    profile = {"firstName": "Leaving", "lastName": "Soon", "email": login, "login": login}

    async def scenario() -> tuple[Any, list[str]]:
        async with okta_client(sandbox.endpoints) as client:
            created, _ = await send(client, "POST", "/api/v1/apps", aws_app_body("Connect leaver"))
            made, error = await send(client, "POST", "/api/v1/users", {"profile": profile})
            assert error is None, error
            *_, error = await client.assign_user_to_application(
                created["id"], AppUserAssignRequest(id=made["id"], scope="USER")
            )
            assert error is None, error
            for _time in range(2):  # deactivate, then delete
                await send(client, "DELETE", f"/api/v1/users/{made['id']}")
            app_users, _, error = await client.list_application_users(created["id"])
            return error, [user.id for user in app_users or []]

    error, listed = asyncio.run(scenario())

    assert error is None
    assert listed == []
