"""The sandbox's AWS sign-in endpoint (signin.aws.amazon.com/saml) as a WSGI app.

`POST /saml` with form fields SAMLResponse (base64), RelayState and optionally `role` (the role
ARN a user would pick on AWS's role picker). Success: a local page naming the Amazon Connect page
the user would now see (real AWS redirects there; the sandbox must not send a browser off the
machine), or with `Accept: application/json` 200 {"ok": true, "destination", "username", ...}.
Refusal: an HTML page with AWS's message and AWS's status, or with `Accept: application/json`
{"ok": false, "error": <AWS's message>, "cause": <what to fix>, "check": <which check>,
"detail": <exactly what was wrong>}.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Request, Response

from sandbox.aws.sts_saml import MAX_ASSERTION_CHARS
from sandbox.signin.refusals import SignInRefused
from sandbox.signin.sign_in import AwsAccess, AwsSignIn, SignedIn

if TYPE_CHECKING:
    from sandbox.server import Sandbox

SIGNIN_PATH = "/saml"
# Room for the base64 SAMLResponse (STS takes up to 100,000 characters) plus RelayState and the
# role field.
MAX_FORM_BYTES = MAX_ASSERTION_CHARS * 2


def _wants_json(request: Request) -> bool:
    return request.accept_mimetypes.best_match(["text/html", "application/json"]) == (
        "application/json"
    )


def _json(body: dict[str, Any], status: int) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


def _page(title: str, message: str, status: int) -> Response:
    body = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{html.escape(title)}</title></head><body><main>"
        f"<h1>{html.escape(title)}</h1><p id=error>{html.escape(message)}</p>"
        "</main></body></html>"
    )
    return Response(body, status=status, mimetype="text/html")


def _signed_in(request: Request, result: SignedIn) -> Response:
    if _wants_json(request):
        return _json(
            {
                "ok": True,
                "destination": result.destination,
                "username": result.username,
                "role_arn": result.role_arn,
                "provider_arn": result.provider_arn,
                "instance_id": result.instance_id,
                "assumed_role_arn": result.assumed_role_arn,
            },
            HTTPStatus.OK,
        )
    body = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<title>Amazon Connect (sandbox)</title></head><body><main>"
        "<h1>Signed in to Amazon Connect</h1>"
        f"<p>Signed in as <strong id=username>{html.escape(result.username)}</strong> "
        f"with the role <code>{html.escape(result.role_arn)}</code>.</p>"
        "<p>At AWS the browser would now open "
        f"<code id=destination>{html.escape(result.destination)}</code>. The sandbox stops here so "
        "that nothing leaves this machine.</p></main></body></html>"
    )
    return Response(body, status=HTTPStatus.OK, mimetype="text/html")


def _refused(request: Request, refusal: SignInRefused) -> Response:
    if _wants_json(request):
        return _json(
            {
                "ok": False,
                "error": refusal.error,
                "cause": str(refusal.cause),
                "check": refusal.check,
                "detail": refusal.detail,
            },
            refusal.status,
        )
    return _page("Amazon Web Services Sign-In", refusal.error, refusal.status)


def build_signin_app(sandbox: Sandbox) -> Any:
    """The endpoint, checking against the sandbox's AWS at `sandbox.endpoints`."""
    sign_in = AwsSignIn(AwsAccess.from_endpoints(sandbox.endpoints), cloudtrail=sandbox.cloudtrail)
    return signin_app(sign_in)


def signin_app(sign_in: AwsSignIn) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        request.max_content_length = MAX_FORM_BYTES
        request.max_form_memory_size = MAX_FORM_BYTES
        if request.path.rstrip("/") != SIGNIN_PATH:
            response = _page("Not Found", "Not Found", HTTPStatus.NOT_FOUND)
        elif request.method != "POST":
            response = _page(
                "Amazon Web Services Sign-In",
                "Sign in from your identity provider: AWS accepts SAML responses by POST only.",
                HTTPStatus.METHOD_NOT_ALLOWED,
            )
            response.headers["Allow"] = "POST"
        else:
            response = _handle_post(request, sign_in)
        return response(environ, start_response)

    return app


def _handle_post(request: Request, sign_in: AwsSignIn) -> Response:
    try:
        form = request.form
    except RequestEntityTooLarge:
        return _page(
            "Request Entity Too Large",
            "Request Entity Too Large",
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
        )
    try:
        result = sign_in.sign_in(
            saml_response=form.get("SAMLResponse", ""),
            relay_state=form.get("RelayState", ""),
            chosen_role=form.get("role", ""),
        )
    except SignInRefused as refusal:
        return _refused(request, refusal)
    return _signed_in(request, result)
