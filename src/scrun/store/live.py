"""Reading a container's record on the hot path: plain dicts, nothing heavy imported.

`state`, `start`, `kill` and `delete` use this; store.records adds the typed ContainerRecord
for the anchor and `create`.
"""
from __future__ import annotations

import os
import stat

from scrun import fastjson
from scrun.errors import ContainerNotFoundError, NotOwnerError, ScrunError

SCHEMA_VERSION = 1
RECORD_NAME = "state.json"
SOCKET_NAME = "ctl.sock"


def is_host_root() -> bool:
    """root of the initial user namespace (an admin), not root of rootless podman's namespace."""
    if os.getuid() != 0:
        return False
    from scrun.config.paths import read_identity

    return not read_identity().in_user_namespace


OVERFLOW_UID = 65534  # /proc/sys/kernel/overflowuid's default: how unmapped owners show in a user namespace


def _trusted_uids() -> tuple[int, ...]:
    """Who may own the way to our state: root and ourselves. Host root trusts root alone: an
    admin's scrun never follows a directory or link a user could change (a record there would
    name the job to cancel and the pid to kill). Inside rootless podman's user namespace we are
    uid 0 and the host's root shows as the overflow uid, as every unmapped owner does."""
    uid = os.getuid()
    if uid != 0:
        return (0, uid)
    return (0,) if is_host_root() else (0, OVERFLOW_UID)


def check_state_root(root: str) -> None:
    """The state root and every directory and symlink on the way to it: nobody else may change
    them (core.pathtrust). Checked before any record under it is read or written."""
    from scrun.core.pathtrust import untrusted_component

    check_owned(root, follow=True)  # the plain case first, in its own words
    try:
        problem = untrusted_component(os.path.abspath(root), _trusted_uids(), lstat=os.lstat, readlink=os.readlink)
    except PermissionError:
        raise NotOwnerError(f"{root}: permission denied: it is another user's; scrun acts only on your own "
                            "containers (use your own --root)") from None
    except OSError as exc:
        raise NotOwnerError(f"state root {root}: {exc.strerror} (pass --root with a directory of yours)") from None
    if problem:
        raise NotOwnerError(f"state root {root}: {problem}: another user could swap what scrun acts on; "
                            "pass --root with a directory only you (and root) can change")


def check_owned(path: str, *, follow: bool) -> None:
    """scrun acts only on its own user's state: refuse another uid's directory, and symlinks.

    The state root may be reached through a symlink (`follow`; check_state_root judged the way);
    a container directory may not: one in a root could otherwise lead to another user's
    container. Missing paths pass (the caller reports them). root too acts only on root's own:
    a record written by a user is never trusted (`sudo scrun --root ~user/… delete` is refused;
    the user deletes their own containers, an admin cancels their jobs with scancel).
    """
    try:
        st = os.stat(path) if follow else os.lstat(path)
    except FileNotFoundError:
        return
    except PermissionError:
        raise NotOwnerError(f"{path}: permission denied: it is another user's; scrun acts only on your own "
                            "containers (use your own --root)") from None
    if stat.S_ISLNK(st.st_mode):
        raise NotOwnerError(f"{path} is a symlink: container directories never are (remove it)")
    if st.st_uid != os.getuid():
        raise NotOwnerError(f"{path} belongs to uid {st.st_uid}, not to you (uid {os.getuid()}): scrun acts only on "
                            "your own containers (remove it, or pass --root with a directory of yours)")


# A record is a few KiB: anything much larger was not written by scrun, and is not read whole.
MAX_RECORD_BYTES = 1 << 20


def read_record(root: str, container_id: str) -> dict[str, object]:
    check_state_root(root)
    check_owned(os.path.join(root, container_id), follow=False)
    path = os.path.join(root, container_id, RECORD_NAME)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        with open(fd, "rb") as fh:
            st = os.fstat(fh.fileno())
            if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid():
                raise ValueError("not a regular file of yours")
            data = fh.read(MAX_RECORD_BYTES + 1)
        if len(data) > MAX_RECORD_BYTES:
            raise ValueError(f"larger than {MAX_RECORD_BYTES} bytes")
        doc = fastjson.loads(data.decode("utf-8"))
    except FileNotFoundError:
        raise ContainerNotFoundError(container_id, root) from None
    except (OSError, ValueError) as exc:
        raise ScrunError(f"container `{container_id}`: unreadable record {path}: {exc}") from None
    schema = doc.get("schema") if isinstance(doc, dict) else None
    if isinstance(schema, int) and not isinstance(schema, bool) and schema > SCHEMA_VERSION:
        # Never guessed at: its job and anchor may be described in fields this scrun does not know.
        raise ScrunError(f"container `{container_id}`: record {path} was written by a newer scrun (record format "
                         f"{schema}; this scrun reads {SCHEMA_VERSION}): use that scrun, or cancel its job "
                         f"(squeue --name=scrun:{container_id[:12]}) and remove {os.path.dirname(path)}")
    if schema != SCHEMA_VERSION:
        raise ScrunError(f"container `{container_id}`: {path} is not a scrun record (format {schema!r}): remove "
                         f"{os.path.dirname(path)}")
    return doc


def process_starttime(pid: int) -> int | None:
    """Start time (clock ticks since boot) of a live, non-zombie pid; None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    # comm may hold spaces and parentheses: fields start after the last ')'.
    rest = data[data.rindex(b")") + 2:].split()
    if rest[0] in (b"Z", b"X"):
        return None
    return int(rest[19])


def pid_matches(pid: int, starttime: int) -> bool:
    """The recorded anchor still runs (and the pid was not reused by another process)."""
    if pid <= 0:
        return False
    start = process_starttime(pid)
    # A record without the start time names no process for sure: a pid alone may be anyone's now.
    return start is not None and starttime != 0 and start == starttime


def anchor_running(doc: dict[str, object]) -> bool:
    """The anchor named in a record (dict) is still alive."""
    return pid_matches(doc.get("anchor_pid", 0), doc.get("anchor_starttime", 0))


def live_status(doc: dict[str, object]) -> str:
    """The recorded status, corrected to `stopped` when the anchor has died."""
    status = doc.get("status", "stopped")
    if status == "stopped" or not anchor_running(doc):
        return "stopped"
    return status


def state_document(doc: dict[str, object], status: str) -> dict[str, object]:
    """runtime-spec state (ociVersion, id, status, pid, bundle, annotations) plus runc's created/owner
    and, once stopped other than by a clean exit, our reason."""
    state = {
        "ociVersion": doc["oci_version"],
        "id": doc["id"],
        "status": status,
        "pid": (doc.get("container_pid") or doc.get("anchor_pid", 0)) if status != "stopped" else 0,
        "bundle": doc["bundle"],
        "annotations": {**doc.get("annotations", {}), **job_annotations(doc)},
        "created": doc.get("created", ""),
        "owner": doc.get("owner", ""),
    }
    if status == "stopped" and doc.get("stopped_reason"):
        # Why it stopped, when not a clean exit (engines ignore keys they do not know).
        state["reason"] = doc["stopped_reason"]
    elif status == "stopped" and doc.get("status") != "stopped":
        state["reason"] = (f"its anchor (pid {doc.get('anchor_pid')}) died without an exit code; the job holder "
                           "released the job (`delete --force` cleans up)")
    return state


# The job, in the state's annotations (strings, as the runtime-spec's annotations are): engines
# keep annotations they do not know, and show them (podman inspect's State has them).
JOB_ANNOTATIONS = (("org.slurm.job_id", "job_id"), ("org.slurm.job_state", "job_state"),
                   ("org.slurm.nodes", "nodes"), ("org.slurm.reason", "pending_reason"))


def job_annotations(doc: dict[str, object]) -> dict[str, str]:
    """org.slurm.* of a record: the ones the anchor knows (none before the job exists)."""
    if doc.get("job_id") is None:
        return {}
    return {key: str(doc[field]) for key, field in JOB_ANNOTATIONS if doc.get(field) not in (None, "")}
