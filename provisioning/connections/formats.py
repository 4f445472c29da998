"""The format and length of each connection field, as the clouds' API references define them, and
the characters no field may hold."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from django.utils.functional import Promise
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _


@dataclass(frozen=True)
class FieldFormat:
    pattern: re.Pattern[str]
    max_length: int
    message: str | Promise


# PEM blocks are a few kilobytes; a 4096-bit RSA key with its certificate chain stays under this.
MAX_PEM_LENGTH = 16 * 1024
# Any other value a connection holds (a profile name, a secret access key) is far shorter.
MAX_VALUE_LENGTH = 2048

FORMATS: dict[str, FieldFormat] = {
    # IAM API reference, AccessKey: AccessKeyId is 16-128 characters of [\w]+.
    "access_key_id": FieldFormat(
        re.compile(r"\w{16,128}", re.ASCII),
        128,
        _("An access key ID is 16 to 128 letters and digits, such as AKIAIOSFODNN7EXAMPLE."),
    ),
    # AWS publishes no pattern for the secret: printable ASCII without spaces (40 characters for
    # keys IAM makes).
    "secret_access_key": FieldFormat(
        re.compile(r"[\x21-\x7e]{16,128}"),
        128,
        _("A secret access key is 16 to 128 printable characters without spaces."),
    ),
    # STS API reference, AssumeRole: ExternalId 2-1224 characters of [\w+=,.@:\/-]*.
    "external_id": FieldFormat(
        re.compile(r"[\w+=,.@:/-]{2,1224}", re.ASCII),
        1224,
        _("An external ID is 2 to 1224 letters, digits and + = , . @ : / -."),
    ),
    # STS API reference, AssumeRole: RoleSessionName 2-64 characters of [\w+=,.@-]*.
    "role_session_name": FieldFormat(
        re.compile(r"[\w+=,.@-]{2,64}", re.ASCII),
        64,
        _("A session name is 2 to 64 letters, digits and + = , . @ -."),
    ),
    # A profile is a section name of ~/.aws/config: no brackets, spaces or line breaks.
    "profile": FieldFormat(
        re.compile(r"[\w+=,.@:/-]{1,128}", re.ASCII),
        128,
        _("A profile name is letters, digits and + = , . @ : / - (no spaces)."),
    ),
    # Okta's OAuth 2.0 API: a client_id is an opaque string; Okta makes 20 characters such as
    # 0oa1b2c3d4e5f6g7h8i9.
    "client_id": FieldFormat(
        re.compile(r"[\w-]{1,255}", re.ASCII),
        255,
        _("A client ID is letters, digits, - and _, such as 0oa1b2c3d4e5f6g7h8i9."),
    ),
    # RFC 7517: "kid" is a case-sensitive string; Okta's are base64url.
    "key_id": FieldFormat(
        re.compile(r"[\w.-]{1,255}", re.ASCII),
        255,
        _("A key ID is letters, digits, - _ and . (Okta shows it beside the public key)."),
    ),
    # Okta's scopes are dotted names (okta.apps.manage), separated by spaces.
    "scopes": FieldFormat(
        re.compile(r"[a-z][\w.:]*( [a-z][\w.:]*)*", re.ASCII),
        1024,
        _("Scopes are names such as okta.apps.manage, separated by single spaces."),
    ),
    "private_key": FieldFormat(
        re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.+-----END [A-Z ]*PRIVATE KEY-----", re.S),
        MAX_PEM_LENGTH,
        _("Paste the whole PEM private key, from -----BEGIN to -----END."),
    ),
    "certificate": FieldFormat(
        re.compile(
            r"(?=.*-----BEGIN [A-Z ]*PRIVATE KEY-----)(?=.*-----BEGIN CERTIFICATE-----).+", re.S
        ),
        MAX_PEM_LENGTH,
        _("Paste the private key and the certificate, both in PEM, one after the other."),
    ),
}
MULTILINE = {"private_key", "certificate"}


def unsafe_characters(value: str, *, multiline: bool = False) -> bool:
    """Whether the value holds control characters or invisible format characters, such as the
    bidirectional overrides that make a name read as another (line breaks only in a PEM)."""
    allowed = {"\n", "\r"} if multiline else set()
    return any(unicodedata.category(char) in ("Cc", "Cf") and char not in allowed for char in value)


def format_errors(values: dict[str, str]) -> dict[str, str]:
    """{field: message} for each value that is too long, holds unsafe characters, or does not
    have its field's format."""
    errors = {}
    for name, value in values.items():
        multiline = name in MULTILINE
        form = FORMATS.get(name)
        limit = form.max_length if form else MAX_VALUE_LENGTH
        if len(value) > limit:
            errors[name] = gettext("At most %(limit)d characters.") % {"limit": limit}
        elif unsafe_characters(value, multiline=multiline):
            errors[name] = gettext(
                "This holds control or invisible direction characters; type it again."
            )
        elif form is not None and not form.pattern.fullmatch(value.strip()):
            errors[name] = str(form.message)
    return errors
