"""The one place scrun runs Slurm commands: logs the argv, maps failures to SlurmError.

Every Slurm client goes through slurm_command(), which (inside rootless podman's user
namespace) makes it run with the real ids: see core.identity.
"""
from __future__ import annotations

import asyncio
import functools
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from typing import Any

from scrun.errors import SlurmError
from scrun.log import DEBUG2, get_logger


def _describe(argv: Sequence[str]) -> str:
    return shlex.join(argv)


@functools.cache
def _prefix() -> tuple[str, ...]:
    from scrun.config.paths import read_identity
    from scrun.core.identity import slurm_command_prefix

    return tuple(slurm_command_prefix(read_identity()))


def slurm_command(argv: Sequence[str]) -> list[str]:
    """The argv that runs a Slurm client as the real user (unchanged outside a user namespace)."""
    return [*_prefix(), *argv]


async def spawn_async(argv: Sequence[str], **kwargs: Any) -> asyncio.subprocess.Process:
    """Start a long-running Slurm command (salloc, the container's srun) for the anchor.

    A missing command raises FileNotFoundError (the caller decides: 127 for the container's srun).
    """
    get_logger().log(DEBUG2, "spawn: %s", _describe(argv))
    return await asyncio.create_subprocess_exec(*slurm_command(argv), **kwargs)


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
