"""salloc and its holder command: how the anchor starts it, from the loop or before it exists.

The forked anchor imports asyncio (~50 ms here) in a thread while create checks its input;
when create hands the container over, the job request should not wait for that import.
spawn_early() starts salloc at once, with plain subprocess, for the containers whose job
request needs nothing else first; Allocation adopts the process when the loop runs. A site
scrun.lua loads meanwhile (lupa's import and the script's load overlap the allocation); when it
does not load, the request is withdrawn (abandon) and no job is left, as before, only later.
A terminal (set up before any task) or a step in an existing job take the loop's path.
No asyncio here: this runs while the other thread may still be importing it.
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time

from scrun.slurm import argv as slurm_argv

TYPE_CHECKING = False  # not typing's: its import is ~7 ms of create
if TYPE_CHECKING:
    from scrun.anchor.request import AnchorRequest

# How long an abandoned salloc may take to end before its job is cancelled by id.
ABANDON_WAIT = 5.0
# How long a salloc that has said nothing yet gets before SIGTERM withdraws its request.
_QUIET = 0.5

# salloc's pipes and session: the same whichever path starts it.
HOLDER_SPAWN = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "cwd": "/",
                "start_new_session": True}


def base_env(req: AnchorRequest) -> dict[str, str]:
    """What every Slurm command the anchor runs gets (podman calls us with a minimal one)."""
    return {"PATH": req.path_env, "SLURM_CONF": req.slurm_conf}


def state_place(root: str) -> str:
    """`<host>:<root>`: which login node and state root a job's container belongs to (cli.orphans)."""
    return f"{os.uname().nodename}:{root}"


def holder_argv(req: AnchorRequest) -> list[str]:
    salloc = os.path.join(os.path.dirname(req.srun_path), "salloc") if os.path.isabs(req.srun_path) else "salloc"
    from scrun.anchor.provenance import describe_container

    comment = slurm_argv.job_comment(req.id, state_place(req.root), describe_container(req.provenance_source, req.id)[0])
    return slurm_argv.build_salloc_argv(salloc, req.job_args, req.job_name, comment)


def holder_env(req: AnchorRequest, script_env: dict[str, str]) -> dict[str, str]:
    return {**script_env, **base_env(req)}


def spawns_early(req: AnchorRequest) -> bool:
    return not req.terminal and req.existing_job_id is None


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


def abandon(proc: subprocess.Popen, env: dict[str, str]) -> None:
    """An early salloc the anchor never adopted (it failed before its allocation was used):
    end it so that no job outlives the anchor, whatever salloc's phase.

    Its pipes stay open and drained until it has exited: a salloc whose stderr is closed dies
    of SIGPIPE on its next line, perhaps before it relinquished the job. EOF on stdin ends a
    granted holder (salloc relinquishes the job); SIGTERM withdraws a request not granted yet,
    and only that: a granted salloc takes SIGTERM as "revoke the job", and then sometimes waited
    10 s before it ended (22.05). A salloc still running after ABANDON_WAIT gets its job
    cancelled by the id it printed (once, under load in 24.11, a job outlived a failed create)."""
    seen = _SallocLines()
    readers = [threading.Thread(target=_drain, args=(pipe, seen if pipe is proc.stderr else None), daemon=True)
               for pipe in (proc.stdout, proc.stderr) if pipe is not None]
    for reader in readers:
        reader.start()
    if proc.stdin is not None:
        with contextlib.suppress(OSError):
            proc.stdin.close()
        proc.stdin = None
    began = time.monotonic()
    withdrawn = False
    while proc.poll() is None and time.monotonic() - began < ABANDON_WAIT:
        if not withdrawn and not seen.granted and (seen.job_id or time.monotonic() - began > _QUIET):
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            withdrawn = True
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=0.05)
    if proc.poll() is None:
        if seen.job_id:
            _cancel(seen.job_id, env)
        try:
            proc.wait(timeout=ABANDON_WAIT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for reader in readers:
        reader.join(timeout=1.0)
    if proc.returncode is not None and proc.returncode < 0 and seen.job_id:
        _cancel(seen.job_id, env)  # killed by a signal: it may not have released its job


class _SallocLines:
    """What salloc's stderr said so far (written by the drain thread)."""

    def __init__(self) -> None:
        self.job_id = 0
        self.granted = False


def _drain(pipe, seen: _SallocLines | None) -> None:
    from scrun.slurm.parse import parse_salloc_line

    with contextlib.suppress(OSError, ValueError):
        for raw in pipe:
            parsed = parse_salloc_line(raw.decode(errors="replace")) if seen is not None else None
            if parsed is not None and parsed[0] in ("pending", "granted") and isinstance(parsed[1], int):
                seen.job_id = parsed[1]
                seen.granted = seen.granted or parsed[0] == "granted"
    with contextlib.suppress(OSError):
        pipe.close()


def _cancel(job_id: int, env: dict[str, str]) -> None:
    from scrun.slurm.runner import slurm_command

    with contextlib.suppress(OSError, subprocess.SubprocessError):
        subprocess.run(slurm_command(slurm_argv.build_scancel_argv("scancel", job_id)), env=env,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
