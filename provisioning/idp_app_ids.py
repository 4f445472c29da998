"""What an IdP app ID an admin types may look like, before it goes into an IdP API path or query:
an Entra appId or object id is a GUID; an Okta app id is 20 letters and digits (0oa…)."""

from __future__ import annotations

import re

from django.utils.translation import gettext_lazy as _

# Anchored: a form's RegexField searches, it does not fullmatch.
APP_ID_RULE = re.compile(r"\A[0-9A-Za-z-]{1,64}\Z")
APP_ID_REFUSED = _("An app ID is letters, digits and hyphens, such as the Application (client) ID.")
