"""The credentials each cloud's sign-in methods take: which settings and secrets, which of them are
required, and the choices of a menu. The web labels them (wizard/connection_labels.py).

What each connection stores, per cloud and sign-in method (config is shown on the page, secrets
are encrypted and never shown back):

- AWS (config "method"):
  - "default_chain": nothing; the worker host's environment, shared files or instance role.
  - "profile": config "profile".
  - "access_key": secrets "access_key_id", "secret_access_key".
  - "assume_role": config "role_arn", optional "external_id", "role_session_name"; optional
    secrets "access_key_id", "secret_access_key" for the base identity (else the default chain).
- Entra ID: config "tenant_id", "client_id" and
  - "client_secret": secret "client_secret".
  - "certificate": secret "certificate" (PEM: private key + certificate), optional
    "certificate_password".
- Okta: config "org_url" (https://<org>.okta.com and Okta's other domains) and
  - "api_token": secret "api_token".
  - "private_key": config "client_id", optional "scopes" (space separated) and "key_id",
    "dpop" ("on" by default, or "off"); secret "private_key" (PEM).
"""

from __future__ import annotations

from dataclasses import dataclass

from provisioning.models import Cloud


@dataclass(frozen=True)
class CredentialField:
    """One setting or secret of a connection; one with `choices` is a menu whose first choice is
    the default."""

    name: str
    required: bool = True
    multiline: bool = False
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class SignInMethod:
    """What a connection that signs in this way stores: its settings, then its secrets."""

    config: tuple[CredentialField, ...] = ()
    secrets: tuple[CredentialField, ...] = ()


_ENTRA_IDS = (CredentialField("tenant_id"), CredentialField("client_id"))
_OKTA_ORG = CredentialField("org_url")

# cloud -> method -> what it stores, in the order the forms show it.
SIGN_IN_METHODS: dict[str, dict[str, SignInMethod]] = {
    Cloud.AWS.value: {
        "default_chain": SignInMethod(),
        "profile": SignInMethod(config=(CredentialField("profile"),)),
        "access_key": SignInMethod(
            secrets=(CredentialField("access_key_id"), CredentialField("secret_access_key"))
        ),
        "assume_role": SignInMethod(
            config=(
                CredentialField("role_arn"),
                CredentialField("external_id", required=False),
                CredentialField("role_session_name", required=False),
            ),
            secrets=(
                CredentialField("access_key_id", required=False),
                CredentialField("secret_access_key", required=False),
            ),
        ),
    },
    Cloud.ENTRA.value: {
        "client_secret": SignInMethod(
            config=_ENTRA_IDS, secrets=(CredentialField("client_secret"),)
        ),
        "certificate": SignInMethod(
            config=_ENTRA_IDS,
            secrets=(
                CredentialField("certificate", multiline=True),
                CredentialField("certificate_password", required=False),
            ),
        ),
    },
    Cloud.OKTA.value: {
        "api_token": SignInMethod(config=(_OKTA_ORG,), secrets=(CredentialField("api_token"),)),
        "private_key": SignInMethod(
            config=(
                _OKTA_ORG,
                CredentialField("client_id"),
                CredentialField("scopes", required=False),
                CredentialField("key_id", required=False),
                CredentialField("dpop", choices=("on", "off")),
            ),
            secrets=(CredentialField("private_key", multiline=True),),
        ),
    },
}


def sign_in_method(cloud: str, method: str) -> SignInMethod | None:
    """The method's fields, or None for a cloud or method the wizard does not know."""
    return SIGN_IN_METHODS.get(cloud, {}).get(method)
