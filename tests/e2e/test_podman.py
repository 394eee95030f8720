"""Real podman, through conmon, with scrun as the runtime; crun runs the same commands as the baseline."""
import concurrent.futures
import hashlib
import json
import os
import subprocess
import time
import uuid

import pytest

from conftest import IMAGE, counter_pauses_and_resumes, jobs_named, live_anchors, sh, wait_for

pytestmark = pytest.mark.e2e


def podman(*args, runtime="scrun", input=None, timeout=120, check=False):
    proc = subprocess.run(["podman", "--runtime", runtime, *args], capture_output=True, input=input, timeout=timeout,
                          stdin=None if input is not None else subprocess.DEVNULL)
    if check:
        assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return proc


def scrun_state_dirs() -> set[str]:
    try:
        return set(os.listdir("/run/scrun"))
    except FileNotFoundError:
        return set()


@pytest.fixture
def name(podman_ready):
    name = f"e2e-{uuid.uuid4().hex[:10]}"
    yield name
    podman("rm", "-f", "-t", "0", name)


def test_crun_baseline(podman_ready):
    proc = podman("run", "--rm", IMAGE, "sh", "-c", "echo hi; exit 3", runtime="crun")
    assert proc.stdout == b"hi\n" and proc.returncode == 3


def test_echo_hi(podman_ready):
    proc = podman("run", "--rm", IMAGE, "echo", "hi")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"hi\n"


@pytest.mark.parametrize("code", [0, 1, 3, 255])
def test_exit_codes_are_exact(podman_ready, code):
    assert podman("run", "--rm", IMAGE, "sh", "-c", f"exit {code}").returncode == code


def test_self_kill_matches_crun(podman_ready):
    """`kill -9 $$` from PID 1 is ignored by the kernel: crun gives 0, so must we. A child killed by 9 gives 137."""
    script = "kill -9 $$"
    assert podman("run", "--rm", IMAGE, "sh", "-c", script).returncode == podman("run", "--rm", IMAGE, "sh", "-c", script, runtime="crun").returncode
    child = "sh -c 'kill -9 $$'; exit $?"  # `; exit` stops busybox from exec'ing the child as PID 1
    assert podman("run", "--rm", IMAGE, "sh", "-c", child).returncode == 137
    assert podman("run", "--rm", IMAGE, "sh", "-c", child, runtime="crun").returncode == 137


def test_stdin_is_delivered_with_eof(podman_ready):
    proc = podman("run", "-i", "--rm", IMAGE, "cat", input=b"data\n")
    assert proc.stdout == b"data\n" and proc.returncode == 0


def test_large_output_is_byte_exact_and_stderr_separate(podman_ready):
    proc = podman("run", "--rm", IMAGE, "sh", "-c", "head -c 50000000 /dev/urandom | tee /tmp/x | md5sum >&2; cat /tmp/x", timeout=300)
    assert proc.returncode == 0
    assert len(proc.stdout) == 50_000_000
    assert hashlib.md5(proc.stdout).hexdigest() in proc.stderr.decode()
    both = podman("run", "--rm", IMAGE, "sh", "-c", "echo OUT; echo ERR >&2")
    assert both.stdout == b"OUT\n" and b"ERR\n" in both.stderr and b"OUT" not in both.stderr


@pytest.mark.parametrize("code", [0, 3])
def test_output_without_a_final_newline_arrives_exactly(podman_ready, code):
    """srun's own end-of-step line (24.11's --verbose "Received task exit notification", or
    "task 0: Exited with exit code 3") follows the container's last bytes: it must not be glued
    to an unfinished line (issue 33). As with crun."""
    script = f"printf out; printf err >&2; exit {code}"
    proc = podman("run", "--rm", IMAGE, "sh", "-c", script)
    baseline = podman("run", "--rm", IMAGE, "sh", "-c", script, runtime="crun")
    assert (baseline.returncode, baseline.stdout, baseline.stderr) == (code, b"out", b"err"), "the baseline"
    assert (proc.returncode, proc.stdout, proc.stderr) == (code, b"out", b"err")


def test_detached_ps_logs_wait_rm(podman_ready, name):
    podman("run", "-d", "--name", name, IMAGE, "sh", "-c", "echo started; sleep 1; exit 5", check=True)
    wait_for(lambda: b"started" in podman("logs", name).stdout, 30, "logs")
    assert podman("wait", name).stdout.strip() == b"5"
    ps = podman("ps", "-a", "--filter", f"name={name}", "--format", "{{.Status}}").stdout.decode()
    assert ps.startswith("Exited (5)")
    podman("rm", name, check=True)


def test_kill_and_stop(podman_ready, name):
    podman("run", "-d", "--name", name, IMAGE, "sleep", "100", check=True)
    wait_for(lambda: podman("inspect", name, "--format", "{{.State.Status}}").stdout.strip() == b"running", 30, "running")
    podman("kill", name, check=True)
    assert podman("wait", name).stdout.strip() == b"137"
    podman("rm", name, check=True)
    podman("run", "-d", "--name", name, IMAGE, "sleep", "100", check=True)
    stop = podman("stop", "-t", "2", name, timeout=60)
    assert stop.returncode == 0
    assert podman("wait", name).stdout.strip() in (b"137", b"143")


def test_rm_force_of_running_leaves_nothing(podman_ready, name):
    podman("run", "-d", "--name", name, IMAGE, "sleep", "100", check=True)
    cid = podman("inspect", name, "--format", "{{.Id}}").stdout.decode().strip()
    assert cid in scrun_state_dirs()
    podman("rm", "-f", name, check=True)
    assert cid not in scrun_state_dirs()
    wait_for(lambda: not jobs_named([f"scrun:{cid[:12]}"]), 30, "the job to go")


def test_missing_command_reports_like_crun(podman_ready):
    proc = podman("run", "--rm", IMAGE, "/nonexistent-cmd")
    assert proc.returncode == 127
    assert b"/nonexistent-cmd" in proc.stderr and b"not found" in proc.stderr


def test_version_through_podman_info(podman_ready):
    info = json.loads(podman("info", "--format", "json").stdout)
    runtime = info["host"]["ociRuntime"]
    assert runtime["name"] == "scrun" and "scrun version" in runtime["version"]


def podman_anchors() -> int:
    return len(live_anchors())


def test_five_concurrent_runs_then_nothing_left(podman_ready):
    before, anchors_before = scrun_state_dirs(), podman_anchors()
    with concurrent.futures.ThreadPoolExecutor(5) as pool:
        results = list(pool.map(lambda i: podman("run", "--rm", IMAGE, "sh", "-c", f"echo {i}; exit {i}"), range(5)))
    assert [(r.returncode, r.stdout) for r in results] == [(i, f"{i}\n".encode()) for i in range(5)]
    assert scrun_state_dirs() <= before
    assert podman_anchors() <= anchors_before


def test_job_options_from_podman_env(podman_ready, name):
    podman("run", "-d", "--name", name, "-e", "SCRUN_JOB_NAME=e2e-named", "-e", "SCRUN_TIMELIMIT=7",
           "-e", "SCRUN_CPUS_PER_TASK=2", "-e", "SCRUN_MEM_PER_CPU=100", IMAGE, "sleep", "30", check=True)
    line = wait_for(lambda: sh(["squeue", "-h", "-n", "e2e-named", "-o", "%i"]).stdout.strip(), 30, "the named job")
    show = sh(["scontrol", "show", "job", line]).stdout
    assert "JobName=e2e-named" in show and "TimeLimit=00:07:00" in show
    assert "MinCPUsNode=2" in show and "MinMemoryCPU=100M" in show
    podman("rm", "-f", name, check=True)


def podman_major() -> int:
    out = sh(["podman", "--version"]).stdout
    return int(out.split()[-1].split(".")[0])


def test_caller_env_reaches_create_from_podman_5_only(podman_ready, name):
    """podman 5 (through conmon) hands the caller's environment to `create`; 4.3 hands none
    (traced: tools/trace-runtime.sh), so there SCRUN_* must come through `podman run -e`."""
    env = {**os.environ, "SCRUN_JOB_NAME": f"caller-{name}"}
    proc = subprocess.run(["podman", "--runtime", "scrun", "run", "-d", "--name", name, IMAGE, "sleep", "30"],
                          capture_output=True, text=True, env=env, timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    try:
        if podman_major() >= 5:
            wait_for(lambda: sh(["squeue", "-h", "-n", f"caller-{name}", "-o", "%i"]).stdout.strip(), 30, "the job named by the caller")
        else:
            assert podman("inspect", name, "--format", "{{.State.Status}}").stdout.strip() == b"running"
            assert sh(["squeue", "-h", "-n", f"caller-{name}", "-o", "%i"]).stdout.strip() == ""
    finally:
        podman("rm", "-f", "-t", "0", name, check=True)


def test_container_sees_job_env_and_its_own(podman_ready):
    proc = podman("run", "--rm", "-e", "MINE=yes", "-e", "SCRUN_PARTITION=debug", IMAGE, "env")
    env = dict(line.split("=", 1) for line in proc.stdout.decode().splitlines() if "=" in line)
    assert env["MINE"] == "yes" and env["SLURM_JOB_ID"].isdigit() and env.get("SLURM_JOB_NUM_NODES") == "1"
    assert not [k for k in env if k.startswith("SCRUN_") and k != "SCRUN_PARTITION"]


def test_two_nodes(podman_ready, slurm_cluster):
    if len(slurm_cluster) < 2:
        pytest.fail("needs the multi-node cluster (`make cluster` starts 3 slurmd)")
    # 22.05 gives containers no per-task variables (SLURM_NODEID …): count the copies that ran instead.
    proc = podman("run", "--rm", "-e", "SCRUN_JOB_NUM_NODES=2", IMAGE, "sh", "-c", "echo nodes=$SLURM_STEP_NUM_NODES")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [b"nodes=2", b"nodes=2"]


def test_bad_option_fails_create_cleanly(podman_ready):
    before = sh(["squeue", "-h", "-o", "%i"]).stdout
    proc = podman("run", "--rm", "-e", "SCRUN_TIMELIMIT=abc", IMAGE, "true")
    assert proc.returncode != 0
    assert b'SCRUN_TIMELIMIT="abc": not a valid time' in proc.stderr
    assert sh(["squeue", "-h", "-o", "%i"]).stdout == before


def test_exec_runs_in_the_running_container(podman_ready, name):
    """podman exec: a process in the container (its files), on its node, through Slurm, with its
    output and exit code; env and working directory from podman's process spec."""
    podman("run", "-d", "--name", name, IMAGE, "sh", "-c", "echo hi > /tmp/mark; sleep 60", check=True)
    wait_for(lambda: podman("exec", name, "test", "-f", "/tmp/mark").returncode == 0, 30, "the container's file")
    proc = podman("exec", "-e", "WHO=exec", "-w", "/tmp", name, "sh", "-c", "cat mark; echo in-$WHO; exit 4")
    assert proc.returncode == 4, proc.stderr
    assert proc.stdout == b"hi\nin-exec\n" and b"srun" not in proc.stderr, proc.stderr
    missing = podman("exec", name, "no-such-command")
    assert missing.returncode == 127 and b"srun: error" not in missing.stderr, missing.stderr
    podman("rm", "-f", "-t", "0", name, check=True)


def test_exec_into_a_container_that_is_not_running(podman_ready, name):
    podman("create", "--name", name, IMAGE, "sleep", "60", check=True)
    podman("init", name, check=True)  # the runtime's create: scrun has it, created
    cid = podman("inspect", name, "--format", "{{.Id}}").stdout.decode().strip()
    # podman refuses a created container itself; scrun's own answer, as podman would get it:
    proc = subprocess.run(["scrun", "exec", cid, "true"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr == f"scrun: error: cannot exec in container `{cid}`: it is created, not running\n"


def test_init_does_not_run_the_workload_start_does(podman_ready, name, tmp_path):
    """Upstream scrun starts the step as soon as create returns; podman init + start shows we wait."""
    marks = tmp_path / "marks"
    marks.mkdir()
    podman("create", "--name", name, "-v", f"{marks}:/out", IMAGE, "sh", "-c", "touch /out/ran; echo started", check=True)
    podman("init", name, check=True)
    cid = podman("inspect", name, "--format", "{{.Id}}").stdout.decode().strip()
    assert podman("inspect", name, "--format", "{{.State.Status}}").stdout.strip() == b"initialized"  # podman's word for runtime-created
    assert cid in scrun_state_dirs()
    import time
    time.sleep(1.0)
    assert not (marks / "ran").exists(), "the workload ran before start"
    started = podman("start", "--attach", name)
    assert started.returncode == 0 and b"started" in started.stdout
    assert (marks / "ran").exists()


def test_rm_force_of_an_initialised_container(podman_ready, name):
    podman("create", "--name", name, IMAGE, "true", check=True)
    podman("init", name, check=True)
    cid = podman("inspect", name, "--format", "{{.Id}}").stdout.decode().strip()
    podman("rm", "-f", name, check=True)
    assert cid not in scrun_state_dirs()
    wait_for(lambda: not jobs_named([f"scrun:{cid[:12]}"]), 30, "the job to go")


def job_of(cid: str) -> dict[str, str]:
    job_id = sh(["squeue", "-h", "-n", f"scrun:{cid[:12]}", "-o", "%i"]).stdout.strip()
    out = sh(["scontrol", "--oneliner", "show", "job", job_id]).stdout if job_id else ""
    return dict(field.split("=", 1) for field in out.split() if "=" in field)


@pytest.mark.parametrize("flags,field,value", [
    (["--cpus", "2"], "NumCPUs", "2"),
    (["--memory", "1g"], "MinMemoryNode", "1G"),
    (["--annotation", "org.slurm.timelimit=7"], "TimeLimit", "00:07:00"),
])
def test_podman_flags_become_the_request(podman_ready, name, flags, field, value):
    cid = podman("run", "-d", "--name", name, *flags, IMAGE, "sleep", "30", check=True).stdout.decode().strip()
    job = wait_for(lambda: job_of(cid), 30, "the job")
    assert job[field] == value, job


def test_an_unknown_slurm_annotation_fails_create(podman_ready):
    proc = podman("run", "--rm", "--annotation", "org.slurm.partiton=debug", IMAGE, "true")
    assert proc.returncode != 0
    assert b"annotation org.slurm.partiton: no such job option" in proc.stderr, proc.stderr


def test_user_namespace_mappings_run_like_crun(podman_ready):
    """--uidmap/--gidmap: the container's root is host uid 100000, which must reach the node's
    bundle (22.05 gets one in scrun's state directory) — it did not while that was 0700."""
    script = "id -u; cat /proc/self/uid_map /proc/self/gid_map; exit 3"
    maps = ["--uidmap", "0:100000:65536", "--gidmap", "0:100000:65536"]
    ours = podman("run", "--rm", "--network", "none", *maps, IMAGE, "sh", "-c", script)
    theirs = podman("run", "--rm", "--network", "none", *maps, IMAGE, "sh", "-c", script, runtime="crun")
    assert theirs.returncode == 3, theirs.stderr
    assert (ours.returncode, ours.stdout) == (3, theirs.stdout), ours.stderr
    assert ours.stdout.split()[1:3] == [b"0", b"100000"]


def _pid_of(pattern: str) -> int:
    out = subprocess.run(["pgrep", "-nf", pattern], capture_output=True, text=True).stdout.split()
    assert out, f"no process matches {pattern}"
    return int(out[0])


@pytest.mark.parametrize("victim", ["podman client", "conmon"])
def test_kill_9_of_the_engine_then_rm_leaves_nothing(podman_ready, name, victim):
    """Fault matrix, engine side: the podman client (the container lives on, as with crun) or
    conmon dies by SIGKILL under a running container; `podman rm -f` must still end the job and
    leave no anchor, state directory or job."""
    client = subprocess.Popen(["podman", "--runtime", "scrun", "run", "--name", name, IMAGE, "sh", "-c",
                               "echo up; sleep 300"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              stdin=subprocess.DEVNULL)
    try:
        assert client.stdout.readline() == b"up\n"
        cid = podman("inspect", "-f", "{{.Id}}", name).stdout.decode().strip()
        with open(f"/run/scrun/{cid}/state.json") as fh:
            record = json.load(fh)
        anchor, job = record["anchor_pid"], str(record["job_id"])

        def job_alive():
            return job in sh(["squeue", "-h", "-o", "%i"]).stdout.split()

        assert job_alive(), "no job while it runs"
        os.kill(client.pid if victim == "podman client" else _pid_of(f"conmon.*{cid}"), 9)
        if victim == "podman client":
            time.sleep(1)
            assert podman("inspect", "-f", "{{.State.Status}}", name).stdout.strip() == b"running"
        began = time.monotonic()
        rm = podman("rm", "-f", "-t", "0", name, timeout=120)
        if victim == "conmon" and rm.returncode != 0:
            # podman 5 (with crun too): "conmon exited prematurely, exit code could not be
            # retrieved"; the second rm removes it.
            assert b"conmon exited prematurely" in rm.stderr, rm.stderr
            rm = podman("rm", "-f", "-t", "0", name, timeout=120)
        assert rm.returncode == 0, rm.stderr
        wait_for(lambda: not job_alive(), 30, "the job to go")
        if victim == "conmon" and podman_major() < 5:
            # podman 4.3 never calls the runtime's delete once conmon is gone: crun's state stays
            # behind as ours does (measured side by side). No job or process is left, only the record.
            subprocess.run(["scrun", "delete", "--force", cid], capture_output=True, timeout=60)
        wait_for(lambda: cid not in scrun_state_dirs(), 30, "the state directory to go")
        wait_for(lambda: not os.path.exists(f"/proc/{anchor}"), 30, "the anchor to go")
        assert time.monotonic() - began < 60
    finally:
        client.kill()
        client.wait()



def test_pause_and_unpause(podman_ready, name):
    cid = counter_pauses_and_resumes(podman, name, b"paused")
    assert cid not in scrun_state_dirs()
