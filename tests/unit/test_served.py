"""The anchor server's create side (anchor/served.py): the site setting and the waiter shell."""
import os
import signal
import socket
import time

import pytest

from scrun.anchor.served import WAITER_NAME, ServedAnchor, anchor_server_wanted
from scrun.config.settings import load_site_staging
from scrun.errors import ConfigError

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("text,wanted", [
    ("AnchorServer=yes\n", True),
    ("anchorserver = YES  # one per user\n", True),
    ("AnchorServer=no\n", False),
    ("# AnchorServer=yes\nStageDir=/x\n", False),
    ("", False),
])
def test_the_setting_is_read_before_creates_imports(tmp_path, text, wanted):
    (tmp_path / "scrun.conf").write_text(text)
    assert anchor_server_wanted(str(tmp_path / "slurm.conf")) is wanted


def test_no_scrun_conf_means_an_anchor_per_container(tmp_path):
    assert anchor_server_wanted(str(tmp_path / "slurm.conf")) is False


def test_a_bad_value_fails_with_file_and_line(tmp_path):
    (tmp_path / "scrun.conf").write_text("AnchorServer=maybe\n")
    with pytest.raises(ConfigError, match=r"scrun.conf:1: AnchorServer must be yes or no, got 'maybe'"):
        load_site_staging(str(tmp_path / "slurm.conf"))
    (tmp_path / "scrun.conf").write_text("AnchorServer=yes\n")
    load_site_staging(str(tmp_path / "slurm.conf"))  # accepted


def _waiter() -> tuple[ServedAnchor, socket.socket]:
    anchor = ServedAnchor.start()
    anchor.start_waiter()
    server_end = socket.socket(fileno=anchor.waiter_end)
    anchor.waiter_end = -1
    server_end.settimeout(5)
    deadline = time.monotonic() + 5
    while (argv0 := open(f"/proc/{anchor.child.pid}/cmdline", "rb").read().split(b"\0")[0]) != WAITER_NAME.encode():
        assert time.monotonic() < deadline, argv0  # (empty for a moment, as the shell starts)
        time.sleep(0.01)
    return anchor, server_end


def test_the_waiter_exits_with_the_code_the_server_writes():
    anchor, server_end = _waiter()
    server_end.sendall(b"exit 3\n")
    assert anchor.child.wait(timeout=5) == 3


def test_the_waiter_tells_the_server_of_stop_signals_and_lives_on():
    anchor, server_end = _waiter()
    time.sleep(0.2)  # its traps set
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        os.kill(anchor.child.pid, sig)
        assert server_end.recv(64) == f"signal {int(sig)}\n".encode()
    assert anchor.child.poll() is None
    server_end.sendall(b"exit 143\n")
    assert anchor.child.wait(timeout=5) == 143


def test_the_waiter_exits_137_when_the_server_is_gone():
    anchor, server_end = _waiter()
    server_end.close()
    assert anchor.child.wait(timeout=5) == 137


def test_the_waiter_holds_none_of_creates_stdio(tmp_path):
    """The container's stdio (create's 0-2) must reach EOF when the server closes it: the waiter
    keeps /dev/null there, and the socket on 0."""
    anchor, server_end = _waiter()
    fds = {fd: os.readlink(f"/proc/{anchor.child.pid}/fd/{fd}") for fd in os.listdir(f"/proc/{anchor.child.pid}/fd")}
    assert fds.keys() == {"0", "1", "2"} and fds["1"] == fds["2"] == "/dev/null" and fds["0"].startswith("socket:"), fds
    anchor.discard()
    assert anchor.child.returncode is not None


def test_a_waiter_in_a_network_namespace_of_its_own():
    """For an engine that may not enter the login node's network namespace (rootless docker):
    the waiter is the pid it enters, as the forked anchor's holder was."""
    anchor = ServedAnchor.start()
    pid = anchor.start_waiter(own_network_namespace=True)
    try:
        assert os.readlink(f"/proc/{pid}/ns/net") != os.readlink("/proc/self/ns/net")
    finally:
        anchor.discard()
