"""The steps of "Rotate the signing certificate", in the order provisioning/signing_rotation.py
proves keeps every sign-in working: a new certificate at the IdP that does not sign yet, IAM's
metadata with both, the IdP switched to the new one, a sign-in with it, the old one retired.

Run inputs: `app_id` (the IdP app: Okta app id, Entra appId), `provider_arn` (the IAM SAML
provider), `certificate_years` and, in sandbox mode, `test_user` (who signs in). Rollback puts
back what each step replaced: the IdP's previous signing key, IAM's previous metadata. The new
certificate itself stays at the IdP, signing nothing: Okta's API has no call that deletes an
app's key credential, and removing one from Entra's keyCredentials means writing back the whole
collection with every certificate's key, which Graph does not hand back on a read.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import quote, urlencode

import httpx
from django import forms
from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop
from lxml import etree

from provisioning.audit import audited_call
from provisioning.context import StepContext
from provisioning.errors import PermanentError, RetryableError
from provisioning.idp_app_ids import APP_ID_REFUSED, APP_ID_RULE
from provisioning.messages import Message
from provisioning.models import Cloud
from provisioning.saml import metadata_diff, parse_idp_metadata
from provisioning.sandbox_endpoints import sandbox_endpoints
from provisioning.signin_checks.refusals import SignInRefused
from provisioning.signin_checks.saml_response import (
    assertion_of,
    decode_saml_response,
    parse_saml_response,
    role_pairs,
)
from provisioning.signing_keys import (
    add_signing_key,
    app_id_of,
    current_metadata,
    find_marked_key,
    read_signing_keys,
    rotation_marker,
    switch_signing_key,
)
from provisioning.signing_rotation import (
    adding_certificate,
    certificate_fingerprint,
    signing_fingerprints,
)
from provisioning.steps.base import Change, Finding, Plan, Step, StepOutputs, register

# What the run's created_resources call the things its steps replace (rollback puts them back).
NEW_CERTIFICATE = "signing_certificate"
IAM_METADATA = "saml_provider_metadata"
SIGNING_KEY = "idp_signing_key"
# Years the new certificate is valid: Okta takes 2 to 10 (Apps API, "Generate new Application
# Key Credential"), Entra at most 3 (addTokenSigningCertificate: "The endDateTime can be up to
# three years after the certificate is created"); both allow 2 and 3.
CERTIFICATE_YEARS = (2, 3)
SIGN_IN_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
# The sandbox IdPs' IdP-initiated sign-on path (sandbox/entra/app.py, sandbox/okta/app.py).
SANDBOX_SSO_PATH = "/sandbox/sso/"
_DS_CERTIFICATE = "{http://www.w3.org/2000/09/xmldsig#}X509Certificate"


class SigningRotationForm(forms.Form):
    app_id = forms.RegexField(
        label=_("IdP app ID"),
        regex=APP_ID_RULE,
        max_length=64,
        error_messages={"invalid": APP_ID_REFUSED},
        help_text=_("The Okta app ID or the Entra application (client) ID people sign in with."),
    )
    provider_arn = forms.RegexField(
        label=_("IAM identity provider ARN"),
        regex=r"^arn:aws[a-z-]*:iam::\d{12}:saml-provider/[A-Za-z0-9._-]{1,128}$",
        max_length=2048,
        error_messages={"invalid": _("Give the ARN of an IAM SAML identity provider.")},
    )
    certificate_years = forms.TypedChoiceField(
        label=_("Years the new certificate is valid"),
        choices=[(years, str(years)) for years in CERTIFICATE_YEARS],
        coerce=int,
        initial=CERTIFICATE_YEARS[-1],
    )
    test_user = forms.CharField(
        label=_("Who signs in to test the new certificate"),
        required=False,
        max_length=256,
        help_text=_("Sandbox mode: the sign-in name of a person assigned to the app."),
    )


@dataclass
class SigningCertificateNewOutputs(StepOutputs):
    step_key: ClassVar[str] = "signing_certificate_new"

    app_id: str = ""
    previous_key_id: str = ""
    key_id: str = ""
    certificate: str = ""  # base64 DER, public
    fingerprint: str = ""


@dataclass
class SamlProviderOverlapOutputs(StepOutputs):
    step_key: ClassVar[str] = "saml_provider_overlap"

    provider_arn: str = ""
    fingerprints: list[str] = field(default_factory=list)


@dataclass
class SigningCertificateSwitchOutputs(StepOutputs):
    step_key: ClassVar[str] = "signing_certificate_switch"

    previous_key_id: str = ""
    signing_key_id: str = ""


@dataclass
class SigningCertificateSignInOutputs(StepOutputs):
    step_key: ClassVar[str] = "signing_certificate_sign_in"

    login: str = ""
    role_arn: str = ""
    fingerprint: str = ""
    mode: str = ""


@dataclass
class SamlProviderRetireOldOutputs(StepOutputs):
    step_key: ClassVar[str] = "saml_provider_retire_old"

    provider_arn: str = ""
    fingerprints: list[str] = field(default_factory=list)


def _provider_arn(ctx: StepContext) -> str:
    return str(ctx.inputs.get("provider_arn") or "").strip()


def _iam_metadata(ctx: StepContext) -> str:
    got = ctx.aws("iam").get_saml_provider(SAMLProviderArn=_provider_arn(ctx))
    return str(got.get("SAMLMetadataDocument") or "")


def _put_iam_metadata(ctx: StepContext, document: str) -> None:
    ctx.aws("iam").update_saml_provider(
        SAMLProviderArn=_provider_arn(ctx), SAMLMetadataDocument=document
    )


def _diff(before: str, after: str) -> str:
    return metadata_diff(
        parse_idp_metadata(before, check_dates=False), parse_idp_metadata(after, check_dates=False)
    )


def _new_key(ctx: StepContext) -> SigningCertificateNewOutputs:
    new = ctx.outputs_of(SigningCertificateNewOutputs)
    if not new.key_id or not new.certificate:
        raise PermanentError(
            Message(gettext_noop("No new signing certificate was made yet.")),
            code="signing_new_missing",
            hint=Message(gettext_noop("Run “New signing certificate” first.")),
        )
    return new


def _plan(change: Change, says: Message) -> Plan:
    """A plan of one writing change, with what it does in plain words."""
    return Plan(changes=[change], warnings=[says])


def _restore_iam(ctx: StepContext, previous: str, written: frozenset[str]) -> None:
    """Put back the document IAM held before, while IAM still holds what this step wrote."""
    if signing_fingerprints(_iam_metadata(ctx)) == written:
        _put_iam_metadata(ctx, previous)


@register
class SigningCertificateNew(Step):
    key = "signing_certificate_new"
    title = _("New signing certificate")
    description = _(
        "Makes a new SAML signing certificate for the IdP app. It does not sign anything yet."
    )
    form_class = SigningRotationForm

    def _made(self, ctx: StepContext) -> dict[str, Any] | None:
        made = ctx.created_of(NEW_CERTIFICATE)
        return dict(made[-1].details, key_id=made[-1].identifier) if made else None

    def plan(self, ctx: StepContext) -> Plan:
        keys = read_signing_keys(ctx)
        held = signing_fingerprints(_iam_metadata(ctx))
        made = self._made(ctx)
        if made is not None and made["key_id"] in keys.keys:
            return Plan(
                changes=[
                    Change("nothing", NEW_CERTIFICATE, app_id_of(ctx), {"key": made["key_id"]})
                ]
            )
        years = int(ctx.inputs.get("certificate_years") or CERTIFICATE_YEARS[-1])
        return _plan(
            Change(
                "create",
                NEW_CERTIFICATE,
                app_id_of(ctx),
                {"years": years, "signing_now": keys.signing_key_id},
            ),
            Message.counted(
                gettext_noop(
                    "A new signing certificate, valid for %(years)s years, is made for the IdP "
                    "app %(app)s. It signs nothing until “Switch the IdP to the new "
                    "certificate”; IAM now holds %(count)s certificate."
                ),
                gettext_noop(
                    "A new signing certificate, valid for %(years)s years, is made for the IdP "
                    "app %(app)s. It signs nothing until “Switch the IdP to the new "
                    "certificate”; IAM now holds %(count)s certificates."
                ),
                len(held),
                {"years": years, "app": app_id_of(ctx), "count": len(held)},
            ),
        )

    def apply(self, ctx: StepContext) -> SigningCertificateNewOutputs:
        keys = read_signing_keys(ctx)
        made = self._made(ctx)
        if made is None or made["key_id"] not in keys.keys:
            years = int(ctx.inputs.get("certificate_years") or CERTIFICATE_YEARS[-1])
            marker = rotation_marker(ctx)
            # A worker that died after Graph added the certificate but before the record below
            # left it there, named for this run: adopt it rather than add a second.
            added = find_marked_key(ctx, marker) or add_signing_key(ctx, years=years, marker=marker)
            ctx.record_created(
                NEW_CERTIFICATE,
                added.key_id,
                certificate=added.certificate,
                previous_key_id=keys.signing_key_id,
            )
            made = {
                "key_id": added.key_id,
                "certificate": added.certificate,
                "previous_key_id": keys.signing_key_id,
            }
        return SigningCertificateNewOutputs(
            app_id=app_id_of(ctx),
            previous_key_id=str(made["previous_key_id"]),
            key_id=str(made["key_id"]),
            certificate=str(made["certificate"]),
            fingerprint=certificate_fingerprint(str(made["certificate"])),
        )

    def verify(self, ctx: StepContext) -> list[Finding]:
        made = self._made(ctx)
        key_id = made["key_id"] if made else ""
        return [
            Finding(
                Message(gettext_noop("The IdP app has the new signing certificate")),
                ok=bool(key_id) and key_id in read_signing_keys(ctx).keys,
                detail=key_id,
            )
        ]

    def rollback(self, ctx: StepContext) -> None:
        # The new certificate stays, signing nothing (the module docstring says why).
        return None


@register
class SamlProviderOverlap(Step):
    key = "saml_provider_overlap"
    title = _("IAM trusts both certificates")
    description = _(
        "Gives the IAM identity provider metadata with the old and the new certificate, so "
        "sign-ins signed by either are accepted."
    )

    def plan(self, ctx: StepContext) -> Plan:
        new = _new_key(ctx)
        held = _iam_metadata(ctx)
        if new.fingerprint in signing_fingerprints(held):
            return Plan(changes=[Change("nothing", IAM_METADATA, _provider_arn(ctx))])
        both = adding_certificate(held, new.certificate)
        return _plan(
            Change(
                "update",
                IAM_METADATA,
                _provider_arn(ctx),
                {"certificates": sorted(signing_fingerprints(both))},
                diff=_diff(held, both),
            ),
            Message(
                gettext_noop(
                    "IAM's identity provider %(provider)s is given metadata with the new "
                    "certificate added to the one it holds: while both are there, sign-ins "
                    "signed by either are accepted."
                ),
                {"provider": _provider_arn(ctx)},
            ),
        )

    def apply(self, ctx: StepContext) -> SamlProviderOverlapOutputs:
        new = _new_key(ctx)
        held = _iam_metadata(ctx)
        if new.fingerprint not in signing_fingerprints(held):
            both = adding_certificate(held, new.certificate)
            ctx.record_created(
                IAM_METADATA,
                _provider_arn(ctx),
                previous=held,
                written=sorted(signing_fingerprints(both)),
            )
            _put_iam_metadata(ctx, both)
            held = both
        return SamlProviderOverlapOutputs(
            provider_arn=_provider_arn(ctx), fingerprints=sorted(signing_fingerprints(held))
        )

    def verify(self, ctx: StepContext) -> list[Finding]:
        new = _new_key(ctx)
        held = signing_fingerprints(_iam_metadata(ctx))
        return [
            Finding(
                Message(gettext_noop("IAM holds the new certificate beside the old one")),
                ok=new.fingerprint in held and len(held) > 1,
                detail=", ".join(sorted(held)),
            )
        ]

    def rollback(self, ctx: StepContext) -> None:
        keys = read_signing_keys(ctx)
        new = ctx.outputs_of(SigningCertificateNewOutputs)
        for entry in reversed(ctx.created_of(IAM_METADATA)):
            if new.key_id and keys.signing_key_id == new.key_id:
                raise PermanentError(
                    Message(
                        gettext_noop(
                            "The IdP still signs with the new certificate: IAM keeps it until "
                            "the IdP signs with the old one again."
                        )
                    ),
                    code="signing_rollback_order",
                    hint=Message(gettext_noop("Roll back “Switch the IdP” first, then retry.")),
                )
            _restore_iam(ctx, str(entry.details["previous"]), frozenset(entry.details["written"]))


@register
class SigningCertificateSwitch(Step):
    key = "signing_certificate_switch"
    title = _("Switch the IdP to the new certificate")
    description = _("Makes the IdP app sign with the new certificate, which IAM already trusts.")

    def _check_iam_trusts(self, ctx: StepContext, new: SigningCertificateNewOutputs) -> None:
        # The no-outage rule: never switch before IAM holds the new certificate.
        if new.fingerprint not in signing_fingerprints(_iam_metadata(ctx)):
            raise PermanentError(
                Message(
                    gettext_noop(
                        "IAM's identity provider does not hold the new certificate: switching now "
                        "would refuse every sign-in."
                    )
                ),
                code="signing_switch_untrusted",
                hint=Message(gettext_noop("Run “IAM trusts both certificates” again first.")),
            )

    def plan(self, ctx: StepContext) -> Plan:
        new = _new_key(ctx)
        keys = read_signing_keys(ctx)
        if keys.signing_key_id == new.key_id:
            return Plan(changes=[Change("nothing", SIGNING_KEY, app_id_of(ctx))])
        self._check_iam_trusts(ctx, new)
        return _plan(
            Change(
                "update",
                SIGNING_KEY,
                app_id_of(ctx),
                {"from": keys.signing_key_id, "to": new.key_id},
            ),
            Message(
                gettext_noop(
                    "The IdP app %(app)s signs with the new certificate from now on; IAM "
                    "accepts it, and still the old one."
                ),
                {"app": app_id_of(ctx)},
            ),
        )

    def apply(self, ctx: StepContext) -> SigningCertificateSwitchOutputs:
        new = _new_key(ctx)
        keys = read_signing_keys(ctx)
        previous = keys.signing_key_id
        if previous != new.key_id:
            self._check_iam_trusts(ctx, new)
            ctx.record_created(SIGNING_KEY, app_id_of(ctx), previous=previous, written=new.key_id)
            switch_signing_key(ctx, new.key_id)
        else:
            recorded = ctx.created_of(SIGNING_KEY)
            previous = str(recorded[-1].details["previous"]) if recorded else new.previous_key_id
        return SigningCertificateSwitchOutputs(previous_key_id=previous, signing_key_id=new.key_id)

    def verify(self, ctx: StepContext) -> list[Finding]:
        new = _new_key(ctx)
        signing = read_signing_keys(ctx).signing_key_id
        return [
            Finding(
                Message(gettext_noop("The IdP app signs with the new certificate")),
                ok=signing == new.key_id,
                detail=signing,
            )
        ]

    def rollback(self, ctx: StepContext) -> None:
        signing = read_signing_keys(ctx).signing_key_id
        for entry in reversed(ctx.created_of(SIGNING_KEY)):
            if signing == entry.details["written"] and entry.details["previous"]:
                switch_signing_key(ctx, str(entry.details["previous"]))
                signing = str(entry.details["previous"])


def _sandbox_sign_on(ctx: StepContext, endpoints: dict[str, Any], login: str) -> str:
    """The SAMLResponse the sandbox IdP signs for `login` (its IdP-initiated sign-on)."""
    okta = ctx.idp_connection().cloud == Cloud.OKTA
    base = str(endpoints["okta_org_url"] if okta else endpoints["entra_authority"])
    url = f"{base.rstrip('/')}{SANDBOX_SSO_PATH}{quote(app_id_of(ctx), safe='')}"
    tls = ssl.create_default_context(cafile=endpoints["ca_bundle"])

    def call() -> httpx.Response:
        try:
            with httpx.Client(verify=tls, timeout=SIGN_IN_TIMEOUT, follow_redirects=False) as http:
                return http.get(
                    url + "?" + urlencode({"user": login}), headers={"Accept": "application/json"}
                )
        except httpx.HTTPError as exc:
            raise RetryableError(
                Message(gettext_noop("The sandbox IdP could not be reached.")),
                code="signing_sign_in_unreachable",
            ) from exc

    reply = audited_call(
        ctx.audit,
        cloud="idp",
        service="signin",
        operation="GET idp sign-on",
        request={"user": login},
        call=call,
        summarize=lambda response: {"http_status": response.status_code},
    )
    body = reply.json()
    if reply.status_code != 200 or not body.get("SAMLResponse"):
        raise PermanentError(
            Message(
                gettext_noop("The IdP did not sign %(login)s in: %(detail)s"),
                {"login": login, "detail": str(body.get("error_description") or body)},
            ),
            code="signing_sign_in_idp",
            hint=Message(gettext_noop("Choose a person assigned to the app, then retry.")),
        )
    return str(body["SAMLResponse"])


@register
class SigningCertificateSignIn(Step):
    key = "signing_certificate_sign_in"
    title = _("Sign in with the new certificate")
    description = _(
        "Checks that AWS accepts a sign-in the IdP signs with the new certificate before the old "
        "one is retired."
    )
    rerunnable = True

    def plan(self, ctx: StepContext) -> Plan:
        endpoints = sandbox_endpoints(ctx.idp_connection())
        login = str(ctx.inputs.get("test_user") or "").strip()
        if endpoints is not None and not login:
            return Plan(
                needs_input=True,
                warnings=[Message(gettext_noop("Give the sign-in name of a person to test with."))],
            )
        mode = "sandbox" if endpoints is not None else "live"
        return Plan(
            changes=[Change("nothing", "sign_in_test", login or app_id_of(ctx), {"mode": mode})]
        )

    def apply(self, ctx: StepContext) -> SigningCertificateSignInOutputs:
        new = _new_key(ctx)
        endpoints = sandbox_endpoints(ctx.idp_connection())
        if endpoints is None:
            return self._live(ctx, new)
        login = str(ctx.inputs.get("test_user") or "").strip()
        encoded = _sandbox_sign_on(ctx, endpoints, login)
        try:
            response = parse_saml_response(decode_saml_response(encoded))
            pairs = role_pairs(assertion_of(response))
        except SignInRefused as refused:
            # Its detail is a message id: stored as such, read in the reader's language.
            raise PermanentError(refused.detail, code="signing_sign_in_response") from refused
        signed_with = response_certificates(response)
        if signed_with and new.fingerprint not in signed_with:
            raise PermanentError(
                Message(gettext_noop("The IdP still signs with another certificate.")),
                code="signing_sign_in_old_certificate",
                hint=Message(gettext_noop("Run “Switch the IdP to the new certificate” again.")),
            )
        pair = next((p for p in pairs if p.provider_arn == _provider_arn(ctx)), None)
        if pair is None:
            raise PermanentError(
                Message(
                    gettext_noop("The sign-in of %(login)s names no role with %(provider)s."),
                    {"login": login, "provider": _provider_arn(ctx)},
                ),
                code="signing_sign_in_role",
            )
        # AWS's own check of the signature: STS AssumeRoleWithSAML with the response, as the
        # AWS sign-in page does (IAM User Guide, "SAML 2.0 federation").
        ctx.aws("sts").assume_role_with_saml(
            RoleArn=pair.role_arn, PrincipalArn=pair.provider_arn, SAMLAssertion=encoded
        )
        return SigningCertificateSignInOutputs(
            login=login, role_arn=pair.role_arn, fingerprint=new.fingerprint, mode="sandbox"
        )

    def _live(
        self, ctx: StepContext, new: SigningCertificateNewOutputs
    ) -> SigningCertificateSignInOutputs:
        """No sign-in can be made for a person in live mode: the IdP's metadata now carries the
        new certificate, and IAM holds it."""
        serving = signing_fingerprints(current_metadata(ctx))
        held = signing_fingerprints(_iam_metadata(ctx))
        if new.fingerprint not in serving or new.fingerprint not in held:
            raise PermanentError(
                Message(gettext_noop("The IdP's metadata or IAM lacks the new certificate.")),
                code="signing_sign_in_live",
                hint=Message(gettext_noop("Run the two steps before this one again.")),
            )
        return SigningCertificateSignInOutputs(fingerprint=new.fingerprint, mode="live")

    def verify(self, ctx: StepContext) -> list[Finding]:
        # Its apply is the check.
        return []

    def rollback(self, ctx: StepContext) -> None:
        # A sign-in creates nothing.
        return None


@register
class SamlProviderRetireOld(Step):
    key = "saml_provider_retire_old"
    title = _("Retire the old certificate from IAM")
    description = _(
        "Gives the IAM identity provider the IdP's metadata for the new certificate alone."
    )

    def _wanted(self, ctx: StepContext, new: SigningCertificateNewOutputs) -> str:
        document = current_metadata(ctx)
        if signing_fingerprints(document) != {new.fingerprint}:
            raise PermanentError(
                Message(
                    gettext_noop(
                        "The IdP's metadata does not list the new certificate alone, so the old "
                        "one is kept in IAM."
                    )
                ),
                code="signing_retire_not_switched",
                hint=Message(gettext_noop("Run “Switch the IdP to the new certificate” again.")),
            )
        return document

    def plan(self, ctx: StepContext) -> Plan:
        new = _new_key(ctx)
        held = _iam_metadata(ctx)
        if signing_fingerprints(held) == {new.fingerprint}:
            return Plan(changes=[Change("nothing", IAM_METADATA, _provider_arn(ctx))])
        wanted = self._wanted(ctx, new)
        return _plan(
            Change(
                "update",
                IAM_METADATA,
                _provider_arn(ctx),
                {"certificates": [new.fingerprint]},
                diff=_diff(held, wanted),
            ),
            Message(
                gettext_noop(
                    "IAM's identity provider %(provider)s keeps only the new certificate: "
                    "a response signed by the old one is refused from now on."
                ),
                {"provider": _provider_arn(ctx)},
            ),
        )

    def apply(self, ctx: StepContext) -> SamlProviderRetireOldOutputs:
        new = _new_key(ctx)
        held = _iam_metadata(ctx)
        if signing_fingerprints(held) != {new.fingerprint}:
            wanted = self._wanted(ctx, new)
            ctx.record_created(
                IAM_METADATA, _provider_arn(ctx), previous=held, written=[new.fingerprint]
            )
            _put_iam_metadata(ctx, wanted)
        return SamlProviderRetireOldOutputs(
            provider_arn=_provider_arn(ctx), fingerprints=[new.fingerprint]
        )

    def verify(self, ctx: StepContext) -> list[Finding]:
        new = _new_key(ctx)
        held = signing_fingerprints(_iam_metadata(ctx))
        return [
            Finding(
                Message(gettext_noop("IAM holds the new certificate alone")),
                ok=held == {new.fingerprint},
                detail=", ".join(sorted(held)),
            )
        ]

    def rollback(self, ctx: StepContext) -> None:
        for entry in reversed(ctx.created_of(IAM_METADATA)):
            _restore_iam(ctx, str(entry.details["previous"]), frozenset(entry.details["written"]))


def response_certificates(response: etree._Element) -> set[str]:
    """The fingerprints of the certificates a SAML response's signatures carry."""
    return {certificate_fingerprint(e.text or "") for e in response.iter(_DS_CERTIFICATE)}
