"""munged, slurmctld and slurmd of one lane: configure, start without systemd, stop by pid.

Every slurmd runs as a compute node of its own (tools/cluster/topology.py): it sees /home,
/scratch and the system, not the login node's /tmp, /run or engine storage.
"""
from __future__ import annotations

import pathlib
import time

from cluster import fakegpu
from cluster import slurmconf as conf
from cluster import topology
from cluster.users import USERS
from cluster.shell import ClusterError, log_tail, say, wait_for, write_if_changed
from cluster.target import Target

STATE_FILE = f"{conf.RUN_DIR}/devcluster.nodes"
MUNGE_PID = "/run/munge/munged.pid"


def write_configs(t: Target, layout: conf.Layout) -> bool:
    """Write the lane's configs; True when one changed (the daemons must then restart)."""
    etc = t.path("/etc/slurm")
    slurm_conf = etc / "slurm.conf"
    if slurm_conf.exists() and conf.MARKER not in slurm_conf.read_text():
        backup = slurm_conf.with_name("slurm.conf.before-devcluster")
        say(f"[{t.lane}] keeping the existing /etc/slurm/slurm.conf as {backup.name}")
        backup.write_text(slurm_conf.read_text())
    changed = False
    changed |= write_if_changed(slurm_conf, conf.slurm_conf(layout))
    changed |= write_if_changed(etc / "cgroup.conf", conf.cgroup_conf(layout))
    changed |= write_if_changed(etc / "oci.conf", conf.OCI_CONF)
    changed |= write_if_changed(etc / "gres.conf", fakegpu.GRES_CONF)
    for command in fakegpu.device_commands():  # before slurmd: gres.conf names them
        t.run(command)
    t.path("/etc/cdi").mkdir(parents=True, exist_ok=True)
    write_if_changed(t.path(fakegpu.STUB_PATH), fakegpu.stub_spec())
    # scrun reads these per container: no restart.
    write_if_changed(etc / "scrun.conf", conf.SCRUN_CONF)
    write_if_changed(t.path(conf.EXAMPLE_SCRUN_LUA_PATH), conf.EXAMPLE_SCRUN_LUA.read_text())
    old_lua = etc / "scrun.lua"  # an earlier cluster's: it would take the last word over scrun.conf
    if old_lua.exists() and "devcluster" in old_lua.read_text():
        old_lua.unlink()
    staged = t.path(conf.STAGED_CONF_DIR)
    staged.mkdir(parents=True, exist_ok=True)
    for name in ("slurm.conf", "cgroup.conf", "oci.conf", "scrun.conf", "gres.conf"):
        write_if_changed(staged / name, (etc / name).read_text())
    # A site's scratch: every user writes.
    t.run(["install", "-d", "-m", "1777", conf.SCRATCH, conf.STAGE_DIR, conf.IMAGE_CACHE, conf.SCRATCH_TMP])
    dirs = [conf.RUN_DIR, conf.LOG_DIR, f"{conf.LIB_DIR}/slurmctld", conf.CRUN_ROOT,
            *(f"{conf.LIB_DIR}/slurmd/{n}" for n in conf.node_names(layout.nodes))]
    for d in dirs:
        t.path(d).mkdir(parents=True, exist_ok=True)
    # crun's state of each user's containers (oci.conf's --root=CRUN_ROOT/%u): the parent is
    # root's, each user's directory theirs (users.ensure_user), so nobody can make another's first.
    t.path(conf.CRUN_ROOT).chmod(0o755)
    t.run(["install", "-d", "-m", "0700", f"{conf.CRUN_ROOT}/root"])
    t.path(conf.LOG_DIR).chmod(0o775)
    t.chown("slurm:slurm", f"{conf.LIB_DIR}/slurmctld", conf.LOG_DIR)
    return changed


# ---------------------------------------------------------------- munge

def munge_ok(t: Target) -> bool:
    return t.run(["sh", "-c", "munge -n | unmunge"], check=False, timeout=10).returncode == 0


def start_munge(t: Target) -> None:
    if t.pid_of(MUNGE_PID, "munged") and munge_ok(t):
        return
    if not t.path("/etc/munge/munge.key").exists():
        t.run(["mungekey", "-c", "-k", "/etc/munge/munge.key"])
    for d in ("/run/munge", "/var/log/munge", "/var/lib/munge"):
        t.path(d).mkdir(parents=True, exist_ok=True)
    t.chown("munge:munge", "/etc/munge", "/etc/munge/munge.key", "/run/munge", "/var/log/munge", "/var/lib/munge")
    t.path("/etc/munge/munge.key").chmod(0o400)
    t.run(["runuser", "-u", "munge", "--", "/usr/sbin/munged", "--force"], timeout=20)
    wait_for(lambda: munge_ok(t), 10, f"munged in {t.lane} to answer (munge -n | unmunge)",
             t.path("/var/log/munge/munged.log"))


# ---------------------------------------------------------------- slurm

TOOLS = pathlib.Path(__file__).resolve().parents[1]  # a namespace lane sees the checkout at the same path


def topology_run(t: Target, *args: str) -> None:
    """tools/cluster/topology.py in the lane: a node's pids are the lane's."""
    t.run(["env", f"PYTHONPATH={TOOLS}", "python3", "-m", "cluster.topology", *args], timeout=60)


def running_nodes(t: Target) -> list[str]:
    try:
        names = t.path(STATE_FILE).read_text().split()
    except OSError:
        return []
    return [n for n in names if t.pid_of(topology.pidfile(n), "unshare")]


def login_slurmds(t: Target) -> list[str]:
    """Pid files of slurmds that run on the login node itself (a cluster from before nodes were
    isolated): they hold the nodes' ports."""
    return [f"{conf.RUN_DIR}/{p.name}" for p in t.path(conf.RUN_DIR).glob("slurmd-*.pid")
            if t.pid_of(f"{conf.RUN_DIR}/{p.name}", "slurmd")]


def stop_pid(t: Target, pidfile: str, comm: str, timeout: float = 10) -> None:
    pid = t.pid_of(pidfile, comm)
    if pid is None:
        return
    # A namespace lane's pids mean nothing on the host: signal through the lane.
    t.run(["kill", "-TERM", str(pid)], check=False, timeout=10)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and t.pid_of(pidfile, comm):
        time.sleep(0.05)
    if t.pid_of(pidfile, comm):
        t.run(["kill", "-KILL", str(pid)], check=False, timeout=10)


def stop_all(t: Target) -> None:
    for pidfile in t.path(conf.RUN_DIR).glob("topology-*.pid"):
        topology_run(t, "stop", pidfile.name.removeprefix("topology-").removesuffix(".pid"))
    for pidfile in login_slurmds(t):
        stop_pid(t, pidfile, "slurmd")
    stop_pid(t, conf.CTLD_PID, "slurmctld")
    t.path(STATE_FILE).unlink(missing_ok=True)


def port_owner(t: Target, port: int) -> str | None:
    out = t.run(["ss", "-Htlnp", f"sport = :{port}"], check=False, timeout=10).stdout.strip()
    if not out:
        return None
    if 'users:(("' in out:
        return out.split('users:(("', 1)[1].split('"', 1)[0]
    return "unknown process"


def check_port(t: Target, port: int, ours: str) -> None:
    owner = port_owner(t, port)
    if owner is not None and owner != ours:
        raise ClusterError(f"TCP port {port} is taken by {owner!r}, not {ours}: stop it or free the port")


def scontrol_ping(t: Target) -> bool:
    return "is UP" in t.run(["scontrol", "ping"], check=False, timeout=15).stdout


def start_slurmctld(t: Target) -> None:
    if t.pid_of(conf.CTLD_PID, "slurmctld"):
        return
    check_port(t, conf.CTLD_PORT, "slurmctld")
    log = t.path(f"{conf.LOG_DIR}/slurmctld.log")
    # -i: ignore saved state that does not match the config (nodes changed between runs).
    proc = t.run(["slurmctld", "-i"], check=False, timeout=30)
    if proc.returncode != 0:
        raise ClusterError(f"slurmctld in {t.lane} failed to start: {proc.stderr.strip()}\n  {log_tail(log)}")
    wait_for(lambda: scontrol_ping(t), 30, f"slurmctld in {t.lane} to answer `scontrol ping`", log)


def start_slurmd(t: Target, name: str, port: int) -> None:
    """The node's namespaces and its slurmd (tools/cluster/topology.py, which leaves a node whose
    slurmd runs alone); start_cluster waits."""
    check_port(t, port, "slurmd")
    topology_run(t, "launch", name, *USERS)


def node_states(t: Target) -> dict[str, str]:
    out = t.run(["sinfo", "-h", "-N", "-o", "%N %T"], check=False, timeout=15).stdout
    return {p[0]: p[1].rstrip("*") for p in (line.split() for line in out.splitlines()) if len(p) == 2}


def nodes_idle(t: Target, names: list[str]) -> bool:
    states = node_states(t)
    return all(states.get(n, "") in ("idle", "mixed", "allocated") for n in names)


def resume_nodes(t: Target, names: list[str]) -> None:
    for name, state in node_states(t).items():
        if name in names and state in ("down", "drained", "draining", "fail"):
            t.run(["scontrol", "update", f"nodename={name}", "state=resume"], check=False, timeout=15)


def start_cluster(t: Target, layout: conf.Layout) -> None:
    """munged, slurmctld and one slurmd per node; restarts Slurm when its config changed."""
    start_munge(t)
    changed = write_configs(t, layout)
    wanted = conf.node_names(layout.nodes)
    current = running_nodes(t)
    if changed or (current and set(current) != set(wanted)) or login_slurmds(t):
        if t.pid_of(conf.CTLD_PID, "slurmctld") or current:
            say(f"[{t.lane}] configuration changed: restarting slurmctld and slurmd")
        stop_all(t)
    start_slurmctld(t)
    for i, name in enumerate(wanted):
        start_slurmd(t, name, conf.SLURMD_BASE_PORT + i)
    t.path(STATE_FILE).write_text(" ".join(wanted) + "\n")
    resume_nodes(t, wanted)
    wait_for(lambda: nodes_idle(t, wanted), 60, f"node(s) {','.join(wanted)} in {t.lane} to become idle",
             t.path(f"{conf.LOG_DIR}/slurmd-{wanted[0]}.log"), t.path(topology.logfile(wanted[0])))


def slurm_version(t: Target) -> str:
    return t.run(["sinfo", "--version"], check=False, timeout=15).stdout.strip()


def mem_mb() -> int:
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    return 4096
