"""A compute node that does not see the login node's disks (slurmconf.ISOLATED_NODE).

Its slurmd runs in its own mount, pid and uts namespaces: /tmp, /var/tmp, /run (but for munge's
socket), /var/lib/containers and /var/lib/docker are empty there, its hostname is its own and the
login node's processes are out of sight; /home, /scratch (the site's shared filesystem) and the
system are shared, as on a real cluster. Slurm does not move bundles, so only what scrun stages
(or what already lies on /scratch or /home) runs there. Started and stopped from the login node's
side (the host for the native lane, inside the lane for a namespace lane): standard library only.
"""
from __future__ import annotations

import contextlib
import os
import pathlib
import subprocess
import time

from cluster import slurmconf as conf

HOLD_DIR = "/var/lib/scrun-topology"  # where munge's socket directory waits while /run is replaced
PIDFILE = f"{conf.RUN_DIR}/topology-{conf.ISOLATED_NODE}.pid"  # the host-side pid of the node's unshare
LOG = f"{conf.LOG_DIR}/topology-{conf.ISOLATED_NODE}.log"

# pid 1 of the node: starts slurmd and reaps every orphan (slurmstepd's, crun's) until slurmd ends.
REAPER = """
import os, signal, sys
child = os.fork()
if child == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
signal.signal(signal.SIGTERM, lambda *_: os.kill(child, signal.SIGTERM))
while True:
    try:
        pid, status = os.wait()
    except ChildProcessError:
        sys.exit(0)
    if pid == child:
        sys.exit(os.waitstatus_to_exitcode(status))
"""

NODE_INIT = r"""
set -eu
node=$1 hold=$2 users=$3
ulimit -c 0  # no core files from slurmstepd (see stop())
hostname "$node"
mkdir -p "$hold/munge"
mount --bind /run/munge "$hold/munge"
mount -t tmpfs -o mode=755 tmpfs /run
mkdir -p /run/munge /run/slurm /run/lock
mount --move "$hold/munge" /run/munge
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=1777 tmpfs /var/tmp
for d in /var/lib/containers /var/lib/docker; do
    if [ -d "$d" ]; then mount -t tmpfs -o mode=700 tmpfs "$d"; fi
done
mount -t proc proc /proc
install -d -m 0755 /run/crun-slurm
for u in root $users; do install -d -m 0700 -o "$u" -g "$(id -gn "$u")" "/run/crun-slurm/$u"; done
exec python3 -c "$REAPER" slurmd -D -N "$node"
"""


def _node_inits() -> list[int]:
    """Every `unshare … node-init iso1` of this pid namespace, with or without a pid file."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = pathlib.Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv[:1] == [b"unshare"] and b"node-init" in argv and conf.ISOLATED_NODE.encode() in argv:
            found.append(int(entry))
    return found


def _pid() -> int | None:
    try:
        pid = int(pathlib.Path(PIDFILE).read_text().split()[0])
        comm = pathlib.Path(f"/proc/{pid}/comm").read_text().strip()
    except (OSError, ValueError, IndexError):
        return None
    return pid if comm == "unshare" else None


def node_state() -> str:
    out = subprocess.run(["sinfo", "-h", "-n", conf.ISOLATED_NODE, "-o", "%T"], capture_output=True, text=True,
                         timeout=30).stdout.split()
    return out[0].rstrip("*") if out else ""


def start(users: tuple[str, ...], timeout: float = 60) -> None:
    """Start the isolated node (if it is not running) and wait until Slurm says it is idle."""
    if _pid() is None and _node_inits():
        stop()  # a node left without its pid file would hold the port and serve in its place
    spool = f"{conf.LIB_DIR}/slurmd/{conf.ISOLATED_NODE}"  # SlurmdSpoolDir, and the node's cwd
    os.makedirs(spool, exist_ok=True)
    if _pid() is None:
        hold = os.path.join(HOLD_DIR, conf.ISOLATED_NODE)
        os.makedirs(hold, exist_ok=True)
        with open(LOG, "ab") as log:
            proc = subprocess.Popen(
                ["unshare", "--mount", "--uts", "--pid", "--fork", "--kill-child", "--propagation", "private", "--",
                 "sh", "-c", NODE_INIT, "node-init", conf.ISOLATED_NODE, hold, " ".join(users)],
                env={**os.environ, "REAPER": REAPER}, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True, cwd=spool)  # 22.05's slurmstepd dumps core there (see stop())
        pathlib.Path(PIDFILE).write_text(f"{proc.pid}\n")
    subprocess.run(["scontrol", "update", f"nodename={conf.ISOLATED_NODE}", "state=resume"], capture_output=True,
                   timeout=30)
    deadline = time.monotonic() + timeout
    while node_state() not in ("idle", "mixed", "allocated"):
        if time.monotonic() > deadline or _pid() is None:
            tail = pathlib.Path(LOG).read_text()[-2000:] if os.path.exists(LOG) else ""
            raise RuntimeError(f"node {conf.ISOLATED_NODE} did not become idle (state {node_state()!r}); {LOG}:\n{tail}")
        time.sleep(0.2)


def stop() -> None:
    """End the node's namespaces (every process in them) and mark it down, so nothing is sent there.

    (Slurm 22.05's slurmstepd segfaults in stepd_cleanup after "container setup failed" — a
    bundle the node cannot see: the node runs with no core files, and in its spool, not the
    checkout that started it.)"""
    # SIGKILL: unshare --fork ignores SIGTERM. --kill-child then kills its pid 1, and the pid
    # namespace ends with it. Every node-init of ours, a lost pid file's too.
    for pid in _node_inits():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 9)
    deadline = time.monotonic() + 10
    while _node_inits() and time.monotonic() < deadline:
        time.sleep(0.05)
    pathlib.Path(PIDFILE).unlink(missing_ok=True)
    subprocess.run(["scontrol", "update", f"nodename={conf.ISOLATED_NODE}", "state=down", "reason=stopped"],
                   capture_output=True, timeout=30)
