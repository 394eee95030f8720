"""The anchor's life as one table: which event moves which phase where (pure).

    creating ──created──▶ created ──launch──▶ starting ──tasks_started──▶ running ◀─resume─┐
        │                    │                    │                          │ └──pause──▶ paused
        └───────────── ended ┴─────────── ended ──┴─────────────── ended ────┴──────ended──┴──▶ stopped

- creating: the allocation is requested, pending or granted, scrun.lua's stage_in runs.
- created:  the job is ours and the bundle staged; waiting for `start`.
- starting: `start` was accepted: the step is being launched (srun spawned, the guard runs,
            the node's runtime sets the container up). The OCI status is already running.
- running:  srun said the container's process runs on its node (signals can reach it).
- paused:   `pause` stopped the step's processes (SIGSTOP through Slurm); `resume` continues them.
- stopped:  the exit code is known (the anchor then stages out and releases the job).

A stop request (kill before start, delete, salloc saying the job ended, a signal to the anchor)
is not a phase: it is an input that makes the phase end ("ended"). Plain strings, not an Enum,
for the same reason as core/status.py: `state` imports this on every `podman ps`.
"""
from __future__ import annotations

from scrun.core.status import Status


class Phase:
    CREATING = "creating"
    CREATED = "created"
    STARTING = "starting"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"
    ALL = (CREATING, CREATED, STARTING, RUNNING, PAUSED, STOPPED)


class Event:
    CREATED = "created"              # allocation granted, stage_in done: create returns
    LAUNCH = "launch"                # `start` accepted
    TASKS_STARTED = "tasks_started"  # srun: the container's process runs on its node
    PAUSE = "pause"                  # the step's processes were stopped
    RESUME = "resume"                # and continued
    ENDED = "ended"                  # the exit code is known, whatever the phase was


TRANSITIONS: dict[tuple[str, str], str] = {
    (Phase.CREATING, Event.CREATED): Phase.CREATED,
    (Phase.CREATING, Event.ENDED): Phase.STOPPED,        # create failed, or killed while pending
    (Phase.CREATED, Event.LAUNCH): Phase.STARTING,
    (Phase.CREATED, Event.ENDED): Phase.STOPPED,         # killed or deleted before start
    (Phase.STARTING, Event.TASKS_STARTED): Phase.RUNNING,
    (Phase.STARTING, Event.ENDED): Phase.STOPPED,        # the step never launched, or was stopped
    (Phase.RUNNING, Event.ENDED): Phase.STOPPED,
    (Phase.RUNNING, Event.PAUSE): Phase.PAUSED,
    (Phase.PAUSED, Event.RESUME): Phase.RUNNING,
    (Phase.PAUSED, Event.ENDED): Phase.STOPPED,          # killed while paused (SIGKILL needs no CONT)
}

# What `state` shows (the OCI status) in each phase.
STATUS_OF = {
    Phase.CREATING: Status.CREATING,
    Phase.CREATED: Status.CREATED,
    Phase.STARTING: Status.RUNNING,
    Phase.RUNNING: Status.RUNNING,
    Phase.PAUSED: Status.PAUSED,
    Phase.STOPPED: Status.STOPPED,
}


class IllegalTransition(Exception):
    """An event the phase does not allow: a bug in the anchor, never the user's input."""


def advance(phase: str, event: str) -> str:
    try:
        return TRANSITIONS[(phase, event)]
    except KeyError:
        raise IllegalTransition(f"event {event!r} in phase {phase!r}") from None
