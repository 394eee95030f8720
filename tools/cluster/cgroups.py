"""The host's cgroup layout, as crun and podman need it."""
from __future__ import annotations

import os
import pathlib

from cluster.shell import run, say

UNIFIED = pathlib.Path("/sys/fs/cgroup/unified")


def is_hybrid() -> bool:
    return (UNIFIED / "cgroup.controllers").exists()


def fix_hybrid_cgroups() -> None:
    """crun 1.8 refuses hybrid hosts while cgroup2 owns a controller: give each its own v1 mount."""
    if not is_hybrid():
        return
    for name in (UNIFIED / "cgroup.controllers").read_text().split():
        target = pathlib.Path("/sys/fs/cgroup") / name
        if os.path.ismount(target):
            continue
        target.mkdir(exist_ok=True)
        proc = run(["mount", "-t", "cgroup", "-o", name, "cgroup", str(target)], check=False)
        if proc.returncode != 0:
            say(f"warning: could not mount cgroup v1 {name} ({proc.stderr.strip()}); crun may refuse containers")


def lane_cgroup_source() -> str:
    """What a namespace lane mounts as its /sys/fs/cgroup: a pure cgroup2 view.

    On a hybrid host that is the cgroup2 mount alone (the v1 hierarchies stay the host
    cluster's), so podman 5 and crun 1.2x inside the lane see the layout they prefer and
    podman does not warn about cgroup v1 on every call.
    """
    return str(UNIFIED) if os.path.ismount(UNIFIED) else "/sys/fs/cgroup"
