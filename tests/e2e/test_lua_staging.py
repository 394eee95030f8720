"""scrun.lua under real podman: a project staging script, the seed's example unchanged, a failing stage-in."""
import os
import pathlib
import re
import subprocess

import pytest

from conftest import IMAGE, SEED, cluster_tool, sh

pytestmark = pytest.mark.e2e
DATA = pathlib.Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(autouse=True)
def _needs_podman(podman_ready):
    """Every test here drives podman (CI fails, not skips, without it)."""


def podman_env(conf_dir, *args, timeout=180):
    """podman hands runtimes no environment, so the test's slurm.conf goes in as a runtime flag."""
    return subprocess.run(["podman", "--runtime", "scrun", "--runtime-flag", f"slurm-conf={conf_dir / 'slurm.conf'}",
                           *args], capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)


def test_project_staging_script(conf_dir, tmp_path):
    stage_root = tmp_path / "stage"
    script = (DATA / "staging.lua").read_text().replace("/tmp/scrun-stage", str(stage_root))
    (conf_dir / "scrun.lua").write_text(script)
    proc = podman_env(conf_dir, "run", "--rm", IMAGE, "sh", "-c", "cat /staged-by-lua; cat /etc/hostname")
    assert proc.returncode == 0, proc.stderr.decode()
    first = proc.stdout.decode().splitlines()[0]
    assert re.fullmatch(r"job \d+ env entries \d+ first set", first), first
    assert stage_root.exists() and list(stage_root.iterdir()) == [], "stage_out must remove the staged copy"
    seen = pathlib.Path(f"{stage_root}.bundle-seen").read_text()
    assert seen.startswith(f"{stage_root}/job-"), seen


def test_failing_stage_in_fails_create_and_leaves_nothing(conf_dir, tmp_path):
    (conf_dir / "scrun.lua").write_text("""
function slurm_scrun_stage_in(id, bundle, spool_dir, config_file, job_id, user_id, group_id, job_env)
    slurm.log_error("no scratch space for %s", id)
    return slurm.ERROR
end
function slurm_scrun_stage_out() return slurm.SUCCESS end
""")
    before_jobs = sh(["squeue", "-h", "-o", "%i"]).stdout
    before_dirs = set(os.listdir("/run/scrun")) if os.path.isdir("/run/scrun") else set()
    proc = podman_env(conf_dir, "run", "--rm", IMAGE, "true")
    assert proc.returncode != 0
    assert b"no scratch space for" in proc.stderr
    assert sh(["squeue", "-h", "-o", "%i"]).stdout == before_jobs
    assert (set(os.listdir("/run/scrun")) if os.path.isdir("/run/scrun") else set()) <= before_dirs


def test_broken_script_fails_with_its_line(conf_dir):
    (conf_dir / "scrun.lua").write_text("function slurm_scrun_stage_in(\n")
    proc = podman_env(conf_dir, "run", "--rm", IMAGE, "true")
    assert proc.returncode != 0
    assert b"scrun.lua:2" in proc.stderr or b"scrun.lua:1" in proc.stderr


_seedlua = cluster_tool("seedlua")
SEED_SCRATCH_PATH = _seedlua.SEED_SCRATCH_PATH
seed_example = _seedlua.seed_example  # the seed's text as written, but for scratch_path


@pytest.mark.skipif(not SEED.exists(), reason="shared/seed/scrun.1.txt is not next to the repository")
def test_seed_example_runs_unchanged(conf_dir):
    (conf_dir / "scrun.lua").write_text(seed_example())
    proc = podman_env(conf_dir, "run", "--rm", IMAGE, "sh", "-c", "echo from-staged; echo job=$SLURM_JOB_ID; echo cid=$SCRUN_CONTAINER_ID")
    assert proc.returncode == 0, proc.stderr.decode()
    out = proc.stdout.decode().split()
    assert out[0] == "from-staged" and re.fullmatch(r"job=\d+", out[1])
    # Only the seed's stage_in puts job_env (with scrun's SCRUN_* output variables) into the container.
    assert re.fullmatch(r"cid=[0-9a-f]{64}", out[2]), out
    # Its own copy only: the directory is the seed's, which upstream's scrun (the bench) uses too.
    copy = pathlib.Path(f"{SEED_SCRATCH_PATH}0/slurm/scrun") / out[2].split("=", 1)[1]
    assert not copy.exists(), "the seed's stage_out removes its copy"
