"""srun's stderr to the container's: the container's bytes, without srun's own status lines."""
from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import NamedTuple


class RelayResult(NamedTuple):
    last_line: str        # the last line passed on
    step_cancelled: bool  # slurmstepd said the step was cancelled (its line is not passed on)
    out_of_memory: bool = False  # slurmstepd saw the kernel's OOM killer in the step (its line passes)


async def relay_filtered(reader: asyncio.StreamReader, dest_fd: int, *, srun_verbose: bool = False,
                         on_tasks_started: Callable[[], None] | None = None,
                         on_step_launched: Callable[[str], None] | None = None, close_dest: bool = True) -> RelayResult:
    """srun's stderr → the container's stderr, minus srun's status lines (core.stderrfilter).

    Returns the last line it passed: when the node's runtime refuses the container (crun: an
    AppArmor profile the node lacks, a mount it cannot make) that line is its reason.
    `on_tasks_started` is called once, when srun (run with --verbose) says the step's tasks run;
    `on_step_launched` once with the step's id, when srun says it launches it.
    close_dest=False leaves dest_fd open for the caller's last word (tell_user).
    """
    from scrun.core.stderrfilter import OUT_OF_MEMORY, TAIL_BYTES, StderrFilter, last_line

    filt = StderrFilter(srun_verbose=srun_verbose)
    tail = b""

    def write_all(data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(dest_fd, view):]

    try:
        while True:
            chunk = await reader.read(65536)
            data = filt.feed(chunk) if chunk else filt.flush()
            if filt.step_id is not None and on_step_launched is not None:
                on_step_launched(filt.step_id)
                on_step_launched = None
            if filt.tasks_started and on_tasks_started is not None:
                on_tasks_started()
                on_tasks_started = None
            if data:
                tail = (tail + data)[-TAIL_BYTES:]  # the end of what passed, newlines kept
                await asyncio.to_thread(write_all, data)
            if not chunk:
                break
    except OSError:
        pass  # the reader of the container's stderr went away
    finally:
        if close_dest:
            os.close(dest_fd)
    return RelayResult(last_line(tail).decode(errors="replace").strip(), filt.step_cancelled,
                       bool(OUT_OF_MEMORY.search(tail)))


def tell_user(dest_fd: int, line: str) -> None:
    """One line of scrun's own on the container's stderr, where its user looks (podman run's
    terminal, docker logs): why the container ended when it was not its own doing."""
    data = f"scrun: {line}\n".encode(errors="replace")
    try:
        while data:
            data = data[os.write(dest_fd, data):]
    except OSError:
        pass  # nobody reads the container's stderr any more
