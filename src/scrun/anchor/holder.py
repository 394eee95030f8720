"""salloc and its holder command: how the anchor starts it, from the loop or before it exists.

The forked anchor imports asyncio (~50 ms here) in a thread while create checks its input;
when create hands the container over, the job request should not wait for that import.
spawn_early() starts salloc at once, with plain subprocess, for the containers whose job
request needs nothing else first; Allocation adopts the process when the loop runs. The rest
(a scrun.lua, which loads before the job so that a broken script leaves none; a terminal,
set up before any task; a step in an existing job) takes the loop's path, as before. (Loading
the script while salloc already asks left a job behind once in 24.11's bad-input test.)
No asyncio here: this runs while the other thread may still be importing it.
"""
from __future__ import annotations

import os
import signal
import subprocess

from scrun.slurm import argv as slurm_argv

TYPE_CHECKING = False  # not typing's: its import is ~7 ms of create
if TYPE_CHECKING:
    from scrun.anchor.request import AnchorRequest

# salloc's pipes and session: the same whichever path starts it.
HOLDER_SPAWN = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "cwd": "/",
                "start_new_session": True}


def base_env(req: AnchorRequest) -> dict[str, str]:
    """What every Slurm command the anchor runs gets (podman calls us with a minimal one)."""
    return {"PATH": req.path_env, "SLURM_CONF": req.slurm_conf}


def holder_argv(req: AnchorRequest) -> list[str]:
    salloc = os.path.join(os.path.dirname(req.srun_path), "salloc") if os.path.isabs(req.srun_path) else "salloc"
    return slurm_argv.build_salloc_argv(salloc, req.job_args, req.job_name)


def holder_env(req: AnchorRequest, script_env: dict[str, str]) -> dict[str, str]:
    return {**script_env, **base_env(req)}


def spawns_early(req: AnchorRequest) -> bool:
    return not req.lua_script and not req.terminal and req.existing_job_id is None


def spawn_early(req: AnchorRequest) -> subprocess.Popen | None:
    """salloc for `req`, started now; None when the loop must start it (see above) or it
    cannot start (the loop then tries again, and reports the error as it always did)."""
    if not spawns_early(req):
        return None
    from scrun.slurm.runner import spawn

    try:
        return spawn(holder_argv(req), **HOLDER_SPAWN, env=holder_env(req, dict(req.script_env)))
    except OSError:
        return None


def abandon(proc: subprocess.Popen) -> None:
    """An early salloc the anchor never adopted (it failed before its loop ran): withdraw the
    request (pending) or end the holder (granted), so that no job outlives the anchor."""
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()
    try:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    except ProcessLookupError:
        pass
