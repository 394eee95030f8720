"""Containers whose login node lost them: a restart (a reboot) kills every anchor and empties the
state root, while their jobs live on in Slurm. Each job's comment names its container
(slurm.argv.job_comment): `list` shows them, `kill` signals them and `delete` cancels them and
removes what scrun.conf's staging left on the shared filesystem.
Only the caller's own jobs of this login node's state root are looked at (the comment says
which: another root's or login node's containers are not lost).
"""
from __future__ import annotations

import os

from scrun.errors import ScrunError
from scrun.core.jobstate import LIVE as LIVE_JOB_STATES


def _slurm_env(settings) -> dict[str, str]:
    return {**os.environ, "SLURM_CONF": settings.slurm_conf}


def orphan_jobs(settings, container_id: str | None = None) -> dict[str, list[tuple[int, object]]]:
    """{container id: [(job id, JobInfo)]} of the caller's live jobs whose container has no
    state directory under the root; {} when Slurm cannot say."""
    from scrun.slurm.argv import JOB_COMMENT_PREFIX, build_own_jobs_argv
    from scrun.slurm.parse import parse_own_jobs
    from scrun.slurm.runner import run

    try:
        proc = run(build_own_jobs_argv("squeue", settings.identity.real_uid), env=_slurm_env(settings), timeout=30,
                   check=False)
    except ScrunError:
        return {}
    from scrun.anchor.holder import state_place

    found = parse_own_jobs(proc.stdout.decode(errors="replace"), JOB_COMMENT_PREFIX, state_place(settings.root))
    out = {}
    for cid, jobs in found.items():
        if container_id is not None and cid != container_id:
            continue
        live = [(job, info) for job, info in jobs if info.state in LIVE_JOB_STATES]
        if live and not os.path.lexists(os.path.join(settings.root, cid)):
            out[cid] = live
    return out


def signal_orphan(settings, jobs: list[tuple[int, object]], signal: int | None) -> None:
    """Cancel the jobs (signal None), or send the signal to their steps (the container's)."""
    from scrun.slurm.argv import build_scancel_argv
    from scrun.slurm.runner import run

    for job, _ in jobs:
        run(build_scancel_argv("scancel", job, signal=signal), env=_slurm_env(settings), timeout=30, check=False)


def remove_orphan_stage_copy(settings, container_id: str) -> None:
    """What scrun.conf's staging made for the container (StageDir/<user>/<id>), never followed."""
    import pwd

    from scrun.cli.teardown import remove_stage_copy
    from scrun.config.settings import load_site_staging

    try:
        stage_dir = load_site_staging(settings.slurm_conf).stage_dir
        user = pwd.getpwuid(settings.identity.real_uid).pw_name
    except (ScrunError, KeyError):
        return
    if stage_dir is not None:
        remove_stage_copy({"stage_copy": os.path.join(stage_dir, user, container_id)})
