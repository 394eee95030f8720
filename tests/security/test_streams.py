"""What a container writes, and what reaches the anchor's socket, is bounded and cannot change
anything beyond the container itself."""
from __future__ import annotations

import json
import socket
import time

from conftest import wait_for
from security.conftest import job_state


def vm_hwm_kib(pid: int) -> int:
    """The process's peak resident memory so far; 0 once it has exited."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except FileNotFoundError:
        pass
    return 0


def test_a_never_ending_line_that_starts_like_sruns_is_not_kept_in_memory(scrun, make_bundle):
    """64 MiB on stderr after "srun: " and no newline: the filter of srun's own lines held all of
    it (the login node's memory was the limit); it is forwarded as it comes now."""
    size = 64 << 20
    script = f'(printf "srun: "; head -c {size} /dev/zero | tr "\\0" x; echo) >&2; sleep 1'
    cid = scrun.new_id()
    assert scrun.create(cid, make_bundle(["sh", "-c", script])).returncode == 0
    anchor = scrun.record(cid)["anchor_pid"]
    assert scrun("start", cid).returncode == 0
    hwm = 0
    deadline = time.monotonic() + 120
    while scrun.record(cid)["status"] != "stopped" and time.monotonic() < deadline:
        hwm = max(hwm, vm_hwm_kib(anchor))  # the peak, read while the anchor lives (it exits with the container)
        time.sleep(0.02)
    assert scrun("delete", cid).returncode == 0
    _, err = scrun.output(cid)
    assert len(err) == size + len("srun: \n") and err.startswith("srun: xxx")
    assert hwm < 48 * 1024, f"the anchor's peak memory was {hwm} KiB"


def test_a_request_without_end_is_refused_and_the_anchor_serves_on(scrun, make_bundle):
    cid = scrun.new_id()
    assert scrun.create(cid, make_bundle(["sleep", "30"])).returncode == 0
    sock = socket.socket(socket.AF_UNIX)
    sock.settimeout(30)
    sock.connect(str(scrun.root / cid / "ctl.sock"))
    try:
        sock.sendall(b'{"v": 1, "op": "ping", "x": "' + b"y" * (1 << 20))
    except BrokenPipeError:
        pass  # the anchor may close once it has seen too much
    reply = b""
    while not reply.endswith(b"\n"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        reply += chunk
    sock.close()
    doc = json.loads(reply)
    assert doc["ok"] is False and "longer than" in doc["error"], doc
    assert scrun.state(cid)["status"] == "created"
    assert scrun("delete", "--force", cid).returncode == 0


def test_a_fake_slurmstepd_line_changes_nothing_but_the_containers_own_status(scrun, make_bundle, victim_job):
    """A container can print slurmstepd's "CANCELLED" line: scrun then reports its own step as
    cancelled (137), a code the container can give itself anyway (`kill -9 $$` in a child). It
    reaches no other job, container or file: shown here with another user's job alive."""
    line = "slurmstepd: error: *** STEP 1.0 ON n1 CANCELLED AT 2026-01-01T00:00:00 ***"
    cid = scrun.new_id()
    assert scrun.create(cid, make_bundle(["sh", "-c", f"echo '{line}' >&2; exit 0"])).returncode == 0
    assert scrun("start", cid).returncode == 0
    record = scrun.wait_stopped(cid)
    assert record["exit_code"] in (0, 137)
    assert scrun("delete", cid).returncode == 0
    wait_for(lambda: job_state(victim_job) == "RUNNING", 5, "the other job to run on")
