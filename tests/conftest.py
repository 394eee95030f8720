"""Shared fixtures. Tiers: unit (pure), integration (real Slurm), e2e (real podman).

Under CI=true a cluster or podman that is not there is a failure, never a silent skip.
"""
from __future__ import annotations

import importlib
import json
import os
import pathlib
import shutil
import subprocess
import sys
import time
import uuid

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
SEED = REPO.parent / "shared" / "seed" / "scrun.1.txt"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
IMAGE = "localhost/busybox:latest"


# pgrep -r: an anchor that has exited but is not reaped yet (a zombie, until its parent — conmon,
# or init once create is gone — collects it) has left nothing running: not a leak.
LIVE_STATES = "R,S,D,T,t"


def live_anchors(user: str | None = None) -> list[int]:
    """Running anchors and their network-namespace holders (anchor/netnsholder.py) of `user`, in
    this pid namespace only: lanes run side by side, and from the host a namespace lane's
    anchors are visible too."""
    who = ["-u", user] if user else []
    out = subprocess.run(["pgrep", "--ns", str(os.getpid()), "--nslist", "pid", *who, "-x", "-r", LIVE_STATES,
                          "scrun-(anchor|netns)"], capture_output=True, text=True, timeout=30).stdout
    return [int(pid) for pid in out.split()]


def anchor_servers(root=None) -> list[int]:
    """Running anchor servers (anchor/server.py) in this pid namespace; of the state root `root`
    (the server's last argument) when given."""
    out = subprocess.run(["pgrep", "--ns", str(os.getpid()), "--nslist", "pid", "-x", "scrun-anchors"],
                         capture_output=True, text=True, timeout=30).stdout
    found = []
    for pid in map(int, out.split()):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                argv = fh.read().split(b"\0")
        except OSError:
            continue
        if root is None or str(root).encode() in argv[-2:]:
            found.append(pid)
    return found


# A test's tier is its folder: a file that names none (or a new folder) cannot slip out of CI.
# `make test` runs unit on the host and LANE_TIERS in every lane (tests/unit/test_tiers.py
# checks the Makefile says so).
TIERS = ("unit", "integration", "e2e", "security")
LANE_TIERS = ("integration", "e2e", "security")


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(config, items):
    for item in items:
        folder = pathlib.Path(str(item.fspath)).parent.name
        if folder not in TIERS:
            raise pytest.UsageError(f"{item.nodeid}: tests live in tests/<tier>/, tier one of {', '.join(TIERS)}")
        item.add_marker(getattr(pytest.mark, folder))


def require(ok: bool, reason: str) -> None:
    """Skip outside CI; fail loudly in CI."""
    if ok:
        return
    if IN_CI:
        pytest.fail(f"CI=true and {reason}: run `make cluster` (see docs/development.md)", pytrace=False)
    pytest.skip(reason)


def cluster_tool(module: str):
    """A module of the cluster tool (tools/cluster/), which is not an installed package."""
    tools = str(REPO / "tools")
    if tools not in sys.path:
        sys.path.insert(0, tools)
    return importlib.import_module(f"cluster.{module}")


def wait_for(predicate, timeout: float = 30.0, what: str = "condition"):
    """Poll with a deadline instead of sleeping a fixed time."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)


def sh(argv: list[str], **kw) -> subprocess.CompletedProcess:
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    kw.setdefault("timeout", 120)
    return subprocess.run(argv, **kw)


# ------------------------------------------------------------------ cluster and podman

@pytest.fixture(scope="session")
def slurm_cluster():
    ok = shutil.which("scontrol") is not None and sh(["scontrol", "ping"]).returncode == 0
    if ok:
        nodes = sh(["sinfo", "-h", "-N", "-o", "%N %T"]).stdout.split("\n")
        ok = any(line.split()[1].rstrip("*") in ("idle", "mixed", "allocated") for line in nodes if len(line.split()) == 2)
    require(ok, "the local Slurm cluster is not running (scontrol ping / sinfo)")
    # The default partition's nodes: the isolated node (tests/integration/test_topology.py) is
    # down unless a test started it, and takes only jobs that ask for its partition.
    default = cluster_tool("slurmconf").ISOLATED_PARTITION
    return sorted({fields[0] for fields in (line.split() for line in sh(["sinfo", "-h", "-N", "-o", "%N %P"]).stdout.splitlines())
                   if len(fields) == 2 and fields[1].rstrip("*") != default})


@pytest.fixture(scope="session")
def podman_ready(slurm_cluster):
    ok = shutil.which("podman") is not None and sh(["podman", "image", "exists", IMAGE]).returncode == 0
    require(ok, f"podman or the image {IMAGE} is missing")
    info = sh(["podman", "--runtime", "scrun", "info", "--format", "{{.Host.OCIRuntime.Name}}"])
    require(info.returncode == 0 and "scrun" in info.stdout, f"podman does not know the scrun runtime: {info.stderr.strip()}")
    return True


# The cluster's configuration a copy needs; scrun.conf: its staging onto /scratch.
CONF_FILES = ("slurm.conf", "oci.conf", "cgroup.conf", "scrun.conf")


@pytest.fixture
def conf_dir(tmp_path, slurm_cluster):
    """A copy of the cluster's slurm.conf/oci.conf in a directory of its own (for scrun.lua, oci.conf edits)."""
    conf = tmp_path / "etc"
    conf.mkdir()
    for name in CONF_FILES:
        if os.path.exists(f"/etc/slurm/{name}"):
            shutil.copy2(f"/etc/slurm/{name}", conf / name)
    return conf


@pytest.fixture
def served(conf_dir):
    """Global args naming a configuration whose scrun.conf turns the anchor server on."""
    with open(conf_dir / "scrun.conf", "a") as conf:
        conf.write("AnchorServer=yes\n")
    return ("-f", str(conf_dir / "slurm.conf"))


@pytest.fixture(scope="module")
def isolated_node(slurm_cluster):
    """The compute node that does not see the login node's disks (tools/cluster/topology.py),
    running for the module's tests; down again after them."""
    topology = cluster_tool("topology")
    topology.start(cluster_tool("users").USERS)
    yield cluster_tool("slurmconf").ISOLATED_NODE
    topology.stop()


@pytest.fixture
def scratch_dir():
    """A fresh directory on the shared scratch filesystem (every node sees it), removed after."""
    path = os.path.join(cluster_tool("slurmconf").SCRATCH, f"test-{uuid.uuid4().hex[:8]}")
    os.mkdir(path)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def node_without_oci_conf(isolated_node):
    """The isolated node with its oci.conf hidden (its /etc/slurm a copy without it): Slurm there
    ignores --container and runs a step's command on the node itself."""
    topology = cluster_tool("topology")
    topology.hide_oci_conf(isolated_node)
    yield isolated_node
    topology.restore_oci_conf(isolated_node)


def readable_conf_dir(prefix: str) -> pathlib.Path:
    """A copy of the cluster's configuration that every user can read (rootless podman runs scrun
    as the user); the caller removes it."""
    import tempfile

    conf = pathlib.Path(tempfile.mkdtemp(prefix=prefix))  # $TMPDIR: on /scratch in a lane (tests put stage dirs in it)
    conf.chmod(0o755)
    for name in CONF_FILES:
        if os.path.exists(f"/etc/slurm/{name}"):
            shutil.copy2(f"/etc/slurm/{name}", conf / name)
    return conf


# ------------------------------------------------------------------ bundles

@pytest.fixture(scope="session")
def busybox_rootfs(tmp_path_factory) -> pathlib.Path:
    rootfs = tmp_path_factory.mktemp("image") / "rootfs"
    cluster_tool("podman").build_busybox_rootfs(rootfs)
    return rootfs


@pytest.fixture(scope="session")
def base_config(tmp_path_factory) -> dict:
    """A full config.json as crun writes it (crun's tests_utils base_config idea)."""
    where = tmp_path_factory.mktemp("spec")
    if shutil.which("crun"):
        sh(["crun", "spec"], cwd=where, check=True)
        config = json.loads((where / "config.json").read_text())
    else:
        config = {"ociVersion": "1.0.0", "process": {"terminal": False, "user": {"uid": 0, "gid": 0},
                  "args": ["sh"], "env": ["PATH=/bin"], "cwd": "/"}, "root": {"path": "rootfs"}}
    config["process"]["terminal"] = False
    config["process"]["env"] = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"]
    return config


@pytest.fixture
def make_bundle(tmp_path, busybox_rootfs, base_config):
    """make_bundle(args, env=[], mounts={host: dest}) → bundle dir whose root.path is the shared rootfs."""

    def make(args, env=(), mounts=None, terminal=False, root_path=None, name="bundle", local_rootfs=False, under=None):
        """local_rootfs: root.path "rootfs" (a link in the bundle) instead of an absolute path as podman writes;
        under: the directory to make it in (tmp_path, on /scratch in a lane: the nodes see it)."""
        bundle = (under or tmp_path) / name
        bundle.mkdir()
        if local_rootfs:
            (bundle / "rootfs").symlink_to(root_path or busybox_rootfs)
        config = json.loads(json.dumps(base_config))
        config["process"]["args"] = list(args)
        config["process"]["env"] = config["process"]["env"] + list(env)
        config["process"]["terminal"] = terminal
        config["root"] = {"path": "rootfs" if local_rootfs else str(root_path or busybox_rootfs), "readonly": False}
        for host, dest in (mounts or {}).items():
            config["mounts"].append({"destination": dest, "type": "bind", "source": str(host), "options": ["rbind", "rw"]})
        (bundle / "config.json").write_text(json.dumps(config))
        return bundle

    return make


# ------------------------------------------------------------------ scrun

class Scrun:
    """Runs the real scrun command line with a private --root; remembers ids for leak checks."""

    def __init__(self, root: pathlib.Path):
        self.root = root
        self.ids: list[str] = []

    def new_id(self) -> str:
        cid = f"t{uuid.uuid4().hex[:12]}"
        self.ids.append(cid)
        return cid

    def __call__(self, *args: str, env: dict | None = None, timeout: float = 120, input: str | None = None,
                 global_args: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
        full_env = {**os.environ, **(env or {})}
        return subprocess.run([sys.executable, "-m", "scrun", "--root", str(self.root), *global_args, *args],
                              capture_output=True, text=True, timeout=timeout, env=full_env, input=input,
                              stdin=None if input is not None else subprocess.DEVNULL)

    def create(self, cid: str, bundle, *extra: str, env: dict | None = None, stdin=None,
               global_args: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
        """create with the container's stdio on files (the anchor keeps them: pipes would never hit EOF)."""
        out, err = self.root.parent / f"{cid}.out", self.root.parent / f"{cid}.err"
        with open(out, "wb") as o, open(err, "wb") as e:
            proc = subprocess.run([sys.executable, "-m", "scrun", "--root", str(self.root), *global_args, "create",
                                   "--bundle", str(bundle), "--pid-file", str(self.root.parent / f"{cid}.pid"), *extra, cid],
                                  stdin=stdin if stdin is not None else subprocess.DEVNULL, stdout=o, stderr=e,
                                  env={**os.environ, **(env or {})}, timeout=120)
        proc.stdout_path, proc.stderr_path = out, err  # type: ignore[attr-defined]
        proc.stderr = err.read_text()
        return proc

    def output(self, cid: str) -> tuple[str, str]:
        return (self.root.parent / f"{cid}.out").read_text(), (self.root.parent / f"{cid}.err").read_text()

    def wait_stopped(self, cid: str, timeout: float = 60) -> dict:
        wait_for(lambda: self.state(cid)["status"] == "stopped", timeout, f"{cid} to stop")
        return self.record(cid)

    def record(self, cid: str) -> dict:
        return json.loads((self.root / cid / "state.json").read_text())

    def state(self, cid: str) -> dict:
        proc = self("state", cid)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)


def jobs_named(prefixes: list[str]) -> list[str]:
    out = sh(["squeue", "-h", "-o", "%i %j"]).stdout
    return [line for line in out.splitlines() if any(p in line for p in prefixes)]


@pytest.fixture
def scrun(tmp_path, request):
    root = tmp_path / "root"
    runner = Scrun(root)
    yield runner
    # Leak check: whatever a test did, no job may outlive its container once it is deleted.
    for cid in runner.ids:
        if (root / cid).exists():
            runner("delete", "--force", cid)
    if runner.ids and shutil.which("squeue"):
        names = [f"scrun:{cid[:12]}" for cid in runner.ids]
        try:
            wait_for(lambda: not jobs_named(names), timeout=30, what="the test's jobs to end")
        except AssertionError:
            pytest.fail(f"jobs left behind: {jobs_named(names)}")


def counter_pauses_and_resumes(engine, name: str, paused_status: bytes) -> str:
    """`engine pause` / `unpause` of a counter (podman and docker): it stops advancing while
    paused and goes on after; then it is removed while paused. The container's id."""
    def lines() -> int:
        return len(engine("logs", name).stdout.splitlines())

    run = engine("run", "-d", "--name", name, IMAGE, "sh", "-c", "i=0; while :; do i=$((i+1)); echo $i; sleep 0.2; done",
                 check=True)
    wait_for(lambda: lines() >= 3, 60, "the counter to count")
    engine("pause", name, check=True)
    assert engine("inspect", name, "--format", "{{.State.Status}}").stdout.strip() == paused_status
    time.sleep(0.5)  # a line already on its way
    held = lines()
    time.sleep(2.0)
    assert lines() == held, "the counter went on while paused"
    engine("unpause", name, check=True)
    assert engine("inspect", name, "--format", "{{.State.Status}}").stdout.strip() == b"running"
    wait_for(lambda: lines() >= held + 3, 30, "the counter to go on after unpause")
    engine("pause", name, check=True)
    engine("rm", "-f", name, check=True, timeout=60)
    return run.stdout.decode().strip()


# ------------------------------------------------------------------ terminals

ROWS, COLS = 30, 100


class Tmux:
    """A real terminal (a tmux session), its shell run as `user` when given."""

    def __init__(self, user: str | None = None):
        self.name = f"scrun-{uuid.uuid4().hex[:8]}"
        shell = ["runuser", "-u", user, "--", "sh", "-c", "cd /tmp && exec sh"] if user else []
        subprocess.run(["tmux", "new-session", "-d", "-s", self.name, "-x", str(COLS), "-y", str(ROWS), *shell], check=True)

    def send(self, *keys: str) -> None:
        subprocess.run(["tmux", "send-keys", "-t", self.name, *keys], check=True)

    def line(self, text: str) -> None:
        self.send(text, "Enter")

    def screen(self) -> str:
        return subprocess.run(["tmux", "capture-pane", "-p", "-J", "-t", self.name], capture_output=True, text=True).stdout

    def seen(self, needle: str) -> str | None:
        """The screen, if `needle` is on a line that is output, not the command line we typed."""
        screen = self.screen()
        return screen if any(needle in line and "$?" not in line and "echo" not in line for line in screen.splitlines()) else None

    def wait(self, needle: str, timeout: float = 60) -> str:
        try:
            return wait_for(lambda: self.seen(needle), timeout, f"{needle!r} on the screen")
        except AssertionError as exc:  # what was there instead says why
            raise AssertionError(f"{exc}; the screen:\n{self.screen().rstrip()}") from None

    def close(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.name], capture_output=True)

    def __enter__(self) -> Tmux:
        return self

    def __exit__(self, *exc) -> None:
        # A test that failed with the container's shell still running: end it, or the container
        # (and its job) outlives the tmux session. Commands end with `echo RC:$?`.
        if self.seen("RC:") is None:
            self.line("exit 0")
            try:
                self.wait("RC:", timeout=15)
            except AssertionError:
                pass
        self.close()



# ------------------------------------------------------------------ lanes

LANE = os.environ.get("SCRUN_LANE", "")


def slurm_version() -> tuple[int, int]:
    """The local Slurm's release, (22, 5) or (24, 11); (0, 0) when there is no srun."""
    from scrun.slurm.parse import parse_slurm_version

    if not shutil.which("srun"):
        return (0, 0)
    try:
        return parse_slurm_version(sh(["srun", "--version"]).stdout)[:2]
    except ValueError:
        return (0, 0)


def pytest_report_header(config):
    if not LANE:
        return None
    version = sh(["sinfo", "--version"]).stdout.strip() if shutil.which("sinfo") else "no Slurm"
    podman = sh(["podman", "--version"]).stdout.strip() if shutil.which("podman") else "no podman"
    return f"lane: {LANE} ({version}, {podman}, Python {sys.version.split()[0]})"


def pytest_terminal_summary(terminalreporter):
    if LANE:
        terminalreporter.write_sep("=", f"lane {LANE}", bold=True)
