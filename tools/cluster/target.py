"""Where a lane's commands run and where its files are, seen from the host.

The host lane runs commands directly. A namespace lane runs them through `nsenter` into
its init process's namespaces, with a clean environment and the timeout *inside* the lane
(killing nsenter from outside would leave the command running in there). Its files are
reached from the host through /proc/<init>/root, which shows the lane's own mounts
(its /run and /tmp are tmpfs that only exist in there).
"""
from __future__ import annotations

import os
import pathlib
import subprocess

from cluster.shell import ClusterError, run

LANE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class Target:
    """A place commands run: the host itself, or a lane's namespaces."""

    lane: str

    def argv(self, argv: list[str], timeout: float | None = None, env: dict[str, str] | None = None) -> list[str]:
        raise NotImplementedError

    def path(self, path: str) -> pathlib.Path:
        raise NotImplementedError

    def run(self, argv: list[str], check: bool = True, timeout: float | None = 120, **kw) -> subprocess.CompletedProcess:
        return run(self.argv(argv, timeout), check=check, **kw)

    def pid_of(self, pidfile: str, comm: str) -> int | None:
        """Pid from a pid file if that process is alive and is `comm` (guards against pid reuse)."""
        try:
            pid = int(self.path(pidfile).read_text().split()[0])
            name = self.path(f"/proc/{pid}/comm").read_text().strip()
        except (OSError, ValueError, IndexError):
            return None
        return pid if name == comm else None

    def chown(self, owner: str, *paths: str) -> None:
        """chown by the lane's own user names (a namespace lane's uids are not the host's)."""
        self.run(["chown", owner, *paths])


class Host(Target):
    def __init__(self, lane: str):
        self.lane = lane

    def argv(self, argv, timeout=None, env=None):
        if timeout is None:
            return list(argv)
        return ["timeout", "-k", "5", str(int(timeout)), *argv]

    def path(self, path):
        return pathlib.Path(path)


class Namespaced(Target):
    def __init__(self, lane: str, init_pid: int):
        self.lane = lane
        self.init_pid = init_pid

    def argv(self, argv, timeout=None, env=None):
        base = {"PATH": LANE_PATH, "HOME": "/root", "LANG": "C.UTF-8", "TERM": os.environ.get("TERM", "xterm")}
        base.update(env or {})
        inner = ["timeout", "-k", "5", str(int(timeout)), *argv] if timeout is not None else list(argv)
        return ["nsenter", "-t", str(self.init_pid), "-a", "--", "env", "-i",
                *(f"{k}={v}" for k, v in base.items()), *inner]

    def path(self, path):
        if not path.startswith("/"):
            raise ClusterError(f"lane path {path!r} is not absolute")
        return pathlib.Path(f"/proc/{self.init_pid}/root{path}")
