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
                 in_user_namespace: bool, progress: Callable[[str], None]):
        self.stage_dir = stage_dir
        self.shared = shared
        self.bundle = bundle
        self.root_path = root_path
        self.user = user
        self.in_user_namespace = in_user_namespace  # rootless podman's: its overlay rootfs is always copied
        self.progress = progress
        self.dest: str | None = None  # the copy, once made (stage_out removes it)
        self.path = "scrun.conf StageDir"  # what errors name (LuaHooks names its script)

    def stage_in(self, container_id: str, bundle: str, spool_dir: str, config_file: str, job_id: int,
                 user_id: int, group_id: int, job_env: list[str]) -> None:
        log = get_logger()
        try:
            with open(config_file, encoding="utf-8") as fh:
                config = json.load(fh)
        except (OSError, ValueError) as exc:
            raise StagingError(f"staging: cannot read {config_file}: {exc}") from None
        from scrun.core.mounts import namespace_local_rootfs_error

        in_namespace = namespace_local_rootfs_error(self.root_path, self.in_user_namespace) is not None
        plan = plan_staging(config=config, bundle=bundle, root_path=self.root_path, shared=self.shared,
                            stage_dir=self.stage_dir, user=self.user, container_id=container_id, is_dir=os.path.isdir,
                            rootfs_in_namespace=in_namespace)
        if plan is None:
            log.debug("bundle %s and its rootfs are on shared paths (%s): they run in place", bundle,
                      ", ".join(self.shared))
            return
        owner = _mapped_root(config) or (os.getuid(), os.getgid())
        user_dir = os.path.dirname(plan.dest)
        try:
            _private_dir(user_dir)
            os.mkdir(plan.dest, 0o700)
        except FileExistsError:
            raise StagingError(f"staging: {plan.dest} exists already (left by an earlier container of this id? "
                               "remove it)") from None
        except OSError as exc:
            raise StagingError(f"staging: cannot make {plan.dest}: {exc.strerror} (StageDir in scrun.conf must "
                               "exist on a filesystem every node shares, writable by its users)") from None
        self.dest = plan.dest
        try:
            if plan.rootfs is not None:
                self._copy_with_progress(plan.rootfs, os.path.join(plan.dest, "rootfs"))
            if plan.files:
                os.mkdir(os.path.join(plan.dest, "mounts"), 0o700)
                for index, source in plan.files:
                    shutil.copy2(source, staged_file(plan, index, source))
            write_text_atomic(plan.config_file, json.dumps(staged_config(config, plan)), mode=0o600)
            if owner != (os.getuid(), os.getgid()):
                os.chown(plan.dest, *owner)  # the mapped root reaches its rootfs; nobody else
        except OSError as exc:
            raise StagingError(f"staging to {plan.dest} failed: {exc}") from None
        self.bundle = plan.dest
        if plan.rootfs is not None:
            self.root_path = os.path.join(plan.dest, "rootfs")
        log.debug("staged %s to %s", bundle, plan.dest)

    def _copy_with_progress(self, src: str, dst: str) -> None:
        """Copy the rootfs; a copy that takes more than a second says so on create's stderr, then
        every PROGRESS_EVERY seconds, as salloc does for a pending job (a small image says nothing)."""
        import threading
        import time

        failure: list[BaseException] = []

        def copy() -> None:
            try:
                _copy_tree(src, dst)
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
        if self.dest is not None:
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


def _copy_tree(src: str, dst: str) -> None:
    """The rootfs, owners and modes kept; devices, FIFOs and sockets left out (crun makes /dev)."""
    def skip_special(directory: str, names: list[str]) -> list[str]:
        skipped = []
        for name in names:
            mode = os.lstat(os.path.join(directory, name)).st_mode
            if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
                skipped.append(name)
        return skipped

    shutil.copytree(src, dst, symlinks=True, ignore=skip_special)
    for parent, dirs, files in os.walk(src):
        rel = os.path.relpath(parent, src)
        for name in (".", *dirs, *files) if rel == "." else (*dirs, *files):
            source = os.path.normpath(os.path.join(parent, name))
            target = os.path.normpath(os.path.join(dst, rel, name))
            try:
                st = os.lstat(source)
                os.lchown(target, st.st_uid, st.st_gid)
                if not stat.S_ISLNK(st.st_mode):
                    os.chmod(target, stat.S_IMODE(st.st_mode))  # after chown, which clears setuid bits
            except FileNotFoundError:
                continue  # a special file, not copied
