"""Slurm's job states, as squeue's %T prints them, and the groups scrun decides by.

Plain strings (as core/status.py): they are compared with squeue's text and kept in the record.
"""
from __future__ import annotations


class JobState:
    PENDING = "PENDING"
    CONFIGURING = "CONFIGURING"
    RUNNING = "RUNNING"
    SUSPENDED = "SUSPENDED"
    COMPLETING = "COMPLETING"
    RESIZING = "RESIZING"
    REQUEUED = "REQUEUED"
    REQUEUE_HOLD = "REQUEUE_HOLD"
    REQUEUE_FED = "REQUEUE_FED"
    SIGNALING = "SIGNALING"
    STAGE_OUT = "STAGE_OUT"
    STOPPED = "STOPPED"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"
    FAILED = "FAILED"
    TIMEOUT = "TIMEOUT"
    NODE_FAIL = "NODE_FAIL"
    PREEMPTED = "PREEMPTED"
    BOOT_FAIL = "BOOT_FAIL"
    DEADLINE = "DEADLINE"
    OUT_OF_MEMORY = "OUT_OF_MEMORY"
    SPECIAL_EXIT = "SPECIAL_EXIT"


# States that still hold (or will hold) the allocation: an orphaned job in one of them is live.
LIVE = frozenset({JobState.PENDING, JobState.CONFIGURING, JobState.RUNNING, JobState.SUSPENDED, JobState.COMPLETING,
                  JobState.RESIZING, JobState.REQUEUED, JobState.SIGNALING, JobState.STAGE_OUT, JobState.STOPPED})
# States a job that ended under us passes through before its final one (squeue shows the flag).
NOT_FINAL = LIVE | {JobState.REQUEUE_HOLD, JobState.REQUEUE_FED}
