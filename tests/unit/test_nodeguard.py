"""The node guard (core.nodeguard): its prolog run by /bin/sh as slurmstepd would, in a node
that set up a container and in one that ignored --container; and the srun line that carries it."""
import json
import os
import subprocess

import pytest

from scrun.core.nodeguard import (GUARD_ANNOTATION, GUARD_ENV, guard_config, guard_script, refusal_reason,
                                  refused_nodes)
from scrun.slurm.argv import build_srun_argv, split_task_prolog

pytestmark = pytest.mark.unit

NEW, OLD = (24, 11, 5), (22, 5, 8)
TOKEN = "0123abcd"


def run_prolog(guard, version, cwd, env=None, then_run=None):
    guard.mkdir(exist_ok=True)
    script = guard / "prolog"
    script.write_text(guard_script(version, str(guard), TOKEN, then_run))
    script.chmod(0o700)
    env = {"SLURMD_NODENAME": "n7", **(env or {})}
    return subprocess.run([str(script)], cwd=cwd, env=env, capture_output=True, text=True, timeout=10)


def test_from_23_02_the_token_in_the_task_env_passes_and_is_unset(tmp_path):
    guard = tmp_path / "guard"
    proc = run_prolog(guard, NEW, tmp_path, env={GUARD_ENV: TOKEN})
    assert proc.returncode == 0 and proc.stdout == f"unset {GUARD_ENV}\n"
    assert refused_nodes(os.listdir(guard)) == []


@pytest.mark.parametrize("env", [{}, {GUARD_ENV: "other"}, {GUARD_ENV: ""}])
def test_from_23_02_no_token_means_no_container_and_the_node_is_named(tmp_path, env):
    guard = tmp_path / "guard"
    proc = run_prolog(guard, NEW, guard, env=env)
    assert proc.returncode == 1 and proc.stdout == ""
    assert refused_nodes(os.listdir(guard)) == ["n7"]


def test_before_23_02_the_spool_config_with_the_token_passes(tmp_path):
    spool = tmp_path / "oci-job00012-00000"
    spool.mkdir()
    (spool / "config.json").write_text(json.dumps({"annotations": {GUARD_ANNOTATION: TOKEN}}))
    proc = run_prolog(tmp_path / "guard", OLD, spool)
    assert proc.returncode == 0 and proc.stdout == ""


@pytest.mark.parametrize("config", [None, {"annotations": {}}])
def test_before_23_02_a_cwd_without_our_config_is_refused(tmp_path, config):
    """The guard's own directory (the step's --chdir) has no config.json; a caller's --chdir
    may hold one, but not with this container's token."""
    cwd = tmp_path / "somewhere"
    cwd.mkdir()
    if config is not None:
        (cwd / "config.json").write_text(json.dumps(config))
    guard = tmp_path / "guard"
    assert run_prolog(guard, OLD, cwd).returncode == 1
    assert refused_nodes(os.listdir(guard)) == ["n7"]


def test_the_callers_task_prolog_runs_after_the_check_and_only_then(tmp_path):
    theirs = tmp_path / "theirs"
    theirs.write_text("#!/bin/sh\necho 'export FROM_THEM=1'\n")
    theirs.chmod(0o755)
    guard = tmp_path / "guard"
    ok = run_prolog(guard, NEW, tmp_path, env={GUARD_ENV: TOKEN}, then_run=str(theirs))
    assert ok.returncode == 0 and ok.stdout == f"unset {GUARD_ENV}\nexport FROM_THEM=1\n"
    refused = run_prolog(guard, NEW, tmp_path, then_run=str(theirs))
    assert refused.returncode == 1 and "FROM_THEM" not in refused.stdout


def test_guard_config_puts_the_token_where_each_version_looks_and_copies():
    config = {"process": {"args": ["sh"], "env": ["PATH=/bin", f"{GUARD_ENV}=stale"]}, "annotations": {"a": "b"}}
    new = guard_config(config, NEW, TOKEN)
    assert new["process"]["env"] == ["PATH=/bin", f"{GUARD_ENV}={TOKEN}"] and new["annotations"] == {"a": "b"}
    old = guard_config(config, OLD, TOKEN)
    assert old["annotations"] == {"a": "b", GUARD_ANNOTATION: TOKEN} and old["process"] is config["process"]
    assert config["process"]["env"][-1] == f"{GUARD_ENV}=stale" and GUARD_ANNOTATION not in config["annotations"]


def test_refusals_name_the_nodes():
    assert refused_nodes(["prolog", "refused-n2", "refused-n1", "config.json"]) == ["n1", "n2"]
    reason = refusal_reason(["n1", "n2"])
    assert "node n1, n2 ignored --container (no oci.conf there)" in reason and "nothing ran" in reason


def test_the_step_line_carries_the_guard_and_keeps_the_callers_chdir():
    base = dict(job_id=12, step_name="scrun:c1", container_id="c1", bundle="/s/node", pty=False, args=("sh",),
                slurm_version=NEW, guard="/s/node/guard", guard_prolog="/s/node/guard/prolog")
    argv = build_srun_argv("srun", (), step_args=("--label",), **base)
    assert argv[argv.index("--") - 2:argv.index("--")] == ["--task-prolog=/s/node/guard/prolog", "--chdir=/s/node/guard"]
    theirs = build_srun_argv("srun", (), step_args=("--chdir=/work",), **base)
    assert theirs.count("--chdir=/work") == 1 and "--chdir=/s/node/guard" not in theirs
    unguarded = build_srun_argv("srun", (), step_args=(), **{**base, "guard": None, "guard_prolog": None})
    assert not any(a.startswith(("--task-prolog", "--chdir")) for a in unguarded)


def test_split_task_prolog_takes_the_callers_out_of_the_step_args():
    assert split_task_prolog(("--label", "--task-prolog=/p")) == (("--label",), "/p")
    assert split_task_prolog(("--label",)) == (("--label",), None)
