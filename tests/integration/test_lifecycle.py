"""create → start → stopped → delete through the real scrun CLI against the real cluster."""
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from conftest import Scrun, jobs_named, sh, slurm_version, wait_for

pytestmark = pytest.mark.integration


def job_of(scrun, cid):
    return scrun.record(cid)["job_id"]


def squeue_has(job_id) -> bool:
    return str(job_id) in sh(["squeue", "-h", "-o", "%i"]).stdout.split()


def test_create_start_stop_delete(slurm_cluster, scrun, make_bundle, tmp_path):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    bundle = make_bundle(["sh", "-c", "touch /out/started; echo to-stdout; echo to-stderr >&2; exit 3"], mounts={out_dir: "/out"})
    cid = scrun.new_id()
    created = scrun.create(cid, bundle)
    assert created.returncode == 0, created.stderr
    pid = int((tmp_path / f"{cid}.pid").read_text())
    os.kill(pid, 0)  # alive
    state = scrun.state(cid)
    assert state["status"] == "created" and state["pid"] == pid and state["bundle"] == str(bundle)
    assert not (out_dir / "started").exists(), "the step ran before start"
    job = job_of(scrun, cid)
    assert squeue_has(job)

    started = scrun("start", cid)
    assert started.returncode == 0 and started.stdout == "" and started.stderr == ""
    record = scrun.wait_stopped(cid)
    assert record["exit_code"] == 3
    assert (out_dir / "started").exists()
    out, err = scrun.output(cid)
    assert out == "to-stdout\n"
    assert "to-stderr\n" in err
    wait_for(lambda: not squeue_has(job), 20, "the job to end after the container")
    deleted = scrun("delete", cid)
    assert deleted.returncode == 0 and deleted.stderr == ""
    assert not (scrun.root / cid).exists()
    assert scrun("state", cid).returncode == 1


def test_state_output_is_oci_state_and_nothing_else(slurm_cluster, scrun, make_bundle):
    cid = scrun.new_id()
    assert scrun.create(cid, make_bundle(["true"])).returncode == 0
    proc = scrun("state", cid)
    assert proc.returncode == 0 and proc.stderr == ""
    doc = json.loads(proc.stdout)
    assert {"ociVersion", "id", "status", "pid", "bundle", "annotations", "created", "owner"} <= set(doc)
    assert doc["id"] == cid and doc["status"] in ("created", "running", "stopped")
    assert scrun("delete", cid).returncode == 0


@pytest.mark.parametrize("case", ["no-bundle", "not-json", "no-args", "bad-id", "bad-option", "terminal-no-socket", "no-exe",
                                  "unknown-rlimit", "mapped-root-cannot-reach-rootfs"])
def test_bad_input_leaves_nothing(slurm_cluster, scrun, make_bundle, busybox_rootfs, conf_dir, tmp_path, case):
    cid = scrun.new_id()
    bundle = make_bundle(["true"])
    env = {"SLURM_CONF": str(conf_dir / "slurm.conf")}  # without the site's scrun.lua
    if case == "no-bundle":
        bundle = tmp_path / "missing"
    elif case == "not-json":
        (bundle / "config.json").write_text("{oops")
    elif case == "no-args":
        cfg = json.loads((bundle / "config.json").read_text())
        del cfg["process"]["args"]
        (bundle / "config.json").write_text(json.dumps(cfg))
    elif case == "bad-id":
        cid = "../escape"
    elif case == "bad-option":
        env["SCRUN_TIMELIMIT"] = "abc"
    elif case == "terminal-no-socket":
        cfg = json.loads((bundle / "config.json").read_text())
        cfg["process"]["terminal"] = True
        (bundle / "config.json").write_text(json.dumps(cfg))
    elif case == "no-exe":
        cfg = json.loads((bundle / "config.json").read_text())
        cfg["process"]["args"] = ["/no/such/exe"]
        (bundle / "config.json").write_text(json.dumps(cfg))
    elif case == "unknown-rlimit":
        cfg = json.loads((bundle / "config.json").read_text())
        cfg["process"]["rlimits"] = [{"type": "RLIMIT_TEST", "soft": 1, "hard": 1}]
        (bundle / "config.json").write_text(json.dumps(cfg))
    elif case == "mapped-root-cannot-reach-rootfs":
        private = tmp_path / "private"
        private.mkdir(mode=0o700)
        sh(["cp", "-a", str(busybox_rootfs), str(private / "rootfs")])
        cfg = json.loads((bundle / "config.json").read_text())
        cfg["root"]["path"] = str(private / "rootfs")
        cfg["linux"]["namespaces"].append({"type": "user"})
        cfg["linux"]["uidMappings"] = cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        (bundle / "config.json").write_text(json.dumps(cfg))
    before = sh(["squeue", "-h", "-o", "%i"]).stdout.split()
    proc = scrun.create(cid, bundle, env=env)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("scrun: error: "), proc.stderr
    if case == "bad-option":
        assert 'SCRUN_TIMELIMIT="abc": not a valid time (e.g. 10, 1:30:00, 2-00:00:00)' in lines[0]
    if case == "unknown-rlimit":
        assert "process.rlimits[0].type 'RLIMIT_TEST' is not an rlimit" in lines[0]
    if case == "mapped-root-cannot-reach-rootfs":
        blocked = re.search(r"cannot search (\S+) \(mode 0700, uid 0\)", lines[0])
        assert blocked and str(tmp_path / "private").startswith(blocked[1]) and "chmod o+x" in lines[0], lines[0]
    assert not scrun.root.exists() or os.listdir(scrun.root) == []
    assert sh(["squeue", "-h", "-o", "%i"]).stdout.split() == before or not jobs_named([f"scrun:{cid[:12]}"])


def test_start_without_process_is_refused_and_stops_the_container(slurm_cluster, scrun, make_bundle):
    """runtime-spec: start MUST fail when config.json has no process; the container cannot ever
    run, so it stops (and its allocation goes) instead of holding the job until delete."""
    bundle = make_bundle(["true"])
    cfg = json.loads((bundle / "config.json").read_text())
    del cfg["process"]
    (bundle / "config.json").write_text(json.dumps(cfg))
    cid = scrun.new_id()
    assert scrun.create(cid, bundle).returncode == 0
    job = job_of(scrun, cid)
    started = scrun("start", cid)
    assert started.returncode != 0 and "has no process" in started.stderr and "set process.args" in started.stderr
    record = scrun.wait_stopped(cid, timeout=30)
    assert "has no process" in record["stopped_reason"] and record["exit_code"] == 127, record
    wait_for(lambda: not squeue_has(job), 30, f"job {job} to end")
    assert scrun("delete", cid).returncode == 0


def test_duplicate_id_does_not_touch_the_first(slurm_cluster, scrun, make_bundle):
    cid = scrun.new_id()
    assert scrun.create(cid, make_bundle(["sleep", "30"])).returncode == 0
    first = scrun.record(cid)
    again = scrun.create(cid, make_bundle(["true"], name="other"))
    assert again.returncode == 1 and "exists" in again.stderr
    assert scrun.record(cid) == first and scrun.state(cid)["status"] == "created"
    assert scrun("delete", "--force", cid).returncode == 0


def test_kill_running_gives_137_and_kill_stopped_errors(slurm_cluster, scrun, make_bundle):
    cid = scrun.new_id()
    assert scrun.create(cid, make_bundle(["sleep", "60"])).returncode == 0
    assert scrun("start", cid).returncode == 0
    assert scrun.state(cid)["status"] == "running"
    killed = scrun("kill", cid, "KILL")
    assert killed.returncode == 0 and killed.stderr == ""
    assert scrun.wait_stopped(cid, 30)["exit_code"] == 137
    again = scrun("kill", cid, "9")
    assert again.returncode == 1 and "not running" in again.stderr
    assert scrun("kill", "--all", cid, "9").returncode == 0
    assert scrun("delete", cid).returncode == 0


def test_term_reaches_the_container(slurm_cluster, scrun, make_bundle):
    cid = scrun.new_id()
    script = "trap 'echo got-term; exit 42' TERM; touch /tmp/ready; while :; do sleep 0.1; done"
    assert scrun.create(cid, make_bundle(["sh", "-c", script])).returncode == 0
    assert scrun("start", cid).returncode == 0
    time.sleep(1.0)  # let the shell install its trap
    assert scrun("kill", cid, "TERM").returncode == 0
    assert scrun.wait_stopped(cid, 30)["exit_code"] == 42
    assert "got-term" in scrun.output(cid)[0]
    assert scrun("delete", cid).returncode == 0


@pytest.mark.parametrize("sig", ["USR1", "TERM"])
def test_a_signal_right_after_start_reaches_the_process_once_it_runs(slurm_cluster, scrun, make_bundle, sig):
    """OCI's killsig: kill as soon as `start` has returned. The step is still launching then; the
    anchor waits until srun says the container's process runs (and 22.05's settle), so the
    shell's trap is set when the signal comes, instead of the signal being lost or fatal."""
    cid = scrun.new_id()
    script = f"trap 'echo got-{sig}; exit 42' {sig}; sleep 20 & wait $!"
    assert scrun.create(cid, make_bundle(["sh", "-c", script])).returncode == 0
    assert scrun("start", cid).returncode == 0
    assert scrun("kill", cid, sig).returncode == 0  # no pause: that is the point
    assert scrun.wait_stopped(cid, 15)["exit_code"] == 42
    assert f"got-{sig}" in scrun.output(cid)[0]
    assert scrun("delete", cid).returncode == 0


def test_kill_before_start_cancels_the_job(slurm_cluster, scrun, make_bundle):
    cid = scrun.new_id()
    assert scrun.create(cid, make_bundle(["true"])).returncode == 0
    job = job_of(scrun, cid)
    assert scrun("kill", cid).returncode == 0
    assert scrun.wait_stopped(cid, 30)["exit_code"] == 128 + signal.SIGTERM
    wait_for(lambda: not squeue_has(job), 20, "the job to go")
    assert scrun("start", cid).returncode == 1
    assert scrun("delete", cid).returncode == 0


def test_delete_running_needs_force(slurm_cluster, scrun, make_bundle):
    cid = scrun.new_id()
    assert scrun.create(cid, make_bundle(["sleep", "60"])).returncode == 0
    assert scrun("start", cid).returncode == 0
    refused = scrun("delete", cid)
    assert refused.returncode == 1 and "--force" in refused.stderr
    job = job_of(scrun, cid)
    assert scrun("delete", "--force", cid).returncode == 0
    assert not (scrun.root / cid).exists()
    wait_for(lambda: not squeue_has(job), 30, "the job to go")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT], ids=["KILL", "TERM", "INT"])
def test_signal_to_anchor_leaves_nothing(slurm_cluster, scrun, make_bundle, tmp_path, sig):
    """kill -9: nothing can run in the anchor, the holder's EOF releases the job and delete cleans.
    TERM/INT (the man page's promise): the anchor cancels the step, releases the job, exits 128+N."""
    cid = scrun.new_id()
    assert scrun.create(cid, make_bundle(["sleep", "60"])).returncode == 0
    assert scrun("start", cid).returncode == 0
    job = job_of(scrun, cid)
    os.kill(int((tmp_path / f"{cid}.pid").read_text()), sig)
    wait_for(lambda: scrun.state(cid)["status"] == "stopped", 30, "state to say stopped")
    if sig != signal.SIGKILL:
        assert scrun.wait_stopped(cid, 30)["exit_code"] == 128 + sig
    wait_for(lambda: not squeue_has(job), 30, "the job to go")
    assert scrun("delete", cid).returncode == 0
    assert not (scrun.root / cid).exists()


def test_scancel_from_outside_is_a_nonzero_exit(slurm_cluster, scrun, make_bundle):
    cid = scrun.new_id()
    assert scrun.create(cid, make_bundle(["sleep", "60"])).returncode == 0
    assert scrun("start", cid).returncode == 0
    sh(["scancel", str(job_of(scrun, cid))])
    assert scrun.wait_stopped(cid, 30)["exit_code"] != 0
    assert scrun("delete", cid).returncode == 0


def test_stdin_reaches_the_container(slurm_cluster, scrun, make_bundle, tmp_path):
    cid = scrun.new_id()
    data = tmp_path / "in.txt"
    data.write_text("line one\nline two\n")
    with open(data, "rb") as stdin:
        assert scrun.create(cid, make_bundle(["cat"]), stdin=stdin).returncode == 0
    assert scrun("start", cid).returncode == 0
    assert scrun.wait_stopped(cid)["exit_code"] == 0
    assert scrun.output(cid)[0] == "line one\nline two\n"
    assert scrun("delete", cid).returncode == 0


def test_inside_an_existing_allocation(slurm_cluster, scrun, make_bundle):
    alloc = sh(["salloc", "--no-shell", "--job-name=outer-alloc", "--time=5"])
    job = int(alloc.stderr.split("Granted job allocation")[1].split()[0])
    try:
        cid = scrun.new_id()
        env = {"SLURM_JOB_ID": str(job)}
        assert scrun.create(cid, make_bundle(["sh", "-c", "echo job=$SLURM_JOB_ID"]), env=env).returncode == 0
        assert scrun.record(cid)["own_allocation"] is False
        assert scrun("start", cid).returncode == 0
        assert scrun.wait_stopped(cid)["exit_code"] == 0
        assert scrun.output(cid)[0].strip() == f"job={job}"
        assert scrun("delete", cid).returncode == 0
        assert squeue_has(job), "the caller's job must survive its container"
    finally:
        sh(["scancel", str(job)])


@pytest.mark.parametrize("how", ["kill", "delete"])
def test_pending_allocation_shows_progress_and_can_be_cancelled(slurm_cluster, scrun, make_bundle, tmp_path, how):
    blocker = sh(["salloc", "--no-shell", "--job-name=blocker", "--time=5"])
    blocker_job = blocker.stderr.split("Granted job allocation")[1].split()[0]
    try:
        cid = scrun.new_id()
        err = tmp_path / "create.err"
        with open(err, "wb") as fh:
            create = subprocess.Popen(
                [sys.executable, "-m", "scrun", "--root", str(scrun.root), "create", "--bundle", str(make_bundle(["true"])), cid],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=fh,
                env={**os.environ, "SCRUN_DEPENDENCY": f"afterok:{blocker_job}"})
        try:
            job = wait_for(lambda: (scrun.root / cid / "state.json").exists() and scrun.record(cid).get("job_id"), 30, "the pending job id")
            wait_for(lambda: "queued and waiting for resources" in err.read_text(), 30, "progress on create's stderr")
            assert scrun.state(cid)["status"] == "creating"
            assert squeue_has(job)
            proc = scrun("kill", cid, "KILL") if how == "kill" else scrun("delete", "--force", cid)
            assert proc.returncode == 0, proc.stderr
            assert create.wait(timeout=60) != 0
        finally:
            if create.poll() is None:
                create.kill()
        wait_for(lambda: not squeue_has(job), 30, "the pending job to be withdrawn")
        assert not (scrun.root / cid).exists()
    finally:
        sh(["scancel", blocker_job])


def test_concurrent_starts_launch_one_step(slurm_cluster, scrun, make_bundle, tmp_path):
    out_dir = tmp_path / "runs"
    out_dir.mkdir()
    cid = scrun.new_id()
    bundle = make_bundle(["sh", "-c", "mkdir /out/run.$$ && sleep 1"], mounts={out_dir: "/out"})
    assert scrun.create(cid, bundle).returncode == 0
    starts = [subprocess.Popen([sys.executable, "-m", "scrun", "--root", str(scrun.root), "start", cid],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for _ in range(4)]
    codes = sorted(p.wait(timeout=60) for p in starts)
    assert codes == [0, 1, 1, 1]
    assert scrun.wait_stopped(cid)["exit_code"] == 0
    assert len(list(out_dir.iterdir())) == 1
    assert scrun("delete", cid).returncode == 0


def test_anchor_answers_malformed_and_foreign_requests(slurm_cluster, scrun, make_bundle):
    import socket as socketlib

    cid = scrun.new_id()
    assert scrun.create(cid, make_bundle(["sleep", "30"])).returncode == 0
    path = str(scrun.root / cid / "ctl.sock")

    def ask(raw: bytes) -> dict:
        with socketlib.socket(socketlib.AF_UNIX) as sock:
            sock.settimeout(10)
            sock.connect(path)
            sock.sendall(raw)
            return json.loads(sock.makefile("rb").readline())

    assert ask(b'{"v": 1, "op": "ping"}\n') == {"v": 1, "ok": True, "status": "created"}
    assert ask(b'{"v": 1, "op": "kill", "signal": "nine"}\n')["kind"] == "protocol"
    assert ask(b'{"v": 2, "op": "ping"}\n')["kind"] == "protocol"
    assert ask(b"not json\n")["kind"] == "protocol"
    assert scrun.state(cid)["status"] == "created"  # still serving, untouched
    nobody = subprocess.run(["runuser", "-u", "nobody", "--", sys.executable, "-c",
                             f"import socket; s=socket.socket(socket.AF_UNIX); s.connect({path!r})"],
                            capture_output=True, text=True)
    # The state dir is search-only for others, the socket the owner's alone (0600).
    assert nobody.returncode != 0 and "Permission denied" in nobody.stderr, nobody.stderr
    assert scrun("delete", "--force", cid).returncode == 0


def test_the_step_is_known_from_srun_and_found_the_way_the_slurm_version_allows(scrun, make_bundle, conf_dir):
    """The anchor signals the step srun said it launches (no slurmctld round trip: under load one
    came back empty once, and the signal went to srun, which turns TERM into KILL). Its fallback
    lookup, for a step srun has not named yet: >= 23.02 by --container-id, 22.05 by step name,
    checked here against the real scontrol/squeue output for a running container."""
    from scrun.core.ids import step_name_for
    from scrun.slurm import argv as slurm_argv
    from scrun.slurm.parse import parse_step_containers, parse_step_list

    with open(conf_dir / "oci.conf", "a") as fh:
        fh.write("FileDebug=debug\n")
    cid = scrun.new_id()
    assert scrun.create(cid, make_bundle(["sleep", "60"]), global_args=("-f", str(conf_dir / "slurm.conf"))).returncode == 0
    assert scrun("start", cid).returncode == 0
    job = scrun.record(cid)["job_id"]
    by_id = slurm_version() >= (23, 2)

    def lookup() -> list[str]:
        if by_id:
            out = sh(slurm_argv.build_step_show_argv("scontrol", job)).stdout
            return [step for step, container in parse_step_containers(out) if container == cid]
        out = sh(slurm_argv.build_step_list_argv("squeue", job)).stdout
        return [step for step, name in parse_step_list(out) if name == step_name_for(cid)]

    found = wait_for(lookup, 30, "the container's step in slurmctld")
    assert scrun("kill", cid, "KILL").returncode == 0
    record = scrun.wait_stopped(cid, 30)
    log = (scrun.root / cid / "anchor.log").read_text()
    assert record["exit_code"] == 137, (record, log)
    assert (f"--container-id={cid}" in log) is by_id
    assert found == ["0"]
    assert f"srun launches step {job}.0" in log and "found by" not in log, log
    assert scrun("delete", cid).returncode == 0


def test_list_shows_each_container_with_its_job(slurm_cluster, scrun, make_bundle):
    assert scrun("list", "-q").stdout == ""  # a root that does not exist yet lists nothing
    cid = scrun.new_id()
    assert scrun.create(cid, make_bundle(["sleep", "30"])).returncode == 0
    listed = json.loads(scrun("list", "--format", "json").stdout)
    assert [(s["id"], s["status"]) for s in listed] == [(cid, "created")]
    assert listed[0]["job"] == scrun.record(cid)["job_id"] and listed[0]["pid"] == scrun.record(cid)["anchor_pid"]
    table = scrun("list").stdout.splitlines()
    assert listed[0]["job_state"] == "RUNNING"  # the allocation is held while the container is created
    assert table[0].split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER", "IMAGE", "JOB", "JOB-STATE",
                                "NODES", "REASON"]
    assert table[1].split()[0] == cid and table[1].split()[2] == "created"
    assert listed[0]["image"] == "" and table[1].split()[6] == "-"  # a bare bundle: no engine to ask
    assert table[1].split()[-3:] == [str(listed[0]["job"]), "RUNNING", listed[0]["nodes"]]
    assert listed[0]["nodes"] == scrun.record(cid)["nodes"] != "" and listed[0]["reason"] == ""
    assert scrun("list", "-q").stdout == f"{cid}\n"
    assert scrun("delete", "--force", cid).returncode == 0
    assert scrun("list", "-q").stdout == ""


def test_state_and_list_say_why_a_container_pends(slurm_cluster, scrun, make_bundle, tmp_path):
    """A pending container: its job, PENDING and Slurm's reason in `state`'s annotations (kept
    by the anchor: no squeue per state call) and in `list`; granted: RUNNING and its nodes."""
    blocker = sh(["salloc", "--no-shell", "--job-name=blocker", "--time=5"])
    blocker_job = blocker.stderr.split("Granted job allocation")[1].split()[0]
    cid = scrun.new_id()
    try:
        with open(tmp_path / "create.err", "wb") as err:
            create = subprocess.Popen(
                [sys.executable, "-m", "scrun", "--root", str(scrun.root), "create", "--bundle", str(make_bundle(["true"])), cid],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                env={**os.environ, "SCRUN_DEPENDENCY": f"afterok:{blocker_job}"})
        try:
            notes = wait_for(lambda: (scrun.root / cid / "state.json").exists()
                             and scrun.state(cid)["annotations"].get("org.slurm.reason"), 30, "the pending reason")
            state = scrun.state(cid)
            assert state["status"] == "creating" and notes == "Dependency", state
            assert state["annotations"]["org.slurm.job_state"] == "PENDING"
            job = int(state["annotations"]["org.slurm.job_id"])
            assert job == scrun.record(cid)["job_id"] and "org.slurm.nodes" not in state["annotations"]
            (row,) = json.loads(scrun("list", "--format", "json").stdout)
            assert (row["job"], row["job_state"], row["reason"], row["nodes"]) == (job, "PENDING", "Dependency", "")
            assert scrun("list").stdout.splitlines()[1].split()[-3:] == [str(job), "PENDING", "Dependency"]
            sh(["scontrol", "update", f"jobid={job}", "dependency="])  # the nodes are free: it runs
            assert create.wait(timeout=60) == 0, (tmp_path / "create.err").read_text()
            notes = scrun.state(cid)["annotations"]
            assert notes["org.slurm.job_state"] == "RUNNING" and notes["org.slurm.nodes"] and "org.slurm.reason" not in notes
        finally:
            if create.poll() is None:
                create.kill()
                create.wait()
        assert scrun("delete", "--force", cid).returncode == 0
    finally:
        sh(["scancel", blocker_job])


def test_a_container_the_node_runtime_refuses_says_why(slurm_cluster, scrun, make_bundle, tmp_path):
    """crun on the node refuses a sysctl the kernel does not have (an AppArmor profile it cannot
    apply was refused up to crun 1.21; 1.28 ignores one where AppArmor is off). Slurm gives no
    sign of the container's process before the step ends, so `start` has succeeded by then
    (waiting for one would delay every start); the state says why it stopped, and so does the log."""
    bundle = make_bundle(["echo", "never"])
    cfg = json.loads((bundle / "config.json").read_text())
    cfg.setdefault("linux", {}).setdefault("sysctl", {})["net.ipv4.scrun_test_no_such_key"] = "1"
    (bundle / "config.json").write_text(json.dumps(cfg))
    baseline = subprocess.run(["crun", "run", "--bundle", str(bundle), f"crun-{uuid_hex()}"], capture_output=True,
                              text=True, stdin=subprocess.DEVNULL, timeout=60)
    assert baseline.returncode != 0 and baseline.stderr.strip(), "crun itself must refuse this config"
    cid = scrun.new_id()
    log = tmp_path / "scrun.log"
    assert scrun.create(cid, bundle, global_args=("--log", str(log), "--log-format", "json")).returncode == 0
    assert scrun("start", cid).returncode == 0
    record = scrun.wait_stopped(cid)
    assert record["exit_code"] != 0
    reason = scrun.state(cid)["reason"]
    node_error = baseline.stderr.strip().splitlines()[-1]
    assert reason == f"exit code {record['exit_code']}; last stderr line: {node_error}", reason
    assert "never" not in scrun.output(cid)[0]
    assert node_error in log.read_text()
    assert scrun("delete", cid).returncode == 0


def test_a_clean_exit_has_no_reason(slurm_cluster, scrun, make_bundle):
    cid = scrun.new_id()
    assert scrun.create(cid, make_bundle(["sh", "-c", "echo oops >&2; exit 0"])).returncode == 0
    assert scrun("start", cid).returncode == 0
    scrun.wait_stopped(cid)
    assert "reason" not in scrun.state(cid)
    assert scrun("delete", cid).returncode == 0


def uuid_hex() -> str:
    import uuid
    return uuid.uuid4().hex[:12]


def test_a_state_path_longer_than_a_socket_address_works(slurm_cluster, make_bundle, tmp_path):
    """docker's state paths (a 64-character id under /var/run/docker/runtime-runc/moby) are longer
    than sun_path: the control socket is bound through /proc/self/fd (protocol.reachable_path).
    On 3.13 asyncio's server once looked that name up again after the directory fd was closed,
    and the anchor died right after create (docker: "its anchor is gone")."""
    runner = Scrun(tmp_path / ("deep-" * 20) / "root")
    runner.root.parent.mkdir(parents=True)
    cid = f"{runner.new_id()}{'x' * 50}"
    assert len(str(runner.root / cid / "ctl.sock").encode()) > 108
    assert runner.create(cid, make_bundle(["sh", "-c", "exit 3"])).returncode == 0
    started = runner("start", cid)
    assert started.returncode == 0, started.stderr
    assert runner.wait_stopped(cid)["exit_code"] == 3
    assert runner("delete", cid).returncode == 0
