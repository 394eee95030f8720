"""exec: run another process in a running container, on its node, through Slurm.

An overlapping step of the container's job, on the container's node, runs the node runtime's
`exec` into the container slurmstepd made (core.nodeexec). As runc: `--detach` returns once
the process runs and leaves its pid (srun's, which relays its stdio and exit status) in
--pid-file — what conmon and containerd's shim wait on; without it, exec waits and exits with
the process's code.
"""
from __future__ import annotations

import argparse
import os
import subprocess

from scrun.core.ids import step_name_for, validate_container_id
from scrun.errors import InvalidInputError, InvalidStatusError, SlurmError

USAGE = "exec [--process FILE | COMMAND ARGS…] [--tty] [--console-socket SOCK] [--detach] [--pid-file FILE] <container-id>"


def add_arguments(parser) -> None:
    parser.add_argument("-p", "--process", help="runtime-spec process JSON (what conmon and containerd pass)")
    parser.add_argument("-t", "--tty", action="store_true", help="a terminal (with --console-socket)")
    parser.add_argument("--console-socket", help="unix socket that receives the terminal's master fd")
    parser.add_argument("-d", "--detach", action="store_true", help="return once the process runs")
    parser.add_argument("--pid-file", help="write the process's pid (srun's) here")
    parser.add_argument("--cwd", help="working directory in the container")
    parser.add_argument("-e", "--env", action="append", default=[], help="KEY=value (repeatable)")
    parser.add_argument("-u", "--user", help="uid[:gid]")
    for ignored in ("--process-label", "--apparmor", "--cgroup"):
        parser.add_argument(ignored, help="ignored: the node's runtime applies the container's")
    parser.add_argument("--cap", action="append", default=[], help="ignored (the container's capabilities apply)")
    parser.add_argument("--no-new-privs", action="store_true", help="ignored")
    parser.add_argument("--ignore-paused", action="store_true", help="ignored (Slurm jobs are not paused this way)")
    parser.add_argument("--pidfd-socket", help="ignored")
    parser.add_argument("-g", "--additional-gids", action="append", default=[], help="ignored")
    parser.add_argument("--preserve-fds", type=int, default=0, help="ignored: extra fds do not reach a Slurm job")
    parser.add_argument("id", metavar="container-id")
    # Everything after the id is the process (its own options included), as with runc.
    parser.add_argument("process_args", nargs=argparse.REMAINDER, metavar="command",
                        help="the process, when no --process is given")


def _process(args):
    from scrun.core.nodeexec import ExecProcess, process_from_spec

    if args.process:
        import json

        try:
            with open(args.process, encoding="utf-8") as fh:
                doc = json.load(fh)
        except OSError as exc:
            raise InvalidInputError(f"--process {args.process}: {exc.strerror}") from None
        except ValueError as exc:
            raise InvalidInputError(f"--process {args.process}: not valid JSON ({exc})") from None
        process = process_from_spec(doc, args.process)
        if args.tty and not process.terminal:
            process = process._replace(terminal=True)
        return process
    if not args.process_args:
        raise InvalidInputError("exec needs a command or --process FILE")
    for item in args.env:
        if "=" not in item:
            raise InvalidInputError(f"--env {item!r}: use KEY=value")
    return ExecProcess(tuple(args.process_args), tuple(args.env), args.cwd or "", args.tty, args.user or "")


def _container_step(doc, env) -> tuple[str, str]:
    """(step id, node) of the container's running step."""
    from scrun.slurm.argv import build_step_nodes_argv
    from scrun.slurm.parse import parse_step_nodes
    from scrun.slurm.runner import run

    proc = run(build_step_nodes_argv("squeue", doc["job_id"]), env=env, timeout=30, check=False)
    for step, name, nodes in parse_step_nodes(proc.stdout.decode(errors="replace")):
        if name == step_name_for(doc["id"]) and nodes:
            return step, nodes.split(",")[0]
    raise InvalidStatusError(f"container `{doc['id']}`: its step is not running in job {doc['job_id']} (yet): "
                             "cannot exec")


def run(settings, args) -> int:
    import pwd

    from scrun.config.settings import load_node_config
    from scrun.core.nodeexec import node_exec_command
    from scrun.slurm.argv import build_exec_srun_argv
    from scrun.slurm.runner import slurm_command
    from scrun.store.live import live_status, read_record

    container_id = validate_container_id(args.id)
    doc = read_record(settings.root, container_id)
    status = live_status(doc)
    if status != "running":
        raise InvalidStatusError(f"cannot exec in container `{container_id}`: it is {status}, not running")
    process = _process(args)
    if process.terminal and not args.console_socket and not os.isatty(0):
        raise InvalidInputError("exec --tty needs --console-socket (or a terminal on stdin)")
    slurm_conf = doc.get("slurm_conf") or settings.slurm_conf
    oci = load_node_config(slurm_conf)
    env = {**os.environ, "SLURM_CONF": slurm_conf}
    step, node = _container_step(doc, env)
    uid = settings.identity.real_uid
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = str(uid)
    command = node_exec_command(oci.raw.get("runtimequery"), process, {
        "n": node, "j": str(doc["job_id"]), "s": step, "t": "0", "u": user, "U": str(uid)})
    argv = build_exec_srun_argv(oci.srun_path, oci.srun_args, job_id=doc["job_id"], node=node,
                                name=f"scrun-exec:{container_id}"[:64], pty=process.terminal, command=command)
    slave = None
    if process.terminal and args.console_socket:
        from scrun.anchor.terminal import open_pty, send_master

        master, slave, name = open_pty(None)
        try:
            send_master(os.path.abspath(args.console_socket), master, name)
        finally:
            os.close(master)
    if not args.detach:
        return _relay(slurm_command(argv), env, slave)
    # Detached (conmon, containerd's shim): a forked relay is the process the engine waits on.
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.setsid()
            code = _relay(slurm_command(argv), env, slave)
        finally:
            os._exit(code)
    if slave is not None:
        os.close(slave)
    if args.pid_file:
        from scrun.cli.pidfile import write_pid_file

        write_pid_file(os.path.abspath(args.pid_file), pid)
    return 0


# What the node runtime says when the process cannot be run, and the code crun run gives it.
_CANNOT_RUN = ((b"not found", 127), (b"No such file or directory", 127), (b"Permission denied", 126))


def _relay(argv: list[str], env: dict[str, str], terminal: int | None) -> int:
    """Run srun with the process's stdio; its stderr through core.stderrfilter (srun's own
    "task 0: Exited with exit code N" is not the process's); signals passed on; its exit code."""
    import signal

    from scrun.core.exitcode import exit_code_from_returncode
    from scrun.core.stderrfilter import TAIL_BYTES, StderrFilter

    stdio = {} if terminal is None else {"stdin": terminal, "stdout": terminal}
    preexec = None
    if terminal is not None:
        from scrun.anchor.terminal import become_controlling_terminal

        preexec = become_controlling_terminal
    try:
        proc = subprocess.Popen(argv, env=env, cwd="/", stderr=subprocess.PIPE, start_new_session=terminal is not None,
                                preexec_fn=preexec, **stdio)
    except FileNotFoundError:
        raise SlurmError(f"`{argv[0]}` not found: install slurm-client or set SrunPath in oci.conf") from None
    dest = 2 if terminal is None else terminal
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, lambda signum, _frame: proc.send_signal(signum))
    filt, tail = StderrFilter(), b""
    assert proc.stderr is not None
    while True:
        try:
            chunk = os.read(proc.stderr.fileno(), 65536)
        except InterruptedError:
            continue
        data = filt.feed(chunk) if chunk else filt.flush()
        if data:
            tail = (tail + data)[-TAIL_BYTES:]  # the end of what passed, newlines kept
            try:
                os.write(dest, data)
            except OSError:
                pass  # nobody reads the process's stderr any more
        if not chunk:
            break
    code = exit_code_from_returncode(proc.wait())
    if terminal is not None:
        os.close(terminal)
    # The node runtime could not start the process: crun run's codes. crun up to 1.21 exits 255
    # then; 1.28 exits 1, which a process may too: only crun's own words count for that.
    last = (tail.rstrip().splitlines() or [b""])[-1]
    if code == 255 or (code == 1 and last.startswith(b"executable file `") and b"` not found" in last):
        code = next((c for text, c in _CANNOT_RUN if text in tail), code)
    return code
