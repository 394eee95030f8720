"""`exec` into a running container: the command that enters it on its node (pure).

The container is the node runtime's (crun) container that slurmstepd made for our step; its id
and the runtime's state directory are in oci.conf's RunTimeQuery (`… state %n-%j-%s-%t`). The
same command line with `exec FLAGS` instead of `state`, and the process after the id, runs in an
overlapping step of the container's job on the container's node.
"""
from __future__ import annotations

import shlex
from typing import Any, NamedTuple

from scrun.errors import InvalidInputError


class ExecProcess(NamedTuple):
    args: tuple[str, ...]
    env: tuple[str, ...]     # KEY=value, as process.env
    cwd: str                 # "" → the container's own
    terminal: bool
    user: str                # "uid[:gid]" or ""


def process_from_spec(doc: Any, source: str) -> ExecProcess:
    """runtime-spec `process` JSON (`exec --process FILE`, as conmon and containerd pass it)."""
    if not isinstance(doc, dict):
        raise InvalidInputError(f"{source}: must hold a JSON object (a runtime-spec process)")
    args = doc.get("args")
    if not isinstance(args, list) or not args or not all(isinstance(a, str) for a in args):
        raise InvalidInputError(f"{source}: args must be a non-empty list of strings")
    env = doc.get("env") or []
    if not isinstance(env, list) or not all(isinstance(e, str) and "=" in e for e in env):
        raise InvalidInputError(f"{source}: env must be a list of KEY=value strings")
    cwd = doc.get("cwd") or ""
    if not isinstance(cwd, str) or (cwd and not cwd.startswith("/")):
        raise InvalidInputError(f"{source}: cwd must be an absolute path")
    user = doc.get("user") or {}
    if not isinstance(user, dict):
        raise InvalidInputError(f"{source}: user must be an object")
    uid, gid = user.get("uid"), user.get("gid")
    for name, value in (("uid", uid), ("gid", gid)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise InvalidInputError(f"{source}: user.{name} must be a non-negative integer")
    spec = "" if uid is None else (f"{uid}:{gid}" if gid is not None else str(uid))
    return ExecProcess(tuple(args), tuple(env), cwd, bool(doc.get("terminal")), spec)


def runtime_exec_flags(process: ExecProcess) -> list[str]:
    """crun/runc `exec` options for the process (everything but the command).

    Never --tty: a terminal process runs in an `srun --pty` step, whose pty on the node is
    already the process's terminal (sized and resized by srun). crun's own --tty without a
    console socket made a second pty and, when the process exited, wrote what was still in it
    through crun's error log (red, timestamped) instead of to stdout."""
    flags: list[str] = []
    if process.cwd:
        flags.append(f"--cwd={process.cwd}")
    flags += [f"--env={item}" for item in process.env]
    if process.user:
        flags.append(f"--user={process.user}")
    return flags


def expand_oci_pattern(template: str, values: dict[str, str]) -> str:
    """oci.conf's %-replacements (%n node, %j job, %s step, %t task, %u user, %U uid, %% a %)."""
    out, i = [], 0
    while i < len(template):
        ch = template[i]
        if ch == "%" and i + 1 < len(template):
            key = template[i + 1]
            out.append("%" if key == "%" else values.get(key, "%" + key))
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def node_exec_command(runtime_query: str | None, process: ExecProcess, values: dict[str, str]) -> str:
    """The shell command that runs `process` in the node's container, from RunTimeQuery."""
    words = (runtime_query or "").split()
    if "state" not in words:
        raise InvalidInputError("exec needs oci.conf's RunTimeQuery (e.g. `crun --root=… state %n-%j-%s-%t`) to "
                                "find the container on its node: add it to oci.conf")
    at = len(words) - 1 - words[::-1].index("state")  # the runtime's verb: the last `state`
    words[at:at + 1] = ["exec", *map(shlex.quote, runtime_exec_flags(process))]
    # No `--` before the process: crun and runc take everything after the id as the command.
    return f"{expand_oci_pattern(' '.join(words), values)} {shlex.join(process.args)}"
