"""Debian packages: what a lane needs, and installing what the host lacks."""
from __future__ import annotations

import os

from cluster.shell import ClusterError, run, say

# Everything a lane needs, host or rootfs alike.
LANE_PACKAGES = [
    "slurmctld", "slurmd", "slurm-client", "munge", "crun", "podman", "conmon",
    "rsync", "busybox-static", "uidmap", "fuse-overlayfs", "slirp4netns", "tmux",
    "iproute2", "procps", "python3-venv", "docker.io", "rootlesskit",
    "git",  # tests/integration/test_upgrade.py builds the previous release from the checkout's history
    "man-db",  # `man scrun` from the installed wheel (tests/e2e/test_packaging.py)
]
# Packages that exist from some Debian release on (trixie split docker's CLI out of docker.io),
# or that only a release's lane uses: lua-json is the `json` module the man page's scrun.lua
# requires, for upstream's C scrun (Lua 5.1) that trixie's slurm-client ships (bench/run.py).
SUITE_EXTRA = {"trixie": ["docker-cli", "lua-json"], "sid": ["docker-cli", "lua-json"]}
# unstable's Release carries a Valid-Until a week ahead; a mirror that is a snapshot (as here)
# goes past it, and apt then refuses the whole suite. Checked for unstable only.
SUITE_APT_OPTIONS = {"sid": ['Acquire::Check-Valid-Until "false"']}


def lane_packages(suite: str) -> list[str]:
    """What a lane on Debian `suite` needs."""
    return LANE_PACKAGES + SUITE_EXTRA.get(suite, [])


# A namespace lane's rootfs also needs an init, and what podman 5 takes as recommended.
ROOTFS_EXTRA = ["python3", "catatonit", "netavark", "passt", "iptables", "ca-certificates"]
# On the host for every lane, the native one too: mmdebstrap builds the test images
# (cluster/images.py) and the other Debians' rootfs; golang-go and make build the OCI
# validation suite (tools/conformance.py), which lanes reuse.
HOST_TOOLS = ["mmdebstrap", "golang-go", "make", "groff-base"]  # groff: tests/unit/test_manpages.py


def missing(packages: list[str]) -> list[str]:
    out = run(["dpkg-query", "-W", "-f=${Package} ${db:Status-Status}\n", *packages], check=False).stdout
    installed = {line.split()[0] for line in out.splitlines() if line.endswith(" installed")}
    return [p for p in packages if p not in installed]


def ensure_host_packages(packages: list[str]) -> None:
    lacking = missing(packages)
    if not lacking:
        return
    if os.geteuid() != 0:
        raise ClusterError(f"packages missing ({' '.join(lacking)}): run as root so they can be installed")
    say(f"installing {' '.join(lacking)} (apt-get)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    upd = run(["apt-get", "update", "-qq"], check=False, env=env)
    if upd.returncode != 0:
        raise ClusterError(f"apt-get update failed (is the Debian mirror reachable?): {upd.stderr.strip()[-500:]}")
    inst = run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *lacking], check=False, env=env)
    if inst.returncode != 0:
        raise ClusterError(f"apt-get install {' '.join(lacking)} failed: {inst.stderr.strip()[-800:]}")
