"""Scale: what a login node pays for N detached containers at once (issue 30).

    make bench-scale                       every lane, N = 1 10 50 100 300, one user then two, an
                                           anchor per container then AnchorServer=yes
    bench/scale.py --counts 1,10 [--users root,scrunuser] [--runtime upstream] [--anchors server] [--json PATH]
    bench/scale.py --readme                every lane's results into docs/benchmarks.md's table

For each N: `podman run -d --network none --memory 16m … sleep` N times (WORKERS at a time; 16 MiB so that 300
fit the nodes' declared memory; no network: rootless podman has no /dev/net/tun here), then, with all N running:
- the seconds until all run;
- login-node memory per container: the sum of PSS (shared pages counted once, split between
  their sharers) of every process scrun started for the containers: each anchor and everything
  under it on the login node (salloc, its shell, srun); the node's slurmstepd/crun are not the
  login node's;
- CPU-seconds those processes used up to then, per container (their own and their reaped
  children's);
- the machine's CPU-seconds per container over the whole run, start to removal (everything:
  podman, conmon, Slurm, crun; a context, not scrun's alone);
- slurmctld RPCs per container (sdiag), the seconds to stop and remove all, and what is left.
Two users: N split between root and a rootless user, run at once.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import os
import pathlib
import pwd
import sys
import time
import uuid

from soak import IMAGE, LANE, REPO, in_our_pid_namespace, our_processes, sdiag_total, sh

sys.path.insert(0, str(REPO / "tools"))
from cluster.topology import children  # noqa: E402  (a process's children, as the cluster tool reads them)

WORKERS = 8          # podman runs at once: a login node's users start containers in parallel
RUN_TIMEOUT = 600    # a container waits for its allocation like any job: generous under 300 at once
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
ROOTLESS_USER = "scrunuser"


def podman_argv(user: str, runtime: str, *args: str) -> list[str]:
    argv = ["podman", "--runtime", runtime, *args]
    if user == "root":
        return argv
    uid = pwd.getpwnam(user).pw_uid
    return ["runuser", "-u", user, "--", "env", "-C", "/tmp", f"XDG_RUNTIME_DIR=/run/user/{uid}", *argv]


def tree(pid: int) -> list[int]:
    out = [pid]
    for child in children(pid):
        out += tree(child)
    return out


def anchor_roots(runtime_exe: str | None) -> list[int]:
    """The per-container processes' roots: our anchors and network-namespace holders (the
    anchor's sibling, when there is one), or upstream's forked scrun anchors (by executable)."""
    roots = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/comm") as fh:
                comm = fh.read().strip()
            if not in_our_pid_namespace(entry):
                continue
            if runtime_exe is None and (comm in ("scrun-anchor", "scrun-netns", "scrun-anchors") or _is_waiter(entry)):
                roots.append(int(entry))
            elif runtime_exe is not None and os.readlink(f"/proc/{entry}/exe") == runtime_exe:
                roots.append(int(entry))
        except OSError:
            continue
    # A root found inside another's tree (upstream's anchor forks): count each process once.
    inside = {p for r in roots for p in tree(r)[1:]}
    return [r for r in roots if r not in inside]


def _is_waiter(pid: str) -> bool:
    """An anchor server's waiter (anchor/served.py): a shell whose argv[0] names it."""
    with open(f"/proc/{pid}/cmdline", "rb") as fh:
        return fh.read().split(b"\0", 1)[0] == b"scrun-waiter"


def pss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            return next((int(line.split()[1]) for line in fh if line.startswith("Pss:")), 0)
    except OSError:
        return 0


def cpu_seconds(pid: int) -> float:
    """utime + stime + cutime + cstime: the process's CPU and that of the children it reaped."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return sum(int(f) for f in fields[11:15]) / CLOCK_TICKS
    except (OSError, ValueError):
        return 0.0


def machine_cpu_seconds() -> float:
    with open("/proc/stat") as fh:
        fields = [int(f) for f in fh.readline().split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / CLOCK_TICKS  # all but idle and iowait


def by_process(pids: list[int]) -> dict[str, float]:
    """PSS MiB per process name (where the memory goes)."""
    out: dict[str, float] = {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/comm") as fh:
                name = fh.read().strip()
            name = "scrun-waiter" if _is_waiter(str(pid)) else name
        except OSError:
            continue
        out[name] = out.get(name, 0.0) + pss_kib(pid) / 1024
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def run_all(names: list[tuple[str, str]], runtime: str, fn) -> list[str]:
    with concurrent.futures.ThreadPoolExecutor(max_workers=WORKERS) as pool:
        return [r for r in pool.map(lambda un: fn(un[0], un[1], runtime), names) if r]


def start_one(user: str, name: str, runtime: str) -> str:
    proc = sh(podman_argv(user, runtime, "run", "-d", "--network", "none", "--memory", "16m", "--name", name, IMAGE, "sleep", "3600"), timeout=RUN_TIMEOUT)
    return "" if proc.returncode == 0 else f"{user} {name}: podman run -d exit {proc.returncode}: {last_line(proc.stderr)}"


def remove_one(user: str, name: str, runtime: str) -> str:
    proc = sh(podman_argv(user, runtime, "rm", "-f", "-t", "0", name), timeout=RUN_TIMEOUT)
    return "" if proc.returncode == 0 else f"{user} {name}: podman rm exit {proc.returncode}: {last_line(proc.stderr)}"


def last_line(text: str) -> str:
    return (text.strip().splitlines() or [""])[-1][-200:]


def state_count(users: list[str], runtime: str, tag: str) -> tuple[int, int]:
    """(running, exited) of this count's containers, all users."""
    counts = [0, 0]
    for user in users:
        for i, status in enumerate(("running", "exited")):
            out = sh(podman_argv(user, runtime, "ps", "-aq", "--filter", f"name=scale-{tag}",
                                 "--filter", f"status={status}")).stdout
            counts[i] += len(out.split())
    return counts[0], counts[1]


def running_count(users: list[str], runtime: str, tag: str) -> int:
    return state_count(users, runtime, tag)[0]


def job_ids() -> set[str]:
    return set(sh(["squeue", "-h", "-o", "%i"]).stdout.split())


def leftovers(runtime_exe: str | None, jobs_before: set[str], deadline_s: float = 30) -> list[str]:
    deadline = time.monotonic() + deadline_s
    while True:
        # Any job new since the count began (upstream names its jobs "scrun", ours "scrun:<id>").
        left = [f"job {j}" for j in sorted(job_ids() - jobs_before)]
        left += [f"process {p}" for p in (our_processes() if runtime_exe is None else anchor_roots(runtime_exe))]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.5)


def one_count(n: int, users: list[str], runtime: str, runtime_exe: str | None) -> dict:
    tag = uuid.uuid4().hex[:6]
    names = [(users[i % len(users)], f"scale-{tag}-{i}") for i in range(n)]
    jobs_before = job_ids()
    rpc0, cpu0, t0 = sdiag_total(), machine_cpu_seconds(), time.monotonic()
    failures = run_all(names, runtime, start_one)
    # A container that ended at once (its step failed) is a failure too, not one to wait for.
    while sum(state_count(users, runtime, tag)) < n - len(failures) and time.monotonic() - t0 < RUN_TIMEOUT:
        time.sleep(0.5)
    failures += [f"{ended} container(s) ended at once"] if (ended := state_count(users, runtime, tag)[1]) else []
    to_running = time.monotonic() - t0
    roots = anchor_roots(runtime_exe)
    pids = [p for r in roots for p in tree(r)]
    where = by_process(pids)  # each process's smaps read once, for the sum and its parts
    pss = sum(where.values())
    cpu_running = sum(cpu_seconds(r) for r in roots)
    running = running_count(users, runtime, tag)
    t1 = time.monotonic()
    failures += run_all(names, runtime, remove_one)
    to_removed = time.monotonic() - t1
    rpc1, cpu1 = sdiag_total(), machine_cpu_seconds()
    left = leftovers(runtime_exe, jobs_before)
    per = max(running, 1)
    return {
        "n": n, "users": users, "running": running, "failures": failures[:3], "failed": len(failures), "left": left[:3], "left_count": len(left),
        "seconds_to_all_running": round(to_running, 1), "seconds_to_remove_all": round(to_removed, 1),
        "pss_mib_per_container": round(pss / per, 2), "pss_mib_by_process": {k: round(v, 1) for k, v in where.items()},
        "processes_per_container": round(len(pids) / per, 1),
        "cpu_seconds_per_container_to_running": round(cpu_running / per, 3),
        "machine_cpu_seconds_per_container": round((cpu1 - cpu0) / n, 3),
        "slurmctld_rpcs_per_container": (round((rpc1 - rpc0) / n, 1) if rpc0 is not None and rpc1 is not None else None),
    }


# What a container's login-node memory is made of, in the table's order: the anchor (forked), or
# the server's share and the waiter (AnchorServer=yes); then Slurm's processes.
PARTS = (("scrun-anchor", "anchor"), ("scrun-anchors", "server"), ("scrun-waiter", "waiter"), ("srun", "srun"),
         ("salloc", "salloc"), ("cat", "cat"), ("scrun-netns", "netns"))


def readme_table(results: list[dict]) -> str:
    lines = ["| lane | anchors | users | N | running | PSS MiB per container (its parts) | CPU-s per "
             "container to running | machine CPU-s per container | RPCs per container | s to all running | "
             "s to remove all | left |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for result in results:
        for row in result["rows"]:
            per = max(row["running"], 1)
            parts = " · ".join(f"{label} {row['pss_mib_by_process'][k] / per:.1f}"
                               for k, label in PARTS if row["pss_mib_by_process"].get(k))
            lines.append(f"| {result['lane']} | {result.get('anchors', 'forked')} | {len(row['users'])} | {row['n']} | "
                         f"{row['running']} | "
                         f"{row['pss_mib_per_container']:.1f} ({parts}) | {row['cpu_seconds_per_container_to_running']:.3f}"
                         f" | {row['machine_cpu_seconds_per_container']:.2f} | {row['slurmctld_rpcs_per_container']} | "
                         f"{row['seconds_to_all_running']} | {row['seconds_to_remove_all']} | "
                         f"{row.get('left_count', len(row['left']))} |")
    return "\n".join(lines)


def update_readme() -> int:
    """The table of every lane's bench/results/scale-<lane>.json between the markers of docs/benchmarks.md."""
    from run import replace_in_readme

    results = [json.loads(p.read_text()) for p in sorted((REPO / "bench" / "results").glob("scale-slurm-*.json"))]
    results += [json.loads(p.read_text()) for p in sorted((REPO / "bench" / "results").glob("scale-server-slurm-*.json"))]
    replace_in_readme("scale", readme_table(results))
    return 0


def main() -> int:
    if sys.argv[1:] == ["--readme"]:
        return update_readme()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default=os.environ.get("SCALE_COUNTS", "1,10,50,100,300"))
    parser.add_argument("--users", default=None, help="comma-separated; default: root, then root and " + ROOTLESS_USER)
    parser.add_argument("--runtime", default="scrun", help="scrun (ours) or upstream (Debian's C scrun)")
    parser.add_argument("--anchors", choices=("forked", "server"), default="forked",
                        help="an anchor per container, or one anchor server per user (AnchorServer=yes)")
    parser.add_argument("--json", type=pathlib.Path, default=None)
    args = parser.parse_args()
    args.json = args.json or REPO / "bench" / "results" / (f"scale-{LANE}.json" if args.anchors == "forked"
                                                           else f"scale-server-{LANE}.json")
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # killed: scrun.conf is restored all the same
    with site_setting("AnchorServer=yes" if args.anchors == "server" else None):
        return measure(args)


@contextlib.contextmanager
def site_setting(line: str | None):
    """scrun.conf with `line` added for the run (every user's scrun reads /etc/slurm's), restored after."""
    conf = pathlib.Path("/etc/slurm/scrun.conf")
    before = conf.read_text() if conf.exists() else None
    if line is not None:
        conf.write_text((before or "") + f"{line}\n")
    try:
        yield
    finally:
        if line is not None and before is None:
            conf.unlink()
        elif line is not None:
            conf.write_text(before)


def measure(args) -> int:
    runtime, runtime_exe = "scrun", None
    if args.runtime == "upstream":
        import tempfile

        from run import UPSTREAM, prepare_upstream

        runtime, runtime_exe = prepare_upstream(pathlib.Path(tempfile.mkdtemp(prefix="scrun-scale-"))), UPSTREAM
    user_sets = [args.users.split(",")] if args.users else [["root"], ["root", ROOTLESS_USER]]
    rows, failed = [], False
    for users in user_sets:
        for n in (int(c) for c in args.counts.split(",")):
            row = one_count(n, users, runtime, runtime_exe)
            rows.append(row)
            failed = failed or bool(row["failures"] or row["left"] or row["running"] < n)
            print(f"scale: {LANE} {args.runtime} ({args.anchors}) N={n} users={','.join(users)}: {row['running']} running in "
                  f"{row['seconds_to_all_running']} s, {row['pss_mib_per_container']} MiB PSS and "
                  f"{row['cpu_seconds_per_container_to_running']} CPU-s per container, "
                  f"{row['slurmctld_rpcs_per_container']} RPCs, removed in {row['seconds_to_remove_all']} s, "
                  f"left {len(row['left'])}", file=sys.stderr, flush=True)
    summary = {"lane": LANE, "runtime": args.runtime, "anchors": args.anchors, "workers": WORKERS, "rows": rows}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
