"""The anchor's container, as far as it needs no event loop: its record, create's pipe, scrun.lua,
the control socket's address. service.Anchor runs the rest on asyncio; quick.create_quickly
uses this part alone, while asyncio is still being imported.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import threading

from scrun.anchor import holder
from scrun.anchor.protocol import reachable_path
from scrun.config.paths import read_identity
from scrun.core.jobstate import JobState
from scrun.core.phase import STATUS_OF, IllegalTransition, Phase, advance
from scrun.errors import ScrunError
from scrun.log import get_logger
from scrun.store.records import SOCKET_NAME, container_dir, load_record, process_starttime, save_record

TYPE_CHECKING = False  # not typing's (see holder)
if TYPE_CHECKING:
    from typing import Any

    from scrun.anchor.request import AnchorRequest
    from scrun.store.records import ContainerRecord

# Connections that may wait while the loop is not serving yet (quick create: start comes early).
SOCKET_BACKLOG = 64


class Container:
    # Served by the user's anchor server (anchor/server.py), not a process of its own: then the
    # container's pid is its waiter's (anchor/served.py), and the process's signals are not ours.
    served = False
    waiter_pid = 0

    @property
    def engine_pid(self) -> int:
        """The pid the engine watches as the container's: this process, or the waiter."""
        return self.waiter_pid or os.getpid()

    def __init__(self, request: AnchorRequest, ready_fd: int | None, stdio: tuple[int, int, int]):
        self.req = request
        self.log = get_logger()
        self.dir = container_dir(request.root, request.id)
        self.record: ContainerRecord = load_record(request.root, request.id)
        self.ready_fd = ready_fd
        self.stdio = list(stdio)
        self.env = self._base_env()
        self.script_env = dict(request.script_env)  # SCRUN_* output variables; Lua may move the bundle
        self.identity = read_identity()  # Lua gets the real ids, as the seed's staging example needs
        self.job_env: dict[str, str] = {}
        self.stage_in_entered = False
        self.hooks: Any = None  # scrun.lua host, when the site has a scrun.lua
        # Set while no Lua hook runs. A stop cancels our wait for stage_in, not its thread:
        # stage_out must not enter the same Lua state until stage_in has returned. (lupa's
        # runtime lock would also serialize them; this makes the order ours, and logged.)
        self.lua_idle = threading.Event()
        self.lua_idle.set()
        self.phase = Phase.CREATING  # core/phase.py: the one table of the anchor's life
        self.lua_cache: Any = None  # anchor.cachedroot.CachedRoot, once scrun.lua calls slurm.cache_image
        from scrun.anchor.provenance import describe_container

        self.record.image = describe_container(request.provenance_source, request.id)[1]  # saved with the job id

    def _base_env(self) -> dict[str, str]:
        return holder.base_env(self.req)

    def save(self) -> None:
        save_record(self.req.root, self.record)

    def advance(self, event: str) -> None:
        """Move the phase by core/phase.py's table; the record's OCI status follows it (saved)."""
        try:
            phase = advance(self.phase, event)
        except IllegalTransition as exc:
            # A bug of ours, never the user's doing: said loudly, and the container carries on.
            self.log.error("internal error: illegal transition: %s", exc)
            return
        self.log.debug("phase %s -> %s (%s)", self.phase, phase, event)
        self.phase = phase
        self.record.status = STATUS_OF[phase]
        self.save()

    def notify_create(self, event: str, **fields: Any) -> None:
        """Tell the waiting `create` about progress, success or failure (JSON lines on a pipe)."""
        if self.ready_fd is None:
            return
        try:
            os.write(self.ready_fd, json.dumps({"event": event, **fields}).encode() + b"\n")
        except OSError:
            self.ready_fd = None  # create went away; nothing to tell
            return
        if event in ("created", "error"):
            os.close(self.ready_fd)
            self.ready_fd = None

    def slurm_env(self) -> dict[str, str]:
        """Environment of srun, Lua commands and scancel: job variables, PATH, SLURM_CONF, SCRUN_*."""
        return {**self.script_env, **self.job_env, **self.env}

    def close_stdio(self) -> None:
        for fd in self.stdio:
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.stdio = [-1, -1, -1]

    def _job_known(self, state: str, nodes: str | None = None, reason: str = "") -> None:
        """What `state` and `list` show of the job (saved with the next record write)."""
        self.record.job_state = state
        self.record.pending_reason = reason
        if nodes is not None:
            self.record.nodes = nodes

    def _record_job_id(self, job_id: int) -> None:
        self.record.job_id = job_id
        self.save()

    def _lua_call(self, fn, *args: Any) -> None:
        self.lua_idle.clear()
        try:
            fn(*args)
        finally:
            self.lua_idle.set()

    def _lua_context(self) -> dict[str, Any]:
        return {
            "bundle": self.record.bundle,
            "root_path": self.record.root_path,
            "env": self.slurm_env,
            "srun": self.req.srun_path,
            "srun_args": self.req.srun_args,
            "job_id": lambda: self.record.job_id,
            "timeout": self.req.lua_timeout,
            "cache_image": self._cache_image_for_lua,
        }

    def _one_task(self) -> bool:
        """The step is one task (core.imagecache.one_task); a step in a caller's job has its tasks."""
        from scrun.core.imagecache import one_task

        return self.req.existing_job_id is None and one_task((*self.req.job_args, *self.req.step_args,
                                                              *self.req.srun_args))

    def _cache_image_for_lua(self, config_file: str, upper_dir: str) -> tuple[str | None, str]:
        """slurm.cache_image(config_file, upper_dir): the engine's rootfs from the image cache
        (made on its first use) as config_file's read-only root, with the overlays that make it
        writable, their upper layers in upper_dir (the script's, on the shared filesystem; its
        stage_out removes it). Returns the cached rootfs for slurm.set_root_path, or None and why."""
        from scrun.anchor.cachedroot import CachedRoot
        from scrun.anchor.staging import copy_tree
        from scrun.core.imagecache import cached_config
        from scrun.store.records import write_json_atomic

        if not self.req.image_cache:
            return None, "no ImageCache in scrun.conf"
        if not self._one_task():
            return None, "the step runs more than one task: they need a copy they can share"
        if self.lua_cache is None:
            self.lua_cache = CachedRoot(self.req.image_cache, self.req.image_cache_size,
                                        self.script_env.get("SCRUN_USER", str(self.identity.real_uid)),
                                        lambda msg: self.notify_create("progress", msg=msg))
            self.lua_cache.image = self.record.image
        try:
            with open(config_file, encoding="utf-8") as fh:
                config = json.load(fh)
            overlays = self.lua_cache.attach(config, self.record.orig_root_path, upper_dir,
                                             copy_tree)
            if overlays is None:
                return None, f"{self.record.orig_root_path} is not an engine's untouched image: stage it yourself"
            write_json_atomic(config_file, cached_config(config, self.lua_cache.entry, overlays))
            self.record.staged_bytes = self.lua_cache.copied
        except (OSError, ValueError) as exc:
            return None, f"cannot cache the image for {config_file}: {exc}"
        return self.lua_cache.entry, ""

    def _bundle_config(self) -> dict[str, Any] | None:
        """The current bundle's config.json (Lua may have staged it elsewhere); None if unreadable."""
        try:
            with open(os.path.join(self.record.bundle, "config.json"), encoding="utf-8") as fh:
                config = json.load(fh)
        except (OSError, ValueError):
            return None
        return config if isinstance(config, dict) else None

    def record_anchor(self) -> None:
        """The container's pid (`state`, conmon): in the record before create hears."""
        self.record.anchor_pid = self.engine_pid
        self.record.anchor_starttime = process_starttime(self.engine_pid) or 0
        self.save()

    def job_granted(self, job_env: dict[str, str]) -> None:
        self.job_env = job_env
        self._job_known(JobState.RUNNING, nodes=job_env.get("SLURM_JOB_NODELIST", ""))
        self.log.info("job %s allocated on %s", self.record.job_id, job_env.get("SLURM_JOB_NODELIST", "?"))

    @property
    def has_hooks(self) -> bool:
        """A scrun.lua, or (without one) scrun.conf's built-in staging, stages this container."""
        return bool(self.req.lua_script or self.req.stage_dir)

    def load_hooks(self) -> None:
        """The staging hooks: the site's scrun.lua, else the built-in staging of scrun.conf."""
        if not self.req.lua_script:
            from scrun.anchor.staging import BuiltinStaging

            cacheable = self._one_task()
            self.hooks = BuiltinStaging(self.req.stage_dir, self.req.shared_paths, self.record.bundle,
                                        self.record.root_path, self.script_env.get("SCRUN_USER", str(self.identity.real_uid)),
                                        lambda msg: self.notify_create("progress", msg=msg),
                                        image_cache=self.req.image_cache if cacheable else None,
                                        image_cache_size=self.req.image_cache_size)
            if self.hooks.cache is not None:
                self.hooks.cache.image = self.record.image
            return
        from scrun.lua.host import LuaHooks  # only when the site has a scrun.lua

        self.hooks = LuaHooks.load(self.req.lua_script, self._lua_context())

    def stage_in(self) -> None:
        self.stage_in_entered = True
        job_env = [f"{k}={v}" for k, v in self.slurm_env().items()]
        self._lua_call(self.hooks.stage_in, self.req.id, self.record.bundle, self.dir, self.req.config_file,
                       self.record.job_id or 0, self.identity.real_uid, self.identity.real_gid, job_env)
        # Lua may have moved the bundle/rootfs: srun, `state` and later commands use the new ones
        # (upstream leaves SCRUN_BUNDLE/SCRUN_ROOTFS_PATH at the submitted paths).
        self.record.bundle = self.hooks.bundle
        self.record.root_path = self.hooks.root_path
        self.record.stage_copy = getattr(self.hooks, "dest", None) or ""
        self.record.staged_bytes = getattr(self.hooks, "copied_bytes", self.record.staged_bytes)
        self.script_env.update(SCRUN_BUNDLE=self.hooks.bundle, SCRUN_ROOTFS_PATH=self.hooks.root_path)
        self.save()
        from scrun.core.mounts import mapped_root_error, namespace_local_rootfs_error

        linux = (self._bundle_config() or {}).get("linux")
        error = (namespace_local_rootfs_error(self.record.root_path, self.identity.in_user_namespace)
                 or mapped_root_error(self.record.root_path, linux if isinstance(linux, dict) else {}))
        if error:
            raise ScrunError(f"after {'scrun.lua' if self.req.lua_script else 'staging'} stage_in: {error}")

    def bind_socket(self) -> socket.socket:
        """The control socket, listening (0600): `start`, `kill` and `delete` connect to it."""
        path = os.path.join(self.dir, SOCKET_NAME)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        bind_path, dirfd = reachable_path(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)
        try:
            sock.bind(bind_path)
            sock.listen(SOCKET_BACKLOG)
        except BaseException:
            sock.close()
            raise
        finally:
            os.umask(old_umask)
            if dirfd is not None:
                os.close(dirfd)
        return sock
