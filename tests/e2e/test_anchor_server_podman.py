"""podman through the anchor server (`AnchorServer=yes`; issue 30), as root and as a rootless
user: detached containers, `stop`, exit codes and removal behave as with an anchor per
container, and the pid podman watches is the container's waiter."""
import shutil

import pytest

from conftest import IMAGE, anchor_servers, cluster_tool, readable_conf_dir, sh, wait_for

pytestmark = pytest.mark.e2e
ROOTLESS = cluster_tool("users").ROOTLESS_USER


@pytest.fixture(scope="module")
def served_conf(podman_ready):
    conf = readable_conf_dir("scrun-served-")
    with open(conf / "scrun.conf", "a") as fh:
        fh.write("AnchorServer=yes\n")
    yield conf
    shutil.rmtree(conf, ignore_errors=True)
    # Idle, each server exits (IDLE_EXIT) and removes its files: the tests after these find the
    # users' state roots as they were.
    wait_for(lambda: not anchor_servers(), 60, "the anchor servers to exit")


def podman(conf, *args: str, user: str = "root", timeout: float = 180):
    argv = ["podman", "--runtime", "scrun", "--runtime-flag", f"slurm-conf={conf}/slurm.conf", *args]
    if user != "root":
        argv = ["runuser", "-u", user, "--", "env", "-C", "/tmp", *argv]
    return sh(argv, timeout=timeout)


def cmdline(pid: int) -> list[str]:
    with open(f"/proc/{pid}/cmdline", "rb") as fh:
        return fh.read().decode().split("\0")


def test_detached_containers_stop_and_removal_through_the_server(served_conf):
    names = [f"served-{n}-{id(served_conf) % 10000}" for n in range(3)]
    try:
        for name in names:
            run = podman(served_conf, "run", "-d", "--network", "none", "--name", name, IMAGE, "sleep", "300")
            assert run.returncode == 0, run.stderr
        pids = [int(podman(served_conf, "inspect", "--format", "{{.State.Pid}}", name).stdout) for name in names]
        assert all(cmdline(pid)[0] == "scrun-waiter" for pid in pids), [cmdline(p)[:1] for p in pids]
        stop = podman(served_conf, "stop", "-t", "1", names[0])
        assert stop.returncode == 0, stop.stderr
        code = podman(served_conf, "inspect", "--format", "{{.State.ExitCode}}", names[0]).stdout.strip()
        assert code in ("137", "143"), code  # sleep as pid 1 ignores TERM: KILL after 1 s
        assert podman(served_conf, "rm", "-f", "-t", "0", *names).returncode == 0
        wait_for(lambda: not sh(["squeue", "-h", "-n", ",".join(f"scrun:{n}" for n in names)]).stdout.strip(), 30,
                 "their jobs to end")
    finally:
        podman(served_conf, "rm", "-f", "-t", "0", *names)


@pytest.mark.parametrize("user", ["root", ROOTLESS])
def test_the_exit_code_and_output_come_back(served_conf, user):
    proc = podman(served_conf, "run", "--rm", "--network", "none", IMAGE, "sh", "-c", "echo served; exit 3", user=user)
    assert (proc.returncode, proc.stdout) == (3, "served\n"), proc.stderr[-2000:]
