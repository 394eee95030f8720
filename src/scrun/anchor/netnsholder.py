"""The container's pid for an engine that enters its network namespace.

dockerd 28 opens /proc/<pid>/ns/net of the pid create reports and sets the container's network
up in it, whenever config.json asks for a new network namespace (`--network none` too). Our
container runs on a compute node; the pid is the anchor's, in the login node's network
namespace, which the anchor needs for Slurm. Root may enter that namespace; a rootless engine,
inside its own user namespace (rootlesskit's), may not ("failed to set into network namespace …
operation not permitted"). runc and crun make the namespace themselves, inside the engine's user
namespace, so the engine may enter it.

So when the namespace we run in is not owned by our user namespace, create reports the pid of a
small holder instead: a sibling of the anchor, in a network namespace of its own (owned by the
engine's user namespace, so the engine may enter it; nothing in it is used). It waits for the
anchor to end, then exits with the container's exit code from the record, as the anchor does:
the engine, which adopted both when create exited, sees the container end when it ends.

The holder execs a fresh interpreter (`python -I -S`, this module alone): forked from create and
kept as it was, it held create's whole heap, which nothing else shares once create exits and the
anchor has written over its own copy (bench/scale.py: 6.3 MiB PSS per rootless container; a
fresh one ~3.6 MiB).
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import select
import signal
import sys

from scrun.errors import ScrunError, StateError

HOLDER_NAME = b"scrun-netns"  # what ps and pgrep show
_NS_GET_USERNS = 0xB701  # _IO(0xb7, 0x1): the user namespace that owns a namespace
_CLONE_NEWNET = 0x40000000
_READY = b"r"


def netns_is_ours() -> bool:
    """Our user namespace owns the network namespace we run in (root on the host: yes; inside
    rootlesskit with the host's network: no). Unknown (an old kernel) counts as yes: as before."""
    try:
        net = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return True
    try:
        owner = fcntl.ioctl(net, _NS_GET_USERNS)
    except PermissionError:
        return False  # its owner is outside our user namespace
    except OSError:
        return True
    finally:
        os.close(net)
    try:
        mine, theirs = os.stat("/proc/self/ns/user"), os.fstat(owner)
        return (mine.st_dev, mine.st_ino) == (theirs.st_dev, theirs.st_ino)
    finally:
        os.close(owner)


def own_network_namespace_needed(linux: object) -> bool:
    """config.json's `linux` asks for a new network namespace and the engine may not enter ours."""
    from scrun.core.specchecks import asks_new_network_namespace

    return asks_new_network_namespace(linux) and not netns_is_ours()


def holder_pid_if_needed(linux: object, anchor_pid: int, root: str, container_id: str) -> int:
    """The holder's pid when the container's pid needs a network namespace of its own; 0: the
    anchor's pid is the container's."""
    return start_holder(anchor_pid, root, container_id) if own_network_namespace_needed(linux) else 0


def start_holder(anchor_pid: int, root: str, container_id: str) -> int:
    """Fork the holder; its pid once it is in its own network namespace."""
    ready_read, ready_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the holder: nothing here returns
        try:
            os.close(ready_read)
            unshare_network()
            try:
                pidfd: int | None = os.pidfd_open(anchor_pid)  # now: never another process that got its pid
            except ProcessLookupError:
                pidfd = None  # already gone
            kept_pidfd, kept_ready = _detach([pidfd, ready_write])
            src = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
            # Ready comes from the exec'd holder once it has its name: create returns after it.
            os.execv(sys.executable, [sys.executable, "-I", "-S", "-c", _HOLDER_MAIN, src, str(kept_ready),
                                      "-" if kept_pidfd is None else str(kept_pidfd), root, container_id])
        finally:
            os._exit(1)
    os.close(ready_write)
    try:
        ready = os.read(ready_read, 1) == _READY
    finally:
        os.close(ready_read)
    if not ready:
        os.waitpid(pid, 0)
        raise StateError("create: could not make a network namespace for the container's pid (unshare, or the holder's start, "
                         "failed): "
                         "the engine could not enter the login node's; run the engine as root, or with --network host")
    return pid


def unshare_network() -> None:
    unshare = getattr(os, "unshare", None)  # Python 3.12+
    if unshare is not None:
        unshare(os.CLONE_NEWNET)
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(_CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET)")


def _detach(keep: list[int | None]) -> list[int | None]:
    """Leave create's session and its fds but `keep` (as 3, 4, …, kept across exec; their new
    numbers): the engine's stdio pipes must close when the container's do, and a terminal's
    signals are the container's, not ours."""
    os.setsid()
    os.chdir("/")
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    # Through copies above any target first: a target may be one of `keep` (or null) itself.
    copies = [None if fd is None else fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 64) for fd in keep]
    kept: list[int | None] = []
    for target, fd in enumerate(copies, start=3):
        if fd is None:  # nothing kept there: whatever create had on it goes too
            with contextlib.suppress(OSError):
                os.close(target)
        kept.append(None if fd is None else os.dup2(fd, target, inheritable=True))
    os.closerange(3 + len(keep), 1 << 20)
    return kept


# The exec'd holder: argv is [-c, src, ready fd, pidfd or -, root, container id].
_HOLDER_MAIN = ("import sys; sys.path.insert(0, sys.argv[1]); "
                "from scrun.anchor.netnsholder import holder_main; holder_main(sys.argv[2:])")


def holder_main(args: list[str]) -> None:
    """The holder after its exec: named, ready, then wait for the anchor and exit with the
    container's code."""
    ready, pidfd, root, container_id = int(args[0]), (None if args[1] == "-" else int(args[1])), args[2], args[3]
    code = 1
    try:
        with contextlib.suppress(OSError), open("/proc/self/comm", "wb") as comm:
            comm.write(HOLDER_NAME)
        os.write(ready, _READY)
        os.close(ready)
        code = _wait_for_anchor(pidfd, root, container_id)
    finally:
        os._exit(code)


# What an engine may send the pid it knows instead of calling `kill`: passed to the anchor, which
# signals the container (as when its own pid was the container's).
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)


def _wait_for_anchor(pidfd: int | None, root: str, container_id: str) -> int:
    if pidfd is not None:
        def forward(signum: int, _frame: object) -> None:
            with contextlib.suppress(OSError):  # by pidfd: never another process that got its pid
                signal.pidfd_send_signal(pidfd, signum)

        for sig in FORWARDED:
            signal.signal(sig, forward)
        select.select([pidfd], [], [])  # readable when the anchor has exited
        for sig in FORWARDED:
            signal.signal(sig, signal.SIG_IGN)
        os.close(pidfd)
    from scrun.store.live import read_record  # the store's reader: ours, no link followed, bounded

    try:
        code = read_record(root, container_id).get("exit_code")
    except ScrunError:
        code = None  # removed already (create failed), or not a record of ours
    if isinstance(code, int) and not isinstance(code, bool):
        return code & 0xFF
    # The anchor died without an exit code (killed): the engine sees a kill, as it would have.
    os.kill(os.getpid(), signal.SIGKILL)
    return 137
