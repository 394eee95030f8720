"""Compute nodes that do not see the login node's disks: every node of the cluster (daemons.py
starts them here), and slurmconf.ISOLATED_NODE, which the topology tests start and stop.

A node's slurmd runs in its own mount, pid and uts namespaces: /tmp, /var/tmp, /run (but for munge's
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


def pidfile(node: str) -> str:
    """The login side's pid of the node's unshare (slurmd's own pid file is in the node's /run)."""
    return f"{conf.RUN_DIR}/topology-{node}.pid"


def logfile(node: str) -> str:
    return f"{conf.LOG_DIR}/topology-{node}.log"

# pid 1 of the node: starts slurmd and reaps every orphan (slurmstepd's, crun's). It outlives
# slurmd, as a node outlives its daemon: a slurmd killed and started again (restart_slurmd) finds
# its running steps, whose slurmstepd lives on. The node ends when its unshare is killed (stop()).
REAPER = """
import os, signal, sys
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGCHLD])
child = os.fork()
if child == 0:
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGCHLD])
    os.execvp(sys.argv[1], sys.argv[1:])
while True:
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass
    signal.sigtimedwait([signal.SIGCHLD], 5)
"""

NODE_INIT = r"""
set -eu
node=$1 hold=$2 users=$3
ulimit -S -c 0  # no core files from slurmstepd (see stop()); the hard limit stays, a container may raise its own
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
for u in root $users; do
    id -u "$u" >/dev/null 2>&1 || { echo "node-init: no user $u (make the users first)" >&2; exit 1; }
    install -d -m 0700 -o "$u" -g "$(id -gn "$u")" "/run/crun-slurm/$u"
done
touch /run/node-ready  # its own /run, /tmp … are in place (_in_node waits for this)
exec python3 -c "$REAPER" slurmd -D -N "$node"
"""


def _same_pid_namespace(pid: str) -> bool:
    """From the host, a namespace lane's processes are visible too: never touch another lane's."""
    try:
        return os.readlink(f"/proc/{pid}/ns/pid") == os.readlink("/proc/self/ns/pid")
    except OSError:
        return False


def _node_inits(node: str) -> list[int]:
    """Every `unshare … node-init NODE` of this pid namespace, with or without a pid file."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = pathlib.Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv[:1] == [b"unshare"] and b"node-init" in argv and argv[argv.index(b"node-init") + 1:][:1] == [node.encode()] \
                and _same_pid_namespace(entry):
            found.append(int(entry))
    return found


def running(node: str) -> int | None:
    """The pid of the node's unshare, if the node runs."""
    try:
        pid = int(pathlib.Path(pidfile(node)).read_text().split()[0])
        comm = pathlib.Path(f"/proc/{pid}/comm").read_text().strip()
    except (OSError, ValueError, IndexError):
        return None
    return pid if comm == "unshare" else None


def children(pid: int) -> list[int]:
    """Every thread's children: a process spawned from a thread is listed under that thread."""
    found = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    for task in tasks:
        try:
            found += [int(c) for c in pathlib.Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
        except OSError:
            continue
    return found


def comm(pid: int) -> str:
    try:
        return pathlib.Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def slurmd_pid(node: str) -> int | None:
    """The node's slurmd as this pid namespace sees it (a child of the node's pid 1), if it runs."""
    unshare = running(node)
    for init in children(unshare) if unshare else []:
        for pid in children(init):
            if comm(pid) == "slurmd":
                return pid
    return None


def restart_slurmd(node: str) -> None:
    """Start slurmd again inside the running node (after it died): it daemonizes there, and the
    node's pid 1 adopts it. The caller waits for the node to answer."""
    unshare = running(node)
    inits = children(unshare) if unshare else []
    if not inits:
        raise RuntimeError(f"node {node} is not running: start it (tools/cluster/topology.py)")
    spool = f"{conf.LIB_DIR}/slurmd/{node}"
    subprocess.run(["nsenter", "-t", str(inits[0]), "-m", "-u", "-p", "--", "sh", "-c",
                    'ulimit -S -c 0; cd "$0" && exec slurmd -N "$1"', spool, node], check=True, timeout=60,
                   capture_output=True)


def _in_node(node: str, script: str, *args: str) -> None:
    unshare = running(node)
    inits = children(unshare) if unshare else []
    if not inits:
        raise RuntimeError(f"node {node} is not running: start it (tools/cluster/topology.py)")
    # Until NODE_INIT has mounted the node's own /run, its mount namespace still shows the login
    # node's: a file written then lands on the login node (CI once found the node's CDI spec in
    # the host's /run/cdi, when Slurm called a node "idle*" that had not started yet).
    ready, deadline = f"/proc/{inits[0]}/root/run/node-ready", time.monotonic() + 30
    while not os.path.exists(ready):
        if time.monotonic() > deadline:
            raise RuntimeError(f"node {node} did not finish setting up its namespaces within 30 s")
        time.sleep(0.05)
    proc = subprocess.run(["nsenter", "-t", str(inits[0]), "-m", "-p", "--", "sh", "-c", script, "node", *args],
                          timeout=60, capture_output=True, text=True)
    if proc.returncode != 0:  # say what failed in there: mount's and cp's own words
        raise RuntimeError(f"in node {node}: `{script}` exited {proc.returncode}: {proc.stderr.strip()[-1000:]}")


def bind_conf_copy(node: str, tag: str, edit: str, *args: str) -> None:
    """The node's /etc/slurm becomes a copy, /run/etc-slurm-<tag>, that the sh `edit` changes
    (the copy is "$d"; args are $1 …) before it is bound over /etc/slurm."""
    unbind_conf_copy(node, tag)  # a copy bound already (a test cut short) would be copied into itself
    # cp -R, not -a: preserving permissions (ACLs) onto the node's tmpfs /run failed once in
    # CI's 26.05 lane ("cp: preserving permissions … "); a root-owned 644/755 copy is all Slurm reads.
    _in_node(node, f'd=/run/etc-slurm-{tag}; rm -rf "$d" && mkdir -p "$d" && cp -R /etc/slurm/. "$d" && {edit} '
             '&& mount --bind "$d" /etc/slurm', *args)


def unbind_conf_copy(node: str, tag: str, then: str = "true") -> None:
    """The node's own /etc/slurm again, then the sh `then`."""
    # Lazily if busy: a slurmstepd still ending the last step may hold a file of the copy open;
    # new lookups see the node's own /etc/slurm at once either way.
    _in_node(node, f"if grep -q '/etc-slurm-{tag} /etc/slurm ' /proc/self/mountinfo; then "
             f"umount /etc/slurm 2>/dev/null || umount -l /etc/slurm; fi; {then}")


def hide_oci_conf(node: str) -> None:
    """The node's /etc/slurm becomes a copy without oci.conf: its slurmstepd then ignores
    --container and runs a step's command on the node itself (a misconfigured node)."""
    bind_conf_copy(node, "no-oci", 'rm -f "$d/oci.conf"')


def restore_oci_conf(node: str) -> None:
    unbind_conf_copy(node, "no-oci", "test -e /etc/slurm/oci.conf")


def node_state(node: str, responding: bool = False) -> str:
    """sinfo's state of the node; with `responding`, a node slurmctld does not hear ("idle*") is ""."""
    out = subprocess.run(["sinfo", "-h", "-n", node, "-o", "%T"], capture_output=True, text=True,
                         timeout=30).stdout.split()
    if not out or (responding and out[0].endswith("*")):
        return ""
    return out[0].rstrip("*")


def launch(node: str, users: tuple[str, ...] | list[str]) -> None:
    """Start the node's namespaces and slurmd in them, unless it runs; does not wait for it."""
    if (running(node) is None and _node_inits(node)) or (running(node) is not None and slurmd_pid(node) is None):
        # A node left without its pid file would hold the port and serve in its place; a node
        # whose slurmd died (and was not started again) serves nothing: start both afresh.
        stop(node, mark_down=False)
    spool = f"{conf.LIB_DIR}/slurmd/{node}"  # SlurmdSpoolDir, and the node's cwd
    os.makedirs(spool, exist_ok=True)
    if running(node) is not None:
        return
    hold = os.path.join(HOLD_DIR, node)
    os.makedirs(hold, exist_ok=True)
    with open(logfile(node), "ab") as log:
        proc = subprocess.Popen(
            ["unshare", "--mount", "--uts", "--pid", "--fork", "--kill-child", "--propagation", "private", "--",
             "sh", "-c", NODE_INIT, "node-init", node, hold, " ".join(users)],
            env={**os.environ, "REAPER": REAPER}, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            start_new_session=True, cwd=spool)  # 22.05's slurmstepd dumps core there (see stop())
    pathlib.Path(pidfile(node)).write_text(f"{proc.pid}\n")


def start(users: tuple[str, ...], node: str = conf.ISOLATED_NODE, timeout: float = 60) -> None:
    """Start the node (if it is not running) and wait until Slurm says it is idle and responding
    ("idle*" is a node slurmctld has not heard from yet)."""
    launch(node, users)
    subprocess.run(["scontrol", "update", f"nodename={node}", "state=resume"], capture_output=True, timeout=30)
    deadline = time.monotonic() + timeout
    while node_state(node, responding=True) not in ("idle", "mixed", "allocated"):
        if time.monotonic() > deadline or running(node) is None:
            log = logfile(node)
            tail = pathlib.Path(log).read_text()[-2000:] if os.path.exists(log) else ""
            raise RuntimeError(f"node {node} did not become idle (state {node_state(node)!r}); {log}:\n{tail}")
        time.sleep(0.2)


def stop(node: str = conf.ISOLATED_NODE, mark_down: bool = True) -> None:
    """End the node's namespaces (every process in them) and mark it down, so nothing is sent there.

    (Slurm 22.05's slurmstepd segfaults in stepd_cleanup after "container setup failed" — a
    bundle the node cannot see: the node runs with no core files, and in its spool, not the
    checkout that started it.)"""
    # SIGKILL: unshare --fork ignores SIGTERM. --kill-child then kills its pid 1, and the pid
    # namespace ends with it. Every node-init of ours, a lost pid file's too.
    for pid in _node_inits(node):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 9)
    deadline = time.monotonic() + 10
    while _node_inits(node) and time.monotonic() < deadline:
        time.sleep(0.05)
    pathlib.Path(pidfile(node)).unlink(missing_ok=True)
    if mark_down:
        subprocess.run(["scontrol", "update", f"nodename={node}", "state=down", "reason=stopped"],
                       capture_output=True, timeout=30)


def main(argv: list[str]) -> int:
    """`launch NODE [USER…]` or `stop NODE`, run inside a lane by daemons.py (the pids are the lane's)."""
    verb, node, *users = argv
    if verb == "launch":
        launch(node, users)
    elif verb == "stop":
        stop(node, mark_down=False)
    else:
        raise SystemExit(f"topology: unknown verb {verb!r}: launch or stop")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
