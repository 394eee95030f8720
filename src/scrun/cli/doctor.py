"""doctor: check the chain a container needs on this host; one line per check, with the fix."""
from __future__ import annotations

import os
from typing import NamedTuple

from scrun.errors import ConfigError, ScrunError

USAGE = "doctor [--json] [--allocate --bundle DIR]"


def add_arguments(parser) -> None:
    parser.add_argument("--json", action="store_true", help="the checks as a JSON list")
    parser.add_argument("--allocate", action="store_true",
                        help="also run a real container end to end (create, start, wait, delete) and time each phase")
    parser.add_argument("-b", "--bundle", help="the bundle --allocate runs (its rootfs must reach the nodes)")


class Check(NamedTuple):
    name: str
    ok: bool
    detail: str
    fix: str = ""


def check_slurm_conf(settings) -> Check:
    try:
        with open(settings.slurm_conf, "rb"):
            pass
    except OSError as exc:
        return Check("slurm.conf", False, f"cannot read {settings.slurm_conf}: {exc.strerror}",
                     "set SLURM_CONF or pass -f with the cluster's slurm.conf")
    return Check("slurm.conf", True, settings.slurm_conf)


def check_slurmctld(settings) -> Check:
    from scrun.slurm.runner import run

    env = {**os.environ, "SLURM_CONF": settings.slurm_conf}
    try:
        proc = run(["scontrol", "ping"], env=env, timeout=30, check=False)
    except ScrunError as exc:
        return Check("slurmctld", False, str(exc), "install slurm-client (scontrol)")
    out = (proc.stdout + proc.stderr).decode(errors="replace").strip()
    if proc.returncode == 0 and "UP" in out:
        return Check("slurmctld", True, " ".join(out.split()))
    return Check("slurmctld", False, " ".join(out.split()) or f"scontrol ping exited {proc.returncode}",
                 "start slurmctld, or check SlurmctldHost/SlurmctldPort in slurm.conf and munge on this host")


def check_oci_conf(settings) -> Check:
    from scrun.config.settings import load_node_config

    try:
        oci = load_node_config(settings.slurm_conf)
    except ConfigError as exc:
        return Check("oci.conf", False, str(exc), "fix the line it names (see oci.conf(5))")
    if oci.path is None:
        return Check("oci.conf", True, f"none next to {settings.slurm_conf} (the nodes need theirs for --container)")
    return Check("oci.conf", True, f"{oci.path}: SrunPath {oci.srun_path}")


def check_scrun_lua(settings) -> Check:
    from scrun.config.defaults import site_lua_script

    path = site_lua_script(settings.slurm_conf)
    if not os.path.exists(path):
        return Check("scrun.lua", True, f"none at {path}: scrun.conf's StageDir stages bundles, if set (else they "
                     "must already be on shared storage)")
    from scrun.lua.host import check_script

    try:
        check_script(path, settings.lua_timeout)
    except ScrunError as exc:
        return Check("scrun.lua", False, str(exc), f"fix {path}: it must load and define slurm_scrun_stage_in and "
                     "slurm_scrun_stage_out")
    return Check("scrun.lua", True, f"{path}: loads, defines stage_in and stage_out")


# Where the engines keep bundles and rootfs by default: login-local unless a site shares them.
ENGINE_STORAGE = ("/var/lib/containers", "/run/containers", "/var/lib/docker", "/run/docker")


def check_staging(settings) -> Check:
    """How bundles reach the nodes: scrun.lua, scrun.conf's StageDir, or nothing (then only
    bundles already on shared storage run). Each engine storage path is classified."""
    from scrun.config.defaults import site_lua_script
    from scrun.config.settings import load_site_staging
    from scrun.core.staging import under

    try:
        staging = load_site_staging(settings.slurm_conf)
    except ConfigError as exc:
        return Check("staging", False, str(exc), "fix the line it names (StageDir, SharedPaths)")
    if os.path.exists(site_lua_script(settings.slurm_conf)):
        return Check("staging", True, f"by {site_lua_script(settings.slurm_conf)} (scrun.conf's StageDir is not used); "
                     "nodes without oci.conf are guarded against for bundles it moves")
    if staging.stage_dir is None:
        return Check("staging", False, "no scrun.lua and no StageDir in scrun.conf: a bundle in podman's or docker's "
                     "storage (login-local) cannot reach the compute nodes, and no guard stops a node without oci.conf from "
                     "running a container's command on its host",
                     f"set StageDir= (a directory on a filesystem every node mounts) in "
                     f"{os.path.join(os.path.dirname(settings.slurm_conf), 'scrun.conf')}, or stage in scrun.lua")
    kinds = ", ".join(f"{p} {'shared' if under(p, staging.shared_paths) else 'login-local (staged)'}"
                      for p in ENGINE_STORAGE if os.path.isdir(p))
    return Check("staging", True, f"StageDir {staging.stage_dir}; shared: {', '.join(staging.shared_paths)}"
                 + (f"; {kinds}" if kinds else "")
                 + ("; nodes without oci.conf are guarded against" if staging.node_guard else
                    "; NodeGuard=no: a node without oci.conf would run a container's command on its host"))


def check_state_root(settings) -> Check:
    root = settings.root
    probe = root
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        return Check("state root", False, f"{probe} is not a directory", "pass --root with a directory of yours")
    if probe == root:
        st = os.stat(root)
        if st.st_uid != os.getuid():
            return Check("state root", False, f"{root} belongs to uid {st.st_uid}", "pass --root with a directory of yours")
    if not os.access(probe, os.W_OK | os.X_OK):
        return Check("state root", False, f"{probe} is not writable for uid {os.getuid()}",
                     "pass --root with a directory of yours")
    return Check("state root", True, root if probe == root else f"{root} (made by the first create in {probe})")


def check_subids(settings) -> Check:
    from scrun.core.hostsetup import subordinate_ids

    identity = settings.identity
    if identity.real_uid == 0:
        return Check("subuid/subgid", True, "root: rootless podman's ranges are not needed")
    import pwd

    try:
        user = pwd.getpwuid(identity.real_uid).pw_name
    except KeyError:
        user = str(identity.real_uid)
    counts = {}
    for kind in ("subuid", "subgid"):
        try:
            with open(f"/etc/{kind}", encoding="utf-8") as fh:
                counts[kind] = subordinate_ids(fh.read(), user, identity.real_uid)
        except OSError:
            counts[kind] = 0
    missing = [kind for kind, count in counts.items() if count < 65536]
    if missing:
        return Check("subuid/subgid", False, f"{user} has {counts['subuid']} subordinate uids and {counts['subgid']} gids "
                     "(rootless podman needs 65536 of each)",
                     f"usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {user}, then podman system migrate")
    return Check("subuid/subgid", True, f"{user}: {counts['subuid']} uids, {counts['subgid']} gids")


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except OSError:
        return None


def containers_conf_files() -> list[str]:
    """podman's containers.conf files in the order it reads them (CONTAINERS_CONF: that one only)."""
    import glob

    if os.environ.get("CONTAINERS_CONF"):
        return [os.environ["CONTAINERS_CONF"]]
    home = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    files = ["/usr/share/containers/containers.conf", "/etc/containers/containers.conf",
             *sorted(glob.glob("/etc/containers/containers.conf.d/*.conf")),
             os.path.join(home, "containers", "containers.conf"),
             *sorted(glob.glob(os.path.join(home, "containers", "containers.conf.d", "*.conf")))]
    return [f for f in files if os.path.isfile(f)]


def check_podman(settings) -> list[Check]:
    import shutil

    from scrun.core.hostsetup import podman_registration

    if not shutil.which("podman"):
        return [Check("podman", True, "not installed")]
    texts = [(path, text) for path in containers_conf_files() if (text := _read(path)) is not None]
    try:
        named, listed = podman_registration(texts)
    except ValueError as exc:
        return [Check("podman runtime", False, str(exc), "fix the file's syntax")]
    where = "~/.config/containers/containers.conf" if os.getuid() else "/etc/containers/containers.conf"
    return [Check("podman runtime", named.named, named.detail,
                  f'add [engine.runtimes] scrun = ["{shutil.which("scrun") or "/usr/local/bin/scrun"}"] to {where}'),
            Check("podman json", listed.named, listed.detail,
                  f'set [engine] runtime_supports_json = ["crun", "runc", "scrun"] in {where}')]


def check_docker(settings) -> Check:
    import shutil

    from scrun.core.hostsetup import docker_registration

    if not shutil.which("dockerd") and not shutil.which("docker"):
        return Check("docker runtime", True, "not installed")
    path = os.path.expanduser("~/.config/docker/daemon.json") if os.getuid() else "/etc/docker/daemon.json"
    text = _read(path)
    fix = f'add "runtimes": {{"scrun": {{"path": "{shutil.which("scrun") or "/usr/local/bin/scrun"}"}}}} to {path}, ' \
          "then restart dockerd"
    if text is None:
        return Check("docker runtime", False, f"no {path}", fix)
    try:
        reg = docker_registration(path, text)
    except ValueError as exc:
        return Check("docker runtime", False, str(exc), "fix the file's syntax")
    return Check("docker runtime", reg.named, reg.detail, "" if reg.named else fix)


def checks(settings) -> list[Check]:
    out = [check_slurm_conf(settings)]
    if out[0].ok:
        out += [check_slurmctld(settings), check_oci_conf(settings), check_scrun_lua(settings), check_staging(settings)]
    out += [check_state_root(settings), check_subids(settings), *check_podman(settings), check_docker(settings)]
    return out


def allocate(settings, bundle: str | None) -> Check:
    """A real container, end to end, through this scrun: each phase's time, or where it failed."""
    import shutil
    import subprocess
    import sys
    import tempfile
    import time
    import uuid

    from scrun.errors import ScrunError
    from scrun.store.live import check_state_root as verify_state_root, read_record

    if not bundle:
        return Check("end to end", False, "--allocate needs --bundle DIR", "pass a bundle whose rootfs the nodes can read")
    cid = f"scrun-doctor-{uuid.uuid4().hex[:8]}"
    base = [sys.executable, "-I", "-m", "scrun", "--root", settings.root, "-f", settings.slurm_conf]
    try:
        verify_state_root(settings.root)  # before anything is written there: it may be someone else's
    except ScrunError as exc:
        return Check("end to end", False, str(exc), "pass --root with a directory of yours")
    times: dict[str, float] = {}
    private = tempfile.mkdtemp(prefix="scrun-doctor-")  # 0700, ours: the steps' stderr
    log = os.path.join(private, "steps.log")

    def step(name: str, argv: list[str]) -> subprocess.CompletedProcess:
        t0 = time.perf_counter()
        with open(log, "ab") as err:  # never a pipe: the anchor keeps create's stdio
            proc = subprocess.run([*base, *argv], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        times[name] = time.perf_counter() - t0
        return proc

    try:
        if step("create", ["create", "--bundle", os.path.abspath(bundle), cid]).returncode != 0:
            return Check("end to end", False, f"create failed: {_last_line(log)}", "fix what it names")
        if step("start", ["start", cid]).returncode != 0:
            return Check("end to end", False, f"start failed: {_last_line(log)}", "fix what it names")
        t0 = time.perf_counter()
        while True:
            doc = read_record(settings.root, cid)
            if doc["status"] == "stopped" or time.perf_counter() - t0 > 300:
                break
            time.sleep(0.01)
        times["run"] = time.perf_counter() - t0
        step("delete", ["delete", "--force", cid])
        phases = ", ".join(f"{name} {seconds * 1000:.0f} ms" for name, seconds in times.items())
        if doc.get("exit_code") != 0:
            return Check("end to end", False, f"exit code {doc.get('exit_code')} ({doc.get('stopped_reason', '')}); {phases}",
                         "see the reason; the bundle's process must exit 0")
        return Check("end to end", True, f"job {doc.get('job_id')} on {doc.get('nodes') or '?'}: {phases}")
    finally:
        subprocess.run([*base, "delete", "--force", cid], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        shutil.rmtree(private, ignore_errors=True)


def _last_line(path: str) -> str:
    text = _read(path) or ""
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


def run(settings, args) -> int:
    from scrun.cli.output import print_json, print_text

    results = checks(settings)
    if args.allocate:
        results.append(allocate(settings, args.bundle))
    if args.json:
        print_json([r._asdict() for r in results])
    else:
        width = max(len(r.name) for r in results)
        print_text("".join(f"{'ok  ' if r.ok else 'FAIL'}  {r.name.ljust(width)}  {r.detail}"
                           + (f"\n      {' ' * width}  fix: {r.fix}" if not r.ok and r.fix else "") + "\n"
                           for r in results))
    return 0 if all(r.ok for r in results) else 1
