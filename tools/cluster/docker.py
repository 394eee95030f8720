"""docker in a lane: daemon.json naming scrun, dockerd without systemd, the test image.

Debian's docker.io (20.10 on 12, 26.1 on 13) starts its own containerd. Without systemd, and
in a sandbox without iptables or a bridge, dockerd runs with "iptables": false and
"bridge": "none": containers take `--network none`.
"""
from __future__ import annotations

import json
import time

from cluster.images import exported_image, wanted
from cluster.slurmconf import STAGED_CONF_DIR
from cluster.shell import ClusterError, log_tail, say, write_if_changed
from cluster.target import Target

DAEMON_JSON = "/etc/docker/daemon.json"
STAGED_RUNTIME = "scrun-staged"
PID_FILE = "/run/docker.pid"
SOCKET = "/run/docker.sock"
LOG = "/var/log/scrun-dockerd.log"
START_TIMEOUT = 60.0


def daemon_json(scrun_path: str) -> str:
    return json.dumps({
        "iptables": False, "ip6tables": False, "bridge": "none",
        "runtimes": {"scrun": {"path": scrun_path},
                     # The same scrun with built-in staging (slurmconf.STAGED_CONF_DIR).
                     STAGED_RUNTIME: {"path": scrun_path, "runtimeArgs": ["--slurm-conf", f"{STAGED_CONF_DIR}/slurm.conf"]}},
        "pidfile": PID_FILE,
        # CDI devices (`--device example.com/gpu=0`, tools/cluster/fakegpu.py): docker >= 25;
        # 20.10 accepts the key and has no CDI.
        "features": {"cdi": True},
    }, indent=2) + "\n"



def running(t: Target) -> bool:
    return t.pid_of(PID_FILE, "dockerd") is not None and \
        t.run(["docker", "version", "--format", "{{.Server.Version}}"], check=False, timeout=20).returncode == 0


# dockerd accepts `--gpus` only when NVIDIA's hook is on its PATH at start. A login node has no
# GPUs: this stub stands for it (scrun reads the hook as a request, the nodes' CDI specs serve it;
# docs/user-guide.md, "GPUs"). Run by a local runtime (runc, the tests' control), it does nothing.
GPU_HOOK = "/usr/local/bin/nvidia-container-runtime-hook"
GPU_HOOK_TEXT = "#!/bin/sh\n# scrun's login-node stand-in for NVIDIA's hook (tools/cluster/docker.py)\nexit 0\n"


def start(t: Target, scrun_path: str) -> None:
    changed = write_if_changed(t.path(GPU_HOOK), GPU_HOOK_TEXT, mode=0o755)
    changed |= write_if_changed(t.path(DAEMON_JSON), daemon_json(scrun_path))
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
    for image in wanted():
        if t.run(["docker", "image", "inspect", image], check=False, timeout=30).returncode != 0:
            with exported_image(t, "docker", image) as archive:
                t.run(["docker", "load", "-i", archive], timeout=300)


def setup_docker(t: Target, scrun_path: str, rootless_user: str) -> None:
    start(t, scrun_path)
    ensure_image(t)
    start_rootless(t, rootless_user, scrun_path)


# ---------------------------------------------------------------- rootless docker

def rootless_paths(uid: int) -> dict[str, str]:
    run = f"/run/user/{uid}"
    return {"socket": f"{run}/docker.sock", "pid": f"{run}/docker.pid",
            "exec_root": f"{run}/docker", "state": f"{run}/rootlesskit-docker", "log": f"{run}/dockerd.log"}


def rootless_command(uid: int, home: str) -> str:
    """rootlesskit + dockerd --rootless as dockerd-rootless.sh runs them, but with the host's network
    (no /dev/net/tun here for slirp4netns), and with fresh /run/docker and /run/containerd inside:
    rootless docker 20.10 puts its plugins and shim sockets there, where the host's dockerd owns them."""
    p = rootless_paths(uid)
    inner = ("for d in /run/docker /run/containerd; do [ -d $d ] && mount -t tmpfs none $d; done; "
             f"exec dockerd --rootless --data-root {home}/.local/share/docker --exec-root {p['exec_root']} "
             f"--pidfile {p['pid']} --host unix://{p['socket']}")
    kit = (f"rootlesskit --net=host --copy-up=/etc --copy-up=/run --disable-host-loopback --state-dir={p['state']} "
           f"sh -c '{inner}'")
    return f"setsid nohup {kit} >{p['log']} 2>&1 </dev/null &"


def start_rootless(t: Target, user: str, scrun_path: str) -> None:
    uid = int(t.run(["id", "-u", user], timeout=10).stdout)
    home = t.run(["sh", "-c", f"getent passwd {user} | cut -d: -f6"], timeout=10).stdout.strip()
    p = rootless_paths(uid)
    as_user = ["runuser", "-u", user, "--", "env", f"XDG_RUNTIME_DIR=/run/user/{uid}", f"HOME={home}",
               f"DOCKER_HOST=unix://{p['socket']}"]
    conf = t.path(f"{home}/.config/docker/daemon.json")
    conf.parent.mkdir(parents=True, exist_ok=True)
    changed = write_if_changed(conf, json.dumps({"iptables": False, "bridge": "none",
                                                 "runtimes": {"scrun": {"path": scrun_path}}}, indent=2) + "\n")
    t.chown(f"{user}:{user}", f"{home}/.config/docker", f"{home}/.config/docker/daemon.json")
    # `docker ps`, not `docker version`: 26.1's version handler panics under rootlesskit --net=host.
    ok = t.run([*as_user, "docker", "ps", "-q"], check=False, timeout=20).returncode == 0
    if not ok or changed:
        _restart_rootless(t, user, uid, home, as_user)
    for image in wanted():
        if t.run([*as_user, "docker", "image", "inspect", image], check=False, timeout=30).returncode != 0:
            with exported_image(t, f"docker-{user}", image) as archive:
                t.run([*as_user, "sh", "-c", f"cd /tmp && docker load -q -i {archive}"], timeout=300)


def _restart_rootless(t: Target, user: str, uid: int, home: str, as_user: list[str]) -> None:
    p = rootless_paths(uid)
    stop_rootless(t, user)
    say(f"[{t.lane}] starting rootless dockerd for {user}")
    t.run([*as_user, "sh", "-c", f"cd /tmp && {rootless_command(uid, home)}"], timeout=20)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if t.run([*as_user, "docker", "ps", "-q"], check=False, timeout=20).returncode == 0:
            break
        time.sleep(0.3)
    else:
        raise ClusterError(f"[{t.lane}] rootless dockerd of {user} did not come up\n  {log_tail(t.path(p['log']))}")


def stop_rootless(t: Target, user: str) -> None:
    """End the user's rootlesskit (dockerd and its containerd live in its namespaces)."""
    t.run(["pkill", "-u", user, "-x", "rootlesskit"], check=False, timeout=10)
    t.run(["pkill", "-u", user, "-f", "dockerd --rootless"], check=False, timeout=10)
