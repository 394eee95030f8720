"""root never acts on what a user wrote, and nobody acts on a record that names someone else's
process: hostile records, hostile state roots, swapped links, a pre-made /tmp fallback."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from security.conftest import PEER, USER, as_user, job_state, uid_of

CID = "hostile0"


def scrun_as_root(*args: str, root: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "scrun", "--root", root, *args], capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)


def scrun_as(user: str, *args: str, root: str) -> subprocess.CompletedProcess:
    return as_user(user, [sys.executable, "-m", "scrun", "--root", root, *args],
                   env={"PYTHONPATH": os.path.join(os.path.dirname(__file__), "..", "..", "src")})


def hostile_record(job_id: int | None, pid: int, starttime: int) -> dict:
    return {"schema": 1, "id": CID, "bundle": "/", "orig_bundle": "/", "config_file": "/config.json", "root_path": "/",
            "orig_root_path": "/", "oci_version": "1.0.2", "status": "running", "anchor_pid": pid,
            "anchor_starttime": starttime, "job_id": job_id, "own_allocation": True,
            "slurm_conf": "/nonexistent/slurm.conf"}


def plant(user: str, root: str, record: dict) -> None:
    """The attacker writes a state root with a record in it, as its own files."""
    as_user(user, ["mkdir", "-p", "-m", "0711", f"{root}/{CID}"], check=True)
    as_user(user, ["sh", "-c", f"cat > {root}/{CID}/state.json <<'EOF'\n{json.dumps(record)}\nEOF"], check=True)


@pytest.fixture
def victim_process():
    """A process of root's the record will name (start time 0: 'matches any process')."""
    proc = subprocess.Popen(["sleep", "300"])
    yield proc
    assert proc.poll() is None, "the process a hostile record named was killed"
    proc.kill()
    proc.wait()


@pytest.fixture
def peer_root(tmp_path):
    home = os.path.expanduser(f"~{PEER}")
    root = f"{home}/attack-{tmp_path.name}"
    yield root
    as_user(PEER, ["rm", "-rf", root])


@pytest.mark.parametrize("verb", [["delete", "--force", CID], ["kill", CID, "KILL"], ["pause", CID], ["resume", CID],
                                  ["state", CID], ["list"]])
def test_root_refuses_a_users_state_root(peer_root, victim_job, victim_process, verb):
    plant(PEER, peer_root, hostile_record(victim_job, victim_process.pid, 0))
    proc = scrun_as_root(*verb, root=peer_root)
    assert proc.returncode != 0 and f"belongs to uid {uid_of(PEER)}" in proc.stderr, proc.stderr
    time.sleep(0.5)
    assert job_state(victim_job) == "RUNNING" and victim_process.poll() is None
    assert os.path.exists(f"{peer_root}/{CID}/state.json")  # nothing of theirs removed either


def test_root_refuses_a_root_owned_root_inside_a_users_directory(peer_root, victim_job):
    """The user cannot write root's directory, but can rename it and put a link in its place."""
    os.makedirs(peer_root, mode=0o700, exist_ok=True)
    os.chown(peer_root, uid_of(PEER), uid_of(PEER))
    inner = f"{peer_root}/state"
    os.mkdir(inner, 0o711)
    proc = scrun_as_root("list", root=inner)
    assert proc.returncode != 0 and "another user could swap" in proc.stderr, proc.stderr


def test_root_does_not_follow_a_users_link_to_a_root(tmp_path, victim_job):
    link = f"/tmp/scrun-link-{tmp_path.name}"
    as_user(PEER, ["ln", "-s", "/run/scrun", link], check=True)
    try:
        proc = scrun_as_root("list", root=link)
        assert proc.returncode != 0 and f"is a symlink owned by uid {uid_of(PEER)}" in proc.stderr, proc.stderr
    finally:
        os.unlink(link)


@pytest.mark.parametrize("kind", ["dir", "link"])
def test_a_users_tmp_fallback_made_first_by_another_user_is_refused(tmp_path, kind):
    """/tmp/scrun-<uid> is where a user's state goes without /run/user: the attacker makes it first."""
    target = f"/tmp/scrun-premade-{tmp_path.name}"
    if kind == "dir":
        as_user(PEER, ["mkdir", "-m", "0777", target], check=True)
    else:
        as_user(PEER, ["mkdir", "-m", "0700", f"{target}-real"], check=True)
        as_user(PEER, ["ln", "-s", f"{target}-real", target], check=True)
    try:
        proc = scrun_as(USER, "list", root=target)
        assert proc.returncode != 0 and f"uid {uid_of(PEER)}" in proc.stderr, proc.stderr
    finally:
        as_user(PEER, ["rm", "-rf", target, f"{target}-real"])


def test_a_record_without_a_start_time_names_no_process(tmp_path):
    """A user's own record naming a pid with start time 0: kill/delete must not signal that pid
    (it may be anyone's by now); the user's own sleep is the stand-in for such a process."""
    root = f"/tmp/scrun-st0-{tmp_path.name}"
    victim = as_user(USER, ["sh", "-c", "sleep 300 >/dev/null 2>&1 & echo $!"], check=True)
    pid = int(victim.stdout.strip())
    try:
        as_user(USER, ["mkdir", "-m", "0700", root], check=True)
        plant(USER, root, hostile_record(None, pid, 0))
        for verb in (["kill", CID, "KILL"], ["delete", "--force", CID]):
            scrun_as(USER, *verb, root=root)
        time.sleep(0.3)
        assert os.path.exists(f"/proc/{pid}"), "a pid from a record without start time was killed"
    finally:
        as_user(USER, ["kill", str(pid)])
        as_user(USER, ["rm", "-rf", root])


@pytest.mark.parametrize("kind", ["fifo", "huge", "symlink"])
def test_a_strange_record_is_an_error_not_a_hang(tmp_path, kind):
    root = tmp_path / "root"
    (root / CID).mkdir(parents=True, mode=0o700)
    record = root / CID / "state.json"
    if kind == "fifo":
        os.mkfifo(record)
    elif kind == "huge":
        with open(record, "wb") as fh:
            fh.truncate(200 << 20)  # sparse: no disk used
    else:
        (tmp_path / "elsewhere.json").write_text(json.dumps(hostile_record(None, 1, 0)))
        record.symlink_to(tmp_path / "elsewhere.json")
    t0 = time.monotonic()
    proc = scrun_as_root("state", CID, root=str(root))
    assert proc.returncode != 0 and "unreadable record" in proc.stderr, proc.stderr
    assert time.monotonic() - t0 < 10
