"""Clean-up that works without the anchor: cancel what the record says we own, remove the state."""
from __future__ import annotations

import os
import time

from scrun.core.ids import step_name_for
from scrun.store.live import anchor_running as _alive


def wait_anchor_gone(doc: dict[str, object], timeout: float) -> bool:
    """Wait until the recorded anchor has exited: woken by its pidfd the moment it does (delete
    is on `podman run --rm`'s path: no polling interval to add to every container)."""
    import select

    pid = doc.get("anchor_pid", 0)
    try:
        pidfd = os.pidfd_open(pid) if isinstance(pid, int) and pid > 0 else None
    except OSError:  # gone already (ESRCH), or no pidfds here: poll below
        pidfd = None
    try:
        # Opened first, checked after: the pid cannot be reused while we hold its pidfd.
        if not _alive(doc):
            return True
        if pidfd is not None:
            select.select([pidfd], [], [], timeout)
            return not _alive(doc)
        deadline = time.monotonic() + timeout
        delay = 0.002
        while _alive(doc):
            if time.monotonic() >= deadline:
                return False
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
        return True
    finally:
        if pidfd is not None:
            os.close(pidfd)


def kill_anchor(doc: dict[str, object]) -> None:
    """SIGKILL the recorded anchor: through a pidfd opened before its start time is checked, so
    the signal cannot reach a process that took the pid meanwhile."""
    import signal

    pid = doc.get("anchor_pid", 0)
    if not isinstance(pid, int) or pid <= 0:
        return
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return  # gone
    try:
        if _alive(doc):
            try:
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            except ProcessLookupError:
                pass
    finally:
        os.close(pidfd)
    wait_anchor_gone(doc, 5)


def cancel_recorded_job(doc: dict[str, object]) -> None:
    """The anchor died without finishing: make sure its allocation or step does not outlive it."""
    job_id = doc.get("job_id")
    if job_id is None:
        return
    from scrun.slurm import argv as slurm_argv
    from scrun.slurm.parse import parse_step_list
    from scrun.slurm.runner import run

    env = dict(os.environ)
    if doc.get("slurm_conf"):
        env["SLURM_CONF"] = doc["slurm_conf"]
    if doc.get("own_allocation", True):
        run(slurm_argv.build_scancel_argv("scancel", job_id), env=env, check=False, timeout=30)
        return
    # Inside the caller's job: cancel only our step, never the job.
    out = run(slurm_argv.build_step_list_argv("squeue", job_id), env=env, check=False, timeout=30).stdout
    for step, name in parse_step_list(out.decode(errors="replace")):
        if name == step_name_for(doc["id"]):
            run(slurm_argv.build_scancel_argv("scancel", job_id, step=step), env=env, check=False, timeout=30)


def remove_state(root: str, container_id: str) -> None:
    """Remove <root>/<id> and what is in it (records, log, the node bundle and its rootfs link).

    Not shutil.rmtree: its imports (re, enum, bz2, lzma) cost ~5 ms of every `delete`, which is
    on `podman run --rm`'s path. The tree is ours and small; links are removed, never followed.
    """
    _remove_tree(os.path.join(root, container_id))


def remove_stage_copy(doc: dict[str, object]) -> None:
    """The anchor died before its stage_out: remove the copy scrun.conf's staging made (its record
    names it; a link there is removed, never followed)."""
    copy = doc.get("stage_copy")
    if isinstance(copy, str) and os.path.isabs(copy):
        if os.path.islink(copy):
            _remove(os.unlink, copy)
        else:
            _remove_tree(copy)


def _remove_tree(top: str) -> None:
    for parent, dirs, files in os.walk(top, topdown=False):
        for name in files:
            _remove(os.unlink, os.path.join(parent, name))
        for name in dirs:  # links to directories are listed here, and are not walked into
            path = os.path.join(parent, name)
            _remove(os.unlink if os.path.islink(path) else os.rmdir, path)
    _remove(os.rmdir, top)


def _remove(remove, path: str) -> None:
    try:
        remove(path)
    except OSError:
        pass  # gone already, or not ours to remove: as rmtree(ignore_errors=True)
