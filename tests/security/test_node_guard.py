"""The node guard (core.nodeguard) against a hostile image: a container that names the guard's
token in its own environment (an image's ENV, `-e`) must not pass the guard on a node that would
run its command outside any container."""
import os

import pytest

from conftest import cluster_tool, sh, wait_for

slurmconf = cluster_tool("slurmconf")
NODE, PARTITION = slurmconf.ISOLATED_NODE, slurmconf.ISOLATED_PARTITION


@pytest.fixture
def marker_dir(scratch_dir):
    os.chmod(scratch_dir, 0o777)
    return scratch_dir


@pytest.mark.parametrize("forged", ["SCRUN_NODE_GUARD=", "SCRUN_NODE_GUARD=0123456789abcdef0123456789abcdef"])
def test_a_token_in_the_images_environment_does_not_pass_the_guard(node_without_oci_conf, scrun, make_bundle,
                                                                   marker_dir, forged):
    marker = os.path.join(marker_dir, "ran-on-the-node")
    cid = scrun.new_id()
    bundle = make_bundle(["/bin/sh", "-c", f"touch {marker}; echo ran"], env=[forged])
    assert scrun.create(cid, bundle, env={"SCRUN_PARTITION": PARTITION}).returncode == 0
    scrun("start", cid)
    record = scrun.wait_stopped(cid)
    assert not os.path.exists(marker) and "ran" not in scrun.output(cid)[0], "the command ran on the node's host"
    assert record["exit_code"] == 255 and f"node {NODE} ignored --container" in record["stopped_reason"], record
    job = record["job_id"]
    assert scrun("delete", cid).returncode == 0
    wait_for(lambda: str(job) not in sh(["squeue", "-h", "-o", "%i"]).stdout.split(), 60, f"job {job} to leave the queue")
