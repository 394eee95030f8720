"""scrun doctor on the project's cluster: every check passes, and each fails with its fix when its
cause is staged."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import sh

pytestmark = pytest.mark.integration


def doctor(scrun, *args, env=None, global_args=()):
    proc = scrun("doctor", *args, env=env, global_args=global_args)
    return proc, proc.stdout


def line(out: str, name: str) -> str:
    """The check's line and, for a failure, its fix line."""
    lines = out.splitlines()
    for i, text in enumerate(lines):
        if text[6:].startswith(name + " ") or text[6:] == name:
            return "\n".join(lines[i:i + 2] if text.startswith("FAIL") else lines[i:i + 1])
    raise AssertionError(f"no {name!r} line in:\n{out}")


def test_doctor_passes_on_the_cluster(slurm_cluster, scrun):
    proc, out = doctor(scrun)
    assert proc.returncode == 0, out + proc.stderr
    assert "FAIL" not in out and "slurmctld" in out and "UP" in line(out, "slurmctld")
    checks = json.loads(doctor(scrun, "--json")[1])
    assert {c["name"] for c in checks} >= {"slurm.conf", "slurmctld", "oci.conf", "scrun.lua", "state root",
                                          "subuid/subgid", "docker runtime"}
    assert all(c["ok"] for c in checks), checks


def test_doctor_runs_a_real_container_end_to_end(slurm_cluster, scrun, make_bundle):
    proc, out = doctor(scrun, "--allocate", "--bundle", str(make_bundle(["true"])))
    assert proc.returncode == 0, out + proc.stderr
    end = line(out, "end to end")
    assert end.startswith("ok") and "create" in end and "start" in end and "delete" in end and "job " in end, end
    assert not any(p.name.startswith("scrun-doctor") for p in scrun.root.iterdir())
    proc, out = doctor(scrun, "--allocate")
    assert proc.returncode == 1 and "--allocate needs --bundle" in line(out, "end to end")


@pytest.fixture
def conf_copy(tmp_path):
    """A copy of this cluster's Slurm configuration directory, to break one thing in."""
    conf = tmp_path / "etc-slurm"
    shutil.copytree(os.path.dirname(os.environ.get("SLURM_CONF", "/etc/slurm/slurm.conf")), conf)
    return conf


def test_unreadable_slurm_conf(slurm_cluster, scrun, tmp_path):
    proc, out = doctor(scrun, global_args=("-f", str(tmp_path / "nowhere.conf")))
    assert proc.returncode == 1
    assert line(out, "slurm.conf").startswith("FAIL") and "fix: set SLURM_CONF or pass -f" in line(out, "slurm.conf")


def test_unreachable_slurmctld(slurm_cluster, scrun, conf_copy):
    conf = conf_copy / "slurm.conf"
    text = "\n".join(ln for ln in conf.read_text().splitlines() if not ln.lower().startswith("slurmctldport"))
    conf.write_text(text + "\nSlurmctldPort=1\n")
    proc, out = doctor(scrun, global_args=("-f", str(conf)))
    assert proc.returncode == 1 and line(out, "slurmctld").startswith("FAIL"), out
    assert "fix: start slurmctld" in line(out, "slurmctld")


def test_bad_oci_conf(slurm_cluster, scrun, conf_copy):
    with open(conf_copy / "oci.conf", "a") as fh:
        fh.write("NoSuchKey=1\n")
    proc, out = doctor(scrun, global_args=("-f", str(conf_copy / "slurm.conf")))
    assert proc.returncode == 1 and "NoSuchKey" in line(out, "oci.conf") and "fix:" in line(out, "oci.conf"), out


def test_scrun_lua_without_stage_out(slurm_cluster, scrun, conf_copy):
    (conf_copy / "scrun.lua").write_text("function slurm_scrun_stage_in() return slurm.SUCCESS end\nreturn slurm.SUCCESS\n")
    proc, out = doctor(scrun, global_args=("-f", str(conf_copy / "slurm.conf")))
    result = line(out, "scrun.lua")
    assert proc.returncode == 1 and result.startswith("FAIL") and "slurm_scrun_stage_out" in result, out


def test_state_root_that_is_a_file(slurm_cluster, scrun, tmp_path):
    (tmp_path / "file").write_text("")
    proc = subprocess.run([sys.executable, "-m", "scrun", "--root", str(tmp_path / "file"), "doctor"],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert proc.returncode == 1 and "is not a directory" in line(proc.stdout, "state root"), proc.stdout


def test_podman_without_scrun_registered(slurm_cluster, scrun, tmp_path):
    if not shutil.which("podman"):
        pytest.fail("podman is not installed: the cluster tool installs it")
    conf = tmp_path / "containers.conf"
    conf.write_text('[engine]\nruntime_supports_json = ["crun"]\n')
    proc, out = doctor(scrun, env={"CONTAINERS_CONF": str(conf)})
    assert proc.returncode == 1
    assert line(out, "podman runtime").startswith("FAIL") and "fix: add [engine.runtimes] scrun" in line(out, "podman runtime")
    assert line(out, "podman json").startswith("FAIL") and "runtime_supports_json" in line(out, "podman json")


def test_a_user_without_subordinate_ids_or_docker(slurm_cluster):
    """nobody: no /etc/subuid range for rootless podman, no rootless docker configuration."""
    proc = sh(["runuser", "-u", "nobody", "--", "env", "HOME=/nonexistent", "scrun", "doctor"], check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert line(proc.stdout, "subuid/subgid").startswith("FAIL") and "usermod --add-subuids" in proc.stdout
    if shutil.which("dockerd"):
        assert "daemon.json" in line(proc.stdout, "docker runtime") and "fix:" in line(proc.stdout, "docker runtime")
