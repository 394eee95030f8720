"""How the container step's end becomes the container's exit code and reason (pure).

The anchor gathers what it knows when srun has ended (anchor/service.py `_wait_step`): srun's
code, what the stderr filter saw, what salloc said of the job, whether a stop or a signal came
from us, what the node guard left. The rules are in the order they apply; each says why.
"""
from __future__ import annotations

import signal
from typing import NamedTuple

from scrun.core.jobstate import JobState
from scrun.core.exitcode import exit_code_for_signal, exit_code_from_returncode
from scrun.core.nodeguard import GUARD_KILLED, refusal_reason
from scrun.core.signals import signal_name

# The container never ran (its step failed to launch): not srun's 130, which reads as SIGINT;
# 255, which runc's callers take for the runtime's failure.
NEVER_STARTED_EXIT_CODE = 255
KILLED = exit_code_for_signal(signal.SIGKILL)

# Why a job ended under us, after "job N": salloc names the time limit and a node failure itself;
# for everything else it says only "revoked", and the job's final state (squeue) tells.
def node_failure_cause(node: str) -> str:
    """The stop reason's words (after "job N") for a job whose node failed (node "" if unknown)."""
    return f"lost its node{' ' + node if node else ''}: the node failed (slurmd stopped answering, SlurmdTimeout)"


CANCELLED_OUTSIDE = "was cancelled outside scrun (scancel by its user or an admin)"
TIME_LIMIT = "reached its time limit (SCRUN_TIMELIMIT, org.slurm.timelimit or the partition's)"
_JOB_END_WORDS = {
    JobState.CANCELLED: CANCELLED_OUTSIDE,
    JobState.PREEMPTED: ("was preempted: a job of a higher-priority partition took its resources (the cluster's "
                  "PreemptMode); run it again, or in a partition that is not preempted"),
    JobState.TIMEOUT: TIME_LIMIT,
    JobState.DEADLINE: "reached its deadline (--deadline) before it finished",
    JobState.NODE_FAIL: node_failure_cause(""),
    JobState.BOOT_FAIL: "lost its node: the node failed to boot",
    JobState.OUT_OF_MEMORY: "ran out of memory on its node; raise its memory limit (--memory, SCRUN_MEM_PER_NODE)",
}


def job_end_words(state: str) -> str:
    """squeue's final state of a job that ended under us → the stop reason's words after "job N"."""
    return _JOB_END_WORDS.get(state, f"ended outside scrun (Slurm's job state {state})" if state else CANCELLED_OUTSIDE)


class StepEnd(NamedTuple):
    returncode: int | None        # srun's (None: unknown)
    srun_ended: bool              # srun ended by itself, not because we stopped the step
    last_stderr: str              # the last line the container's stderr got
    step_cancelled: bool          # slurmstepd said the step was cancelled
    out_of_memory: bool           # slurmstepd saw the OOM killer in the step
    revoked: bool                 # salloc said the job was revoked (asked only when a rule needs it)
    end_cause: str                # salloc's words for why the job ended
    node_failure: str             # why the job lost its node ("lost its node X: …"), "" if it did not
    job_id: int | None
    stop_code: int | None         # a stop we requested, and its code
    stop_reason: str
    job_ended_under_us: bool      # that stop came from salloc (the job ended)
    refused: tuple[str, ...]      # nodes whose guard refused the step
    signalled: int | None         # the last signal `kill` sent to the step
    tasks_started: bool           # srun said the container's process runs


class Verdict(NamedTuple):
    code: int
    reason: str
    error: bool                   # the anchor logs the reason as an error


def decide(end: StepEnd) -> Verdict:
    code = exit_code_from_returncode(end.returncode if end.returncode is not None else 1)
    # A stop that came from the job's end (scancel, time limit, preemption) is news to the user.
    reason, error = end.stop_reason, end.job_ended_under_us
    if code == 0 and end.revoked:
        # srun may exit 0 when slurmctld cancels the job under it; the container did not finish.
        code, reason, error = KILLED, reason or f"job {end.job_id} {end.end_cause}", True
    if end.node_failure and (end.stop_code is None or end.job_ended_under_us):
        # srun exits 0 or 1 when the node dies (24.11 varies): the container was killed with it,
        # whether srun or salloc (whose stop then carries srun's code) told us first.
        code, reason, error = KILLED, f"job {end.job_id} {end.node_failure}", True
    if code == 0 and end.step_cancelled and end.srun_ended and end.stop_code is None:
        # srun exits 0 when the step alone is cancelled (24.11; 26.05 while its tasks launch): the
        # container did not finish.
        code, reason, error = KILLED, f"step of job {end.job_id} was cancelled outside scrun", True
    if end.stop_code is not None and not end.srun_ended:
        code = end.stop_code
    if code and end.refused:
        code, reason, error = NEVER_STARTED_EXIT_CODE, refusal_reason(list(end.refused)), True
    elif code and end.signalled is not None and GUARD_KILLED in end.last_stderr:
        # The signal reached the step while the guard ran, before the container's process
        # existed: slurmstepd reports the prolog's failure (exit 1); the signal ended it.
        code, reason = exit_code_for_signal(end.signalled), f"killed by {signal_name(end.signalled)} before its process started"
    elif code and end.srun_ended and end.stop_code is None and not end.tasks_started:
        # srun ended before any task ran: the node could not launch the step (it cannot see the
        # bundle, slurmstepd refused it …). srun then exits 130, which engines read as SIGINT.
        reason = (f"the container never started: its step failed to launch on its node (srun exited {code})"
                  + (f": {end.last_stderr}" if end.last_stderr else ""))
        code, error = NEVER_STARTED_EXIT_CODE, True
    if code and end.out_of_memory and not reason:
        reason, error = (f"the container ran out of memory: the kernel's OOM killer ended it on its node (exit {code}); "
                         "raise its memory limit (--memory, SCRUN_MEM_PER_NODE)"), True
    if code and not reason:
        # The node's runtime and the container share this stream: the last line is the
        # runtime's reason when it refused the container, the container's own otherwise.
        reason = f"exit code {code}" + (f"; last stderr line: {end.last_stderr}" if end.last_stderr else "")
    return Verdict(code, reason, error)
