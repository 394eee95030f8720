"""scrun.conf's StageDir: a site without a scrun.lua still gets every container to its nodes.

Here every path is visible to the nodes, so SharedPaths names only the stage directory: the
bundles made under the test's own tmp (standing for podman's storage) count as login-local."""
import json
import os
import stat

import pytest

from conftest import wait_for


@pytest.fixture
def staging_conf(conf_dir, tmp_path):
    stage = tmp_path / "scratch" / "scrun"
    stage.mkdir(parents=True)
    stage.chmod(0o1777)
    (conf_dir / "scrun.conf").write_text(f"StageDir={stage}\n")
    assert not (conf_dir / "scrun.lua").exists()
    return conf_dir, stage


def test_a_login_local_bundle_is_staged_runs_and_is_removed(scrun, make_bundle, staging_conf):
    conf_dir, stage = staging_conf
    cid = scrun.new_id()
    bundle = make_bundle(["sh", "-c", "cat /etc/staged-marker; echo ran; exit 3"])
    rootfs = json.loads((bundle / "config.json").read_text())["root"]["path"]
    flags = ("-f", str(conf_dir / "slurm.conf"))
    proc = scrun.create(cid, bundle, global_args=flags)
    assert proc.returncode == 0, proc.stderr
    copy = stage / "root" / cid
    record = scrun.record(cid)
    assert record["bundle"] == str(copy) and record["root_path"] == str(copy / "rootfs")
    assert stat.S_IMODE(os.stat(copy).st_mode) == 0o700 and stat.S_IMODE(os.stat(copy / "config.json").st_mode) == 0o600
    assert json.loads((copy / "config.json").read_text())["root"]["path"] == str(copy / "rootfs")
    assert os.path.exists(copy / "rootfs" / "bin" / "busybox") and not os.path.exists(os.path.join(rootfs, "etc", "staged-marker"))
    (copy / "rootfs" / "etc" / "staged-marker").write_text("from the copy\n")  # the step runs the copy
    assert scrun("start", cid, global_args=flags).returncode == 0
    record = scrun.wait_stopped(cid)
    assert record["exit_code"] == 3, record
    assert scrun.output(cid)[0] == "from the copy\nran\n"
    assert scrun("delete", cid, global_args=flags).returncode == 0
    wait_for(lambda: not copy.exists(), 10, "the copy to be removed")


def test_a_bundle_on_a_shared_path_runs_in_place(scrun, make_bundle, staging_conf, busybox_rootfs):
    conf_dir, stage = staging_conf
    cid = scrun.new_id()
    bundle = make_bundle(["true"], root_path=busybox_rootfs)
    (conf_dir / "scrun.conf").write_text(f"StageDir={stage}\nSharedPaths={busybox_rootfs.parent},{bundle}\n")
    flags = ("-f", str(conf_dir / "slurm.conf"))
    assert scrun.create(cid, bundle, global_args=flags).returncode == 0
    assert scrun.record(cid)["bundle"] == str(bundle) and not (stage / "root").exists()
    assert scrun("start", cid, global_args=flags).returncode == 0
    assert scrun.wait_stopped(cid)["exit_code"] == 0
    assert scrun("delete", cid, global_args=flags).returncode == 0


def test_a_stage_dir_made_first_by_someone_else_is_refused(scrun, make_bundle, staging_conf):
    conf_dir, stage = staging_conf
    (stage / "root").mkdir(mode=0o755)  # not private: refused, nothing copied, no job left
    cid = scrun.new_id()
    proc = scrun.create(cid, make_bundle(["true"]), global_args=("-f", str(conf_dir / "slurm.conf")))
    assert proc.returncode != 0 and "is not a private directory of yours" in proc.stderr, proc.stderr
    assert os.listdir(stage / "root") == [] and not (scrun.root / cid).exists()


def test_a_bad_scrun_conf_fails_create_with_file_and_line(scrun, make_bundle, conf_dir):
    (conf_dir / "scrun.conf").write_text("StageDir=/no/such/dir\n")
    cid = scrun.new_id()
    proc = scrun.create(cid, make_bundle(["true"]), global_args=("-f", str(conf_dir / "slurm.conf")))
    assert proc.returncode != 0 and f"{conf_dir / 'scrun.conf'}:1: StageDir /no/such/dir: not a directory" in proc.stderr


def test_doctor_reports_how_bundles_reach_the_nodes(scrun, staging_conf, conf_dir):
    conf, stage = staging_conf
    proc = scrun("doctor", global_args=("-f", str(conf / "slurm.conf")))
    assert f"StageDir {stage}; shared: {stage}" in proc.stdout, proc.stdout
    assert "/var/lib/containers login-local (staged)" in proc.stdout
    (conf / "scrun.conf").unlink()
    proc = scrun("doctor", global_args=("-f", str(conf / "slurm.conf")))
    assert proc.returncode != 0 and "no scrun.lua and no StageDir" in proc.stdout and "fix: set StageDir=" in proc.stdout
