"""The test images every engine of every lane gets: busybox (2 MB) and a realistic Debian one.

No registry is reachable, so images are built here. The Debian image (minbase + python3, about
170 MB unpacked, no docs or locales) comes from Debian's archive with mmdebstrap, once per
machine: the archive is kept outside any checkout (IMAGE_STORE), so clean clones reuse it.
"""
from __future__ import annotations

import contextlib
import pathlib
import shutil
import subprocess
import time

from cluster.shell import ClusterError, log_tail, say
from cluster.target import Target

BUSYBOX = "localhost/busybox:latest"
PYTHON = "localhost/debian-python:latest"
IMAGES = (BUSYBOX, PYTHON)
IMAGE_STORE = pathlib.Path("/var/lib/scrun-lanes/images")
PYTHON_TAR = IMAGE_STORE / "debian-python.tar"
# podman/docker import: what a Dockerfile's CMD and ENV would have said.
PYTHON_CHANGES = ("CMD=/usr/bin/python3", "ENV=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
_SLIM = [f"--dpkgopt=path-exclude={p}" for p in ("/usr/share/doc/*", "/usr/share/man/*", "/usr/share/locale/*",
                                                 "/usr/share/info/*")]


def _host_suite() -> str:
    for line in pathlib.Path("/etc/os-release").read_text().splitlines():
        if line.startswith("VERSION_CODENAME="):
            return line.split("=", 1)[1].strip('"')
    raise ClusterError("/etc/os-release names no VERSION_CODENAME: cannot pick a Debian suite for the test image")


def python_rootfs_tar() -> pathlib.Path:
    """The Debian + python3 rootfs as a tar, built once (mmdebstrap, ~20 s)."""
    if PYTHON_TAR.exists():
        return PYTHON_TAR
    IMAGE_STORE.mkdir(parents=True, exist_ok=True)
    new, log = PYTHON_TAR.with_suffix(".new.tar"), IMAGE_STORE / "debian-python.log"
    say(f"building {PYTHON} with mmdebstrap (Debian {_host_suite()} minbase + python3, ~20 s)")
    t0 = time.monotonic()
    with open(log, "w") as out:
        proc = subprocess.run(["mmdebstrap", "--variant=minbase", "--include=python3", *_SLIM, _host_suite(), str(new)],
                              stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        new.unlink(missing_ok=True)
        raise ClusterError(f"mmdebstrap of the test image failed (exit {proc.returncode}; is Debian's archive "
                           f"reachable?)\n  {log_tail(log)}")
    new.replace(PYTHON_TAR)
    say(f"{PYTHON} rootfs ready in {time.monotonic() - t0:.0f}s ({PYTHON_TAR.stat().st_size >> 20} MiB)")
    return PYTHON_TAR


def import_python_image(t: Target) -> None:
    """Root podman of the lane gets the Debian image (the others load it from there)."""
    if t.run(["podman", "image", "exists", PYTHON], check=False, timeout=60).returncode == 0:
        return
    tar = python_rootfs_tar()
    inside = "/var/tmp/scrun-debian-python.tar"
    shutil.copyfile(tar, t.path(inside))  # a namespace lane sees its own /var/tmp only
    try:
        changes = [arg for change in PYTHON_CHANGES for arg in ("--change", change)]
        t.run(["podman", "import", *changes, inside, PYTHON], timeout=300)
    finally:
        t.path(inside).unlink(missing_ok=True)


@contextlib.contextmanager
def exported_image(t: Target, name: str, image: str):
    """`image` saved from root's podman to an archive every user can read (removed after)."""
    archive = f"/var/tmp/scrun-image-{name}.tar"
    try:
        t.run(["podman", "save", "-o", archive, image], timeout=300)
        t.path(archive).chmod(0o644)
        yield archive
    finally:
        t.path(archive).unlink(missing_ok=True)
