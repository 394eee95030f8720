"""Rootless podman through scrun, as real unprivileged users (made by tools/devcluster.py).

User A runs containers; user B tries to reach them and must be refused every time.
"""
from __future__ import annotations

import contextlib
import json
import os
import pathlib
import pwd
import re
import shutil
import socket
import stat
import subprocess
import tempfile
import uuid

import pytest

from conftest import cluster_tool, counter_pauses_and_resumes, IMAGE, live_anchors, readable_conf_dir, require, sh, Tmux, wait_for

pytestmark = pytest.mark.e2e
_users = cluster_tool("users")
A, B = _users.ROOTLESS_USER, _users.OTHER_USER
SCRUN = shutil.which("scrun") or "/usr/local/bin/scrun"


def uid_of(user: str) -> int:
    return pwd.getpwnam(user).pw_uid


def state_root(user: str) -> str:
    return f"/run/user/{uid_of(user)}/scrun"


def as_user(user: str, argv: list[str], *, input: bytes | None = None, timeout: float = 180,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """argv as `user` (runuser: a fresh login-less session, as a user's shell would be)."""
    extra = [f"{k}={v}" for k, v in (env or {}).items()]
    return subprocess.run(["runuser", "-u", user, "--", "env", "-C", "/tmp", *extra, *argv], input=input,
                          capture_output=True, timeout=timeout, stdin=None if input is not None else subprocess.DEVNULL)


def podman(user: str, *args: str, conf: pathlib.Path | None = None, input: bytes | None = None,
           timeout: float = 180) -> subprocess.CompletedProcess:
    """`podman --runtime scrun ARGS` as `user`; `conf`: a slurm.conf directory instead of /etc/slurm."""
    # --network none: rootless networking (pasta/slirp4netns) needs /dev/net/tun, which this sandbox lacks.
    if args and args[0] in ("run", "create"):
        args = (args[0], "--network", "none", *args[1:])
    flags = ["--runtime-flag", f"slurm-conf={conf}/slurm.conf"] if conf else []
    return as_user(user, ["podman", "--runtime", "scrun", *flags, *args], input=input, timeout=timeout)


def user_jobs(user: str) -> list[str]:
    return sh(["squeue", "-h", "-u", user, "-o", "%i|%u|%U|%j"]).stdout.splitlines()


def anchors_of(user: str) -> list[str]:
    return [str(pid) for pid in live_anchors(user)]


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    lines = [line for line in proc.stderr.decode().splitlines() if line.strip()]
    assert proc.returncode != 0 and len(lines) == 1, (proc.returncode, lines)
    return lines[0]


@pytest.fixture(scope="module")
def rootless(podman_ready):
    for user in (A, B):
        require(subprocess.run(["id", user], capture_output=True).returncode == 0,
                f"user {user} is missing (tools/devcluster.py up makes it)")
        require(os.path.isdir(f"/run/user/{uid_of(user)}"), f"/run/user/{uid_of(user)} is missing (devcluster up)")
        require(podman(user, "image", "exists", IMAGE).returncode == 0, f"{user} has no {IMAGE}")
    return True


@pytest.fixture
def clean_after(rootless):
    """Whatever the test did: afterwards A has no job, no anchor and no container state."""
    yield
    wait_for(lambda: not user_jobs(A), 30, f"{A}'s jobs to end")
    wait_for(lambda: not anchors_of(A), 30, f"{A}'s anchors to exit")
    assert not os.listdir(state_root(A)) if os.path.isdir(state_root(A)) else True


def test_rootless_podman_with_crun(rootless):
    """The baseline: this user's rootless podman works at all (crun, no Slurm)."""
    proc = as_user(A, ["podman", "--runtime", "crun", "run", "--rm", "--network", "none", IMAGE, "sh", "-c", "echo ok; exit 3"])
    assert proc.stdout == b"ok\n" and proc.returncode == 3, proc.stderr


def test_exit_code_and_separate_streams(clean_after):
    proc = podman(A, "run", "--rm", IMAGE, "sh", "-c", "echo to-out; echo to-err >&2; exit 3")
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout == b"to-out\n"
    assert b"to-err\n" in proc.stderr and b"to-out" not in proc.stderr


def test_pause_and_unpause_as_the_user(clean_after):
    """Rootless podman 5 pauses through the runtime as root's does. Podman 4 refuses a rootless
    pause itself, before any runtime, when the container has no cgroup of its own (ours: the
    process runs on a node): the container runs on, untouched."""
    def engine(*args, check=False, timeout=180):
        proc = podman(A, *args, timeout=timeout)
        if check:
            assert proc.returncode == 0, proc.stderr.decode(errors="replace")
        return proc

    name = f"rp-{os.getpid()}"
    version = podman(A, "version", "--format", "{{.Client.Version}}").stdout.decode().strip()
    try:
        if int(version.split(".")[0]) >= 5:
            counter_pauses_and_resumes(engine, name, b"paused")
            return
        assert engine("run", "-d", "--name", name, IMAGE, "sleep", "300").returncode == 0
        proc = engine("pause", name)
        assert proc.returncode != 0 and b"can not pause containers on rootless containers" in proc.stderr, proc.stderr
        assert engine("inspect", name, "--format", "{{.State.Status}}").stdout.strip() == b"running"
    finally:
        engine("rm", "-f", "-t", "0", name)


def test_exec_as_the_user(clean_after):
    """podman exec in a rootless container: the node's runtime state is the user's, the process too."""
    name = f"rx-{os.getpid()}"
    assert podman(A, "run", "-d", "--name", name, IMAGE, "sh", "-c", "echo hi > /tmp/mark; sleep 60").returncode == 0
    try:
        wait_for(lambda: podman(A, "exec", name, "test", "-f", "/tmp/mark").returncode == 0, 30, "the container's file")
        proc = podman(A, "exec", name, "sh", "-c", "cat /tmp/mark; id -u; exit 4")
        assert proc.returncode == 4 and proc.stdout == b"hi\n0\n", proc.stderr
    finally:
        podman(A, "rm", "-f", "-t", "0", name)


def test_stdin_is_byte_exact(clean_after):
    data = bytes(range(256)) * 256 + b"no newline at the end"
    proc = podman(A, "run", "--rm", "-i", IMAGE, "cat", input=data)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == data


def test_the_process_runs_as_the_images_user_on_the_node(clean_after):
    proc = podman(A, "run", "--rm", "--user", "1234:2345", IMAGE, "sh", "-c", "id -u; id -g")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [b"1234", b"2345"]


def test_detached_logs_stop_and_rm_with_the_job_under_the_users_name(clean_after):
    name = f"rl-{uuid.uuid4().hex[:8]}"
    run = podman(A, "run", "-d", "--name", name, IMAGE, "sh", "-c", "echo started; trap 'exit 7' TERM; while :; do sleep 0.1; done")
    assert run.returncode == 0, run.stderr
    cid = run.stdout.decode().strip()
    try:
        wait_for(lambda: b"started" in podman(A, "logs", name).stdout, 60, "the container's output in podman logs")
        jobs = [line.split("|") for line in user_jobs(A)]
        assert len(jobs) == 1 and jobs[0][1:3] == [A, str(uid_of(A))], jobs
        assert jobs[0][3] in (f"scrun:{name}", f"scrun:{cid[:12]}"), jobs
        stop = podman(A, "stop", "-t", "20", name)
        assert stop.returncode == 0, stop.stderr
        assert podman(A, "inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip() == b"7"
    finally:
        podman(A, "rm", "-f", name)


def test_terminal(rootless, clean_after):
    require(shutil.which("tmux") is not None, "tmux is not installed")
    with Tmux(user=A) as term:
        term.line(f"podman --runtime scrun run -it --rm --network none {IMAGE} sh -c 'test -t 0 && test -t 1 && echo IS-A-TTY; exit 4'; echo RC:$?")
        screen = term.wait("RC:", timeout=120)
    assert "IS-A-TTY" in screen and "RC:4" in screen, screen


# ------------------------------------------------------------------ identity

@pytest.fixture
def user_conf(rootless):
    """A slurm.conf directory A can read, whose scrun.lua records what it was given, then stages."""
    conf = readable_conf_dir("scrun-rootless-conf-")
    out = conf / "out"
    out.mkdir()
    shutil.chown(out, A, A)
    yield conf, out
    shutil.rmtree(conf)


def test_identity_the_seed_defines(user_conf, clean_after):
    """SCRUN_USER* and the hooks' ids are the real user; scrun.lua runs as root(0) of the user namespace."""
    conf, out = user_conf
    (conf / "scrun.lua").write_text(f"""
dofile("/etc/slurm/staging-example.lua")  -- a staging script onto /scratch (tools/cluster/scrun.lua)
local site_stage_in = slurm_scrun_stage_in
function slurm_scrun_stage_in(id, bundle, spool_dir, config_file, job_id, user_id, group_id, job_env)
    local _, lua_uid = slurm.allocator_command("id -u")
    -- Commands get scrun's output variables in their environment.
    local _, vars = slurm.allocator_command('printf "%s|%s|%s|%s" "$SCRUN_USER" "$SCRUN_USER_ID" "$SCRUN_GROUP" "$SCRUN_GROUP_ID"')
    local f = io.open("{out}/seen.json", "w")
    f:write(slurm.to_json({{user_id = user_id, group_id = group_id, lua_uid = lua_uid, vars = vars}}))
    f:close()
    return site_stage_in(id, bundle, spool_dir, config_file, job_id, user_id, group_id, job_env)
end
""")
    proc = podman(A, "run", "--rm", IMAGE, "sh", "-c", "exit 5", conf=conf)
    assert proc.returncode == 5, proc.stderr
    seen = json.loads((out / "seen.json").read_text())
    pw = pwd.getpwnam(A)
    assert (seen["user_id"], seen["group_id"]) == (pw.pw_uid, pw.pw_gid)
    assert seen["vars"] == f"{A}|{pw.pw_uid}|{A}|{pw.pw_gid}"
    assert seen["lua_uid"].strip() == "0", "scrun.lua runs as root(0) inside the user namespace"


def test_the_seeds_staging_example_runs_rootless(user_conf, clean_after):
    """The man page's example is written for rootless podman: it runs unchanged for an ordinary user."""
    from test_lua_staging import SEED_SCRATCH_PATH, seed_example  # the seed's text, cut out of the man page

    from conftest import SEED

    require(SEED.exists(), "shared/seed/scrun.1.txt is not next to the repository")
    conf, _ = user_conf
    (conf / "scrun.lua").write_text(seed_example())
    proc = podman(A, "run", "--rm", IMAGE, "sh", "-c",
                  "echo staged-by-seed; exit 6", conf=conf)
    assert proc.returncode == 6, proc.stderr
    assert proc.stdout == b"staged-by-seed\n"
    staged = pathlib.Path(f"{SEED_SCRATCH_PATH}{uid_of(A)}/slurm/scrun")
    assert not staged.exists() or not list(staged.iterdir()), "the seed's stage_out removes its copy"


# ------------------------------------------------------------------ isolation between users

@pytest.fixture
def a_running(clean_after):
    """A's detached container, to be attacked by B; it must survive and end with its own code."""
    name = f"victim-{uuid.uuid4().hex[:8]}"
    run = podman(A, "run", "-d", "--name", name, IMAGE, "sh", "-c", "trap 'exit 7' TERM; while :; do sleep 0.1; done")
    assert run.returncode == 0, run.stderr
    cid = run.stdout.decode().strip()
    wait_for(lambda: podman(A, "inspect", "--format", "{{.State.Status}}", name).stdout.strip() == b"running", 60,
             "A's container to run")
    yield cid
    try:
        assert podman(A, "inspect", "--format", "{{.State.Status}}", name).stdout.strip() == b"running", \
            "B's attempts must leave A's container running"
        assert len(user_jobs(A)) == 1
        stop = podman(A, "stop", "-t", "20", name)
        assert stop.returncode == 0, stop.stderr
        assert podman(A, "inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip() == b"7"
    finally:
        podman(A, "rm", "-f", name)


@pytest.mark.parametrize("verb", [["state"], ["start"], ["kill"], ["kill", "--all"], ["pause"], ["resume"], ["delete"],
                                  ["delete", "--force"]])
def test_other_user_cannot_use_the_cli_on_the_container(a_running, verb):
    argv = [SCRUN, "--root", state_root(A), verb[0], *verb[1:], a_running]
    if verb[0] == "kill":
        argv.append("KILL")
    proc = as_user(B, argv, timeout=60)
    line = one_line_error(proc)
    assert "another user" in line or "not to you" in line, line
    # The same from inside B's own rootless podman namespace (where the engine runs scrun).
    proc = as_user(B, ["podman", "unshare", *argv], timeout=60)
    line = one_line_error(proc)
    assert "another user" in line or "not to you" in line, line


def test_other_user_cannot_reach_the_anchor_socket(a_running):
    sock_path = f"{state_root(A)}/{a_running}/ctl.sock"
    probe = ("import socket,sys\ns=socket.socket(socket.AF_UNIX)\n"
             "try:\n    s.connect(sys.argv[1])\nexcept OSError as e:\n    print(e.errno)\nelse:\n    print('connected')\n")
    proc = as_user(B, ["python3", "-c", probe, sock_path])
    assert proc.stdout.strip() == b"13", proc  # EACCES: the state directory is A's alone


def test_the_anchor_itself_refuses_a_peer_of_another_uid(a_running):
    """Defence in depth: root of the host can reach the socket, but is not A inside A's namespace."""
    sock_path = f"{state_root(A)}/{a_running}/ctl.sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(30)
        sock.connect(sock_path)
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # it may answer before we ask
            sock.sendall(b'{"v": 1, "op": "kill", "signal": 9}\n')
        reply = json.loads(sock.makefile("rb").readline())
    assert reply["ok"] is False and reply["kind"] == "permission", reply


def test_state_is_private(a_running):
    root = pathlib.Path(state_root(A))
    # Search-only for others (a user-namespaced container's mapped root must reach its node
    # bundle); no listing, and every file in it is the owner's alone.
    assert (root.stat().st_mode & 0o777) == 0o711 and ((root / a_running).stat().st_mode & 0o777) == 0o711
    assert all((f.stat().st_mode & 0o077) == 0 for f in (root / a_running).iterdir() if f.is_file() or f.is_socket())
    assert ((root / a_running / "ctl.sock").stat().st_mode & 0o077) == 0
    proc = as_user(B, ["ls", f"{root}/{a_running}"])
    assert proc.returncode != 0 and b"Permission denied" in proc.stderr
    proc = as_user(B, ["cat", f"{root}/{a_running}/anchor.log"])
    assert proc.returncode != 0 and b"Permission denied" in proc.stderr


def test_other_user_cannot_see_logs_or_attach(a_running):
    for args in (["logs", a_running], ["attach", a_running], ["inspect", a_running]):
        proc = podman(B, *args, timeout=60)
        assert proc.returncode != 0 and b"no such" in proc.stderr.lower(), (args, proc.stderr)


def test_other_user_cannot_create_in_the_state_root(a_running, tmp_path):
    bundle = pathlib.Path(tempfile.mkdtemp(prefix="scrun-b-bundle-", dir="/tmp"))
    try:
        cluster_tool("podman").build_busybox_rootfs(bundle / "rootfs")
        (bundle / "config.json").write_text(json.dumps({"ociVersion": "1.0.2", "root": {"path": "rootfs"},
                                                        "process": {"args": ["true"], "cwd": "/"}}))
        subprocess.run(["chown", "-R", f"{B}:{B}", str(bundle)], check=True)
        proc = as_user(B, [SCRUN, "--root", state_root(A), "create", "--bundle", str(bundle), "b-in-a"], timeout=60)
        line = one_line_error(proc)
        assert "another user" in line or "not to you" in line, line
        assert not user_jobs(B)
    finally:
        shutil.rmtree(bundle)


def test_a_symlink_cannot_lead_out_of_the_state_root(a_running):
    b_root = pathlib.Path(state_root(B))
    as_user(B, ["mkdir", "-p", "-m", "0700", str(b_root)])
    link = b_root / "evil"
    as_user(B, ["ln", "-sfn", f"{state_root(A)}/{a_running}", str(link)])
    try:
        for verb in (["state", "evil"], ["kill", "evil", "KILL"], ["delete", "--force", "evil"]):
            line = one_line_error(as_user(B, [SCRUN, verb[0], *verb[1:]], timeout=60))
            assert "symlink" in line, line
    finally:
        link.unlink()


# ------------------------------------------------------------------ bad set-ups

def test_a_state_root_of_another_user_is_refused(rootless, tmp_path):
    foreign = pathlib.Path(tempfile.mkdtemp(prefix="scrun-foreign-root-", dir="/tmp"))
    try:
        shutil.chown(foreign, B, B)
        foreign.chmod(0o755)
        line = one_line_error(as_user(A, [SCRUN, "--root", str(foreign), "state", "x"], timeout=60))
        assert re.search(rf"belongs to uid {uid_of(B)}, not to you", line), line
    finally:
        shutil.rmtree(foreign)


def test_an_unreadable_slurm_conf_is_named(rootless, tmp_path):
    conf = pathlib.Path(tempfile.mkdtemp(prefix="scrun-private-conf-", dir="/tmp"))
    conf.chmod(0o755)
    try:
        shutil.copy2("/etc/slurm/slurm.conf", conf / "slurm.conf")
        (conf / "slurm.conf").chmod(0o600)
        proc = podman(A, "run", "--rm", IMAGE, "true", conf=conf, timeout=120)
        assert proc.returncode != 0
        assert f"cannot read {conf}/slurm.conf: Permission denied".encode() in proc.stderr, proc.stderr
        assert not user_jobs(A)
    finally:
        shutil.rmtree(conf)


def test_without_staging_an_overlay_rootfs_fails_at_create_and_a_plain_one_runs(user_conf, clean_after):
    """No staging: podman's overlay mount (its own namespace) cannot reach a node: say so before
    any job. The vfs driver's plain directory under /home can, but podman's bind-mounted files in
    /run/user cannot: the step fails to launch, with srun's words, and nothing runs."""
    conf, _ = user_conf
    (conf / "scrun.conf").unlink()  # the cluster's staging
    driver = podman(A, "info", "--format", "{{.Store.GraphDriverName}}").stdout.decode().strip()
    proc = podman(A, "run", "--rm", IMAGE, "sh", "-c", "echo ran; exit 2", conf=conf)
    if driver == "overlay":
        assert proc.returncode != 0
        assert b"is rootless podman's overlay mount" in proc.stderr and b"scrun.lua" in proc.stderr, proc.stderr
        assert b"Traceback" not in proc.stderr
    else:  # vfs: the rootfs under /home is shared, podman's bind-mounted files in /run/user are not
        assert proc.returncode != 0 and b"ran" not in proc.stdout, (driver, proc.stderr)
        assert b"No such file or directory" in proc.stderr, proc.stderr
    assert not user_jobs(A)


# ------------------------------------------------------------------ built-in staging (no scrun.lua)

@pytest.fixture
def stage_conf(user_conf):
    """user_conf without a scrun.lua and with scrun.conf's StageDir (1777, as a site's scratch)."""
    conf, _ = user_conf
    stage = conf / "scratch"
    stage.mkdir()
    stage.chmod(0o1777)
    (conf / "scrun.conf").write_text(f"StageDir={stage}\n")
    return conf, stage


def test_builtin_staging_runs_rootless_podman_without_a_scrun_lua(stage_conf, clean_after):
    """Rootless podman's overlay rootfs exists only in its namespace: without a scrun.lua create
    used to refuse it; with StageDir scrun copies it for the nodes, and removes the copy."""
    conf, stage = stage_conf
    proc = podman(A, "run", "--rm", IMAGE, "sh", "-c", "echo staged-builtin; id -u; exit 4", conf=conf)
    assert (proc.returncode, proc.stdout) == (4, b"staged-builtin\n0\n"), proc.stderr
    mine = stage / A
    assert mine.is_dir() and mine.stat().st_uid == uid_of(A) and stat.S_IMODE(mine.stat().st_mode) == 0o711
    assert list(mine.iterdir()) == [], "delete removes the copy"


def test_builtin_staging_for_root_podman_with_uid_mappings(stage_conf, podman_ready):
    conf, stage = stage_conf
    script = "id -u; cat /proc/self/uid_map; touch /tmp/w && echo writable; exit 3"
    proc = subprocess.run(["podman", "--runtime", "scrun", "--runtime-flag", f"slurm-conf={conf}/slurm.conf", "run",
                           "--rm", "--network", "none", "--uidmap", "0:100000:65536", "--gidmap", "0:100000:65536",
                           IMAGE, "sh", "-c", script], capture_output=True, timeout=180, stdin=subprocess.DEVNULL)
    assert proc.returncode == 3, proc.stderr
    out = proc.stdout.split()
    assert out[0] == b"0" and out[2] == b"100000" and out[-1] == b"writable"
    assert list((stage / "root").iterdir()) == []
