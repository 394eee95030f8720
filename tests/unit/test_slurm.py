"""Slurm argv builders (exact, golden) and output parsers (real output samples)."""
import pathlib

import pytest

from scrun.slurm.argv import (HOLDER_READY, build_remote_command_argv, build_salloc_argv, build_scancel_argv,
                              build_srun_argv, build_step_show_argv, finds_step_by_container_id)
from scrun.slurm.parse import parse_env0, parse_salloc_line, parse_slurm_version, parse_step_containers, parse_step_list

pytestmark = pytest.mark.unit


def srun_argv(version, **kw):
    args = dict(job_id=12, step_name="scrun:c1", container_id="c1", bundle="/b 1", step_args=("--label",),
                pty=False, args=("sh", "-c", "echo 'x'; exit 3"), slurm_version=version)
    args.update(kw)
    return build_srun_argv("/usr/bin/srun", ("--mpi=none",), **args)


def test_srun_argv_22_05_has_no_container_id():
    assert srun_argv((22, 5, 8)) == [
        "/usr/bin/srun", "--mpi=none", "--jobid=12", "--job-name=scrun:c1", "--no-kill", "--container=/b 1",
        "--export=NONE", "--label", "--", "sh", "-c", "echo 'x'; exit 3"]


def test_srun_argv_23_02_adds_container_id_and_pty():
    argv = srun_argv((23, 2, 1), pty=True)
    assert "--container-id=c1" in argv
    assert argv[argv.index("--") - 1] == "--pty"


def test_srun_argv_verbose_for_the_tasks_started_line():
    argv = srun_argv((24, 11, 5), verbose=True)
    assert argv.count("--verbose") == 1 and argv.index("--verbose") < argv.index("--")
    assert "--verbose" not in srun_argv((24, 11, 5))


def test_the_job_comment_names_the_container_and_finds_it_again():
    from scrun.slurm.argv import JOB_COMMENT_PREFIX, OWN_JOBS_FORMAT, build_own_jobs_argv, job_comment
    from scrun.slurm.parse import parse_own_jobs

    comment = job_comment("c0ffee", "login1:/run/scrun")
    argv = build_salloc_argv("salloc", ("--time=7",), "scrun:web", comment)
    assert argv[:4] == ["salloc", "--time=7", "--job-name=scrun:web", "--comment=scrun:c0ffee login1:/run/scrun"]
    assert not any(a.startswith("--comment=scrun") for a in build_salloc_argv("salloc", ("--comment=mine",), "x", comment))
    assert build_own_jobs_argv("squeue", 1000) == ["squeue", "--noheader", "--user=1000", f"--format={OWN_JOBS_FORMAT}"]
    out = ("12|RUNNING|None|n1|scrun:c0ffee login1:/run/scrun\n13|PENDING|Resources||scrun:beef login1:/run/scrun\n"
           "14|RUNNING|None|n2|a|b comment\n15|RUNNING|None|n3|(null)\n16|RUNNING|None|n1|scrun:other login2:/run/scrun\n"
           "17|RUNNING|None|n1|scrun:elsewhere login1:/tmp/root\nnot a line\n")
    jobs = parse_own_jobs(out, JOB_COMMENT_PREFIX, "login1:/run/scrun")
    assert sorted(jobs) == ["beef", "c0ffee"], "another login node's or root's containers are not ours to find"
    assert jobs["c0ffee"] == [(12, ("RUNNING", "", "n1"))] and jobs["beef"] == [(13, ("PENDING", "Resources", ""))]


def test_salloc_argv_holds_allocation():
    argv = build_salloc_argv("salloc", ("--time=7",), "scrun:x")
    assert argv[:3] == ["salloc", "--time=7", "--job-name=scrun:x"]
    assert argv[3:6] == ["--", "/bin/sh", "-c"] and HOLDER_READY in argv[6]
    assert build_salloc_argv("salloc", ("--job-name=mine",), "scrun:x").count("--job-name=mine") == 1
    assert not any(a.startswith("--job-name=scrun") for a in build_salloc_argv("salloc", ("--job-name=mine",), "scrun:x"))


def test_scancel_and_remote_command():
    assert build_scancel_argv("scancel", 5) == ["scancel", "5"]
    assert build_scancel_argv("scancel", 5, step="0", signal=9) == ["scancel", "--signal=9", "5.0"]
    assert build_remote_command_argv("srun", (), 5, "ls")[-4:] == ["--", "/bin/sh", "-c", "ls"]


@pytest.mark.parametrize("line,parsed", [
    ("salloc: Granted job allocation 42", ("granted", 42)),
    ("salloc: Pending job allocation 43", ("pending", 43)),
    ("salloc: job 43 queued and waiting for resources", ("queued", 43)),
    ("salloc: job 43 has been allocated resources", ("allocated", 43)),
    ("salloc: error: Job submit/allocate failed: Invalid partition name specified",
     ("error", "Job submit/allocate failed: Invalid partition name specified")),
    ("salloc: Relinquishing job allocation 42", None),
    ("salloc: error: Node failure on iso1", ("nodefail", "iso1")),  # 22.05 and 24.11, then "revoked"
    ("salloc: error: Node failure on iso1 (and more)", ("error", "Node failure on iso1 (and more)")),
])
def test_salloc_lines(line, parsed):
    assert parse_salloc_line(line) == parsed


def test_node_failure_lines_of_srun_and_salloc():
    from scrun.slurm.parse import parse_node_failure

    assert parse_node_failure("srun: error: Node failure on iso1") == "iso1"
    assert parse_node_failure("salloc: error: Node failure on n2\n") == "n2"
    assert parse_node_failure("my app: error: Node failure on n2") is None  # a container's own line
    assert parse_node_failure("srun: error: Node failure on n2 and more") is None


def test_versions_env_and_steps():
    assert parse_slurm_version("slurm-wlm 22.05.8") == (22, 5, 8)
    assert parse_slurm_version("slurm 23.02.7\n") == (23, 2, 7)
    with pytest.raises(ValueError):
        parse_slurm_version("nothing")
    assert parse_env0(b"A=1\0B=x\ny\0junk\0C=\0") == {"A": "1", "B": "x\ny", "C": ""}
    assert parse_step_list("12.0 scrun:c1\n12.1 lua-command\n12.extern extern\n") == [
        ("0", "scrun:c1"), ("1", "lua-command"), ("extern", "extern")]


# ---------------------------------------------------------------- outputs captured from both lanes

DATA = pathlib.Path(__file__).resolve().parents[1] / "data"


@pytest.mark.parametrize("version", ["22.05", "24.11"])
def test_step_list_of_both_versions(version):
    assert parse_step_list((DATA / f"squeue-steps-{version}.txt").read_text())[0][1] == "scrun:abc"


# Captured from a podman container in the 26.05 lane: names and ids are a real container's.
CID_26_05 = "56b8778a6dffcb4293dc6516b5e1eae3f7c48c12e4b24d7b06deeac5b1a23257"


def test_step_list_of_26_05():
    assert parse_step_list((DATA / "squeue-steps-26.05.txt").read_text()) == [("0", f"scrun:{CID_26_05[:58]}")]  # 64 bytes


def test_step_container_ids_from_26_05_which_adds_container_type():
    text = (DATA / "scontrol-show-step-26.05.txt").read_text()
    assert "ContainerType=(null)" in text
    assert parse_step_containers(text) == [("0", CID_26_05)]


def test_step_container_ids_from_24_11():
    text = (DATA / "scontrol-show-step-24.11.txt").read_text()
    assert parse_step_containers(text) == [("0", "abc123")]


def test_22_05_steps_have_no_container_id():
    # 22.05 shows Container= but has no ContainerID=: steps are found by name there.
    text = (DATA / "scontrol-show-step-22.05.txt").read_text()
    assert parse_step_containers(text) == [("0", "")]


@pytest.mark.parametrize("version, by_id", [((22, 5, 8), False), ((23, 2, 0), True), ((24, 11, 5), True),
                                            ((26, 5, 5), True)])
def test_step_lookup_follows_the_version(version, by_id):
    assert finds_step_by_container_id(version) is by_id
    argv = build_srun_argv("srun", [], job_id=1, step_name="scrun:x", container_id="x", bundle="/b", step_args=[],
                           pty=False, args=["true"], slurm_version=version)
    assert ("--container-id=x" in argv) is by_id
    assert build_step_show_argv("scontrol", 7) == ["scontrol", "--oneliner", "show", "step", "7"]


def test_job_info_for_list_and_the_pending_reason():
    from scrun.slurm.argv import build_job_info_argv
    from scrun.slurm.parse import JobInfo, parse_job_info

    assert build_job_info_argv("squeue", [12, 7]) == ["squeue", "--noheader", "--jobs=12,7", "--format=%i|%T|%r|%N"]
    # ended jobs (kept for MinJobAge) are left out by --jobs alone on 22.05 and 24.11
    assert build_job_info_argv("squeue", [12], ended_too=True)[-1] == "--states=all"
    text = "12|RUNNING|None|n[1-2]\n7|PENDING|Dependency|\n  9|PENDING|Resources|\nslurm_load_jobs error: Invalid job id\n1|x\n"
    assert parse_job_info(text) == {12: JobInfo("RUNNING", "", "n[1-2]"), 7: JobInfo("PENDING", "Dependency", ""),
                                    9: JobInfo("PENDING", "Resources", "")}


def test_job_states_for_the_slurm_job_id_check():
    from scrun.slurm.argv import build_job_state_argv
    from scrun.slurm.parse import parse_job_states

    assert build_job_state_argv("squeue", [12, 7]) == ["squeue", "--noheader", "--jobs=12,7", "--format=%i %T"]
    assert parse_job_states("12 RUNNING\n7 PENDING\nslurm_load_jobs error: Invalid job id specified\n") == {12: "RUNNING", 7: "PENDING"}
