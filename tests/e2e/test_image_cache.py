"""Issue 28's image cache (scrun.conf ImageCache; the cluster's is /scratch/scrun-images): the first
container of an image copies it once; later ones, on any node, copy nothing and write privately."""
from __future__ import annotations

import glob
import hashlib
import json
import os
import pathlib
import signal
import subprocess
import uuid

import pytest

from conftest import cluster_tool, wait_for
from security.conftest import PEER, as_user, podman

pytestmark = pytest.mark.e2e
CACHE = cluster_tool("slurmconf").IMAGE_CACHE
IMAGE = cluster_tool("images").PYTHON  # ~170 MB: a copy is seen
STATE_ROOT = "/run/scrun"  # root podman's scrun --root


def entries(user: str = "root") -> list[str]:
    return sorted(n for n in os.listdir(os.path.join(CACHE, user)) if not n.startswith(".") and not n.endswith(".lock"))


def record(cid: str) -> dict:
    with open(os.path.join(STATE_ROOT, cid, "state.json")) as fh:
        return json.load(fh)


@pytest.fixture
def fresh_cache(podman_ready):
    """The root user's cache emptied (it is a cache: nothing is lost), and the test's containers removed after."""
    subprocess.run(["rm", "-rf", os.path.join(CACHE, "root")], check=True)
    names: list[str] = []

    def run_detached(*args: str, command: tuple[str, ...] = ("sleep", "60")) -> str:
        name = f"cache-{uuid.uuid4().hex[:8]}"
        proc = podman("run", "-d", "--name", name, *args, IMAGE, *command, timeout=300)
        assert proc.returncode == 0, proc.stderr
        names.append(name)
        return proc.stdout.strip()

    yield run_detached
    for name in names:
        podman("rm", "-f", "-t", "0", name)


def test_a_warm_start_on_another_node_copies_nothing(fresh_cache):
    first = fresh_cache("--annotation", "org.slurm.job_nodelist=n1")
    cold = record(first)
    assert cold["staged_bytes"] > 100_000_000, cold  # the image, copied once into the cache
    assert len(entries()) == 1
    second = fresh_cache("--annotation", "org.slurm.job_nodelist=n2")
    warm = record(second)
    assert (warm["staged_bytes"], warm["nodes"], cold["nodes"]) == (0, "n2", "n1"), warm
    assert len(entries()) == 1, "the second container ran from the first one's entry"


def test_writes_stay_private_to_their_container(fresh_cache):
    writer = fresh_cache(command=("sh", "-c", "echo mine > /etc/mine && echo extra >> /etc/passwd && sleep 60"))
    wait_for(lambda: record(writer).get("status") == "running", 60, "the writer to run")
    entry = os.path.join(CACHE, "root", entries()[0], "rootfs")
    passwd = hashlib.sha256(open(f"{entry}/etc/passwd", "rb").read()).hexdigest()
    wait_for(lambda: glob.glob(f"/scratch/scrun/root/{writer}/upper/etc/up/mine"), 60, "the writer's write")
    proc = podman("run", "--rm", IMAGE, "sh", "-c", "cat /etc/mine; tail -n1 /etc/passwd", timeout=300)
    assert "extra" not in proc.stdout and "mine" not in proc.stdout, proc.stdout
    assert not os.path.exists(f"{entry}/etc/mine")
    assert hashlib.sha256(open(f"{entry}/etc/passwd", "rb").read()).hexdigest() == passwd


def test_ten_first_containers_at_once_copy_the_image_once(fresh_cache):
    names = [f"cache-{uuid.uuid4().hex[:8]}" for _ in range(10)]
    procs = [subprocess.Popen(["podman", "--runtime", "scrun", "run", "-d", "--network", "none", "--name", name, IMAGE,
                               "sleep", "60"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name in names]
    try:
        outs = [p.communicate(timeout=300) for p in procs]
        assert [p.returncode for p in procs] == [0] * 10, [err for _, err in outs]
        copied = sorted(record(out.strip())["staged_bytes"] for out, _ in outs)
        assert copied[:9] == [0] * 9 and copied[9] > 100_000_000, copied
        assert len(entries()) == 1
    finally:
        subprocess.run(["podman", "rm", "-f", "-t", "0", *names], capture_output=True)


def test_a_stage_killed_half_way_leaves_no_entry_anyone_uses(fresh_cache):
    name = f"cache-{uuid.uuid4().hex[:8]}"
    proc = subprocess.Popen(["podman", "--runtime", "scrun", "run", "-d", "--network", "none", "--name", name, IMAGE,
                             "true"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        partial = wait_for(lambda: glob.glob(f"{CACHE}/root/.*.tmp-*"), 60, "the first copy to begin")[0]
        os.kill(int(partial.rsplit("-", 1)[1]), signal.SIGKILL)  # the anchor copying: its pid names the copy
        proc.communicate(timeout=120)
        assert proc.returncode != 0
        assert entries() == [], "a killed copy became an entry"
    finally:
        subprocess.run(["podman", "rm", "-f", "-t", "0", name], capture_output=True)
    cid = fresh_cache(command=("sh", "-c", "python3 -c 'print(6*7)'; sleep 60"))
    assert record(cid)["staged_bytes"] > 100_000_000, "the next container copies the image whole"
    assert len(entries()) == 1 and not glob.glob(f"{CACHE}/root/.*.tmp-*"), "the killed copy is removed"


def test_another_user_cannot_read_the_entries_nor_take_a_users_place(fresh_cache):
    # No container may run from the cache while this test removes it: `run --rm`, ended.
    assert podman("run", "--rm", IMAGE, "true", timeout=300).returncode == 0
    assert as_user(PEER, ["ls", os.path.join(CACHE, "root")]).returncode != 0
    entry = os.path.join(CACHE, "root", entries()[0])
    assert as_user(PEER, ["touch", f"{entry}/rootfs/etc/peer-was-here"]).returncode != 0
    # A user's directory made first by another user is refused, not used.
    subprocess.run(["rm", "-rf", os.path.join(CACHE, "root")], check=True)
    assert as_user(PEER, ["mkdir", "-m", "0777", os.path.join(CACHE, "root")]).returncode == 0
    try:
        proc = podman("run", "--rm", IMAGE, "true", timeout=300)
        assert proc.returncode != 0 and f"{CACHE}/root is not a private directory of yours" in proc.stderr, proc.stderr
    finally:
        subprocess.run(["rm", "-rf", os.path.join(CACHE, "root")], check=True)


def test_prune_spares_the_entry_a_container_runs_from_and_removes_it_after(fresh_cache):
    name_cid = fresh_cache()
    key = entries()[0]
    listed = subprocess.run(["scrun", "cache", "--format", "json"], capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    # the key is the layers' digest; the name is the engine's (provenance), shown beside it
    assert [(e["image"], e["in_use"], e["name"]) for e in json.loads(listed.stdout)] == [(key, True, IMAGE)]
    pruned = subprocess.run(["scrun", "cache", "prune"], capture_output=True, text=True, timeout=60)
    assert (pruned.returncode, pruned.stdout) == (0, ""), pruned.stderr
    assert entries() == [key], "an entry in use was pruned"
    assert podman("rm", "-f", "-t", "0", name_cid).returncode == 0
    pruned = subprocess.run(["scrun", "cache", "prune"], capture_output=True, text=True, timeout=60)
    assert pruned.returncode == 0 and pruned.stdout.startswith(f"removed {key} ("), pruned
    assert os.listdir(os.path.join(CACHE, "root")) == [f"{key}.lock"], "nothing but the lock file is left"


def test_a_new_entry_pushes_out_the_least_recently_used_beyond_the_size_bound(fresh_cache, conf_dir):
    with open(conf_dir / "scrun.conf", "a") as fh:
        fh.write("ImageCacheSize=1M\n")  # smaller than any image: only what is in use stays
    podman_conf = ["podman", "--runtime", "scrun", "--runtime-flag", f"slurm-conf={conf_dir / 'slurm.conf'}"]
    proc = subprocess.run([*podman_conf, "run", "--rm", "--network", "none", "localhost/busybox:latest", "true"],
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    small = entries()
    assert len(small) == 1
    name = f"cache-{uuid.uuid4().hex[:8]}"
    try:
        proc = subprocess.run([*podman_conf, "run", "-d", "--network", "none", "--name", name, IMAGE, "sleep", "60"],
                              capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
        assert proc.returncode == 0, proc.stderr
        big = [key for key in entries() if key not in small]
        assert len(big) == 1 and entries() == big, "busybox's entry, free and beyond the bound, was not removed"
        assert record(proc.stdout.strip())["status"] == "running", "the new entry, in use, stays"
    finally:
        subprocess.run(["podman", "rm", "-f", "-t", "0", name], capture_output=True)


def test_a_sites_scrun_lua_stages_through_the_cache(fresh_cache, conf_dir, scratch_dir):
    """slurm.cache_image from a site's script (tests/data/cached-staging.lua): the second
    container copies nothing, writes stay private, the script's stage_out leaves nothing."""
    script = (pathlib.Path(__file__).resolve().parents[1] / "data" / "cached-staging.lua").read_text()
    (conf_dir / "scrun.lua").write_text(script.replace("/tmp/scrun-stage", scratch_dir))
    podman_conf = ["podman", "--runtime", "scrun", "--runtime-flag", f"slurm-conf={conf_dir / 'slurm.conf'}"]
    copied = []
    for _ in range(2):
        name = f"cache-{uuid.uuid4().hex[:8]}"
        proc = subprocess.run([*podman_conf, "run", "-d", "--network", "none", "--name", name, IMAGE, "sh", "-c",
                               "test ! -e /etc/mine && echo mine > /etc/mine && python3 -c 'print(6*7)' && sleep 60"],
                              capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
        try:
            assert proc.returncode == 0, proc.stderr
            cid = proc.stdout.strip()
            wait_for(lambda name=name: subprocess.run(["podman", "logs", name], capture_output=True, text=True).stdout == "42\n",
                     60, "the container's output")
            copied.append(record(cid)["staged_bytes"])
        finally:
            subprocess.run(["podman", "rm", "-f", "-t", "0", name], capture_output=True)
    assert copied[0] > 100_000_000 and copied[1] == 0, copied
    assert len(entries()) == 1
    wait_for(lambda: not os.listdir(scratch_dir), 30, "the script's stage_out to remove its copies")
