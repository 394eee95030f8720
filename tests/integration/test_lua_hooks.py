"""scrun.lua through the CLI on the real cluster: hook ordering when a stop arrives mid-stage-in."""
import os
import signal
import subprocess
import sys

import pytest

from conftest import jobs_named, wait_for

pytestmark = pytest.mark.integration


def test_stop_during_stage_in_runs_stage_out_after_it(slurm_cluster, scrun, make_bundle, tmp_path, conf_dir):
    conf = conf_dir
    marks = tmp_path / "marks"
    (conf / "scrun.lua").write_text(f"""
function slurm_scrun_stage_in(id, bundle, spool_dir, config_file, job_id, user_id, group_id, job_env)
    slurm.allocator_command("touch {marks}.in-started; sleep 2; touch {marks}.in-done")
    return slurm.SUCCESS
end
function slurm_scrun_stage_out(id, bundle, orig_bundle, root_path, orig_root_path, spool_dir, config_file, job_id, user_id, group_id)
    slurm.allocator_command("if [ -e {marks}.in-done ]; then echo ordered; else echo overlap; fi > {marks}.out")
    return slurm.SUCCESS
end
""")
    cid = scrun.new_id()
    create = subprocess.Popen([sys.executable, "-m", "scrun", "--root", str(scrun.root), "-f", str(conf / "slurm.conf"),
                               "create", "--bundle", str(make_bundle(["true"])), cid],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: os.path.exists(f"{marks}.in-started"), 30, "stage_in to start")
        anchor_pid = scrun.record(cid)["anchor_pid"]
        os.kill(anchor_pid, signal.SIGTERM)
        assert create.wait(timeout=60) != 0
    finally:
        if create.poll() is None:
            create.kill()
    assert open(f"{marks}.out").read().strip() == "ordered"
    assert not (scrun.root / cid).exists()
    wait_for(lambda: not jobs_named([f"scrun:{cid[:12]}"]), 30, "the job to go")


def test_remote_command_runs_in_the_job(slurm_cluster, scrun, make_bundle, tmp_path, conf_dir):
    conf = conf_dir
    seen = tmp_path / "remote.txt"
    (conf / "scrun.lua").write_text(f"""
function slurm_scrun_stage_in(id, bundle, spool_dir, config_file, job_id, user_id, group_id, job_env)
    local st, out = slurm.remote_command("echo job=$SLURM_JOB_ID cid=$SCRUN_CONTAINER_ID; exit 4")
    local f = io.open("{seen}", "w"); f:write(string.format("%d|%s", st, out)); f:close()
    return slurm.SUCCESS
end
function slurm_scrun_stage_out() return slurm.SUCCESS end
""")
    cid = scrun.new_id()
    assert scrun.create(cid, make_bundle(["true"]), global_args=("-f", str(conf / "slurm.conf"))).returncode == 0
    job = scrun.record(cid)["job_id"]
    status, output = seen.read_text().split("|", 1)
    assert status == "4"
    assert f"job={job} cid={cid}" in output
    assert scrun("delete", "--force", cid).returncode == 0
