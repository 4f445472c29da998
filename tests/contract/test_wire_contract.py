"""The contract check can fail: an exchange Graph, Okta or botocore's models don't define breaks
it, and one they do define passes."""

from __future__ import annotations

from typing import Any

from sandbox.wire_log import Exchange
from tests.contract.aws_contract import check_aws
from tests.contract.graph_contract import check_graph
from tests.contract.okta_contract import check_okta
from tests.contract.wire_check import check_exchanges

APP_ID = "c4b6243a-16f5-40c7-942b-d1be6c869fb2"
SP_ID = "0bc50395-fb29-46a9-afca-810c2a692222"


def graph(
    method: str,
    path: str,
    *,
    query: dict[str, list[str]] | None = None,
    request: Any = None,
    status: int = 200,
    answer: Any = None,
) -> Exchange:
    return Exchange(
        "entra", method, path, query or {}, {}, request, status, answer, "application/json"
    )


def okta(method: str, path: str, *, request: Any = None, status: int = 200, answer: Any = None):
    return Exchange("okta", method, path, {}, {}, request, status, answer, "application/json")


def aws(operation: str, answer: Any, status: int = 200) -> Exchange:
    return Exchange(
        "aws", "", "", {}, {}, None, status, answer, "application/x-amz-json-1.1", operation
    )


def whys(exchange: Exchange, check: Any) -> list[str]:
    violations, _ = check(exchange)
    return [f"{violation.field}: {violation.why}" for violation in violations]


def test_it_accepts_what_graph_defines() -> None:
    patch = graph(
        "PATCH",
        f"/v1.0/applications/{APP_ID}",
        request={
            "@odata.type": "#microsoft.graph.application",
            "identifierUris": ["https://signin.aws.amazon.com/saml#connect"],
            "web": {"redirectUris": ["https://signin.aws.amazon.com/saml"]},
        },
        status=204,
    )
    members = graph(
        "GET",
        "/v1.0/groups/b71da97f-eca0-51da-8d28-423bf738b703/transitiveMembers/microsoft.graph.user",
        query={"$count": ["true"], "$select": ["id,userPrincipalName"]},
        answer={
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users",
            "@odata.count": 1,
            "value": [{"id": SP_ID, "userPrincipalName": "ren@contoso.example"}],
        },
    )
    link = graph(
        "POST",
        f"/v1.0/servicePrincipals/{SP_ID}/claimsMappingPolicies/$ref",
        request={"@odata.id": "https://graph.microsoft.com/v1.0/policies/claimsMappingPolicies/x"},
        status=204,
    )
    token = graph("POST", "/tenant/oauth2/v2.0/token", answer={"access_token": "x"})

    assert whys(patch, check_graph) == []
    assert whys(members, check_graph) == []
    assert whys(link, check_graph) == []
    assert check_graph(token) == ([], False), "the token endpoint is allow-listed, not Graph"


def test_it_fails_an_invented_graph_path() -> None:
    invented = graph("GET", f"/v1.0/servicePrincipals/{SP_ID}/samlSettings")

    assert whys(invented, check_graph) == ["path: no msgraph-sdk request builder has this URL"]


def test_it_fails_a_method_a_query_option_or_a_queried_property_graph_does_not_declare() -> None:
    put = graph("PUT", f"/v1.0/applications/{APP_ID}", request={}, status=204)
    count = graph("GET", f"/v1.0/applications/{APP_ID}", query={"$count": ["true"]}, answer={})

    select = graph(
        "GET", "/v1.0/users", query={"$select": ["id,userPrincipalName,role"]}, answer={"value": []}
    )

    lookup = graph(
        "GET",
        "/v1.0/applications",
        query={"$filter": ["identifierUris/any(uri:uri eq 'x') and samlUrl eq 'y'"]},
        answer={"value": []},
    )

    assert whys(select, check_graph) == ["query $select role: User has no such property"]
    assert whys(lookup, check_graph) == ["query $filter samlUrl: Application has no such property"]
    assert whys(put, check_graph)[0].startswith("method: ")
    assert whys(count, check_graph) == [
        "query $count: not an option of "
        "{+baseurl}/applications/{application%2Did}{?%24expand,%24select}"
    ]


def test_it_fails_an_invented_property_in_a_graph_request_body() -> None:
    # Graph keeps appRoles on the application; the service principal's samlSettings is invented.
    patch = graph(
        "PATCH",
        f"/v1.0/servicePrincipals/{SP_ID}",
        request={"preferredSingleSignOnMode": "saml", "samlSettings": {"relayState": "x"}},
        status=204,
    )

    assert whys(patch, check_graph) == [
        "request.samlSettings: ServicePrincipal has no such property"
    ]


def test_it_fails_an_invented_or_mistyped_field_in_a_graph_answer() -> None:
    answer = graph(
        "GET",
        "/v1.0/applications",
        answer={
            "value": [
                {
                    "id": APP_ID,
                    "appRoles": [{"id": "not-a-guid", "isEnabled": "yes"}],
                    "web": {"redirectUris": [], "relayState": "x"},
                }
            ]
        },
    )

    assert whys(answer, check_graph) == [
        "answer.value[0].appRoles[0].id: 'not-a-guid' is not a GUID",
        "answer.value[0].appRoles[0].isEnabled: expected a boolean, got string",
        "answer.value[0].web.relayState: WebApplication has no such property",
    ]


def test_it_fails_a_graph_error_that_is_not_an_odata_error() -> None:
    error = graph("GET", f"/v1.0/applications/{APP_ID}", status=404, answer={"message": "gone"})

    assert whys(error, check_graph) == ["answer.message: ODataError has no such property"]


def test_it_accepts_what_okta_defines_and_the_oin_app_settings() -> None:
    create = okta(
        "POST",
        "/api/v1/apps",
        request={
            "name": "amazon_aws",
            "label": "Amazon Connect",
            "signOnMode": "SAML_2_0",
            "settings": {"app": {"loginURL": "https://console.aws.amazon.com"}},
        },
        answer={"id": "0oa1", "name": "amazon_aws", "signOnMode": "SAML_2_0", "status": "ACTIVE"},
    )

    assert whys(create, check_okta) == []


def test_it_fails_an_invented_okta_path_and_method() -> None:
    invented = okta("GET", "/api/v1/apps/0oa1/provisioning")
    wrong_method = okta("PATCH", "/api/v1/apps/0oa1", request={})

    assert whys(invented, check_okta) == ["path: no okta SDK operation has this path"]
    assert whys(wrong_method, check_okta) == ["method: /api/v1/apps/{appId} has no PATCH"]


def test_it_fails_an_invented_property_in_an_okta_request_body() -> None:
    assign = okta(
        "POST",
        "/api/v1/apps/0oa1/users",
        request={"id": "00u1", "scope": "USER", "roles": ["x"]},
        answer={"id": "00u1", "scope": "USER"},
    )

    assert whys(assign, check_okta) == ["request.roles: AppUserAssignRequest has no such property"]


def test_it_fails_an_invented_or_mistyped_field_in_an_okta_answer() -> None:
    app = okta(
        "GET",
        "/api/v1/apps/0oa1",
        answer={
            "id": "0oa1",
            "signOnMode": "SAML_2_0",
            "status": "RUNNING",
            "settings": {"manualProvisioning": False, "provisioning": {"enabled": True}},
        },
    )

    assert sorted(whys(app, check_okta)) == [
        "answer.settings.provisioning: SamlApplicationSettings has no such property",
        "answer.status: 'RUNNING' is not a member of ApplicationLifecycleStatus",
    ]


def test_it_accepts_an_aws_answer_as_botocore_models_it() -> None:
    created = aws("connect:CreateUser", {"UserId": "u-1", "UserArn": "arn:aws:connect:::x"})

    assert whys(created, check_aws) == []


def test_it_fails_a_wrong_type_an_unknown_member_or_value_in_an_aws_answer() -> None:
    mistyped = aws("connect:CreateUser", {"UserId": 7, "UserArn": "arn"})
    unknown = aws("connect:CreateUser", {"UserId": "u-1", "Username": "ren"})
    nested = aws(
        "servicequotas:GetServiceQuota",
        {"Quota": {"QuotaCode": "L-1", "Value": "10", "QuotaAppliedAtLevel": "INSTANCE"}},
    )

    assert whys(mistyped, check_aws) == ["answer.UserId: expected a string (UserId), got number"]
    assert whys(unknown, check_aws) == ["answer.Username: CreateUserResponse has no member"]
    assert whys(nested, check_aws) == [
        "answer.Quota.Value: expected a number (QuotaValue), got string",
        "answer.Quota.QuotaAppliedAtLevel: 'INSTANCE' is not one of AppliedLevelEnum's values",
    ]


def test_it_fails_an_aws_error_the_operation_does_not_declare() -> None:
    error = aws("connect:CreateUser", {"__type": "NoSuchUserException", "message": "x"}, 400)

    assert whys(error, check_aws) == [
        "answer.__type: 'NoSuchUserException' is not an error of CreateUser"
    ]


def test_it_counts_requests_and_answers_and_leaves_allow_listed_ones_unchecked() -> None:
    report = check_exchanges(
        [
            graph("GET", f"/v1.0/applications/{APP_ID}", answer={"id": APP_ID}),
            graph("POST", "/tenant/oauth2/v2.0/token"),
            okta("GET", "/api/v1/apps/0oa1", answer={"id": "0oa1", "bogus": 1}),
            aws("connect:CreateUser", {"UserId": "u-1"}),
        ]
    )

    assert report.requests == {"entra": 1, "okta": 1}
    assert report.answers == {"entra": 1, "okta": 1, "aws": 1}
    assert report.not_checked == {"entra": 1}
    assert [str(v) for v in report.violations] == [
        "GET /api/v1/apps/0oa1 -> 200  answer.bogus: Application has no such property"
    ]


SIMULATION = (
    '<SimulatePrincipalPolicyResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">'
    "<SimulatePrincipalPolicyResult><IsTruncated>false</IsTruncated><EvaluationResults>"
    "<member><EvalActionName>connect:GetFederationToken</EvalActionName>"
    "<EvalResourceName>*</EvalResourceName><EvalDecision>{decision}</EvalDecision>"
    "<MatchedStatements/>{extra}</member>"
    "</EvaluationResults></SimulatePrincipalPolicyResult>"
    "<ResponseMetadata><RequestId>r-1</RequestId></ResponseMetadata>"
    "</SimulatePrincipalPolicyResponse>"
)


def test_it_checks_an_xml_answer_of_the_query_protocol_too() -> None:
    def simulation(decision: str, extra: str = "") -> Exchange:
        return Exchange(
            "aws",
            "",
            "",
            {},
            {},
            None,
            200,
            SIMULATION.format(decision=decision, extra=extra),
            "text/xml",
            "iam:SimulatePrincipalPolicy",
        )

    assert whys(simulation("allowed"), check_aws) == []
    assert whys(simulation("maybe", "<Reason>x</Reason>"), check_aws) == [
        "answer.SimulatePrincipalPolicyResult.EvaluationResults[0].EvalDecision: "
        "'maybe' is not one of PolicyEvaluationDecisionType's values",
        "answer.SimulatePrincipalPolicyResult.EvaluationResults[0].Reason: "
        "EvaluationResult has no member",
    ]


def test_it_fails_an_okta_media_type_the_operation_does_not_declare() -> None:
    def metadata(accept: str, answered: str) -> Exchange:
        return Exchange(
            "okta",
            "GET",
            "/api/v1/apps/0oa1/sso/saml/metadata",
            {"kid": ["k1"]},
            {"accept": accept},
            None,
            200,
            None,
            answered,
        )

    assert whys(metadata("text/xml", "text/xml"), check_okta) == []
    assert whys(metadata("application/xml", "application/xml"), check_okta) == [
        "header Accept: application/xml is none of application/json, text/xml",
        "answer Content-Type: application/xml is not application/json, text/xml",
    ]
