"""slurm.conf, cgroup.conf and oci.conf for a lane: pure text from a layout."""
from __future__ import annotations

import pathlib
from dataclasses import dataclass

MARKER = "# written by scrun tools/devcluster.py"
CTLD_PORT = 6817
SLURMD_BASE_PORT = 6818
RUN_DIR = "/run/slurm"
LOG_DIR = "/var/log/slurm"
LIB_DIR = "/var/lib/slurm"
CRUN_ROOT = "/run/crun-slurm"
CTLD_PID = f"{RUN_DIR}/slurmctld.pid"


@dataclass(frozen=True)
class Layout:
    """What differs between lanes: names, address, node count, how processes are tracked."""

    cluster: str
    hostname: str
    address: str
    nodes: int
    real_mem_mb: int
    # True: proctrack/task cgroup plugins on the host's v1 hierarchies (the host lane on a
    # hybrid machine). False: no cgroup plugin at all, as in a namespace lane, which must not
    # write into the cgroup tree it shares with the host's cluster.
    cgroups: bool
    series: tuple[int, int] = (22, 5)  # the Slurm release: some keys exist only from a version on


# A compute node shaped like a real one (tools/cluster/topology.py): its slurmd runs in its own
# mount, pid and uts namespaces, where the login node's /tmp, /var/tmp, /run and engine storage
# are empty, and only /home, /scratch and the system are shared. Its own partition: no job lands
# there unless it asks; the tests that need it start it (it is down otherwise).
ISOLATED_NODE = "iso1"
ISOLATED_PARTITION = "isolated"
ISOLATED_PORT = SLURMD_BASE_PORT + 50
# The isolated node has two fake GPUs (GRES gpu, device files that are /dev/null): the CDI
# tests' (tools/cluster/fakegpu.py).
FAKE_GPUS = 2
# A partition whose jobs preempt (cancel) the default partition's, as a site's high-priority
# queue does: the end-cause tests' preemption.
URGENT_PARTITION = "urgent"
SCRATCH = "/scratch"  # the site's shared filesystem (Lustre/GPFS/NFS stand-in): the same on every node
STAGE_DIR = f"{SCRATCH}/scrun"  # scrun.conf's StageDir here (made 1777 by daemons.write_configs)
IMAGE_CACHE = f"{SCRATCH}/scrun-images"  # scrun.conf's ImageCache: each user's images, copied once (1777 too)
# TMPDIR of every command run in a lane (tests, conformance, benchmarks): their bundles and
# files must reach the nodes, as a site's users keep theirs on the shared filesystem.
SCRATCH_TMP = f"{SCRATCH}/tmp"


# The cluster stages as a site without a scrun.lua: scrun.conf's built-in staging onto /scratch
# (its nodes see only /home and /scratch). STAGED_CONF_DIR is the same configuration in a
# directory of its own, for tests that pin it (docker: daemon.json's runtime `scrun-staged`).
STAGED_CONF_DIR = "/etc/slurm/staged"
SCRUN_CONF = f"""{MARKER}
StageDir={STAGE_DIR}
SharedPaths={SCRATCH},/home
ImageCache={IMAGE_CACHE}
"""


def node_names(nodes: int) -> list[str]:
    return [f"n{i}" for i in range(1, nodes + 1)]


def slurm_conf(layout: Layout) -> str:
    # One slurmd per node name on this host (multiple-slurmd build); config_overrides lets
    # each node declare more CPUs than the host has so many small containers fit at once.
    cpus = 128  # 3 nodes: bench-scale's 300 one-CPU containers at once
    nodes = layout.nodes
    ports = f"{SLURMD_BASE_PORT}" if nodes == 1 else f"[{SLURMD_BASE_PORT}-{SLURMD_BASE_PORT + nodes - 1}]"
    names = "n1" if nodes == 1 else f"n[1-{nodes}]"
    tracking = ("ProctrackType=proctrack/cgroup\nTaskPlugin=task/cgroup\n" if layout.cgroups else
                "ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\nJobAcctGatherType=jobacct_gather/none\n")
    return f"""{MARKER}
ClusterName={layout.cluster}
SlurmctldHost={layout.hostname}({layout.address})
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
{tracking}SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=100
SchedulerParameters=sched_min_interval=0
MessageTimeout=10
SlurmdTimeout=30
KillWait=5
CompleteWait=0
InactiveLimit=0
MinJobAge=60
ReturnToService=2
SlurmdParameters=config_overrides
PreemptType=preempt/partition_prio
PreemptMode=CANCEL
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc={LOG_DIR}/jobcomp.log
MailProg=/bin/true
MpiDefault=none
GresTypes=gpu
NodeName={names} NodeHostname={layout.hostname} NodeAddr={layout.address} Port={ports} CPUs={cpus} Sockets=1 CoresPerSocket={cpus} ThreadsPerCore=1 RealMemory={layout.real_mem_mb} State=UNKNOWN
NodeName={ISOLATED_NODE} NodeHostname={layout.hostname} NodeAddr={layout.address} Port={ISOLATED_PORT} CPUs={cpus} Sockets=1 CoresPerSocket={cpus} ThreadsPerCore=1 RealMemory={layout.real_mem_mb} Gres=gpu:{FAKE_GPUS} State=UNKNOWN
PartitionName=debug Nodes={names} Default=YES MaxTime=INFINITE State=UP PriorityTier=1
PartitionName={URGENT_PARTITION} Nodes={names} Default=NO MaxTime=INFINITE State=UP PriorityTier=10
PartitionName={ISOLATED_PARTITION} Nodes={ISOLATED_NODE} Default=NO MaxTime=INFINITE State=UP
"""


def cgroup_conf(layout: Layout) -> str:
    if not layout.cgroups:
        # `disabled` exists from 24.05 on; before, no cgroup plugin loads without a cgroup
        # proctrack/task plugin, so the key is left out.
        return f"{MARKER}\nCgroupPlugin=disabled\n" if layout.series >= (24, 5) else f"{MARKER}\n"
    return f"""{MARKER}
CgroupPlugin=cgroup/v1
CgroupAutomount=yes
ConstrainCores=no
ConstrainRAMSpace=yes
ConstrainDevices=no
"""


# A staging scrun.lua for tests (the seed's contract with a project's script): installed beside
# slurm.conf under another name, so the cluster itself runs without one.
EXAMPLE_SCRUN_LUA = pathlib.Path(__file__).with_name("scrun.lua")
EXAMPLE_SCRUN_LUA_PATH = "/etc/slurm/staging-example.lua"

# A runtime command that slurmstepd may run as root or as the job's user: as the user always.
AS_JOB_USER = "$(test $(id -u) = 0 && echo runuser -u %u --)"

OCI_CONF = f"""{MARKER}
# "run" mode: 22.05's create/start mode hangs. `exec` so signals reach crun, not dash.
# --cgroup-manager=disabled keeps the container inside the step's cgroup.
RunTimeRun="exec crun --cgroup-manager=disabled --root={CRUN_ROOT}/%u run --bundle %b %n-%j-%s-%t"
# Query/Kill/Delete run as root when slurmstepd cleans up (the step's end, a failed step):
# crun's `delete` then runs the poststop hooks of the config.json in the state directory, which
# is the user's own: a user could have root run anything on the node. So they run as the job's
# user, as RunTimeRun does ({AS_JOB_USER}). `test -d` first, or crun would make the user's state
# directory.
RunTimeQuery="test -d {CRUN_ROOT}/%u && {AS_JOB_USER} crun --root={CRUN_ROOT}/%u state %n-%j-%s-%t"
RunTimeKill="test -d {CRUN_ROOT}/%u && {AS_JOB_USER} crun --root={CRUN_ROOT}/%u kill -a %n-%j-%s-%t SIGTERM"
RunTimeDelete="test -d {CRUN_ROOT}/%u && {AS_JOB_USER} crun --root={CRUN_ROOT}/%u delete --force %n-%j-%s-%t"
"""
