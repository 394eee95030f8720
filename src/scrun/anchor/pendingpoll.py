"""Pending jobs' reasons, one squeue for all of them: a forked anchor has one pending job at
most, an anchor server (anchor/server.py) may hold hundreds, and one squeue per job every few
seconds would be the server's heaviest load on slurmctld. So the jobs that share squeue's
environment share one poll: every PENDING_REFRESH seconds, one `squeue --jobs=a,b,c…`; a job that
joins is asked about within JOIN_BATCH (its first reason soon, joins in a burst in one call).
"""
from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Callable

from scrun.errors import SlurmError
from scrun.slurm import argv as slurm_argv
from scrun.slurm.parse import parse_job_info
from scrun.slurm.runner import run_async

PENDING_REFRESH = 5.0
JOIN_BATCH = 0.25
# What squeue reads from its environment (its output format is ours): jobs with the same share a poll.
_SQUEUE_ENV = ("PATH", "SLURM_CONF", "SLURM_CLUSTERS", "SLURM_TIME_FORMAT")


class PendingPoll:
    _polls: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # loop → {squeue env: poll}

    @classmethod
    def shared(cls, env: dict[str, str]) -> PendingPoll:
        """The running loop's poll for squeue's part of `env`."""
        squeue_env = {k: v for k, v in env.items() if k in _SQUEUE_ENV or k.startswith("SQUEUE_")}
        polls = cls._polls.setdefault(asyncio.get_running_loop(), {})
        key = tuple(sorted(squeue_env.items()))
        if key not in polls:
            polls[key] = cls(squeue_env)
        return polls[key]

    def __init__(self, env: dict[str, str]):
        self.env = env
        self.watchers: dict[int, Callable] = {}  # job id → called with its squeue line (JobInfo)
        self.joined = asyncio.Event()
        self.task: asyncio.Future | None = None

    async def watch(self, job_id: int, seen: Callable) -> None:
        """Call `seen(info)` after each poll that found the job, until this is cancelled."""
        self.watchers[job_id] = seen
        self.joined.set()
        if self.task is None or self.task.done():
            self.task = asyncio.ensure_future(self._run())
        try:
            await asyncio.get_running_loop().create_future()  # cancelled once the job is granted or gone
        finally:
            if self.watchers.get(job_id) is seen:
                del self.watchers[job_id]

    async def _run(self) -> None:
        while self.watchers:
            self.joined.clear()
            jobs = sorted(self.watchers)
            try:
                _, out, _ = await run_async(slurm_argv.build_job_info_argv("squeue", jobs), env=self.env, timeout=30,
                                            check=False)
            except SlurmError:
                out = b""
            infos = parse_job_info(out.decode(errors="replace"))
            for job, seen in list(self.watchers.items()):
                info = infos.get(job)
                if info is not None:
                    seen(info)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.joined.wait(), PENDING_REFRESH)
                await asyncio.sleep(JOIN_BATCH)  # a burst of joins: one call for all of them
