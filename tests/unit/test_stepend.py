"""The container step's end → exit code and reason (core.stepend), rule by rule."""
import pytest

from scrun.core.stepend import KILLED, NEVER_STARTED_EXIT_CODE, StepEnd, decide

pytestmark = pytest.mark.unit

# A container that ran and exited 3 by itself.
ENDED = StepEnd(returncode=3, srun_ended=True, last_stderr="", step_cancelled=False, out_of_memory=False,
                revoked=False, end_cause="was cancelled outside scrun", node_failure="", job_id=12, stop_code=None,
                stop_reason="", job_ended_under_us=False, refused=(), signalled=None, tasks_started=True)


def test_the_containers_own_code_and_its_last_line():
    assert decide(ENDED) == (3, "exit code 3", False)
    assert decide(ENDED._replace(last_stderr="boom")) == (3, "exit code 3; last stderr line: boom", False)
    assert decide(ENDED._replace(returncode=0)) == (0, "", False)
    assert decide(ENDED._replace(returncode=-9)).code == 137
    assert decide(ENDED._replace(returncode=None)).code == 1


def test_srun_exiting_0_under_a_cancelled_job_is_a_kill_with_salloc_words():
    verdict = decide(ENDED._replace(returncode=0, revoked=True, end_cause="reached its time limit"))
    assert verdict == (KILLED, "job 12 reached its time limit", True)


@pytest.mark.parametrize("returncode", [0, 1])
@pytest.mark.parametrize("stop", [None, "salloc"])
def test_a_lost_node_is_a_kill_whoever_told_first(returncode, stop):
    end = ENDED._replace(returncode=returncode, node_failure="lost its node n3: the node failed", revoked=True)
    if stop:
        end = end._replace(stop_code=KILLED, stop_reason="job 12 was cancelled outside scrun", job_ended_under_us=True)
    assert decide(end) == (KILLED, "job 12 lost its node n3: the node failed", True)


def test_a_users_stop_is_not_overridden_by_a_node_failure():
    end = ENDED._replace(srun_ended=False, stop_code=143, stop_reason="killed by SIGTERM", node_failure="lost its node n3")
    assert decide(end) == (143, "killed by SIGTERM", False)


def test_a_step_cancelled_alone_while_srun_exits_0():
    assert decide(ENDED._replace(returncode=0, step_cancelled=True)) == (
        KILLED, "step of job 12 was cancelled outside scrun", True)


def test_a_stop_we_requested_gives_its_code_when_we_ended_the_step():
    end = ENDED._replace(returncode=-15, srun_ended=False, stop_code=143, stop_reason="anchor received SIGTERM")
    assert decide(end) == (143, "anchor received SIGTERM", False)


def test_a_refusing_guard_names_the_node_and_says_nothing_ran():
    verdict = decide(ENDED._replace(returncode=1, refused=("iso1",), last_stderr="slurmstepd: --task-prolog failed"))
    assert verdict.code == NEVER_STARTED_EXIT_CODE and "node iso1 ignored --container" in verdict.reason and verdict.error


def test_a_signal_that_ended_the_guard_is_the_code():
    end = ENDED._replace(returncode=1, signalled=9, last_stderr="slurmstepd-n1: error: --task-prolog failed status=1")
    assert decide(end) == (137, "killed by SIGKILL before its process started", False)
    assert decide(end._replace(signalled=None)).code != 137  # no signal of ours: the guard failed


def test_a_step_that_never_launched_is_255_not_srun_130():
    verdict = decide(ENDED._replace(returncode=130, tasks_started=False, last_stderr="srun: error: Task launch failed"))
    assert verdict.code == NEVER_STARTED_EXIT_CODE and verdict.error
    assert verdict.reason == ("the container never started: its step failed to launch on its node (srun exited 130): "
                              "srun: error: Task launch failed")


def test_out_of_memory_names_itself_unless_something_else_did():
    verdict = decide(ENDED._replace(returncode=-9, out_of_memory=True))
    assert verdict.code == 137 and verdict.reason.startswith("the container ran out of memory") and verdict.error
    assert decide(ENDED._replace(returncode=0, out_of_memory=True)) == (0, "", False)  # a child was killed, not it


def test_a_stop_from_the_jobs_end_is_told_to_the_user():
    """salloc's revocation stopped the step: the reason is news to the user (an error), a
    user's own stop is not."""
    end = ENDED._replace(srun_ended=False, stop_code=KILLED, stop_reason="job 12 was preempted", job_ended_under_us=True)
    assert decide(end) == (KILLED, "job 12 was preempted", True)
    assert decide(end._replace(job_ended_under_us=False)) == (KILLED, "job 12 was preempted", False)


@pytest.mark.parametrize("state, words", [
    ("PREEMPTED", "was preempted"),
    ("CANCELLED", "was cancelled outside scrun"),
    ("TIMEOUT", "reached its time limit"),
    ("DEADLINE", "reached its deadline"),
    ("NODE_FAIL", "lost its node"),
    ("OUT_OF_MEMORY", "ran out of memory"),
    ("SPECIAL_EXIT", "ended outside scrun (Slurm's job state SPECIAL_EXIT)"),
    ("", "was cancelled outside scrun"),
])
def test_a_jobs_final_state_names_why_it_ended(state, words):
    from scrun.core.jobstate import NOT_FINAL
    from scrun.core.stepend import job_end_words

    assert job_end_words(state).startswith(words)
    assert state not in NOT_FINAL


@pytest.mark.parametrize("launch,settle", [(0.0, 0.2), (0.05, 0.2), (-1.0, 0.2), (0.4, 0.4), (1.2, 1.2), (10.0, 1.5)])
def test_a_signal_after_start_waits_longer_on_a_slow_launch(launch, settle):
    from scrun.anchor.step import settle_after_start

    assert settle_after_start(launch) == pytest.approx(settle)
