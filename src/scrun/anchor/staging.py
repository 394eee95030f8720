"""Built-in staging: scrun.conf's StageDir for sites without a scrun.lua (core.staging decides).

Stands where a scrun.lua's hooks would (the same stage_in/stage_out and bundle/root_path), so
the anchor's create, failure and delete paths are the same for both. The copy is private: its
directory is 0700 and the user's (a uid-mapped container's belongs to its mapped root, which
must reach the rootfs on the node), in StageDir/<user> (0711), config.json 0600 (the
container's environment is in it).
Ownership inside the rootfs is kept, as `rsync -a --numeric-ids` would.
"""
from __future__ import annotations

import json
import os
import shutil
import stat

from scrun.core.specchecks import host_id_of_root
from scrun.anchor.cachedroot import CachedRoot, open_work_dirs
from scrun.core.imagecache import cached_config
from scrun.core.staging import plan_staging, staged_config, staged_file
from scrun.errors import ScrunError
from scrun.log import get_logger
from scrun.store.records import write_text_atomic

TYPE_CHECKING = False  # not typing's: the anchor imports this before asyncio
if TYPE_CHECKING:
    from collections.abc import Callable


PROGRESS_EVERY = 15.0  # seconds between progress lines of a long copy


class StagingError(ScrunError):
    """The copy could not be made (space, permissions): create fails with this."""


class BuiltinStaging:
    def __init__(self, stage_dir: str, shared: tuple[str, ...], bundle: str, root_path: str, user: str,
                 progress: Callable[[str], None], image_cache: str | None = None, image_cache_size: int | None = None):
        self.stage_dir = stage_dir
        # scrun.conf ImageCache: images copied once (anchor.cachedroot)
        self.cache = CachedRoot(image_cache, image_cache_size, user, progress) if image_cache else None
        self.copied_bytes = 0  # what this container's staging copied (0: all from the cache)
        self.shared = shared
        self.bundle = bundle
        self.root_path = root_path
        self.user = user
        self.progress = progress
        self.dest: str | None = None  # the copy, once made (stage_out removes it)
        self.place: str | None = None  # StageDir/<user>/<id>: where the copy goes, once stage_in knows the id
        self.staged_out = False
        self.path = "scrun.conf StageDir"  # what errors name (LuaHooks names its script)

    def stage_in(self, container_id: str, bundle: str, spool_dir: str, config_file: str, job_id: int,
                 user_id: int, group_id: int, job_env: list[str]) -> None:
        log = get_logger()
        try:
            with open(config_file, encoding="utf-8") as fh:
                config = json.load(fh)
        except (OSError, ValueError) as exc:
            raise StagingError(f"staging: cannot read {config_file}: {exc}") from None
        from scrun.core.mounts import (NAMESPACE_LOCAL_ROOTFS_TYPES, filesystem_of, parse_mountinfo, read_mountinfo,
                                       tmpfs_size_option)

        # An overlay is the engine's mount on this login node, wherever it lies (podman's own
        # namespace, or root podman's --uidmap view in $TMPDIR, which may be on a shared path):
        # a node sees the empty directory under it. Always copied.
        mountinfo = read_mountinfo()
        in_namespace = filesystem_of(self.root_path, parse_mountinfo(mountinfo)) in NAMESPACE_LOCAL_ROOTFS_TYPES
        plan = plan_staging(config=config, bundle=bundle, root_path=self.root_path, shared=self.shared,
                            stage_dir=self.stage_dir, user=self.user, container_id=container_id, is_dir=os.path.isdir,
                            rootfs_in_namespace=in_namespace,
                            tmpfs_size=lambda path: tmpfs_size_option(path, mountinfo))
        self.place = os.path.join(self.stage_dir, self.user, container_id)
        if plan is None:
            log.debug("bundle %s and its rootfs are on shared paths (%s): they run in place", bundle,
                      ", ".join(self.shared))
            return
        owner = _mapped_root(config) or (os.getuid(), os.getgid())
        self._make_dest(plan.dest)
        try:
            overlays = None  # the overlays that make the image cache's entry writable (anchor.cachedroot)
            if self.cache is not None and plan.rootfs is not None:
                overlays = self.cache.attach(config, plan.rootfs, os.path.join(plan.dest, "upper"), self._copy_with_progress)
            if plan.rootfs is not None and overlays is None:
                self._copy_with_progress(plan.rootfs, os.path.join(plan.dest, "rootfs"))
            if plan.files:
                os.mkdir(os.path.join(plan.dest, "mounts"), 0o700)
                for index, source in plan.files:
                    shutil.copy2(source, staged_file(plan, index, source))
            if overlays is None:
                out = staged_config(config, plan)
            else:
                out = cached_config(staged_config(config, plan._replace(rootfs=None)), self.cache.entry, overlays)
            write_text_atomic(plan.config_file, json.dumps(out), mode=0o600)
            if owner != (os.getuid(), os.getgid()):
                os.chown(plan.dest, *owner)  # the mapped root reaches its rootfs; nobody else
        except OSError as exc:
            raise StagingError(f"staging to {plan.dest} failed: {exc}") from None
        self.bundle = plan.dest
        if plan.rootfs is not None:
            self.root_path = self.cache.entry if overlays is not None else os.path.join(plan.dest, "rootfs")
        log.info("staged %s to %s: %d bytes copied", bundle, plan.dest, self.copied_bytes)

    def _make_dest(self, dest: str) -> None:
        try:
            _private_dir(os.path.dirname(dest))
            os.mkdir(dest, 0o700)
        except FileExistsError:
            raise StagingError(f"staging: {dest} exists already (left by an earlier container of this id? "
                               "remove it)") from None
        except OSError as exc:
            raise StagingError(f"staging: cannot make {dest}: {exc.strerror} (StageDir in scrun.conf must "
                               "exist on a filesystem every node shares, writable by its users)") from None
        self.dest = dest

    def node_dir(self) -> str:
        """The container's directory under StageDir, made now if nothing was copied (a bundle on
        shared paths whose config the node needs changed): the state root may be login-local."""
        if self.dest is None:
            if self.place is None:
                raise StagingError("staging: the node bundle is asked for before stage_in")
            if self.staged_out:  # a start racing the stop: nothing may be made after stage_out
                raise StagingError("staging: the container was staged out (stopped) before its step launched")
            self._make_dest(self.place)
            os.chmod(self.place, 0o711)  # nothing private in it but config.json (0600)
        return self.dest

    def _copy_with_progress(self, src: str, dst: str) -> None:
        """Copy the rootfs; a copy that takes more than a second says so on create's stderr, then
        every PROGRESS_EVERY seconds, as salloc does for a pending job (a small image says nothing)."""
        import threading
        import time

        failure: list[BaseException] = []

        def copy() -> None:
            try:
                self.copied_bytes += copy_tree(src, dst)
            except BaseException as exc:  # re-raised below, in the anchor's thread
                failure.append(exc)

        worker = threading.Thread(target=copy, name="staging", daemon=True)
        began = time.monotonic()
        worker.start()
        worker.join(1.0)
        while worker.is_alive():
            self.progress(f"staging {src} to {dst} for the compute nodes ({time.monotonic() - began:.0f} s)")
            worker.join(PROGRESS_EVERY)
        if failure:
            raise failure[0]

    def stage_out(self, container_id: str, bundle: str, orig_bundle: str, root_path: str, orig_root_path: str,
                  spool_dir: str, config_file: str, job_id: int, user_id: int, group_id: int) -> None:
        self.staged_out = True
        if self.cache is not None:  # the entry may be pruned now
            self.cache.release()
        if self.dest is not None:
            open_work_dirs(os.path.join(self.dest, "upper"))
            shutil.rmtree(self.dest, ignore_errors=True)  # fd-based: links in it are removed, never followed
            self.dest = None


def _mapped_root(config: dict) -> tuple[int, int] | None:
    """The host uid/gid the container's root maps to, when config.json maps ids."""
    linux = config.get("linux") if isinstance(config.get("linux"), dict) else {}
    uid, gid = host_id_of_root(linux.get("uidMappings")), host_id_of_root(linux.get("gidMappings"))
    return (uid, gid if gid is not None else uid) if uid is not None else None


def _private_dir(path: str) -> None:
    """StageDir/<user>: made 0711 if missing (others may pass, as a uid-mapped container's root
    must, but not list or write; each copy in it is 0700); if there, it must be ours and so
    (StageDir is shared by every user: another could have made it first, to read or swap our copies)."""
    try:
        os.mkdir(path, 0o711)
        os.chmod(path, 0o711)  # whatever the umask
    except FileExistsError:
        st = os.lstat(path)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o066:
            raise StagingError(f"staging: {path} is not a private directory of yours (owner uid {st.st_uid}, mode "
                               f"{stat.S_IMODE(st.st_mode):04o}): remove it, or have the admin make it 0700 for you") from None


COPY_WORKERS = 4  # files copied at once: a rootfs is many small files, and each waits on the disk


def copy_tree(src: str, dst: str) -> int:
    """The rootfs, owners, modes, times and file capabilities kept; devices, FIFOs and sockets left
    out (crun makes /dev); links copied as links, never followed. Regular files go through a few
    threads (the copy is disk-bound; sendfile and the metadata calls release the GIL). Returns
    the bytes copied."""
    from concurrent.futures import ThreadPoolExecutor

    dirs = [(src, dst, os.lstat(src))]  # their metadata last: creating children changes a directory's times
    os.mkdir(dst, 0o700)
    copied = 0
    with ThreadPoolExecutor(max_workers=COPY_WORKERS, thread_name_prefix="staging-copy") as pool:
        files = []
        todo = [(src, dst)]
        while todo:
            source_dir, target_dir = todo.pop()
            with os.scandir(source_dir) as listing:
                for entry in listing:
                    st = entry.stat(follow_symlinks=False)
                    target = os.path.join(target_dir, entry.name)
                    if stat.S_ISDIR(st.st_mode):
                        os.mkdir(target, 0o700)
                        dirs.append((entry.path, target, st))
                        todo.append((entry.path, target))
                    elif stat.S_ISLNK(st.st_mode):
                        os.symlink(os.readlink(entry.path), target)
                        os.lchown(target, st.st_uid, st.st_gid)
                    elif stat.S_ISREG(st.st_mode):
                        files.append(pool.submit(_copy_file, entry.path, target, st))
        for done in files:
            copied += done.result()
    for source, target, st in reversed(dirs):  # the deepest first
        _keep_metadata(source, target, st)
    return copied


def _copy_file(source: str, target: str, st: os.stat_result) -> int:
    """One regular file, its metadata set through its fd: no path is walked again, and no link
    followed: a rootfs is tens of thousands of files, and opening them is what the copy costs."""
    src = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        dst = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            left = st.st_size
            while left > 0:
                sent = os.sendfile(dst, src, None, min(left, 1 << 30))
                if not sent:
                    break  # the file shrank under us: what was there is copied
                left -= sent
            _keep_metadata(src, dst, st)
        finally:
            os.close(dst)
    finally:
        os.close(src)
    return st.st_size


def _keep_metadata(source: str | int, target: str | int, st: os.stat_result) -> None:
    """Owner, then mode (chown clears setuid bits), then extended attributes (chown clears a file's
    capabilities), then times. Of paths (never followed) or of fds."""
    nofollow = {"follow_symlinks": False} if isinstance(target, str) else {}  # an fd is no link
    os.chown(target, st.st_uid, st.st_gid, **nofollow)
    os.chmod(target, stat.S_IMODE(st.st_mode))  # directories: there is no lchmod on Linux
    try:
        names = os.listxattr(source, **nofollow)
    except OSError:
        names = []
    for name in names:
        try:
            os.setxattr(target, name, os.getxattr(source, name, **nofollow), **nofollow)
        except OSError:
            continue  # a namespace we may not write (trusted.*), or a filesystem without it
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns), **nofollow)
