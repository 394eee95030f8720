"""Files root writes or reads at a path: a user's link or file there is never followed or fed."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from security.conftest import PEER, as_user, uid_of


def scrun_root(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "scrun", *args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


@pytest.fixture
def peer_dir(tmp_path):
    """A directory of the attacker's (not sticky: links in it are followed by the kernel)."""
    path = f"{os.path.expanduser('~' + PEER)}/attack-{tmp_path.name}"
    as_user(PEER, ["mkdir", "-m", "0755", path], check=True)
    yield path
    as_user(PEER, ["rm", "-rf", path])


@pytest.fixture
def root_file(tmp_path):
    """A file of root's that a link will point at: it must stay as it is."""
    path = f"/etc/scrun-victim-{tmp_path.name}"
    with open(path, "w") as fh:
        fh.write("root's\n")
    os.chmod(path, 0o644)
    yield path
    with open(path) as fh:
        assert fh.read() == "root's\n", "a file of root's was written through a user's link"
    assert os.stat(path).st_mode & 0o777 == 0o644, "a file of root's was chmod'ed through a user's link"
    os.unlink(path)


def test_log_does_not_follow_a_users_link(peer_dir, root_file, tmp_path):
    as_user(PEER, ["ln", "-s", root_file, f"{peer_dir}/log.json"], check=True)
    proc = scrun_root("--root", str(tmp_path / "r"), "--debug", "--log", f"{peer_dir}/log.json", "--log-format", "json",
                      "state", "nosuch")
    assert proc.returncode != 0 and "--log" in proc.stderr and "symlink" in proc.stderr, proc.stderr


def test_log_does_not_write_into_a_users_file(peer_dir, tmp_path):
    """root's debug log (the container's environment, paths) must not land in a file the user reads."""
    as_user(PEER, ["touch", f"{peer_dir}/log.json"], check=True)
    proc = scrun_root("--root", str(tmp_path / "r"), "--debug", "--log", f"{peer_dir}/log.json", "state", "nosuch")
    assert proc.returncode != 0 and f"belongs to uid {uid_of(PEER)}" in proc.stderr, proc.stderr
    assert os.path.getsize(f"{peer_dir}/log.json") == 0


def test_log_to_dev_stderr_still_works(tmp_path):
    """root's own links in root's directories are followed: /dev/stderr is one."""
    proc = scrun_root("--root", str(tmp_path / "r"), "--debug", "--log", "/dev/stderr", "state", "nosuch")
    assert proc.returncode != 0 and "cannot open" not in proc.stderr and "does not exist" in proc.stderr, proc.stderr


def test_pid_file_replaces_a_users_link_and_never_writes_its_target(scrun, make_bundle, peer_dir, root_file):
    as_user(PEER, ["chmod", "0777", peer_dir], check=True)
    as_user(PEER, ["ln", "-s", root_file, f"{peer_dir}/pid"], check=True)
    cid = scrun.new_id()
    err = scrun.root.parent / "create.err"
    with open(err, "wb") as fh:  # a file, not a pipe: the anchor keeps create's stderr
        proc = subprocess.run([sys.executable, "-m", "scrun", "--root", str(scrun.root), "create", "--bundle",
                               str(make_bundle(["true"])), "--pid-file", f"{peer_dir}/pid", cid],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=fh, timeout=120)
    assert proc.returncode == 0, err.read_text()
    assert not os.path.islink(f"{peer_dir}/pid") and os.stat(f"{peer_dir}/pid").st_uid == 0
    assert scrun("delete", "--force", cid).returncode == 0


def test_doctor_allocate_writes_nothing_into_a_users_root(peer_dir, make_bundle):
    proc = scrun_root("--root", peer_dir, "doctor", "--allocate", "--bundle", str(make_bundle(["true"])), timeout=120)
    assert proc.returncode != 0
    assert f"belongs to uid {uid_of(PEER)}" in proc.stdout, proc.stdout
    assert os.listdir(peer_dir) == []


def test_a_fifo_as_config_json_does_not_hang_create(scrun, make_bundle):
    bundle = make_bundle(["true"])
    (bundle / "config.json").unlink()
    os.mkfifo(bundle / "config.json")
    cid = scrun.new_id()
    t0 = time.monotonic()
    proc = scrun.create(cid, bundle)
    assert proc.returncode != 0 and "not a regular file" in proc.stderr, proc.stderr
    assert time.monotonic() - t0 < 20 and not (scrun.root / cid).exists()


def test_a_huge_config_json_is_not_read_whole(scrun, make_bundle):
    bundle = make_bundle(["true"])
    with open(bundle / "config.json", "r+b") as fh:
        fh.truncate(2 << 30)  # sparse 2 GiB: read whole, create would take it all into memory
    cid = scrun.new_id()
    proc = scrun.create(cid, bundle)
    assert proc.returncode != 0 and "larger than 4 MiB" in proc.stderr, proc.stderr
