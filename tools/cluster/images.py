"""The test images every engine of every lane gets: busybox (2 MB) and a realistic Debian one.

No registry is reachable, so images are built here. The Debian image (minbase + python3, about
170 MB unpacked, no docs or locales) comes from Debian's archive with mmdebstrap, once per
machine: the archive is kept outside any checkout (IMAGE_STORE), so clean clones reuse it.
A larger one (~870 MB: python3 with numpy, scipy and pandas, gcc and g++) is for the image
cache's benchmark only: `make bench` asks for it (SCRUN_BIG_IMAGE=1), the tests do not.
"""
from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
import subprocess
import time

from cluster.shell import ClusterError, log_tail, say
from cluster.target import Target

BUSYBOX = "localhost/busybox:latest"
PYTHON = "localhost/debian-python:latest"
SCIENCE = "localhost/debian-science:latest"
IMAGES = (BUSYBOX, PYTHON)
IMAGE_STORE = pathlib.Path("/var/lib/scrun-lanes/images")
# The Debian images: (name in IMAGE_STORE, the packages mmdebstrap adds to minbase).
DEBIAN = {PYTHON: ("debian-python", "python3"),
          SCIENCE: ("debian-science", "python3,python3-numpy,python3-scipy,python3-pandas,gcc,g++")}


def wanted() -> tuple[str, ...]:
    """Every image the engines get: the big one too when the benchmark asks (SCRUN_BIG_IMAGE=1)."""
    return IMAGES + ((SCIENCE,) if os.environ.get("SCRUN_BIG_IMAGE") == "1" else ())
# podman/docker import: what a Dockerfile's CMD and ENV would have said.
PYTHON_CHANGES = ("CMD=/usr/bin/python3", "ENV=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
_SLIM = [f"--dpkgopt=path-exclude={p}" for p in ("/usr/share/doc/*", "/usr/share/man/*", "/usr/share/locale/*",
                                                 "/usr/share/info/*")]


def _host_suite() -> str:
    for line in pathlib.Path("/etc/os-release").read_text().splitlines():
        if line.startswith("VERSION_CODENAME="):
            return line.split("=", 1)[1].strip('"')
    raise ClusterError("/etc/os-release names no VERSION_CODENAME: cannot pick a Debian suite for the test image")


def debian_rootfs_tar(image: str = PYTHON) -> pathlib.Path:
    """A Debian image's rootfs as a tar, built once (mmdebstrap: ~20 s for python3, ~1 min for the big one)."""
    name, packages = DEBIAN[image]
    tar = IMAGE_STORE / f"{name}.tar"
    if tar.exists():
        return tar
    IMAGE_STORE.mkdir(parents=True, exist_ok=True)
    new, log = tar.with_suffix(".new.tar"), IMAGE_STORE / f"{name}.log"
    say(f"building {image} with mmdebstrap (Debian {_host_suite()} minbase + {packages})")
    t0 = time.monotonic()
    with open(log, "w") as out:
        proc = subprocess.run(["mmdebstrap", "--variant=minbase", f"--include={packages}", *_SLIM, _host_suite(),
                               str(new)], stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        new.unlink(missing_ok=True)
        raise ClusterError(f"mmdebstrap of the test image failed (exit {proc.returncode}; is Debian's archive "
                           f"reachable?)\n  {log_tail(log)}")
    new.replace(tar)
    say(f"{image} rootfs ready in {time.monotonic() - t0:.0f}s ({tar.stat().st_size >> 20} MiB)")
    return tar


def import_debian_images(t: Target) -> None:
    """Root podman of the lane gets the Debian images (the other engines load them from there)."""
    for image in wanted():
        if image not in DEBIAN or t.run(["podman", "image", "exists", image], check=False, timeout=60).returncode == 0:
            continue
        tar = debian_rootfs_tar(image)
        inside = f"/var/tmp/scrun-{DEBIAN[image][0]}.tar"
        shutil.copyfile(tar, t.path(inside))  # a namespace lane sees its own /var/tmp only
        try:
            changes = [arg for change in PYTHON_CHANGES for arg in ("--change", change)]
            t.run(["podman", "import", *changes, inside, image], timeout=600)
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
