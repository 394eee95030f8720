"""GPUs through CDI, bounded by Slurm (issue 31): podman's `--device example.com/gpu=…` becomes
the job's GRES request, and on the node the container gets exactly the devices Slurm gave the
step, from the node's own CDI spec (tools/cluster/fakegpu.py: two fake GPUs on the isolated
node; the login node has only a stub spec)."""
import concurrent.futures
import re
import shutil
import subprocess

import pytest

from conftest import IMAGE, cluster_tool

pytestmark = pytest.mark.e2e
fakegpu = cluster_tool("fakegpu")
slurmconf = cluster_tool("slurmconf")
# What the container reports: its devices, the spec's variables, the node's mount.
REPORT = ("ls /dev | grep scrun-gpu | tr '\\n' ' '; echo; env | grep '^FAKE_GPU_' | sort | tr '\\n' ' '; echo; "
          "test -e /run/fake-gpu-driver/scrun-fake-gpu.json && echo driver || echo no-driver")


@pytest.fixture(scope="module")
def gpu_node(isolated_node, podman_ready):
    scrun = shutil.which("scrun")
    assert scrun, "scrun is not on PATH"
    fakegpu.give(isolated_node, scrun)
    yield isolated_node
    fakegpu.take_back(isolated_node)


DOCKER = "/usr/bin/docker" if shutil.which("/usr/bin/docker") else "docker"


def podman_run(*flags: str, command: str = REPORT, engine: str = "podman") -> subprocess.CompletedProcess:
    run = ["podman", "--runtime", "scrun", "run"] if engine == "podman" else [DOCKER, "run", "--runtime", "scrun"]
    return subprocess.run([*run, "--rm", "--network", "none",
                           "-e", f"SCRUN_PARTITION={slurmconf.ISOLATED_PARTITION}", *flags, IMAGE, "sh", "-c", command],
                          capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)


def docker_has_cdi() -> bool:
    version = subprocess.run([DOCKER, "version", "--format", "{{.Server.Version}}"], capture_output=True, text=True)
    return version.returncode == 0 and int(version.stdout.split(".")[0] or 0) >= 25


def seen(proc: subprocess.CompletedProcess) -> tuple[list[str], list[str], str]:
    """(device ids, FAKE_GPU_ ids, driver mount) the container printed."""
    assert proc.returncode == 0, proc.stderr
    devices, variables, driver = (proc.stdout.splitlines() + ["", "", ""])[:3]
    ids = sorted(re.findall(r"scrun-gpu(\d+)", devices))
    return ids, sorted(re.findall(r"FAKE_GPU_(\d+)=\1", variables)), driver


def devices(*names: str) -> list[str]:
    return [arg for name in names for arg in ("--device", f"{fakegpu.KIND}={name}")]


@pytest.mark.parametrize("names,count", [(("0",), 1), (("0", "1"), 2), (("all",), fakegpu.COUNT)],
                         ids=["one", "two", "all"])
def test_the_container_sees_as_many_devices_as_it_asked_for(gpu_node, names, count):
    ids, variables, driver = seen(podman_run(*devices(*names)))
    assert len(ids) == count and ids == variables, (ids, variables)
    assert driver == "driver", "the kind's mount comes from the node's spec, not the login node's"


def test_docker_passes_cdi_devices_too(gpu_node):
    if not docker_has_cdi():
        pytest.xfail("docker before 25 (Debian 12's 20.10) has no CDI: `--device example.com/gpu=0` is its error")
    ids, variables, driver = seen(podman_run(*devices("0", "1"), engine="docker"))
    assert ids == variables == ["0", "1"] and driver == "driver"


@pytest.mark.parametrize("gpus,count", [("1", 1), ("2", 2), ("all", fakegpu.COUNT)], ids=["one", "two", "all"])
def test_docker_gpus_become_the_request(gpu_node, gpus, count):
    """docker's own --gpus (NVIDIA's hook, a stub on the login node): the node's nvidia.com/gpu spec serves it."""
    ids, variables, driver = seen(podman_run("--gpus", gpus, engine="docker"))
    assert len(ids) == count and ids == variables and driver == "driver", (ids, variables, driver)


def test_rootless_podman_gets_its_devices_too(gpu_node):
    """An ordinary user's podman: the same stub on the login node, the same node spec, applied by
    `scrun cdi-run` as that user."""
    version = subprocess.run(["srun", "--version"], capture_output=True, text=True).stdout.split()[-1]
    if tuple(int(n) for n in version.split(".")[:2]) < (23, 2):
        pytest.xfail("Slurm 22.05: the node's crun fails `unshare CLONE_NEWNS: Operation not permitted` for rootless "
                     "podman's config once it carries devices; rootless without devices runs (test_rootless.py)")
    user = cluster_tool("users").ROOTLESS_USER
    proc = subprocess.run(["runuser", "-u", user, "--", "env", "-C", "/tmp", "podman", "--runtime", "scrun", "run",
                           "--rm", "--network", "none", "-e", f"SCRUN_PARTITION={slurmconf.ISOLATED_PARTITION}",
                           *devices("0", "1"), IMAGE, "sh", "-c", REPORT],
                          capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)
    ids, variables, driver = seen(proc)
    assert ids == variables == ["0", "1"] and driver == "driver", (ids, variables, driver)


def test_without_a_device_the_container_sees_none(gpu_node):
    assert seen(podman_run()) == ([], [], "no-driver")


def test_two_containers_get_the_ids_slurm_gave_each(gpu_node):
    """Both ask for `=0`: Slurm gives the second the other GPU, and each sees its own only."""
    hold = f"{REPORT}; sleep 8"
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(lambda _: podman_run(*devices("0"), command=hold), range(2)))
    first, second = (seen(run)[0] for run in runs)
    assert len(first) == len(second) == 1 and sorted(first + second) == ["0", "1"], (first, second)


def test_a_request_slurm_cannot_satisfy_fails_with_slurms_reason(gpu_node):
    proc = podman_run(*devices("0", "1", "2"))
    assert proc.returncode != 0
    assert "Requested node configuration is not available" in proc.stderr, proc.stderr
