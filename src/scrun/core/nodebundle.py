"""Which bundle srun gets, given what the node side (slurmstepd) of each Slurm version honours."""
from __future__ import annotations

import os

# slurmstepd before 23.02 ignores config.json's root.path and always runs <bundle>/rootfs
# (seen with 22.05.8: "make `<bundle>/rootfs` private: No such file or directory").
ROOT_PATH_HONOURED_FROM = (23, 2)


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
