"""create's side of the anchor server (`AnchorServer=yes` in scrun.conf): a container served by
its user's one anchor process (anchor/server.py) instead of an anchor of its own.

A forked anchor holds 11–13 MiB of the login node per running container, and a bare CPython
that only sleeps still holds ~3.3 MiB (bench/scale.py): with Slurm's own ~4.5 MiB (srun,
salloc) no per-container Python process fits a 6 MiB budget. So one server per user (and state
root) holds all of that user's containers, and the pid the engine watches is a **waiter**: a
`/bin/sh` of ~0.1 MiB, create's child like the forked anchor was, which exits with the
container's exit code when the server writes it, forwards TERM/INT/HUP to the server (a stop,
as the forked anchor's own handlers did), and exits 137 if the server is gone.

Containers with a terminal keep an anchor of their own (a process has one controlling terminal).
"""
from __future__ import annotations

import os
import sys

from scrun.anchor.child import AnchorChild, await_created

SOCKET_NAME = "@anchor-server"        # in the state root; never a container id ('@')
LOCK_NAME = "@anchor-server.lock"     # held by the running server for its whole life
LOG_NAME = "@anchor-server.log"
WAITER_NAME = "scrun-waiter"         # its argv[0]: what ps and bench/scale.py find it by
SERVER_NAME = b"scrun-anchors"        # the server's comm
ADOPT_TIMEOUT = 10.0                  # for a server to start and take the container
# The waiter: `exit N` from the server ends it with N; a trapped signal is told to the server
# (read then returns 1 with `got` set: not an EOF); EOF means the server is gone.
WAITER = ("for s in 1 2 15; do trap \"got=1; printf 'signal $s\\n' >&0\" $s; done\n"
          "while :; do got=; read -r line; st=$?; case \"$st:$got:$line\" in "
          "0:*:exit\\ *) exit \"${line#exit }\";; 1::*) exit 137;; esac; done")


def anchor_server_wanted(slurm_conf: str) -> bool:
    """scrun.conf's AnchorServer=yes, read before create's imports (load_site_staging checks
    the file properly later, and refuses a bad value)."""
    try:
        with open(os.path.join(os.path.dirname(slurm_conf), "scrun.conf"), encoding="utf-8") as fh:
            text = fh.read()
    except (OSError, ValueError):
        return False
    for line in text.splitlines():
        key, sep, value = line.split("#", 1)[0].partition("=")
        if sep and key.strip().lower() == "anchorserver":
            return value.strip().lower() == "yes"
    return False


class ServedAnchor:
    """What create hands its container to: the PrestartedAnchor interface, served by the server.
    Its waiter starts once create knows the config (start_waiter): it may need a network
    namespace of its own."""

    def __init__(self) -> None:
        self.child: AnchorChild | None = None  # the waiter: create's child, the container's pid
        self.waiter_end = -1  # the server's end of the waiter's socket, sent at the hand-over
        self.handed_over = False

    @classmethod
    def start(cls) -> ServedAnchor:
        return cls()

    def start_waiter(self, own_network_namespace: bool = False) -> int:
        """Fork the waiter; with `own_network_namespace`, in a new one (an engine that may not
        enter the login node's enters the pid's: what anchor/netnsholder.py's holder is for a
        forked anchor, without a process more). Its pid."""
        import socket

        from scrun.anchor.forked import keep_only_fds
        from scrun.errors import StateError

        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        failed_read, failed_write = os.pipe()  # close-on-exec: EOF once the shell runs
        pid = os.fork()
        if pid == 0:  # the waiter: no fd of create's but its socket (an engine's pipes must reach EOF)
            try:
                os.close(failed_read)
                os.setsid()
                if own_network_namespace:
                    from scrun.anchor.netnsholder import unshare_network

                    unshare_network()
                os.dup2(theirs.fileno(), 0)
                null = os.open(os.devnull, os.O_WRONLY)
                os.dup2(null, 1)
                os.dup2(null, 2)
                keep_only_fds(0, 1, 2, failed_write)
                os.execve("/bin/sh", [WAITER_NAME, "-c", WAITER], {"PATH": "/usr/bin:/bin"})
            except BaseException as exc:  # noqa: BLE001
                os.write(failed_write, str(exc).encode()[:500] or b"?")
            finally:
                os._exit(127)
        theirs.close()
        os.close(failed_write)
        with os.fdopen(failed_read, "rb") as failed:
            why = failed.read()
        self.child = AnchorChild(pid)
        if why:
            self.child.wait()
            ours.close()
            raise StateError(f"create: could not start the container's waiter ({why.decode(errors='replace')}): "
                             "run the engine as root, or with --network host")
        self.waiter_end = ours.detach()
        return pid

    def discard(self) -> None:
        if self.handed_over:
            return
        self._close_end()
        if self.child is not None:
            self.child.kill()
            self.child.wait()

    def _close_end(self) -> None:
        if self.waiter_end >= 0:
            os.close(self.waiter_end)
            self.waiter_end = -1

    def go_and_wait(self, root: str, container_id: str) -> int:
        """Hand the container (and its stdio) to the server, starting one if none runs; then
        relay progress until it says created or failed. The waiter's pid is the container's."""
        assert self.child is not None, "start_waiter first"
        ready_read, ready_write = os.pipe()
        try:
            sock = _connect_or_start(root)
            try:
                _hand_over(sock, root, container_id, self.child.pid, [0, 1, 2, ready_write, self.waiter_end])
            finally:
                sock.close()
        except BaseException:
            os.close(ready_read)
            raise
        finally:
            os.close(ready_write)
        self.handed_over = True  # the server holds the container now: it alone ends it
        self._close_end()
        return await_created(ready_read, self.child, root, container_id)


def _hand_over(sock, root: str, container_id: str, waiter_pid: int, fds: list[int]) -> None:
    import json
    import socket

    from scrun.errors import AnchorError

    msg = json.dumps({"root": root, "id": container_id, "waiter_pid": waiter_pid}).encode()
    socket.send_fds(sock, [msg], fds)
    sock.settimeout(ADOPT_TIMEOUT)
    try:
        reply = sock.recv(64)
    except OSError:
        reply = b""
    if reply != b"adopted\n":
        raise AnchorError(f"the anchor server in {root} did not take `{container_id}` ({reply!r}); "
                          f"see {os.path.join(root, LOG_NAME)}")


def _connect_or_start(root: str):
    """A connection to the user's server (its peer must be us), starting one when none answers."""
    import socket
    import time

    from scrun.anchor.protocol import peer_uid
    from scrun.errors import AnchorError

    path = os.path.join(root, SOCKET_NAME)
    deadline = time.monotonic() + ADOPT_TIMEOUT
    next_start = 0.0
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(path)
            uid = peer_uid(sock)
            if uid != os.getuid():
                raise AnchorError(f"{path}: served by uid {uid}, not by you: remove it")
            return sock
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
        now = time.monotonic()
        if now > deadline:
            raise AnchorError(f"no anchor server answered on {path} within {ADOPT_TIMEOUT:.0f}s; see "
                              f"{os.path.join(root, LOG_NAME)}")
        if now >= next_start:  # none, or one that is ending: start one (the lock keeps it to one)
            _start_server(root)
            next_start = now + 1.0
        time.sleep(0.02)


def _start_server(root: str) -> None:
    """A fresh interpreter running anchor/server.py, in a session of its own, not our child."""
    pid = os.fork()
    if pid:
        os.waitpid(pid, 0)
        return
    code = 1
    try:
        os.setsid()
        if os.fork():
            code = 0
        else:
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            log = os.open(os.path.join(root, LOG_NAME), os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
            os.dup2(log, 1)
            os.dup2(log, 2)
            os.closerange(3, 1 << 20)
            main = "import sys; sys.path[:0] = sys.argv[1].split('\\n'); from scrun.anchor.server import main; main(sys.argv[2])"
            # Not the first caller's environment: the server serves every later one too.
            env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "USER", "LOGNAME", "XDG_RUNTIME_DIR", "LANG")}
            os.execve(sys.executable, [sys.executable, "-I", "-S", "-c", main, "\n".join(sys.path), root], env)
    finally:
        os._exit(code)
