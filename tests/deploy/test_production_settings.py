"""Production settings pass Django's deployment checks, and every asset is served locally."""

from __future__ import annotations

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
