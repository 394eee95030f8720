"""The container's pid when the caller may not enter the anchor's network namespace
(anchor/netnsholder.py): what rootless docker 28 needs, checked here without docker.

An "engine" helper makes itself a subreaper (as conmon and containerd's shim do) and runs
`scrun create` in a user namespace of its own, where the network namespace it runs in belongs to
the parent user namespace; it then waits for the pid create reported, as an engine does.
"""
from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys

from conftest import live_anchors, wait_for

ENGINE = r"""
import ctypes, json, os, subprocess, sys
ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER: create's orphans become ours
argv, pid_file, out, err = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
with open(out, "wb") as o, open(err, "wb") as e:  # the container's stdio: files, as the engine's logs
    code = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=o, stderr=e).returncode
if code:
    print(f"create {code}", flush=True)
    sys.exit(1)
pid = int(open(pid_file).read())
print(pid, flush=True)
while True:
    reaped, status = os.wait()
    if reaped == pid:
        print(os.waitstatus_to_exitcode(status), flush=True)
        break
while True:  # the anchor, if it is still ours to reap
    try:
        os.wait()
    except ChildProcessError:
        break
"""


def test_the_engine_gets_a_pid_it_can_enter_which_passes_signals_and_the_exit_code(slurm_cluster, scrun, make_bundle,
                                                                                     tmp_path):
    bundle = make_bundle(["sh", "-c", "echo ready; while :; do sleep 0.1; done"])
    config = json.loads((bundle / "config.json").read_text())
    namespaces = config["linux"].setdefault("namespaces", [])
    if not any(ns.get("type") == "network" for ns in namespaces):
        namespaces.append({"type": "network"})  # docker's --network none: the runtime makes it
    (bundle / "config.json").write_text(json.dumps(config))
    cid = scrun.new_id()
    pid_file = tmp_path / "container.pid"
    create = ["unshare", "--user", "--map-root-user", "--", sys.executable, "-m", "scrun", "--root", str(scrun.root),
              "create", "--bundle", str(bundle), "--pid-file", str(pid_file), cid]
    out, err = scrun.root.parent / f"{cid}.out", scrun.root.parent / f"{cid}.err"
    engine = subprocess.Popen([sys.executable, "-c", ENGINE, json.dumps(create), str(pid_file), str(out), str(err)],
                              stdout=subprocess.PIPE, text=True)
    try:
        first = engine.stdout.readline().strip()
        assert first.isdigit(), (first, err.read_text())
        pid = int(first)
        anchor = scrun.record(cid)["anchor_pid"]
        assert pid != anchor
        assert pathlib.Path(f"/proc/{pid}/comm").read_text().strip() == "scrun-netns"
        assert os.readlink(f"/proc/{pid}/ns/net") != os.readlink(f"/proc/{anchor}/ns/net")
        assert scrun.state(cid)["pid"] == pid  # what `state` says too
        assert scrun("start", cid).returncode == 0
        wait_for(lambda: "ready" in scrun.output(cid)[0], 60, "the container to run")
        os.kill(pid, signal.SIGTERM)  # an engine signalling the pid it knows: the anchor gets it
        record = scrun.wait_stopped(cid)
        assert record["exit_code"] not in (None, 0)
        assert int(engine.stdout.readline()) == record["exit_code"]  # the holder's exit is the container's
        assert engine.wait(timeout=30) == 0
    finally:
        if engine.poll() is None:
            engine.kill()
            engine.wait()
    assert scrun("delete", cid).returncode == 0
    wait_for(lambda: pid not in live_anchors() and anchor not in live_anchors(), 30, "the anchor and holder to go")
