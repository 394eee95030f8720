"""The image cache's entries on the shared filesystem (core.imagecache decides what is cached).

<ImageCache>/<user>/<key>/rootfs: one user's copy of one image, made once. Each entry has a lock
file, <key>.lock:
- a container running from the entry holds it shared for its life (its anchor's open fd), so a
  prune, which takes it exclusive without waiting, never removes an entry in use;
- the first container of an image takes it exclusive while it copies, so ten first containers
  at once copy the image once (the others wait, then find the entry).
An entry appears by rename only when complete; a copy killed half-way (kill -9, a full disk)
stays a .<key>.tmp-<pid> that nothing uses and the next copy or prune removes. A prune renames
an entry away before removing it: an entry is whole or absent. Each user's entries are theirs
(<user> is 0700): what one user's image holds never reaches another's containers.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import time
from collections import namedtuple

from scrun.errors import ScrunError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

LOCK_PROGRESS_EVERY = 15.0  # seconds between "waiting for …" lines while another container stages the image
_TMP_MARK, _TRASH_MARK = ".tmp-", ".trash-"


class ImageCacheError(ScrunError):
    """The cache directory is not usable (not ours, not private): create fails with this."""


class Entry(namedtuple("Entry", "key size last_used in_use image", defaults=("",))):
    """One cached image: its key, bytes on disk, last use (Unix time), whether a container runs
    from it, and the name the engine last gave it ("" when unknown)."""

    __slots__ = ()


def user_dir(cache_dir: str, user: str, make: bool = True) -> str:
    """<ImageCache>/<user>, made 0700 if missing; refused if another user owns it or it is open."""
    path = os.path.join(cache_dir, user)
    try:
        if not make:
            raise FileExistsError
        os.mkdir(path, 0o700)
        os.chmod(path, 0o700)
    except FileExistsError:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return path  # nothing cached yet (make=False)
        if not os.path.isdir(path) or os.path.islink(path) or st.st_uid != os.getuid() or st.st_mode & 0o077:
            raise ImageCacheError(f"image cache: {path} is not a private directory of yours (owner uid {st.st_uid}, "
                                  f"mode {st.st_mode & 0o7777:04o}): remove it, or make it 0700 and yours") from None
    return path


def ensure_entry(cache_dir: str, user: str, key: str, copy: Callable[[str], None],
                 progress: Callable[[str], None]) -> tuple[str, bool, int]:
    """The entry's rootfs, whether this call made it (copy(dest) fills a new one), and the fd
    that holds it in use: the caller keeps it open as long as a container runs from the entry."""
    base = user_dir(cache_dir, user)
    entry = os.path.join(base, key)
    fd = os.open(os.path.join(base, f"{key}.lock"), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    began, say_at = time.monotonic(), 1.0
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # refused while a first container copies
                if os.path.isdir(entry):
                    _touch(entry)
                    return os.path.join(entry, "rootfs"), False, fd
                fcntl.flock(fd, fcntl.LOCK_UN)
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # another first container copies: we use its entry
                waited = time.monotonic() - began
                if waited >= say_at:
                    progress(f"waiting for another container to stage the image ({waited:.0f} s)")
                    say_at += LOCK_PROGRESS_EVERY
                time.sleep(0.1)
                continue
            made = not os.path.isdir(entry)
            if made:
                _remove_leftovers(base, key)
                tmp = os.path.join(base, f".{key}{_TMP_MARK}{os.getpid()}")
                os.mkdir(tmp, 0o700)
                try:
                    copy(os.path.join(tmp, "rootfs"))
                    os.rename(tmp, entry)
                except BaseException:
                    shutil.rmtree(tmp, ignore_errors=True)
                    raise
            _touch(entry)
            fcntl.flock(fd, fcntl.LOCK_SH)  # from making it to using it
            return os.path.join(entry, "rootfs"), made, fd
    except BaseException:
        os.close(fd)
        raise


IMAGE_NAME = "image"  # beside the entry's rootfs/: the engine's name for it, last seen


def note_image(entry_rootfs: str, image: str) -> None:
    """Remember the engine's name of the image an entry holds (the key is its layers' digest)."""
    from scrun.store.records import write_text_atomic

    entry = os.path.dirname(entry_rootfs)
    if image and _image_name(entry) != image:
        write_text_atomic(os.path.join(entry, IMAGE_NAME), image[:200])


def _image_name(entry: str) -> str:
    try:
        fd = os.open(os.path.join(entry, IMAGE_NAME), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return ""
    with os.fdopen(fd) as fh:
        return fh.read(200).strip()


def list_entries(cache_dir: str, user: str) -> list[Entry]:
    """The user's entries, least recently used first."""
    base = user_dir(cache_dir, user, make=False)
    out = []
    for key in _keys(base):
        entry = os.path.join(base, key)
        in_use = not _try_exclusive(os.path.join(base, f"{key}.lock"), lambda: None)
        out.append(Entry(key, _size(entry), os.lstat(entry).st_mtime, in_use, _image_name(entry)))
    return sorted(out, key=lambda e: e.last_used)


def prune(cache_dir: str, user: str, keep_bytes: int = 0) -> list[Entry]:
    """Remove the user's entries no container runs from, least recently used first, until the
    rest holds at most keep_bytes (0: all of them); and copies killed half-way. Returns the removed."""
    base = user_dir(cache_dir, user, make=False)
    entries = list_entries(cache_dir, user)
    total = sum(e.size for e in entries)
    removed = []
    for entry in entries:
        if total <= keep_bytes:
            break
        path = os.path.join(base, entry.key)

        def remove(path: str = path) -> None:
            trash = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}{_TRASH_MARK}{os.getpid()}")
            os.rename(path, trash)  # whole or absent: nobody starts from a half-removed entry
            shutil.rmtree(trash, ignore_errors=True)

        if _try_exclusive(os.path.join(base, f"{entry.key}.lock"), remove):
            removed.append(entry)
            total -= entry.size
    for key in {name[1:].split(_TMP_MARK)[0] for name in _names(base) if _TMP_MARK in name}:
        _try_exclusive(os.path.join(base, f"{key}.lock"), lambda key=key: _remove_leftovers(base, key))
    return removed


def _names(base: str) -> list[str]:
    try:
        return os.listdir(base)
    except FileNotFoundError:
        return []


def _keys(base: str) -> list[str]:
    return sorted(n for n in _names(base) if not n.startswith(".") and not n.endswith(".lock")
                  and os.path.isdir(os.path.join(base, n)) and not os.path.islink(os.path.join(base, n)))


def _remove_leftovers(base: str, key: str) -> None:
    """Copies killed half-way and prunes interrupted: never used, removed (under the lock)."""
    for name in _names(base):
        if name.startswith(f".{key}{_TMP_MARK}") or name.startswith(f".{key}{_TRASH_MARK}"):
            shutil.rmtree(os.path.join(base, name), ignore_errors=True)


def _try_exclusive(lock: str, then: Callable[[], None]) -> bool:
    """Run `then` holding the lock exclusive, if nobody holds it; False if somebody does."""
    try:
        fd = os.open(lock, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        fd = None  # an entry with no lock file: nobody can hold it
    try:
        if fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
        then()
        return True
    finally:
        if fd is not None:
            os.close(fd)


def _size(path: str) -> int:
    total = 0
    for parent, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(parent, name)).st_blocks * 512
    return total


def _touch(entry: str) -> None:
    """Last use (the entry's mtime): prune removes the least recently used first."""
    with contextlib.suppress(OSError):
        os.utime(entry)
