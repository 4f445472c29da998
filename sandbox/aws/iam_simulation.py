"""IAM SimulatePrincipalPolicy for the sandbox (moto lacks it), evaluated with moto's own policy
checker over the principal's identity policies."""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import escape

from moto.iam.access_control import PermissionResult
from moto.iam.exceptions import NotFoundException
from werkzeug.wrappers import Response

from sandbox.aws.authorization import IamAccount, decide
from sandbox.aws.wire import ApiError, AwsRequest

# EvaluationResult.EvalDecision in botocore's IAM model.
DECISIONS = {
    PermissionResult.PERMITTED: "allowed",
    PermissionResult.DENIED: "explicitDeny",
    PermissionResult.NEUTRAL: "implicitDeny",
}


class IamSimulation(IamAccount):
    """Answers SimulatePrincipalPolicy for the users and roles moto keeps.

    Whether the caller may call iam:SimulatePrincipalPolicy on the source ARN is decided before,
    like every call (sandbox.aws.authorization).
    """

    def respond(self, request: AwsRequest) -> Response:
        form = request.form()
        source_arn = form.get("PolicySourceArn", "")
        actions = _members(form, "ActionNames")
        resources = _members(form, "ResourceArns") or ["*"]
        if not source_arn or not actions:
            raise ApiError("InvalidInput", "PolicySourceArn and ActionNames are required.")
        policies = self._policies_of(source_arn)
        results = [
            (action, resource, DECISIONS[decide(policies, action, resource)])
            for action in actions
            for resource in resources
        ]
        members = "".join(
            "<member>"
            f"<EvalActionName>{escape(action)}</EvalActionName>"
            f"<EvalResourceName>{escape(resource)}</EvalResourceName>"
            f"<EvalDecision>{decision}</EvalDecision>"
            "<MatchedStatements/><MissingContextValues/>"
            "</member>"
            for action, resource, decision in results
        )
        body = (
            '<SimulatePrincipalPolicyResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">'
            "<SimulatePrincipalPolicyResult><IsTruncated>false</IsTruncated>"
            f"<EvaluationResults>{members}</EvaluationResults></SimulatePrincipalPolicyResult>"
            f"<ResponseMetadata><RequestId>{request.request_id}</RequestId></ResponseMetadata>"
            "</SimulatePrincipalPolicyResponse>"
        )
        return Response(
            body,
            content_type="text/xml",
            headers={"x-amzn-RequestId": request.request_id},
        )

    def _policies_of(self, source_arn: str) -> list[Any]:
        kind, _, name = source_arn.split(":", 5)[-1].partition("/")
        name = name.rsplit("/", 1)[-1]
        try:
            if kind == "user":
                return self._user_policies(name)
            if kind == "role":
                return self._role_policies(name)
        except NotFoundException as error:
            raise ApiError("NoSuchEntity", f"{source_arn} cannot be found.", 404) from error
        raise ApiError("InvalidInput", f"{source_arn} is not an IAM user or role ARN.")

    def _user_policies(self, name: str) -> list[Any]:
        backend = self.backend
        backend.get_user(name)
        policies: list[Any] = [
            backend.get_user_policy(name, policy) for policy in backend.list_user_policies(name)
        ]
        policies += backend.list_attached_user_policies(name)[0]
        for group in backend.get_groups_for_user(name):
            policies += [
                backend.get_group_policy(group.name, policy)
                for policy in backend.list_group_policies(group.name)
            ]
            policies += backend.list_attached_group_policies(group.name)[0]
        return policies

    def _role_policies(self, name: str) -> list[Any]:
        backend = self.backend
        backend.get_role(name)
        policies: list[Any] = [
            backend.get_role_policy(name, policy)[1] for policy in backend.list_role_policies(name)
        ]
        policies += backend.list_attached_role_policies(name)[0]
        return policies


def _members(form: dict[str, str], name: str) -> list[str]:
    """A query-protocol list: Name.member.1, Name.member.2, ... in order."""
    values = []
    index = 1
    while f"{name}.member.{index}" in form:
        values.append(form[f"{name}.member.{index}"])
        index += 1
    return values
