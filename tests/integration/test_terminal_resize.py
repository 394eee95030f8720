"""The console's size reaches the container, however the engine's resizes fall around start.

The engine (conmon, containerd's shim) owns the master end and resizes it; podman does so while
start runs. A resize that reached srun before the node had connected to its pty port ended
srun's pty thread, and the container's terminal never learnt a size (anchor/terminal.py).
"""
import os
import select
import socket
import struct
import subprocess
import sys
import termios
import threading
import time

import fcntl
import pytest

pytestmark = pytest.mark.integration


def _receive_master(listener: socket.socket, got: list) -> None:
    conn, _ = listener.accept()
    with conn:
        _, fds, _, _ = socket.recv_fds(conn, 1024, 1)
        got.extend(fds)


def _create_with_console(scrun, bundle, tmp_path) -> tuple[str, int]:
    """create with --console-socket, as conmon calls it: (id, the master end we were sent)."""
    path = str(tmp_path / "console.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)
    got: list[int] = []
    receiver = threading.Thread(target=_receive_master, args=(listener, got), daemon=True)
    receiver.start()
    cid = scrun.new_id()
    proc = scrun.create(cid, bundle, "--console-socket", path, env={"SCRUN_DEBUG": "debug"})
    receiver.join(10)
    listener.close()
    assert proc.returncode == 0, proc.stderr
    assert got, "create sent no terminal to the console socket"
    return cid, got[0]


def _resize(master: int, rows: int, cols: int) -> None:
    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def _read_until(master: int, needle: bytes, timeout: float) -> bytes:
    seen, deadline = b"", time.monotonic() + timeout
    while needle not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the container's side closed
                break
            if not chunk:
                break
            seen += chunk
    return seen


def _start_in_background(scrun, cid: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "scrun", "--root", str(scrun.root), "start", cid],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _printed_size(scrun, cid: str, master: int, expected: bytes) -> None:
    """The container printed `SIZE:<expected>`; else what it saw, and the anchor's log."""
    screen = _read_until(master, b"SIZE:", 60) + _read_until(master, b"\n", 5)
    log = (scrun.root / cid / "anchor.log").read_text()
    assert b"SIZE:" + expected in screen, f"the container saw {screen[-200:]!r}, not {expected!r}; the anchor's log:\n{log}"
    assert scrun.wait_stopped(cid)["exit_code"] == 0


def test_resizes_during_start_do_not_cost_the_later_ones(slurm_cluster, scrun, make_bundle, tmp_path):
    # The container prints its size after the test's last resize has been made.
    bundle = make_bundle(["sh", "-c", "sleep 4; echo SIZE:$(stty size)"], terminal=True)
    cid, master = _create_with_console(scrun, bundle, tmp_path)
    try:
        start = _start_in_background(scrun, cid)
        # Resizes all through start, as a busy engine makes them: some land while srun still
        # waits for the node's pty connection.
        flip = 0
        while start.poll() is None:
            _resize(master, 10 + flip, 40 + flip)
            flip ^= 1
            time.sleep(0.005)
        assert start.returncode == 0, start.stderr
        _resize(master, 33, 77)  # at once: the node's runtime may still be setting up
        _printed_size(scrun, cid, master, b"33 77")  # the last size
    finally:
        os.close(master)
        scrun("delete", "--force", cid)


def test_a_console_the_engine_sizes_only_as_start_runs_has_that_size_at_once(slurm_cluster, scrun, make_bundle,
                                                                           tmp_path):
    """podman 5 writes no consoleSize and sizes the console as it calls start: the container's
    first command must see that size, not 0x0 (start waits for it, up to console.FIRST_SIZE_WAIT)."""
    bundle = make_bundle(["sh", "-c", "echo SIZE:$(stty size 2>&1)"], terminal=True)
    cid, master = _create_with_console(scrun, bundle, tmp_path)
    try:
        start = _start_in_background(scrun, cid)
        time.sleep(0.8)  # later than a launch without waiting would take
        _resize(master, 31, 91)  # once, as podman does
        assert start.wait(60) == 0, start.stderr.read()
        _printed_size(scrun, cid, master, b"31 91")
    finally:
        os.close(master)
        scrun("delete", "--force", cid)


def test_closing_the_console_hangs_the_container_up(slurm_cluster, scrun, make_bundle, tmp_path):
    # As a terminal's hangup ends its session: the engine gone, nothing can reach the container.
    bundle = make_bundle(["sleep", "300"], terminal=True)
    cid, master = _create_with_console(scrun, bundle, tmp_path)
    start = scrun("start", cid)
    assert start.returncode == 0, start.stderr
    assert scrun.state(cid)["status"] == "running"
    os.close(master)
    record = scrun.wait_stopped(cid, timeout=60)
    assert record["exit_code"] == 129, record
    assert scrun("delete", cid).returncode == 0
