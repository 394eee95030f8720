"""slurm.conf/oci.conf next to each other (-f), log levels reaching the anchor, JSON logs for engines."""
import json
import os

import pytest

pytestmark = pytest.mark.integration


def test_json_log_gets_the_error(scrun, make_bundle, tmp_path):
    log = tmp_path / "oci-log"
    cid = scrun.new_id()
    proc = scrun.create(cid, make_bundle(["/no/such/program"]), global_args=("--log", str(log), "--log-format", "json"))
    assert proc.returncode == 1
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert any(d["level"] == "error" and "/no/such/program" in d["msg"] and d["time"] for d in lines)


def test_oci_conf_file_debug_reaches_the_anchor(scrun, make_bundle, conf_dir):
    with open(conf_dir / "oci.conf", "a") as fh:
        fh.write("FileDebug=debug\nDisableCleanup=true\n")
    cid = scrun.new_id()
    assert scrun.create(cid, make_bundle(["true"]), global_args=("-f", str(conf_dir / "slurm.conf"))).returncode == 0
    assert "debug: " in (scrun.root / cid / "anchor.log").read_text()
    assert scrun("delete", "--force", cid).returncode == 0


def test_bad_oci_conf_fails_with_file_and_line(scrun, make_bundle, conf_dir):
    with open(conf_dir / "oci.conf", "a") as fh:
        fh.write("NoSuchKey=1\n")
    nlines = len((conf_dir / "oci.conf").read_text().splitlines())
    cid = scrun.new_id()
    proc = scrun.create(cid, make_bundle(["true"]), global_args=("--slurm-conf", str(conf_dir / "slurm.conf")))
    assert proc.returncode == 1
    assert f"{conf_dir / 'oci.conf'}:{nlines}: unknown oci.conf key 'NoSuchKey'" in proc.stderr
    assert not scrun.root.exists() or os.listdir(scrun.root) == []


def test_missing_slurm_conf_names_the_fix(scrun, make_bundle, tmp_path):
    cid = scrun.new_id()
    proc = scrun.create(cid, make_bundle(["true"]), global_args=("-f", str(tmp_path / "nope.conf")))
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"scrun: error: cannot read {tmp_path / 'nope.conf'}: No such file (set SLURM_CONF or pass -f)"


def test_srun_gone_at_start_stops_the_container(scrun, make_bundle, conf_dir, tmp_path):
    """SrunPath from oci.conf; if it disappears between create and start, start fails and the
    container is stopped with the reason (not left `created` for ever)."""
    import shutil

    bindir = tmp_path / "bin"
    bindir.mkdir()
    shutil.copy2("/usr/bin/srun", bindir / "srun")
    shutil.copy2("/usr/bin/salloc", bindir / "salloc")
    with open(conf_dir / "oci.conf", "a") as fh:
        fh.write(f"SrunPath={bindir / 'srun'}\n")
    cid = scrun.new_id()
    assert scrun.create(cid, make_bundle(["true"]), global_args=("-f", str(conf_dir / "slurm.conf"))).returncode == 0
    (bindir / "srun").unlink()
    started = scrun("start", cid)
    assert started.returncode == 1 and "cannot launch the step" in started.stderr
    assert scrun.wait_stopped(cid)["exit_code"] == 127
    assert scrun("delete", cid).returncode == 0
