"""Container id validation (runc's rule)."""
from __future__ import annotations

from scrun.errors import InvalidInputError

# runc accepts ^[\w+\-.]+$ (ASCII); "." and ".." would escape or alias the root directory.
# A set, not a regex: `state` must not pay for importing re.
_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_+-.")
MAX_ID_LENGTH = 1024


def validate_container_id(container_id: str) -> str:
    """Return the id if it is valid, else raise InvalidInputError.

    Allowed: letters, digits, `_`, `+`, `-`, `.`; not empty, not `.` or `..`, at most 1024 chars.
    """
    if not container_id:
        raise InvalidInputError("container id is empty: pass a non-empty id")
    if container_id in (".", "..") or not _ID_CHARS.issuperset(container_id) or len(container_id) > MAX_ID_LENGTH:
        raise InvalidInputError(
            f"invalid container id {container_id!r}: use letters, digits, '_', '+', '-', '.' (not '.' or '..')"
        )
    return container_id


def step_name_for(container_id: str) -> str:
    """Name of the container's srun step; scrun finds its step by it (22.05 has no --container-id)."""
    return f"scrun:{container_id}"[:64]


def default_job_name(container_id: str, annotations: dict[str, str]) -> str:
    """`scrun:<container name>` when the engine says it, else `scrun:<first 12 of the id>`."""
    for key in ("io.podman.annotations.container.name", "io.kubernetes.cri.container-name",
                "org.opencontainers.image.ref.name", "io.container.manager.name"):
        name = annotations.get(key)
        if name:
            # An image's annotation may hold anything: Slurm echoes job names, keep them one line.
            name = "".join(c if c.isprintable() else "?" for c in name)
            return f"scrun:{name}"[:64]
    return f"scrun:{container_id[:12]}"
