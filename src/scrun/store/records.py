"""One JSON record per container at <root>/<id>/state.json, replaced atomically.

The record is the truth for `state` and the fallback for `kill`/`delete` when the anchor is
gone: it holds the job id, the anchor's pid (with its start time, against pid reuse), the
status and the exit code. The anchor is its only writer once it runs.
"""
from __future__ import annotations

import json
import os
from types import SimpleNamespace

from scrun.core.status import Status
from scrun.errors import ContainerExistsError, NotOwnerError, StateError
from scrun.store.live import (  # noqa: F401
    RECORD_NAME, SCHEMA_VERSION, SOCKET_NAME, check_state_root, pid_matches, process_starttime, read_record)

READY_NAME = "request.json"
TYPE_CHECKING = False  # typing costs create ~7 ms to import
if TYPE_CHECKING:
    from typing import Any


# The record's fields with their defaults; the first ones have none (create sets them).
_REQUIRED = ("id", "bundle", "orig_bundle", "config_file", "root_path", "orig_root_path", "oci_version")
_DEFAULTS: dict[str, Any] = {
    "status": Status.CREATING,
    "created": "",                # RFC3339, when create was called
    "owner": "",
    "uid": 0,
    "annotations": None,          # → {} (config.json's annotations)
    "image": "",                  # the image it runs, from the engine's records (anchor.provenance)
    "anchor_pid": 0,
    "anchor_starttime": 0,        # /proc/<pid>/stat field 22, guards against pid reuse
    # The pid create reported when it is not the anchor's (anchor/netnsholder.py): state shows it.
    "container_pid": 0,
    "job_id": None,
    "own_allocation": True,       # False when running inside an existing job (SLURM_JOB_ID)
    "exit_code": None,
    "slurm_conf": "",
    "stopped_reason": "",
    # The directory scrun.conf's staging made for this container (StageDir/<user>/<id>): the
    # anchor's stage_out removes it, or delete when the anchor died first.
    "stage_copy": "",
    # Bytes the built-in staging copied for this container (0: its image came from the cache).
    "staged_bytes": None,
    # Unix times of the container step's launch and end (srun spawned / exited): how long
    # the step ran, and how long the rest took around it (bench/run.py reports both).
    "step_started": None,
    "step_ended": None,
    # The job as the anchor last knew it (state/list show them without asking slurmctld):
    # PENDING/RUNNING/COMPLETED/CANCELLED, the node list once granted, why it pends.
    "job_state": "",
    "nodes": "",
    "pending_reason": "",
}
FIELDS = frozenset((*_REQUIRED, *_DEFAULTS))


class ContainerRecord(SimpleNamespace):
    """The container's state.json, as attributes (the anchor updates them, then save_record).

    SimpleNamespace (C, mutable, compared by value), not a dataclass: create builds one, and
    dataclasses' import (inspect, ast) costs it ~20 ms here. Unknown or missing fields raise
    TypeError, as a dataclass's constructor would."""

    def __init__(self, **fields: Any):
        missing = [name for name in _REQUIRED if name not in fields]
        unknown = sorted(set(fields) - FIELDS)
        if missing or unknown:
            raise TypeError(f"ContainerRecord: missing {missing}, unknown {unknown}")
        super().__init__(**{**_DEFAULTS, **fields})
        if self.annotations is None:
            self.annotations = {}

    def to_json(self) -> dict[str, Any]:
        doc = dict(vars(self))
        doc["schema"] = SCHEMA_VERSION
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> ContainerRecord:
        """From a record dict that store.live.read_record has read and checked (schema included)."""
        return cls(**{k: v for k, v in doc.items() if k in FIELDS})


def container_dir(root: str, container_id: str) -> str:
    return os.path.join(root, container_id)


def write_json_atomic(path: str, doc: dict[str, Any]) -> None:
    """A state file: a failure is the state root's (StateError says to free it or pass --root)."""
    try:
        write_text_atomic(path, json.dumps(doc))
    except OSError as exc:
        raise _state_error(path, exc) from None


def write_text_atomic(path: str, text: str, mode: int = 0o600) -> None:
    """Write to a temporary file in the same directory, then rename it over the target; OSError
    if that fails (nothing is left behind).

    The temporary name is ours by pid (one writer per process and file); not tempfile's
    mkstemp, whose imports (shutil, random, bz2, lzma) cost create and the anchor ~5 ms."""
    tmp = os.path.join(os.path.dirname(path) or ".", f".tmp-{os.path.basename(path)}-{os.getpid()}")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW
    try:
        fd = os.open(tmp, flags, mode)
    except FileExistsError:  # left by a killed process that had our pid
        os.unlink(tmp)
        fd = os.open(tmp, flags, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            os.fchmod(fh.fileno(), mode)  # the umask may have narrowed it; by fd: the name could be swapped
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _state_error(path: str, exc: OSError) -> StateError:
    return StateError(f"cannot write {path}: {exc.strerror} (free space there, or pass --root with another "
                      "directory)")


def save_record(root: str, record: ContainerRecord) -> None:
    write_json_atomic(os.path.join(container_dir(root, record.id), RECORD_NAME), record.to_json())


def load_record(root: str, container_id: str) -> ContainerRecord:
    return ContainerRecord.from_json(read_record(root, container_id))


# Search-only for others (as containers/storage's overlay home): a container whose config maps
# its root to another uid (a user namespace) must reach the node bundle in <root>/<id>/bundle
# as that uid; crun fails with "make `…/bundle/rootfs` private: Permission denied" under 0700.
# Nobody else can list them, and every file in them is 0600 (the socket too).
STATE_DIR_MODE = 0o711


def make_container_dir(root: str, container_id: str) -> str:
    """Create <root>/<id> (STATE_DIR_MODE); an existing one means the id is taken.

    The root must be ours and writable by nobody else: in a shared directory (the /tmp
    fallback) another user could have made it first, to read or redirect our containers.
    """
    check_state_root(root)
    try:
        os.makedirs(root, mode=STATE_DIR_MODE, exist_ok=True)
    except PermissionError:
        raise NotOwnerError(f"cannot make the state root {root}: permission denied (pass --root with a directory "
                            "of yours)") from None
    check_state_root(root)  # again: it may have existed already, made by someone else meanwhile
    st = os.stat(root)
    if st.st_mode & 0o022:
        raise NotOwnerError(f"state root {root} is writable by other users: chmod 711 it, or pass --root with "
                            "a private directory")
    if st.st_mode & 0o777 == 0o700 and st.st_uid == os.getuid():
        os.chmod(root, STATE_DIR_MODE)  # made by an earlier scrun
    path = container_dir(root, container_id)
    try:
        os.mkdir(path)
    except FileExistsError:
        raise ContainerExistsError(container_id) from None
    except OSError as exc:
        raise _state_error(path, exc) from None
    os.chmod(path, STATE_DIR_MODE)  # whatever the umask
    return path
