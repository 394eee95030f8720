"""pause / resume through the CLI: the container's processes on the node stop and continue.

The container counts, one line every 0.2 s, to the file create gave it as stdout: while it is
paused no line may come, after resume they come again; kill and delete work on a paused one.
"""
import time

import pytest

from conftest import wait_for

pytestmark = pytest.mark.integration

COUNTER = ["sh", "-c", "i=0; while :; do i=$((i+1)); echo $i; sleep 0.2; done"]


def _lines(scrun, cid) -> int:
    return len(scrun.output(cid)[0].splitlines())


def _running_counter(scrun, make_bundle) -> str:
    cid = scrun.new_id()
    assert scrun.create(cid, make_bundle(COUNTER)).returncode == 0
    assert scrun("start", cid).returncode == 0
    wait_for(lambda: _lines(scrun, cid) >= 3, 30, "the counter to count")
    return cid


def test_a_paused_container_stops_counting_and_goes_on_after_resume(slurm_cluster, scrun, make_bundle):
    cid = _running_counter(scrun, make_bundle)
    pause = scrun("pause", cid)
    assert pause.returncode == 0 and pause.stdout == "", pause.stderr
    assert scrun.state(cid)["status"] == "paused"
    time.sleep(0.5)  # a line already on its way
    held = _lines(scrun, cid)
    time.sleep(2.0)
    assert _lines(scrun, cid) == held, "the container kept counting while paused"
    again = scrun("pause", cid)
    assert again.returncode != 0 and "not running" in again.stderr, again.stderr
    resume = scrun("resume", cid)
    assert resume.returncode == 0 and resume.stdout == "", resume.stderr
    assert scrun.state(cid)["status"] == "running"
    wait_for(lambda: _lines(scrun, cid) >= held + 3, 15, "the counter to go on after resume")
    assert scrun("kill", cid, "SIGKILL").returncode == 0
    assert scrun.wait_stopped(cid)["exit_code"] == 137
    assert scrun("delete", cid).returncode == 0


def test_resume_of_a_running_container_is_refused(slurm_cluster, scrun, make_bundle):
    cid = _running_counter(scrun, make_bundle)
    proc = scrun("resume", cid)
    assert proc.returncode != 0 and proc.stderr.startswith("scrun: error: ") and "not paused" in proc.stderr
    assert proc.stderr.count("\n") == 1 and scrun.state(cid)["status"] == "running"
    assert scrun("delete", "--force", cid).returncode == 0


@pytest.mark.parametrize("how", ["kill", "delete-force"])
def test_a_paused_container_can_be_killed_and_deleted(slurm_cluster, scrun, make_bundle, how):
    cid = _running_counter(scrun, make_bundle)
    assert scrun("pause", cid).returncode == 0
    plain = scrun("delete", cid)  # runc: a paused container is not deleted without --force
    assert plain.returncode != 0 and "paused" in plain.stderr, plain.stderr
    if how == "kill":
        assert scrun("kill", cid, "SIGKILL").returncode == 0
        assert scrun.wait_stopped(cid, timeout=60)["exit_code"] == 137
        assert scrun("delete", cid).returncode == 0
    else:
        assert scrun("delete", "--force", cid).returncode == 0
    assert not (scrun.root / cid).exists()
