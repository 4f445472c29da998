"""Production settings pass Django's deployment checks, and every asset is served locally."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# src= or href= pointing off the site (a CDN): every script, style and font must be ours.
EXTERNAL_ASSET = re.compile(r"""(?:src|href)\s*=\s*["'](?:https?:)?//""", re.IGNORECASE)


def test_it_passes_check_deploy_with_production_settings(tmp_path: Path) -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("WIZARD_", "DJANGO_", "DATABASE_URL", "REDIS_URL"))
    }
    env.update(
        DJANGO_SECRET_KEY="a-long-production-like-secret-key-" + "x" * 40,
        WIZARD_ENCRYPTION_KEYS="dGVzdC1vbmx5LWtleS1mb3ItdGhlLXRlc3Qtc3VpdGU=",
        WIZARD_HTTPS="1",
        WIZARD_MODE="live",
        DJANGO_ALLOWED_HOSTS="wizard.example.com",
        WIZARD_VAR_DIR=str(tmp_path),
    )
    result = subprocess.run(  # noqa: S603 - our own manage.py
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_it_loads_no_asset_from_another_site() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}: {match.group(0)}"
        for path in (ROOT / "templates").rglob("*.html")
        for match in EXTERNAL_ASSET.finditer(path.read_text())
    ]
    assert offenders == []


def _settings_of(env: dict[str, str], *names: str) -> list[object]:
    """Settings as a fresh process with this environment loads them."""
    env = {**os.environ, "WIZARD_TESTING": "1", **env}
    code = "import json; from django.conf import settings as s; import django; django.setup(); "
    code += f"print(json.dumps([eval('s.' + name) for name in {list(names)!r}]))"
    result = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "wizard.settings"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_it_keeps_postgresql_connections_and_checks_them_before_reuse() -> None:
    url = "postgres://wizard:pw@postgres:5432/wizard"
    max_age, checks = _settings_of(
        {"DATABASE_URL": url},
        'DATABASES["default"]["CONN_MAX_AGE"]',
        'DATABASES["default"]["CONN_HEALTH_CHECKS"]',
    )

    assert max_age > 0
    assert checks is True


def test_it_serves_pages_from_threads_with_a_timeout_no_page_comes_near() -> None:
    from wizard import gunicorn_conf

    assert gunicorn_conf.worker_class == "gthread"
    assert gunicorn_conf.threads > 1
    # A page answers within a second; the export is a worker's job, never a request's.
    assert 10 <= gunicorn_conf.timeout <= 60
    assert gunicorn_conf.keepalive >= 2  # longer than the 1.5 s between a run page's polls


def test_sandbox_mode_writes_e_mail_to_files_until_a_mail_server_is_named(tmp_path: Path) -> None:
    # The sandbox banner says nothing leaves this machine; live mode, or a named server, sends.
    base = {"WIZARD_VAR_DIR": str(tmp_path), "WIZARD_MODE": "sandbox"}
    names = ("EMAIL_BACKEND", "EMAIL_FILE_PATH.as_posix()")

    sandbox = _settings_of(base, *names)
    named = _settings_of({**base, "DJANGO_EMAIL_HOST": "smtp.example.com"}, *names)
    live = _settings_of({**base, "WIZARD_MODE": "live"}, "EMAIL_BACKEND")

    assert sandbox == [
        "django.core.mail.backends.filebased.EmailBackend",
        str(tmp_path / "sent-mail"),
    ]
    assert named[0] == live[0] == "django.core.mail.backends.smtp.EmailBackend"
