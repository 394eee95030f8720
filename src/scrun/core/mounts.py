"""Can the compute nodes see a rootfs? (rootless podman's overlay exists only in its namespace)

Rootless podman mounts the container's overlay inside its own mount namespace, where scrun
runs too. slurmd is not in it: srun --container would hand crun an empty directory ("executable
file `/bin/sh` not found"), and crun's mount points left in that directory break podman's
cleanup afterwards. Such a rootfs must be staged (scrun.lua), so we say so before anything runs.
"""
from __future__ import annotations

import os

# Filesystems rootless podman mounts for a container's rootfs (its vfs driver uses plain dirs).
NAMESPACE_LOCAL_ROOTFS_TYPES = frozenset({"overlay", "fuse.fuse-overlayfs"})


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as \\ooo."""
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1:i + 4].isdigit() and len(field[i + 1:i + 4]) == 3:
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> list[tuple[str, str]]:
    """(mount point, filesystem type) of each line of /proc/self/mountinfo, in order."""
    mounts = []
    for line in text.splitlines():
        fields = line.split(" ")
        if "-" not in fields:
            continue
        sep = fields.index("-")
        if len(fields) <= sep + 1 or len(fields) < 5:
            continue
        mounts.append((_unescape(fields[4]), fields[sep + 1]))
    return mounts


def filesystem_of(path: str, mounts: list[tuple[str, str]]) -> str | None:
    """The type of the filesystem holding `path` (the last, i.e. topmost, longest matching mount)."""
    best: tuple[int, str] | None = None
    path = os.path.normpath(path)
    for mount_point, fstype in mounts:
        mp = os.path.normpath(mount_point)
        if path == mp or path.startswith(mp.rstrip("/") + "/"):
            if best is None or len(mp) >= best[0]:
                best = (len(mp), fstype)
    return best[1] if best else None


def namespace_local_rootfs_error(root_path: str, in_user_namespace: bool, mountinfo: str | None = None) -> str | None:
    """The error to give when a rootless container's rootfs is podman's overlay; None if fine.

    `mountinfo`: the text of /proc/self/mountinfo, read here when not given (only when rootless).
    """
    if not in_user_namespace:
        return None
    if mountinfo is None:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as fh:
            mountinfo = fh.read()
    fstype = filesystem_of(root_path, parse_mountinfo(mountinfo))
    if not (in_user_namespace and fstype in NAMESPACE_LOCAL_ROOTFS_TYPES):
        return None
    return (f"rootfs {root_path} is rootless podman's {fstype} mount, which only exists in podman's own mount "
            "namespace: compute nodes cannot see it. Stage it in scrun.lua (scrun(1), \"Full Container staging "
            "example\") or use podman's vfs storage driver")
