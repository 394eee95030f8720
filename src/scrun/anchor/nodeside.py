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
from scrun.core.nodebundle import NODE_RESOLVES_COMMAND_FROM, needs_rootfs_shim, node_command, node_config, shim_config
from scrun.errors import ScrunError
from scrun.store.records import write_json_atomic


class NodeSide:
    """The command and the bundle srun hands the node for this container."""

    def _node_command(self, config: dict[str, Any] | None) -> tuple[str, ...]:
        """The container's args as srun must get them."""
        if tuple(self.slurm_version[:2]) < NODE_RESOLVES_COMMAND_FROM:
            return self.req.args  # srun passes the name through; crun searches the container
        process = (config or {}).get("process") or {}
        env = env_dict(process.get("env") or []) if isinstance(process, dict) else {}
        return node_command(self.slurm_version, self.req.args, self.record.root_path, env)

    def _node_bundle(self, terminal_size: tuple[int, int] | None, config: dict[str, Any] | None) -> str:
        """The bundle srun gets: the container's, or one beside it with the config the node needs
        (core.nodebundle), always where the nodes can read it."""
        bundle, root_path = self.record.bundle, self.record.root_path
        # A bundle a site's scrun.lua moved is Lua's: its root is where Lua put it.
        lua_moved = bool(self.req.lua_script) and bundle != self.record.orig_bundle
        node_root = root_path if lua_moved else node_visible_path(root_path, read_mountinfo())
        shim = needs_rootfs_shim(self.slurm_version, bundle, node_root)
        if config is None:
            if not shim:
                return bundle
            raise ScrunError(f"cannot read {os.path.join(bundle, 'config.json')} to make the node's bundle")
        changed = node_config(config, slurm_version=self.slurm_version, root_path=root_path,
                              terminal_size=terminal_size, node_root_path=node_root)
        if changed is None and not shim:
            return bundle
        node, mode = self._node_bundle_dir(lua_moved)
        shim = needs_rootfs_shim(self.slurm_version, node, node_root)  # 22.05 runs <node bundle>/rootfs
        os.makedirs(node, mode=mode, exist_ok=True)
        write_json_atomic(os.path.join(node, "config.json"), shim_config(changed or config) if shim else changed)
        if shim:
            link = os.path.join(node, "rootfs")
            with contextlib.suppress(FileNotFoundError):
                os.unlink(link)
            os.symlink(node_root, link)
        self.log.debug("srun gets node bundle %s (%s)", node, "root shim" if shim else "config adjusted")
        return node

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
