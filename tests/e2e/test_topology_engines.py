"""Real podman (root and rootless) and docker onto a compute node that does not see the login node's storage
(tools/cluster/topology.py), with scrun.conf's built-in staging onto /scratch."""
import shutil
import subprocess

import pytest

from conftest import IMAGE, cluster_tool, readable_conf_dir, require

slurmconf, users = cluster_tool("slurmconf"), cluster_tool("users")
PARTITION = slurmconf.ISOLATED_PARTITION


@pytest.fixture
def site_conf(isolated_node, podman_ready):
    """A slurm.conf directory every user can read: no scrun.lua, scrun.conf staging onto /scratch."""
    conf = readable_conf_dir("scrun-topology-conf-")
    stage = slurmconf.STAGE_DIR  # made by the cluster tool (daemons.write_configs)
    (conf / "scrun.conf").write_text(f"StageDir={stage}\nSharedPaths={slurmconf.SCRATCH},/home\n")
    yield conf
    shutil.rmtree(conf)


def podman(conf, *args, user=None):
    argv = ["podman", "--runtime", "scrun", "--runtime-flag", f"slurm-conf={conf}/slurm.conf", "run", "--rm",
            "--network", "none", "-e", f"SCRUN_PARTITION={PARTITION}", *args]
    if user:
        argv = ["runuser", "-u", user, "--", "env", "-C", "/tmp", *argv]
    return subprocess.run(argv, capture_output=True, timeout=180, stdin=subprocess.DEVNULL)


def test_root_podman_default_storage_runs_on_the_node(site_conf):
    # The partition holds iso1 alone: a container that ran, ran there, from the staged copy.
    proc = podman(site_conf, IMAGE, "sh", "-c", "cat /etc/hostname >/dev/null && echo binds-ok; exit 7")
    assert proc.returncode == 7 and proc.stdout == b"binds-ok\n", proc.stderr


def test_root_podman_with_uid_mappings_runs_on_the_node(site_conf):
    proc = podman(site_conf, "--uidmap", "0:100000:65536", "--gidmap", "0:100000:65536", IMAGE, "sh", "-c",
                  "id -u; cat /proc/self/uid_map; exit 3")
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout.split()[:3] == [b"0", b"0", b"100000"]


def test_rootless_podman_runs_on_the_node(site_conf):
    proc = podman(site_conf, IMAGE, "sh", "-c", "echo as-user; exit 5", user=users.ROOTLESS_USER)
    assert proc.returncode == 5 and proc.stdout == b"as-user\n", proc.stderr


def test_docker_runs_on_the_node_through_the_staged_runtime(isolated_node):
    """docker passes the runtime no config of its own per container: daemon.json's `scrun-staged`
    runtime gives scrun the cluster's staged slurm.conf directory (no scrun.lua, built-in staging).
    docker's /etc/hosts, /etc/hostname, /etc/resolv.conf (files in /var/lib/docker) and its /dev/shm
    go with the copy; its libnetwork hook (a login-node pid) is dropped."""
    docker_bin = "/usr/bin/docker" if shutil.which("/usr/bin/docker") else "docker"
    info = subprocess.run([docker_bin, "info", "--format", "{{json .Runtimes}}"], capture_output=True, text=True, timeout=60)
    require(info.returncode == 0 and "scrun-staged" in info.stdout, f"dockerd has no scrun-staged runtime: {info.stderr}")
    proc = subprocess.run([docker_bin, "run", "--rm", "--runtime", "scrun-staged", "--network", "none", "-e",
                           f"SCRUN_PARTITION={PARTITION}", IMAGE, "sh", "-c",
                           "cat /etc/hostname /etc/hosts >/dev/null && echo binds-ok; df /dev/shm >/dev/null && echo shm-ok; exit 6"],
                          capture_output=True, timeout=180, stdin=subprocess.DEVNULL)
    assert proc.returncode == 6 and proc.stdout == b"binds-ok\nshm-ok\n", proc.stderr
