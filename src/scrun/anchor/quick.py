"""create's quick path: the container created before the anchor's event loop exists.

With salloc started at the hand-over (holder.spawn_early), the last thing create waited for was
the forked anchor's import of asyncio (~25 ms after the hand-over, on this VM): salloc is
granted ~12 ms after it starts and a scrun.lua loads in ~2 ms. So the anchor's main thread
does the create phase itself, with blocking calls, while the import goes on in its thread:
load scrun.lua, read the grant from salloc's stdout, stage_in, bind the control socket, tell
create. The loop takes over from there (service.Anchor with `quick`).

Anything but the quick case leaves the rest to the loop, which then carries on as it always did:
a job not granted within QUICK_GRANT (pending: the loop reports progress and refreshes the
reason), salloc failing (the loop reads why from its stderr), a signal (the loop stops the
container), an error in Lua or after it (the loop fails the create, with the same clean-up).
"""
from __future__ import annotations

import os
import select
import signal
import time

from scrun.core.phase import Event
from scrun.slurm.argv import HOLDER_READY_MARK
from scrun.slurm.parse import parse_holder_env

TYPE_CHECKING = False  # not typing's (see holder)
if TYPE_CHECKING:
    import socket
    import subprocess

    from scrun.anchor.container import Container

# How long the quick path waits for the grant before the loop takes over (and reports a
# pending job's progress to create, as before).
QUICK_GRANT = 1.0
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class QuickCreate:
    """How far the quick path got, for the loop to carry on from."""

    def __init__(self) -> None:
        self.salloc_out = b""                    # salloc's stdout read so far (the job's environment)
        self.lua_error: BaseException | None = None  # scrun.lua did not load: raised before the job is used
        self.error: BaseException | None = None  # failed after the grant: raised once the loop holds the job
        self.sock: socket.socket | None = None   # the control socket, bound before create was told
        self.created = False                     # create was told: the container is created
        self.signals: list[int] = []             # stop signals that came meanwhile
        # `srun --version`, started here so that the step (start) finds its answer in: the loop
        # adopts it (Anchor._detect_slurm_version).
        self.version_probe: subprocess.Popen | None = None


def create_quickly(container: Container, salloc: subprocess.Popen) -> QuickCreate:
    quick = QuickCreate()
    container.record_anchor()  # first: `state`, and whoever signals the anchor, read its pid there
    for sig in _STOP_SIGNALS if not container.served else ():  # noted; the loop's handlers replace these
        signal.signal(sig, lambda signum, _frame: quick.signals.append(signum))
    if container.has_hooks:
        try:
            container.load_hooks()
        except Exception as exc:
            quick.lua_error = exc
            return quick
    quick.version_probe = _probe_version(container)
    job_env = _read_grant(salloc, quick)
    if job_env is None or quick.signals:
        return quick
    try:
        if job_env.get("SLURM_JOB_ID", "").isdigit():
            container.record.job_id = int(job_env["SLURM_JOB_ID"])
        container.job_granted(job_env)
        container.save()
        if container.has_hooks:
            container.stage_in()
            if quick.signals:
                return quick
        quick.sock = container.bind_socket()
        container.advance(Event.CREATED)
    except Exception as exc:
        quick.error = exc
        return quick
    container.notify_create("created", pid=container.engine_pid)
    quick.created = True
    return quick


def _read_grant(salloc: subprocess.Popen, quick: QuickCreate) -> dict[str, str] | None:
    """The holder's SLURM_* environment, once salloc has printed it; None if it has not within
    QUICK_GRANT, or salloc ended, or a stop signal came (what was read stays in quick.salloc_out)."""
    assert salloc.stdout is not None
    fd = salloc.stdout.fileno()
    deadline = time.monotonic() + QUICK_GRANT
    # poll, not select: in an anchor server holding a hundred containers the fd is above 1024.
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    while HOLDER_READY_MARK not in quick.salloc_out:
        left = deadline - time.monotonic()
        if left <= 0 or quick.signals:
            return None
        if not poller.poll(min(left, 0.05) * 1000):
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            return None  # salloc ended: the loop reads why on its stderr
        quick.salloc_out += chunk
    return parse_holder_env(quick.salloc_out[: quick.salloc_out.index(HOLDER_READY_MARK)])


def _probe_version(container: Container) -> subprocess.Popen | None:
    import subprocess

    from scrun.slurm.runner import spawn

    try:
        return spawn([container.req.srun_path, "--version"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                     stderr=subprocess.DEVNULL, env=container.env)
    except OSError:
        return None  # the loop runs it again, and says why it cannot
