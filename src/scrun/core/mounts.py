"""Can the compute nodes see a rootfs, and under which path?

Two ways podman hands a runtime a rootfs that only its own mount namespace has:

- Rootless podman mounts the container's overlay inside its own mount namespace, where scrun
  runs too. slurmd is not in it: srun --container would hand crun an empty directory ("executable
  file `/bin/sh` not found"), and crun's mount points left in that directory break podman's
  cleanup afterwards. Such a rootfs must be staged (scrun.lua), so we say so before anything runs.
- podman 5 with --uidmap (root) runs the runtime in a private mount namespace where the rootfs is
  a second view of the storage's overlay, `/var/tmp/intermediate-mountpoint-*`. The storage's own
  mount point (…/overlay/<id>/merged) is the same filesystem and every namespace of the host has
  it: that path is the one the node gets (node_visible_path).
"""
from __future__ import annotations

import os
from collections import namedtuple

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


class Mount(namedtuple("Mount", "device root point fstype")):
    """device: major:minor of the filesystem; root: the directory of it mounted here ("/" for
    all of it); point: where. collections' namedtuple: typing's costs create ~7 ms to import."""

    __slots__ = ()


def _mountinfo_lines(text: str):
    """(fields, index of the "-" separator) of each well-formed line of /proc/self/mountinfo."""
    for line in text.splitlines():
        fields = line.split(" ")
        if "-" not in fields:
            continue
        sep = fields.index("-")
        if len(fields) <= sep + 1 or sep < 5:
            continue
        yield fields, sep


def parse_mountinfo(text: str) -> list[Mount]:
    """The mounts of /proc/self/mountinfo, in its order (parents before children)."""
    return [Mount(fields[2], _unescape(fields[3]), _unescape(fields[4]), fields[sep + 1])
            for fields, sep in _mountinfo_lines(text)]


def tmpfs_size_option(path: str, mountinfo: str) -> str | None:
    """`size=…` of the tmpfs mounted at exactly `path` (the topmost), None when there is none or it
    has no size: podman's --shm-size is the size of the userdata/shm tmpfs it binds at /dev/shm."""
    found: str | None = None
    path = os.path.normpath(path)
    for fields, sep in _mountinfo_lines(mountinfo):
        if os.path.normpath(_unescape(fields[4])) != path:
            continue
        options = fields[sep + 3] if fields[sep + 1] == "tmpfs" and len(fields) > sep + 3 else ""
        found = next((opt for opt in options.split(",") if opt.startswith("size=")), None)
    return found


def mount_of(path: str, mounts: list[Mount]) -> Mount | None:
    """The mount holding `path`: the longest matching mount point, the topmost of equals."""
    best: Mount | None = None
    path = os.path.normpath(path)
    for mount in mounts:
        mp = os.path.normpath(mount.point)
        if path == mp or path.startswith(mp.rstrip("/") + "/"):
            if best is None or len(mp) >= len(os.path.normpath(best.point)):
                best = mount
    return best


def filesystem_of(path: str, mounts: list[Mount]) -> str | None:
    """The type of the filesystem holding `path`."""
    mount = mount_of(path, mounts)
    return mount.fstype if mount else None


def node_visible_path(root_path: str, mountinfo: str) -> str:
    """`root_path`, or the same place under the overlay's first mount point when root_path is in
    a later view of it (podman's intermediate mount point, see the module's text). First: the
    storage mounts it before any namespace is made, and mountinfo lists the older first."""
    mounts = parse_mountinfo(mountinfo)
    here = mount_of(root_path, mounts)
    if here is None or here.fstype not in NAMESPACE_LOCAL_ROOTFS_TYPES:
        return root_path
    rel = os.path.relpath(os.path.normpath(root_path), os.path.normpath(here.point))
    for mount in mounts:
        if mount.device == here.device and mount.root == here.root:
            return root_path if mount is here else os.path.normpath(os.path.join(mount.point, rel))
    return root_path


def read_mountinfo() -> str:
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as fh:
        return fh.read()


def namespace_local_rootfs_error(root_path: str, in_user_namespace: bool, mountinfo: str | None = None) -> str | None:
    """The error to give when a rootless container's rootfs is podman's overlay; None if fine.

    `mountinfo`: the text of /proc/self/mountinfo, read here when not given (only when rootless).
    """
    if not in_user_namespace:
        return None
    if mountinfo is None:
        mountinfo = read_mountinfo()
    fstype = filesystem_of(root_path, parse_mountinfo(mountinfo))
    if not (in_user_namespace and fstype in NAMESPACE_LOCAL_ROOTFS_TYPES):
        return None
    return (f"rootfs {root_path} is rootless podman's {fstype} mount, which only exists in podman's own mount "
            "namespace: compute nodes cannot see it. Stage it in scrun.lua (scrun(1), \"Full Container staging "
            "example\") or use podman's vfs storage driver")


# Where a login node keeps what its compute nodes never see: its temporary and run-time
# directories and the engines' storage (real-clusters.md; the development cluster's nodes too).
LOGIN_LOCAL_PREFIXES = ("/tmp", "/var/tmp", "/run", "/var/run", "/dev/shm", "/var/lib/containers", "/var/lib/docker")


def login_local_rootfs_error(root_path: str, conf_dir: str, mountinfo: str | None = None) -> str | None:
    """With nothing to stage it (no scrun.lua, no StageDir), the error to give when the rootfs is
    where compute nodes cannot see it: under a login-local directory, or an overlay mounted on
    this host (root podman's). None when it may be shared (the site's vfs-on-shared layout)."""
    from scrun.core.staging import under

    fix = (f"set StageDir= (a directory every node mounts) in {conf_dir}/scrun.conf for scrun's built-in staging, "
           "or stage it in scrun.lua")
    path = os.path.normpath(root_path)
    local = [p for p in LOGIN_LOCAL_PREFIXES if under(path, (p,))]
    if local:
        return (f"rootfs {root_path} is under {local[0]}, which only this login node has: Slurm does not copy "
                f"bundles and the compute nodes cannot see it. Fix: {fix}")
    if mountinfo is None:
        mountinfo = read_mountinfo()
    fstype = filesystem_of(path, parse_mountinfo(mountinfo))
    if fstype in NAMESPACE_LOCAL_ROOTFS_TYPES:
        return (f"rootfs {root_path} is an {fstype} mount made on this login node: the compute nodes cannot "
                f"see it. Fix: {fix}")
    return None


def mapped_root_error(root_path: str, linux: dict) -> str | None:
    """With uid mappings the node's runtime mounts the rootfs as the container's root (a host
    uid such as 100000): every directory above it must let that uid through. The error to
    give when one does not (checked here: the nodes share the filesystem); None if fine."""
    from scrun.core.specchecks import first_unsearchable

    if not linux.get("uidMappings"):
        return None
    from scrun.core.identity import parse_id_map, to_outside

    # The config's hostIDs are the node's ids, i.e. the host's; stat answers in the ids of the
    # user namespace we may run in (rootless podman's): translate them back.
    with open("/proc/self/uid_map", encoding="ascii") as fh:
        uid_map = parse_id_map(fh.read())
    with open("/proc/self/gid_map", encoding="ascii") as fh:
        gid_map = parse_id_map(fh.read())
    root = node_visible_path(root_path, read_mountinfo())
    chain, path = [], "/"
    for part in [p for p in root.split("/") if p]:
        path = os.path.join(path, part)
        try:
            st = os.stat(path)
        except OSError:
            return None  # missing or unreadable here: the node's runtime says why
        owner, group = to_outside(uid_map, st.st_uid), to_outside(gid_map, st.st_gid)
        chain.append((path, -1 if owner is None else owner, -1 if group is None else group, st.st_mode))
    blocked = first_unsearchable(chain, linux)
    if not blocked:
        return None
    where, owner, mode = blocked
    return (f"rootfs {root}: the container's root (linux.uidMappings) cannot search {where} (mode {mode:04o}, "
            f"uid {owner}), so the node's runtime cannot mount it: stage the rootfs in scrun.lua to a directory "
            f"it can reach, or `chmod o+x {where}`")
