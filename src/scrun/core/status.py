"""Container statuses and which verbs each allows (youki's can_* table).

Plain strings, not an Enum: `state` runs on every `podman ps` and enum costs ~2 ms to import.
"""
from __future__ import annotations


class Status:
    """OCI statuses; CREATING is internal until the allocation and stage-in are done."""

    CREATING = "creating"
    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"
    ALL = (CREATING, CREATED, RUNNING, PAUSED, STOPPED)


def can_start(status: str) -> bool:
    return status == Status.CREATED


def can_kill(status: str) -> bool:
    # A pending job (creating) can be cancelled: upstream scrun cannot, we can.
    return status in (Status.CREATING, Status.CREATED, Status.RUNNING, Status.PAUSED)


def can_pause(status: str) -> bool:
    return status == Status.RUNNING


def can_resume(status: str) -> bool:
    return status == Status.PAUSED


def can_delete(status: str) -> bool:
    """Without --force: runc deletes created and stopped containers, refuses running and paused ones."""
    return status in (Status.CREATED, Status.STOPPED)
