"""A compute node shaped like a real one (tools/cluster/topology.py): it sees /home, /scratch and
the system, not the login node's /tmp, /run or engine storage. What runs on one filesystem only
fails there; what scrun stages runs."""
import json
import os
import shutil
import pathlib
import subprocess
import tempfile
import uuid

import pytest

from conftest import cluster_tool, sh, wait_for

slurmconf = cluster_tool("slurmconf")
NODE, PARTITION = slurmconf.ISOLATED_NODE, slurmconf.ISOLATED_PARTITION


@pytest.fixture
def login_tmp():
    """A directory on the login node only (its /tmp): what podman's and docker's storage is to a node."""
    path = pathlib.Path(tempfile.mkdtemp(prefix="scrun-login-only-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def on_node(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return sh(["srun", f"--partition={PARTITION}", "--nodes=1", *argv], timeout=timeout)


def test_the_node_sees_scratch_but_not_the_login_nodes_tmp_or_processes(isolated_node, scratch_dir, tmp_path):
    login_only = f"/tmp/login-only-{uuid.uuid4().hex[:8]}"
    open(login_only, "w").close()
    shared = os.path.join(scratch_dir, "shared-file")
    open(shared, "w").close()
    try:
        proc = on_node("sh", "-c", f"hostname; test -e {login_only} && echo SAW-TMP; test -e {shared} && echo SAW-SCRATCH; "
                       f"test -e /run/munge/munge.socket.2 && echo MUNGE; echo STORAGE=$(ls -A /var/lib/containers | wc -l); "
                       f"test -d /proc/{os.getpid()} && echo SAW-PID; true")
    finally:
        os.unlink(login_only)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.split()
    assert lines[0] == NODE and "SAW-SCRATCH" in lines and "MUNGE" in lines
    assert "SAW-TMP" not in lines and "SAW-PID" not in lines and "STORAGE=0" in lines, lines


def test_a_bundle_on_the_login_node_fails_there_and_the_same_under_scratch_runs(isolated_node, scratch_dir, make_bundle,
                                                                                busybox_rootfs, login_tmp):
    bundle = make_bundle(["sh", "-c", "echo from-the-node; exit 0"], under=login_tmp)
    # /bin/sh by path: srun >= 23.02 resolves a bare name on the node, not in the bundle.
    local = on_node(f"--container={bundle}", "/bin/sh", "-c", "echo from-the-node")
    assert local.returncode != 0 and "from-the-node" not in local.stdout
    shared = os.path.join(scratch_dir, "bundle")
    shutil.copytree(busybox_rootfs, os.path.join(shared, "rootfs"), symlinks=True)
    config = json.loads((bundle / "config.json").read_text())
    config["root"] = {"path": "rootfs", "readonly": False}
    with open(os.path.join(shared, "config.json"), "w") as fh:
        json.dump(config, fh)
    ran = on_node(f"--container={shared}", "/bin/sh", "-c", "echo from-the-node")
    assert ran.returncode == 0 and ran.stdout == "from-the-node\n", ran.stderr


@pytest.fixture
def staging_conf(conf_dir):
    """The cluster's config with scrun.conf's built-in staging onto /scratch, and no scrun.lua."""
    stage = slurmconf.STAGE_DIR  # made by the cluster tool (daemons.write_configs)
    (conf_dir / "scrun.conf").write_text(f"StageDir={stage}\nSharedPaths={slurmconf.SCRATCH},/home\n")
    return conf_dir


def test_scrun_stages_a_login_local_bundle_and_it_runs_on_the_node(isolated_node, scrun, make_bundle, staging_conf,
                                                                  login_tmp):
    cid = scrun.new_id()
    bundle = make_bundle(["sh", "-c", "echo out; echo err >&2; exit 3"], under=login_tmp)
    flags = ("-f", str(staging_conf / "slurm.conf"))
    proc = scrun.create(cid, bundle, env={"SCRUN_PARTITION": PARTITION}, global_args=flags)
    assert proc.returncode == 0, proc.stderr
    copy = scrun.record(cid)["bundle"]
    assert copy.startswith(f"{slurmconf.SCRATCH}/scrun/root/"), copy
    assert scrun("start", cid, global_args=flags).returncode == 0
    record = scrun.wait_stopped(cid)
    assert record["exit_code"] == 3 and record["nodes"] == NODE, record
    assert scrun.output(cid) == ("out\n", "err\n")
    assert scrun("delete", cid, global_args=flags).returncode == 0
    assert not os.path.exists(copy)


def test_without_staging_a_login_local_bundle_fails_at_create_with_the_fix(isolated_node, scrun, make_bundle, conf_dir,
                                                                            login_tmp, busybox_rootfs):
    """No scrun.lua and no StageDir: nothing can bring a rootfs in the login node's /tmp to a
    node. create says so in one line naming the path and the fix, and leaves nothing behind."""
    cid = scrun.new_id()
    (conf_dir / "scrun.conf").unlink()  # the cluster's staging
    flags = ("-f", str(conf_dir / "slurm.conf"))
    rootfs = login_tmp / "rootfs"
    shutil.copytree(busybox_rootfs, rootfs, symlinks=True)
    bundle = make_bundle(["sh", "-c", "echo ran; exit 0"], under=login_tmp, root_path=rootfs)
    proc = scrun.create(cid, bundle, env={"SCRUN_PARTITION": PARTITION}, global_args=flags)
    assert proc.returncode != 0, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and f"rootfs {rootfs} is under /tmp" in lines[0], proc.stderr
    assert f"StageDir= (a directory every node mounts) in {conf_dir}/scrun.conf" in lines[0], lines[0]
    assert scrun("state", cid, global_args=flags).returncode != 0
    assert not os.path.exists(os.path.join(scrun.root, cid)), "no state directory is left"
    assert cid[:12] not in sh(["squeue", "-h", "-o", "%j"]).stdout, "no job is left"


def test_a_node_without_oci_conf_runs_nothing_and_says_why(node_without_oci_conf, scrun, make_bundle, scratch_dir):
    """Slurm ignores --container on a node without oci.conf and runs the command on the node
    itself (the bare srun below shows it). scrun's guard (core.nodeguard) stops the step before
    its command runs: 255 and a reason naming the node; nothing ran; delete leaves nothing."""
    os.chmod(scratch_dir, 0o777)
    bare_marker, marker = os.path.join(scratch_dir, "bare-ran"), os.path.join(scratch_dir, "ran")
    bundle = make_bundle(["/bin/sh", "-c", f"touch {marker}; echo ran"])
    bare = on_node(f"--container={bundle}", "/bin/sh", "-c", f"touch {bare_marker}; echo ran")
    assert bare.returncode == 0 and os.path.exists(bare_marker), "the node should ignore --container (test set-up)"
    cid = scrun.new_id()
    assert scrun.create(cid, bundle, env={"SCRUN_PARTITION": PARTITION}).returncode == 0
    scrun("start", cid)
    record = scrun.wait_stopped(cid)
    reason = scrun.state(cid).get("reason", "")
    assert not os.path.exists(marker) and "ran" not in scrun.output(cid)[0], "the command ran on the node's host"
    assert record["exit_code"] == 255, record
    assert f"node {NODE} ignored --container (no oci.conf there)" in reason and "nothing ran" in reason, reason
    job = record["job_id"]
    assert scrun("delete", cid).returncode == 0
    wait_for(lambda: str(job) not in sh(["squeue", "-h", "-o", "%i"]).stdout.split(), 60, f"job {job} to leave the queue")
    assert not os.path.exists(os.path.join(slurmconf.STAGE_DIR, "root", cid)), "the staged copy is removed"


def test_the_guard_is_invisible_in_the_container(isolated_node, scrun, make_bundle):
    """The guard's token never reaches the container's environment (24.11 unsets it; 22.05 uses
    an annotation); the container's own environment and working directory are intact."""
    cid = scrun.new_id()
    bundle = make_bundle(["/bin/sh", "-c", "env; pwd"])
    assert scrun.create(cid, bundle, env={"SCRUN_PARTITION": PARTITION}).returncode == 0
    assert scrun("start", cid).returncode == 0
    record = scrun.wait_stopped(cid)
    out = scrun.output(cid)[0]
    assert record["exit_code"] == 0, (record, scrun.output(cid))
    assert "SCRUN_NODE_GUARD" not in out and out.rstrip().endswith("\n/"), out
    assert scrun("delete", cid).returncode == 0


def test_a_node_that_dies_for_good_ends_the_container_with_a_reason(isolated_node, scrun, make_bundle):
    """The node's namespaces are killed under a running container (slurmd and slurmstepd with
    them) and not restarted: after SlurmdTimeout (30 s here) slurmctld ends the job. The container
    stops with 137 and says which node was lost; delete leaves nothing. Last in this file: the
    node is down after it (the next module's fixture starts it again)."""
    cid = scrun.new_id()
    bundle = make_bundle(["sh", "-c", "echo up; sleep 300"])
    assert scrun.create(cid, bundle, env={"SCRUN_PARTITION": PARTITION}).returncode == 0
    assert scrun("start", cid).returncode == 0
    job = scrun.record(cid)["job_id"]
    wait_for(lambda: scrun.output(cid)[0] == "up\n", 30, "the container to run")
    cluster_tool("topology").stop(NODE, mark_down=False)
    record = scrun.wait_stopped(cid, timeout=120)
    reason = scrun.state(cid).get("reason", "")
    assert record["exit_code"] != 0 and reason, record
    assert scrun("delete", cid).returncode == 0
    wait_for(lambda: str(job) not in sh(["squeue", "-h", "-o", "%i"]).stdout.split(), 60, f"job {job} to leave the queue")
    named = record["exit_code"] == 137 and f"job {job} lost its node {NODE}: the node failed" in record["stopped_reason"]
    if not named:
        # Seen in about half the runs, on both lanes: srun ends before salloc says "Node failure",
        # and the anchor gives the generic reason. Issue 33's note.
        pytest.xfail(f"the node failure was not named: exit {record['exit_code']}, reason {record['stopped_reason']!r}")
    assert named, record
    assert f"lost its node {NODE}" in reason, reason
