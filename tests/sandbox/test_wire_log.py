"""The sandbox's wire log: off unless turned on; then it keeps each Okta and Graph exchange as
sent and answered (without credentials) and each answer of the sandbox's own AWS operations."""

from __future__ import annotations

import uuid

import httpx

from sandbox.server import OKTA_TOKEN, Sandbox
from tests.sandbox.aws_clients import aws_client


def okta_http(sandbox: Sandbox) -> httpx.Client:
    return httpx.Client(
        base_url=sandbox.endpoints["okta_org_url"],
        verify=sandbox.endpoints["ca_bundle"],
        headers={"Authorization": f"SSWS {OKTA_TOKEN}", "Accept": "application/json"},
    )


def test_it_records_nothing_until_a_test_turns_it_on(sandbox: Sandbox) -> None:
    with okta_http(sandbox) as okta:
        okta.get("/api/v1/users/me").raise_for_status()
    sandbox.wire_log.start()
    recorded = sandbox.wire_log.stop()

    assert recorded == []
    assert not sandbox.wire_log.enabled


def test_it_records_an_okta_exchange_as_sent_and_answered(sandbox: Sandbox) -> None:
    name = f"wire-log-{uuid.uuid4().hex[:8]}"
    sandbox.wire_log.start()
    try:
        with okta_http(sandbox) as okta:
            created = okta.post("/api/v1/groups", json={"profile": {"name": name}})
            okta.get("/api/v1/groups", params={"q": name})
    finally:
        recorded = sandbox.wire_log.stop()

    assert created.status_code == 200, created.text
    assert created.json()["profile"]["name"] == name, "the app still read the body"
    post, get = recorded
    assert (post.cloud, post.method, post.path) == ("okta", "POST", "/api/v1/groups")
    assert post.request_body == {"profile": {"name": name}}
    assert post.response_body == created.json()
    assert post.headers["authorization"] == "SSWS", "the token itself is never kept"
    assert get.query == {"q": [name]} and get.response_body[0]["profile"]["name"] == name


def test_it_records_the_answers_of_the_sandboxs_own_aws_operations(sandbox: Sandbox) -> None:
    quotas = aws_client(sandbox, "service-quotas")
    sandbox.wire_log.start()
    try:
        listed = quotas.list_service_quotas(ServiceCode="connect")
    finally:
        recorded = sandbox.wire_log.stop()

    (answer,) = recorded
    assert answer.operation == "servicequotas:ListServiceQuotas"
    assert answer.status == 200
    assert [q["QuotaCode"] for q in answer.response_body["Quotas"]] == [
        q["QuotaCode"] for q in listed["Quotas"]
    ]
