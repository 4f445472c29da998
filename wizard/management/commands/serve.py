"""`python manage.py serve`: the sandbox (in sandbox mode), a Celery worker, Celery beat and the web
server, stopped together by Ctrl-C. This is what `make run` ends in."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

# The sandbox writes its endpoints file once its ports are bound; this is how long we wait.
SANDBOX_START_TIMEOUT_S = 60
# How long children get to stop after SIGTERM before they are killed.
STOP_GRACE_S = 10


class Command(BaseCommand):
    help = "Start the sandbox (sandbox mode), a worker, beat and the web server; Ctrl-C stops all."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--bind", default="127.0.0.1:8000")
        parser.add_argument("--worker-concurrency", type=int, default=2)

    def handle(self, *args: Any, **options: Any) -> None:
        self.children: list[tuple[str, subprocess.Popen[bytes]]] = []
        # Ctrl-C and SIGTERM both stop everything, even when started with SIGINT ignored (as a
        # background job of a non-interactive shell is).
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        try:
            if settings.WIZARD_MODE == "sandbox":
                self._start_sandbox()
            self._start(
                "worker",
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "wizard",
                    "worker",
                    "--loglevel",
                    "INFO",
                    "--concurrency",
                    str(options["worker_concurrency"]),
                    "--pool",
                    "prefork",
                ],
            )
            # Celery beat starts the user syncs that are due (one beat for the whole site).
            self._start(
                "beat",
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "wizard",
                    "beat",
                    "--loglevel",
                    "INFO",
                    "--schedule",
                    str(Path(settings.VAR_DIR) / "celerybeat-schedule"),
                ],
            )
            self._start(
                "web",
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "wizard.wsgi:application",
                    "--bind",
                    options["bind"],
                    "--workers",
                    "2",
                    "--access-logfile",
                    "-",
                ],
            )
            self.stdout.write(
                self.style.SUCCESS(
                    f"The wizard is at http://{options['bind']}/ ({settings.WIZARD_MODE} mode). "
                    "Ctrl-C stops everything."
                )
            )
            self._wait_for_any_exit()
        except KeyboardInterrupt:
            self.stdout.write("\nStopping…")
        finally:
            self._stop_all()

    def _on_signal(self, signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    def _start(self, name: str, command: list[str]) -> subprocess.Popen[bytes]:
        # Own process group, so Ctrl-C in the terminal reaches us once and we stop them in order.
        process = subprocess.Popen(command, start_new_session=True)  # noqa: S603
        self.children.append((name, process))
        return process

    def _start_sandbox(self) -> None:
        endpoints_file = Path(settings.SANDBOX_FILE)
        endpoints_file.unlink(missing_ok=True)
        sandbox = self._start(
            "sandbox",
            [sys.executable, "manage.py", "sandbox", "--endpoints-file", str(endpoints_file)],
        )
        deadline = time.monotonic() + SANDBOX_START_TIMEOUT_S
        while not endpoints_file.exists():
            if sandbox.poll() is not None:
                raise CommandError("The sandbox stopped while starting; see its output above.")
            if time.monotonic() > deadline:
                raise CommandError("The sandbox did not start within a minute.")
            time.sleep(0.2)
        json.loads(endpoints_file.read_text())  # a half-written file fails here, loudly

        from wizard.services.connections import register_sandbox_connections

        connections = register_sandbox_connections(sandbox_file=endpoints_file)
        names = ", ".join(connection.name for connection in connections)
        self.stdout.write(f"Sandbox connections ready: {names}")

    def _wait_for_any_exit(self) -> None:
        while True:
            for name, process in self.children:
                if process.poll() is not None:
                    raise CommandError(f"The {name} process stopped (exit {process.returncode}).")
            time.sleep(0.5)

    def _stop_all(self) -> None:
        for _name, process in reversed(self.children):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for _name, process in reversed(self.children):
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
