"""Soak: many real `podman run`s and CLI cycles through scrun, with a leak check after each batch.

    make soak                          every lane, defaults: 500 sequential, 50 concurrent (podman and CLI each)
    SOAK_SEQUENTIAL=50 SOAK_CONCURRENT=10 make soak      the CI-sized run (tests/e2e/test_soak.py does this)
    bench/soak.py --sequential N --concurrent M [--json PATH]     one lane (the one it runs in)

Runs mix exit codes (0, 1, 3, 255) and signals (a container killed by SIGTERM/SIGKILL through
`podman kill` / `scrun kill`). After every batch of BATCH runs: no job of ours in squeue, no
anchor, salloc or srun of ours, no state directory. The summary (JSON): failures and leaks, p50/p95/max
seconds per run, slurmctld RPCs per container (sdiag's total before/after), and the anchor's
peak RSS (sampled from running anchors).
"""
from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import pathlib
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

REPO = pathlib.Path(__file__).resolve().parents[1]
IMAGE = "localhost/busybox:latest"
LANE = os.environ.get("SCRUN_LANE") or "host"
BATCH = 25
RUN_TIMEOUT = 120
# (what the container does, the exit code the engine must report). PID 1 ignores SIGTERM unless
# it handles it, as under crun: the signalled container traps it.
# It says "ready" once the trap is set: a signal sent before that would be ignored (a race seen
# in the soak's first CI run on 24.11).
SIGNALLED = "trap 'exit 143' TERM; echo ready; while :; do sleep 1; done"
MIX = [("exit 0", 0), ("exit 1", 1), ("exit 3", 3), ("exit 255", 255), ("kill -TERM", 143), ("kill -KILL", 137)]


def sh(argv, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, **kw)


def sdiag_total() -> int | None:
    """slurmctld's RPC count so far (sum of 'count:' of the RPC-by-type table)."""
    out = sh(["sdiag"]).stdout
    section = out.split("Remote Procedure Call statistics by message type", 1)
    if len(section) < 2:
        return None
    table = section[1].split("Remote Procedure Call statistics by user", 1)[0]
    return sum(int(n) for n in re.findall(r"count:(\d+)", table))


def our_jobs(tag: str) -> list[str]:
    return [line for line in sh(["squeue", "-h", "-o", "%i %j"]).stdout.splitlines() if "scrun:" in line and tag in line]


def in_our_pid_namespace(pid: str) -> bool:
    """Lanes run side by side, and from the host a namespace lane's processes are visible too."""
    try:
        return os.readlink(f"/proc/{pid}/ns/pid") == os.readlink("/proc/self/ns/pid")
    except OSError:
        return False  # gone


def our_processes() -> list[str]:
    out = sh(["ps", "-eo", "pid,stat,comm,args"]).stdout.splitlines()
    # An exited anchor not yet reaped (stat Z) left nothing running: not a leak.
    return [line for line in out
            if ((line.split()[2:3] in (["scrun-anchor"], ["scrun-netns"], ["scrun-anchors"])
                 and not line.split()[1].startswith("Z"))
                or line.split()[3:4] == ["scrun-waiter"]
                or ("salloc" in line and "scrun:" in line)) and in_our_pid_namespace(line.split()[0])]


class Sampler:
    """Peak RSS of any anchor while the soak runs (one /proc scan every 0.5 s)."""

    def __init__(self):
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            for entry in os.listdir("/proc"):
                if not entry.isdigit():
                    continue
                try:
                    with open(f"/proc/{entry}/comm", "rb") as fh:
                        if fh.read().strip() != b"scrun-anchor" or not in_our_pid_namespace(entry):
                            continue
                    with open(f"/proc/{entry}/status") as fh:
                        rss = next((int(line.split()[1]) for line in fh if line.startswith("VmRSS:")), 0)
                    self.peak_kib = max(self.peak_kib, rss)
                except (OSError, StopIteration, ValueError):
                    continue

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def podman_run(i: int, tag: str) -> tuple[float, str | None]:
    """One `podman run` of the mix; (seconds, failure or None)."""
    action, want = MIX[i % len(MIX)]
    name = f"soak-{tag}-{i}"
    began = time.monotonic()
    try:
        if action.startswith("kill"):
            sh(["podman", "--runtime", "scrun", "run", "-d", "--name", name, IMAGE, "sh", "-c", SIGNALLED],
               check=True, timeout=RUN_TIMEOUT)
            wait_ready(lambda: sh(["podman", "logs", name], timeout=RUN_TIMEOUT).stdout)
            sh(["podman", "kill", "--signal", action.split("-")[1], name], timeout=RUN_TIMEOUT)
            got = sh(["podman", "wait", name], timeout=RUN_TIMEOUT).stdout.strip()
            sh(["podman", "rm", "-f", "-t", "0", name], timeout=RUN_TIMEOUT)
            code = int(got) if got.lstrip("-").isdigit() else None
        else:
            proc = sh(["podman", "--runtime", "scrun", "run", "--rm", "--name", name, IMAGE, "sh", "-c", action],
                      timeout=RUN_TIMEOUT)
            code = proc.returncode
    except (subprocess.SubprocessError, ValueError) as exc:
        return time.monotonic() - began, f"podman {action}: {exc}"
    took = time.monotonic() - began
    return took, None if code == want else f"podman {action}: exit {code}, expected {want}"


def wait_ready(output, timeout: float = RUN_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while "ready" not in output():
        if time.monotonic() > deadline:
            raise subprocess.TimeoutExpired("ready", timeout)
        time.sleep(0.05)


def cli_cycle(i: int, tag: str, bundle: pathlib.Path, root: pathlib.Path) -> tuple[float, str | None]:
    """create → start → (kill) → wait → delete through the CLI."""
    action, want = MIX[i % len(MIX)]
    cid = f"soak-{tag}-{i}"
    scrun = [sys.executable, "-m", "scrun", "--root", str(root)]
    began = time.monotonic()
    config = json.loads((bundle / "config.json").read_text())
    config["process"]["args"] = ["sh", "-c", SIGNALLED if action.startswith("kill") else action]
    own = root.parent / f"bundle-{cid}"
    own.mkdir()
    (own / "config.json").write_text(json.dumps(config))
    try:
        # A file, not a pipe: the anchor keeps create's stdio as the container's.
        out_path, err_path = own / "stdout", own / "stderr"
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            created = subprocess.run([*scrun, "create", "--bundle", str(own), cid], stdin=subprocess.DEVNULL,
                                     stdout=out, stderr=err, timeout=RUN_TIMEOUT)
        if created.returncode != 0:
            return time.monotonic() - began, f"create: {err_path.read_text().strip()}"
        sh([*scrun, "start", cid], check=True, timeout=RUN_TIMEOUT)
        if action.startswith("kill"):
            wait_ready(out_path.read_text)
            sh([*scrun, "kill", cid, action.split("-")[1]], check=True, timeout=RUN_TIMEOUT)
        deadline = time.monotonic() + RUN_TIMEOUT
        record = {}
        while time.monotonic() < deadline:
            record = json.loads((root / cid / "state.json").read_text())
            if record.get("status") == "stopped":
                break
            time.sleep(0.1)
        sh([*scrun, "delete", "--force", cid], timeout=RUN_TIMEOUT)
        code = record.get("exit_code")
    except (subprocess.SubprocessError, OSError, ValueError) as exc:
        sh([*scrun, "delete", "--force", cid], timeout=RUN_TIMEOUT)
        return time.monotonic() - began, f"cli {action}: {exc}"
    took = time.monotonic() - began
    why = f" ({record['stopped_reason']})" if record.get("stopped_reason") else ""  # the anchor's word on it
    return took, None if code == want else f"cli {action}: exit {code}, expected {want}{why}"


def leak_check(tag: str, root: pathlib.Path) -> list[str]:
    """What of ours is left once a batch is done (allowing the last releases a few seconds)."""
    deadline = time.monotonic() + 20
    while True:
        leaks = ([f"job {j}" for j in our_jobs(tag)] + [f"process {p}" for p in our_processes()]
                 + [f"state {d}" for d in (os.listdir(root) if root.exists() else [])])
        if not leaks or time.monotonic() > deadline:
            return leaks
        time.sleep(0.5)


def make_bundle(tmp: pathlib.Path) -> pathlib.Path:
    sys.path.insert(0, str(REPO / "tools"))
    from cluster.podman import build_busybox_rootfs

    bundle = tmp / "base"
    build_busybox_rootfs(bundle / "rootfs")
    (bundle / "config.json").write_text(json.dumps({
        "ociVersion": "1.0.2", "root": {"path": str(bundle / "rootfs")},
        "process": {"args": ["true"], "cwd": "/", "env": ["PATH=/bin"]},
        "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "ipc"}, {"type": "uts"}]}}))
    return bundle


def soak(sequential: int, parallel: int) -> dict:
    """The soak's summary; its bundle and state root (on the shared /scratch in a lane) go after."""
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="scrun-soak-"))
    try:
        return _soak(tmp, sequential, parallel)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _soak(tmp: pathlib.Path, sequential: int, parallel: int) -> dict:
    tag = uuid.uuid4().hex[:6]
    root = tmp / "root"
    bundle = make_bundle(tmp)
    # Per kind and mode: a concurrent batch queues for the nodes' CPUs, which is Slurm's wait, not ours.
    durations: dict[str, list[float]] = {f"{k}_{m}": [] for k in ("podman", "cli") for m in ("seq", "par")}
    failures: list[str] = []
    leaks: list[str] = []
    rpc_before = sdiag_total()
    began = time.monotonic()
    with Sampler() as sampler:
        plan = [("podman", "seq", sequential), ("cli", "seq", sequential),
                ("podman", "par", parallel), ("cli", "par", parallel)]
        for kind, mode, count in plan:
            for start in range(0, count, BATCH if mode == "seq" else count or 1):
                indices = range(start, min(count, start + (BATCH if mode == "seq" else count)))

                def one(i, kind=kind, mode=mode):
                    if kind == "podman":
                        return podman_run(i, f"{tag}{mode}")
                    return cli_cycle(i, f"{tag}{mode}", bundle, root)

                if mode == "seq":
                    results = [one(i) for i in indices]
                else:
                    with concurrent.futures.ThreadPoolExecutor(max_workers=len(indices) or 1) as pool:
                        results = list(pool.map(one, indices))
                for took, failure in results:
                    durations[f"{kind}_{mode}"].append(took)
                    if failure:
                        failures.append(failure)
                leaks += leak_check(tag, root)
                print(f"soak: {kind} {mode} {min(count, start + len(indices))}/{count}: "
                      f"{len(failures)} failure(s), {len(leaks)} leak(s)", file=sys.stderr, flush=True)
    rpc_after = sdiag_total()
    containers = 2 * (sequential + parallel)

    def stats(values):
        if not values:
            return {}
        ordered = sorted(values)
        return {"p50": round(statistics.median(ordered), 3), "p95": round(ordered[int(0.95 * (len(ordered) - 1))], 3),
                "max": round(ordered[-1], 3), "n": len(ordered)}

    return {
        "lane": LANE, "sequential": sequential, "concurrent": parallel, "containers": containers,
        "seconds": round(time.monotonic() - began, 1), "failures": failures, "leaks": leaks,
        "podman_run_seconds": stats(durations["podman_seq"]), "cli_cycle_seconds": stats(durations["cli_seq"]),
        "podman_run_seconds_concurrent": stats(durations["podman_par"]),
        "cli_cycle_seconds_concurrent": stats(durations["cli_par"]),
        "slurmctld_rpcs_per_container": (round((rpc_after - rpc_before) / containers, 1)
                                         if rpc_before is not None and rpc_after is not None and containers else None),
        "anchor_peak_rss_mib": round(sampler.peak_kib / 1024, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequential", type=int, default=int(os.environ.get("SOAK_SEQUENTIAL", 500)))
    parser.add_argument("--concurrent", type=int, default=int(os.environ.get("SOAK_CONCURRENT", 50)))
    parser.add_argument("--json", type=pathlib.Path, default=REPO / "bench" / "results" / f"soak-{LANE}.json")
    args = parser.parse_args()
    summary = soak(args.sequential, args.concurrent)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k not in ("failures", "leaks")}))
    for line in summary["failures"][:20] + summary["leaks"][:20]:
        print(f"soak: {line}", file=sys.stderr)
    return 1 if summary["failures"] or summary["leaks"] else 0


if __name__ == "__main__":
    sys.exit(main())
