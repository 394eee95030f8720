"""Which bundle srun gets, given what the node side (slurmstepd) of each Slurm version honours."""
from __future__ import annotations

import os

from scrun.core.executable import resolve_in_rootfs

# slurmstepd before 23.02 ignores config.json's root.path and always runs <bundle>/rootfs
# (seen with 22.05.8: "make `<bundle>/rootfs` private: No such file or directory").
ROOT_PATH_HONOURED_FROM = (23, 2)
# Newer srun resolves a bare command name against the *node's* PATH and filesystem before the
# node runtime sees it (24.11: `sh` became /usr/bin/sh, absent from a busybox image). 22.05
# passes the name through and crun searches the container, as runc does.
NODE_RESOLVES_COMMAND_FROM = (23, 2)


def needs_rootfs_shim(slurm_version: tuple[int, ...], bundle: str, root_path: str) -> bool:
    """True when srun must get a bundle whose rootfs/ leads to `root_path`."""
    if tuple(slurm_version[:2]) >= ROOT_PATH_HONOURED_FROM:
        return False
    return os.path.normpath(root_path) != os.path.normpath(os.path.join(bundle, "rootfs"))


def shim_config(config: dict) -> dict:
    """config.json for the shim bundle: the same, with the root at the bundle's rootfs/."""
    out = dict(config)
    out["root"] = {**config.get("root", {}), "path": "rootfs"}
    return out


def node_command(slurm_version: tuple[int, ...], args: tuple[str, ...], root_path: str, env: dict[str, str]) -> tuple[str, ...]:
    """process.args for srun: on Slurm versions that search the node, a bare command name is
    resolved in the container's rootfs first (along the container's PATH, as runc would)."""
    if tuple(slurm_version[:2]) < NODE_RESOLVES_COMMAND_FROM or not args:
        return args
    resolved = resolve_in_rootfs(root_path, args[0], env)
    return (resolved, *args[1:]) if resolved else args
