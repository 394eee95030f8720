"""create: get a Slurm allocation for the container and stage it; returns once it is `created`."""
from __future__ import annotations

import os
import signal

from scrun.core.ids import default_job_name, step_name_for, validate_container_id
from scrun.core.status import Status
from scrun.errors import InvalidInputError, ScrunError, UsageError

TYPE_CHECKING = False  # not typing's: its import is ~7 ms of create
if TYPE_CHECKING:
    from scrun.anchor.child import AnchorChild

USAGE = "create [--bundle DIR] [--pid-file FILE] [--console-socket SOCK] <container-id>"
ANCHOR_EXIT_TIMEOUT = 60.0


def add_arguments(parser) -> None:
    parser.add_argument("-b", "--bundle", help="bundle directory holding config.json (default: current directory)")
    parser.add_argument("--pid-file", help="write the container's pid (the anchor's) here")
    parser.add_argument("--console-socket", help="unix socket that receives the terminal's master fd")
    parser.add_argument("--no-pivot", action="store_true", help="ignored")
    parser.add_argument("--no-new-keyring", action="store_true", help="ignored")
    parser.add_argument("--preserve-fds", type=int, default=0, metavar="N", help="ignored: extra fds do not reach a Slurm job")
    parser.add_argument("--pidfd-socket", help="ignored")
    parser.add_argument("--no-subreaper", action="store_true", help="ignored")
    parser.add_argument("id", metavar="container-id")


def _now() -> str:
    import datetime

    return datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z")


def _abs(path: str | None) -> str | None:
    return os.path.abspath(path) if path else None


def _user_name(uid: int) -> str:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _script_env(settings, container_id: str, cfg, pid_file: str | None, state_dir: str, anchor_pid: int) -> dict[str, str]:
    """The man page's OUTPUT ENVIRONMENT VARIABLES, for Lua and the Slurm commands scrun runs."""
    import grp

    from scrun.store.live import SOCKET_NAME

    # The seed defines these as the user outside rootless podman's namespace.
    uid, gid = settings.identity.real_uid, settings.identity.real_gid
    user = _user_name(uid)
    try:
        group = grp.getgrgid(gid).gr_name
    except KeyError:
        group = str(gid)
    env = {
        "SCRUN_OCI_VERSION": cfg.oci_version,
        "SCRUN_CONTAINER_ID": container_id,
        "SCRUN_PID": str(anchor_pid),
        "SCRUN_BUNDLE": cfg.bundle,
        "SCRUN_SUBMISSION_BUNDLE": cfg.bundle,
        "SCRUN_PID_FILE": pid_file or "",
        "SCRUN_SOCKET": os.path.join(state_dir, SOCKET_NAME),
        "SCRUN_SPOOL_DIR": state_dir,
        "SCRUN_SUBMISSION_CONFIG_FILE": cfg.config_file,
        "SCRUN_USER": user,
        "SCRUN_USER_ID": str(uid),
        "SCRUN_GROUP": group,
        "SCRUN_GROUP_ID": str(gid),
        "SCRUN_ROOT": settings.root,
        "SCRUN_ROOTFS_PATH": cfg.root_path,
        "SCRUN_SUBMISSION_ROOTFS_PATH": cfg.root_path,
    }
    if settings.log.log_file:
        env["SCRUN_LOG_FILE"] = settings.log.log_file
        env["SCRUN_LOG_FORMAT"] = settings.log.log_format
    for key, value in cfg.annotations.items():
        env[f"SCRUN_ANNOTATION_{key}"] = value
    return env


def _anchor_log_config(settings, args, oci):
    """The anchor's levels: oci.conf StdIODebug/FileDebug/SyslogDebug < SCRUN_*DEBUG < flags."""
    from scrun.errors import ConfigError
    from scrun.log import log_config_from

    try:
        return log_config_from(settings.env, verbose=getattr(args, "verbose", 0), debug=getattr(args, "debug", False),
                               log_file=settings.log.log_file, log_format=settings.log.log_format,
                               oci_overrides={"stdio_debug": oci.stdio_debug, "file_debug": oci.file_debug,
                                              "syslog_debug": oci.syslog_debug})
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _existing_job_id(env) -> int | None:
    raw = env.get("SLURM_JOB_ID", "")
    if not raw:
        return None
    if not raw.isdigit():
        raise InvalidInputError(f'SLURM_JOB_ID="{raw}": not a job id (unset it to get a new allocation)')
    return int(raw)


def _check_job_runs(job_id: int, env) -> None:
    """A step can only join a running job: say so now, not when `start` launches it."""
    from scrun.slurm.argv import build_job_state_argv
    from scrun.core.jobstate import JobState
    from scrun.slurm.parse import parse_job_states
    from scrun.slurm.runner import run

    proc = run(build_job_state_argv("squeue", [job_id]), env=env, timeout=30, check=False)
    state = parse_job_states(proc.stdout.decode(errors="replace")).get(job_id)
    if state != JobState.RUNNING:
        said = proc.stderr.decode(errors="replace").strip().splitlines()
        why = f"it is {state}" if state else (said[-1] if said else "squeue does not know it")
        raise InvalidInputError(f"SLURM_JOB_ID={job_id}: not a running job ({why}): unset SLURM_JOB_ID for a new "
                                "allocation, or run inside a running one")


def _resolve_srun(srun_path: str, path_env: str) -> str:
    import shutil

    if os.path.isabs(srun_path):
        return srun_path
    found = shutil.which(srun_path, path=path_env)
    if not found:
        raise InvalidInputError(f"`{srun_path}` not found in PATH={path_env}: install slurm-client or set SrunPath in oci.conf")
    return found


def run(settings, args) -> int:
    # The anchor first (the fast path forks it even before create's imports): its imports
    # overlap our checks. It waits for a go message and does nothing without one.
    from scrun.anchor.child import start_anchor

    args.prestarted = getattr(args, "prestarted", None) or start_anchor(settings.slurm_conf)
    try:
        return _create(settings, args)
    finally:
        args.prestarted.discard()  # no-op once the anchor was handed the container


def _create(settings, args) -> int:
    from scrun.anchor.child import PrestartedAnchor
    from scrun.anchor.netnsholder import holder_pid_if_needed, own_network_namespace_needed
    from scrun.anchor.request import AnchorRequest
    from scrun.cli.devices import device_requests
    from scrun.cli.pidfile import write_pid_file
    from scrun.config.defaults import site_lua_script
    from scrun.config.settings import SCRUN_OCI_KEYS, load_node_config, load_site_staging
    from scrun.core.bundle import load_bundle_config
    from scrun.core.options import build_job_options, merge_option_env
    from scrun.core.provenance import record_source
    from scrun.log import get_logger
    from scrun.store.records import ContainerRecord, make_container_dir, save_record

    log = get_logger()
    container_id = validate_container_id(args.id)
    if args.preserve_fds < 0:
        raise UsageError(f"--preserve-fds {args.preserve_fds}: must be 0 or more")
    cfg = load_bundle_config(args.bundle or os.getcwd())
    if args.pid_file and not os.path.isdir(os.path.dirname(_abs(args.pid_file))):
        raise InvalidInputError(f"--pid-file {_abs(args.pid_file)}: no such directory {os.path.dirname(_abs(args.pid_file))}")
    if not os.path.isdir(cfg.root_path):
        what = "not a directory" if os.path.exists(cfg.root_path) else "no such directory"
        raise InvalidInputError(f"{cfg.config_file}: root.path {cfg.root_path}: {what} (the container's rootfs)")
    console_socket = _abs(args.console_socket)
    if cfg.terminal and not console_socket:
        raise InvalidInputError(f"{cfg.config_file}: process.terminal is true but no --console-socket was given (runc refuses this too)")
    anchor = args.prestarted
    if cfg.terminal and not isinstance(anchor, PrestartedAnchor):
        # A terminal keeps an anchor of its own: it becomes that process's controlling terminal.
        anchor.discard()
        anchor = args.prestarted = PrestartedAnchor.start(site_lua_script(settings.slurm_conf))
    from scrun.core.executable import check_executable

    container_env = cfg.env_dict()
    if cfg.args:  # no process: create is fine, start will refuse (runtime-spec)
        check_executable(cfg.root_path, cfg.args[0], container_env, cfg.cwd, cfg.binds)
    oci = load_node_config(settings.slurm_conf)
    if oci.path is None:
        log.debug("no oci.conf next to %s: fine for scrun, but compute nodes need one for --container", settings.slurm_conf)
    else:
        node_keys = sorted(k for k in oci.raw if k not in SCRUN_OCI_KEYS)
        if node_keys:
            log.debug("%s: %s apply on the compute nodes (slurmstepd); scrun only checks them", oci.path, ", ".join(node_keys))
    anchor_log = _anchor_log_config(settings, args, oci)
    # The engine's flags (--cpus, --memory, annotations, CDI devices) < the caller's SCRUN_* < the container's.
    explicit = merge_option_env(settings.env, container_env)
    device_options, devices = device_requests(cfg, explicit)
    options = build_job_options({**cfg.engine_requests, **device_options, **explicit})
    existing_job = _existing_job_id(settings.env)
    if existing_job is not None:
        _check_job_runs(existing_job, settings.env)
    path_env = settings.env.get("PATH") or "/usr/local/bin:/usr/bin:/bin"
    srun = _resolve_srun(oci.srun_path, path_env)
    # A site's scrun.lua is loaded by the anchor before it asks for a job (a broken script
    # fails create with its file:line, and no job). Without one, scrun.conf's StageDir stages the
    # bundle (anchor.staging); with neither, nothing can.
    lua_script = site_lua_script(settings.slurm_conf)
    staging = load_site_staging(settings.slurm_conf)
    if not os.path.exists(lua_script):
        lua_script = None
        if staging.stage_dir is None:
            _check_rootfs_reachable(cfg.root_path, settings.identity.in_user_namespace, settings.slurm_conf)
            _check_mapped_root_reaches_rootfs(cfg)
    _check_namespace_paths(cfg)

    if settings.root_note and not os.path.isdir(settings.root):
        log.info("%s", settings.root_note)
    state_dir = make_container_dir(settings.root, container_id)
    pid_file = _abs(args.pid_file)
    owner = _user_name(settings.identity.real_uid)
    record = ContainerRecord(
        id=container_id, bundle=cfg.bundle, orig_bundle=cfg.bundle, config_file=cfg.config_file,
        root_path=cfg.root_path, orig_root_path=cfg.root_path, oci_version=cfg.oci_version,
        status=Status.CREATING, created=_now(), owner=owner, uid=settings.identity.real_uid, annotations=cfg.annotations,
        own_allocation=existing_job is None, slurm_conf=settings.slurm_conf)
    try:
        if isinstance(anchor, PrestartedAnchor):
            record.container_pid = holder_pid_if_needed(cfg.linux, anchor.child.pid, settings.root, container_id)
        else:  # served: the waiter is the container's pid, in a network namespace of its own if need be
            anchor.start_waiter(own_network_namespace_needed(cfg.linux))
        save_record(settings.root, record)
        AnchorRequest(
            root=settings.root, id=container_id, bundle=cfg.bundle, config_file=cfg.config_file, args=cfg.args,
            terminal=cfg.terminal, console_socket=console_socket, console_size=cfg.console_size,
            job_args=options.job_args, step_args=options.step_args,
            job_name=options.job_name or default_job_name(container_id, cfg.annotations),
            step_name=step_name_for(container_id), srun_path=srun, srun_args=oci.srun_args,
            slurm_conf=settings.slurm_conf, existing_job_id=existing_job,
            caller_slurm_env={k: v for k, v in settings.env.items() if k.startswith("SLURM_") or k.startswith("_SLURM_SPANK_OPTION_")},
            lua_script=lua_script, script_env=_script_env(settings, container_id, cfg, pid_file, state_dir, anchor.child.pid),
            log_file=settings.log.log_file, log_format=settings.log.log_format,
            file_level=anchor_log.file_level, syslog_level=anchor_log.syslog_level, path_env=path_env,
            lua_timeout=settings.lua_timeout,
            stage_dir=None if lua_script else staging.stage_dir, shared_paths=staging.shared_paths,
            node_guard=staging.node_guard and not oci.ignore_file_config_json,
            image_cache=staging.image_cache, image_cache_size=staging.image_cache_size,
            provenance_source=record_source(cfg.bundle, container_id, cfg.binds), cdi_devices=devices,
        ).save()
        created_pid = anchor.go_and_wait(settings.root, container_id)
        if pid_file:
            write_pid_file(pid_file, record.container_pid or created_pid)
    except BaseException:
        _undo(settings, container_id, anchor.child if anchor.handed_over else None)
        raise
    return 0


def _undo(settings, container_id: str, anchor: AnchorChild | None) -> None:
    """create failed or was interrupted: stop the anchor (it releases its job) and remove the state."""
    from scrun.cli.teardown import cancel_recorded_job, remove_state
    from scrun.store.live import read_record

    if anchor is not None and anchor.poll() is None:
        anchor.send_signal(signal.SIGTERM)
        try:
            anchor.wait(timeout=ANCHOR_EXIT_TIMEOUT)
        except TimeoutError:
            anchor.kill()
            anchor.wait()
    try:
        doc = read_record(settings.root, container_id)
        if doc.get("job_id") is not None:
            cancel_recorded_job(doc)  # harmless when the anchor already released it
    except ScrunError:
        pass
    remove_state(settings.root, container_id)


def _check_rootfs_reachable(root_path: str, in_user_namespace: bool, slurm_conf: str) -> None:
    """With nothing to stage it, a rootfs the nodes cannot see fails here, not on the node."""
    from scrun.core.mounts import login_local_rootfs_error, namespace_local_rootfs_error, read_mountinfo

    mountinfo = read_mountinfo()
    error = (namespace_local_rootfs_error(root_path, in_user_namespace, mountinfo)
             or login_local_rootfs_error(root_path, os.path.dirname(slurm_conf), mountinfo))
    if error:
        raise InvalidInputError(error)


def _check_namespace_paths(cfg) -> None:
    from scrun.core.specchecks import check_namespace_paths, namespace_paths

    kinds: dict[str, str | None] = {}
    for path in namespace_paths(cfg.linux):
        try:
            kinds[path] = os.readlink(path).partition(":")[0]  # "net:[4026531840]"
        except OSError:
            kinds[path] = None  # a bind-mounted nsfs (/run/netns/…) is no link: the node's runtime checks it
    check_namespace_paths(cfg.linux, cfg.config_file, kinds)


def _check_mapped_root_reaches_rootfs(cfg) -> None:
    from scrun.core.mounts import mapped_root_error

    error = mapped_root_error(cfg.root_path, cfg.linux)
    if error:
        raise InvalidInputError(error)
