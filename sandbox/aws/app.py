"""The sandbox's AWS endpoint: moto's server for IAM, STS, Service Quotas and Connect, behind a
layer that applies the knobs and serves what moto lacks."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from moto.core import DEFAULT_ACCOUNT_ID
from moto.iam.exceptions import NotFoundException as IAMNotFoundException
from moto.iam.models import iam_backends
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.wrappers import Response

from sandbox.aws.authorization import Authorizer
from sandbox.aws.connect import MOTO_OPERATIONS, ConnectCall, ConnectService
from sandbox.aws.iam_simulation import IamSimulation
from sandbox.aws.saml_metadata import InvalidMetadata, check_idp_metadata
from sandbox.aws.service_quotas import ServiceQuotas
from sandbox.aws.sts_saml import RoleFacts, assertion_for_moto, check_saml_assertion
from sandbox.aws.wire import (
    SERVER_ERRORS,
    SERVICE_SERVER_ERRORS,
    SERVICE_THROTTLING_ERRORS,
    THROTTLING_ERRORS,
    ApiError,
    AwsRequest,
    error_reply,
    json_reply,
)
from sandbox.server import AWS_ACCOUNT_ID, AWS_REGION

if TYPE_CHECKING:
    from sandbox.server import Sandbox

# IAM actions whose SAMLMetadataDocument the sandbox checks before moto stores it.
SAML_METADATA_ACTIONS = frozenset({"CreateSAMLProvider", "UpdateSAMLProvider"})
# moto keeps IAM per partition; the sandbox account lives in the commercial one.
IAM_PARTITION = "aws"


class AwsApp:
    """WSGI app: decides per request whether the sandbox answers it or moto does.

    The service comes from the SigV4 credential scope (IAM, STS, Connect and Service Quotas all
    share this one endpoint_url), the operation from the protocol: Action (query), X-Amz-Target
    (json) or method and path matched against botocore's Connect model (rest-json). Every such
    operation goes through the knobs as "<service>:<Operation>", e.g. "connect:CreateUser".
    """

    def __init__(self, sandbox: Sandbox) -> None:
        # moto files every call under MOTO_ACCOUNT_ID when it is set; the sandbox's own state
        # lives under AWS_ACCOUNT_ID, so the two must agree.
        moto_account = os.environ.get("MOTO_ACCOUNT_ID", DEFAULT_ACCOUNT_ID)
        if moto_account != AWS_ACCOUNT_ID:
            raise RuntimeError(
                f"moto's account {moto_account} is not the sandbox's {AWS_ACCOUNT_ID}; "
                "unset MOTO_ACCOUNT_ID"
            )
        self.knobs = sandbox.knobs
        self.wire_log = sandbox.wire_log
        self.default_region = sandbox.endpoints.get("aws_region", AWS_REGION)
        self.moto = DomainDispatcherApplication(create_backend_app)
        self.service_quotas = ServiceQuotas(account_id=AWS_ACCOUNT_ID, knobs=sandbox.knobs)
        self.iam_simulation = IamSimulation(account_id=AWS_ACCOUNT_ID, partition=IAM_PARTITION)
        self.authorizer = Authorizer(account_id=AWS_ACCOUNT_ID, partition=IAM_PARTITION)
        self.cloudtrail = sandbox.cloudtrail
        self.connect = ConnectService(
            account_id=AWS_ACCOUNT_ID,
            quotas=self.service_quotas,
            creation_delay_s=lambda: sandbox.knobs.instance_creation_delay_s,
            claim_delay_s=lambda: sandbox.knobs.phone_number_claim_delay_s,
        )

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request = AwsRequest.from_environ(environ, self.default_region)
        response = self.respond(request)
        if response is None:
            return self.moto(environ, start_response)
        if request.operation_name:
            self.wire_log.record_aws_answer(
                f"{request.service}:{request.operation_name}",
                response.status_code,
                response.get_data(),
                response.content_type or "",
            )
        return response(environ, start_response)

    def respond(self, request: AwsRequest) -> Response | None:
        """The sandbox's own response, or None to let moto answer."""
        protocol = request.protocol
        if protocol is None or request.region is None:
            return None
        try:
            return self._respond(request, protocol, request.region)
        except ApiError as error:
            return error_reply(
                protocol, error.code, error.message, error.status, request_id=request.request_id
            )

    def _respond(self, request: AwsRequest, protocol: str, region: str) -> Response | None:
        connect_params: dict[str, Any] = {}
        operation: str | None
        if request.service == "connect":
            parsed = self.connect.model.parse(
                request.method, request.raw_path, request.query, request.body
            )
            if parsed is None:
                raise ApiError(
                    "InvalidRequestException",
                    f"No Connect operation is {request.method} {request.raw_path}.",
                )
            operation, connect_params = parsed
        else:
            operation = request.operation()
        if not operation:
            return None
        request.operation_name = operation
        # AWS authenticates and authorizes a request before the service acts on it, so a refused
        # call changes nothing, whoever serves it (moto or the sandbox's own services).
        self.authorizer.check(request, operation, connect_params or self._params(request))

        api = f"{request.service}:{operation}"
        self.knobs.delay(api)
        wait = self.knobs.throttle_wait(api)
        if wait > 0:
            self.knobs.count_throttled(api)
            code, status = SERVICE_THROTTLING_ERRORS.get(
                request.service or "", THROTTLING_ERRORS[protocol]
            )
            response = error_reply(
                protocol, code, "Rate exceeded", status, request_id=request.request_id
            )
            response.headers["Retry-After"] = str(max(1, round(wait)))
            return response
        if self.knobs.should_fail(api):
            code, status = SERVICE_SERVER_ERRORS.get(request.service or "", SERVER_ERRORS[protocol])
            return error_reply(
                protocol,
                code,
                "The sandbox injected this retryable server error.",
                status,
                request_id=request.request_id,
            )

        if request.service == "connect":
            return self._connect(request, operation, connect_params, region)
        if request.service == "servicequotas":
            return self._service_quotas(request, operation, region)
        if request.service == "cloudtrail" and operation == "LookupEvents":
            return self._lookup_events(request, region)
        if request.service == "sts" and operation == "AssumeRoleWithSAML":
            self._check_saml_sign_in(request)
            return None
        if request.service == "iam" and operation == "SimulatePrincipalPolicy":
            return self.iam_simulation.respond(request)
        if request.service == "iam" and operation in SAML_METADATA_ACTIONS:
            try:
                check_idp_metadata(request.form().get("SAMLMetadataDocument", ""))
            except InvalidMetadata as error:
                raise ApiError("InvalidInput", str(error), 400) from error
        return None

    @staticmethod
    def _params(request: AwsRequest) -> dict[str, Any]:
        """The parameters of a query or json protocol request (what names its resource)."""
        if request.protocol == "query":
            return dict(request.form())
        try:
            return request.json_body()
        except ValueError:
            return {}

    def _connect(
        self, request: AwsRequest, operation: str, params: dict[str, Any], region: str
    ) -> Response | None:
        if operation == "DescribeInstance":
            failed = self.connect.describe_failed_instance(
                ConnectCall(operation, region, AWS_ACCOUNT_ID, params)
            )
            if failed is not None:
                return json_reply(failed, request_id=request.request_id)
        if operation in MOTO_OPERATIONS:
            self.connect.settle()
            return None
        if operation not in self.connect.operations:
            raise ApiError(
                "InvalidRequestException", f"The sandbox does not serve Connect {operation}."
            )
        call = ConnectCall(operation, region, AWS_ACCOUNT_ID, params)
        try:
            result = self.connect.call(call)
        except ApiError as error:
            error.status = self.connect.model.error_status(error.code)
            raise
        return json_reply(result, request_id=request.request_id)

    def _check_saml_sign_in(self, request: AwsRequest) -> None:
        """STS checks the assertion against the IAM provider's metadata and the role pair; moto
        then issues credentials from the checked claims (its own parser takes one value per
        attribute and ignores RoleArn, so it is handed a plain copy of what was verified)."""
        form = request.form()
        iam = iam_backends[AWS_ACCOUNT_ID][IAM_PARTITION]
        principal_arn = form.get("PrincipalArn", "")
        provider = next((p for p in iam.saml_providers.values() if p.arn == principal_arn), None)
        role_arn = form.get("RoleArn", "")
        try:
            found = iam.get_role_by_arn(role_arn)
        except IAMNotFoundException:
            role = None
        else:
            role = RoleFacts(
                arn=found.arn,
                trust_policy=_policy_document(found.assume_role_policy_document),
                # IAM's default maximum session is one hour (CreateRole, MaxSessionDuration).
                max_session_duration_s=int(found.max_session_duration or 3600),
            )
        claims = check_saml_assertion(
            saml_response=form.get("SAMLAssertion", ""),
            role_arn=role_arn,
            principal_arn=principal_arn,
            provider_metadata=provider.saml_metadata_document if provider else None,
            role=role,
        )
        form["SAMLAssertion"] = assertion_for_moto(claims)
        request.replace_form(form)

    def _lookup_events(self, request: AwsRequest, region: str) -> Response:
        """moto has no LookupEvents; the sandbox answers from the events its sign-in endpoint
        recorded (sandbox/aws/cloudtrail.py)."""
        try:
            params = request.json_body()
        except ValueError as error:
            raise ApiError("InvalidParameterException", "The body is not a JSON object.") from error
        try:
            result = self.cloudtrail.lookup_events(params, region)
        except ApiError as error:
            # botocore's cloudtrail model gives LookupEvents' errors no members, not even a
            # message: the code alone.
            return json_reply(
                {"__type": error.code},
                status=error.status,
                protocol="json",
                request_id=request.request_id,
            )
        return json_reply(result, protocol="json", request_id=request.request_id)

    def _service_quotas(self, request: AwsRequest, operation: str, region: str) -> Response | None:
        try:
            params = request.json_body()
        except ValueError as error:
            raise ApiError("IllegalArgumentException", "The body is not a JSON object.") from error
        if not self.service_quotas.handles(operation, params):
            return None
        result = self.service_quotas.call(operation, params, region)
        return json_reply(result, protocol="json", request_id=request.request_id)


def build_aws_app(sandbox: Sandbox) -> AwsApp:
    return AwsApp(sandbox)


def _policy_document(document: Any) -> dict[str, Any]:
    """A policy document as moto keeps it (a JSON string, URL-encoded as IAM returns it, or a
    dict) as a dict."""
    if isinstance(document, dict):
        return document
    text = str(document or "{}")
    if text.startswith("%7B") or text.startswith("%7b"):
        text = unquote(text)
    parsed = json.loads(text)
    return parsed if isinstance(parsed, dict) else {}


def replace_metadata_certificate(old: str, new: str) -> None:
    """The sandbox's certificate clock (Sandbox.move_certificate_clock), in IAM: every SAML
    provider's metadata document that carries certificate `old` (base64 DER) carries `new`
    instead, as IAM keeps the copy it was given and a real certificate ages there too."""
    for provider in iam_backends[AWS_ACCOUNT_ID][IAM_PARTITION].saml_providers.values():
        document = provider.saml_metadata_document or ""
        if old in document:
            provider.saml_metadata_document = document.replace(old, new)
