"""scrun benchmarks: what scrun costs over bare Slurm, as ratios against floors measured in this run.

    make bench            (after `make cluster`: every lane, then bench/results/latest.json and the table in docs/benchmarks.md)
    BENCH_QUICK=1 make bench   fewer repetitions, smaller transfers (a smoke run)
    bench/run.py               one lane (the one it runs in: SCRUN_LANE), writes bench/results/<lane>.json
    bench/run.py --combine     the lanes' files → latest.json; --readme puts its table in docs/benchmarks.md

Where the lane's slurm-client ships upstream's C scrun (Debian 13: /usr/bin/scrun), it runs side
by side: the same `podman run` timing, and how many of N runs gave the right exit code or hung.

Absolute times on shared machines vary by 2x between machines, so each figure is a ratio of
medians measured here, now, against a floor: bare `srun --container`, podman with crun,
`python3 -I -c pass`, `srun … head -c` straight to /dev/null.
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import datetime
import json
import os
import pathlib
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

REPO = pathlib.Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
IMAGE = "localhost/busybox:latest"
QUICK = os.environ.get("BENCH_QUICK") == "1"
LANE = os.environ.get("SCRUN_LANE") or "host"
UPSTREAM = "/usr/bin/scrun"        # Debian 13's slurm-client: upstream's C scrun
UPSTREAM_ROOT = "/run/scrun-upstream"
CORRECTNESS_RUNS = 5 if QUICK else 10
PER_RUN_TIMEOUT = 30.0             # a run past this counts as hung; it is cleaned up by pid
REPS = 5 if QUICK else 21
# What engines run: the launcher `make install` writes (pip's console script imports re).
SCRUN = ["/usr/local/bin/scrun"] if os.path.exists("/usr/local/bin/scrun") else [sys.executable, "-m", "scrun"]
GIB = 1 << 30
TRANSFER = (256 << 20) if QUICK else GIB


def run(argv, allow_fail=False, **kw):
    kw.setdefault("stdout", subprocess.DEVNULL)
    kw.setdefault("stderr", subprocess.PIPE)
    proc = subprocess.run(argv, **kw)
    if proc.returncode != 0 and not allow_fail:
        raise SystemExit(f"bench: `{' '.join(map(str, argv))}` exited {proc.returncode}: {proc.stderr!r}")
    return proc


def timed(fn, reps=REPS, warmup=1):
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return summary(samples)


def timed_together(fns, reps=REPS, warmup=1):
    """timed() for several commands whose medians are divided by each other: one sample of each
    per round, in a rotating order, so that the machine's drift (this VM's floor moved 70–114 ms
    within minutes) weighs on a figure and its floor alike. {name: summary}."""
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    samples = {name: [] for name in names}
    for i in range(reps):
        for name in names[i % len(names):] + names[:i % len(names)]:
            t0 = time.perf_counter()
            fns[name]()
            samples[name].append(time.perf_counter() - t0)
    return {name: summary(values) for name, values in samples.items()}


def summary(samples):
    samples = sorted(samples)
    q = statistics.quantiles(samples, n=10) if len(samples) >= 2 else [samples[0]] * 9
    return {"median_s": statistics.median(samples), "p10_s": q[0], "p90_s": q[-1], "n": len(samples)}


def ratio(a, b):
    return a["median_s"] / b["median_s"]


def make_bundle(tmp: pathlib.Path) -> pathlib.Path:
    sys.path.insert(0, str(REPO / "tools"))
    from cluster.podman import build_busybox_rootfs  # noqa: E402

    bundle = tmp / "bundle"
    build_busybox_rootfs(bundle / "rootfs")
    subprocess.run(["crun", "spec"], cwd=bundle, check=True)
    config = json.loads((bundle / "config.json").read_text())
    config["process"]["terminal"] = False
    config["process"]["args"] = ["/bin/true"]
    (bundle / "config.json").write_text(json.dumps(config))
    return bundle


def versions():
    def first_line(argv):
        try:
            return subprocess.run(argv, capture_output=True, text=True).stdout.splitlines()[0]
        except (OSError, IndexError):
            return "?"

    mem = next(line.split()[1] for line in open("/proc/meminfo") if line.startswith("MemTotal:"))
    return {
        "cores": os.cpu_count(), "memory_gib": round(int(mem) / (1 << 20), 1), "kernel": platform.release(),
        "python": platform.python_version(), "slurm": first_line(["srun", "--version"]),
        "crun": first_line(["crun", "--version"]), "podman": first_line(["podman", "--version"]),
        "scrun": first_line([*SCRUN, "--version"]),
    }


def cycle_runner(bundle, root):
    """One full create → start → stopped → delete cycle per call, and each phase of it.

    create, start and delete are the calls' own durations; step is the container's srun (from
    the anchor's record: step_started → step_ended); stopped_detection is the step's end until
    the record says stopped (what `state` answers; this loop looks every 1 ms).
    """
    phases = {name: [] for name in ("create", "start", "step", "stopped_detection", "delete")}

    def cycle():
        cid = f"b{uuid.uuid4().hex[:12]}"
        base = [*SCRUN, "--root", str(root)]
        t0 = time.perf_counter()
        # The anchor inherits create's stdio (as conmon's pipes): never hand it a pipe we wait on.
        run([*base, "create", "--bundle", str(bundle), cid], stderr=subprocess.DEVNULL)
        t1 = time.perf_counter()
        run([*base, "start", cid])
        t2 = time.perf_counter()
        rec = root / cid / "state.json"
        while (doc := json.loads(rec.read_text()))["status"] != "stopped":
            time.sleep(0.001)
        seen = time.time()
        t3 = time.perf_counter()
        run([*base, "delete", cid])
        t4 = time.perf_counter()
        for name, value in (("create", t1 - t0), ("start", t2 - t1), ("delete", t4 - t3),
                            ("step", doc["step_ended"] - doc["step_started"]),
                            ("stopped_detection", seen - doc["step_ended"])):
            phases[name].append(value)

    return cycle, phases


def bench_floors_and_cycle(bundle, root):
    """The cycle and its two floors, sampled in turns (timed_together)."""
    cycle, phases = cycle_runner(bundle, root)
    times = timed_together({
        "srun": lambda: run(["srun", f"--container={bundle}", "--", "/bin/true"]),
        "salloc_srun": lambda: run(["salloc", "--", "srun", f"--container={bundle}", "--", "/bin/true"]),
        "cycle": cycle,
    })
    # The warm-up round's cycle is left out of the phases too.
    return times["srun"], times["salloc_srun"], times["cycle"], {name: summary(values[1:]) for name, values in phases.items()}


def bench_state_version(bundle, root):
    cid = f"s{uuid.uuid4().hex[:12]}"
    base = [*SCRUN, "--root", str(root)]
    run([*base, "create", "--bundle", str(bundle), cid], stderr=subprocess.DEVNULL)
    try:
        state = timed(lambda: run([*base, "state", cid]), reps=REPS * 2)
        version = timed(lambda: run([*SCRUN, "--version"]), reps=REPS * 2)
        floor = timed(lambda: run([sys.executable, "-I", "-c", "pass"]), reps=REPS * 2)
        anchor_pid = json.loads((root / cid / "state.json").read_text())["anchor_pid"]
        rss_created = rss_mib(anchor_pid)
    finally:
        run([*base, "delete", "--force", cid], allow_fail=True)
    return state, version, floor, rss_created


def rss_mib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def bench_rss_running():
    name = f"rss-{uuid.uuid4().hex[:8]}"
    run(["podman", "--runtime", "scrun", "run", "-d", "--name", name, IMAGE, "sleep", "30"])
    try:
        cid = subprocess.run(["podman", "inspect", name, "--format", "{{.Id}}"], capture_output=True, text=True).stdout.strip()
        rec = json.loads(pathlib.Path(f"/run/scrun/{cid}/state.json").read_text())
        time.sleep(1)
        return rss_mib(rec["anchor_pid"])
    finally:
        run(["podman", "rm", "-f", "-t", "0", name], allow_fail=True)


def bench_podman():
    times = timed_together({runtime: (lambda runtime=runtime: run(["podman", "--runtime", runtime, "run", "--rm", IMAGE, "true"]))
                            for runtime in ("scrun", "crun")})
    return times["scrun"], times["crun"]


def bench_throughput(bundle):
    count = TRANSFER
    floor = timed(lambda: run(["srun", f"--container={bundle}", "--", "/bin/head", "-c", str(count), "/dev/zero"]), reps=2, warmup=0)
    scrun = timed(lambda: run(["podman", "--runtime", "scrun", "run", "--rm", IMAGE, "head", "-c", str(count), "/dev/zero"]), reps=2, warmup=0)
    return floor, scrun, count


def bench_concurrency():
    out = {}
    for n in (1, 10, 50):
        def one(i):
            return subprocess.run(["podman", "--runtime", "scrun", "run", "--rm", IMAGE, "sh", "-c", f"exit {i % 3}"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE).returncode == i % 3
        t0 = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(n) as pool:
            ok = sum(pool.map(one, range(n)))
        wall = time.perf_counter() - t0
        out[n] = {"ok": ok, "n": n, "wall_s": wall, "per_container_s": wall / n}
    return out


def upstream_scrun() -> bool:
    """True when upstream's C scrun is installed (ours lives in /usr/local/bin)."""
    if not os.path.exists(UPSTREAM):
        return False
    out = subprocess.run([UPSTREAM, "--version"], capture_output=True, text=True).stdout
    return out.startswith("scrun version") and "commit:" not in out  # ours also prints its commit


def lane_jobs() -> set[str]:
    return set(subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True).stdout.split())


def prepare_upstream(tmp: pathlib.Path) -> str:
    """A runtime path for upstream's scrun: it needs a scrun.lua (the seed's example) and must be
    told its state root, and podman passes runtime flags only as `--name`, never `-f`."""
    etc = tmp / "upstream-etc"
    etc.mkdir()
    for name in ("slurm.conf", "oci.conf", "cgroup.conf"):
        if os.path.exists(f"/etc/slurm/{name}"):
            shutil.copy2(f"/etc/slurm/{name}", etc / name)
    # The man page's rsync example onto /scratch: on the topology, the only way podman's bundle
    # (login-local) reaches a node for upstream's scrun.
    sys.path.insert(0, str(REPO / "tools"))
    from cluster.seedlua import seed_example  # noqa: E402

    (etc / "scrun.lua").write_text(seed_example())
    wrapper = tmp / "scrun-upstream"
    wrapper.write_text(f'#!/bin/sh\nexec {UPSTREAM} -f {etc}/slurm.conf --root {UPSTREAM_ROOT} "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper)


def kill_hung(proc, name, runtime_args, jobs_before):
    """A run past its timeout: kill the client, the container, the runtime's processes, new jobs."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    with contextlib.suppress(subprocess.TimeoutExpired):
        subprocess.run(["podman", *runtime_args, "rm", "-f", "-t", "0", name], capture_output=True, timeout=30)
    # Upstream's anchor spins at 100 % CPU after a hang and `rm -f` does not end it: by pid.
    # (The bench is the only user of upstream's scrun in the lane.)
    if "upstream" in runtime_args[1]:
        for pid in filter(str.isdigit, os.listdir("/proc")):
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{pid}/exe") == UPSTREAM:
                    os.kill(int(pid), signal.SIGKILL)
    for job in lane_jobs() - jobs_before:
        subprocess.run(["scancel", job], capture_output=True)


def bench_correctness(runtime_args, n=CORRECTNESS_RUNS):
    """n × `podman run --rm IMG sh -c 'exit 3'`: how many reported 3, how many hung; their times."""
    right = hung = 0
    durations = []
    jobs_before = lane_jobs()
    for _ in range(n):
        name = f"bc-{uuid.uuid4().hex[:10]}"
        t0 = time.perf_counter()
        proc = subprocess.Popen(["podman", *runtime_args, "run", "--rm", "--name", name, IMAGE, "sh", "-c", "exit 3"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            code = proc.wait(PER_RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            hung += 1
            kill_hung(proc, name, runtime_args, jobs_before)
            continue
        durations.append(time.perf_counter() - t0)
        right += code == 3
    timing = summary(durations) if durations else {"median_s": float("nan")}
    return {**timing, "ended": len(durations), "n": n, "exit_code_right": right, "hung": hung, "timeout_s": PER_RUN_TIMEOUT}


def fmt(value) -> str:
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def readme_table(combined) -> str:
    """One column per lane: the same figures side by side, each against its own lane's floors."""
    lanes = combined["lanes"]
    names = list(lanes)
    lines = []
    for name in names:
        m, raw = lanes[name]["machine"], lanes[name]["raw"]
        lines.append(f"- `{name}`: {m['slurm']}, {m['crun']}, {m['podman']}, Python {m['python']}; floors: "
                     f"srun --container {raw['srun_container_true']['median_s'] * 1000:.0f} ms, "
                     f"podman+crun {raw['podman_run_crun']['median_s'] * 1000:.0f} ms, "
                     f"python {raw['python_pass']['median_s'] * 1000:.1f} ms.")
    m = lanes[names[0]]["machine"]
    lines[:0] = [f"Latest run: {m['cores']} cores, {m['memory_gib']} GiB, {combined['when'][:10]}.", ""]
    lines += ["", "| figure | " + " | ".join(names) + " | target |", "|---|" + "---|" * (len(names) + 1)]
    keys = list(dict.fromkeys(k for name in names for k in lanes[name]["figures"]))
    for key in keys:
        cells = [fmt(lanes[n]["figures"][key]["value"]) if key in lanes[n]["figures"] else "–" for n in names]
        target = next(lanes[n]["figures"][key]["target"] for n in names if key in lanes[n]["figures"])
        lines.append(f"| {key} | " + " | ".join(cells) + f" | {target} |")
    return "\n".join(lines)


def combine() -> int:
    """bench/results/<lane>.json of every lane that ran → latest.json."""
    lanes = {}
    for path in sorted(RESULTS.glob("slurm-*.json")):
        lanes[path.stem] = json.loads(path.read_text())
    if not lanes:
        print("bench: no lane results in bench/results: run `make bench`", file=sys.stderr)
        return 1
    combined = {"when": max(r["when"] for r in lanes.values()), "lanes": lanes}
    (RESULTS / "latest.json").write_text(json.dumps(combined, indent=2) + "\n")
    print(readme_table(combined))
    return 0


def replace_in_readme(marker: str, body: str) -> None:
    """`body` between docs/benchmarks.md's `<!-- marker:start -->` and `<!-- marker:end -->` lines."""
    readme = REPO / "docs" / "benchmarks.md"
    start, end = f"<!-- {marker}:start -->\n", f"<!-- {marker}:end -->"
    head, rest = readme.read_text().split(start, 1)
    readme.write_text(head + start + body + "\n" + end + rest.split(end, 1)[1])


def update_readme() -> int:
    """Put the table of bench/results/latest.json between the bench markers of docs/benchmarks.md."""
    replace_in_readme("bench", readme_table(json.loads((RESULTS / "latest.json").read_text())))
    return 0


def main() -> int:
    if sys.argv[1:] == ["--readme"]:
        return update_readme()
    if sys.argv[1:] == ["--combine"]:
        return combine()
    for tool in ("srun", "salloc", "podman", "crun"):
        if not shutil.which(tool):
            print(f"bench: {tool} not found: run `make cluster` first", file=sys.stderr)
            return 1
    if subprocess.run(["scontrol", "ping"], capture_output=True).returncode != 0:
        print("bench: slurmctld does not answer: run `make cluster` first", file=sys.stderr)
        return 1
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="scrun-bench-") as tmp:
        tmp = pathlib.Path(tmp)
        bundle = make_bundle(tmp)
        root = tmp / "root"
        try:
            result = measure(bundle, root)
        finally:
            for leftover in (root.iterdir() if root.exists() else []):
                run([*SCRUN, "--root", str(root), "delete", "--force", leftover.name], allow_fail=True)
    return report(result, t_start)


def measure(bundle, root):
    """Every measurement; the floors first, in the same run as what they are floors for."""
    print("bench: floors and cycle …", file=sys.stderr)
    srun_floor, salloc_floor, cycle, phases = bench_floors_and_cycle(bundle, root)
    print("bench: state, --version …", file=sys.stderr)
    state, version, py_floor, rss_created = bench_state_version(bundle, root)
    print("bench: podman …", file=sys.stderr)
    podman_scrun, podman_crun = bench_podman()
    print("bench: throughput …", file=sys.stderr)
    tp_floor, tp_scrun, count = bench_throughput(bundle)
    print("bench: concurrency …", file=sys.stderr)
    conc = bench_concurrency()
    rss_running = bench_rss_running()
    print(f"bench: exit codes and hangs over {CORRECTNESS_RUNS} runs …", file=sys.stderr)
    correct = {"scrun": bench_correctness(["--runtime", "scrun"])}
    if upstream_scrun():
        print("bench: upstream's C scrun side by side …", file=sys.stderr)
        correct["upstream"] = bench_correctness(["--runtime", prepare_upstream(bundle.parent)])
    return dict(correct=correct, srun_floor=srun_floor, salloc_floor=salloc_floor, cycle=cycle, phases=phases, state=state, version=version,
                py_floor=py_floor, rss_created=rss_created, podman_scrun=podman_scrun, podman_crun=podman_crun,
                tp_floor=tp_floor, tp_scrun=tp_scrun, count=count, conc=conc, rss_running=rss_running)


def report(m, t_start):
    srun_floor, salloc_floor, cycle, state, version = m["srun_floor"], m["salloc_floor"], m["cycle"], m["state"], m["version"]
    py_floor, rss_created, podman_scrun, podman_crun = m["py_floor"], m["rss_created"], m["podman_scrun"], m["podman_crun"]
    tp_floor, tp_scrun, count, conc, rss_running = m["tp_floor"], m["tp_scrun"], m["count"], m["conc"], m["rss_running"]
    correct = m["correct"]
    podman_budget = (podman_crun["median_s"] + srun_floor["median_s"])
    figures = {
        "cycle_over_srun": {"value": ratio(cycle, srun_floor), "target": "<= 2.5"},
        "cycle_over_salloc_srun": {"value": ratio(cycle, salloc_floor), "target": "(fairer floor, reported)"},
        "podman_scrun_over_crun": {"value": ratio(podman_scrun, podman_crun), "target": "reported"},
        "podman_scrun_over_crun_plus_srun": {"value": podman_scrun["median_s"] / podman_budget, "target": "<= 1.3"},
        "podman_extra_over_one_srun": {"value": (podman_scrun["median_s"] - podman_crun["median_s"]) / srun_floor["median_s"], "target": "reported"},
        "state_over_python": {"value": ratio(state, py_floor), "target": "<= 1.5"},
        "version_over_python": {"value": ratio(version, py_floor), "target": "<= 1.5"},
        "throughput_scrun_over_srun": {"value": tp_floor["median_s"] / tp_scrun["median_s"], "target": ">= 0.8"},
        "concurrency_50_succeeded": {"value": conc[50]["ok"], "target": "== 50"},
        "per_container_50_over_1": {"value": conc[50]["per_container_s"] / conc[1]["per_container_s"], "target": "<= 1.5"},
        "anchor_rss_mib_running": {"value": rss_running, "target": "<= 30"},
        "anchor_rss_mib_created": {"value": rss_created, "target": "reported"},
    }
    # Where the cycle's time goes, each phase against the same floor (their sum ≈ the cycle).
    for name, phase in m["phases"].items():
        figures[f"phase_{name}_over_srun"] = {"value": ratio(phase, srun_floor), "target": "reported"}
    for who, c in correct.items():
        figures[f"{who}_exit_3_right"] = {"value": f"{c['exit_code_right']}/{c['n']}", "target": f"{c['n']}/{c['n']}"}
        figures[f"{who}_hung"] = {"value": f"{c['hung']}/{c['n']}", "target": f"0/{c['n']}"}
    if "upstream" in correct:
        budget = podman_crun["median_s"] + srun_floor["median_s"]
        figures["upstream_podman_over_crun_plus_srun"] = {"value": correct["upstream"]["median_s"] / budget,
                                                          "target": "reported (runs that ended)"}
        figures["scrun_podman_exit3_over_upstream"] = {"value": correct["scrun"]["median_s"] / correct["upstream"]["median_s"],
                                                       "target": "reported (< 1: ours faster)"}
    result = {
        "when": datetime.datetime.now(datetime.UTC).isoformat(),
        "quick": QUICK, "machine": versions(),
        "raw": {"srun_container_true": srun_floor, "salloc_srun_container_true": salloc_floor, "scrun_cycle": cycle,
                "scrun_cycle_phases": m["phases"],
                "scrun_state": state, "scrun_version": version, "python_pass": py_floor,
                "podman_run_scrun": podman_scrun, "podman_run_crun": podman_crun,
                "throughput_srun": {**tp_floor, "bytes": count}, "throughput_podman_scrun": {**tp_scrun, "bytes": count},
                "concurrency": conc, "correctness": correct},
        "figures": figures,
        "duration_s": time.perf_counter() - t_start,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    result["lane"] = LANE
    (RESULTS / f"{LANE}.json").write_text(json.dumps(result, indent=2) + "\n")
    m = result["machine"]
    print(f"machine: {m['cores']} cores, {m['memory_gib']} GiB; {m['slurm']}; {m['crun']}; {m['podman']}; {m['scrun']}")
    print()
    print("| figure | value | target |")
    print("|---|---|---|")
    for key, fig in figures.items():
        value = fig["value"]
        shown = f"{value:.2f}" if isinstance(value, float) else str(value)
        print(f"| {key} | {shown} | {fig['target']} |")
    print()
    print("cycle phases (median): " + ", ".join(f"{name} {p['median_s'] * 1000:.0f} ms" for name, p in result["raw"]["scrun_cycle_phases"].items()))
    print(f"floors (median): srun --container /bin/true {srun_floor['median_s']*1000:.0f} ms, "
          f"podman+crun {podman_crun['median_s']*1000:.0f} ms, python -I -c pass {py_floor['median_s']*1000:.1f} ms; "
          f"total {result['duration_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
