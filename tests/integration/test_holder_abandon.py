"""An early salloc the anchor never adopted (anchor.holder.abandon) leaves no job, in any phase.

Real salloc against the local cluster: granted, still pending, and one that does not answer
(stopped with SIGSTOP, as a salloc stuck under load looked in CI), whose job is cancelled by id.
"""
from __future__ import annotations

import os
import signal
import time
import uuid

from scrun.anchor.holder import ABANDON_WAIT, HOLDER_SPAWN, abandon
from scrun.slurm.argv import HOLDER_READY, build_salloc_argv
from scrun.slurm.runner import spawn
from conftest import jobs_named, wait_for


def start_salloc(*job_args: str) -> tuple[str, object]:
    name = f"scrun-abandon-{uuid.uuid4().hex[:8]}"
    proc = spawn(build_salloc_argv("salloc", ["--time=5", *job_args], name), **HOLDER_SPAWN, env=dict(os.environ))
    return name, proc


def job_state(name: str) -> str:
    lines = jobs_named([name])
    return lines[0] if lines else ""


def read_until_ready(proc) -> None:
    data = b""
    while HOLDER_READY.encode() not in data:
        chunk = os.read(proc.stdout.fileno(), 65536)
        assert chunk, "salloc ended before its holder ran"
        data += chunk


def test_a_granted_job_ends_with_its_abandoned_salloc(slurm_cluster):
    name, proc = start_salloc()
    read_until_ready(proc)  # the holder runs: the job is granted
    assert job_state(name)
    began = time.monotonic()
    abandon(proc, dict(os.environ))
    assert time.monotonic() - began < ABANDON_WAIT, "a granted salloc ends at EOF on its stdin"
    assert proc.returncode == 0
    wait_for(lambda: not job_state(name), timeout=10, what=f"job {name} to leave squeue")


def test_a_pending_request_is_withdrawn(slurm_cluster):
    name, proc = start_salloc("--begin=now+3600")
    wait_for(lambda: job_state(name), timeout=10, what=f"job {name} to be pending")
    abandon(proc, dict(os.environ))
    wait_for(lambda: not job_state(name), timeout=10, what=f"job {name} to leave squeue")


def test_a_salloc_that_does_not_answer_has_its_job_cancelled_by_id(slurm_cluster):
    name, proc = start_salloc("--begin=now+3600")
    wait_for(lambda: job_state(name), timeout=10, what=f"job {name} to be pending")
    os.kill(proc.pid, signal.SIGSTOP)  # neither SIGTERM nor EOF reach it now
    abandon(proc, dict(os.environ))
    assert proc.returncode == -signal.SIGKILL
    wait_for(lambda: not job_state(name), timeout=10, what=f"job {name} to be cancelled")
