"""A container run from the image cache: the entry made or found (store.imagecache), held while
the container runs, and the overlays that make it writable (core.imagecache decides them).

Used by the built-in staging (anchor.staging) and by a site's scrun.lua (slurm.cache_image).
"""
from __future__ import annotations

import contextlib
import os
import stat

from scrun.log import get_logger

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable


class CachedRoot:
    """One container's use of the cache: attach() once, release() when it stops."""

    def __init__(self, cache_dir: str, size_bound: int | None, user: str, progress: Callable[[str], None]):
        self.cache_dir = cache_dir
        self.size_bound = size_bound  # ImageCacheSize: what a new entry may push out beyond
        self.user = user
        self.progress = progress
        self.entry: str | None = None  # the cached rootfs the container runs from
        self._hold: int | None = None  # its lock, held shared while the container runs
        self.copied = 0  # bytes copied into a new entry (0: it was there)
        self.image = ""  # the engine's name of the image (anchor.provenance), shown by `scrun cache`

    def attach(self, config: dict, rootfs: str, upper_base: str,
               copy: Callable[[str, str], int | None]) -> list[dict] | None:
        """The overlays (config.json mounts, to go first) that make the cached copy of `rootfs` the
        container's writable root, their upper layers made under upper_base; None when this
        rootfs cannot be cached (then it is copied as before). copy(src, dest) fills a new entry
        (and may say how many bytes it copied)."""
        from scrun.core.imagecache import image_key, overlay_layers, overlay_mounts, usable_paths
        from scrun.core.mounts import read_mountinfo
        from scrun.store.imagecache import ensure_entry

        log = get_logger()
        root = config.get("root") if isinstance(config.get("root"), dict) else {}
        linux = config.get("linux") if isinstance(config.get("linux"), dict) else {}
        if linux.get("uidMappings"):
            return None  # a uid-mapped rootfs is owned by the mapping's ids: its copy is its own
        layers = overlay_layers(read_mountinfo(), rootfs)
        if layers is None or not only_mount_points(layers[1]):
            log.debug("rootfs %s is not an image's untouched overlay: copied, not cached", rootfs)
            return None
        key = image_key(layers[0])
        if not usable_paths(self.cache_dir, upper_base, self.user, key):
            return None
        def fill(dest: str) -> None:
            self.copied = copy(rootfs, dest) or 0

        self.entry, made, self._hold = ensure_entry(self.cache_dir, self.user, key, fill, self.progress)
        from scrun.store.imagecache import note_image

        note_image(self.entry, self.image)
        if made and self.size_bound is not None:
            from scrun.store.imagecache import prune

            for gone in prune(self.cache_dir, self.user, self.size_bound):  # ours is held: it stays
                log.info("image %s (%d bytes, least recently used) removed from the cache: ImageCacheSize", gone.key,
                         gone.size)
        tops = [n for n in os.listdir(self.entry)
                if os.path.isdir(os.path.join(self.entry, n)) and not os.path.islink(os.path.join(self.entry, n))]
        # A read-only root (podman --read-only) needs no overlay: the entry as it is.
        overlays = [] if root.get("readonly") else overlay_mounts(self.entry, tops, config.get("mounts") or [], upper_base)
        os.makedirs(upper_base, 0o700, exist_ok=True)
        for mount in overlays:
            name = mount["destination"].lstrip("/")
            _make_upper(os.path.join(self.entry, name), os.path.join(upper_base, name))
        log.info("image %s %s the cache (%s)", key, "staged into" if made else "runs from", self.entry)
        return overlays

    def release(self) -> None:
        """The container stopped: its entry may be pruned."""
        if self._hold is not None:
            os.close(self._hold)
            self._hold = None


def only_mount_points(upper: str) -> bool:
    """An engine's upper layer holding only what it made for mount points (empty directories and
    files, e.g. /etc/hosts' and /run/.containerenv's) and podman's /etc/mtab link: the container
    is its image, untouched."""
    for parent, _dirs, files in os.walk(upper):
        for name in files:
            path = os.path.join(parent, name)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode) and os.path.relpath(path, upper) == "etc/mtab":
                continue
            if not stat.S_ISREG(st.st_mode) or st.st_size:
                return False  # content, another link or a whiteout (a deleted file)
    return True


def open_work_dirs(upper_base: str) -> None:
    """overlayfs leaves <work>/work mode 0000: made ours to remove (nothing in it is followed)."""
    try:
        names = os.listdir(upper_base)
    except OSError:
        return
    for name in names:
        inner = os.path.join(upper_base, name, "work", "work")
        if os.path.isdir(inner) and not os.path.islink(inner):
            with contextlib.suppress(OSError):
                os.chmod(inner, 0o700)


def _make_upper(lower: str, place: str) -> None:
    """<place>/up and <place>/work for one overlay: `up` gets the mode and owner of the directory
    it covers (an overlay's top directory shows its upper's: /tmp stays 1777)."""
    st = os.lstat(lower)
    os.makedirs(os.path.join(place, "work"), 0o700)
    up = os.path.join(place, "up")
    os.mkdir(up, 0o700)
    with contextlib.suppress(PermissionError):  # another owner than ours: the container's root reads it as its own
        os.lchown(up, st.st_uid, st.st_gid)
    os.chmod(up, stat.S_IMODE(st.st_mode))
