"""Clean-up that works without the anchor: cancel what the record says we own, remove the state."""
from __future__ import annotations

import os
import shutil
import signal
import time

from scrun.core.ids import step_name_for
from scrun.log import get_logger
from scrun.store.records import ContainerRecord, anchor_alive, container_dir


def wait_anchor_gone(record: ContainerRecord, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    delay = 0.005
    while anchor_alive(record):
        if time.monotonic() >= deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.1)
    return True


def kill_anchor(record: ContainerRecord) -> None:
    if anchor_alive(record):
        try:
            os.kill(record.anchor_pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        wait_anchor_gone(record, 5)


def cancel_recorded_job(record: ContainerRecord) -> None:
    """The anchor died without finishing: make sure its allocation or step does not outlive it."""
    if record.job_id is None:
        return
    from scrun.slurm import argv as slurm_argv
    from scrun.slurm.parse import parse_step_list
    from scrun.slurm.runner import run

    env = dict(os.environ)
    if record.slurm_conf:
        env["SLURM_CONF"] = record.slurm_conf
    log = get_logger()
    if record.own_allocation:
        log.debug("cancelling job %s of container %s", record.job_id, record.id)
        run(slurm_argv.build_scancel_argv("scancel", record.job_id), env=env, check=False, timeout=30)
        return
    # Inside the caller's job: cancel only our step, never the job.
    out = run(slurm_argv.build_step_list_argv("squeue", record.job_id), env=env, check=False, timeout=30).stdout
    step_name = step_name_for(record.id)
    for step, name in parse_step_list(out.decode(errors="replace")):
        if name == step_name:
            run(slurm_argv.build_scancel_argv("scancel", record.job_id, step=step), env=env, check=False, timeout=30)


def remove_state(root: str, container_id: str) -> None:
    shutil.rmtree(container_dir(root, container_id), ignore_errors=True)
