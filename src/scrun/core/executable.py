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


def _rootfs_is_local(rootfs: str) -> bool:
    return os.path.isdir(rootfs) and bool(os.listdir(rootfs))


def resolve_in_rootfs(rootfs: str, arg0: str, env: dict[str, str]) -> str | None:
    """The in-container path of a bare command name, searched along the container's PATH as
    runc does; None when arg0 has a slash, is not there, or the rootfs is not visible here."""
    if "/" in arg0 or not _rootfs_is_local(rootfs):
        return None
    for directory in (env.get("PATH") or DEFAULT_PATH).split(":"):
        if directory and _exists_in_rootfs(rootfs, os.path.join(directory, arg0)):
            return os.path.join(directory, arg0)
    return None


def check_executable(rootfs: str, arg0: str, env: dict[str, str], cwd: str = "/") -> None:
    """Raise InvalidInputError when arg0 cannot exist in rootfs; do nothing if rootfs is not local."""
    if not _rootfs_is_local(rootfs):
        return  # staged elsewhere (scrun.lua) or not mounted here: the node will tell
    if "/" in arg0:
        target = arg0 if arg0.startswith("/") else os.path.join(cwd, arg0)
        if not _exists_in_rootfs(rootfs, target):
            raise InvalidInputError(f"executable file `{arg0}` not found: No such file or directory")
        return
    if resolve_in_rootfs(rootfs, arg0, env) is None:
        raise InvalidInputError(f"executable file `{arg0}` not found in $PATH: No such file or directory")
