"""Container statuses and which verbs each allows (youki's can_* table)."""
from __future__ import annotations

import enum


class Status(str, enum.Enum):
    """OCI statuses; CREATING is internal until the allocation and stage-in are done."""

    CREATING = "creating"
    CREATED = "created"
    RUNNING = "running"
    STOPPED = "stopped"

    def can_start(self) -> bool:
        return self is Status.CREATED

    def can_kill(self) -> bool:
        # A pending job (creating) can be cancelled: upstream scrun cannot, we can.
        return self in (Status.CREATING, Status.CREATED, Status.RUNNING)

    def can_delete(self) -> bool:
        """Without --force: runc deletes created and stopped containers, refuses running ones."""
        return self in (Status.CREATED, Status.STOPPED)
