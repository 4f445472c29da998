"""`python manage.py serve`: the sandbox (in sandbox mode), a Celery worker, Celery beat and the web
server, stopped together by Ctrl-C, a closed terminal or the death of serve itself. This is what
`make run` ends in."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from wizard.ports import busy_port_message

# The sandbox writes its endpoints file once its ports are bound; this is how long we wait.
SANDBOX_START_TIMEOUT_S = 60
# How long children get to stop before they are killed: the Celery worker's warm shutdown of an
# idle pool took ~8 s here (with the machine busy), the others under 6 s.
STOP_GRACE_S = 20
# The sandbox's ports: AWS, AWS sign-in, Entra ID, Okta (as `python manage.py sandbox` has them).
SANDBOX_PORTS = "8443,8444,8445,8446"
# The web server's workers, threads and timeout (wizard/gunicorn_conf.py).
GUNICORN_CONFIG = "python:wizard.gunicorn_conf"
# What each child is told to stop with, on its own process: each stops what it started itself.
# The Celery worker's SIGTERM is its warm shutdown: it stops its pool processes and waits for them.
# Sent to its whole group, SIGTERM also killed the pool processes, and the worker then waited on
# its dead pool (billiard) until the SIGKILL that followed. gunicorn's SIGINT is its quick
# shutdown, as Ctrl-C gives it in a terminal (SIGTERM waits up to graceful_timeout, 30 s, for
# workers that may still be loading the app). The sandbox and beat stop on SIGTERM.
_STOP_SIGNALS = {"worker": signal.SIGTERM, "web": signal.SIGINT}
# prctl(2): PR_SET_PDEATHSIG asks the kernel to signal a process when its parent dies.
PR_SET_PDEATHSIG = 1


class Command(BaseCommand):
    help = "Start the sandbox (sandbox mode), a worker, beat and the web server; Ctrl-C stops all."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--bind", default="127.0.0.1:8000")
        parser.add_argument("--worker-concurrency", type=int, default=2)
        parser.add_argument(
            "--sandbox-ports",
            default=SANDBOX_PORTS,
            help="the sandbox's AWS, sign-in, Entra ID and Okta ports, comma separated",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        self.children: list[tuple[str, subprocess.Popen[bytes]]] = []
        # Ctrl-C, SIGTERM and a closed terminal (SIGHUP) all stop everything, even when started
        # with SIGINT ignored (as a background job of a non-interactive shell is).
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._on_signal)
        sandbox_ports = self._ports(options["sandbox_ports"])
        self._refuse_busy_ports(options["bind"], sandbox_ports)
        try:
            if settings.WIZARD_MODE == "sandbox":
                self._start_sandbox(sandbox_ports)
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
                    *gunicorn_arguments(options["bind"]),
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

    def _ports(self, text: str) -> dict[str, int]:
        names = ("aws", "signin", "entra", "okta")
        try:
            ports = [int(part) for part in text.split(",")]
        except ValueError:
            ports = []
        if len(ports) != len(names):
            raise CommandError("--sandbox-ports takes four port numbers, e.g. " + SANDBOX_PORTS)
        return dict(zip(names, ports, strict=True))

    def _refuse_busy_ports(self, bind: str, sandbox_ports: dict[str, int]) -> None:
        """Stop before starting anything when an earlier run (or anything else) holds a port."""
        host, _, port = bind.rpartition(":")
        wanted = [("web", host or "127.0.0.1", int(port))]
        if settings.WIZARD_MODE == "sandbox":
            wanted += [(f"sandbox {name}", "127.0.0.1", p) for name, p in sandbox_ports.items()]
        problems = [
            message
            for name, address, number in wanted
            if (message := busy_port_message(name, address, number)) is not None
        ]
        if problems:
            raise CommandError("\n".join(problems))

    def _start(self, name: str, command: list[str]) -> subprocess.Popen[bytes]:
        # Own process group, so Ctrl-C in the terminal reaches us once and we stop them in order;
        # and each child dies with us even if we are killed outright (SIGKILL gives us no chance
        # to stop them).
        process = subprocess.Popen(  # noqa: S603
            command, start_new_session=True, preexec_fn=_die_with_parent(os.getpid())
        )
        self.children.append((name, process))
        return process

    def _start_sandbox(self, ports: dict[str, int]) -> None:
        endpoints_file = Path(settings.SANDBOX_FILE)
        endpoints_file.unlink(missing_ok=True)
        sandbox = self._start(
            "sandbox",
            [
                sys.executable,
                "manage.py",
                "sandbox",
                "--endpoints-file",
                str(endpoints_file),
                *(arg for name, port in ports.items() for arg in (f"--{name}-port", str(port))),
            ],
        )
        deadline = time.monotonic() + SANDBOX_START_TIMEOUT_S
        while not endpoints_file.exists():
            if sandbox.poll() is not None:
                raise CommandError("The sandbox stopped while starting; see its output above.")
            if time.monotonic() > deadline:
                raise CommandError("The sandbox did not start within a minute.")
            time.sleep(0.2)
        json.loads(endpoints_file.read_text())  # a half-written file fails here, loudly

        from provisioning.connections.sandbox_registration import register_sandbox_connections

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
        for name, process in reversed(self.children):
            if process.poll() is None:
                os.kill(process.pid, _STOP_SIGNALS.get(name, signal.SIGTERM))
        deadline = time.monotonic() + STOP_GRACE_S
        for name, process in reversed(self.children):
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.stderr.write(f"The {name} process did not stop in {STOP_GRACE_S} s: killed.")
            # Whatever it left in its group (a pool process, a gunicorn worker) goes with it.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def gunicorn_arguments(bind: str) -> list[str]:
    """How the web server runs: its address, and the settings docker-compose.yml's uses too."""
    return ["--config", GUNICORN_CONFIG, "--bind", bind]


def _die_with_parent(parent_pid: int) -> Callable[[], None] | None:
    """A pre-exec hook that makes the kernel send the child SIGTERM when serve dies (Linux's
    PR_SET_PDEATHSIG, kept across exec); None where there is no such call."""
    if not sys.platform.startswith("linux"):
        return None

    def hook() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        # serve may have died between fork and prctl: then no signal would ever come.
        if os.getppid() != parent_pid:
            os._exit(1)

    return hook
