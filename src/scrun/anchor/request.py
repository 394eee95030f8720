"""What `create` hands to the anchor it starts: everything decided before the job exists."""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

from scrun.store.records import READY_NAME, container_dir, write_json_atomic


@dataclasses.dataclass(frozen=True)
class AnchorRequest:
    root: str
    id: str
    bundle: str
    config_file: str
    args: tuple[str, ...]
    terminal: bool
    console_socket: str | None
    console_size: tuple[int, int] | None
    job_args: tuple[str, ...]
    step_args: tuple[str, ...]
    job_name: str
    step_name: str
    srun_path: str
    srun_args: tuple[str, ...]
    slurm_conf: str
    existing_job_id: int | None        # SLURM_JOB_ID of the caller: run as a step of that job
    caller_slurm_env: dict[str, str]   # SLURM_* of the caller, for existing-allocation mode
    lua_script: str | None
    script_env: dict[str, str]         # SCRUN_* output variables for Lua and the Slurm commands
    log_file: str | None
    log_format: str
    file_level: int
    syslog_level: int
    path_env: str
    lua_timeout: float = 600.0         # seconds each scrun.lua hook may take (SCRUN_LUA_TIMEOUT)

    def save(self) -> None:
        doc = dataclasses.asdict(self)
        write_json_atomic(os.path.join(container_dir(self.root, self.id), READY_NAME), doc)

    @classmethod
    def load(cls, root: str, container_id: str) -> AnchorRequest:
        with open(os.path.join(container_dir(root, container_id), READY_NAME), encoding="utf-8") as fh:
            doc: dict[str, Any] = json.load(fh)
        for key in ("args", "job_args", "step_args", "srun_args"):
            doc[key] = tuple(doc[key])
        if doc.get("console_size") is not None:
            doc["console_size"] = tuple(doc["console_size"])
        return cls(**doc)
