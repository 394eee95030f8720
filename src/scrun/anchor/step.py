"""The container's step: launching it (srun --container), signalling it, waiting for its end,
and turning that end into the exit code and reason (core/stepend.py decides; this gathers).

A mixin of Anchor (anchor/service.py), like ControlServer: it uses the anchor's record,
request, stop and allocation.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time

from scrun.anchor.relay import relay_filtered, tell_user
from scrun.anchor.stepwake import wake_while_waiting
from scrun.core.exitcode import exit_code_from_returncode
from scrun.core.nodeguard import GUARD_SCRIPT_NAME
from scrun.core.phase import Event
from scrun.core.signals import signal_name
from scrun.core.stepend import StepEnd, node_failure_cause
from scrun.core.stepend import decide as decide_step_end
from scrun.errors import SlurmError
from scrun.slurm import argv as slurm_argv
from scrun.slurm.parse import parse_node_failure, parse_step_containers, parse_step_list
from scrun.slurm.runner import run_async, spawn_async

# After scancel, slurmd waits KillWait (≥5 s) before SIGKILL; give srun that and a margin.
STEP_STOP_TIMEOUT = 20.0
# "tasks started" comes when crun starts, not the container (StepControl._tasks_running): a settle,
# at least RUNTIME_SETTLE, and longer on a node slow to launch: SETTLE_SHARE of the launch's own
# time (srun spawned → tasks started), up to SETTLE_MAX. crun's set-up slows down with the launch
# (CI, three clusters on two cores: a trap not yet set 0.1 s after "tasks started"; once more
# with half the launch's time, on 26.05 in session 17's CI).
RUNTIME_SETTLE = 0.2
SETTLE_SHARE = 1.0
SETTLE_MAX = 1.5


def settle_after_start(launch: float) -> float:
    """How long after "tasks started" a signal waits, for a launch that took `launch` seconds."""
    return min(max(RUNTIME_SETTLE, SETTLE_SHARE * max(0.0, launch)), SETTLE_MAX)


class StepControl:
    async def _launch_step(self) -> None:
        if self.record.job_id is None:
            raise SlurmError("no job id known: the allocation did not complete")
        await self._version_known()
        size: tuple[int, int] | None = None
        if self.pty_slave is not None:
            self.resized_since_launch = False  # srun reads the size as it is now
            size = await self._console_size()
        config = self._bundle_config()  # read once for both: start is on the engine's critical path
        step_args, caller_prolog = slurm_argv.split_task_prolog(self.req.step_args)
        bundle, self.guard = self._node_bundle(size, config, then_run=caller_prolog, cdi_devices=await self._cdi_devices())
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
            # Its own session either way: the anchor's resizes and hangups are not srun's.
            self.srun = await spawn_async(
                argv, stdin=self.pty_slave, stdout=self.pty_slave, stderr=subprocess.PIPE, env=env, cwd=cwd,
                start_new_session=True, preexec_fn=None if self.resizes_via_anchor else become_controlling_terminal)
            os.close(self.pty_slave)  # srun holds it; the remote end closes when the step ends
            self.pty_slave = None
        else:
            stderr_dest = os.dup(self.stdio[2])
            self.srun = await spawn_async(
                argv, stdin=self.stdio[0], stdout=self.stdio[1], stderr=subprocess.PIPE, env=env, cwd=cwd)
        assert self.srun.stderr is not None
        self.launched_at = asyncio.get_running_loop().time()
        self.step_id = None  # this srun's, once it says
        self.stderr_dest = stderr_dest
        self._step_wake = asyncio.ensure_future(wake_while_waiting(self.srun.pid, self.tasks_started, self.log))
        self.stderr_relay = asyncio.ensure_future(
            relay_filtered(self.srun.stderr, stderr_dest, srun_verbose=True, on_tasks_started=self._tasks_have_started,
                           on_step_launched=self._step_launched, close_dest=False))
        # The step owns the container's stdio now; our copies would only delay EOF for conmon.
        self.close_stdio()
        self.record.step_started = time.time()
        self.start_requested.set()

    def _step_launched(self, step: str) -> None:
        self.step_id = step
        self.log.debug("srun launches step %s.%s", self.record.job_id, step)

    async def _step_ids(self) -> list[str]:
        """Ids of the container steps of our job: the one srun said it launches, else asked of
        slurmctld, by --container-id where Slurm has it (the name is only a label), else by step name."""
        if self.record.job_id is None:
            return []
        if self.step_id is not None:
            return [self.step_id]
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

    async def _signal_step(self, sig: int, srun_fallback: bool = True) -> bool:
        """Deliver `sig` to the container step; SIGKILL to the step only, never the whole job.
        False: no step was found, and srun was not signalled in its place (`srun_fallback`)."""
        assert self.record.job_id is not None
        steps: list[str] = []
        for _ in range(50):
            steps = await self._step_ids()
            if steps or self.srun is None or self.srun.returncode is not None:
                break
            await asyncio.sleep(0.05)  # srun forked but the step is not registered yet
        if not steps:
            if not srun_fallback:
                return False
            if self.srun is not None and self.srun.returncode is None:
                # No step registered yet: let srun deliver it. SIGKILL would kill srun alone and
                # orphan a step that is still launching; SIGTERM makes srun cancel the step (srun
                # turns TERM, HUP and QUIT into SIGKILL: never the path for a running step's signal).
                forward = signal.SIGTERM if sig == signal.SIGKILL else sig
                self.log.debug("no step registered yet; sending %s to srun", signal_name(forward))
                with contextlib.suppress(ProcessLookupError):
                    self.srun.send_signal(forward)
            return True
        for step in steps:
            argv = slurm_argv.build_scancel_argv("scancel", self.record.job_id, step=step, signal=sig)
            await run_async(argv, env=self.slurm_env(), timeout=30, check=False)
        return True

    def _tasks_have_started(self) -> None:
        loop = asyncio.get_running_loop()
        self.tasks_started_at = loop.time()
        self.tasks_started.set()
        self.advance(Event.TASKS_STARTED)
        if self.resizes_via_anchor:
            self._resizes_may_pass(loop)

    async def _tasks_running(self, timeout: float) -> None:
        """Until srun says the container's process runs, srun has ended, or `timeout` passed.

        srun says so when the node's runtime (`crun run`) has been started, not when the
        container's process runs: a signal that comes while crun still sets the container up is
        dropped, or reaches the shell before its trap (measured: 1 in 18 on 22.05; 24.11 too, in
        CI). Hence a settle after it (0 lost in 24 on 22.05 with 0.1 s)."""
        await self._wait_tasks_started(timeout)
        if self.tasks_started.is_set():
            wait = settle_after_start(self.tasks_started_at - self.launched_at)
            settle = self.tasks_started_at + wait - asyncio.get_running_loop().time()
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
