"""Says whether a connection talks to the local sandbox, and reads the sandbox's endpoints if so."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings

from provisioning.errors import PermanentError
from provisioning.models import Connection


def uses_sandbox(connection: Connection) -> bool:
    """True when this connection's calls go to the sandbox stand-ins.

    A sandbox connection in live mode is refused rather than sent to the real clouds with the
    sandbox's made-up credentials.
    """
    if not connection.is_sandbox:
        return False
    if settings.WIZARD_MODE != "sandbox":
        raise PermanentError(
            f"“{connection.name}” is a sandbox connection and the wizard runs in live mode.",
            code="sandbox_connection_in_live_mode",
            hint="Choose a connection to your real account, or run the wizard with "
            "WIZARD_MODE=sandbox.",
        )
    return True


def sandbox_endpoints(connection: Connection) -> dict[str, Any] | None:
    """The sandbox's endpoints, CA bundle path and credentials (var/sandbox.json), or None when
    the connection goes to the real cloud. Only here does the sandbox CA enter a client."""
    if not uses_sandbox(connection):
        return None
    return read_sandbox_file()


def read_sandbox_file() -> dict[str, Any]:
    path = settings.SANDBOX_FILE
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise PermanentError(
            f"The sandbox is not running: {path} does not exist.",
            code="sandbox_not_running",
            hint="Start it with `make run` (or `python manage.py sandbox`).",
        ) from None
