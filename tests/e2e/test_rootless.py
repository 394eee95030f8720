"""Rootless podman (an unprivileged user, its own user namespace)."""
import shutil
import subprocess

import pytest

from conftest import IMAGE, require

pytestmark = pytest.mark.e2e
USER = "scrunuser"  # made by tools/devcluster.py


def as_user(command: str) -> subprocess.CompletedProcess:
    # --network none: slirp4netns cannot open /dev/net/tun in this sandbox.
    return subprocess.run(["runuser", "-u", USER, "--", "sh", "-c", f"cd /tmp && {command}"],
                          capture_output=True, text=True, timeout=180)


@pytest.fixture
def rootless(podman_ready):
    require(shutil.which("runuser") is not None and subprocess.run(["id", USER], capture_output=True).returncode == 0,
            f"user {USER} is missing (tools/devcluster.py up makes it)")


def test_rootless_podman_with_crun(rootless):
    proc = as_user(f"podman --runtime crun run --rm --network none {IMAGE} sh -c 'echo rootless; exit 3'")
    assert proc.stdout == "rootless\n" and proc.returncode == 3, proc.stderr


@pytest.mark.xfail(strict=True, reason="Slurm 22.05 salloc sends the namespace-local gid 0 from inside rootless "
                   "podman's user namespace and slurmctld refuses it (Requested GID=0 doesn't match user GID); "
                   "needs the allocation API with unset ids, as upstream scrun does, or a newer salloc")
def test_rootless_podman_with_scrun(rootless):
    proc = as_user(f"podman --runtime scrun run --rm --network none {IMAGE} sh -c 'echo rootless; exit 3'")
    assert proc.stdout == "rootless\n" and proc.returncode == 3, proc.stderr
