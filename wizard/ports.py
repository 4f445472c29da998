"""Says whether a TCP port can be listened on, and if not, which process holds it."""

from __future__ import annotations

import errno
import socket

import psutil


def busy_port_message(name: str, address: str, port: int) -> str | None:
    """None when `address:port` is free; otherwise a sentence naming the holder and what to do."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError as error:
            if error.errno != errno.EADDRINUSE:
                raise
        else:
            return None
    holder = _listener(port)
    if holder is None:
        return (
            f"Port {port} ({name}) is in use by a process this account can't see. "
            "Stop it, or start with another port."
        )
    pid, command = holder
    return (
        f"Port {port} ({name}) is held by process {pid} ({command}), perhaps an earlier "
        f"`make run`. Stop it (kill {pid}) and start again."
    )


def _listener(port: int) -> tuple[int, str] | None:
    try:
        connections = psutil.net_connections(kind="tcp")
    except psutil.AccessDenied:
        return None
    for connection in connections:
        if (
            connection.status == psutil.CONN_LISTEN
            and connection.laddr
            and connection.laddr.port == port
            and connection.pid
        ):
            try:
                command = " ".join(psutil.Process(connection.pid).cmdline()) or "?"
            except psutil.Error:
                command = "?"
            return connection.pid, command[:120]
    return None
