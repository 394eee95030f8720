"""The quick create's reading of salloc's grant (anchor.quick), and the loop adopting what it read."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

from scrun.anchor import quick
from scrun.anchor.quick import QuickCreate, _read_grant
from scrun.slurm.argv import HOLDER_READY_MARK
from scrun.slurm.runner import adopt_async

READY = HOLDER_READY_MARK
JOB_ENV = b"SLURM_JOB_ID=42\0SLURM_JOB_NODELIST=n1\0HOME=/root\0"


def writer(script: str) -> subprocess.Popen:
    """A process that writes to its stdout as salloc's holder would (the bytes are the test's)."""
    return subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)


def test_the_grant_is_the_holders_slurm_environment():
    proc = writer(f"import sys; sys.stdout.buffer.write({JOB_ENV + READY!r}); sys.stdout.flush(); import time; time.sleep(5)")
    try:
        state = QuickCreate()
        assert _read_grant(proc, state) == {"SLURM_JOB_ID": "42", "SLURM_JOB_NODELIST": "n1"}
        assert state.salloc_out == JOB_ENV + READY  # the loop reads it again from here
    finally:
        proc.kill()
        proc.wait()


def test_salloc_ending_before_the_grant_leaves_it_to_the_loop():
    proc = writer("import sys; sys.stdout.buffer.write(b'SLURM_JOB_ID=4')")
    state = QuickCreate()
    assert _read_grant(proc, state) is None
    assert state.salloc_out == b"SLURM_JOB_ID=4"
    proc.wait()


def test_a_job_not_granted_in_time_is_left_to_the_loop(monkeypatch):
    monkeypatch.setattr(quick, "QUICK_GRANT", 0.2)
    proc = writer("import time; time.sleep(5)")
    try:
        assert _read_grant(proc, QuickCreate()) is None
    finally:
        proc.kill()
        proc.wait()


def test_a_stop_signal_ends_the_wait():
    proc = writer("import time; time.sleep(5)")
    try:
        state = QuickCreate()
        state.signals.append(signal.SIGTERM)
        assert _read_grant(proc, state) is None
    finally:
        proc.kill()
        proc.wait()


def test_the_loop_gets_what_the_quick_path_read_first_then_the_rest_of_the_pipe():
    proc = writer("import sys; sys.stdout.buffer.write(b'ABCDEF')")
    already = os.read(proc.stdout.fileno(), 3)  # one write of 6 bytes: 3 of them now
    assert already == b"ABC"

    async def main() -> bytes:
        adopted = await adopt_async(proc, stdout_read=already)
        data = await adopted.stdout.read()
        await adopted.wait()
        return data

    assert asyncio.run(main()) == b"ABCDEF"


def test_the_grant_is_read_from_an_fd_above_1024():
    """An anchor server holds ~11 fds per container: its hundredth container's salloc pipe is
    above select()'s limit of 1024 ("filedescriptor out of range in select()" failed every
    create after the 94th, bench/scale.py --anchors server)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2048:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(2048, hard), hard))
    proc = writer(f"import sys; sys.stdout.buffer.write({JOB_ENV + READY!r}); sys.stdout.flush(); import time; time.sleep(5)")
    high = os.dup2(proc.stdout.fileno(), 1500)
    try:
        class HighFd:
            stdout = os.fdopen(high, "rb", buffering=0)
        assert _read_grant(HighFd, QuickCreate()) == {"SLURM_JOB_ID": "42", "SLURM_JOB_NODELIST": "n1"}
    finally:
        HighFd.stdout.close()
        proc.kill()
        proc.wait()
