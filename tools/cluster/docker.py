"""docker in a lane: daemon.json naming scrun, dockerd without systemd, the test image.

Debian's docker.io (20.10 on 12, 26.1 on 13) starts its own containerd. Without systemd, and
in a sandbox without iptables or a bridge, dockerd runs with "iptables": false and
"bridge": "none": containers take `--network none`.
"""
from __future__ import annotations

import json
import time

from cluster.podman import IMAGE
from cluster.shell import ClusterError, log_tail, say, write_if_changed
from cluster.target import Target

DAEMON_JSON = "/etc/docker/daemon.json"
PID_FILE = "/run/docker.pid"
SOCKET = "/run/docker.sock"
LOG = "/var/log/scrun-dockerd.log"
START_TIMEOUT = 60.0


def daemon_json(scrun_path: str) -> str:
    return json.dumps({
        "iptables": False, "ip6tables": False, "bridge": "none",
        "runtimes": {"scrun": {"path": scrun_path}},
        "pidfile": PID_FILE,
    }, indent=2) + "\n"


def running(t: Target) -> bool:
    return t.pid_of(PID_FILE, "dockerd") is not None and \
        t.run(["docker", "version", "--format", "{{.Server.Version}}"], check=False, timeout=20).returncode == 0


def start(t: Target, scrun_path: str) -> None:
    changed = write_if_changed(t.path(DAEMON_JSON), daemon_json(scrun_path))
    if running(t):
        if not changed:
            return
        stop(t)
    say(f"[{t.lane}] starting dockerd")
    # setsid + nohup: dockerd must outlive this command (and, in a namespace lane, nsenter).
    t.run(["sh", "-c", f"setsid nohup dockerd >{LOG} 2>&1 </dev/null &"], timeout=20)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if running(t):
            return
        time.sleep(0.3)
    raise ClusterError(f"[{t.lane}] dockerd did not come up within {START_TIMEOUT:.0f}s\n  {log_tail(t.path(LOG))}")


def stop(t: Target) -> None:
    pid = t.pid_of(PID_FILE, "dockerd")
    if pid is None:
        return
    t.run(["kill", str(pid)], check=False, timeout=10)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and t.pid_of(PID_FILE, "dockerd") is not None:
        time.sleep(0.2)


def ensure_image(t: Target) -> None:
    if t.run(["docker", "image", "inspect", IMAGE], check=False, timeout=30).returncode == 0:
        return
    archive = "/var/tmp/scrun-docker-image.tar"
    try:
        t.run(["podman", "save", "-o", archive, IMAGE], timeout=120)
        t.run(["docker", "load", "-i", archive], timeout=120)
    finally:
        t.path(archive).unlink(missing_ok=True)


def setup_docker(t: Target, scrun_path: str) -> None:
    start(t, scrun_path)
    ensure_image(t)
