"""Reads and changes the Okta org's AWS Account Federation app (`amazon_aws`): find it, change
its settings without losing the ones other steps own, fetch the SAML metadata of the key it signs
with, remove it."""

from __future__ import annotations

import base64
import copy
import hashlib
from typing import Any
from urllib.parse import quote

from django.utils.translation import gettext_noop
from okta.client import Client as OktaClient

from provisioning.errors import PermanentError, WaitForCloud
from provisioning.messages import Message
from provisioning.okta.rest import okta_call, okta_pages
from provisioning.saml import parse_idp_metadata

# The catalog name of Okta's "AWS Account Federation" app (the name in the app's Okta links,
# /home/amazon_aws/..., when an admin adds it by hand).
AWS_APP_NAME = "amazon_aws"
SAML_2_0 = "SAML_2_0"
# Okta's "not found" error code (Okta API reference, "Error codes").
NOT_FOUND = "E0000007"
# Fields of `app` documents the PUT /api/v1/apps/{id} body carries back (Okta replaces the whole
# app on PUT, so everything not sent would be reset).
REPLACED_FIELDS = ("name", "label", "signOnMode", "settings", "credentials", "visibility")


def app_path(app_id: str) -> str:
    """The app's API path; the id is encoded as one path segment, whoever typed it."""
    return f"/api/v1/apps/{quote(app_id, safe='')}"


def get_app(client: OktaClient, app_id: str) -> dict[str, Any] | None:
    """The app, or None when Okta no longer has it."""
    try:
        return okta_call(client, "GET", app_path(app_id))
    except PermanentError as error:
        if error.code == NOT_FOUND:
            return None
        raise


def find_apps(client: OktaClient, label: str) -> list[dict[str, Any]]:
    """The org's amazon_aws apps labelled exactly `label` (Okta's `q` matches label prefixes)."""
    return [
        app
        for app in okta_pages(client, "/api/v1/apps", params={"q": label, "limit": 200})
        if app.get("name") == AWS_APP_NAME and app.get("label") == label
    ]


def app_settings(app: dict[str, Any]) -> dict[str, Any]:
    return dict((app.get("settings") or {}).get("app") or {})


def relay_state_of(app: dict[str, Any]) -> str:
    return str(((app.get("settings") or {}).get("signOn") or {}).get("defaultRelayState") or "")


def differences(app: dict[str, Any], wanted_app_settings: dict[str, Any]) -> dict[str, Any]:
    """{setting: [now, wanted]} for the settings.app keys whose value differs."""
    current = app_settings(app)
    return {
        key: [current.get(key), value]
        for key, value in wanted_app_settings.items()
        if current.get(key) != value
    }


def replace_app(
    client: OktaClient,
    app: dict[str, Any],
    *,
    label: str | None = None,
    app_settings_update: dict[str, Any] | None = None,
    relay_state: str | None = None,
) -> dict[str, Any]:
    """PUT the app back with these changes and everything else as it was (Okta replaces the
    whole app on PUT)."""
    body = {key: copy.deepcopy(app[key]) for key in REPLACED_FIELDS if key in app}
    body.setdefault("settings", {})
    if label is not None:
        body["label"] = label
    if app_settings_update:
        body["settings"]["app"] = {**app_settings(app), **app_settings_update}
    if relay_state is not None:
        body["settings"].setdefault("signOn", {})
        body["settings"]["signOn"] = {
            **body["settings"]["signOn"],
            "defaultRelayState": relay_state,
        }
    return okta_call(client, "PUT", app_path(app["id"]), body)


def signing_kid(app: dict[str, Any]) -> str:
    return str(((app.get("credentials") or {}).get("signing") or {}).get("kid") or "")


def metadata_xml(client: OktaClient, app_id: str) -> str:
    """The app's IdP metadata for the key it signs with now, checked against that key.

    The app is read again here, not taken from an earlier read: an app whose signing key was
    switched (credentials.signing.kid, Okta "Update SAML certificates") since would otherwise
    hand IAM the metadata of the old key, which `?kid=` still serves, and every sign-in would
    then fail AWS's signature check. The downloaded certificate is compared with the key
    credential's own (GET /api/v1/apps/{id}/credentials/keys/{kid}); while they differ the
    step waits for Okta instead of giving IAM the wrong certificate.
    """
    app = get_app(client, app_id)
    if app is None:
        raise PermanentError(
            f"The Okta app {app_id} no longer exists.",
            code="okta_app_gone",
            hint="Retry the step; it creates the app again.",
        )
    kid = signing_kid(app)
    metadata = str(
        okta_call(
            client,
            "GET",
            f"{app_path(app_id)}/sso/saml/metadata",
            params={"kid": kid} if kid else None,
            # The one media type Okta's management API describes for this document (OpenAPI:
            # previewSAMLmetadataForApplication answers text/xml).
            accept="text/xml",
        )
    )
    if not kid:
        return metadata
    key = okta_call(client, "GET", f"{app_path(app_id)}/credentials/keys/{kid}")
    wanted = {_fingerprint(certificate) for certificate in key.get("x5c") or []}
    if wanted and not wanted & parse_idp_metadata(metadata).fingerprints:
        raise WaitForCloud(
            Message(
                gettext_noop(
                    "Okta's metadata for the app does not carry the certificate of its signing key "
                    "%(kid)s yet; the wizard downloads it again shortly."
                ),
                {"kid": kid},
            )
        )
    return metadata


def _fingerprint(x5c: str) -> str:
    """A key credential's x5c certificate (base64 DER) as CertificateInfo.fingerprint_sha256."""
    digest = hashlib.sha256(base64.b64decode(x5c)).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def user_access_url(app: dict[str, Any]) -> str:
    """The app's embed link (what its tile on the Okta dashboard opens)."""
    links = (app.get("_links") or {}).get("appLinks") or []
    return str(links[0].get("href", "")) if links else ""


def delete_app(client: OktaClient, app_id: str) -> None:
    """Deactivate, then delete (Okta refuses to delete an active app); gone already is fine."""
    app = get_app(client, app_id)
    if app is None:
        return
    if app.get("status") == "ACTIVE":
        okta_call(client, "POST", f"{app_path(app_id)}/lifecycle/deactivate")
    okta_call(client, "DELETE", app_path(app_id))
