"""The fault matrix: each fault at each phase where it applies, then the leak check.

Every cell ends the same way: the container reaches `stopped` with an exit code within
STOP_BOUND seconds (or keeps running and ends normally, for faults it must survive), `delete`
succeeds, and nothing of it is left: no job, no anchor/salloc/srun process, no state dir or socket.
"""
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from conftest import cluster_tool, jobs_named, sh, wait_for

pytestmark = pytest.mark.integration
STOP_BOUND = 30     # seconds from the fault to `stopped` with an exit code
GONE_BOUND = 30     # seconds from delete to no job and no process


# A process's children and name, as the cluster tool reads them.
children, comm = cluster_tool("topology").children, cluster_tool("topology").comm


def child_named(pid: int, name: str) -> int:
    found = [c for c in children(pid) if comm(c) == name]
    assert found, f"no {name} under {pid} ({[comm(c) for c in children(pid)]})"
    return found[0]


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


class Container:
    """One container through the CLI, with what the leak check needs to know of it."""

    def __init__(self, scrun, make_bundle, tmp_path, args=("sleep", "300"), name="bundle"):
        self.scrun, self.cid = scrun, scrun.new_id()
        created = scrun.create(self.cid, make_bundle(list(args), name=name), env={"SCRUN_DEBUG": "debug"})
        assert created.returncode == 0, created.stderr
        self.anchor = int((tmp_path / f"{self.cid}.pid").read_text())
        self.job = scrun.record(self.cid)["job_id"]
        self.processes = [self.anchor, *self.descendants(self.anchor)]

    def descendants(self, pid: int) -> list[int]:
        out = []
        for child in children(pid):
            out += [child, *self.descendants(child)]
        return out

    def start(self) -> None:
        assert self.scrun("start", self.cid).returncode == 0
        wait_for(lambda: any(comm(c) == "srun" for c in children(self.anchor)), 30, "srun to run")
        self.processes = [self.anchor, *self.descendants(self.anchor)]

    def stopped_within(self, bound: float = STOP_BOUND) -> dict:
        began = time.monotonic()
        record = self.scrun.wait_stopped(self.cid, bound)
        assert record["exit_code"] is not None
        record["seconds"] = time.monotonic() - began
        return record

    def delete_and_nothing_left(self, force: bool = False) -> None:
        proc = self.scrun("delete", *(["--force"] if force else []), self.cid)
        assert proc.returncode == 0, proc.stderr
        assert not (self.scrun.root / self.cid).exists(), "state directory left"
        wait_for(lambda: not jobs_named([f"scrun:{self.cid[:12]}"]), GONE_BOUND, "the job to go")
        wait_for(lambda: not [p for p in self.processes if alive(p)], GONE_BOUND, "the container's processes to go")


@pytest.fixture
def container(slurm_cluster, scrun, make_bundle, tmp_path):
    made = []

    def make(**kw):
        made.append(Container(scrun, make_bundle, tmp_path, name=f"bundle{len(made)}", **kw))
        return made[-1]

    yield make
    for c in made:  # whatever a cell did: no process of it may outlive the test
        for pid in c.processes:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


# srun and the step exist only once the container runs.
CELLS = [(fault, phase) for fault in ("kill -9 anchor", "kill -9 salloc", "kill -9 srun", "scancel job", "scancel step")
         for phase in ("created", "running") if phase == "running" or fault not in ("kill -9 srun", "scancel step")]


@pytest.mark.parametrize("fault, phase", CELLS, ids=[f"{f}@{p}".replace(" ", "_") for f, p in CELLS])
def test_fault_then_an_exit_code_and_nothing_left(container, scrun, fault, phase):
    survives = fault == "kill -9 salloc"  # the job lives on without its holder: so does the container
    c = container(args=("sh", "-c", "sleep 4; exit 5") if survives else ("sleep", "300"))
    if phase == "running":
        c.start()
    if fault == "kill -9 anchor":
        os.kill(c.anchor, signal.SIGKILL)
    elif fault == "kill -9 salloc":
        os.kill(child_named(c.anchor, "salloc"), signal.SIGKILL)
    elif fault == "kill -9 srun":
        os.kill(child_named(c.anchor, "srun"), signal.SIGKILL)
    elif fault == "scancel job":
        sh(["scancel", str(c.job)], check=True)
    elif fault == "scancel step":
        wait_for(lambda: f"{c.job}." in sh(["squeue", "-h", "-s", "-j", str(c.job), "-o", "%i"]).stdout, 30, "the step")
        step = [s for s in sh(["squeue", "-h", "-s", "-j", str(c.job), "-o", "%i"]).stdout.split() if "." in s][0]
        sh(["scancel", step], check=True)
    if survives:
        if phase == "created":
            c.start()
        assert c.stopped_within()["exit_code"] == 5
    elif fault == "kill -9 anchor":
        # No exit code can be recorded: conmon sees the anchor die (137); `state` says stopped, and why.
        wait_for(lambda: scrun.state(c.cid)["status"] == "stopped", STOP_BOUND, "state to say stopped")
        assert "anchor" in scrun.state(c.cid)["reason"]
    else:
        record = c.stopped_within()
        assert record["exit_code"] != 0 and record["stopped_reason"], repr(record) + (scrun.root / c.cid / "anchor.log").read_text()  # cut short, and why
    c.delete_and_nothing_left()


def test_all_anchors_killed_at_once_then_delete_force(container, scrun):
    """A login node's restart in small: every anchor dies at once; delete --force cleans up."""
    several = [container() for _ in range(3)]
    several[0].start()
    for c in several:
        os.kill(c.anchor, signal.SIGKILL)
    for c in several:
        wait_for(lambda c=c: scrun.state(c.cid)["status"] == "stopped", STOP_BOUND, "stopped")
        c.delete_and_nothing_left(force=True)


def test_a_login_node_restart_leaves_jobs_that_list_kill_and_delete_find(container, scrun):
    """The login node restarts under running containers: every process scrun started dies at once
    (anchor, salloc, srun) and the state root (a tmpfs) comes back empty, while the jobs live on.
    `list` shows them (`orphaned`, with their jobs), `kill` signals one, `delete` cancels each and
    removes its staged copy; without a job, delete still says the container does not exist."""
    running, created = container(args=("sh", "-c", "trap 'echo got-term; exit 0' TERM; sleep 300 & wait")), container()
    running.start()
    copies = [scrun.record(c.cid).get("stage_copy") for c in (running, created)]
    for c in (running, created):
        for pid in c.processes:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        wait_for(lambda c=c: not [p for p in c.processes if alive(p)], GONE_BOUND, "the processes to die")
        shutil.rmtree(scrun.root / c.cid)
    listed = {row["id"]: row for row in json.loads(scrun("list", "--format", "json").stdout)}
    for c in (running, created):
        assert listed[c.cid]["status"] == "orphaned" and listed[c.cid]["job"] == c.job, listed
    assert scrun("kill", running.cid, "SIGTERM").returncode == 0
    assert scrun("delete", running.cid).returncode == 0
    assert scrun("delete", "--force", created.cid).returncode == 0
    wait_for(lambda: not jobs_named([f"scrun:{running.cid[:12]}", f"scrun:{created.cid[:12]}"]), GONE_BOUND,
             "the jobs to go")
    assert not [c for c in copies if c and os.path.lexists(c)], copies
    assert running.cid not in scrun("list", "--quiet").stdout
    gone = scrun("delete", running.cid)
    assert gone.returncode != 0 and "does not exist" in gone.stderr, gone.stderr


def _slurmctld_pid() -> int:
    with open(f"{cluster_tool('slurmconf').RUN_DIR}/slurmctld.pid") as fh:
        return int(fh.read().split()[0])


def _restart(argv: list[str], ping, old_pid: int) -> None:
    """Start the daemon again once the old one is gone (24.11's slurmctld takes a moment to save
    its state; a second one started meanwhile exits), retrying a start that still collides."""
    wait_for(lambda: not alive(old_pid), 60, f"the old {argv[0]} to exit")
    for _ in range(5):
        subprocess.run(argv, capture_output=True, timeout=60)
        try:
            wait_for(ping, 20, f"{argv[0]} to answer")
            return
        except AssertionError:
            continue
    raise AssertionError(f"{argv[0]} did not come back")


def _ctld_up() -> bool:
    return "UP" in sh(["scontrol", "ping"]).stdout


def test_slurmctld_restart_under_a_running_container(container, scrun):
    """slurmctld stops and comes back while the step runs: the container lives on and ends with
    its own exit code, or it ends with an exit code and a reason (24.11 sometimes loses the step
    while slurmctld is away); nothing hangs, nothing is left. slurmctld goes as the step is being
    created: srun, refused, waits ~2 min for a word the new slurmctld never sends, unless the
    anchor wakes it (anchor.stepwake) — this was a flaky xfail on 22.05 until then."""
    c = container(args=("sh", "-c", "sleep 8; exit 7"))
    c.start()
    old = _slurmctld_pid()
    os.kill(old, signal.SIGTERM)
    try:
        wait_for(lambda: "DOWN" in sh(["scontrol", "ping"]).stdout, 30, "slurmctld to stop")
        time.sleep(2)
    finally:  # whatever happened, the cluster is left up for the tests after this one
        _restart(["slurmctld"], _ctld_up, old)
    record = c.stopped_within(60)
    assert record["exit_code"] == 7 or (record["exit_code"] != 0 and record["stopped_reason"]), record
    c.delete_and_nothing_left()


def test_slurmd_killed_and_restarted_under_a_running_step(container, scrun):
    """slurmd dies under a running step (slurmstepd is its own process and lives on) and comes
    back: the container ends with its own exit code."""
    c = container(args=("sh", "-c", "sleep 6; exit 9"))
    c.start()
    node = sh(["squeue", "-h", "-j", str(c.job), "-o", "%N"]).stdout.strip()
    topology = cluster_tool("topology")  # each node is its own namespaces: its slurmd is found there
    old = topology.slurmd_pid(node)
    assert old is not None, f"no slurmd in node {node}"
    os.kill(old, signal.SIGKILL)
    time.sleep(1)
    wait_for(lambda: not alive(old), 60, "the old slurmd to exit")
    topology.restart_slurmd(node)
    wait_for(lambda: sh(["sinfo", "-h", "-n", node, "-o", "%T"]).stdout.strip().rstrip("*")
             in ("idle", "mixed", "allocated", "completing"), 30, f"slurmd of {node} to answer")
    # Its own code, or srun's failure with a reason: srun sometimes dies of SIGPIPE (141) writing
    # to the old slurmd's connection (22.05), or exits 232 (24.11). Either way an exit code in
    # bounded time, and nothing left.
    record = c.stopped_within(60)
    assert record["exit_code"] == 9 or (record["exit_code"] != 0 and record["stopped_reason"]), record
    c.delete_and_nothing_left()


def test_a_full_state_root_is_a_clear_error_with_nothing_half_written(slurm_cluster, scrun, make_bundle, tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(small)], capture_output=True, text=True)
    assert mounted.returncode == 0, f"cannot mount a small tmpfs here: {mounted.stderr}"
    try:
        root = small / "root"
        subprocess.run(["dd", "if=/dev/zero", f"of={small}/filler", "bs=4k", "count=64"], capture_output=True)
        jobs_before = sh(["squeue", "-h", "-o", "%i"]).stdout.split()
        proc = subprocess.run([sys.executable, "-m", "scrun", "--root", str(root), "create", "--bundle",
                               str(make_bundle(["true"])), f"full{os.getpid()}"], stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode != 0
        errors = [line for line in proc.stderr.splitlines() if line.startswith("scrun: error: ")]
        assert len(errors) == 1 and "No space left on device" in errors[0], proc.stderr
        assert not root.exists() or list(root.iterdir()) == [], "a half-written container"
        assert sh(["squeue", "-h", "-o", "%i"]).stdout.split() == jobs_before
    finally:
        subprocess.run(["umount", "-l", str(small)], capture_output=True)
