"""Image start-up per image: the image cache (scrun.conf ImageCache), cold (the first container)
and warm (a later one, on another node), through podman and docker; side by side with the
built-in staging's copy per container, the seed's scrun.lua (one rsync per container) and
SchedMD's layout (podman's vfs storage on the shared filesystem: rootless podman here), with
`cp -a` of the same rootfs to the shared directory as the floor.

    bench/image_cache.py     one lane (the one it runs in: SCRUN_LANE) → bench/results/image-cache-<lane>.json

Each figure is a median of REPS runs of `podman run --rm IMAGE true`; ratios are against the
floor and against busybox's warm start, measured in the same run.
"""
from __future__ import annotations

import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
from cluster import images, seedlua, slurmconf, users  # noqa: E402  (the cluster tool's own names)

RESULTS = REPO / "bench" / "results"
LANE = os.environ.get("SCRUN_LANE") or "host"
QUICK = os.environ.get("BENCH_QUICK") == "1"
REPS = 3 if QUICK else 5
IMAGES = {"busybox": "localhost/busybox:latest", "debian-python": images.PYTHON, "debian-science": images.SCIENCE}
CACHE_ROOT = os.path.join(slurmconf.IMAGE_CACHE, "root")


DOCKER = shutil.which("/usr/bin/docker") or shutil.which("docker")


def podman_run(image: str, conf: str | None = None, node: str = "n1", engine: str = "podman") -> float:
    if engine == "docker":  # its runtime `scrun-staged` names the cluster's staged configuration
        argv = [DOCKER, "run", "--runtime", "scrun-staged"]
    else:
        argv = ["podman", "--runtime", "scrun"] + (["--runtime-flag", f"slurm-conf={conf}"] if conf else []) + ["run"]
    if engine == "rootless podman":
        argv = ["runuser", "-u", users.ROOTLESS_USER, "--", "env", "-C", "/tmp", *argv]
    # docker 20.10 (Debian 12) has no --annotation: the container's environment asks for the node.
    where = ["-e", f"SCRUN_JOB_NODELIST={node}"] if engine == "docker" else ["--annotation", f"org.slurm.job_nodelist={node}"]
    argv += ["--rm", "--network", "none", *where, image, "true"]
    began = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    took = time.perf_counter() - began
    if proc.returncode != 0:
        raise SystemExit(f"image-cache bench: {' '.join(argv)} failed: {proc.stderr.strip()[-500:]}")
    return took


def copy_floor(image: str, dest_parent: str) -> float:
    """`cp -a` of the image's rootfs into the shared directory: what any copy must at least cost."""
    cid = subprocess.run(["podman", "create", image, "true"], capture_output=True, text=True, check=True).stdout.strip()
    try:
        rootfs = subprocess.run(["podman", "mount", cid], capture_output=True, text=True, check=True).stdout.strip()
        dest = tempfile.mkdtemp(dir=dest_parent)
        os.sync()  # the last removal's writes are not this copy's
        try:
            began = time.perf_counter()
            subprocess.run(["cp", "-a", f"{rootfs}/.", dest], check=True)
            return time.perf_counter() - began
        finally:
            shutil.rmtree(dest, ignore_errors=True)
    finally:
        subprocess.run(["podman", "rm", "-f", cid], capture_output=True)


def conf_dir(workdir: str, name: str, drop_cache: bool, lua: str | None = None) -> str:
    """The cluster's configuration in workdir/name: without ImageCache (the built-in staging then
    copies per container), with a scrun.lua (which then stages instead)."""
    etc = os.path.join(workdir, name)
    os.mkdir(etc)
    for conf in ("slurm.conf", "oci.conf", "cgroup.conf", "scrun.conf"):
        if os.path.exists(f"/etc/slurm/{conf}"):
            text = open(f"/etc/slurm/{conf}").read()
            if conf == "scrun.conf" and drop_cache:
                text = "".join(line for line in text.splitlines(True) if not line.startswith("ImageCache"))
            open(os.path.join(etc, conf), "w").write(text)
    if lua is not None:
        open(os.path.join(etc, "scrun.lua"), "w").write(lua)
    return os.path.join(etc, "slurm.conf")


def median(samples: list[float]) -> float:
    return round(statistics.median(samples), 3)


def timed_runs(image: str, **kw) -> float:
    samples = []
    for _ in range(REPS):
        os.sync()  # the last removal's writes are not this start's
        samples.append(podman_run(image, **kw))
    return median(samples)


def cold_and_warm(image: str, engine: str, scratch: str) -> tuple[float, float, float, float]:
    """Medians of the cold start, of `cp -a` measured just before each (the disk here varies
    twofold from one minute to the next: a floor taken apart would compare different disks), of
    their ratio, and of the warm start on another node."""
    cold, floor = [], []
    for _ in range(REPS):
        shutil.rmtree(CACHE_ROOT, ignore_errors=True)
        os.sync()  # the removal's writes belong to a prune, not to this start
        floor.append(copy_floor(image, scratch))
        os.sync()
        cold.append(podman_run(image, node="n1", engine=engine))
    ratio = round(statistics.median(c / f for c, f in zip(cold, floor, strict=True)), 2)
    return median(cold), median(floor), ratio, timed_runs(image, node="n2", engine=engine)


def measure(image: str, confs: dict[str, str], scratch: str) -> dict:
    out = {"copy_per_container_s": timed_runs(image, conf=confs["copy"]),
           "seed_rsync_lua_s": timed_runs(image, conf=confs["seed"]),
           "vfs_on_shared_storage_s": timed_runs(image, engine="rootless podman")}
    out["cache_cold_s"], out["cp_a_floor_s"], out["cold_over_cp_a"], out["cache_warm_s"] = \
        cold_and_warm(image, "podman", scratch)
    if DOCKER:
        out["docker_cache_cold_s"], _, out["docker_cold_over_cp_a"], out["docker_cache_warm_s"] = \
            cold_and_warm(image, "docker", scratch)
    return out


def main() -> int:
    scratch = tempfile.mkdtemp(dir=slurmconf.SCRATCH_TMP)
    try:
        os.chmod(scratch, 0o755)
        confs = {"copy": conf_dir(scratch, "copy", drop_cache=True),
                 "seed": conf_dir(scratch, "seed", drop_cache=True, lua=seedlua.seed_example())}
        results = {}
        for name, image in IMAGES.items():
            if subprocess.run(["podman", "image", "exists", image]).returncode != 0:
                print(f"image-cache bench: no {image} here (`make bench` loads it: SCRUN_BIG_IMAGE=1 make cluster)",
                      file=sys.stderr)
                continue
            results[name] = measure(image, confs, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    base = results["busybox"]["cache_warm_s"]
    for figures in results.values():
        figures["warm_over_busybox_warm"] = round(figures["cache_warm_s"] / base, 2)
    doc = {"lane": LANE, "reps": REPS, "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "images": results}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"image-cache-{LANE}.json").write_text(json.dumps(doc, indent=1) + "\n")
    columns = [("cp -a floor", "cp_a_floor_s"), ("copy per container", "copy_per_container_s"),
               ("seed's rsync scrun.lua", "seed_rsync_lua_s"), ("vfs on shared storage", "vfs_on_shared_storage_s"),
               ("cache cold", "cache_cold_s"), ("cache warm (other node)", "cache_warm_s"),
               ("docker cold", "docker_cache_cold_s"), ("docker warm", "docker_cache_warm_s"),
               ("cold / floor", "cold_over_cp_a"), ("docker cold / floor", "docker_cold_over_cp_a"),
               ("warm / busybox warm", "warm_over_busybox_warm")]
    print(f"| {LANE} image | " + " | ".join(title for title, _ in columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for name, figures in results.items():
        print(f"| {name} | " + " | ".join(str(figures.get(key, "-")) for _, key in columns) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
