"""`make run`'s last command, `manage.py serve`: its processes live and die together, a second start
names whoever holds a port, and its runtime files are private."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from cryptography.fernet import Fernet
from django.conf import settings

pytestmark = pytest.mark.worker

READY = "The wizard is at"
# A Celery worker, beat, gunicorn and the sandbox start in 10-20 s here; a busy CI box is slower.
START_TIMEOUT_S = 180
STOP_TIMEOUT_S = 40


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A var/ folder migrated once for this module's tests (a migration from nothing takes ~30 s),
    with the embedded defaults (no PostgreSQL, no Redis); each test serves a copy of its own."""
    var = tmp_path_factory.mktemp("migrated") / "var"
    var.mkdir()
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "REDIS_URL", "WIZARD_TESTING", "WIZARD_REQUIRE_SERVICES"}
    }
    env |= {
        "WIZARD_VAR_DIR": str(var),
        "DJANGO_SECRET_KEY": "serve-test-" + "k" * 40,
        "WIZARD_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
    }
    subprocess.run(  # noqa: S603
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=settings.BASE_DIR,
        env=env,
        check=True,
        timeout=300,
    )
    return var, env


@pytest.fixture
def site(migrated: tuple[Path, dict[str, str]], tmp_path: Path) -> dict[str, object]:
    """A copy of the migrated var/ folder, with an older version's leftover readable by everyone."""
    migrated_var, migrated_env = migrated
    var = tmp_path / "var"
    shutil.copytree(migrated_var, var)
    var.chmod(0o755)
    (var / "local.env").write_text("DJANGO_SECRET_KEY=x\n")
    (var / "local.env").chmod(0o644)
    env = migrated_env | {
        "WIZARD_VAR_DIR": str(var),
        "WIZARD_SANDBOX_FILE": str(var / "sandbox.json"),
    }
    ports = _free_ports(5)
    return {"var": var, "env": env, "web": ports[0], "sandbox": ports[1:]}


def _serve(site: dict[str, object], log: Path) -> subprocess.Popen[bytes]:
    sandbox_ports = ",".join(str(port) for port in site["sandbox"])  # type: ignore[attr-defined]
    with log.open("wb") as out:
        # A session of its own, as a terminal's foreground job has: the hang-up goes to its group.
        return subprocess.Popen(  # noqa: S603
            [
                sys.executable,
                "manage.py",
                "serve",
                "--bind",
                f"127.0.0.1:{site['web']}",
                "--worker-concurrency",
                "1",
                "--sandbox-ports",
                sandbox_ports,
            ],
            cwd=settings.BASE_DIR,
            env=site["env"],  # type: ignore[arg-type]
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _wait_ready(process: subprocess.Popen[bytes], log: Path) -> list[psutil.Process]:
    deadline = time.monotonic() + START_TIMEOUT_S
    while READY not in log.read_text(errors="replace"):
        assert process.poll() is None, log.read_text(errors="replace")
        assert time.monotonic() < deadline, log.read_text(errors="replace")
        time.sleep(0.5)
    return psutil.Process(process.pid).children(recursive=True)


def _wait_for_line(process: subprocess.Popen[bytes], log: Path, line: re.Pattern[str]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not line.search(log.read_text(errors="replace")):
        assert process.poll() is None, log.read_text(errors="replace")
        assert time.monotonic() < deadline, log.read_text(errors="replace")
        time.sleep(0.5)


def _assert_all_gone(processes: list[psutil.Process]) -> None:
    _, alive = psutil.wait_procs(processes, timeout=STOP_TIMEOUT_S)
    survivors = [" ".join(p.cmdline()) for p in alive]
    for process in alive:  # leave no orphan behind for the rest of the suite
        process.kill()
    assert survivors == []


def test_it_stops_everything_on_a_hang_up_or_its_own_death_and_starts_again(
    site: dict[str, object], tmp_path: Path
) -> None:
    first = _serve(site, tmp_path / "first.log")
    children = _wait_ready(first, tmp_path / "first.log")
    commands = " ".join(" ".join(child.cmdline()) for child in children)
    for part in ("sandbox", "celery", "worker", "beat", "gunicorn"):
        assert part in commands

    # The worker's pool is up (its processes started) before the hang-up.
    _wait_for_line(first, tmp_path / "first.log", re.compile(r"celery@\S+ ready\."))
    os.killpg(first.pid, signal.SIGHUP)  # what closing the terminal does
    first.wait(timeout=STOP_TIMEOUT_S)
    _assert_all_gone(children)
    # Each process stopped on its own: none had to be killed, and the worker's pool processes
    # were stopped by the worker, not signalled from outside (after which the worker waited on
    # its dead pool until it was killed).
    stopped = (tmp_path / "first.log").read_text(errors="replace")
    assert "did not stop" not in stopped, stopped[-2500:]
    assert "exited with 'signal 15 (SIGTERM)'" not in stopped

    second = _serve(site, tmp_path / "second.log")
    children = _wait_ready(second, tmp_path / "second.log")
    second.kill()  # SIGKILL: serve gets no chance to stop anything itself
    second.wait(timeout=STOP_TIMEOUT_S)
    _assert_all_gone(children)


def test_it_names_the_process_that_holds_a_port(site: dict[str, object], tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", site["web"]))  # type: ignore[arg-type]
        holder.listen()
        process = _serve(site, tmp_path / "busy.log")
        assert process.wait(timeout=120) != 0
    output = (tmp_path / "busy.log").read_text()

    assert f"Port {site['web']} (web) is held by process {os.getpid()}" in output
    assert f"kill {os.getpid()}" in output


def test_it_keeps_its_runtime_files_private(site: dict[str, object], tmp_path: Path) -> None:
    process = _serve(site, tmp_path / "files.log")
    children = _wait_ready(process, tmp_path / "files.log")
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=STOP_TIMEOUT_S)
    _assert_all_gone(children)
    var: Path = site["var"]  # type: ignore[assignment]

    def mode(path: Path) -> int:
        return stat.S_IMODE(path.stat().st_mode)

    assert mode(var) == 0o700
    private = [
        var / "wizard.sqlite3",
        var / "local.env",
        var / "sandbox.json",
        *(var / "sandbox").rglob("*.key"),
    ]
    assert len(private) > 4
    for path in private:
        assert mode(path) & 0o077 == 0, (path, oct(mode(path)))
