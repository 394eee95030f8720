"""The anchor: one asyncio process per container, alive exactly as long as the container.

Its pid is the container's pid (pid file, `state`); conmon or containerd-shim reap it and take
its exit status as the container's. Life:

  creating  salloc holds a new allocation (or SLURM_JOB_ID names an existing one); Lua stage_in
  created   `create` returns; waiting for `start`
  running   srun --container … -- process.args, with the container's stdio
  stopped   srun ended (exit N → N, signal S → 128+S); stage_out; the allocation is released

Stop requests (kill before start, delete --force, SIGTERM/SIGINT/SIGHUP) end any phase and
always run the same clean-up: stop the step, stage_out, release the allocation.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from typing import TYPE_CHECKING

from scrun.anchor import holder
from scrun.anchor.allocation import Allocation, node_failure_cause
from scrun.anchor.container import Container
from scrun.anchor.control import ControlServer
from scrun.anchor.nodeside import NodeSide
from scrun.anchor.relay import relay_filtered, tell_user
from scrun.anchor.stepwake import wake_while_waiting
from scrun.core.exitcode import exit_code_for_signal, exit_code_from_returncode
from scrun.core.nodeguard import GUARD_SCRIPT_NAME
from scrun.core.signals import signal_name
from scrun.core.stepend import StepEnd
from scrun.core.stepend import decide as decide_step_end
from scrun.core.status import Status
from scrun.errors import ScrunError, SlurmError
from scrun.slurm import argv as slurm_argv
from scrun.slurm.parse import parse_job_info, parse_node_failure, parse_slurm_version, parse_step_containers, parse_step_list
from scrun.slurm.runner import adopt_async, run_async, spawn_async
from scrun.store.records import SOCKET_NAME

if TYPE_CHECKING:
    from scrun.anchor.quick import QuickCreate

# After scancel, slurmd waits KillWait (≥5 s) before SIGKILL; give srun that and a margin.
STEP_STOP_TIMEOUT = 20.0
# "tasks started" comes when crun starts, not the container (Anchor._tasks_running): a settle.
RUNTIME_SETTLE = 0.1
# How often a pending job's reason is refreshed (one squeue per pending container).
PENDING_REFRESH = 5.0


class Anchor(ControlServer, NodeSide, Container):
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
        self.stderr_relay: asyncio.Future | None = None
        self.stderr_dest: int | None = None  # the container's stderr, ours until the verdict is told
        self.tasks_started = asyncio.Event()  # srun said the container's process runs on its node
        self.tasks_started_at = 0.0           # when (the loop's clock)
        self._resend_task: asyncio.Future | None = None
        self._step_wake: asyncio.Future | None = None  # stepwake: srun left waiting for its step
        self.launching = False
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
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
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
            self.set_status(Status.CREATED)
            self.notify_create("created", pid=os.getpid())
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
                self._job_known("RUNNING", nodes=self.job_env.get("SLURM_JOB_NODELIST", ""))  # create checked it
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

    def _setup_terminal(self) -> None:
        """Early, as runc does: conmon waits for the master before create returns."""
        from scrun.anchor.terminal import open_pty, send_master

        assert self.req.console_socket is not None
        master, slave, name = open_pty(self.req.console_size)
        try:
            send_master(self.req.console_socket, master, name)
        finally:
            os.close(master)  # the engine owns the master now
        self.pty_slave = slave
        self.log.debug("terminal %s sent to %s", name, self.req.console_socket)
        # With a terminal the container's stdio is the pty, never create's: keeping create's
        # stdout would hold containerd's shim, which reads it to EOF before it calls start.
        self.close_stdio()

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
        self._job_known("PENDING")
        self.save()
        self._pending_watch = asyncio.ensure_future(self._watch_pending(job_id))

    async def _watch_pending(self, job_id: int) -> None:
        """While the job waits, keep its reason current (squeue every PENDING_REFRESH seconds):
        `state` then answers from the record, with no slurmctld round trip of its own."""
        while True:
            try:
                _, out, _ = await run_async(slurm_argv.build_job_info_argv("squeue", [job_id]), env=self.slurm_env(),
                                            timeout=30, check=False)
            except SlurmError:
                out = b""
            info = parse_job_info(out.decode(errors="replace")).get(job_id)
            if info is not None and info.state == "PENDING" and info.reason != self.record.pending_reason:
                self._job_known("PENDING", reason=info.reason)
                self.save()
            await asyncio.sleep(PENDING_REFRESH)

    async def _load_hooks(self) -> None:
        await asyncio.to_thread(self.load_hooks)

    async def _stage_in(self) -> None:
        await asyncio.to_thread(self.stage_in)

    # ------------------------------------------------------------------ running

    async def _launch_step(self) -> None:
        if self.record.job_id is None:
            raise SlurmError("no job id known: the allocation did not complete")
        await self._version_known()
        size: tuple[int, int] | None = None
        if self.pty_slave is not None:
            from scrun.anchor.terminal import get_size

            rows, cols = get_size(self.pty_slave)
            size = (rows, cols) if rows and cols else None
        config = self._bundle_config()  # read once for both: start is on the engine's critical path
        step_args, caller_prolog = slurm_argv.split_task_prolog(self.req.step_args)
        bundle, self.guard = self._node_bundle(size, config, then_run=caller_prolog)
        if self.guard is None:
            step_args = self.req.step_args
        argv = slurm_argv.build_srun_argv(
            self.req.srun_path, self.req.srun_args, job_id=self.record.job_id, step_name=self.req.step_name,
            container_id=self.req.id, bundle=bundle, step_args=step_args,
            pty=self.req.terminal, args=self._node_command(config), slurm_version=self.slurm_version, verbose=True,
            guard=self.guard, guard_prolog=os.path.join(self.guard, GUARD_SCRIPT_NAME) if self.guard else None)
        self.log.debug("launching: %s", argv)
        # "/": the step's working directory on the node (the container has its own process.cwd).
        # Not the bundle: in rootless docker its path resolves through rootlesskit's copy-up
        # (/run/.ro<N>/…), which no node has, and 24.11's slurmstepd fails the step on it.
        cwd = "/"
        env = self.slurm_env()
        if self.pty_slave is not None:
            from scrun.anchor.terminal import become_controlling_terminal

            if size:
                env.update(SLURM_PTY_WIN_ROW=str(size[0]), SLURM_PTY_WIN_COL=str(size[1]))
            # srun's own messages go to the terminal too, after filtering (a fresh open file
            # description, so nothing we do to it affects srun's stdin/stdout).
            stderr_dest = os.open(os.ttyname(self.pty_slave), os.O_WRONLY | os.O_NOCTTY)
            self.srun = await spawn_async(
                argv, stdin=self.pty_slave, stdout=self.pty_slave, stderr=subprocess.PIPE, env=env, cwd=cwd,
                start_new_session=True, preexec_fn=become_controlling_terminal)
            os.close(self.pty_slave)  # srun holds it; the remote end closes when the step ends
            self.pty_slave = None
        else:
            stderr_dest = os.dup(self.stdio[2])
            self.srun = await spawn_async(
                argv, stdin=self.stdio[0], stdout=self.stdio[1], stderr=subprocess.PIPE, env=env, cwd=cwd)
        assert self.srun.stderr is not None
        self.stderr_dest = stderr_dest
        self._step_wake = asyncio.ensure_future(wake_while_waiting(self.srun.pid, self.tasks_started, self.log))
        self.stderr_relay = asyncio.ensure_future(
            relay_filtered(self.srun.stderr, stderr_dest, srun_verbose=True, on_tasks_started=self._tasks_have_started,
                           close_dest=False))
        # The step owns the container's stdio now; our copies would only delay EOF for conmon.
        self.close_stdio()
        self.record.step_started = time.time()
        self.set_status(Status.RUNNING)
        self.start_requested.set()

    async def _step_ids(self) -> list[str]:
        """Ids of the running container steps of our job: by --container-id where Slurm has
        it (the name is only a label), else by step name."""
        if self.record.job_id is None:
            return []
        await self._version_known()
        by_container_id = slurm_argv.finds_step_by_container_id(self.slurm_version)
        if by_container_id:
            argv = slurm_argv.build_step_show_argv("scontrol", self.record.job_id)
        else:
            argv = slurm_argv.build_step_list_argv("squeue", self.record.job_id)
        try:
            _, out, _ = await run_async(argv, env=self.slurm_env(), timeout=30, check=False)
        except SlurmError:
            return []
        if by_container_id:
            steps = [step for step, cid in parse_step_containers(out.decode()) if cid == self.req.id]
        else:
            steps = [step for step, name in parse_step_list(out.decode()) if name == self.req.step_name]
        self.log.debug("container steps %s found by %s", steps, "--container-id" if by_container_id else "step name")
        return steps

    async def _signal_step(self, sig: int) -> None:
        """Deliver `sig` to the container step; SIGKILL to the step only, never the whole job."""
        assert self.record.job_id is not None
        steps: list[str] = []
        for _ in range(50):
            steps = await self._step_ids()
            if steps or self.srun is None or self.srun.returncode is not None:
                break
            await asyncio.sleep(0.05)  # srun forked but the step is not registered yet
        if not steps:
            if self.srun is not None and self.srun.returncode is None:
                # No step registered yet: let srun deliver it. SIGKILL would kill srun alone and
                # orphan a step that is still launching; SIGTERM makes srun cancel the step.
                forward = signal.SIGTERM if sig == signal.SIGKILL else sig
                self.log.debug("no step registered yet; sending %s to srun", signal_name(forward))
                with contextlib.suppress(ProcessLookupError):
                    self.srun.send_signal(forward)
            return
        for step in steps:
            argv = slurm_argv.build_scancel_argv("scancel", self.record.job_id, step=step, signal=sig)
            await run_async(argv, env=self.slurm_env(), timeout=30, check=False)

    def _tasks_have_started(self) -> None:
        self.tasks_started_at = asyncio.get_running_loop().time()
        self.tasks_started.set()

    async def _tasks_running(self, timeout: float) -> None:
        """Until srun says the container's process runs, srun has ended, or `timeout` passed.

        srun says so when the node's runtime (`crun run`) has been started, not when the
        container's process runs: a signal that comes while crun still sets the container up is
        dropped, or reaches the shell before its trap (measured: 1 in 18 on 22.05; 24.11 too, in
        CI). Hence a settle after it (0 lost in 24 on 22.05 with 0.1 s)."""
        await self._wait_tasks_started(timeout)
        if self.tasks_started.is_set():
            settle = self.tasks_started_at + RUNTIME_SETTLE - asyncio.get_running_loop().time()
            if settle > 0:
                await asyncio.sleep(settle)

    async def _wait_tasks_started(self, timeout: float) -> None:
        if self.tasks_started.is_set() or self.srun is None:
            return
        started = asyncio.ensure_future(self.tasks_started.wait())
        ended = asyncio.ensure_future(self.srun.wait())
        try:
            await asyncio.wait({started, ended}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in (started, ended):
                waiter.cancel()
        if not self.tasks_started.is_set():
            self.log.debug("the step's tasks have not started after %.1fs; signalling it anyway", timeout)

    async def _wait_step(self) -> int:
        assert self.srun is not None
        waiter = asyncio.ensure_future(self.srun.wait())
        stop = asyncio.ensure_future(self.stopping.wait())
        done, _ = await asyncio.wait({waiter, stop}, return_when=asyncio.FIRST_COMPLETED)
        if waiter not in done:
            await self._stop_step(waiter)
        self.record.step_ended = time.time()  # saved with the exit code, in _finish
        stop.cancel()
        if self._step_wake is not None:
            self._step_wake.cancel()
        last_stderr, step_cancelled, out_of_memory = "", False, False
        if self.stderr_relay is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                last_stderr, step_cancelled, out_of_memory = await asyncio.wait_for(self.stderr_relay, 10)
        code = exit_code_from_returncode(self.srun.returncode if self.srun.returncode is not None else 1)
        allocation = self.allocation
        srun_says_lost = parse_node_failure(last_stderr)
        # salloc's word is awaited only where a rule asks for it (it may wait 0.3 s for salloc).
        revoked = allocation is not None and (code == 0 or bool(srun_says_lost)) and await allocation.was_revoked()
        lost = allocation.node_failure if allocation is not None else None
        if not lost and revoked:
            # srun's line can come first; the container could print it too: salloc's revocation decides.
            lost = srun_says_lost
        stop_reason, end_cause = self.stop_reason, ""
        if allocation is not None and (self.job_ended_under_us or revoked):
            # salloc may say "revoked" before why (24.11: the time limit's own line after it), or
            # not say why at all (preempted, cancelled): the job's final state then tells.
            end_cause = await allocation.learn_end_cause(self.slurm_env())
            if self.job_ended_under_us:
                stop_reason = f"job {self.record.job_id} {end_cause}"
        verdict = decide_step_end(StepEnd(
            returncode=self.srun.returncode, srun_ended=waiter in done, last_stderr=last_stderr,
            step_cancelled=step_cancelled, out_of_memory=out_of_memory, revoked=revoked,
            end_cause=end_cause, job_id=self.record.job_id,
            node_failure=node_failure_cause(lost) if lost else "", stop_code=self.stop_code,
            stop_reason=stop_reason, job_ended_under_us=self.job_ended_under_us,
            refused=tuple(self._guard_refusals(self.guard)), signalled=self.signalled,
            tasks_started=self.tasks_started.is_set()))
        code = verdict.code
        if verdict.reason != self.stop_reason:
            self.stop_reason = verdict.reason
            (self.log.error if verdict.error else self.log.debug)("%s", verdict.reason)
        if verdict.error and self.stderr_dest is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.to_thread(tell_user, self.stderr_dest, verdict.reason), 2)
        self._close_stderr_dest()
        self.log.info("container step ended with exit code %d%s", code,
                      f" (last stderr line: {last_stderr})" if code and last_stderr else "")
        return code

    def _close_stderr_dest(self) -> None:
        fd, self.stderr_dest = self.stderr_dest, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    async def _stop_step(self, waiter: asyncio.Future) -> None:
        """End the step for good: SIGKILL, again, then cancel it; srun itself only as a last resort.

        A step that is still launching its tasks drops a signal (seen: scancel --signal=9 right
        after start, and the container lived on); cancelling the step is enforced by Slurm.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STEP_STOP_TIMEOUT
        attempt = 0
        while loop.time() < deadline:
            if attempt < 2:
                await self._signal_step(signal.SIGKILL)
            else:
                await self._cancel_steps()
            attempt += 1
            try:
                await asyncio.wait_for(asyncio.shield(waiter), 1.0 if attempt <= 2 else 5.0)
                return
            except TimeoutError:
                self.log.debug("srun still running after stop attempt %d", attempt)
        self.log.error("srun did not end %ss after the step was cancelled; killing srun", STEP_STOP_TIMEOUT)
        with contextlib.suppress(ProcessLookupError):
            assert self.srun is not None
            self.srun.kill()
        await waiter

    async def _cancel_steps(self) -> None:
        assert self.record.job_id is not None
        for step in await self._step_ids():
            await run_async(slurm_argv.build_scancel_argv("scancel", self.record.job_id, step=step),
                            env=self.slurm_env(), timeout=30, check=False)

    async def _resend_kill(self) -> None:
        """After a user's SIGKILL: if the step was still launching, deliver it again."""
        for _ in range(3):
            await asyncio.sleep(1.0)
            if self.srun is None or self.srun.returncode is not None:
                return
            await self._signal_step(signal.SIGKILL)

    # ------------------------------------------------------------------ stopping

    async def _finish(self, code: int, failed_create: bool = False) -> int:
        self.record.status = Status.STOPPED
        self.record.exit_code = code
        self.record.stopped_reason = self.stop_reason
        self.save()
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
            ended = "COMPLETED" if allocation.granted and not allocation.revoked.is_set() else "CANCELLED"
            self._job_known(ended, reason="")
            self.save()
        if self._holder_watch is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._holder_watch, 5)
