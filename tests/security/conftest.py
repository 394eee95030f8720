"""The attackers and victims of tests/security/: a hostile image, another user's job, helpers that
run a command as an ordinary user. Every test runs its attack for real and then checks that
nothing happened outside the attacker's own reach."""
from __future__ import annotations

import os
import pathlib
import pwd
import shutil
import subprocess
import uuid

import pytest

from conftest import IMAGE, cluster_tool, require, sh, wait_for

_users = cluster_tool("users")
USER, PEER = _users.ROOTLESS_USER, _users.OTHER_USER  # the victim and the attacker among users
DOCKER = "/usr/bin/docker" if shutil.which("/usr/bin/docker") else "docker"
# What a hostile image's command writes when it runs outside its container: a path on the
# login node, unique to this session, that must never appear.
MARK = f"/tmp/scrun-pwned-{uuid.uuid4().hex[:10]}"
HOSTILE = f"localhost/scrun-hostile:{MARK.rsplit('-', 1)[1]}"


def uid_of(user: str) -> int:
    return pwd.getpwnam(user).pw_uid


def as_user(user: str, argv: list[str], *, timeout: float = 120, env: dict[str, str] | None = None,
            check: bool = False) -> subprocess.CompletedProcess:
    extra = [f"{k}={v}" for k, v in (env or {}).items()]
    proc = subprocess.run(["runuser", "-u", user, "--", "env", "-C", "/tmp", *extra, *argv], capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def podman(*args: str, user: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    if args and args[0] in ("run", "create"):
        args = (args[0], "--network", "none", *args[1:])
    argv = ["podman", "--runtime", "scrun", *args]
    if user:
        return as_user(user, argv, timeout=timeout)
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def docker(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    if args and args[0] in ("run", "create"):
        args = (args[0], "--runtime", "scrun", "--network", "none", *args[1:])
    return subprocess.run([DOCKER, *args], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def scrun_error(proc: subprocess.CompletedProcess) -> str:
    """The one error line of a failed scrun/engine call (engines wrap it in their own words)."""
    # docker 28 adds "Run 'docker run --help' for more information" after the daemon's error;
    # docker 20.10's client, now and then, `level=error msg="error waiting for container: context
    # canceled"` (its wait on the container it never started, cut short by that error).
    lines = [line for line in proc.stderr.splitlines() if line.strip() and not line.startswith("Run 'docker ")
             and "error waiting for container: context canceled" not in line]
    assert proc.returncode != 0 and lines, (proc.returncode, proc.stderr)
    return lines[-1] if len(lines) > 1 else lines[0]


def nothing_ran_outside() -> None:
    assert not os.path.exists(MARK), f"{MARK} exists: a program ran on the login node: {pathlib.Path(MARK).read_text()!r}"


def container_jobs() -> list[str]:
    return [line for line in sh(["squeue", "-h", "-o", "%i %j %u"]).stdout.splitlines()
            if line.split()[1].startswith(("scrun:", "docker-"))]


@pytest.fixture
def no_job_left(slurm_cluster):
    before = set(container_jobs())
    yield
    wait_for(lambda: set(container_jobs()) <= before, 30, "the attack's jobs to end")
    nothing_ran_outside()


@pytest.fixture(scope="session")
def hostile_image(podman_ready, tmp_path_factory):
    """An image whose ENV asks srun to run /usr/bin/env before the step: with the old scrun, env
    ran the image's command — `id > MARK` — on the login node, as the caller of podman."""
    where = tmp_path_factory.mktemp("hostile")
    (where / "Containerfile").write_text(
        f"FROM {IMAGE}\nENV SCRUN_PROLOG=/usr/bin/env\n"
        f'CMD ["/bin/sh", "-c", "id > {MARK}; hostname >> {MARK}"]\n')
    built = sh(["podman", "build", "--pull=never", "-q", "-t", HOSTILE, str(where)])
    require(built.returncode == 0, f"podman build of the hostile image failed: {built.stderr.strip()}")
    yield HOSTILE
    sh(["podman", "rmi", "-f", HOSTILE])


@pytest.fixture(scope="session")
def docker_hostile_image(hostile_image):
    ok = shutil.which(DOCKER) is not None and docker("version", "--format", "{{.Server.Version}}").returncode == 0
    require(ok, "dockerd is not running (tools/devcluster.py up starts it)")
    loaded = subprocess.run(f"podman save {hostile_image} | {DOCKER} load -q", shell=True, capture_output=True, text=True)
    require(loaded.returncode == 0, f"docker load of the hostile image failed: {loaded.stderr.strip()}")
    yield hostile_image
    docker("rmi", "-f", hostile_image)


@pytest.fixture
def victim_job(slurm_cluster):
    """Another user's running batch job (the attacker must not end it)."""
    proc = as_user(PEER, ["sbatch", "--parsable", "-J", "victim", "--wrap", "sleep 300"], check=True)
    job = int(proc.stdout.strip().split(";")[0])
    wait_for(lambda: job_state(job) == "RUNNING", 60, f"victim job {job} to run")
    yield job
    assert job_state(job) == "RUNNING", f"the other user's job {job} is {job_state(job)}"
    sh(["scancel", str(job)])


def job_state(job: int) -> str:
    return sh(["squeue", "-h", "-j", str(job), "-o", "%T"]).stdout.strip()
