"""SCRUN_* from the caller's environment (podman drops it; the CLI and docker's shim keep it)."""
import pytest

from conftest import sh

pytestmark = pytest.mark.integration


def test_caller_env_options_reach_the_job(slurm_cluster, scrun, make_bundle):
    cid = scrun.new_id()
    env = {"SCRUN_JOB_NAME": f"caller-{cid}", "SCRUN_TIMELIMIT": "7", "SCRUN_CPUS_PER_TASK": "2", "SCRUN_MEM_PER_CPU": "100"}
    assert scrun.create(cid, make_bundle(["true"]), env=env).returncode == 0
    show = sh(["scontrol", "show", "job", str(scrun.record(cid)["job_id"])]).stdout
    assert f"JobName=caller-{cid}" in show and "TimeLimit=00:07:00" in show
    assert "MinCPUsNode=2" in show and "MinMemoryCPU=100M" in show
    assert scrun("delete", cid).returncode == 0


def test_container_env_beats_caller_env(slurm_cluster, scrun, make_bundle):
    cid = scrun.new_id()
    bundle = make_bundle(["true"], env=["SCRUN_TIMELIMIT=9"])
    assert scrun.create(cid, bundle, env={"SCRUN_TIMELIMIT": "3"}).returncode == 0
    assert "TimeLimit=00:09:00" in sh(["scontrol", "show", "job", str(scrun.record(cid)["job_id"])]).stdout
    assert scrun("delete", cid).returncode == 0


def test_step_options_apply_to_the_step(slurm_cluster, scrun, make_bundle):
    cid = scrun.new_id()
    bundle = make_bundle(["sh", "-c", "echo labelled"], env=["SCRUN_LABELIO=1"])
    assert scrun.create(cid, bundle).returncode == 0
    assert scrun("start", cid).returncode == 0
    assert scrun.wait_stopped(cid)["exit_code"] == 0
    assert scrun.output(cid)[0].strip() == "0: labelled"
    assert scrun("delete", cid).returncode == 0


def test_unknown_partition_is_a_clear_create_error(slurm_cluster, scrun, make_bundle):
    cid = scrun.new_id()
    proc = scrun.create(cid, make_bundle(["true"]), env={"SCRUN_PARTITION": "nosuchpartition"})
    assert proc.returncode == 1
    assert "job allocation failed" in proc.stderr and "nvalid partition" in proc.stderr
    assert not (scrun.root / cid).exists()
