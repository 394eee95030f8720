"""The baseline the rest stands on: real srun --container on the local cluster."""
import pytest

from conftest import sh

pytestmark = pytest.mark.integration


def test_srun_container_runs_a_bundle(slurm_cluster, make_bundle):
    bundle = make_bundle(["sh", "-c", "echo hello from the bundle; exit 7"], local_rootfs=True)
    # An absolute command: srun >= 23.02 resolves a bare name on the node, not in the bundle.
    proc = sh(["srun", f"--container={bundle}", "--", "/bin/sh", "-c", "echo hello from the bundle; exit 7"])
    assert "hello from the bundle" in proc.stdout
    assert proc.returncode == 7


def test_multi_node_cluster_answers(slurm_cluster):
    if len(slurm_cluster) < 3:
        pytest.skip(f"cluster started with {len(slurm_cluster)} node(s); `make cluster` starts 3")
    proc = sh(["srun", "-N3", "--ntasks-per-node=1", "sh", "-c", "echo $SLURMD_NODENAME"])
    assert proc.returncode == 0
    assert sorted(proc.stdout.split()) == sorted(slurm_cluster)[:3]
