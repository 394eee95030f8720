"""The one place scrun runs Slurm commands: logs the argv, maps failures to SlurmError.

Every Slurm client goes through slurm_command(), which (inside rootless podman's user
namespace) makes it run with the real ids: see core.identity.
"""
from __future__ import annotations

import functools
import shlex
import subprocess
from collections.abc import Mapping, Sequence

from scrun.errors import SlurmError
from scrun.log import DEBUG2, get_logger

TYPE_CHECKING = False  # not typing's: the anchor imports this before asyncio and typing
if TYPE_CHECKING:  # asyncio is imported where it is used: spawn() runs before the anchor has it
    import asyncio
    from typing import Any


def _describe(argv: Sequence[str]) -> str:
    return shlex.join(argv)


@functools.cache
def _prefix() -> tuple[str, ...]:
    from scrun.config.paths import read_identity
    from scrun.core.identity import slurm_command_prefix

    return tuple(slurm_command_prefix(read_identity()))


@functools.cache
def _real_uid() -> int:
    from scrun.config.paths import read_identity

    return read_identity().real_uid


def slurm_command(argv: Sequence[str]) -> list[str]:
    """The argv that runs a Slurm client as the real user (unchanged outside a user namespace).

    scancel only ever acts on the real user's own jobs (`--user`, which scancel combines with
    the job ids): every id scrun cancels comes from a record or from Slurm's output, and root's
    scrun must not end another user's job whatever id it was led to (a job id parsed from text a
    container or its config could shape, a record written by someone else)."""
    if argv and argv[0].rpartition("/")[2] == "scancel":
        argv = [argv[0], f"--user={_real_uid()}", *argv[1:]]
    return [*_prefix(), *argv]


async def spawn_async(argv: Sequence[str], **kwargs: Any) -> asyncio.subprocess.Process:
    """Start a long-running Slurm command (salloc, the container's srun) for the anchor.

    A missing command raises FileNotFoundError (the caller decides: 127 for the container's srun).
    """
    import asyncio

    get_logger().log(DEBUG2, "spawn: %s", _describe(argv))
    return await asyncio.create_subprocess_exec(*slurm_command(argv), **kwargs)


def spawn(argv: Sequence[str], **kwargs: Any) -> subprocess.Popen:
    """spawn_async() before there is an event loop (the anchor's salloc, while asyncio still
    imports); adopt_async() hands the process to the loop afterwards."""
    return subprocess.Popen(slurm_command(argv), **kwargs)


class AdoptedProcess:
    """A subprocess.Popen started before the loop, as the anchor uses asyncio's Process:
    stdin (closed to end it), stdout/stderr as StreamReaders, wait(), returncode, signals."""

    def __init__(self, popen: subprocess.Popen, stdout: asyncio.StreamReader | None,
                 stderr: asyncio.StreamReader | None, exited: asyncio.Future):
        self.popen, self.pid = popen, popen.pid
        self.stdin, self.stdout, self.stderr = popen.stdin, stdout, stderr
        self._exited = exited

    @property
    def returncode(self) -> int | None:
        return self.popen.returncode

    async def wait(self) -> int:
        import asyncio

        await asyncio.shield(self._exited)
        assert self.popen.returncode is not None
        return self.popen.returncode

    def send_signal(self, sig: int) -> None:
        if self.popen.returncode is None:  # never signal a reaped pid: it may be another process now
            self.popen.send_signal(sig)

    def kill(self) -> None:
        import signal

        self.send_signal(signal.SIGKILL)


async def adopt_async(popen: subprocess.Popen, stdout_read: bytes = b"") -> AdoptedProcess:
    """Watch a spawn()ed process from the running loop: its pipes become StreamReaders (the
    limit asyncio's own subprocesses use), its end is seen through a pidfd (no SIGCHLD, no thread).
    `stdout_read`: what was already read from its stdout; the StreamReader gives it first."""
    import asyncio
    import os

    loop = asyncio.get_running_loop()

    async def reader(pipe, already_read: bytes = b"") -> asyncio.StreamReader | None:
        if pipe is None:
            return None
        stream = asyncio.StreamReader(limit=2 ** 16, loop=loop)
        if already_read:
            stream.feed_data(already_read)  # first: before the pipe can deliver anything
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stream, loop=loop), pipe)
        return stream

    stdout, stderr = await reader(popen.stdout, stdout_read), await reader(popen.stderr)
    exited = loop.create_future()
    pidfd = os.pidfd_open(popen.pid)  # also for a process that has already ended (a zombie)

    def on_exit() -> None:
        loop.remove_reader(pidfd)
        os.close(pidfd)
        popen.wait()  # reaps at once: it has ended
        if not exited.done():
            exited.set_result(popen.returncode)

    loop.add_reader(pidfd, on_exit)
    return AdoptedProcess(popen, stdout, stderr, exited)


def run(argv: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float | None = 60,
        check: bool = True, input: bytes | None = None) -> subprocess.CompletedProcess:
    """Run a command to completion, capturing stdout and stderr."""
    log = get_logger()
    log.log(DEBUG2, "run: %s", _describe(argv))
    try:
        proc = subprocess.run(slurm_command(argv), env=dict(env) if env is not None else None, input=input,
                              capture_output=True, timeout=timeout)
    except FileNotFoundError:
        raise SlurmError(f"`{argv[0]}` not found: install slurm-client or set SrunPath in oci.conf") from None
    except subprocess.TimeoutExpired:
        raise SlurmError(f"`{_describe(argv)}` did not finish within {timeout:.0f}s: is slurmctld reachable?") from None
    if check and proc.returncode != 0:
        raise SlurmError(f"`{_describe(argv)}` exited {proc.returncode}: {proc.stderr.decode(errors='replace').strip()}")
    return proc


async def run_async(argv: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float | None = 60,
                    check: bool = True) -> tuple[int, bytes, bytes]:
    """run() for the anchor's event loop: returns (returncode, stdout, stderr)."""
    log = get_logger()
    log.log(DEBUG2, "run: %s", _describe(argv))
    import asyncio

    try:
        proc = await asyncio.create_subprocess_exec(
            *slurm_command(argv), env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except FileNotFoundError:
        raise SlurmError(f"`{argv[0]}` not found: install slurm-client or set SrunPath in oci.conf") from None
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise SlurmError(f"`{_describe(argv)}` did not finish within {timeout:.0f}s: is slurmctld reachable?") from None
    assert proc.returncode is not None
    if check and proc.returncode != 0:
        raise SlurmError(f"`{_describe(argv)}` exited {proc.returncode}: {err.decode(errors='replace').strip()}")
    return proc.returncode, out, err
