"""Bring lanes up and down, find where a lane runs, and run commands (pytest) in it."""
from __future__ import annotations

import os
import pathlib
import socket
import sys
import time
import tomllib
from dataclasses import dataclass

from cluster import cgroups, daemons, docker, packages, podman, users
from cluster.lanes import LaneSpec, native_lane
from cluster.nslane import VENV, NamespaceLane
from cluster.shell import ClusterError, say
from cluster.slurmconf import CTLD_PID, SCRATCH_TMP, Layout
from cluster.target import Host, Target

REPO = pathlib.Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class UpOptions:
    nodes: int = 1
    scrun: str = "/usr/local/bin/scrun"
    pip: str | None = None      # the host pip that fetches a namespace lane's wheels
    podman: bool = True


def is_native(spec: LaneSpec) -> bool:
    return spec == native_lane()


def series(spec: LaneSpec) -> tuple[int, int]:
    major, minor = spec.name.removeprefix("slurm-").split(".")
    return int(major), int(minor)


def layout(spec: LaneSpec, nodes: int) -> Layout:
    if is_native(spec):
        # The host's own lane keeps its hostname and loopback; 22.05 tracks processes in the
        # host's cgroup v1 hierarchies as before (proctrack/cgroup), newer ones need none.
        return Layout(cluster="scrundev", hostname=socket.gethostname(), address="127.0.0.1", nodes=nodes,
                      real_mem_mb=int(daemons.mem_mb() * 0.8), cgroups=series(spec) < (23, 2) and cgroups.is_hybrid(),
                      series=series(spec))
    return Layout(cluster=spec.cluster, hostname=spec.hostname, address=spec.address, nodes=nodes,
                  real_mem_mb=int(daemons.mem_mb() * 0.4), cgroups=False, series=series(spec))


def target(spec: LaneSpec) -> Target | None:
    """Where the lane runs now (None: a namespace lane that is not started)."""
    if is_native(spec):
        return Host(spec.name)
    return NamespaceLane(spec).target()


def requirements() -> list[str]:
    """scrun's runtime and test dependencies from pyproject.toml (the linter runs on the host only)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    test = project.get("optional-dependencies", {}).get("test", [])
    return [*project["dependencies"], *(r for r in test if not r.startswith("ruff"))]


# A user's kernel key quota (default 200 keys, 20000 bytes) is the whole machine's here: crun
# makes a session keyring per container, and every node of every lane shares this one kernel, so
# ~150 containers of one user failed with "create keyring …: Disk quota exceeded" (bench/scale.py).
# A real node has its own kernel and a share of the containers.
KEY_QUOTAS = {"/proc/sys/kernel/keys/maxkeys": 20000, "/proc/sys/kernel/keys/maxbytes": 2000000}


def raise_key_quotas() -> None:
    for path, wanted in KEY_QUOTAS.items():
        with open(path, "r+") as fh:
            if int(fh.read()) < wanted:
                fh.seek(0)
                fh.write(str(wanted))


def up(spec: LaneSpec, opts: UpOptions) -> Target:
    t0 = time.monotonic()
    raise_key_quotas()
    if is_native(spec):
        cgroups.fix_hybrid_cgroups()
        t: Target = Host(spec.name)
        in_namespace = False
    else:
        lane = NamespaceLane(spec)
        lane.ensure_rootfs(packages.lane_packages(spec.suite) + packages.ROOTFS_EXTRA)
        t = lane.start(str(REPO.parent), cgroups.lane_cgroup_source())
        in_namespace = True
        pip = opts.pip or str(REPO / ".venv" / "bin" / "pip")
        if not os.path.exists(pip):
            raise ClusterError(f"lane {spec.name} needs a pip on the host to fetch wheels for its Python: "
                               f"`make venv` (then {pip} is used) or --pip PATH")
        lane.ensure_python(t, pip, requirements(), REPO)
    users.create_users(t)
    daemons.start_cluster(t, layout(spec, opts.nodes))
    if opts.podman:
        podman.setup_podman(t, opts.scrun, in_namespace)
        users.setup_users(t, opts.scrun)
        docker.setup_docker(t, opts.scrun, users.ROOTLESS_USER)
    say(f"[{spec.name}] up: {opts.nodes} node(s) idle, {daemons.slurm_version(t)} ({time.monotonic() - t0:.1f}s)")
    return t


def down(spec: LaneSpec) -> None:
    t = target(spec)
    if t is not None:
        docker.stop_rootless(t, users.ROOTLESS_USER)
        docker.stop(t)
        daemons.stop_all(t)
    if not is_native(spec):
        NamespaceLane(spec).stop()
    say(f"[{spec.name}] down")


def status(spec: LaneSpec) -> bool:
    t = target(spec)
    where = "host" if is_native(spec) else "namespaces"
    if t is None:
        print(f"{spec.name} ({where}): stopped")
        return False
    munge = t.pid_of(daemons.MUNGE_PID, "munged")
    ctld = t.pid_of(CTLD_PID, "slurmctld")
    print(f"{spec.name} ({where}): munged {'pid ' + str(munge) if munge else 'stopped'}, "
          f"slurmctld {'pid ' + str(ctld) if ctld else 'stopped'}, slurmd {' '.join(daemons.running_nodes(t)) or 'none'}")
    if ctld:
        print("  " + t.run(["sinfo", "-N", "-o", "%N %T %c %m"], check=False, timeout=15).stdout.rstrip().replace("\n", "\n  "))
    return bool(munge and ctld)


def exec_argv(spec: LaneSpec, argv: list[str], env: dict[str, str]) -> list[str]:
    """argv that runs `argv` in the lane, in this checkout, with `env` added; no timeout."""
    t = target(spec)
    if t is None:
        raise ClusterError(f"lane {spec.name} is not running: `python3 tools/devcluster.py up --lane {spec.name}`")
    if isinstance(t, Host):
        return ["env", *(f"{k}={v}" for k, v in env.items()), *argv]
    return t.argv(["sh", "-c", 'cd "$0" && exec "$@"', str(REPO), *argv], env=env)


def python_argv(spec: LaneSpec, args: list[str]) -> list[str]:
    """The lane's Python with scrun and its test dependencies (the host's venv, or the lane's)."""
    python = str(REPO / ".venv" / "bin" / "python3") if is_native(spec) else f"{VENV}/bin/python3"
    env = {"SCRUN_LANE": spec.name, "SCRUN_LANE_KIND": "host" if is_native(spec) else "namespace",
           "CI": os.environ.get("CI", ""), "PYTHONDONTWRITEBYTECODE": "1",
           "TMPDIR": SCRATCH_TMP}  # the nodes see /scratch, not the login node's /tmp
    env.update((k, v) for k, v in os.environ.items() if k.startswith("BENCH_"))  # e.g. BENCH_QUICK
    return exec_argv(spec, [python, *args], env)


def pytest_argv(spec: LaneSpec, args: list[str]) -> list[str]:
    return python_argv(spec, ["-m", "pytest", "-p", "no:cacheprovider", *args])


def run_in_lane(argv: list[str]) -> int:
    """Replace this process with the lane command: stdio and the terminal pass straight through."""
    sys.stdout.flush()
    os.execvp(argv[0], argv)
    return 127  # not reached
