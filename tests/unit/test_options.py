"""SCRUN_* table: every seed variable has a row; values become the right salloc/srun option."""
import re

import pytest

from conftest import SEED
from scrun.core.options import JOB, OPTION_TABLE, OPTIONS_BY_ENV, STEP, build_job_options, flag_is_set, merge_option_env
from scrun.errors import InvalidInputError

pytestmark = pytest.mark.unit

# Good value per variable; flags use "" (set by env). The expected option text follows.
GOOD = {row.env: ("", row.option) if row.check is None else None for row in OPTION_TABLE}
SAMPLES = {
    "SCRUN_ACCOUNT": "acct", "SCRUN_ACCTG_FREQ": "task=30", "SCRUN_BURST_BUFFER": "bb", "SCRUN_CLUSTER_CONSTRAINT": "c",
    "SCRUN_CLUSTERS": "c1", "SCRUN_CONSTRAINT": "fast", "SCRUN_CORE_SPEC": "1", "SCRUN_CPU_BIND": "cores",
    "SCRUN_CPU_FREQ_REQ": "high", "SCRUN_CPUS_PER_GPU": "2", "SCRUN_CPUS_PER_TASK": "2", "SCRUN_DELAY_BOOT": "5",
    "SCRUN_DEPENDENCY": "afterok:1", "SCRUN_DISTRIBUTION": "block", "SCRUN_EPILOG": "/bin/true", "SCRUN_GPU_BIND": "closest",
    "SCRUN_GPU_FREQ": "high", "SCRUN_GPUS": "1", "SCRUN_GPUS_PER_NODE": "1", "SCRUN_GPUS_PER_SOCKET": "1",
    "SCRUN_GPUS_PER_TASK": "1", "SCRUN_GRES_FLAGS": "enforce-binding", "SCRUN_GRES": "gpu:1", "SCRUN_HINT": "compute_bound",
    "SCRUN_JOB_NAME": "x", "SCRUN_JOB_NODELIST": "n1", "SCRUN_JOB_NUM_NODES": "2", "SCRUN_MEM_BIND": "local",
    "SCRUN_MEM_PER_CPU": "100", "SCRUN_MEM_PER_GPU": "1G", "SCRUN_MEM_PER_NODE": "512M", "SCRUN_MPI_TYPE": "pmix",
    "SCRUN_NCORES_PER_SOCKET": "2", "SCRUN_NETWORK": "sn", "SCRUN_NSOCKETS_PER_NODE": "1", "SCRUN_NTASKS": "2",
    "SCRUN_NTASKS_PER_CORE": "1", "SCRUN_NTASKS_PER_GPU": "1", "SCRUN_NTASKS_PER_NODE": "1", "SCRUN_NTASKS_PER_TRES": "1",
    "SCRUN_OPEN_MODE": "append", "SCRUN_PARTITION": "debug", "SCRUN_POWER": "level", "SCRUN_PROFILE": "task",
    "SCRUN_PROLOG": "/bin/true", "SCRUN_QOS": "normal", "SCRUN_REMOTE_CWD": "/tmp", "SCRUN_REQ_SWITCH": "1",
    "SCRUN_RESERVATION": "r", "SCRUN_SIGNAL": "USR1@60", "SCRUN_SLURMD_DEBUG": "verbose", "SCRUN_TASK_EPILOG": "/e",
    "SCRUN_TASK_PROLOG": "/p", "SCRUN_THREAD_SPEC": "1", "SCRUN_THREADS_PER_CORE": "1", "SCRUN_THREADS": "4",
    "SCRUN_TIMELIMIT": "7", "SCRUN_TRES_BIND": "gres/gpu:closest", "SCRUN_TRES_PER_TASK": "cpu=2", "SCRUN_WCKEY": "w",
    "SCRUN_WORKING_DIR": "/tmp", "SCRUN_WAIT4SWITCH": "10",
}
BAD = {
    "SCRUN_TIMELIMIT": "abc", "SCRUN_CPUS_PER_TASK": "zero", "SCRUN_MEM_PER_CPU": "lots", "SCRUN_JOB_NUM_NODES": "0",
    "SCRUN_NTASKS": "-1", "SCRUN_OPEN_MODE": "sideways", "SCRUN_SLURMD_DEBUG": "loud", "SCRUN_DELAY_BOOT": "soon",
    "SCRUN_REQ_SWITCH": "many", "SCRUN_CORE_SPEC": "x", "SCRUN_ACCOUNT": "  ",
}


def seed_job_variables() -> list[str]:
    text = SEED.read_text()
    section = text.split("Job Input Environment Variables", 1)[1].split("Output Environment Variables", 1)[0]
    names = re.findall(r"^(S(?:CRUN|LURM)_[A-Z0-9_]+)$", section, re.M)
    # The man page misspells SCRUN_CORE_SPEC as SLURM_CORE_SPEC.
    return ["SCRUN_CORE_SPEC" if n == "SLURM_CORE_SPEC" else n for n in names]


@pytest.mark.skipif(not SEED.exists(), reason="shared/seed/scrun.1.txt is not next to the repository")
def test_every_seed_variable_has_a_row():
    names = seed_job_variables()
    assert len(names) > 60
    missing = [n for n in names if n not in OPTIONS_BY_ENV]
    assert missing == []


def test_every_row_has_a_sample():
    assert set(SAMPLES) | {r.env for r in OPTION_TABLE if r.check is None} >= set(OPTIONS_BY_ENV)


@pytest.mark.parametrize("row", [r for r in OPTION_TABLE if r.env not in ("SCRUN_WAIT4SWITCH",)], ids=lambda r: r.env)
def test_value_becomes_option(row):
    value = "" if row.check is None else SAMPLES[row.env]
    opts = build_job_options({row.env: value})
    args = opts.job_args if row.target == JOB else opts.step_args
    other = opts.step_args if row.target == JOB else opts.job_args
    expected = row.option if row.check is None else f"{row.option}={value.strip()}"
    assert expected in args and expected not in other


@pytest.mark.parametrize("env,value", sorted(BAD.items()))
def test_bad_value_is_a_clear_error(env, value):
    with pytest.raises(InvalidInputError) as info:
        build_job_options({env: value})
    assert str(info.value).startswith(f'{env}="{value}": ')


def test_timelimit_message_is_the_documented_one():
    with pytest.raises(InvalidInputError, match=r'^SCRUN_TIMELIMIT="abc": not a valid time \(e.g. 10, 1:30:00, 2-00:00:00\)$'):
        build_job_options({"SCRUN_TIMELIMIT": "abc"})


@pytest.mark.parametrize("value,is_set", [("", True), ("yes", True), ("1", True), ("7", True), ("0", False), ("no", False), ("off", False)])
def test_flags_follow_set_by_env(value, is_set):
    assert flag_is_set(value) is is_set
    assert ("--exclusive" in build_job_options({"SCRUN_EXCLUSIVE": value}).job_args) is is_set


def test_step_only_options_go_to_the_step():
    opts = build_job_options({"SCRUN_CPU_BIND": "cores", "SCRUN_LABELIO": "1", "SCRUN_MPI_TYPE": "none"})
    assert opts.job_args == () and set(opts.step_args) == {"--cpu-bind=cores", "--label", "--mpi=none"}
    assert all(r.target in (JOB, STEP) for r in OPTION_TABLE)


def test_switches_and_working_dir_combine():
    opts = build_job_options({"SCRUN_REQ_SWITCH": "2", "SCRUN_WAIT4SWITCH": "5:00", "SCRUN_REMOTE_CWD": "/a", "SCRUN_WORKING_DIR": "/b"})
    assert "--switches=2@5:00" in opts.job_args
    assert opts.step_args == ("--chdir=/b",)
    with pytest.raises(InvalidInputError, match="SCRUN_WAIT4SWITCH"):
        build_job_options({"SCRUN_WAIT4SWITCH": "5"})


def test_container_env_overrides_caller_env():
    merged = merge_option_env({"SCRUN_PARTITION": "a", "SCRUN_QOS": "q", "HOME": "/"}, {"SCRUN_PARTITION": "b", "PATH": "/bin"})
    assert merged == {"SCRUN_PARTITION": "b", "SCRUN_QOS": "q"}
    assert build_job_options({"SCRUN_JOB_NAME": " x "}).job_name == "x"


# --- the engine's flags in config.json ------------------------------------------------------------

def test_engine_flags_become_scrun_values():
    from scrun.core.options import OPTIONS_BY_ENV
    from scrun.core.resources import requests_from_config

    doc = {"linux": {"resources": {"cpu": {"quota": 150000, "period": 100000}, "memory": {"limit": 1073741824 + 1}}},
           "annotations": {"org.slurm.partition": "debug", "org.slurm.time-limit": "x", "io.podman.x": "y"}}
    with pytest.raises(Exception, match="annotation org.slurm.time-limit: no such job option"):
        requests_from_config(doc, "/b/config.json", OPTIONS_BY_ENV)
    doc["annotations"].pop("org.slurm.time-limit")
    assert requests_from_config(doc, "/b/config.json", OPTIONS_BY_ENV) == {
        "SCRUN_CPUS_PER_TASK": "2", "SCRUN_MEM_PER_NODE": "1025M", "SCRUN_PARTITION": "debug"}
    cpuset = {"linux": {"resources": {"cpu": {"cpus": "0-3,8"}}}}
    assert requests_from_config(cpuset, "/b/config.json", OPTIONS_BY_ENV) == {"SCRUN_CPUS_PER_TASK": "5"}
    with pytest.raises(Exception, match="is not a cpu list"):
        requests_from_config({"linux": {"resources": {"cpu": {"cpus": "3-1"}}}}, "/b/config.json", OPTIONS_BY_ENV)
    assert requests_from_config({}, "/b/config.json", OPTIONS_BY_ENV) == {}
