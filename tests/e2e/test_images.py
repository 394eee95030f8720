"""A realistic image, not only busybox: Debian minbase + python3 (~170 MB, tools/cluster/images.py)
through podman (root and rootless) and docker, staged to the nodes like any other image."""
import hashlib
import os
import shutil
import subprocess

import pytest

from conftest import cluster_tool, require, sh, wait_for

pytestmark = pytest.mark.e2e
PYTHON_IMAGE = cluster_tool("images").PYTHON
USER = cluster_tool("users").ROOTLESS_USER
DOCKER = "/usr/bin/docker" if shutil.which("/usr/bin/docker") else "docker"

# What a Python program of a user would do: its interpreter and libraries from the image, stdin
# read whole, a write to the image's root (writable, as under podman), an exit code of its own.
PROGRAM = r"""
import hashlib, platform, sys
data = sys.stdin.buffer.read()
with open("/var/tmp/written", "w") as fh:
    fh.write("ok")
release = dict(line.split("=", 1) for line in open("/etc/os-release").read().split("\n") if "=" in line)
print(release["ID"], platform.python_version_tuple()[0], hashlib.sha256(data).hexdigest(), open("/var/tmp/written").read())
print("to stderr", file=sys.stderr)
sys.exit(7)
"""
INPUT = os.urandom(200_000)
EXPECTED_OUT = f"debian 3 {hashlib.sha256(INPUT).hexdigest()} ok\n".encode()


def _engine(argv: list[str], user: str | None = None) -> subprocess.CompletedProcess:
    if user is not None:
        argv = ["runuser", "-u", user, "--", "env", "-C", "/tmp", *argv]
    return subprocess.run(argv, input=INPUT, capture_output=True, timeout=300)


def _jobs_gone() -> None:
    wait_for(lambda: not [j for j in sh(["squeue", "-h", "-o", "%j"]).stdout.split()
                          if j.startswith(("scrun:", "docker-"))], 60, "the test's jobs to end")


@pytest.mark.parametrize("who", ["podman", "rootless podman", "docker"])
def test_a_python_program_in_a_debian_image(slurm_cluster, who):
    if who == "docker":
        require(shutil.which(DOCKER) is not None, "docker is not installed")
        argv, user = [DOCKER, "run", "--rm", "-i", "--runtime", "scrun", "--network", "none"], None
        has = subprocess.run([DOCKER, "image", "inspect", PYTHON_IMAGE], capture_output=True).returncode == 0
    else:
        user = USER if who == "rootless podman" else None
        if user is not None:
            require(subprocess.run(["id", user], capture_output=True).returncode == 0, f"user {user} is missing")
        argv = ["podman", "--runtime", "scrun", "run", "--rm", "-i", "--network", "none"]
        has = _engine(["podman", "image", "exists", PYTHON_IMAGE], user).returncode == 0
    assert has, f"{who} has no {PYTHON_IMAGE}: `make cluster` loads it (tools/cluster/images.py)"
    proc = _engine([*argv, PYTHON_IMAGE, "python3", "-c", PROGRAM], user)
    assert (proc.returncode, proc.stdout) == (7, EXPECTED_OUT), proc.stderr.decode(errors="replace")[-2000:]
    assert proc.stderr.endswith(b"to stderr\n"), proc.stderr[-2000:]
    _jobs_gone()


def test_the_same_program_under_crun_is_the_baseline(slurm_cluster):
    proc = _engine(["podman", "--runtime", "crun", "run", "--rm", "-i", "--network", "none", PYTHON_IMAGE,
                    "python3", "-c", PROGRAM])
    assert (proc.returncode, proc.stdout) == (7, EXPECTED_OUT), proc.stderr.decode(errors="replace")[-2000:]


def test_the_image_is_realistic_in_size(slurm_cluster):
    """Big enough that staging it costs what a real image does (issue 28 measures that)."""
    size = int(sh(["podman", "image", "inspect", "--format", "{{.Size}}", PYTHON_IMAGE]).stdout.strip() or 0)
    assert size > 100 * 2**20, size
