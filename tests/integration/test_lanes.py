"""The namespace lane is isolated: starting and stopping it never touches the host's cluster."""
import os
import pathlib
import sys

import pytest

from conftest import REPO, cluster_tool, require, sh

pytestmark = pytest.mark.integration
lanes = cluster_tool("lanes")
DEVCLUSTER = [sys.executable, str(REPO / "tools" / "devcluster.py")]


def host_daemon_pids() -> dict[str, str]:
    pids = {}
    for pidfile in sorted(pathlib.Path("/run/slurm").glob("*.pid")):
        pids[pidfile.name] = pidfile.read_text().strip()
    return pids


def pid_namespace_members(ns: str) -> list[int]:
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/ns/pid") == ns:
                    members.append(int(entry))
            except OSError:
                pass
    return members


@pytest.mark.alone  # it stops lanes whose own tests would run beside it otherwise
def test_other_lanes_down_and_up_leave_nothing_and_the_host_cluster_alone(slurm_cluster):
    if os.environ.get("SCRUN_LANE_KIND") == "namespace":
        pytest.skip("runs from the host's own lane (it restarts the namespace lane it would run in)")
    native = lanes.native_lane()
    others = [spec for spec in lanes.LANES.values() if spec != native]
    assert others
    before = host_daemon_pids()
    assert "slurmctld.pid" in before
    job = sh(["salloc", "--no-shell", "--job-name=lane-isolation"]).stderr
    job_id = job.split("Granted job allocation ")[1].split()[0]
    try:
        for other in others:
            nslane = cluster_tool("nslane").NamespaceLane(other)
            target = nslane.target()
            require(target is not None, f"lane {other.name} is not running (make cluster)")
            ns = os.readlink(f"/proc/{target.init_pid}/ns/pid")
            down = sh([*DEVCLUSTER, "down", "--lane", other.name])
            assert down.returncode == 0, down.stderr
            assert nslane.target() is None
            assert pid_namespace_members(ns) == [], other.name  # nothing of the lane is left running
            assert other.name not in pathlib.Path("/proc/self/mountinfo").read_text()
            up = sh([*DEVCLUSTER, "up", "--lane", other.name, "--nodes", "3", "--pip",
                     str(pathlib.Path(sys.executable).with_name("pip"))], timeout=300)
            assert up.returncode == 0, up.stderr
            assert host_daemon_pids() == before
            assert sh(["squeue", "-h", "-j", job_id, "-o", "%T"]).stdout.strip() == "RUNNING"
            assert sh(["scontrol", "ping"]).returncode == 0
    finally:
        sh(["scancel", job_id])
