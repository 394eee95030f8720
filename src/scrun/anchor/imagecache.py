"""The image cache's entries on the shared filesystem (core.imagecache decides what is cached).

<ImageCache>/<user>/<key>/rootfs: one user's copy of one image, made once. The entry appears by
rename only when complete, under a lock on <key>.lock, so ten first containers of an image at
once copy it once and a copy killed half-way (kill -9, a full disk) is never used: its
.<key>.tmp-<pid> is removed by the next one to take the lock. Each user's entries are theirs
(<user> is 0700): what one user's image holds never reaches another's containers.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import time

from scrun.errors import ScrunError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

LOCK_PROGRESS_EVERY = 15.0  # seconds between "waiting for …" lines while another container stages the image


class ImageCacheError(ScrunError):
    """The cache directory is not usable (not ours, not private): create fails with this."""


def user_dir(cache_dir: str, user: str) -> str:
    """<ImageCache>/<user>, made 0700 if missing; refused if another user owns it or it is open."""
    path = os.path.join(cache_dir, user)
    try:
        os.mkdir(path, 0o700)
        os.chmod(path, 0o700)
    except FileExistsError:
        st = os.lstat(path)
        if not os.path.isdir(path) or os.path.islink(path) or st.st_uid != os.getuid() or st.st_mode & 0o077:
            raise ImageCacheError(f"image cache: {path} is not a private directory of yours (owner uid {st.st_uid}, "
                                  f"mode {st.st_mode & 0o7777:04o}): remove it, or make it 0700 and yours") from None
    return path


def ensure_entry(cache_dir: str, user: str, key: str, copy: Callable[[str], None],
                 progress: Callable[[str], None]) -> tuple[str, bool]:
    """The entry's rootfs, and whether this call made it (copy(dest) fills a new one)."""
    base = user_dir(cache_dir, user)
    entry = os.path.join(base, key)
    if os.path.isdir(entry):  # the warm path: no lock needed, an entry is complete once it exists
        _touch(entry)
        return os.path.join(entry, "rootfs"), False
    with _locked(os.path.join(base, f"{key}.lock"), progress):
        if os.path.isdir(entry):  # made by the container we waited for
            _touch(entry)
            return os.path.join(entry, "rootfs"), False
        for stale in os.listdir(base):  # copies killed half-way: never used, removed now
            if stale.startswith(f".{key}.tmp-"):
                shutil.rmtree(os.path.join(base, stale), ignore_errors=True)
        tmp = os.path.join(base, f".{key}.tmp-{os.getpid()}")
        os.mkdir(tmp, 0o700)
        try:
            copy(os.path.join(tmp, "rootfs"))
            os.rename(tmp, entry)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return os.path.join(entry, "rootfs"), True


def _touch(entry: str) -> None:
    """Last use, for `scrun cache` listing (the entry's mtime)."""
    with contextlib.suppress(OSError):
        os.utime(entry)


@contextlib.contextmanager
def _locked(path: str, progress: Callable[[str], None]):
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        began = time.monotonic()
        say_at = 1.0
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                waited = time.monotonic() - began
                if waited >= say_at:
                    progress(f"waiting for another container to stage the image ({waited:.0f} s)")
                    say_at += LOCK_PROGRESS_EVERY
                time.sleep(0.1)
        yield
    finally:
        os.close(fd)  # releases the lock, also when the process is killed
