"""The anchor: one asyncio process per container, alive exactly as long as the container.

Its pid is the container's pid (pid file, `state`); conmon or containerd-shim reap it and take
its exit status as the container's. Its life is core/phase.py's table (creating → created →
starting → running → stopped); this module runs the create phase and the end, and joins the
rooms that do the rest: anchor/control.py (the socket's verbs), anchor/step.py (the step),
anchor/nodeside.py (what the nodes see), anchor/allocation.py (salloc).

Stop requests (kill before start, delete --force, SIGTERM/SIGINT/SIGHUP, the job ending under
us) end any phase and always run the same clean-up: stop the step, stage_out, release the
allocation.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from typing import TYPE_CHECKING

from scrun.anchor import holder
from scrun.anchor.allocation import Allocation
from scrun.anchor.console import Console
from scrun.anchor.container import Container
from scrun.anchor.control import ControlServer
from scrun.anchor.nodeside import NodeSide
from scrun.anchor.pendingpoll import PendingPoll
from scrun.anchor.step import StepControl
from scrun.core.exitcode import exit_code_for_signal
from scrun.core.signals import signal_name
from scrun.core.jobstate import JobState
from scrun.core.phase import Event
from scrun.errors import ScrunError, SlurmError
from scrun.slurm.parse import parse_slurm_version
from scrun.slurm.runner import adopt_async, run_async
from scrun.store.records import SOCKET_NAME

if TYPE_CHECKING:
    from scrun.anchor.quick import QuickCreate



class Anchor(ControlServer, StepControl, NodeSide, Console, Container):
    @classmethod
    def take_over(cls, container: Container, early_holder: subprocess.Popen | None = None,
                  quick: QuickCreate | None = None) -> Anchor:
        """The container (new, or as create's quick path left it) becomes the anchor: the same
        object, so scrun.lua's callbacks, bound to it when it loaded, see what the loop changes."""
        container.__class__ = cls
        assert isinstance(container, cls)
        container._init_loop(early_holder, quick)
        return container

    def _init_loop(self, early_holder: subprocess.Popen | None, quick: QuickCreate | None) -> None:
        # salloc started before the loop (holder.spawn_early); None once Allocation adopts it.
        self.early_holder = early_holder
        self.quick = quick
        self.allocation: Allocation | None = None  # None: an existing job (SLURM_JOB_ID), or none yet
        self._holder_watch: asyncio.Future | None = None
        self._pending_watch: asyncio.Future | None = None
        self.srun: asyncio.subprocess.Process | None = None
        self.slurm_version: tuple[int, int, int] = (22, 5, 0)
        self._version_task: asyncio.Future | None = None  # _detect_slurm_version, from create on
        self.start_requested = asyncio.Event()
        self.stopping = asyncio.Event()
        self.stop_code: int | None = None
        self.stop_reason = ""
        self.job_ended_under_us = False  # the stop came from salloc: the job ended (scancel, node failure …)
        self.pty_slave: int | None = None
        self.resizes_via_anchor = False  # the slave is our controlling terminal (anchor/terminal.py)
        self.resized_since_launch = False  # the engine resized it since srun read its size
        self.stderr_relay: asyncio.Future | None = None
        self.stderr_dest: int | None = None  # the container's stderr, ours until the verdict is told
        self.tasks_started = asyncio.Event()  # srun said the container's process runs on its node
        self.tasks_started_at = 0.0           # when (the loop's clock)
        self.launched_at = 0.0                # when srun was spawned (the loop's clock)
        self.step_id: str | None = None       # the step srun said it launches (its --verbose line)
        self._resend_task: asyncio.Future | None = None
        self._step_wake: asyncio.Future | None = None  # stepwake: srun left waiting for its step
        self.guard: str | None = None  # the node guard's directory (core.nodeguard), once launched
        self.signalled: int | None = None  # the last signal `kill` sent to the step

    # ------------------------------------------------------------------ helpers

    def request_stop(self, code: int, reason: str) -> None:
        if self.stop_code is None:
            self.stop_code = code
            self.stop_reason = reason
            self.log.info("stopping: %s", reason)
        self.stopping.set()

    # ------------------------------------------------------------------ main

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP) if not self.served else ():  # the waiter's: server.py
            loop.add_signal_handler(sig, self.request_stop, exit_code_for_signal(sig), f"anchor received {signal_name(sig)}")
        for sig in self.quick.signals if self.quick is not None else ():  # before the loop had handlers
            self.request_stop(exit_code_for_signal(sig), f"anchor received {signal_name(sig)}")
        server = await self._serve()
        self.record_anchor()
        exit_code = 1
        try:
            exit_code = await self._lifecycle()
        finally:
            server.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(self.dir, SOCKET_NAME))
        return exit_code

    async def _lifecycle(self) -> int:
        created = await self._race(self._create_phase())
        if not created:
            return await self._finish(self.stop_code if self.stop_code is not None else 1, failed_create=True)
        if self.quick is None or not self.quick.created:
            self.advance(Event.CREATED)
            self.notify_create("created", pid=self.engine_pid)
        await self._race(self.start_requested.wait())
        if self.srun is None:
            return await self._finish(self.stop_code if self.stop_code is not None else 1)
        # A step exists, even if a stop came right after it was spawned: _wait_step ends it.
        code = await self._wait_step()
        return await self._finish(code)

    async def _race(self, coro) -> bool:
        """Run `coro` until it finishes or a stop is requested; True if it finished first."""
        task = asyncio.ensure_future(coro)
        stop = asyncio.ensure_future(self.stopping.wait())
        done, _ = await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            stop.cancel()
            exc = task.exception()
            if exc is not None:
                msg = str(exc) if isinstance(exc, ScrunError) else f"internal error: {exc!r}"
                self.log.error("%s", msg)
                self.notify_create("error", msg=msg)
                self.request_stop(1, msg)
                return False
            return task.result() is not False
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        return False

    # ------------------------------------------------------------------ creating

    async def _create_phase(self) -> bool:
        if self.req.terminal:
            self._setup_terminal()  # before any task: a bad console socket leaves nothing running
        quick = self.quick
        if self.has_hooks and self.hooks is None:
            # Before the job is used: a script that does not load leaves no job behind (an
            # early salloc, already asking for it, is withdrawn: _release_allocation).
            if quick is not None and quick.lua_error is not None:
                raise quick.lua_error
            await self._load_hooks()
        # `srun --version` runs alongside; only the step needs its answer (_version_known), and
        # start comes long after it is in: create does not wait for it.
        version_task = self._version_task = asyncio.ensure_future(self._detect_slurm_version())
        allocated = False
        try:
            if self.req.existing_job_id is not None:
                self.record.job_id = self.req.existing_job_id
                self.record.own_allocation = False
                self.job_env = dict(self.req.caller_slurm_env)
                self._job_known(JobState.RUNNING, nodes=self.job_env.get("SLURM_JOB_NODELIST", ""))  # create checked it
                self.save()
            else:
                await self._allocate()
            allocated = True
        finally:
            if not allocated:
                # Never left pending: an anchor whose allocation failed while `srun --version`
                # ran hung at exit (seen with a bad --console-socket, before that moved first).
                await version_task
        if quick is not None and quick.error is not None:
            raise quick.error  # after the allocation: the failure path releases it, stage_out runs
        if self.has_hooks and not self.stage_in_entered:
            await self._stage_in()
        return True

    async def _version_known(self) -> None:
        if self._version_task is not None:
            await self._version_task

    async def _detect_slurm_version(self) -> None:
        probe = self.quick.version_probe if self.quick is not None else None
        try:
            if probe is not None:  # started by the quick create; long done by now, as a rule
                self.quick.version_probe = None
                proc = await adopt_async(probe)
                assert proc.stdout is not None
                out = await proc.stdout.read()
                await proc.wait()
            else:
                _, out, _ = await run_async([self.req.srun_path, "--version"], env=self.env, timeout=30)
            self.slurm_version = parse_slurm_version(out.decode())
        except (SlurmError, ValueError) as exc:
            self.log.debug("cannot tell the Slurm version (%s); assuming 22.05", exc)

    async def _allocate(self) -> None:
        spawned, self.early_holder = self.early_holder, None
        self.allocation = Allocation(
            holder.holder_argv(self.req), holder.holder_env(self.req, self.script_env),
            on_job_id=self._record_job_id, on_progress=lambda msg: self.notify_create("progress", msg=msg),
            on_queued=self._job_queued, spawned=spawned,
            read_ahead=self.quick.salloc_out if self.quick is not None else b"")
        try:
            job_env = await self.allocation.acquire()
        finally:
            if self._pending_watch is not None:
                self._pending_watch.cancel()
        if self.quick is None or not self.quick.created:
            self.job_granted(job_env)
        self._holder_watch = asyncio.ensure_future(self._watch_holder(self.allocation))

    async def _watch_holder(self, allocation: Allocation) -> None:
        """salloc ends before we release it when the job ends under us (scancel, time limit):
        the container stops, whatever its phase. When salloc itself was killed the job lives
        on: the container carries on, and the release at the end cancels the job."""
        proc = allocation.proc
        if proc is None:
            return
        # salloc says "revoked" and then waits for its holder command: either event counts.
        exited = asyncio.ensure_future(proc.wait())
        revoked = asyncio.ensure_future(allocation.revoked.wait())
        try:
            await asyncio.wait({exited, revoked}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in (exited, revoked):
                waiter.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await waiter
        if self.allocation is not allocation or self.stopping.is_set():
            return  # released by us, or already stopping
        if await allocation.was_revoked():
            reason = f"job {self.record.job_id} {allocation.end_cause}"
            self.log.error("%s", reason)
            self.job_ended_under_us = True
            self.request_stop(exit_code_for_signal(signal.SIGKILL), reason)
        else:
            self.log.warning("salloc, which held job %s, ended (%s); the job lives on and is cancelled when the "
                             "container ends", self.record.job_id, proc.returncode)

    def _job_queued(self, job_id: int) -> None:
        self._job_known(JobState.PENDING)
        self.save()
        self._pending_watch = asyncio.ensure_future(self._watch_pending(job_id))

    async def _watch_pending(self, job_id: int) -> None:
        """While the job waits, keep its reason current (one squeue for every pending job of this
        process, anchor/pendingpoll.py): `state` then answers from the record, with no slurmctld
        round trip of its own."""
        await PendingPoll.shared(self.slurm_env()).watch(job_id, self._pending_seen)

    def _pending_seen(self, info) -> None:
        if info.state == JobState.PENDING and info.reason != self.record.pending_reason:
            self._job_known(JobState.PENDING, reason=info.reason)
            self.save()

    async def _load_hooks(self) -> None:
        await asyncio.to_thread(self.load_hooks)

    async def _stage_in(self) -> None:
        await asyncio.to_thread(self.stage_in)

    # ------------------------------------------------------------------ stopping

    async def _finish(self, code: int, failed_create: bool = False) -> int:
        self.record.exit_code = code
        self.record.stopped_reason = self.stop_reason
        self.advance(Event.ENDED)  # saves the record, with the code and the reason
        if self.hooks is not None and self.stage_in_entered:
            if not self.lua_idle.is_set():
                self.log.info("waiting for stage_in to return before stage_out")
                await asyncio.to_thread(self.lua_idle.wait)
            try:
                await asyncio.to_thread(
                    self._lua_call, self.hooks.stage_out, self.req.id, self.record.bundle, self.record.orig_bundle,
                    self.record.root_path, self.record.orig_root_path, self.dir, self.req.config_file,
                    self.record.job_id or 0, self.identity.real_uid, self.identity.real_gid)
            except ScrunError as exc:
                self.log.error("%s", exc)
            if self.lua_cache is not None:  # after stage_out: the entry may be pruned now
                self.lua_cache.release()
        await self._release_allocation()
        self.close_stdio()
        self._close_stderr_dest()
        if self.pty_slave is not None:
            with contextlib.suppress(OSError):
                os.close(self.pty_slave)
            self.pty_slave = None
        if failed_create or self.ready_fd is not None:
            self.notify_create("error", msg=self.stop_reason or "container stopped before it was created")
        await self._version_known()  # not left pending at exit (see _create_phase)
        self.log.debug("anchor exits %d", code)
        return code

    async def _release_allocation(self) -> None:
        early, self.early_holder = self.early_holder, None
        if early is not None:  # never adopted (scrun.lua did not load): before create hears of it
            await asyncio.to_thread(holder.abandon, early, self.env)
        allocation, self.allocation = self.allocation, None  # first: the holder's watch sees it is ours
        if allocation is not None:
            await allocation.release(self.slurm_env())
            if allocation.revoked.is_set() and not allocation.final_state:
                # salloc said "revoked" without why (it may, as we release a job whose step ran
                # out of memory): Slurm's final state, not a guess.
                await allocation.learn_end_cause(self.slurm_env())
            # The job's own final state where we learned it (PREEMPTED, TIMEOUT …), else ours.
            ended = allocation.final_state or (JobState.COMPLETED if allocation.granted and not allocation.revoked.is_set()
                                               else JobState.CANCELLED)
            self._job_known(ended, reason="")
            self.save()
        if self._holder_watch is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._holder_watch, 5)
