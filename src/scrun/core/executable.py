"""Find process.args[0] inside the container's rootfs, as the OCI runtime on the node will.

Failing at `create` with the runtime's own wording lets podman report the usual
"executable file not found" error (exit 127) instead of a step that fails after start.
"""
from __future__ import annotations

import os

from scrun.errors import InvalidInputError

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _exists_in_rootfs(rootfs: str, path: str) -> bool:
    # lexists: an absolute symlink (bin/sh -> /bin/busybox) points into the rootfs, not the host.
    return os.path.lexists(os.path.join(rootfs, path.lstrip("/")))


def check_executable(rootfs: str, arg0: str, env: dict[str, str], cwd: str = "/") -> None:
    """Raise InvalidInputError when arg0 cannot exist in rootfs; do nothing if rootfs is not local."""
    if not os.path.isdir(rootfs) or not os.listdir(rootfs):
        return  # staged elsewhere (scrun.lua) or not mounted here: the node will tell
    if "/" in arg0:
        target = arg0 if arg0.startswith("/") else os.path.join(cwd, arg0)
        if not _exists_in_rootfs(rootfs, target):
            raise InvalidInputError(f"executable file `{arg0}` not found: No such file or directory")
        return
    for directory in (env.get("PATH") or DEFAULT_PATH).split(":"):
        if directory and _exists_in_rootfs(rootfs, os.path.join(directory, arg0)):
            return
    raise InvalidInputError(f"executable file `{arg0}` not found in $PATH: No such file or directory")
