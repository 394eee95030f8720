"""Every way a job can end gives the engine an exit code and a reason (issue 33, item 3): in
`state`'s reason, and as one `scrun: …` line on the container's stderr, where its user looks."""
import os
import subprocess

import pytest

from conftest import sh, wait_for

# The namespace lanes share the host's cgroup tree and load no cgroup plugin: nothing limits a
# step's memory there (tools/cluster/slurmconf.cgroup_conf).
NO_MEMORY_LIMITS = pytest.mark.xfail(
    os.environ.get("SCRUN_LANE_KIND") == "namespace", strict=True,
    reason="namespace lane: no cgroup plugin (the host's cluster owns the cgroup tree), so no step is memory-limited")


def _ended_under_us(scrun, cid: str, words: str, job_state: str, timeout: float = 60) -> dict:
    """The reason in `state`, one line on the container's stderr, and the job's own final state
    in the record (`scrun list` shows it)."""
    record = scrun.wait_stopped(cid, timeout=timeout)
    state = scrun.state(cid)
    assert words in state.get("reason", ""), state
    told = [line for line in scrun.output(cid)[1].splitlines() if line.startswith("scrun: ")]
    assert len(told) == 1 and words in told[0], scrun.output(cid)[1]
    try:
        wait_for(lambda: scrun.record(cid)["job_state"] == job_state, 30, f"the record's job state to be {job_state}")
    except AssertionError:
        raise AssertionError(f"the record's job state is {scrun.record(cid)['job_state']!r}, not {job_state}; "
                             f"anchor log: {(scrun.root / cid / 'anchor.log').read_text()[-3000:]}") from None
    assert scrun("delete", cid).returncode == 0
    return record


def _running(scrun, cid: str) -> int:
    """The container's process runs (it said so): its job id."""
    wait_for(lambda: "up" in scrun.output(cid)[0], 60, "the container to run")
    return scrun.record(cid)["job_id"]


UP_AND_SLEEP = ["sh", "-c", "echo up; exec sleep 600"]


def test_a_time_limit_ends_the_container_with_a_kill_code_and_says_so(scrun, make_bundle):
    """Slurm ends the job at its limit (salloc: "has exceeded its time limit"; ~60-90 s for one
    minute here): the code is a signal's, and `state` says the time limit did it."""
    cid = scrun.new_id()
    assert scrun.create(cid, make_bundle(["sleep", "600"]), env={"SCRUN_TIMELIMIT": "1"}).returncode == 0
    assert scrun("start", cid).returncode == 0
    record = _ended_under_us(scrun, cid, "reached its time limit", "TIMEOUT", timeout=240)
    assert record["exit_code"] in (137, 143), record


def test_an_admins_scancel_is_a_kill_code_and_says_so(scrun, make_bundle):
    cid = scrun.new_id()
    assert scrun.create(cid, make_bundle(UP_AND_SLEEP)).returncode == 0
    assert scrun("start", cid).returncode == 0
    sh(["scancel", str(_running(scrun, cid))])
    record = _ended_under_us(scrun, cid, "was cancelled outside scrun", "CANCELLED")
    assert record["exit_code"] == 137, record


def test_preemption_by_a_higher_priority_partition_is_a_kill_code_and_says_so(scrun, make_bundle):
    """The cluster's `urgent` partition preempts (cancels) `debug`'s jobs: a job there that wants
    the container's node whole takes it. --mem: --exclusive alone asks DefMemPerCPU for each of
    the node's 128 CPUs, more than a namespace lane's node declares."""
    cid = scrun.new_id()
    env = {"SCRUN_PARTITION": "debug", "SCRUN_JOB_NODELIST": "n1"}
    assert scrun.create(cid, make_bundle(UP_AND_SLEEP), env=env).returncode == 0
    assert scrun("start", cid).returncode == 0
    _running(scrun, cid)
    urgent = subprocess.run(["srun", "--partition=urgent", "--nodelist=n1", "--exclusive", "--mem=100M", "--time=1", "true"],
                            capture_output=True, text=True, timeout=120)
    assert urgent.returncode == 0, urgent.stderr
    record = _ended_under_us(scrun, cid, "was preempted", "PREEMPTED")
    assert record["exit_code"] == 137, record


@NO_MEMORY_LIMITS
def test_out_of_memory_on_the_node_names_itself(scrun, make_bundle):
    """--memory (here SCRUN_MEM_PER_NODE) is the job's limit; a container that exceeds it is
    killed by the kernel on its node: a nonzero code and the reason, not a bare 1."""
    cid = scrun.new_id()
    bundle = make_bundle(["dd", "if=/dev/zero", "of=/dev/null", "bs=256M", "count=1"])
    assert scrun.create(cid, bundle, env={"SCRUN_MEM_PER_NODE": "64M"}).returncode == 0
    assert scrun("start", cid).returncode == 0
    record = _ended_under_us(scrun, cid, "ran out of memory", "COMPLETED")
    assert record["exit_code"] != 0, record
