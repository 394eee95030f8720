#!/usr/bin/env python3
"""Local Slurm cluster for developing and testing scrun: install, start, stop, inspect.

Runs with the system Python and the standard library only, because it has to work
before the project's virtual environment exists. No systemd is assumed: munged,
slurmctld and slurmd are started as plain daemons and stopped by pid.

    tools/devcluster.py up [--nodes N]   install what is missing, write configs, start, wait idle
    tools/devcluster.py down             stop the daemons we started
    tools/devcluster.py status           one line per daemon and node

`up` is idempotent: on a running cluster with unchanged configs it only checks and returns.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time

SLURM_ETC = pathlib.Path("/etc/slurm")
RUN_DIR = pathlib.Path("/run/slurm")
LOG_DIR = pathlib.Path("/var/log/slurm")
LIB_DIR = pathlib.Path("/var/lib/slurm")
CRUN_ROOT = pathlib.Path("/run/crun-slurm")
MUNGE_PID = pathlib.Path("/run/munge/munged.pid")
CTLD_PID = RUN_DIR / "slurmctld.pid"
CTLD_PORT = 6817
SLURMD_BASE_PORT = 6818
STATE_FILE = RUN_DIR / "devcluster.nodes"
CONTAINERS_CONF = pathlib.Path("/etc/containers/containers.conf")
MARKER = "# written by scrun tools/devcluster.py"
IMAGE = "localhost/busybox:latest"
ROOTLESS_USER = "scrunuser"  # an unprivileged user for rootless podman tests

PACKAGES = [
    "slurmctld", "slurmd", "slurm-client", "munge", "crun", "podman", "conmon",
    "rsync", "busybox-static", "uidmap", "fuse-overlayfs", "slirp4netns", "tmux",
    "iproute2", "procps", "python3-venv",
]


class ClusterError(Exception):
    """A set-up step failed; the message says what and how to fix it."""


def say(msg: str) -> None:
    print(f"devcluster: {msg}", file=sys.stderr, flush=True)


def run(argv: list[str], check: bool = True, **kw) -> subprocess.CompletedProcess:
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    kw.setdefault("text", True)
    proc = subprocess.run(argv, **kw)
    if check and proc.returncode != 0:
        raise ClusterError(
            f"`{' '.join(argv)}` exited {proc.returncode}: {(proc.stderr or proc.stdout or '').strip()[-2000:]}"
        )
    return proc


# ---------------------------------------------------------------- packages

def missing_packages() -> list[str]:
    out = run(["dpkg-query", "-W", "-f=${Package} ${db:Status-Status}\n", *PACKAGES], check=False).stdout
    installed = {line.split()[0] for line in out.splitlines() if line.endswith(" installed")}
    return [p for p in PACKAGES if p not in installed]


def ensure_packages() -> None:
    missing = missing_packages()
    if not missing:
        return
    if os.geteuid() != 0:
        raise ClusterError(f"packages missing ({' '.join(missing)}): run as root so they can be installed")
    say(f"installing {' '.join(missing)} (apt-get)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    upd = run(["apt-get", "update", "-qq"], check=False, env=env)
    if upd.returncode != 0:
        raise ClusterError(f"apt-get update failed (is the Debian mirror reachable?): {upd.stderr.strip()[-500:]}")
    inst = run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], check=False, env=env)
    if inst.returncode != 0:
        raise ClusterError(f"apt-get install {' '.join(missing)} failed: {inst.stderr.strip()[-800:]}")


# ---------------------------------------------------------------- processes

def pid_alive(pidfile: pathlib.Path, comm: str) -> int | None:
    """Pid from a pid file if that process is alive and is `comm` (guards against pid reuse)."""
    try:
        pid = int(pidfile.read_text().split()[0])
        name = pathlib.Path(f"/proc/{pid}/comm").read_text().strip()
    except (OSError, ValueError, IndexError):
        return None
    return pid if name == comm else None


def port_owner(port: int) -> str | None:
    out = run(["ss", "-Htlnp", f"sport = :{port}"], check=False).stdout.strip()
    if not out:
        return None
    if 'users:(("' in out:
        return out.split('users:(("', 1)[1].split('"', 1)[0]
    return "unknown process"


def check_port(port: int, ours: str) -> None:
    owner = port_owner(port)
    if owner is not None and owner != ours:
        raise ClusterError(f"TCP port {port} is taken by {owner!r}, not {ours}: stop it or free the port")


def wait_for(pred, timeout: float, what: str, log: pathlib.Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.1)
    tail = ""
    if log and log.exists():
        tail = "\n  last lines of " + str(log) + ":\n    " + "\n    ".join(log.read_text(errors="replace").splitlines()[-15:])
    raise ClusterError(f"timed out after {timeout:.0f}s waiting for {what}{tail}")


# ---------------------------------------------------------------- cgroups (crun on hybrid hosts)

def fix_hybrid_cgroups() -> None:
    """crun 1.8 refuses hybrid hosts while cgroup2 owns a controller: give each its own v1 mount."""
    controllers = pathlib.Path("/sys/fs/cgroup/unified/cgroup.controllers")
    if not controllers.exists():
        return
    for name in controllers.read_text().split():
        target = pathlib.Path("/sys/fs/cgroup") / name
        if os.path.ismount(target):
            continue
        target.mkdir(exist_ok=True)
        proc = run(["mount", "-t", "cgroup", "-o", name, "cgroup", str(target)], check=False)
        if proc.returncode != 0:
            say(f"warning: could not mount cgroup v1 {name} ({proc.stderr.strip()}); crun may refuse containers")


# ---------------------------------------------------------------- configs

def mem_mb() -> int:
    for line in pathlib.Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    return 4096


def slurm_conf(nodes: int) -> str:
    host = socket.gethostname()
    # One slurmd per node name on this host (multiple-slurmd build); config_overrides lets
    # each node declare more CPUs than the host has so many small containers fit at once.
    cpus = 32
    real_mem = int(mem_mb() * 0.8)
    ports = f"{SLURMD_BASE_PORT}" if nodes == 1 else f"[{SLURMD_BASE_PORT}-{SLURMD_BASE_PORT + nodes - 1}]"
    names = "n1" if nodes == 1 else f"n[1-{nodes}]"
    return f"""{MARKER}
ClusterName=scrundev
SlurmctldHost={host}(127.0.0.1)
SlurmUser=slurm
AuthType=auth/munge
SlurmctldPort={CTLD_PORT}
SlurmdPort={SLURMD_BASE_PORT}
StateSaveLocation={LIB_DIR}/slurmctld
SlurmdSpoolDir={LIB_DIR}/slurmd/%n
SlurmctldPidFile={CTLD_PID}
SlurmdPidFile={RUN_DIR}/slurmd-%n.pid
SlurmctldLogFile={LOG_DIR}/slurmctld.log
SlurmdLogFile={LOG_DIR}/slurmd-%n.log
ProctrackType=proctrack/cgroup
TaskPlugin=task/cgroup
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=100
SchedulerParameters=sched_min_interval=0
MessageTimeout=10
KillWait=5
CompleteWait=0
InactiveLimit=0
MinJobAge=60
ReturnToService=2
SlurmdParameters=config_overrides
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc={LOG_DIR}/jobcomp.log
MpiDefault=none
NodeName={names} NodeHostname={host} NodeAddr=127.0.0.1 Port={ports} CPUs={cpus} Sockets=1 CoresPerSocket={cpus} ThreadsPerCore=1 RealMemory={real_mem} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


CGROUP_CONF = f"""{MARKER}
CgroupPlugin=cgroup/v1
CgroupAutomount=yes
ConstrainCores=no
ConstrainRAMSpace=no
ConstrainDevices=no
"""

OCI_CONF = f"""{MARKER}
# "run" mode: 22.05's create/start mode hangs. `exec` so signals reach crun, not dash.
# --cgroup-manager=disabled keeps the container inside the step's cgroup.
RunTimeRun="exec crun --cgroup-manager=disabled --root={CRUN_ROOT}/%u run --bundle %b %n-%j-%s-%t"
RunTimeQuery="crun --root={CRUN_ROOT}/%u state %n-%j-%s-%t"
RunTimeKill="crun --root={CRUN_ROOT}/%u kill -a %n-%j-%s-%t SIGTERM"
RunTimeDelete="crun --root={CRUN_ROOT}/%u delete --force %n-%j-%s-%t"
"""


def write_if_changed(path: pathlib.Path, text: str, mode: int = 0o644) -> bool:
    if path.exists() and path.read_text() == text:
        return False
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.chmod(mode)
    os.replace(tmp, path)
    return True


def write_configs(nodes: int) -> bool:
    SLURM_ETC.mkdir(parents=True, exist_ok=True)
    conf = SLURM_ETC / "slurm.conf"
    if conf.exists() and MARKER not in conf.read_text():
        backup = conf.with_name("slurm.conf.before-devcluster")
        say(f"keeping the existing {conf} as {backup}")
        shutil.copy2(conf, backup)
    changed = False
    changed |= write_if_changed(conf, slurm_conf(nodes))
    changed |= write_if_changed(SLURM_ETC / "cgroup.conf", CGROUP_CONF)
    changed |= write_if_changed(SLURM_ETC / "oci.conf", OCI_CONF)
    for d in (RUN_DIR, LOG_DIR, LIB_DIR / "slurmd"):
        d.mkdir(parents=True, exist_ok=True)
    ctld_state = LIB_DIR / "slurmctld"
    ctld_state.mkdir(parents=True, exist_ok=True)
    shutil.chown(ctld_state, "slurm", "slurm")
    shutil.chown(LOG_DIR, "slurm", "slurm")
    LOG_DIR.chmod(0o775)
    CRUN_ROOT.mkdir(exist_ok=True)
    CRUN_ROOT.chmod(0o1777)
    for i in range(1, nodes + 1):
        (LIB_DIR / "slurmd" / f"n{i}").mkdir(exist_ok=True)
    return changed


# ---------------------------------------------------------------- daemons

def munge_ok() -> bool:
    enc = run(["munge", "-n"], check=False)
    if enc.returncode != 0:
        return False
    return run(["unmunge"], check=False, input=enc.stdout).returncode == 0


def start_munge() -> None:
    if pid_alive(MUNGE_PID, "munged") and munge_ok():
        return
    key = pathlib.Path("/etc/munge/munge.key")
    if not key.exists():
        run(["mungekey", "-c", "-k", str(key)])
    shutil.chown(key, "munge", "munge")
    key.chmod(0o400)
    for d in ("/run/munge", "/var/log/munge", "/var/lib/munge"):
        pathlib.Path(d).mkdir(parents=True, exist_ok=True)
        shutil.chown(d, "munge", "munge")
    run(["runuser", "-u", "munge", "--", "/usr/sbin/munged", "--force"])
    wait_for(munge_ok, 10, "munged to answer (munge -n | unmunge)", pathlib.Path("/var/log/munge/munged.log"))


def node_names(nodes: int) -> list[str]:
    return [f"n{i}" for i in range(1, nodes + 1)]


def running_nodes() -> list[str]:
    try:
        names = STATE_FILE.read_text().split()
    except OSError:
        return []
    return [n for n in names if pid_alive(RUN_DIR / f"slurmd-{n}.pid", "slurmd")]


def stop_pid(pidfile: pathlib.Path, comm: str, timeout: float = 10) -> None:
    pid = pid_alive(pidfile, comm)
    if pid is None:
        return
    os.kill(pid, 15)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and pid_alive(pidfile, comm):
        time.sleep(0.05)
    if pid_alive(pidfile, comm):
        os.kill(pid, 9)


def start_slurmctld() -> None:
    if pid_alive(CTLD_PID, "slurmctld"):
        return
    check_port(CTLD_PORT, "slurmctld")
    # -i: ignore saved state that does not match the config (nodes changed between runs).
    proc = run(["slurmctld", "-i"], check=False)
    if proc.returncode != 0:
        raise ClusterError(f"slurmctld failed to start: {proc.stderr.strip()}\n{log_tail(LOG_DIR / 'slurmctld.log')}")
    wait_for(lambda: run(["scontrol", "ping"], check=False).stdout.count("is UP") > 0, 30,
             "slurmctld to answer `scontrol ping`", LOG_DIR / "slurmctld.log")


def start_slurmd(name: str, port: int) -> None:
    pidfile = RUN_DIR / f"slurmd-{name}.pid"
    if pid_alive(pidfile, "slurmd"):
        return
    check_port(port, "slurmd")
    proc = run(["slurmd", "-N", name], check=False)
    if proc.returncode != 0:
        raise ClusterError(f"slurmd -N {name} failed to start: {proc.stderr.strip()}\n{log_tail(LOG_DIR / f'slurmd-{name}.log')}")


def log_tail(path: pathlib.Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return f"(no log at {path})"
    return f"last lines of {path}:\n    " + "\n    ".join(text)


def nodes_idle(names: list[str]) -> bool:
    out = run(["sinfo", "-h", "-N", "-o", "%N %T"], check=False).stdout.split("\n")
    states = dict(line.split() for line in out if len(line.split()) == 2)
    return all(states.get(n, "").rstrip("*") in ("idle", "mixed", "allocated") for n in names)


def resume_nodes(names: list[str]) -> None:
    out = run(["sinfo", "-h", "-N", "-o", "%N %T"], check=False).stdout
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in names and parts[1].rstrip("*") in ("down", "drained", "draining", "fail"):
            run(["scontrol", "update", f"nodename={parts[0]}", "state=resume"], check=False)


def stop_all() -> None:
    names = set(running_nodes())
    for pidfile in RUN_DIR.glob("slurmd-*.pid"):
        stop_pid(pidfile, "slurmd")
    for n in names:
        stop_pid(RUN_DIR / f"slurmd-{n}.pid", "slurmd")
    stop_pid(CTLD_PID, "slurmctld")
    STATE_FILE.unlink(missing_ok=True)


# ---------------------------------------------------------------- podman

def containers_conf(scrun_path: str) -> str:
    nofile = run(["sh", "-c", "ulimit -Hn"], check=False).stdout.strip() or "1024"
    nproc = run(["sh", "-c", "ulimit -Hu"], check=False).stdout.strip() or "4096"
    nproc = "65535" if nproc == "unlimited" else nproc
    return f"""{MARKER}
[containers]
# No CAP_SYS_RESOURCE here: ulimits must not exceed the current hard limits.
default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "crun"
runtime_supports_json = ["crun", "runc", "kata", "runsc", "krun", "scrun"]
runtime_supports_nocgroup = ["crun", "krun"]

[engine.runtimes]
scrun = ["{scrun_path}"]
"""


def build_busybox_rootfs(dest: pathlib.Path) -> None:
    """A minimal rootfs: static busybox plus applet links, passwd/group, empty mount points."""
    for d in ("bin", "etc", "tmp", "proc", "sys", "dev", "root", "var", "run"):
        (dest / d).mkdir(parents=True, exist_ok=True)
    shutil.copy2("/bin/busybox", dest / "bin" / "busybox")
    applets = run(["/bin/busybox", "--list"]).stdout.split()
    for applet in applets:
        link = dest / "bin" / applet
        if not link.exists():
            link.symlink_to("busybox")
    (dest / "tmp").chmod(0o1777)
    (dest / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
    (dest / "etc" / "group").write_text("root:x:0:\nnobody:x:65534:\n")
    (dest / "etc" / "hostname").write_text("busybox\n")


def ensure_image() -> None:
    if run(["podman", "image", "exists", IMAGE], check=False).returncode == 0:
        return
    say(f"building {IMAGE} from busybox-static")
    with tempfile.TemporaryDirectory() as tmp:
        rootfs = pathlib.Path(tmp) / "rootfs"
        build_busybox_rootfs(rootfs)
        tarball = pathlib.Path(tmp) / "rootfs.tar"
        with tarfile.open(tarball, "w") as tar:
            tar.add(rootfs, arcname=".")
        run(["podman", "import", "--change", "CMD=/bin/sh", "--change", "ENV=PATH=/bin",
             str(tarball), IMAGE])


def setup_rootless_user() -> None:
    """A plain user with subordinate ids and the test image in its own podman storage."""
    if run(["id", ROOTLESS_USER], check=False).returncode != 0:
        run(["useradd", "--create-home", "--shell", "/bin/bash", ROOTLESS_USER])
    for path in ("/etc/subuid", "/etc/subgid"):
        text = pathlib.Path(path).read_text() if pathlib.Path(path).exists() else ""
        if not any(line.startswith(ROOTLESS_USER + ":") for line in text.splitlines()):
            with open(path, "a") as fh:
                fh.write(f"{ROOTLESS_USER}:200000:65536\n")
    as_user = ["runuser", "-u", ROOTLESS_USER, "--", "sh", "-c"]
    if run([*as_user, f"cd /tmp && podman image exists {IMAGE}"], check=False).returncode == 0:
        return
    with tempfile.TemporaryDirectory() as tmp:
        archive = pathlib.Path(tmp) / "image.tar"
        run(["podman", "save", "-o", str(archive), IMAGE])
        archive.chmod(0o644)
        pathlib.Path(tmp).chmod(0o755)
        run([*as_user, f"cd /tmp && podman load -q -i {archive}"])


def setup_podman(scrun_path: str | None) -> None:
    path = scrun_path or "/usr/local/bin/scrun"
    CONTAINERS_CONF.parent.mkdir(parents=True, exist_ok=True)
    if CONTAINERS_CONF.exists() and MARKER not in CONTAINERS_CONF.read_text():
        shutil.copy2(CONTAINERS_CONF, CONTAINERS_CONF.with_name("containers.conf.before-devcluster"))
    write_if_changed(CONTAINERS_CONF, containers_conf(path))
    ensure_image()
    setup_rootless_user()


# ---------------------------------------------------------------- verbs

def up(nodes: int, scrun_path: str | None, with_podman: bool) -> None:
    t0 = time.monotonic()
    ensure_packages()
    fix_hybrid_cgroups()
    start_munge()
    changed = write_configs(nodes)
    wanted = node_names(nodes)
    current = running_nodes()
    if changed or (current and set(current) != set(wanted)):
        if pid_alive(CTLD_PID, "slurmctld") or current:
            say("configuration changed: restarting slurmctld and slurmd")
        stop_all()
    start_slurmctld()
    for i, name in enumerate(wanted):
        start_slurmd(name, SLURMD_BASE_PORT + i)
    STATE_FILE.write_text(" ".join(wanted) + "\n")
    resume_nodes(wanted)
    wait_for(lambda: nodes_idle(wanted), 60, f"node(s) {','.join(wanted)} to become idle",
             LOG_DIR / f"slurmd-{wanted[0]}.log")
    if with_podman:
        setup_podman(scrun_path)
    say(f"cluster up: {len(wanted)} node(s) idle ({time.monotonic() - t0:.1f}s)")


def down() -> None:
    stop_all()
    say("slurmctld and slurmd stopped (munged left running)")


def status() -> int:
    ok = True
    munge = pid_alive(MUNGE_PID, "munged")
    print(f"munged     {'running pid ' + str(munge) if munge else 'stopped'}")
    ctld = pid_alive(CTLD_PID, "slurmctld")
    print(f"slurmctld  {'running pid ' + str(ctld) if ctld else 'stopped'}")
    ok &= bool(munge and ctld)
    for name in running_nodes():
        print(f"slurmd     {name} running pid {pid_alive(RUN_DIR / f'slurmd-{name}.pid', 'slurmd')}")
    if ctld:
        print(run(["sinfo", "-N", "-o", "%N %T %c %m"], check=False).stdout.rstrip())
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="devcluster", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="verb", required=True)
    p_up = sub.add_parser("up", help="install, configure and start the local cluster")
    p_up.add_argument("--nodes", type=int, default=int(os.environ.get("SCRUN_DEV_NODES", "1")),
                      help="number of slurmd on this host (default 1, env SCRUN_DEV_NODES)")
    p_up.add_argument("--scrun", help="path of the scrun executable to register with podman")
    p_up.add_argument("--no-podman", action="store_true", help="skip podman configuration and image")
    sub.add_parser("down", help="stop slurmctld and slurmd")
    sub.add_parser("status", help="show daemons and nodes")
    args = parser.parse_args(argv)
    try:
        if args.verb == "up":
            if not 1 <= args.nodes <= 16:
                raise ClusterError(f"--nodes {args.nodes}: choose 1 to 16")
            up(args.nodes, args.scrun, not args.no_podman)
        elif args.verb == "down":
            down()
        else:
            return status()
    except ClusterError as exc:
        print(f"devcluster: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
