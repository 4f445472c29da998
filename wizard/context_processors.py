"""Template context every page needs: which mode the wizard runs in."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def wizard_mode(request: HttpRequest) -> dict[str, str]:
    return {"wizard_mode": settings.WIZARD_MODE}
