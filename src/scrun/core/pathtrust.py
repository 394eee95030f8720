"""Whether a path can be changed under us by someone we must not trust (pure: the file system is
passed in as lstat/readlink functions).

scrun acts on what it finds under its state root: it signals the pid and cancels the job a
record names, and removes the container's tree. That is only safe when nobody but the caller
(and root) can change any directory or symlink on the way there: otherwise the path can be
swapped for a link to someone else's records between our check and our use. So the whole way is
walked, symlinks followed by hand, and every directory and link on it judged (ssh's StrictModes
and sudo's checks of their files are the model). Missing components are fine: the caller makes
them, as its own.
"""
from __future__ import annotations

import stat

TYPE_CHECKING = False  # typing costs every verb ~7 ms to import
if TYPE_CHECKING:
    from collections.abc import Callable, Collection

MAX_LINKS = 40  # as the kernel's ELOOP limit


def untrusted_component(path: str, trusted_uids: Collection[int], *, lstat: Callable, readlink: Callable) -> str | None:
    """The first directory or symlink on the way to `path` (absolute) that a user outside
    `trusted_uids` owns or could change, with why; None when the whole way is safe.

    A directory others may write is safe only with the sticky bit (as /tmp: nobody can rename
    or replace what they do not own there), and never as the last component.
    """
    todo = [p for p in path.split("/") if p]
    current = "/"
    problem = _judge(current, lstat(current), trusted_uids, last=not todo)
    if problem:
        return problem
    links = 0
    while todo:
        name = todo.pop(0)
        if name == ".":
            continue
        if name == "..":
            current = current.rsplit("/", 1)[0] or "/"
            continue
        candidate = current.rstrip("/") + "/" + name
        try:
            st = lstat(candidate)
        except FileNotFoundError:
            return None  # the rest does not exist yet: the caller makes it, as its own
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > MAX_LINKS:
                return f"{path}: too many levels of symbolic links"
            if st.st_uid not in trusted_uids:
                return f"{candidate} is a symlink owned by uid {st.st_uid}"
            target = readlink(candidate)
            if target.startswith("/"):
                current = "/"
            todo[:0] = [p for p in target.split("/") if p]
            continue
        problem = _judge(candidate, st, trusted_uids, last=not todo)
        if problem:
            return problem
        if not stat.S_ISDIR(st.st_mode):
            return None  # not a directory: the caller's own check says what is wrong with it
        current = candidate
    return None


def _judge(path: str, st, trusted_uids: Collection[int], *, last: bool) -> str | None:
    if not stat.S_ISDIR(st.st_mode):
        return None
    if st.st_uid not in trusted_uids:
        return f"{path} is owned by uid {st.st_uid}"
    if st.st_mode & 0o022 and (last or not st.st_mode & stat.S_ISVTX):
        return f"{path} is writable by other users (mode {stat.S_IMODE(st.st_mode):04o})"
    return None
