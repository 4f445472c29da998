"""The sign_in_test step: signs a chosen assigned person in the way they will (IdP-initiated), and
says which link of the chain fails and how to fix it.

Sandbox mode: GET the IdP step's outputs["sandbox_sso_url"] + "?user=<login>" (only the sandbox's
own sign-on URL is accepted) for the SAML response and relay state, POST them to the sandbox's
AWS sign-in endpoint, and read its JSON verdict (sandbox/signin/app.py). Live mode: the user
access URL to open, plus every link the wizard can read from the clouds themselves: the IdP's
metadata downloaded again, its signing certificate against the one IAM's SAML provider holds
(iam.get_saml_provider, not the copy IAM was made from); the federation role's trust policy;
connect:GetFederationToken on the instance simulated for the role
(iam.simulate_principal_policy); each test user looked up in Connect by username; and the
earlier steps' verify() findings (outputs["verify"]). The mode follows the IdP step's outputs:
sandbox_sso_url is there only when the IdP is the sandbox's.

Inputs: the picker's `picked` ("user:<login>") or `test_users` (logins, one a line); empty: the
first assigned person. Reads outputs["people"] (an assignment step) and the IdP step's outputs.
Outputs: results [{login, username, ok, link, detail, destination}], user_access_url.
A failed sign-in fails the step with code "sign_in_<link>".
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any, ClassVar
from urllib.parse import urlencode

import httpx
from django import forms
from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop

from provisioning.audit import audited_call
from provisioning.aws.client import ACCESS_DENIED_CODES, NOT_FOUND_CODES
from provisioning.aws.iam import as_document, signin_audiences
from provisioning.context import StepContext
from provisioning.directory_picker import PickerPlan, picked_values, read_choice
from provisioning.entra.metadata import download_federation_metadata
from provisioning.errors import PermanentError, RetryableError
from provisioning.messages import Message, render
from provisioning.models import Cloud
from provisioning.okta import aws_app
from provisioning.saml import parse_idp_metadata
from provisioning.sandbox_endpoints import read_sandbox_file
from provisioning.steps.base import Change, Finding, Plan, Step, StepOutputs, register
from provisioning.steps.federation_role import FederationRoleOutputs
from provisioning.steps.saml_provider import SamlProviderOutputs
from provisioning.user_changes.instance import find_user

# The sandbox's sign-on path on an IdP authority (sandbox/entra/app.py, sandbox/okta/app.py).
SANDBOX_SSO_PATH = "/sandbox/sso/"
SIGN_IN_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
# What AWS checks at sign-in (IAM User Guide, "Configure SAML assertions for the authentication
# response"; Amazon Connect Administrator Guide, "Configure SAML with IAM for Amazon Connect"):
# the role trusts the provider for this action, and the console federates into Connect with this
# one.
ASSUME_ROLE_ACTION = "sts:AssumeRoleWithSAML"
FEDERATION_ACTION = "connect:GetFederationToken"


@dataclass(frozen=True)
class Link:
    """One link of the sign-in chain, with the admin's name for it and the fix."""

    key: str
    name: Any
    fix: Any


LINKS = {
    link.key: link
    for link in (
        Link(
            "idp_app",
            _("the IdP app (assignment or SAML setup)"),
            _(
                "Check that the person is assigned to the app (directly, or as a direct member of "
                "an assigned group) and that the app's SAML settings are complete."
            ),
        ),
        Link(
            "claims",
            _("the claims the IdP sends"),
            _(
                "Make the RoleSessionName claim send exactly the Connect username (change the "
                "claim's source, or the user's attribute), and the Role claim the role and "
                "provider ARNs."
            ),
        ),
        Link(
            "relay_state",
            _("the relay state"),
            _(
                "Set the app's relay state to the instance's federation URL (re-run the claims "
                "step)."
            ),
        ),
        Link(
            "iam_provider",
            _("the IAM identity provider"),
            _(
                "Upload the IdP's current metadata to the IAM identity provider (re-run the "
                "saml_provider step): its certificate differs from the one the IdP signs with."
            ),
        ),
        Link(
            "role_trust",
            _("the federation role's trust"),
            _(
                "Let the role trust the identity provider for sts:AssumeRoleWithSAML with SAML:aud "
                "set to the sign-in URL (re-run the federation_role step)."
            ),
        ),
        Link(
            "policy",
            _("the federation policy"),
            _(
                "Attach a policy allowing connect:GetFederationToken on the instance to the role "
                "(re-run the federation_policy and federation_role steps)."
            ),
        ),
        Link(
            "connect_user",
            _("the Connect user"),
            _(
                "Create the Connect user whose username equals the RoleSessionName exactly (re-run "
                "the connect_users step)."
            ),
        ),
        Link(
            "connect_instance",
            _("the Connect instance"),
            _("Check that the instance exists and is active."),
        ),
        Link(
            "user_binding",
            _("the user's first role"),
            _(
                "Connect binds a user to the role of their first sign-in: sign them in with that "
                "role, or delete and re-create the Connect user."
            ),
        ),
    )
}
# The sandbox sign-in's failed checks (sandbox/signin/sign_in.py) -> the link to fix.
CHECK_LINKS = {
    "saml_provider": "iam_provider",
    "role": "claims",
    "trust_policy": "role_trust",
    "assume_role": "claims",
    "relay_state": "relay_state",
    "connect_instance": "connect_instance",
    "federation_permission": "policy",
    "connect_user": "connect_user",
    "user_binding": "user_binding",
}
CAUSE_LINKS = {
    "relay_state_missing": "relay_state",
    "relay_state_invalid": "relay_state",
    "no_federation_permission": "policy",
    "invalid_saml_response": "claims",
}


@dataclass
class SignInTestOutputs(StepOutputs):
    """Where people sign in, and how each sign-in (sandbox) or each link read from the clouds
    (live) went."""

    step_key: ClassVar[str] = "sign_in_test"
    user_access_url: str = ""
    # Sandbox: [{login, username, ok, link, detail, destination}]; live: [{check, ok, detail,
    # fix}], one per link read.
    results: list[dict[str, Any]] = field(default_factory=list)
    # Sandbox only: who signed in as whom and where they land, in a sentence.
    signed_in: str = ""

    def to_json(self) -> dict[str, Any]:
        data = super().to_json()
        if not data["signed_in"]:
            del data["signed_in"]  # as runs stored it before outputs were typed
        return data


class SignInTestForm(forms.Form):
    test_users = forms.CharField(
        label=_("Or type sign-in names, one a line"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("Leave everything empty to test the first assigned person."),
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        picked = picked_values(self.data, self.add_prefix("picked"))
        cleaned["picked"] = list(dict.fromkeys(picked))
        return cleaned


def _idp_outputs(ctx: StepContext) -> dict[str, Any]:
    for outputs in reversed(list(ctx.outputs.values())):
        if outputs.get("user_access_url") or outputs.get("sandbox_sso_url"):
            return outputs
    raise PermanentError(
        Message(gettext_noop("No earlier step set up the IdP app.")),
        code="idp_app_missing",
        hint=Message(gettext_noop("This step comes after the IdP app step in the flow.")),
    )


def _people(ctx: StepContext) -> list[dict[str, Any]]:
    for outputs in reversed(list(ctx.outputs.values())):
        if isinstance(outputs.get("people"), list) and outputs["people"]:
            return list(outputs["people"])
    raise PermanentError(
        Message(gettext_noop("Nobody is assigned to the app yet, so nobody can test the sign-in.")),
        code="sign_in_nobody",
        hint=Message(gettext_noop("Assign users in the assignment step, then retry.")),
    )


def chosen_people(ctx: StepContext) -> list[dict[str, Any]]:
    people = _people(ctx)
    choice = read_choice(ctx.inputs)
    wanted = {value.lower() for value in choice.user_ids} | {
        line.strip().lower()
        for line in str(ctx.inputs.get("test_users") or "").splitlines()
        if line.strip()
    }
    if not wanted:
        return people[:1]
    chosen = [p for p in people if str(p.get("login") or p["username"]).lower() in wanted]
    if not chosen:
        raise PermanentError(
            Message(gettext_noop("None of the people you chose is assigned to the app.")),
            code="sign_in_unknown_user",
            hint=Message(
                gettext_noop("Choose among: %(people)s"),
                {"people": ", ".join(str(p.get("login") or p["username"]) for p in people)},
            ),
        )
    return chosen


def _picker(people: list[dict[str, Any]]) -> dict[str, Any]:
    users = [
        {
            "id": str(p.get("login") or p["username"]),
            "login": str(p["username"]),
            "name": f"{p.get('first_name', '')} {p.get('last_name', '')}".strip() or p["username"],
            "email": str(p.get("email") or ""),
        }
        for p in people
    ]
    return {"users": users, "groups": [], "capped": False, "purpose": "sign_in_test"}


def _sandbox_urls(idp: dict[str, Any]) -> tuple[str, str]:
    """(the IdP's sign-on URL, the AWS sign-in URL), both the sandbox's own."""
    endpoints = read_sandbox_file()
    sso_url = str(idp.get("sandbox_sso_url") or "")
    own = [endpoints.get("entra_authority", ""), endpoints.get("okta_org_url", "")]
    if not any(base and sso_url.startswith(base.rstrip("/") + SANDBOX_SSO_PATH) for base in own):
        raise PermanentError(
            Message(
                gettext_noop(
                    "The IdP step's sign-on URL is not the sandbox's own; the wizard fetches no "
                    "other."
                )
            ),
            code="sign_in_url_refused",
        )
    return sso_url, endpoints["aws_signin_url"]


def _fetch(ctx: StepContext, operation: str, request: dict[str, Any], send: Any) -> httpx.Response:
    def call() -> httpx.Response:
        try:
            return send()
        except httpx.HTTPError as exc:
            raise RetryableError(
                Message(
                    gettext_noop("The sandbox sign-in could not be reached (%(error)s)."),
                    {"error": type(exc).__name__},
                ),
                code="sign_in_unreachable",
                hint=Message(
                    gettext_noop("Check that the sandbox is running; the wizard retries.")
                ),
            ) from exc

    return audited_call(
        ctx.audit,
        cloud="aws",
        service="signin",
        operation=operation,
        request=request,
        call=call,
        summarize=lambda response: {"http_status": response.status_code},
    )


def sandbox_sign_in(ctx: StepContext, person: dict[str, Any]) -> dict[str, Any]:
    """One sign-in through the sandbox chain: {login, username, ok, link, detail, destination}."""
    idp = _idp_outputs(ctx)
    sso_url, signin_url = _sandbox_urls(idp)
    login = str(person.get("login") or person["username"])
    result = {
        "login": login,
        "username": person["username"],
        "ok": False,
        "link": "",
        "detail": "",
        "destination": "",
    }
    tls = ssl.create_default_context(cafile=read_sandbox_file()["ca_bundle"])
    accept = {"Accept": "application/json"}
    with httpx.Client(verify=tls, timeout=SIGN_IN_TIMEOUT, follow_redirects=False) as http:
        idp_response = _fetch(
            ctx,
            "GET idp sign-on",
            {"user": login},
            lambda: http.get(sso_url + "?" + urlencode({"user": login}), headers=accept),
        )
        body = idp_response.json()
        if idp_response.status_code != 200:
            result.update(link="idp_app", detail=str(body.get("error_description") or body))
            return result
        if body.get("action") != signin_url:
            raise PermanentError(
                Message(
                    gettext_noop(
                        "The IdP posts the sign-in somewhere other than the AWS sign-in endpoint."
                    )
                ),
                code="sign_in_action_refused",
            )
        form = {"SAMLResponse": body.get("SAMLResponse", "")}
        if body.get("RelayState"):
            form["RelayState"] = body["RelayState"]
        aws_response = _fetch(
            ctx,
            "POST /saml",
            {"RelayState": form.get("RelayState", "")},
            lambda: http.post(signin_url, data=form, headers=accept),
        )
    verdict = aws_response.json()
    if verdict.get("ok"):
        result.update(
            ok=True,
            destination=str(verdict.get("destination", "")),
            detail=str(verdict.get("username", "")),
        )
        return result
    check, cause = str(verdict.get("check", "")), str(verdict.get("cause", ""))
    link = CHECK_LINKS.get(check) or CAUSE_LINKS.get(cause) or "claims"
    if link == "connect_user" and _sends_other_name(verdict, person):
        # The user exists under the expected name, the IdP sends another: a claims problem.
        link = "claims"
    result.update(link=link, detail=f"{verdict.get('error', '')} ({verdict.get('detail', '')})")
    return result


def _sends_other_name(verdict: dict[str, Any], person: dict[str, Any]) -> bool:
    """True when the RoleSessionName AWS received is not the person's Connect username."""
    return f"{person['username']!r}" not in str(verdict.get("detail", ""))


def _failure(results: list[dict[str, Any]]) -> PermanentError:
    failed = [result for result in results if not result["ok"]]
    first = failed[0]
    link = LINKS[first["link"]]
    return PermanentError(
        Message(
            _("Sign-in of {login} failed at {link}: {detail}"),
            {"login": first["login"], "link": link.name, "detail": first["detail"]},
        ),
        code=f"sign_in_{link.key}",
        hint=str(link.fix),
    )


@dataclass(frozen=True)
class LiveChain:
    """The chain the earlier steps built, as their outputs name it."""

    provider_arn: str
    role_name: str
    instance_id: str


def _live_chain(ctx: StepContext) -> LiveChain:
    provider_arn = ctx.outputs_of(SamlProviderOutputs).provider_arn
    role_name = ctx.outputs_of(FederationRoleOutputs).role_name
    if not (provider_arn and role_name and ctx.instance_id):
        raise PermanentError(
            Message(_("The sign-in test needs the identity provider, the role and the instance.")),
            code="sign_in_chain_incomplete",
            hint=Message(_("Run the saml_provider, federation_role and instance steps first.")),
        )
    return LiveChain(provider_arn=provider_arn, role_name=role_name, instance_id=ctx.instance_id)


def _failed(link: str, detail: Any, *, blocking: bool = True) -> Finding:
    return Finding(link, ok=False, detail=str(detail), fix=str(LINKS[link].fix), blocking=blocking)


def _current_metadata(ctx: StepContext) -> str:
    """The IdP's metadata as it serves it now (its current signing certificate in it)."""
    app_id = str(_idp_outputs(ctx).get("app_id", ""))
    connection = ctx.idp_connection()
    if connection.cloud == Cloud.OKTA:
        client = ctx.okta()
        app = aws_app.get_app(client, app_id)
        if app is None:
            raise PermanentError(
                Message(_("The Okta app {app} is gone."), {"app": app_id}),
                code="sign_in_idp_app",
                hint=str(LINKS["idp_app"].fix),
            )
        return aws_app.metadata_xml(client, app_id)
    return download_federation_metadata(connection, app_id, audit=ctx.audit)


def _certificate_finding(ctx: StepContext, chain: LiveChain) -> Finding:
    current = parse_idp_metadata(_current_metadata(ctx), check_dates=False).fingerprints
    try:
        document = ctx.aws("iam").get_saml_provider(SAMLProviderArn=chain.provider_arn)[
            "SAMLMetadataDocument"
        ]
    except PermanentError as error:
        if error.code not in NOT_FOUND_CODES:
            raise
        return _failed(
            "iam_provider",
            Message(
                _("The IAM identity provider {provider} is gone."), {"provider": chain.provider_arn}
            ),
        )
    registered = parse_idp_metadata(document, check_dates=False).fingerprints
    if current & registered:
        return Finding("iam_provider", ok=True, detail=", ".join(sorted(registered)))
    return _failed(
        "iam_provider",
        Message(
            _(
                "The IdP signs with the certificate {current}; the IAM identity provider trusts "
                "{registered}."
            ),
            {"current": ", ".join(sorted(current)), "registered": ", ".join(sorted(registered))},
        ),
    )


def _values(value: Any) -> list[str]:
    return [str(item) for item in value] if isinstance(value, list) else [str(value or "")]


def _condition_values(statement: dict[str, Any], operator: str, key: str) -> list[str]:
    """A condition's values; IAM's condition keys are case-insensitive (IAM JSON policy
    reference, "Condition element")."""
    block = (statement.get("Condition") or {}).get(operator) or {}
    return [
        v for name, value in block.items() if name.lower() == key.lower() for v in _values(value)
    ]


def _trusts(statement: dict[str, Any], chain: LiveChain, audiences: set[str]) -> bool:
    principal = statement.get("Principal")
    federated = _values(principal.get("Federated")) if isinstance(principal, dict) else []
    actions = _values(statement.get("Action"))
    return (
        statement.get("Effect") == "Allow"
        and chain.provider_arn in federated
        and any(fnmatchcase(ASSUME_ROLE_ACTION.lower(), a.lower()) for a in actions)
        and bool(audiences & set(_condition_values(statement, "StringEquals", "SAML:aud")))
    )


def _role(ctx: StepContext, chain: LiveChain) -> dict[str, Any] | None:
    try:
        return dict(ctx.aws("iam").get_role(RoleName=chain.role_name)["Role"])
    except PermanentError as error:
        if error.code not in NOT_FOUND_CODES:
            raise
        return None


def _trust_finding(ctx: StepContext, chain: LiveChain, role: dict[str, Any] | None) -> Finding:
    audiences = set(signin_audiences(ctx.region))
    if role is None:
        return _failed(
            "role_trust", Message(_("The role {role} is gone."), {"role": chain.role_name})
        )
    document = as_document(role.get("AssumeRolePolicyDocument") or {})
    statements = document.get("Statement") or []
    if isinstance(statements, dict):
        statements = [statements]
    if any(_trusts(statement, chain, audiences) for statement in statements):
        return Finding("role_trust", ok=True, detail=role["Arn"])
    return _failed(
        "role_trust",
        Message(
            _("The role {role} does not trust {provider} for {action} with SAML:aud {audience}."),
            {
                "role": role["Arn"],
                "provider": chain.provider_arn,
                "action": ASSUME_ROLE_ACTION,
                "audience": " / ".join(sorted(audiences)),
            },
        ),
    )


def _instance_arn(ctx: StepContext, chain: LiveChain) -> str:
    try:
        instance = ctx.aws("connect").describe_instance(InstanceId=chain.instance_id)
    except PermanentError as error:
        if error.code not in NOT_FOUND_CODES:
            raise
        return ""
    return str(instance["Instance"]["Arn"])


def _permission_finding(
    ctx: StepContext, chain: LiveChain, role: dict[str, Any], instance_arn: str, username: str
) -> Finding:
    """connect:GetFederationToken simulated for the role on the instance, with the context the
    console's call carries: aws:userid is "<role id>:<RoleSessionName>" for an assumed role."""
    user_id = f"{role['RoleId']}:{username}"
    resource = f"{instance_arn}/user/{user_id}"
    try:
        results = ctx.aws("iam").simulate_principal_policy(
            PolicySourceArn=role["Arn"],
            ActionNames=[FEDERATION_ACTION],
            ResourceArns=[resource],
            ContextEntries=[
                {
                    "ContextKeyName": "aws:userid",
                    "ContextKeyValues": [user_id],
                    "ContextKeyType": "string",
                },
                {
                    "ContextKeyName": "connect:InstanceId",
                    "ContextKeyValues": [chain.instance_id],
                    "ContextKeyType": "string",
                },
            ],
        )["EvaluationResults"]
    except PermanentError as error:
        if error.code not in ACCESS_DENIED_CODES:
            raise
        # Not a broken link: the wizard's own connection may not simulate. Shown, not failed.
        return _failed(
            "policy",
            _("The connection may not call iam:SimulatePrincipalPolicy: not checked."),
            blocking=False,
        )
    decisions = {result["EvalDecision"] for result in results}
    if decisions == {"allowed"}:
        return Finding("policy", ok=True, detail=resource)
    return _failed(
        "policy",
        Message(
            _("The role {role} may not do {action} on {resource} ({decision})."),
            {
                "role": role["Arn"],
                "action": FEDERATION_ACTION,
                "resource": resource,
                "decision": ", ".join(sorted(decisions)) or "-",
            },
        ),
    )


def _connect_user_finding(ctx: StepContext, chain: LiveChain, username: str) -> Finding:
    if find_user(ctx.aws("connect"), chain.instance_id, username) is not None:
        return Finding("connect_user", ok=True, detail=username)
    return _failed(
        "connect_user",
        Message(
            _("No user of the instance {instance} has the username {username}."),
            {"instance": chain.instance_id, "username": username},
        ),
    )


def live_findings(ctx: StepContext) -> list[Finding]:
    """Every link the wizard can read from the clouds, then the earlier steps' verify findings."""
    chain = _live_chain(ctx)
    people = chosen_people(ctx)
    role = _role(ctx, chain)
    findings = [_certificate_finding(ctx, chain), _trust_finding(ctx, chain, role)]
    instance_arn = _instance_arn(ctx, chain)
    if not instance_arn:
        findings.append(
            _failed(
                "connect_instance",
                Message(_("The instance {instance} is gone."), {"instance": chain.instance_id}),
            )
        )
    elif role is not None:
        findings.append(
            _permission_finding(ctx, chain, role, instance_arn, str(people[0]["username"]))
        )
    if instance_arn:
        findings += [
            _connect_user_finding(ctx, chain, str(person["username"])) for person in people
        ]
    for step_key, outputs in ctx.outputs.items():
        for found in outputs.get("verify", []) or []:
            findings.append(
                Finding(
                    f"{step_key}: {render(found.get('check'))}",
                    ok=bool(found.get("ok")),
                    detail=str(render(found.get("detail", ""))),
                    fix=str(render(found.get("fix", ""))),
                )
            )
    return findings


def _live_failure(finding: Finding) -> PermanentError:
    link = LINKS.get(finding.check)
    return PermanentError(
        Message(
            _("The sign-in would fail at {link}: {detail}"),
            {"link": link.name if link else finding.check, "detail": finding.detail},
        ),
        code=f"sign_in_{link.key}" if link else "sign_in_link_check",
        hint=finding.fix,
    )


@register
class SignInTest(Step):
    key = "sign_in_test"
    # Run again to sign in with another person: the picker asks again.
    rerunnable = True
    rerun_inputs = {"picked": None, "test_users": None}
    title = _("Test sign-in")
    description = _(
        "Signs an assigned person in the way they will, from the identity provider into Amazon "
        "Connect, and names the link that fails, if one does."
    )
    form_class = SignInTestForm

    def _sandbox(self, ctx: StepContext) -> bool:
        return bool(_idp_outputs(ctx).get("sandbox_sso_url"))

    def plan(self, ctx: StepContext) -> Plan:
        people = _people(ctx)
        if "picked" not in ctx.inputs and "test_users" not in ctx.inputs:
            return PickerPlan(needs_input=True, directory=_picker(people))
        names = [str(p.get("login") or p["username"]) for p in chosen_people(ctx)]
        mode = "sandbox" if self._sandbox(ctx) else "live"
        return Plan(
            changes=[Change("nothing", "sign_in_test", name, {"mode": mode}) for name in names]
        )

    def apply(self, ctx: StepContext) -> SignInTestOutputs:
        idp = _idp_outputs(ctx)
        outputs = SignInTestOutputs(user_access_url=str(idp.get("user_access_url", "")))
        if not self._sandbox(ctx):
            findings = live_findings(ctx)
            outputs.results = [
                {"check": f.check, "ok": f.ok, "detail": f.detail, "fix": f.fix} for f in findings
            ]
            failing = [f for f in findings if not f.ok and f.blocking]
            if failing:
                raise _live_failure(failing[0])
            return outputs
        results = [sandbox_sign_in(ctx, person) for person in chosen_people(ctx)]
        if not all(result["ok"] for result in results):
            raise _failure(results)
        outputs.signed_in = "; ".join(
            str(_("{login} signed in as {username} and lands on {destination}")).format(
                login=result["login"],
                username=result["username"],
                destination=result["destination"],
            )
            for result in results
        )
        outputs.results = results
        return outputs

    def verify(self, ctx: StepContext) -> list[Finding]:
        # Its apply is the check (a real sign-in, or every link read from the clouds).
        return []

    def rollback(self, ctx: StepContext) -> None:
        # A sign-in creates nothing in any cloud.
        return None
