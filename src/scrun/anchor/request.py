"""What `create` hands to the anchor it starts: everything decided before the job exists."""
from __future__ import annotations

import json
import os
from collections import namedtuple

from scrun.store.records import READY_NAME, container_dir, write_json_atomic


# (field, what it is); a namedtuple, not a dataclass: see config.conffile.ConfLine.
_FIELDS = (
    "root", "id", "bundle", "config_file",
    "args",                # process.args
    "terminal", "console_socket",
    "console_size",        # (rows, cols) or None
    "job_args", "step_args", "job_name", "step_name", "srun_path", "srun_args", "slurm_conf",
    "existing_job_id",     # SLURM_JOB_ID of the caller: run as a step of that job
    "caller_slurm_env",    # SLURM_* of the caller, for existing-allocation mode
    "lua_script",
    "script_env",          # SCRUN_* output variables for Lua and the Slurm commands
    "log_file", "log_format", "file_level", "syslog_level", "path_env",
    "lua_timeout",         # seconds each scrun.lua hook may take (SCRUN_LUA_TIMEOUT)
    "stage_dir",           # scrun.conf StageDir: built-in staging when there is no scrun.lua
    "shared_paths",        # scrun.conf SharedPaths: what every node sees (runs in place)
    "node_guard",          # the step gets core.nodeguard's prolog (not with oci.conf's IgnoreFileConfigJson)
    "image_cache",         # scrun.conf ImageCache: images staged once per user (store.imagecache)
    "image_cache_size",    # scrun.conf ImageCacheSize: bytes of a user's entries kept (None: no bound)
    "provenance_source",   # (engine, its record of the container): core.provenance.record_source
    "cdi_devices",         # {CDI kind: device names} the engine's --device asked for (core.cdi)
)


class AnchorRequest(namedtuple("AnchorRequest", _FIELDS, defaults=(600.0, None, (), True, None, None, None, None))):
    """Everything create decided, for the anchor (request.json in the container's directory)."""

    __slots__ = ()

    def save(self) -> None:
        doc = self._asdict()
        write_json_atomic(os.path.join(container_dir(self.root, self.id), READY_NAME), doc)

    @classmethod
    def load(cls, root: str, container_id: str) -> AnchorRequest:
        with open(os.path.join(container_dir(root, container_id), READY_NAME), encoding="utf-8") as fh:
            doc = json.load(fh)
        for key in ("args", "job_args", "step_args", "srun_args", "shared_paths", "provenance_source"):
            doc[key] = tuple(doc.get(key) or ())
        if doc.get("console_size") is not None:
            doc["console_size"] = tuple(doc["console_size"])
        return cls(**doc)
