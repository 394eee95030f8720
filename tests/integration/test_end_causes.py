"""Every way a job can end gives the engine an exit code and a reason (issue 33, item 3)."""


def test_a_time_limit_ends_the_container_with_a_kill_code_and_says_so(scrun, make_bundle):
    """Slurm ends the job at its limit (salloc: "has exceeded its time limit"; ~60-90 s for one
    minute here): the code is a signal's, and `state` says the time limit did it."""
    cid = scrun.new_id()
    assert scrun.create(cid, make_bundle(["sleep", "600"]), env={"SCRUN_TIMELIMIT": "1"}).returncode == 0
    assert scrun("start", cid).returncode == 0
    record = scrun.wait_stopped(cid, timeout=240)
    assert record["exit_code"] in (137, 143), record
    state = scrun.state(cid)
    assert "reached its time limit" in state.get("reason", ""), state
    assert scrun("delete", cid).returncode == 0
