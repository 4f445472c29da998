"""An IdP app's SAML signing keys, Okta's and Entra's alike: which one signs, add one that does
not sign yet, switch to it, and the IdP's metadata for the key that signs.

A key is named by what its IdP calls it: Okta's key credential `kid`; Entra's certificate
thumbprint (SHA-1, upper-case hex), which preferredTokenSigningKeyThumbprint names. Certificates
travel as base64 DER, as metadata's X509Certificate and Graph's keyCredentials `key` carry them.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.utils.translation import gettext_noop
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph.generated.models.service_principal import ServicePrincipal
from msgraph.generated.service_principals.item.add_token_signing_certificate.add_token_signing_certificate_post_request_body import (  # noqa: E501
    AddTokenSigningCertificatePostRequestBody,
)
from msgraph.generated.service_principals.item.service_principal_item_request_builder import (
    ServicePrincipalItemRequestBuilder,
)

from provisioning.context import StepContext
from provisioning.entra.client import run_graph
from provisioning.entra.graph_reads import get_or_none
from provisioning.entra.metadata import download_federation_metadata
from provisioning.errors import PermanentError
from provisioning.messages import Message
from provisioning.models import Cloud
from provisioning.okta import aws_app
from provisioning.okta.rest import okta_call

# The subject of the certificate Entra makes (addTokenSigningCertificate: displayName "must
# start with CN="); the same one entra_app gives the first certificate.
ENTRA_CERTIFICATE_SUBJECT = "CN=Amazon Connect"
DAYS_PER_YEAR = 365


@dataclass(frozen=True)
class SigningKeys:
    """What the IdP app signs with now and the keys it has (key id → certificate, "" when the
    IdP does not hand the certificate back on a read: Graph leaves keyCredentials' `key` out)."""

    signing_key_id: str
    keys: dict[str, str]


@dataclass(frozen=True)
class NewKey:
    key_id: str
    certificate: str  # base64 DER


def _is_okta(ctx: StepContext) -> bool:
    return str(ctx.idp_connection().cloud) == Cloud.OKTA


def app_id_of(ctx: StepContext) -> str:
    return str(ctx.inputs.get("app_id") or "").strip()


def _app_gone(app_id: str) -> PermanentError:
    return PermanentError(
        Message(gettext_noop("The IdP app %(app)s no longer exists."), {"app": app_id}),
        code="signing_app_gone",
        hint=Message(
            gettext_noop("Check the app ID: it is the app the federation signs in through.")
        ),
    )


def _okta_app(ctx: StepContext) -> dict[str, Any]:
    app = aws_app.get_app(ctx.okta(), app_id_of(ctx))
    if app is None:
        raise _app_gone(app_id_of(ctx))
    return app


def _entra_service_principal(ctx: StepContext) -> Any:
    client = ctx.graph()
    service_principal = get_or_none(client.service_principals_with_app_id(app_id_of(ctx)).get())
    if service_principal is None:
        raise _app_gone(app_id_of(ctx))
    return service_principal


def _thumbprint(key_credential: Any) -> str:
    return str((key_credential.custom_key_identifier or b"").hex().upper())


def read_signing_keys(ctx: StepContext) -> SigningKeys:
    if _is_okta(ctx):
        app = _okta_app(ctx)
        listed = okta_call(ctx.okta(), "GET", f"{aws_app.app_path(app['id'])}/credentials/keys")
        return SigningKeys(
            signing_key_id=aws_app.signing_kid(app),
            keys={str(key["kid"]): str((key.get("x5c") or [""])[0]) for key in listed or []},
        )
    service_principal = _entra_service_principal(ctx)
    keys = {
        _thumbprint(key): base64.b64encode(key.key).decode() if key.key else ""
        for key in service_principal.key_credentials or []
        if key.usage == "Verify" and _thumbprint(key)
    }
    preferred = str(service_principal.preferred_token_signing_key_thumbprint or "").upper()
    return SigningKeys(signing_key_id=preferred, keys=keys)


def rotation_marker(ctx: StepContext) -> str:
    """The name a rotation run gives the Entra certificate it adds (the key credential's
    displayName and the certificate's subject): the run's own, so that after a crash between
    Graph's answer and the step's record the run finds the certificate it made instead of
    adding a second one (find_marked_key)."""
    return f"{ENTRA_CERTIFICATE_SUBJECT} rotation {ctx.run_id}"


def find_marked_key(ctx: StepContext, marker: str) -> NewKey | None:
    """The Entra certificate whose key credential is named `marker`, with its certificate: Graph
    hands a key credential's `key` back only on a $select=keyCredentials read of one service
    principal (Graph reference, keyCredential resource type). None for Okta, whose key
    credentials carry no name of ours."""
    if _is_okta(ctx):
        return None
    service_principal = _entra_service_principal(ctx)
    builder = ctx.graph().service_principals.by_service_principal_id(service_principal.id)
    query = ServicePrincipalItemRequestBuilder.ServicePrincipalItemRequestBuilderGetQueryParameters(
        select=["id", "keyCredentials"]
    )
    read = run_graph(builder.get(RequestConfiguration(query_parameters=query)))
    for key in (read.key_credentials if read else None) or []:
        if key.usage == "Verify" and key.display_name == marker and _thumbprint(key):
            return NewKey(
                key_id=_thumbprint(key),
                certificate=base64.b64encode(key.key).decode() if key.key else "",
            )
    return None


def add_signing_key(ctx: StepContext, *, years: int, marker: str = "") -> NewKey:
    """A new signing certificate for the app, which signs nothing until switch_signing_key;
    Entra's is named `marker` (a subject, "CN=...") when one is given."""
    if _is_okta(ctx):
        app = _okta_app(ctx)
        # Okta Apps API, "Generate new Application Key Credential": validityYears 2 to 10.
        key = okta_call(
            ctx.okta(),
            "POST",
            f"{aws_app.app_path(app['id'])}/credentials/keys/generate",
            params={"validityYears": years},
        )
        return NewKey(key_id=str(key["kid"]), certificate=str((key.get("x5c") or [""])[0]))
    service_principal = _entra_service_principal(ctx)
    builder = ctx.graph().service_principals.by_service_principal_id(service_principal.id)
    end = dt.datetime.now(dt.UTC) + dt.timedelta(days=DAYS_PER_YEAR * years)
    added = run_graph(
        builder.add_token_signing_certificate.post(
            AddTokenSigningCertificatePostRequestBody(
                display_name=marker or ENTRA_CERTIFICATE_SUBJECT, end_date_time=end
            )
        )
    )
    return NewKey(
        key_id=str(added.thumbprint or "").upper(),
        certificate=base64.b64encode(added.key or b"").decode(),
    )


def switch_signing_key(ctx: StepContext, key_id: str) -> None:
    """Make the app sign with `key_id` (Okta: credentials.signing.kid on a PUT of the whole app;
    Entra: preferredTokenSigningKeyThumbprint)."""
    if _is_okta(ctx):
        app = _okta_app(ctx)
        body = {key: copy.deepcopy(app[key]) for key in aws_app.REPLACED_FIELDS if key in app}
        credentials = body.setdefault("credentials", {})
        credentials["signing"] = {**(credentials.get("signing") or {}), "kid": key_id}
        okta_call(ctx.okta(), "PUT", aws_app.app_path(app["id"]), body)
        return
    service_principal = _entra_service_principal(ctx)
    builder = ctx.graph().service_principals.by_service_principal_id(service_principal.id)
    run_graph(builder.patch(ServicePrincipal(preferred_token_signing_key_thumbprint=key_id)))


def current_metadata(ctx: StepContext) -> str:
    """The IdP's metadata for the key the app signs with now."""
    if _is_okta(ctx):
        return aws_app.metadata_xml(ctx.okta(), app_id_of(ctx))
    return download_federation_metadata(ctx.idp_connection(), app_id_of(ctx), audit=ctx.audit)
