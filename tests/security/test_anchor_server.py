"""The anchor server (`AnchorServer=yes`) holds every container of its user: nobody else may hand
it a container or its fds, and create never hands one to a server of another user."""
from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys
import textwrap
import time

import pytest

from conftest import anchor_servers, jobs_named, wait_for
from security.conftest import PEER, as_user

pytestmark = pytest.mark.security


@pytest.fixture
def open_scrun(scrun):
    """The scrun fixture, its state root where other users may reach it (pytest's own tmp is
    0700: an attack there would fail for the wrong reason). Its leak check still applies."""
    import tempfile

    base = pathlib.Path(tempfile.mkdtemp(prefix="scrun-open-"))
    base.chmod(0o711)
    scrun.root = base / "root"
    yield scrun
    for cid in scrun.ids:
        if (scrun.root / cid).exists():
            scrun("delete", "--force", cid)
    shutil.rmtree(base, ignore_errors=True)


def test_another_user_cannot_reach_the_server_even_through_an_open_socket(open_scrun, make_bundle, served):
    scrun = open_scrun
    cid = scrun.new_id()
    assert scrun.create(cid, make_bundle(["sleep", "60"]), global_args=served).returncode == 0
    path = scrun.root / "@anchor-server"
    probe = textwrap.dedent(f"""
        import json, os, socket, sys
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect({str(path)!r})
        except OSError as exc:
            print("connect", exc.errno); sys.exit(0)
        r, w = os.pipe()
        msg = json.dumps({{"root": {str(scrun.root)!r}, "id": {cid!r}, "waiter_pid": os.getpid()}}).encode()
        socket.send_fds(s, [msg], [0, 1, 2, w, r])
        s.settimeout(10)
        print("reply", s.recv(64))
    """)
    # The socket is the server's alone (0600 in its own root): the connect is refused.
    first = as_user(PEER, [sys.executable, "-c", probe])
    assert first.stdout.strip() == "connect 13", first.stdout + first.stderr
    # Loosened by mistake, it still serves only its own uid (SO_PEERCRED): no "adopted".
    os.chmod(path, 0o666)
    second = as_user(PEER, [sys.executable, "-c", probe])
    assert second.stdout.strip() == "reply b''", second.stdout + second.stderr
    assert "refused a container" in (scrun.root / "@anchor-server.log").read_text()
    assert scrun.state(cid)["status"] == "created", "the container the attacker named is untouched"
    assert scrun("delete", "--force", cid, global_args=served).returncode == 0


def test_create_never_hands_a_container_to_another_users_server(open_scrun, make_bundle, served):
    """A socket at the server's path that another user listens on (however it got there): create
    checks its peer's uid, fails with the fix, and leaves nothing."""
    scrun = open_scrun
    shared = scrun.root.parent / "drop"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    listener = subprocess.Popen(["runuser", "-u", PEER, "--", sys.executable, "-c", textwrap.dedent(f"""
        import socket, time
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind({str(shared / 'sock')!r}); s.listen(8); print("up", flush=True)
        while True:
            c, _ = s.accept(); c.recv(65536); time.sleep(30)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert listener.stdout.readline() == "up\n"
        scrun.root.mkdir(mode=0o711, exist_ok=True)
        os.rename(shared / "sock", scrun.root / "@anchor-server")
        cid = scrun.new_id()
        proc = scrun.create(cid, make_bundle(["true"]), global_args=served)
        assert proc.returncode != 0 and "not by you" in proc.stderr, proc.stderr
        assert not (scrun.root / cid).exists() and not jobs_named([f"scrun:{cid[:12]}"])
    finally:
        listener.kill()
        listener.wait()


def test_a_server_killed_mid_create_leaves_no_job(scrun, make_bundle, served):
    """SIGKILL to the server while containers are being created: each create fails or its
    container reads stopped, and no job outlives it."""
    ids = [scrun.new_id() for _ in range(3)]
    procs = [subprocess.Popen([sys.executable, "-m", "scrun", "--root", str(scrun.root), *served, "create", "--bundle",
                               str(make_bundle(["sleep", "60"], name=f"b{n}")), cid], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL) for n, cid in enumerate(ids)]
    wait_for(lambda: anchor_servers(scrun.root), 30, "the server to start")
    time.sleep(0.3)
    [server] = anchor_servers(scrun.root)
    os.kill(server, 9)
    codes = [proc.wait(timeout=60) for proc in procs]
    for cid, code in zip(ids, codes, strict=True):
        if code != 0:  # its create failed with the server: nothing of it is left
            wait_for(lambda c=cid: not jobs_named([f"scrun:{c[:12]}"]), 60, f"{cid}'s job to end")
            assert not (scrun.root / cid).exists()
        elif scrun.state(cid)["status"] == "stopped":  # created, then its server died
            wait_for(lambda c=cid: not jobs_named([f"scrun:{c[:12]}"]), 60, f"{cid}'s job to end")
        else:  # handed to a new server after the kill: it serves on
            assert scrun.state(cid)["status"] == "created"
        assert scrun("delete", "--force", cid, global_args=served).returncode == 0
    assert not jobs_named([f"scrun:{cid[:12]}" for cid in ids])


def test_the_waiter_runs_nothing_a_container_sets():
    """The container's pid on the login node is a fixed shell script: nothing of config.json,
    the image or the environment reaches its command line or its environment."""
    from scrun.anchor.served import WAITER, ServedAnchor

    anchor = ServedAnchor.start()
    pid = anchor.start_waiter()
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            assert fh.read().split(b"\0")[:1] == [b"PATH=/usr/bin:/bin"]
        argv = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
        assert argv[1:3] == [b"-c", WAITER.encode()]
    finally:
        anchor.discard()
