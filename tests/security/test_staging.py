"""The development cluster's site files: staged copies of a container and crun's state on the
nodes are private to their user (the container's environment, secrets included, is in them)."""
from __future__ import annotations

import os
import pathlib
import shutil
import stat
import subprocess
import tempfile
import uuid

import pytest

from conftest import IMAGE, cluster_tool, wait_for
from security.conftest import PEER, USER, as_user, podman, uid_of

CRUN_ROOT = cluster_tool("slurmconf").CRUN_ROOT
STAGE_DIR = cluster_tool("slurmconf").STAGE_DIR  # the cluster's scrun.conf StageDir: copies in <user>/<id>
# The copies this file's containers were staged to: the last test checks they are gone. Only
# these: StageDir also holds what an interrupted earlier run left (a killed test run's container).
STAGED: list[str] = []


def peer_cannot_reach(bundle: str) -> None:
    assert as_user(PEER, ["cat", f"{bundle}/config.json"]).returncode != 0, "another user read the staged config.json"
    assert as_user(PEER, ["touch", f"{bundle}/rootfs/tmp/peer-was-here"]).returncode != 0, \
        "another user wrote into the staged rootfs"
    assert as_user(PEER, ["ls", os.path.dirname(bundle)]).returncode != 0, "another user listed the staged copies"


@pytest.fixture
def detached(podman_ready):
    names: list[tuple[str, str | None]] = []

    def run(*args: str, user: str | None = None) -> str:
        name = f"sec-{uuid.uuid4().hex[:8]}"
        proc = podman("run", "-d", "--name", name, *args, IMAGE, "sleep", "60", user=user)
        assert proc.returncode == 0, proc.stderr
        names.append((name, user))
        return podman("inspect", "--format", "{{.Id}}", name, user=user).stdout.strip()

    yield run
    for name, user in names:
        podman("rm", "-f", "-t", "0", name, user=user)


def test_a_root_container_with_uid_mappings_is_staged_privately(detached):
    cid = detached("--uidmap", "0:100000:65536", "--gidmap", "0:100000:65536")
    bundle = f"{STAGE_DIR}/root/{cid}"
    STAGED.append(bundle)
    wait_for(lambda: os.path.exists(f"{bundle}/config.json"), 30, "the staged copy")
    st = os.stat(bundle)
    assert (stat.S_IMODE(st.st_mode), st.st_uid) == (0o700, 100000), "reachable by its mapped root alone"
    assert stat.S_IMODE(os.stat(f"{bundle}/config.json").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(f"{STAGE_DIR}/root").st_mode) == 0o711
    peer_cannot_reach(bundle)


def test_a_rootless_container_is_staged_privately(detached):
    cid = detached(user=USER)
    bundle = f"{STAGE_DIR}/{USER}/{cid}"
    STAGED.append(bundle)
    wait_for(lambda: os.path.exists(f"{bundle}/config.json"), 30, "the staged copy")
    assert stat.S_IMODE(os.stat(f"{bundle}/config.json").st_mode) == 0o600
    assert not stat.S_IMODE(os.stat(bundle).st_mode) & 0o077
    peer_cannot_reach(bundle)


def test_crun_state_directories_cannot_be_made_by_another_user():
    """oci.conf runs crun with --root=CRUN_ROOT/<user>: with a 1777 parent, another user could make
    that directory first and own the victim's crun state."""
    st = os.stat(CRUN_ROOT)
    assert st.st_uid == 0 and not stat.S_IMODE(st.st_mode) & 0o022
    for user in (USER, PEER):
        own = os.stat(f"{CRUN_ROOT}/{user}")
        assert own.st_uid == uid_of(user) and stat.S_IMODE(own.st_mode) == 0o700
    assert as_user(PEER, ["mkdir", f"{CRUN_ROOT}/someone-{uuid.uuid4().hex[:6]}"]).returncode != 0
    assert as_user(PEER, ["ls", f"{CRUN_ROOT}/{USER}"]).returncode != 0


def test_nothing_is_left_staged_after_the_containers_are_gone(podman_ready):
    """Runs after the tests above (file order): stage_out removed every copy they made, and the
    copy of a container run here and removed."""
    for user, owner in ((None, "root"), (USER, USER)):
        name = f"sec-{uuid.uuid4().hex[:8]}"
        proc = podman("run", "-d", "--name", name, IMAGE, "sleep", "60", user=user)
        assert proc.returncode == 0, proc.stderr
        cid = podman("inspect", "--format", "{{.Id}}", name, user=user).stdout.strip()
        STAGED.append(f"{STAGE_DIR}/{owner}/{cid}")
        wait_for(lambda: os.path.exists(f"{STAGED[-1]}/config.json"), 30, "the staged copy")
        assert podman("rm", "-f", "-t", "0", name, user=user).returncode == 0
    wait_for(lambda: not [b for b in STAGED if os.path.lexists(b)], 30,
             f"stage_out to remove the staged copies {STAGED}")


def oci_conf_commands() -> dict[str, str]:
    out = {}
    for line in open("/etc/slurm/oci.conf"):
        key, sep, value = line.strip().partition("=")
        if sep and key.startswith("RunTime"):
            out[key] = value.strip().strip('"')
    return out


@pytest.mark.parametrize("key", ["RunTimeQuery", "RunTimeKill", "RunTimeDelete"])
def test_crun_runs_as_the_jobs_user_even_when_slurmstepd_is_root(request, key):
    """slurmstepd runs Query/Kill/Delete as root when it cleans up a user's step (seen: `id -u` = 0
    in RunTimeQuery and RunTimeDelete on 22.05), and `crun delete --force` runs the poststop hooks
    of the config.json in the state directory — the user's directory. So the cluster's oci.conf
    drops to the job's user first. Checked with the real command line, crun swapped for one that
    says who ran it."""
    from scrun.core.nodeexec import expand_oci_pattern

    command = oci_conf_commands()[key]
    base = pathlib.Path(tempfile.mkdtemp(prefix="scrun-fake-crun-"))  # pytest's tmp is root's 0700
    request.addfinalizer(lambda: shutil.rmtree(base, ignore_errors=True))
    base.chmod(0o755)
    fake = base / "bin"
    fake.mkdir()
    who = base / "who"
    (fake / "crun").write_text(f"#!/bin/sh\nid -u > {who}\n")
    (fake / "crun").chmod(0o755)
    who.touch()
    who.chmod(0o666)
    expanded = expand_oci_pattern(command, {"u": USER, "U": str(uid_of(USER)), "n": "n1", "j": "1", "s": "0", "t": "0"})
    assert " crun " in expanded
    expanded = expanded.replace(" crun ", f" {fake}/crun ")  # runuser resets PATH: the fake by its path
    proc = subprocess.run(["sh", "-c", expanded], env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert who.read_text().strip() == str(uid_of(USER)), f"{key} ran crun as uid {who.read_text().strip()}"
