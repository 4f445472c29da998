"""Shared set-up of the page benchmarks: a fresh database (PostgreSQL when one answers), Django
with the wizard migrated into it, a signed-in admin, and timing helpers."""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

from bench.bulk_users import _postgres_database

# BENCH_DATABASE_URL names a database the benchmark may empty and fill; without it, a new one.
DATABASE_URL_ENV = "BENCH_DATABASE_URL"
# Timed requests per figure; the median of these is the figure (these machines are noisy).
REPEATS = int(os.environ.get("BENCH_REPEATS", "7"))


def setup_django() -> str:
    """Point Django at an empty database, migrate it, and return the database's vendor."""
    url = os.environ.get(DATABASE_URL_ENV) or _postgres_database()
    if url:
        _empty_postgres(url)
        os.environ["DATABASE_URL"] = url
    else:
        os.environ["WIZARD_VAR_DIR"] = tempfile.mkdtemp(prefix="bench-pages-")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "wizard.settings")
    # Django's test client calls itself "testserver".
    os.environ["DJANGO_ALLOWED_HOSTS"] = "testserver,127.0.0.1,localhost"
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0, interactive=False)
    return connection.vendor


def _empty_postgres(url: str) -> None:
    """Drop every table of the database the benchmark was given (its own, by contract)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")


def admin_client() -> Any:
    from django.contrib.auth.models import User
    from django.test import Client

    from wizard.roles import ADMIN, role_group

    user, _ = User.objects.get_or_create(username="bench-admin")
    user.groups.add(role_group(ADMIN))
    client = Client()
    client.force_login(user)
    return client


def bench_connections() -> tuple[Any, Any]:
    """An AWS and an Entra connection for the runs (never called: the pages only list them)."""
    from provisioning.models import Connection

    return (
        Connection.objects.create(cloud="aws", name="bench aws"),
        Connection.objects.create(cloud="entra", name="bench entra"),
    )


def median_ms(call: Callable[[], Any], repeats: int = REPEATS) -> float:
    """The median wall time of `call` in milliseconds, after one untimed warm-up call."""
    call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(times), 1)


def load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def sql(statement: str, params: Any = None) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(statement, params)
