"""The anchor server (`AnchorServer=yes` in scrun.conf; issue 30): one process serves all of a
user's containers under a root; the pid each engine watches is a waiter of ~0.1 MiB that exits
with its container's code. Real salloc/srun against the lane's cluster."""
import json
import os
import signal
import subprocess
import sys

import pytest

from conftest import anchor_servers, jobs_named, sh, wait_for

pytestmark = pytest.mark.integration


def comm(pid: int) -> str:
    with open(f"/proc/{pid}/comm") as fh:
        return fh.read().strip()


def test_one_server_serves_several_containers_with_their_own_codes(scrun, make_bundle, served):
    ids = [scrun.new_id() for _ in range(3)]
    for n, cid in enumerate(ids):
        proc = scrun.create(cid, make_bundle(["sh", "-c", f"echo out-{n}; echo err-{n} >&2; exit {n + 2}"], name=f"b{n}"),
                            global_args=served)
        assert proc.returncode == 0, proc.stderr
    pids = [scrun.state(cid)["pid"] for cid in ids]
    assert len(set(pids)) == 3 and all(comm(pid) == "sh" for pid in pids), "each container's pid is its own waiter"
    assert [int((scrun.root.parent / f"{cid}.pid").read_text()) for cid in ids] == pids
    servers = anchor_servers(scrun.root)
    assert len(servers) == 1, servers
    for cid in ids:
        assert scrun("start", cid, global_args=served).returncode == 0
    for n, cid in enumerate(ids):
        record = scrun.wait_stopped(cid)
        assert record["exit_code"] == n + 2, record
        assert scrun.output(cid) == (f"out-{n}\n", f"err-{n}\n")
    for cid in ids:
        assert scrun("delete", cid, global_args=served).returncode == 0
    wait_for(lambda: not jobs_named([f"scrun:{cid[:12]}" for cid in ids]), 30, "the jobs to end")
    # Idle, it goes (IDLE_EXIT), and takes its socket with it.
    wait_for(lambda: not anchor_servers(scrun.root), 30, "the idle server to exit")
    left = [name for name in os.listdir(scrun.root) if name.startswith("@")]
    assert left == [], "an idle server that logged nothing wrong leaves nothing in the state root"


def test_a_signal_to_the_containers_pid_stops_it_and_the_waiter_exits_with_the_code(scrun, make_bundle, served):
    cid = scrun.new_id()
    assert scrun.create(cid, make_bundle(["sleep", "300"]), global_args=served).returncode == 0
    assert scrun("start", cid, global_args=served).returncode == 0
    wait_for(lambda: scrun.record(cid)["status"] == "running", 30, "the step to run")
    pid = scrun.state(cid)["pid"]
    os.kill(pid, signal.SIGTERM)
    record = scrun.wait_stopped(cid)
    assert record["exit_code"] == 143 and "SIGTERM" in record["stopped_reason"], record
    wait_for(lambda: not os.path.exists(f"/proc/{pid}") or comm(pid) != "sh" or _zombie(pid), 30, "the waiter to exit")
    assert scrun("delete", cid, global_args=served).returncode == 0


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_a_killed_server_leaves_no_job_and_its_containers_read_stopped(scrun, make_bundle, served):
    ids = [scrun.new_id() for _ in range(2)]
    for n, cid in enumerate(ids):
        assert scrun.create(cid, make_bundle(["sleep", "300"], name=f"b{n}"), global_args=served).returncode == 0
        assert scrun("start", cid, global_args=served).returncode == 0
    wait_for(lambda: all(scrun.record(cid)["status"] == "running" for cid in ids), 30, "the steps to run")
    names = [f"scrun:{cid[:12]}" for cid in ids]
    assert len(jobs_named(names)) == 2
    [server] = anchor_servers(scrun.root)
    os.kill(server, signal.SIGKILL)
    # Its salloc holders read EOF and end, so Slurm releases the jobs; each waiter exits 137.
    wait_for(lambda: not jobs_named(names), 60, "the jobs to end with their server")
    for cid in ids:
        wait_for(lambda c=cid: scrun.state(c)["status"] == "stopped", 30, f"{cid} to read stopped")
        assert scrun("delete", "--force", cid, global_args=served).returncode == 0


def test_a_failed_create_leaves_nothing_and_the_server_serves_on(scrun, make_bundle, served):
    bad = scrun.new_id()
    proc = scrun.create(bad, make_bundle(["true"]), env={"SCRUN_PARTITION": "nosuchpartition"}, global_args=served)
    assert proc.returncode != 0 and "nosuchpartition" in proc.stderr, proc.stderr
    assert not (scrun.root / bad).exists() and not jobs_named([f"scrun:{bad[:12]}"])
    good = scrun.new_id()
    assert scrun.create(good, make_bundle(["true"], name="good"), global_args=served).returncode == 0
    assert scrun("start", good, global_args=served).returncode == 0
    assert scrun.wait_stopped(good)["exit_code"] == 0
    assert scrun("delete", good, global_args=served).returncode == 0


def test_a_terminal_keeps_an_anchor_of_its_own(scrun, make_bundle, served, tmp_path):
    """A process has one controlling terminal: -t containers are not served (create says nothing
    of it; their pid is an anchor's, not a waiter's)."""
    import socket

    console = tmp_path / "console.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(console))
    listener.listen(1)
    cid = scrun.new_id()
    proc = scrun.create(cid, make_bundle(["true"], terminal=True), "--console-socket", str(console), global_args=served)
    assert proc.returncode == 0, proc.stderr
    assert comm(scrun.state(cid)["pid"]) == "scrun-anchor"
    assert scrun("delete", "--force", cid, global_args=served).returncode == 0
    listener.close()


def test_the_server_log_and_socket_are_private(scrun, make_bundle, served):
    cid = scrun.new_id()
    assert scrun.create(cid, make_bundle(["true"]), global_args=served).returncode == 0
    for name in ("@anchor-server", "@anchor-server.log", "@anchor-server.lock"):
        mode = os.stat(scrun.root / name).st_mode & 0o777
        assert mode & 0o077 == 0, (name, oct(mode))
    log = (scrun.root / "@anchor-server.log").read_text()
    assert "serving containers of uid" in log, log
    assert json.loads(scrun("list", "--format", "json", global_args=served).stdout)[0]["id"] == cid, \
        "the server's files are not containers"
    assert scrun("delete", "--force", cid, global_args=served).returncode == 0


def test_pending_containers_of_one_server_learn_their_reason_and_start_once_granted(scrun, make_bundle, served,
                                                                                     tmp_path):
    """Three containers pend behind a held dependency: the server's one squeue poll
    (anchor/pendingpoll.py) gives each its reason; freed, each is created and runs."""
    blocker = sh(["salloc", "--no-shell", "--job-name=blocker", "--time=5"]).stderr
    blocker_job = blocker.split("Granted job allocation")[1].split()[0]
    ids = [scrun.new_id() for _ in range(3)]
    creates = []
    try:
        for n, cid in enumerate(ids):
            with open(tmp_path / f"{cid}.create-err", "wb") as err:
                creates.append(subprocess.Popen(
                    [sys.executable, "-m", "scrun", "--root", str(scrun.root), *served, "create", "--bundle",
                     str(make_bundle(["sh", "-c", f"exit {n + 4}"], name=f"p{n}")), cid],
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                    env={**os.environ, "SCRUN_DEPENDENCY": f"afterok:{blocker_job}"}))
        for cid in ids:
            wait_for(lambda c=cid: (scrun.root / c / "state.json").exists()
                     and scrun.state(c)["annotations"].get("org.slurm.reason") == "Dependency", 30, f"{cid}'s reason")
        assert len(anchor_servers(scrun.root)) == 1
        jobs = [scrun.record(cid)["job_id"] for cid in ids]
        for job in jobs:
            sh(["scontrol", "update", f"jobid={job}", "dependency="])
        assert [create.wait(timeout=60) for create in creates] == [0, 0, 0]
        for n, cid in enumerate(ids):
            assert scrun("start", cid, global_args=served).returncode == 0
            assert scrun.wait_stopped(cid)["exit_code"] == n + 4
            assert scrun("delete", cid, global_args=served).returncode == 0
    finally:
        for create in creates:
            if create.poll() is None:
                create.kill()
        sh(["scancel", blocker_job])
