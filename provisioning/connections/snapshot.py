"""What an audit row records of a connection: its settings and the names of its secrets, never
their values."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from provisioning.models import Connection


def connection_snapshot(connection: Connection, secret_names: Iterable[str]) -> dict[str, Any]:
    return {
        "cloud": connection.cloud,
        "name": connection.name,
        "config": connection.config,
        "stored_credentials": sorted(secret_names),
    }
