"""podman's and docker's `run` flags that reach the node's runtime through config.json: what the
container sees with scrun is what it sees with the engine's usual runtime on this host (crun for
podman, runc for docker: the control), flag by flag.

The flags that become the job's request (--cpus, --memory, …) are in test_podman.py and
test_docker.py; this is the other half of docs/user-guide.md's flag table.
"""
import shutil
import subprocess
import time
import uuid

import pytest

from conftest import IMAGE, require, wait_for

pytestmark = pytest.mark.e2e

# (flags, what the container prints): each row is one flag of docs/user-guide.md's table.
FLAGS = {
    "user": (["--user", "1000:1000"], "id -u; id -g"),
    "workdir": (["--workdir", "/tmp"], "pwd"),
    "env": (["--env", "GREETING=hello there"], "echo \"$GREETING\""),
    "hostname": (["--hostname", "box-1"], "hostname"),
    "read-only": (["--read-only"], "touch /probe 2>/dev/null; echo rc=$?"),
    "tmpfs": (["--tmpfs", "/fast:size=8m"], "grep ' /fast ' /proc/mounts | cut -d' ' -f3"),
    "shm-size": (["--shm-size", "16m"], "df -k /dev/shm | tail -1 | tr -s ' ' | cut -d' ' -f2"),
    # Both: podman 4.3 given one --ulimit takes the others from its own hard limits, which crun
    # may not raise to here (the control fails with setrlimit EPERM).
    "ulimit": (["--ulimit", "nofile=512:512", "--ulimit", "nproc=4096:4096"], "ulimit -n; ulimit -u"),
    "cap-drop": (["--cap-drop", "ALL"], "grep CapEff /proc/self/status"),
    "cap-add": (["--cap-add", "SYS_PTRACE"], "grep CapEff /proc/self/status"),
    "no-new-privileges": (["--security-opt", "no-new-privileges"], "grep NoNewPrivs /proc/self/status"),
    "entrypoint": (["--entrypoint", "/bin/echo"], None),
    # The engine's init as pid 1 (podman's catatonit, docker's docker-init), bound from the host's
    # system, which the nodes share. Debian 12's podman has none: its control fails (xfail).
    "init": (["--init"], "cat /proc/1/comm"),
    # A host device by path (not CDI: test_gpus.py): the node's own /dev/zero, under another name.
    "device": (["--device", "/dev/zero:/dev/myzero"], "ls -l /dev/myzero | cut -c1; head -c 3 /dev/myzero | od -An -tx1"),
    # podman only: docker's control, runc 1.1 on Debian 12, cannot apply every capability in
    # this sandbox ("unable to apply caps"), so there is nothing to compare with there.
    "privileged": (["--privileged"], "grep CapEff /proc/self/status", ("podman",)),
}


DOCKER = "/usr/bin/docker" if shutil.which("/usr/bin/docker") else "docker"
CONTROL = {"podman": "crun", "docker": "runc"}


def binary(engine: str) -> str:
    return "podman" if engine == "podman" else DOCKER


def run_argv(engine: str, runtime: str) -> list[str]:
    """`<engine> run` with `runtime` (podman takes --runtime before the verb, docker after)."""
    if engine == "podman":
        return ["podman", "--runtime", runtime, "run", "--network", "none"]
    return [DOCKER, "run", "--runtime", runtime, "--network", "none"]


def run(engine: str, runtime: str, flags: list[str], script: str | None) -> subprocess.CompletedProcess:
    command = ["entry-ok"] if script is None else ["sh", "-c", script]
    return subprocess.run([*run_argv(engine, runtime), "--rm", *flags, IMAGE, *command],
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def engine_ready(engine: str) -> None:
    if engine == "docker":
        ok = shutil.which(DOCKER) is not None and subprocess.run([DOCKER, "image", "inspect", IMAGE],
                                                                 capture_output=True).returncode == 0
        require(ok, f"dockerd is not running or has no {IMAGE} (tools/devcluster.py up)")


CASES = [(engine, flag) for engine in CONTROL for flag, (_, _, *only) in FLAGS.items() if not only or engine in only[0]]


@pytest.mark.parametrize("engine,flag", CASES)
def test_the_container_sees_the_flag_as_with_the_usual_runtime(podman_ready, engine, flag):
    engine_ready(engine)
    flags, script, *_ = FLAGS[flag]
    control = run(engine, CONTROL[engine], flags, script)
    if flag == "init" and control.returncode != 0 and "catatonit" in control.stderr:
        pytest.xfail(f"{engine} has no init binary here, with {CONTROL[engine]} too: {control.stderr.strip()[-200:]}")
    assert control.returncode == 0, f"the control ({CONTROL[engine]}) failed: {control.stderr}"
    ours = run(engine, "scrun", flags, script)
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout == control.stdout and ours.stdout.strip(), (ours.stdout, control.stdout)


def inspect(cli: str, name: str, field: str) -> str:
    return subprocess.run([cli, "inspect", name, "--format", "{{" + field + "}}"], capture_output=True,
                          text=True).stdout.strip()


def logs(cli: str, name: str) -> str:
    return subprocess.run([cli, "logs", name], capture_output=True, text=True).stdout


def with_each_runtime(engine: str, flags: list[str], script: str, observe) -> dict[str, object]:
    """{runtime: observe(cli, name)} of a detached `run FLAGS IMAGE sh -c SCRIPT`, with the
    engine's usual runtime, then with scrun; each container removed after."""
    engine_ready(engine)
    cli = binary(engine)
    seen = {}
    for runtime in (CONTROL[engine], "scrun"):
        name = f"flag-{uuid.uuid4().hex[:8]}"
        subprocess.run([*run_argv(engine, runtime), "-d", "--name", name, *flags, IMAGE, "sh", "-c", script],
                       capture_output=True, check=True, timeout=120)
        try:
            seen[runtime] = observe(cli, name)
        finally:
            subprocess.run([cli, "rm", "-f", name], capture_output=True, timeout=60)
    return seen


def stopped_after_up(stop_args: list[str]):
    """observe(): wait for the container's `up`, `stop` it; (exit code, seconds `stop` took, its logs)."""
    def observe(cli: str, name: str) -> tuple[str, float, str]:
        wait_for(lambda: "up" in logs(cli, name), 30, f"{name} to be up")
        began = time.monotonic()
        subprocess.run([cli, "stop", *stop_args, name], capture_output=True, check=True, timeout=60)
        return inspect(cli, name, ".State.ExitCode"), time.monotonic() - began, logs(cli, name)
    return observe


@pytest.mark.parametrize("engine", list(CONTROL))
def test_stop_signal_reaches_the_container_as_with_the_usual_runtime(podman_ready, engine):
    """--stop-signal: the engine's `stop` sends it through the runtime's kill; the trap answers."""
    seen = with_each_runtime(engine, ["--stop-signal", "SIGUSR1"],
                             "trap 'echo got-usr1; exit 7' USR1; echo up; while :; do sleep 0.1; done",
                             stopped_after_up(["-t", "20"]))
    seen = {runtime: (code, "got-usr1" in out) for runtime, (code, _, out) in seen.items()}
    assert seen[CONTROL[engine]] == ("7", True), seen
    assert seen["scrun"] == seen[CONTROL[engine]], seen


@pytest.mark.parametrize("engine", list(CONTROL))
def test_stop_timeout_ends_a_container_that_ignores_the_signal_as_with_the_usual_runtime(podman_ready, engine):
    """--stop-timeout 2: `stop` sends SIGTERM, waits 2 s, then SIGKILL (137), through the runtime's kill."""
    seen = with_each_runtime(engine, ["--stop-timeout", "2"], "trap '' TERM; echo up; while :; do sleep 0.1; done",
                             stopped_after_up([]))
    seen = {runtime: (code, 1.5 <= took < 20) for runtime, (code, took, _) in seen.items()}
    assert seen[CONTROL[engine]] == ("137", True), seen
    assert seen["scrun"] == seen[CONTROL[engine]], seen


@pytest.mark.parametrize("engine", list(CONTROL))
def test_restart_on_failure_runs_the_container_again_as_with_the_usual_runtime(podman_ready, engine):
    """--restart on-failure:2 is the engine's: it creates and starts the container again (with scrun,
    a new job each time) until the count is spent."""
    def observe(cli: str, name: str) -> tuple[str, int]:
        wait_for(lambda: inspect(cli, name, ".RestartCount") == "2" and inspect(cli, name, ".State.Status") == "exited",
                 90, f"{name} to be restarted twice")
        return inspect(cli, name, ".State.ExitCode"), logs(cli, name).count("run")

    seen = with_each_runtime(engine, ["--restart", "on-failure:2"], "echo run; exit 3", observe)
    assert seen[CONTROL[engine]] == ("3", 3), seen
    assert seen["scrun"] == seen[CONTROL[engine]], seen


@pytest.mark.parametrize("engine", list(CONTROL))
def test_a_volume_and_an_env_file_as_with_the_usual_runtime(podman_ready, engine, tmp_path):
    """-v DIR:/data:ro (DIR on the shared filesystem in a lane: $TMPDIR) and --env-file: the
    container reads the file, cannot write there, and has the variable, as with crun/runc."""
    engine_ready(engine)
    data = tmp_path / "data"
    data.mkdir()
    (data / "probe").write_text("from-the-volume\n")
    data.chmod(0o755)
    env_file = tmp_path / "env"
    env_file.write_text("FROMFILE=yes please\n")
    flags = ["-v", f"{data}:/data:ro", "--env-file", str(env_file)]
    script = "cat /data/probe; echo \"$FROMFILE\"; touch /data/x 2>/dev/null; echo rc=$?"
    control = run(engine, CONTROL[engine], flags, script)
    ours = run(engine, "scrun", flags, script)
    assert control.returncode == 0 and control.stdout == "from-the-volume\nyes please\nrc=1\n", control
    assert (ours.returncode, ours.stdout) == (0, control.stdout), ours.stderr
