"""The sandbox Okta org in memory: people, groups, AWS apps and their assignments, Okta-shaped."""

from __future__ import annotations

import base64
import copy
import datetime as dt
import hashlib
import random
import string
import threading
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sandbox.directory import Directory, seed_directory
from sandbox.saml_idp import SigningCertificate

# Okta object ids are 20 characters with a type prefix (00u users, 00g groups, 0oa apps,
# exk app keys as in the IdP issuer http://www.okta.com/exk..., ra role assignments).
ID_LENGTH = 20
ID_ALPHABET = string.ascii_letters + string.digits
USER_ID_PREFIX = "00u"
GROUP_ID_PREFIX = "00g"
APP_ID_PREFIX = "0oa"
APP_KEY_PREFIX = "exk"
ROLE_ID_PREFIX = "ra1"

AWS_APP_NAME = "amazon_aws"
EVERYONE_GROUP = "Everyone"
# The AWS Account Federation app's username default: the Okta login (source.login).
DEFAULT_USERNAME_TEMPLATE = "${source.login}"
# What an org admin holding the API token has (GET /api/v1/users/{id}/roles).
TOKEN_OWNER_ROLE = ("SUPER_ADMIN", "Super Administrator")

# The username templates Okta's "Application username format" menu offers for SAML apps
# (Okta username, Email, and their prefixes), keyed without spaces.
_USERNAME_TEMPLATES = {
    "${source.login}": lambda user: user.login,
    "${source.email}": lambda user: user.email,
    '${fn:substringBefore(source.login,"@")}': lambda user: user.login.split("@")[0],
    '${fn:substringBefore(source.email,"@")}': lambda user: user.email.split("@")[0],
}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unsigned(number: int) -> bytes:
    return number.to_bytes((number.bit_length() + 7) // 8, "big")


def timestamp(moment: dt.datetime) -> str:
    """Okta's timestamp format: 2024-05-01T09:30:00.000Z."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{moment.microsecond // 1000:03d}Z"
    )


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def render_username(template: str, user: OrgUser) -> str:
    render = _USERNAME_TEMPLATES.get(template.replace(" ", ""))
    if render is None:
        raise ValueError(template)
    return render(user)


def supported_username_template(template: str) -> bool:
    return template.replace(" ", "") in _USERNAME_TEMPLATES


@dataclass
class OrgUser:
    id: str
    login: str
    email: str
    first_name: str
    last_name: str  # "" for the person without a surname
    created: dt.datetime
    status: str = "ACTIVE"


@dataclass
class OrgGroup:
    id: str
    name: str
    description: str
    type: str  # OKTA_GROUP, or BUILT_IN for Everyone
    created: dt.datetime
    last_updated: dt.datetime
    last_membership_updated: dt.datetime
    member_ids: list[str] = field(default_factory=list)


@dataclass
class AppUser:
    """A direct (scope USER) assignment of a person to an app."""

    user_id: str
    user_name: str | None  # None: the app's username template decides
    profile: dict[str, Any]
    created: dt.datetime
    last_updated: dt.datetime


@dataclass
class AppGroup:
    group_id: str
    priority: int
    profile: dict[str, Any]
    last_updated: dt.datetime


@dataclass
class RoleDownload:
    """What the app's Provisioning tab holds once an admin typed the IAM user's access key."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    update_user_attributes: bool
    # role name -> role ARN, for roles that trust a SAML provider
    roles: dict[str, str]
    account_aliases: list[str]
    refreshed: dt.datetime


@dataclass
class AppKey:
    """One of an app's SAML signing key credentials (GET /api/v1/apps/{id}/credentials/keys)."""

    certificate: SigningCertificate = field(repr=False)
    created: dt.datetime


@dataclass
class AwsApp:
    id: str
    label: str
    status: str  # ACTIVE or INACTIVE
    external_key: str
    kid: str
    certificate: SigningCertificate = field(repr=False)
    created: dt.datetime
    last_updated: dt.datetime
    settings: dict[str, Any]
    username_template: dict[str, Any]
    visibility: dict[str, Any]
    accessibility: dict[str, Any]
    users: dict[str, AppUser] = field(default_factory=dict)
    groups: dict[str, AppGroup] = field(default_factory=dict)
    provisioning: RoleDownload | None = None
    # Every key credential of the app by kid; `kid`/`certificate` is the one it signs with
    # (credentials.signing.kid).
    keys: dict[str, AppKey] = field(default_factory=dict)
    # "amazon_aws" for the catalog app; a custom SAML 2.0 app gets a generated unique key
    # (okta-sdk-python 3.4.6, okta/models/saml_application.py, `name`: "A unique key is
    # generated for the custom app instance when you use SAML_2_0 signOnMode").
    name: str = AWS_APP_NAME

    @property
    def custom(self) -> bool:
        return self.name != AWS_APP_NAME

    def switch_signing_key(self, kid: str) -> None:
        self.kid, self.certificate = kid, self.keys[kid].certificate

    @property
    def app_settings(self) -> dict[str, Any]:
        return self.settings.get("app") or {}

    @property
    def sign_on_settings(self) -> dict[str, Any]:
        return self.settings.get("signOn") or {}

    @property
    def selectable_roles(self) -> dict[str, str]:
        """Role name -> ARN that app assignments may name (empty until roles were downloaded with
        "Update User Attributes" ticked, as in Okta)."""
        if self.provisioning is None or not self.provisioning.update_user_attributes:
            return {}
        return self.provisioning.roles


def default_app_settings() -> dict[str, Any]:
    """settings of a new amazon_aws instance before the request's own values are merged in."""
    return {
        "app": {
            "awsEnvironmentType": "aws.amazon",
            "loginURL": "https://console.aws.amazon.com/ec2/home",
            "sessionDuration": 3600,
            "joinAllRoles": False,
            "useGroupMapping": False,
            "identityProviderArn": None,
            "roleValuePattern": None,
            "groupFilter": None,
            "appFilter": None,
        },
        "notifications": {"vpn": {"network": {"connection": "DISABLED"}, "message": None}},
        # Undeclared in Okta's ApplicationSettings schema, yet in Okta's own answers: the
        # management OpenAPI's example settingsResponseBaseEx (okta-management-openapi-spec,
        # dist/current/management-minimal.yaml) carries it.
        "manualProvisioning": False,
        "implicitAssignment": False,
        "notes": {"admin": None, "enduser": None},
        "signOn": {"defaultRelayState": None},
    }


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


class OktaOrg:
    """Everything the org knows. Callers hold `lock` while they read or change it."""

    def __init__(self, *, org_url: str, domain: str, agents: int, seed: int) -> None:
        self.org_url = org_url.rstrip("/")
        self.lock = threading.RLock()
        # Ids only need to be unique and stable for a given seed; nothing secret rides on them.
        self._ids = random.Random(seed)  # noqa: S311
        self.users: dict[str, OrgUser] = {}
        self.groups: dict[str, OrgGroup] = {}
        self.apps: dict[str, AwsApp] = {}
        self._seed(seed_directory(domain=domain, agents=agents, seed=seed))
        self.token_owner_id = next(iter(self.users))

    def find_signing_certificate(self, thumbprint: str) -> SigningCertificate | None:
        with self.lock:
            for app in self.apps.values():
                for held in [app.certificate, *(key.certificate for key in app.keys.values())]:
                    if held.thumbprint == thumbprint.upper():
                        return held
        return None

    def replace_signing_certificate(self, old: SigningCertificate, new: SigningCertificate) -> None:
        """`new` where `old` was, in every app's key credentials (the sandbox's certificate
        clock, not an Okta call); the kid stays, as it names the key, not its dates."""
        with self.lock:
            for app in self.apps.values():
                for key in app.keys.values():
                    if key.certificate.thumbprint == old.thumbprint:
                        key.certificate = new
                if app.certificate.thumbprint == old.thumbprint:
                    app.certificate = new

    def new_id(self, prefix: str) -> str:
        with self.lock:
            return prefix + "".join(
                self._ids.choice(ID_ALPHABET) for _ in range(ID_LENGTH - len(prefix))
            )

    def _seed(self, directory: Directory) -> None:
        created = now()
        for person in directory.people:
            user = OrgUser(
                id=self.new_id(USER_ID_PREFIX),
                login=person.login,
                email=person.email,
                first_name=person.given_name,
                last_name=person.surname,
                created=created,
            )
            self.users[user.id] = user
        by_login = {user.login: user.id for user in self.users.values()}
        everyone = self.add_group(EVERYONE_GROUP, "All users in your organization", "BUILT_IN")
        everyone.member_ids = list(self.users)
        direct: dict[str, list[str]] = {name: [] for name in directory.group_names}
        for person in directory.people:
            for name in person.groups:
                direct[name].append(by_login[person.login])

        # Okta groups don't nest: a nested directory group's members become direct members.
        def members(name: str, seen: frozenset[str] = frozenset()) -> list[str]:
            found = list(direct.get(name, []))
            for child in directory.nested_groups.get(name, []):
                if child not in seen:
                    found += members(child, seen | {name})
            return list(dict.fromkeys(found))

        for name in directory.group_names:
            self.add_group(name, f"{name} (seeded)").member_ids = members(name)

    def add_group(self, name: str, description: str, kind: str = "OKTA_GROUP") -> OrgGroup:
        with self.lock:
            moment = now()
            group = OrgGroup(
                id=self.new_id(GROUP_ID_PREFIX),
                name=name,
                description=description,
                type=kind,
                created=moment,
                last_updated=moment,
                last_membership_updated=moment,
            )
            self.groups[group.id] = group
            return group

    def find_user(self, reference: str) -> OrgUser | None:
        """By id, or by login case-insensitively as Okta's GET /api/v1/users/{login} does."""
        with self.lock:
            if reference in self.users:
                return self.users[reference]
            wanted = reference.lower()
            return next((u for u in self.users.values() if u.login.lower() == wanted), None)

    def group_ids_of(self, user_id: str) -> list[str]:
        with self.lock:
            return [g.id for g in self.groups.values() if user_id in g.member_ids]

    # -- app assignments ------------------------------------------------------------------

    def assigning_groups(self, app: AwsApp, user_id: str) -> list[AppGroup]:
        """The app's group assignments that reach `user_id`, highest priority (lowest number)
        first, as Okta orders them when it picks the profile of a group-assigned user."""
        with self.lock:
            found = [
                assignment
                for group_id, assignment in app.groups.items()
                if user_id in self.groups[group_id].member_ids
            ]
            return sorted(found, key=lambda assignment: assignment.priority)

    def is_assigned(self, app: AwsApp, user_id: str) -> bool:
        return user_id in app.users or bool(self.assigning_groups(app, user_id))

    def app_username(self, app: AwsApp, user: OrgUser) -> str:
        direct = app.users.get(user.id)
        if direct is not None and direct.user_name:
            return direct.user_name
        return render_username(
            app.username_template.get("template") or DEFAULT_USERNAME_TEMPLATE, user
        )

    def app_user_ids(self, app: AwsApp) -> list[str]:
        """Directly assigned people first (in assignment order), then those reached via groups."""
        with self.lock:
            ids = list(app.users)
            for group_id in app.groups:
                ids += self.groups[group_id].member_ids
            return list(dict.fromkeys(ids))

    # -- JSON as Okta serves it -----------------------------------------------------------

    def user_json(self, user: OrgUser) -> dict[str, Any]:
        href = f"{self.org_url}/api/v1/users/{user.id}"
        profile: dict[str, Any] = {
            "firstName": user.first_name,
            "lastName": user.last_name or None,
            "mobilePhone": None,
            "secondEmail": None,
            "login": user.login,
            "email": user.email,
        }
        return {
            "id": user.id,
            "status": user.status,
            "created": timestamp(user.created),
            "activated": timestamp(user.created),
            "statusChanged": timestamp(user.created),
            "lastLogin": None,
            "lastUpdated": timestamp(user.created),
            "passwordChanged": timestamp(user.created),
            "type": {"id": "oty1sandboxdefault00"},
            "profile": profile,
            "credentials": {
                "password": {},
                "provider": {"type": "OKTA", "name": "OKTA"},
            },
            "_links": {"self": {"href": href}},
        }

    def group_json(self, group: OrgGroup) -> dict[str, Any]:
        href = f"{self.org_url}/api/v1/groups/{group.id}"
        return {
            "id": group.id,
            "created": timestamp(group.created),
            "lastUpdated": timestamp(group.last_updated),
            "lastMembershipUpdated": timestamp(group.last_membership_updated),
            "objectClass": ["okta:user_group"],
            "type": group.type,
            "profile": {"name": group.name, "description": group.description},
            "_links": {
                "self": {"href": href},
                "users": {"href": f"{href}/users"},
                "apps": {"href": f"{href}/apps"},
            },
        }

    def group_stats(self, group: OrgGroup) -> dict[str, Any]:
        """The Group schema's `_embedded.stats` (okta-management-openapi-spec, Group): "Number of
        users in the group", "Number of apps associated with the group" (the apps it is assigned
        to), "Number of group push mappings" (the sandbox pushes no groups: 0)."""
        return {
            "usersCount": len(group.member_ids),
            "appsCount": sum(1 for app in self.apps.values() if group.id in app.groups),
            "groupPushMappingsCount": 0,
        }

    def app_json(self, app: AwsApp) -> dict[str, Any]:
        href = f"{self.org_url}/api/v1/apps/{app.id}"
        lifecycle = "deactivate" if app.status == "ACTIVE" else "activate"
        return {
            "id": app.id,
            "orn": f"orn:okta:idp:sandbox:apps:{app.name}:{app.id}",
            "name": app.name,
            "label": app.label,
            "status": app.status,
            "lastUpdated": timestamp(app.last_updated),
            "created": timestamp(app.created),
            "accessibility": copy.deepcopy(app.accessibility),
            "visibility": copy.deepcopy(app.visibility),
            "features": [],
            "signOnMode": "SAML_2_0",
            "credentials": {
                "userNameTemplate": copy.deepcopy(app.username_template),
                "signing": {"kid": app.kid},
            },
            "settings": copy.deepcopy(app.settings),
            "_links": {
                "help": {
                    "href": f"{self.org_url}/app/{app.name}/{app.id}/setup/help/SAML_2_0/"
                    "external-doc",
                    "type": "text/html",
                },
                "metadata": {
                    "href": f"{href}/sso/saml/metadata",
                    "type": "application/xml",
                },
                "appLinks": [
                    {
                        "name": "login",
                        "href": f"{self.org_url}/home/{app.name}/{app.id}/272",
                        "type": "text/html",
                    }
                ],
                "groups": {"href": f"{href}/groups"},
                "users": {"href": f"{href}/users"},
                lifecycle: {"href": f"{href}/lifecycle/{lifecycle}", "hints": {"allow": ["POST"]}},
            },
        }

    def app_user_json(self, app: AwsApp, user: OrgUser) -> dict[str, Any]:
        direct = app.users.get(user.id)
        groups = self.assigning_groups(app, user.id)
        if direct is not None:
            scope, profile = "USER", direct.profile
            created, updated = direct.created, direct.last_updated
        else:
            scope, profile = "GROUP", groups[0].profile
            created = updated = groups[0].last_updated
        return {
            "id": user.id,
            "externalId": None,
            "created": timestamp(created),
            "lastUpdated": timestamp(updated),
            "scope": scope,
            "status": "ACTIVE",
            "statusChanged": timestamp(created),
            "passwordChanged": None,
            "syncState": "DISABLED",
            "credentials": {"userName": self.app_username(app, user)},
            "profile": copy.deepcopy(profile),
            "_links": {
                "app": {"href": f"{self.org_url}/api/v1/apps/{app.id}"},
                "user": {"href": f"{self.org_url}/api/v1/users/{user.id}"},
            },
        }

    def app_group_json(self, app: AwsApp, assignment: AppGroup) -> dict[str, Any]:
        return {
            "id": assignment.group_id,
            "lastUpdated": timestamp(assignment.last_updated),
            "priority": assignment.priority,
            "profile": copy.deepcopy(assignment.profile),
            "_links": {
                "app": {"href": f"{self.org_url}/api/v1/apps/{app.id}"},
                "group": {"href": f"{self.org_url}/api/v1/groups/{assignment.group_id}"},
            },
        }

    @staticmethod
    def key_json(kid: str, key: AppKey) -> dict[str, Any]:
        """An application key credential as Okta serves it (the management API's JsonWebKey:
        kid, kty, use, x5c, x5t#S256, e, n, created, lastUpdated, expiresAt)."""
        certificate = x509.load_pem_x509_certificate(key.certificate.cert_pem.encode())
        der = certificate.public_bytes(serialization.Encoding.DER)
        public_key = certificate.public_key()
        # The sandbox signs with the RSA keys sandbox/saml_idp.py makes; a JWK of kty RSA
        # carries that key's modulus and exponent.
        assert isinstance(public_key, rsa.RSAPublicKey)
        numbers = public_key.public_numbers()
        return {
            "kid": kid,
            "kty": "RSA",
            "use": "sig",
            "x5c": [key.certificate.cert_base64],
            "x5t#S256": _b64url(hashlib.sha256(der).digest()),
            "e": _b64url(_unsigned(numbers.e)),
            "n": _b64url(_unsigned(numbers.n)),
            "created": timestamp(key.created),
            "lastUpdated": timestamp(key.created),
            "expiresAt": timestamp(key.certificate.not_after),
        }

    def roles_json(self, user: OrgUser) -> list[dict[str, Any]]:
        if user.id != self.token_owner_id:
            return []
        role_type, label = TOKEN_OWNER_ROLE
        return [
            {
                "id": ROLE_ID_PREFIX + user.id[len(ROLE_ID_PREFIX) :],
                "label": label,
                "type": role_type,
                "status": "ACTIVE",
                "created": timestamp(user.created),
                "lastUpdated": timestamp(user.created),
                "assignmentType": "USER",
                "_links": {
                    "assignee": {"href": f"{self.org_url}/api/v1/users/{user.id}"},
                },
            }
        ]
