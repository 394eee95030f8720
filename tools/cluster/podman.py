"""podman in a lane: containers.conf with the scrun runtime, and the test image."""
from __future__ import annotations

import pathlib
import shutil
import subprocess
import tarfile

from cluster import images
from cluster.shell import say, write_if_changed
from cluster.slurmconf import MARKER
from cluster.target import Target

CONTAINERS_CONF = "/etc/containers/containers.conf"
IMAGE = images.BUSYBOX


def containers_conf(t: Target, scrun_path: str, in_namespace_lane: bool) -> str:
    nofile = t.run(["sh", "-c", "ulimit -Hn"], check=False, timeout=10).stdout.strip() or "1024"
    nproc = t.run(["sh", "-c", "ulimit -Hu"], check=False, timeout=10).stdout.strip() or "4096"
    nproc = "65535" if nproc == "unlimited" else nproc
    # A namespace lane sees only the cgroup2 mount, which has no controllers here: no pids
    # limit. Its network namespace has only loopback (no bridge, no nft): no network.
    lane_only = 'pids_limit = 0\nnetns = "none"\n' if in_namespace_lane else ""
    return f"""{MARKER}
[containers]
# No CAP_SYS_RESOURCE here: ulimits must not exceed the current hard limits.
default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]
{lane_only}
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "crun"
runtime_supports_json = ["crun", "runc", "kata", "runsc", "krun", "scrun"]
runtime_supports_nocgroup = ["crun", "krun"]

[engine.runtimes]
scrun = ["{scrun_path}"]
"""


def build_busybox_rootfs(dest: pathlib.Path, busybox: str = "/bin/busybox") -> None:
    """A minimal rootfs: static busybox plus applet links, passwd/group, empty mount points."""
    for d in ("bin", "etc", "tmp", "proc", "sys", "dev", "root", "var", "run"):
        (dest / d).mkdir(parents=True, exist_ok=True)
    shutil.copy2(busybox, dest / "bin" / "busybox")
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True).stdout.split()
    for applet in applets:
        link = dest / "bin" / applet
        if not link.exists():
            link.symlink_to("busybox")
    (dest / "tmp").chmod(0o1777)
    (dest / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
    (dest / "etc" / "group").write_text("root:x:0:\nnobody:x:65534:\n")
    (dest / "etc" / "hostname").write_text("busybox\n")


def ensure_image(t: Target) -> None:
    _ensure_busybox(t)
    images.import_debian_images(t)


def _ensure_busybox(t: Target) -> None:
    if t.run(["podman", "image", "exists", IMAGE], check=False, timeout=60).returncode == 0:
        return
    say(f"[{t.lane}] building {IMAGE} from busybox-static")
    work = t.path("/var/tmp/scrun-image")
    shutil.rmtree(work, ignore_errors=True)
    try:
        build_busybox_rootfs(work / "rootfs", str(t.path("/bin/busybox")))
        with tarfile.open(work / "rootfs.tar", "w") as tar:
            tar.add(work / "rootfs", arcname=".")
        t.run(["podman", "import", "--change", "CMD=/bin/sh", "--change", "ENV=PATH=/bin",
               "/var/tmp/scrun-image/rootfs.tar", IMAGE], timeout=120)
    finally:
        shutil.rmtree(work, ignore_errors=True)


# Root podman's storage, down to the overlay mounts. podman 4 makes these 0711 itself; podman 5
# leaves them 0700 and hands its runtime a private "intermediate" mount instead, which no node
# sees. A container with --uidmap mounts its rootfs on the node as the mapped root, so the
# storage path must be searchable (scrun's create says so when it is not).
STORAGE_PATH = ("/var/lib/containers", "/var/lib/containers/storage")


def storage_searchable(t: Target) -> None:
    for path in STORAGE_PATH:
        p = t.path(path)
        if p.is_dir() and p.stat().st_mode & 0o001 == 0:
            say(f"[{t.lane}] chmod o+x {path} (podman --uidmap through scrun)")
            p.chmod(p.stat().st_mode & 0o7777 | 0o011)


def setup_podman(t: Target, scrun_path: str, in_namespace_lane: bool) -> None:
    conf = t.path(CONTAINERS_CONF)
    if conf.exists() and MARKER not in conf.read_text():
        conf.with_name("containers.conf.before-devcluster").write_text(conf.read_text())
    write_if_changed(conf, containers_conf(t, scrun_path, in_namespace_lane))
    ensure_image(t)  # creates the storage on a fresh machine
    storage_searchable(t)
