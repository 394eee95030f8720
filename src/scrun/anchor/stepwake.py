"""Wake an srun that waits for slurmctld's word to create its step, when that word will never come.

When slurmctld refuses a step for a while (it is shutting down or has just restarted: "Requested
nodes are busy"), srun listens on a port of its own and sleeps until slurmctld connects to it, or
up to SlurmctldTimeout + a few seconds (121 s by default; srun's step_ctx_create_timeout). A
restarted slurmctld does not know the port and never connects: the container would start two
minutes late, or a test bound would see it hang. A connection from us does what slurmctld's
would: srun wakes and asks for its step again (one RPC). srun has exactly one listening socket
while it waits there; once the step exists it has several (its I/O and message ports), and we
never touch those.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import socket

# How long srun may wait for its step before we wake it, and again after each wake.
STEP_WAKE_INTERVAL = 10.0
_LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp


def listening_ports(tcp_tables: list[str], inodes: set[str]) -> list[int]:
    """/proc/<pid>/net/tcp and tcp6 texts → the ports of the listening sockets whose inodes are given."""
    ports = []
    for table in tcp_tables:
        for line in table.splitlines()[1:]:
            fields = line.split()
            if len(fields) > 9 and fields[3] == _LISTEN and fields[9] in inodes:
                ports.append(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    fd_dir = f"/proc/{pid}/fd"
    for name in os.listdir(fd_dir):
        with contextlib.suppress(OSError):
            target = os.readlink(f"{fd_dir}/{name}")
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    return inodes


def step_request_port(pid: int) -> int | None:
    """The port srun waits on for its step's retry, or None when it is not waiting there."""
    try:
        inodes = _socket_inodes(pid)
        tables = []
        for name in ("tcp", "tcp6"):
            with contextlib.suppress(FileNotFoundError), open(f"/proc/{pid}/net/{name}") as fh:
                tables.append(fh.read())
    except OSError:
        return None  # srun has ended
    ports = listening_ports(tables, inodes)
    return ports[0] if len(ports) == 1 else None


def _knock(port: int) -> None:
    for host in ("127.0.0.1", "::1"):
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=2):
            return


async def wake_while_waiting(pid: int, started: asyncio.Event, log) -> None:
    """Until the step's tasks start (or this is cancelled): every STEP_WAKE_INTERVAL, wake srun if
    it still waits for slurmctld to allow its step."""
    waited = 0.0
    while not started.is_set():
        await asyncio.sleep(STEP_WAKE_INTERVAL)
        waited += STEP_WAKE_INTERVAL
        if started.is_set():
            return
        port = await asyncio.to_thread(step_request_port, pid)
        if port is not None:
            log.info("srun has waited %.0fs for slurmctld to create the step (slurmctld restarted?); "
                     "asking it to try again", waited)
            await asyncio.to_thread(_knock, port)
