"""--pid-file of create and exec: the pid the engine waits on."""
from __future__ import annotations

from scrun.errors import InvalidInputError


def write_pid_file(path: str, pid: int) -> None:
    """Atomically, without a trailing newline (docker reads it that way)."""
    from scrun.store.records import write_text_atomic

    try:
        write_text_atomic(path, str(pid), mode=0o644)
    except OSError as exc:
        raise InvalidInputError(f"--pid-file {path}: cannot write: {exc.strerror}") from None
