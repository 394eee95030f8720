"""A job allocation held by salloc for exactly the life of one container.

salloc runs a holder (slurm.argv.HOLDER_SCRIPT) once the job is granted: it prints the job
environment, then waits for EOF on its stdin, which only the anchor holds. Closing it — or the
anchor dying, even by SIGKILL — ends the holder, and salloc relinquishes the job (COMPLETED).
While pending, salloc's stderr says so; we relay that and learn the job id early, so a
pending job can be withdrawn.
"""
from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
from collections.abc import Callable

from scrun.anchor.holder import HOLDER_SPAWN, abandon
from scrun.core.jobstate import JobState
from scrun.core.jobstate import NOT_FINAL
from scrun.core.stepend import CANCELLED_OUTSIDE, TIME_LIMIT, job_end_words, node_failure_cause
from scrun.errors import SlurmError
from scrun.log import get_logger
from scrun.slurm import argv as slurm_argv
from scrun.slurm.parse import parse_holder_env, parse_job_info, parse_salloc_line
from scrun.slurm.runner import AdoptedProcess, adopt_async, run_async, spawn_async

RELEASE_TIMEOUT = 15.0
END_CAUSE_WAIT = 10.0  # how long a job that ended under us may take to reach its final state


class Allocation:
    def __init__(self, argv: list[str], env: dict[str, str], *, on_job_id: Callable[[int], None],
                 on_progress: Callable[[str], None], on_queued: Callable[[int], None] = lambda job_id: None,
                 spawned: subprocess.Popen | None = None, read_ahead: bytes = b""):
        self.argv = argv
        self.spawned = spawned  # salloc already running (holder.spawn_early: before the loop existed)
        self.read_ahead = read_ahead  # its stdout as far as quick.create_quickly read it
        self.env = env
        self.on_job_id = on_job_id
        self.on_progress = on_progress
        self.on_queued = on_queued  # the job waits for resources (once, when salloc says so)
        self.log = get_logger()
        self.proc: asyncio.subprocess.Process | AdoptedProcess | None = None
        self.job_id: int | None = None
        self.job_env: dict[str, str] = {}
        self.revoked = asyncio.Event()  # salloc says the job ended under us (scancel, time limit)
        self.end_cause = CANCELLED_OUTSIDE  # why, as salloc said it (the stop reason's words)
        self._cause_known = False  # salloc named the cause (time limit, node failure)
        self.final_state = ""  # the job's final state when it ended under us (core/jobstate.py)
        self.node_failure: str | None = None  # the node salloc said failed
        self._errors: list[str] = []

    @property
    def granted(self) -> bool:
        return "SLURM_JOB_ID" in self.job_env

    async def acquire(self) -> dict[str, str]:
        """Wait for the grant; return the job's SLURM_* environment. Raises SlurmError."""
        self.log.debug("allocating: %s", self.argv)
        try:
            if self.spawned is not None:
                spawned, self.spawned = self.spawned, None
                try:
                    self.proc = await adopt_async(spawned, stdout_read=self.read_ahead)
                except BaseException:
                    abandon(spawned, self.env)
                    raise
            else:
                self.proc = await spawn_async(self.argv, **HOLDER_SPAWN, env=self.env)
        except FileNotFoundError:
            raise SlurmError(f"`{self.argv[0]}` not found: install slurm-client or set SrunPath in oci.conf") from None
        watcher = asyncio.ensure_future(self._watch_stderr())
        assert self.proc.stdout is not None
        try:
            data = await self.proc.stdout.readuntil(slurm_argv.HOLDER_READY_MARK)
        except asyncio.IncompleteReadError:
            await self.proc.wait()
            await watcher
            detail = "; ".join(self._errors) or f"salloc exited {self.proc.returncode}"
            self.proc = None
            raise SlurmError(f"job allocation failed: {detail}") from None
        self.job_env = parse_holder_env(data[: -len(slurm_argv.HOLDER_READY_MARK)])
        self._learn_job_id(int(self.job_env.get("SLURM_JOB_ID", self.job_id or 0)))
        return self.job_env

    def _learn_job_id(self, job_id: int) -> None:
        if job_id and job_id != self.job_id:
            self.job_id = job_id
            self.on_job_id(job_id)

    async def _watch_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        pending_said = False
        async for raw in self.proc.stderr:
            line = raw.decode(errors="replace").rstrip()
            self.log.debug("salloc: %s", line)
            parsed = parse_salloc_line(line)
            if parsed is None:
                continue
            event, value = parsed
            if event == "error":
                self._errors.append(str(value))
            elif event == "revoked":
                self.revoked.set()
            elif event == "nodefail":
                self.node_failure = str(value)
                self.end_cause, self._cause_known = node_failure_cause(str(value)), True
                self.final_state = JobState.NODE_FAIL
            elif event == "timelimit":
                self.end_cause, self._cause_known = TIME_LIMIT, True
                self.final_state = JobState.TIMEOUT
                self.revoked.set()
            elif event in ("pending", "granted") and isinstance(value, int):
                self._learn_job_id(value)
            if event == "queued" and not pending_said:
                pending_said = True
                self.on_progress(f"job {value} queued and waiting for resources")
                if isinstance(value, int):
                    self.on_queued(value)
            elif event == "allocated" and pending_said:
                self.on_progress(f"job {value} has been allocated resources")

    async def was_revoked(self) -> bool:
        """Did salloc report the job revoked? It does so at cancel time, long before srun gives up;
        only when salloc has already exited do we wait a moment for its last stderr lines."""
        if self.revoked.is_set():
            return True
        if self.proc is None or self.proc.returncode is None:
            return False
        try:
            await asyncio.wait_for(self.revoked.wait(), 0.3)
        except TimeoutError:
            return False
        return True

    async def learn_end_cause(self, slurm_env: dict[str, str]) -> str:
        """Why the job ended under us: salloc's words, else the job's final state (preempted,
        cancelled, deadline …), asked of squeue while the job completes (KillWait, a few seconds)."""
        if self._cause_known or self.job_id is None:
            return self.end_cause
        loop = asyncio.get_running_loop()
        deadline = loop.time() + END_CAUSE_WAIT
        while True:
            try:
                _, out, _ = await run_async(slurm_argv.build_job_info_argv("squeue", [self.job_id], ended_too=True),
                                            env=slurm_env, timeout=30, check=False)
            except SlurmError:
                out = b""
            info = parse_job_info(out.decode(errors="replace")).get(self.job_id)
            if self._cause_known:  # salloc's own line came meanwhile
                return self.end_cause
            if info is not None and info.state not in NOT_FINAL:
                self.end_cause, self._cause_known = job_end_words(info.state), True
                self.final_state = info.state
                return self.end_cause
            if loop.time() > deadline:
                return self.end_cause
            await asyncio.sleep(0.5)

    async def release(self, slurm_env: dict[str, str]) -> None:
        """End the holder (granted) or withdraw the request (pending); scancel if salloc will not."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if self.granted:
            assert proc.stdin is not None
            proc.stdin.close()
        else:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)  # pending: salloc withdraws the request
        try:
            await asyncio.wait_for(proc.wait(), RELEASE_TIMEOUT)
        except TimeoutError:
            self.log.error("salloc did not release job %s within %ss; cancelling it", self.job_id, RELEASE_TIMEOUT)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        if self.job_id is not None and (not self.granted or proc.returncode not in (0, None)):
            await run_async(slurm_argv.build_scancel_argv("scancel", self.job_id), env=slurm_env, timeout=30, check=False)
