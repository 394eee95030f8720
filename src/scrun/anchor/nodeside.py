"""What the node is handed: the step's command and bundle (core.nodebundle decides the config),
written where the compute nodes can read it.

A mixin of Anchor (anchor/service.py): it uses the anchor's record, request, hooks and log.
"""
from __future__ import annotations

import contextlib
import os
from typing import Any

from scrun.core.envlist import env_dict
from scrun.core.mounts import node_visible_path, read_mountinfo
from scrun.core.nodeguard import GUARD_SCRIPT_NAME, REFUSED_PREFIX, guard_config, guard_script, refused_nodes
from scrun.core.nodebundle import NODE_RESOLVES_COMMAND_FROM, needs_rootfs_shim, node_command, node_config, shim_config
from scrun.errors import ScrunError
from scrun.store.records import write_json_atomic, write_text_atomic


class NodeSide:
    """The command and the bundle srun hands the node for this container."""

    def _node_command(self, config: dict[str, Any] | None) -> tuple[str, ...]:
        """The container's args as srun must get them."""
        if tuple(self.slurm_version[:2]) < NODE_RESOLVES_COMMAND_FROM:
            return self.req.args  # srun passes the name through; crun searches the container
        process = (config or {}).get("process") or {}
        env = env_dict(process.get("env") or []) if isinstance(process, dict) else {}
        return node_command(self.slurm_version, self.req.args, self.record.root_path, env)

    def _node_bundle(self, terminal_size: tuple[int, int] | None, config: dict[str, Any] | None,
                     then_run: str | None = None, cdi_devices: str | None = None) -> tuple[str, str | None]:
        """The bundle srun gets, and the node guard's directory (None: no guard).

        The bundle is the container's, or one beside it with the config the node needs
        (core.nodebundle), always where the nodes can read it. Where that place is shared with
        the nodes (StageDir, or a bundle scrun.lua moved), the step also gets the guard
        (core.nodeguard) that keeps its command off a node that would ignore --container."""
        bundle, root_path = self.record.bundle, self.record.root_path
        # A bundle a site's scrun.lua moved is Lua's: its root is where Lua put it.
        lua_moved = bool(self.req.lua_script) and bundle != self.record.orig_bundle
        node_root = root_path if lua_moved else node_visible_path(root_path, read_mountinfo())
        shim = needs_rootfs_shim(self.slurm_version, bundle, node_root)
        guarded = (config is not None and self.req.node_guard
                   and (lua_moved or getattr(self.hooks, "node_dir", None) is not None))
        if config is None:
            if not shim:
                return bundle, None
            raise ScrunError(f"cannot read {os.path.join(bundle, 'config.json')} to make the node's bundle")
        changed = node_config(config, slurm_version=self.slurm_version, root_path=root_path,
                              terminal_size=terminal_size, node_root_path=node_root, cdi_devices=cdi_devices)
        if changed is None and not shim and not guarded:
            return bundle, None
        node, mode = self._node_bundle_dir(lua_moved)
        shim = needs_rootfs_shim(self.slurm_version, node, node_root)  # 22.05 runs <node bundle>/rootfs
        os.makedirs(node, mode=mode, exist_ok=True)
        out = changed or config
        guard = None
        if guarded:
            token = os.urandom(16).hex()  # secrets.token_hex, without hmac/hashlib in every anchor
            out = guard_config(out, self.slurm_version, token)
            guard = os.path.join(node, "guard")
            self._write_guard(guard, guard_script(self.slurm_version, guard, token, then_run))
            if not changed:
                out["root"] = {**config.get("root", {}), "path": node_root}  # the node bundle is elsewhere
        write_json_atomic(os.path.join(node, "config.json"), shim_config(out) if shim else out)
        if shim:
            link = os.path.join(node, "rootfs")
            with contextlib.suppress(FileNotFoundError):
                os.unlink(link)
            os.symlink(node_root, link)
        self.log.debug("srun gets node bundle %s (%s%s)", node, "root shim" if shim else "config adjusted",
                       ", guarded" if guard else "")
        return node, guard

    async def _cdi_devices(self) -> str | None:
        """The ids Slurm gave each node for the engine's CDI devices (core.cdi), or None."""
        if not self.req.cdi_devices:
            return None
        from scrun.core.cdi import node_annotation
        from scrun.slurm.argv import build_job_details_argv
        from scrun.slurm.parse import parse_gres_ids
        from scrun.slurm.runner import run_async

        _, out, _ = await run_async(build_job_details_argv("scontrol", self.record.job_id), env=self.slurm_env(), timeout=30)
        requests = {kind: set(names) for kind, names in self.req.cdi_devices.items()}
        devices = node_annotation(requests, parse_gres_ids(out.decode(errors="replace")))
        self.log.debug("CDI devices by node: %s", devices)
        return devices

    @staticmethod
    def _write_guard(guard: str, text: str) -> None:
        """The guard's directory holds its prolog only: before 23.02 it is the step's cwd, and
        must have no config.json (core.nodeguard)."""
        os.makedirs(guard, mode=0o700, exist_ok=True)
        for name in os.listdir(guard):  # a start after a refused one: only this run's refusals count
            if name.startswith(REFUSED_PREFIX):
                os.unlink(os.path.join(guard, name))
        write_text_atomic(os.path.join(guard, GUARD_SCRIPT_NAME), text, mode=0o700)

    def _guard_refusals(self, guard: str | None) -> list[str]:
        """Nodes whose guard refused the step (core.nodeguard)."""
        if guard is None:
            return []
        try:
            return refused_nodes(os.listdir(guard))
        except OSError:
            return []

    def _node_bundle_dir(self, lua_moved: bool) -> tuple[str, int]:
        """Where the node bundle goes, and its mode (0711: a uid-mapped root passes to its rootfs):
        inside Lua's bundle (its stage_out removes it), beside scrun.conf's copy, else the state
        directory (shared only if the state root is)."""
        if lua_moved:
            return os.path.join(self.record.bundle, ".scrun-node"), 0o711
        node_dir = getattr(self.hooks, "node_dir", None)  # built-in staging: StageDir/<user>/<id>
        if node_dir is not None:
            place = node_dir()
            if self.record.stage_copy != place:
                self.record.stage_copy = place
                self.save()
            return os.path.join(place, "node"), 0o711
        return os.path.join(self.dir, "bundle"), 0o777
