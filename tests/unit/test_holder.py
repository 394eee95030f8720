"""Which containers get their salloc before the anchor's loop exists, and with what (anchor.holder)."""
from __future__ import annotations

import pytest

from scrun.anchor.holder import holder_argv, holder_env, spawns_early
from scrun.anchor.request import AnchorRequest
from scrun.slurm.argv import HOLDER_SCRIPT


def request(**changes) -> AnchorRequest:
    fields = dict(
        root="/run/scrun", id="c1", bundle="/b", config_file="/b/config.json", args=("true",), terminal=False,
        console_socket=None, console_size=None, job_args=("--time=5",), step_args=(), job_name="scrun:c1",
        step_name="scrun:c1", srun_path="/opt/slurm/bin/srun", srun_args=(), slurm_conf="/etc/slurm/slurm.conf",
        existing_job_id=None, caller_slurm_env={}, lua_script=None, script_env={"SCRUN_CONTAINER_ID": "c1"},
        log_file=None, log_format="text", file_level=3, syslog_level=0, path_env="/usr/bin:/bin")
    fields.update(changes)
    return AnchorRequest(**fields)


def test_a_plain_container_requests_its_job_before_the_loop():
    assert spawns_early(request())


def test_a_site_scrun_lua_loads_while_the_job_is_requested():
    assert spawns_early(request(lua_script="/etc/slurm/scrun.lua"))


@pytest.mark.parametrize("change", [{"terminal": True, "console_socket": "/s"}, {"existing_job_id": 42}],
                         ids=["terminal first", "existing job"])
def test_what_must_happen_before_the_job_keeps_the_loops_order(change):
    assert not spawns_early(request(**change))


def test_salloc_is_the_one_next_to_the_configured_srun_and_holds_the_job():
    argv = holder_argv(request())
    assert argv[0] == "/opt/slurm/bin/salloc"
    assert "--time=5" in argv and "--job-name=scrun:c1" in argv
    assert argv[-3:] == ["/bin/sh", "-c", HOLDER_SCRIPT]
    assert holder_argv(request(srun_path="srun"))[0] == "salloc"  # found through PATH, as srun is


def test_salloc_gets_the_scrun_variables_and_our_path_and_slurm_conf():
    env = holder_env(request(), {"SCRUN_CONTAINER_ID": "c1", "PATH": "/lua/changed/it"})
    assert env == {"SCRUN_CONTAINER_ID": "c1", "PATH": "/usr/bin:/bin", "SLURM_CONF": "/etc/slurm/slurm.conf"}
