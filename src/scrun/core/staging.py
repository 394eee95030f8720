"""Built-in staging (pure): what of a container the compute nodes cannot see, and where its copy goes.

Slurm does not move bundles: a node runs `--container B` only if B, its rootfs and the sources
of its bind mounts are at the same paths there. A site without a scrun.lua names, in scrun.conf,
the directories every node shares (SharedPaths) and one of them for copies (StageDir). What lies
elsewhere is login-local (podman's and docker's storage, /run, /tmp) and is copied for the
container's life into StageDir/<user>/<id>; what is already shared runs in place (SchedMD's
vfs-on-shared-storage layout). System paths every node has (/dev, /proc, /sys, and the
operating system: /etc, /usr, /lib*, /bin, /sbin) are left alone: the node binds its own.
"""
from __future__ import annotations

import os
from collections import namedtuple

from scrun.errors import InvalidInputError

SYSTEM_PREFIXES = ("/dev", "/proc", "/sys", "/etc", "/usr", "/lib", "/lib32", "/lib64", "/bin", "/sbin")


# A login-local directory bound at one of these is the engine's own scratch mount (podman's
# userdata/shm tmpfs): the node gets a fresh one of its own.
FRESH_TMPFS = {"/dev/shm": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}


class StagePlan(namedtuple("StagePlan", "dest rootfs config_file files tmpfs", defaults=((),))):
    """dest: the copy's bundle directory; rootfs: the rootfs to copy there (None: it is shared
    and stays); config_file: where the rewritten config.json goes; files: ((index, source), …)
    bind-mount sources (regular files) to copy, by their index in config.json's mounts; tmpfs:
    ((index, size option or None), …) of binds that become a fresh tmpfs on the node
    (FRESH_TMPFS), with the size of the engine's own tmpfs where it has one (--shm-size)."""

    __slots__ = ()


def under(path: str, prefixes: tuple[str, ...]) -> bool:
    path = os.path.normpath(path)
    return any(path == p or path.startswith(p.rstrip("/") + "/") for p in (os.path.normpath(q) for q in prefixes))


def _bind_sources(config: dict) -> list[tuple[int, str]]:
    out = []
    for index, mount in enumerate(config.get("mounts") or []):
        if not isinstance(mount, dict) or not isinstance(mount.get("source"), str):
            continue
        options = mount.get("options") or []
        if mount.get("type") == "bind" or "bind" in options or "rbind" in options:
            out.append((index, mount["source"]))
    return out


def plan_staging(*, config: dict, bundle: str, root_path: str, shared: tuple[str, ...], stage_dir: str, user: str,
                 container_id: str, is_dir, rootfs_in_namespace: bool = False,
                 tmpfs_size=lambda path: None) -> StagePlan | None:
    """What must be copied for the nodes to see this container; None when everything is shared.

    `is_dir(path)`: whether a bind source is a directory (a volume: copying it would lose what the
    container writes, so a login-local one is refused with the fix). `rootfs_in_namespace`: the
    rootfs is an engine's overlay mount on the login node (rootless podman's, in its own mount
    namespace; root podman's --uidmap view in $TMPDIR): a node sees only the directory under it,
    wherever it lies (under a shared /home or /scratch too). `tmpfs_size(path)`: the `size=`
    option of the tmpfs mounted at a bind source, if any (core.mounts.tmpfs_size_option)."""
    rootfs_local = rootfs_in_namespace or not under(root_path, shared)
    files, tmpfs = [], []
    mounts = config.get("mounts") or []
    for index, source in _bind_sources(config):
        if under(source, shared) or under(source, SYSTEM_PREFIXES):
            continue
        if is_dir(source) and mounts[index].get("destination") in FRESH_TMPFS:
            tmpfs.append((index, tmpfs_size(source)))
            continue
        if is_dir(source):
            raise InvalidInputError(f"bind mount {source} (mounts[{index}]) is on the login node only: compute nodes "
                                    f"cannot see it; put it under a shared path ({', '.join(shared)}) or drop it")
        files.append((index, source))
    if not rootfs_local and not files and not tmpfs and under(bundle, shared):
        return None
    dest = os.path.join(stage_dir, user, container_id)
    return StagePlan(dest=dest, rootfs=root_path if rootfs_local else None,
                     config_file=os.path.join(dest, "config.json"), files=tuple(files), tmpfs=tuple(tmpfs))


def staged_config(config: dict, plan: StagePlan) -> dict:
    """config.json for the copy: its rootfs and copied bind sources point into plan.dest."""
    out = dict(config)
    hooks = config.get("hooks")
    if isinstance(hooks, dict):
        # A hook run through /proc/<pid>/ (docker's libnetwork-setkey) names a process of the
        # login node: no node has it, and crun would fail the container on it.
        out["hooks"] = {stage: [h for h in entries if not (isinstance(h, dict) and str(h.get("path", "")).startswith("/proc/"))]
                        if isinstance(entries, list) else entries for stage, entries in hooks.items()}
    if plan.rootfs is not None:
        out["root"] = {**(config.get("root") or {}), "path": os.path.join(plan.dest, "rootfs")}
    if plan.files or plan.tmpfs:
        mounts = [dict(m) if isinstance(m, dict) else m for m in config.get("mounts") or []]
        for index, source in plan.files:
            mounts[index]["source"] = staged_file(plan, index, source)
        for index, size in plan.tmpfs:
            options = FRESH_TMPFS[mounts[index]["destination"]]
            if size:
                options = [opt for opt in options if not opt.startswith("size=")] + [size]
            mounts[index] = {"destination": mounts[index]["destination"], "type": "tmpfs", "source": "tmpfs",
                             "options": list(options)}
        out["mounts"] = mounts
    return out


def staged_file(plan: StagePlan, index: int, source: str) -> str:
    return os.path.join(plan.dest, "mounts", f"{index}-{os.path.basename(source) or 'file'}")
