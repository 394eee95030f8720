"""Image start-up through podman, per image: the built-in staging's copy per container against the
image cache (scrun.conf ImageCache), cold (the first container) and warm (a later one, on
another node), with `cp -a` of the same rootfs to the shared directory as the floor.

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
from cluster import images, slurmconf  # noqa: E402  (the cluster tool's own names)

RESULTS = REPO / "bench" / "results"
LANE = os.environ.get("SCRUN_LANE") or "host"
QUICK = os.environ.get("BENCH_QUICK") == "1"
REPS = 3 if QUICK else 5
IMAGES = {"busybox": "localhost/busybox:latest", "debian-python": images.PYTHON}
CACHE_ROOT = os.path.join(slurmconf.IMAGE_CACHE, "root")


def podman_run(image: str, conf: str | None = None, node: str = "n1") -> float:
    argv = ["podman", "--runtime", "scrun"]
    if conf:
        argv += ["--runtime-flag", f"slurm-conf={conf}"]
    argv += ["run", "--rm", "--network", "none", "--annotation", f"org.slurm.job_nodelist={node}", image, "true"]
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


def uncached_conf(workdir: str) -> str:
    """The cluster's configuration without ImageCache: the built-in staging copies per container."""
    etc = os.path.join(workdir, "etc")
    os.mkdir(etc)
    for name in ("slurm.conf", "oci.conf", "cgroup.conf", "scrun.conf"):
        if os.path.exists(f"/etc/slurm/{name}"):
            text = open(f"/etc/slurm/{name}").read()
            if name == "scrun.conf":
                text = "".join(line for line in text.splitlines(True) if not line.startswith("ImageCache="))
            open(os.path.join(etc, name), "w").write(text)
    return os.path.join(etc, "slurm.conf")


def median(samples: list[float]) -> float:
    return round(statistics.median(samples), 3)


def measure(image: str, no_cache_conf: str, scratch: str) -> dict:
    floor = median([copy_floor(image, scratch) for _ in range(REPS)])
    copied = []
    for _ in range(REPS):
        os.sync()
        copied.append(podman_run(image, no_cache_conf))
    copied = median(copied)
    cold = []
    for _ in range(REPS):
        shutil.rmtree(CACHE_ROOT, ignore_errors=True)
        os.sync()  # the removal's writes belong to a prune, not to this start
        cold.append(podman_run(image, node="n1"))
    warm = [podman_run(image, node="n2") for _ in range(REPS)]
    return {"cp_a_floor_s": floor, "copy_per_container_s": copied, "cache_cold_s": median(cold),
            "cache_warm_s": median(warm), "cold_over_cp_a": round(median(cold) / floor, 2)}


def main() -> int:
    scratch = tempfile.mkdtemp(dir=slurmconf.SCRATCH_TMP)
    try:
        conf = uncached_conf(scratch)
        results = {name: measure(image, conf, scratch) for name, image in IMAGES.items()}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    base = results["busybox"]["cache_warm_s"]
    for figures in results.values():
        figures["warm_over_busybox_warm"] = round(figures["cache_warm_s"] / base, 2)
    doc = {"lane": LANE, "reps": REPS, "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "images": results}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"image-cache-{LANE}.json").write_text(json.dumps(doc, indent=1) + "\n")
    print(f"| {LANE} image | cp -a floor | copy per container | cache cold | cache warm (other node) | "
          "cold / floor | warm / busybox warm |")
    print("|---|---|---|---|---|---|---|")
    for name, f in results.items():
        print(f"| {name} | {f['cp_a_floor_s']} s | {f['copy_per_container_s']} s | {f['cache_cold_s']} s | "
              f"{f['cache_warm_s']} s | {f['cold_over_cp_a']} | {f['warm_over_busybox_warm']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
