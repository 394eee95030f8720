"""Find process.args[0] inside the container's rootfs, as the OCI runtime on the node will.

Failing at `create` lets the engine report the usual error instead of a step that fails
after start. The wording matters: podman matches "no such file or directory" and "permission
denied" without regard to case, docker's CLI only in lower case (exit 127 and 126, as runc's
"stat /x: no such file or directory" and "exec: \"/x\": permission denied" give).
"""
from __future__ import annotations

import os
import stat

from scrun.errors import InvalidInputError

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _host_path(rootfs: str, path: str, binds: tuple[tuple[str, str], ...]) -> str:
    """Where `path` of the container is on this host: in the last bind mount that covers it
    (mounts apply in order), else in the rootfs."""
    path = os.path.normpath(os.path.join("/", path))
    for dest, source in reversed(binds):
        if path == dest or path.startswith(dest.rstrip("/") + "/"):
            return os.path.join(source, os.path.relpath(path, dest)) if path != dest else source
    return os.path.join(rootfs, path.lstrip("/"))


def _not_executable(rootfs: str, path: str, binds: tuple[tuple[str, str], ...] = ()) -> bool:
    """A directory or a file with no execute bit (execve fails with EACCES); symlinks pass,
    since an absolute target would be read against the host here."""
    try:
        st = os.lstat(_host_path(rootfs, path, binds))
    except OSError:
        return False
    if stat.S_ISLNK(st.st_mode):
        return False
    return stat.S_ISDIR(st.st_mode) or (stat.S_ISREG(st.st_mode) and not st.st_mode & 0o111)


def _exists(rootfs: str, path: str, binds: tuple[tuple[str, str], ...] = ()) -> bool:
    # lexists: an absolute symlink (bin/sh -> /bin/busybox) points into the rootfs, not the host.
    return os.path.lexists(_host_path(rootfs, path, binds))


def _rootfs_is_local(rootfs: str) -> bool:
    return os.path.isdir(rootfs) and bool(os.listdir(rootfs))


def resolve_in_rootfs(rootfs: str, arg0: str, env: dict[str, str], binds: tuple[tuple[str, str], ...] = ()) -> str | None:
    """The in-container path of a bare command name, searched along the container's PATH as
    runc does (bind mounts included); None when arg0 has a slash, is not there, or the rootfs is
    not visible here."""
    if "/" in arg0 or not _rootfs_is_local(rootfs):
        return None
    for directory in (env.get("PATH") or DEFAULT_PATH).split(":"):
        if directory and _exists(rootfs, os.path.join(directory, arg0), binds):
            return os.path.join(directory, arg0)
    return None


def check_executable(rootfs: str, arg0: str, env: dict[str, str], cwd: str = "/",
                     binds: tuple[tuple[str, str], ...] = ()) -> None:
    """Raise InvalidInputError when arg0 cannot exist in rootfs, or is a file a bind mount puts
    there that cannot run (binds: (destination, source)); do nothing if rootfs is not local."""
    if not _rootfs_is_local(rootfs):
        return  # staged elsewhere (scrun.lua) or not mounted here: the node will tell
    if "/" in arg0:
        target = arg0 if arg0.startswith("/") else os.path.join(cwd, arg0)
        if not _exists(rootfs, target, binds):
            raise InvalidInputError(f"executable file `{arg0}` not found: no such file or directory")
    else:
        found = resolve_in_rootfs(rootfs, arg0, env, binds)
        if found is None:
            raise InvalidInputError(f"executable file `{arg0}` not found in $PATH: no such file or directory")
        target = found
    if _not_executable(rootfs, target, binds):
        raise InvalidInputError(f"exec `{arg0}`: permission denied (not an executable file in the container)")
