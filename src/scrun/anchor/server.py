"""The anchor server: one process per user and state root that serves all of that user's
containers (`AnchorServer=yes` in scrun.conf; anchor/served.py says why and is create's side).

Each container is the same `Anchor` object a forked anchor runs (its own salloc, srun, control
socket, record and phases), on this process's one event loop. What a forked anchor did as a
process, the server does per container:
- create's quick path (anchor/quick.py) runs in a worker thread, so that one container waiting
  for its grant does not hold up the others;
- the container's pid is its waiter's: TERM/INT/HUP sent to it come here as lines and stop that
  container; at its end the server writes `exit N` to the waiter, which exits with N;
- a waiter that dies (SIGKILL) stops its container, as the forked anchor's death did.

The server accepts containers only from its own uid (SO_PEERCRED), keeps a lock for its life so
that one runs per root, and exits once it has served nothing for IDLE_EXIT seconds. If it dies,
every waiter reads EOF and exits 137, and each salloc's holder command reads EOF and ends, so
Slurm releases every job: nothing outlives it.
"""
from __future__ import annotations

import contextlib
import os
import sys

IDLE_EXIT = 10.0
LOG_KEEP = 1 << 20
WORKER_THREADS = 512  # made only when none is idle; an idle one holds a few pages of stack


def main(root: str) -> None:
    import fcntl

    from scrun.anchor.served import LOCK_NAME, LOG_NAME, SERVER_NAME

    with open("/proc/self/comm", "wb") as comm:
        comm.write(SERVER_NAME)
    lock_path = os.path.join(root, LOCK_NAME)
    lock = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.fstat(lock).st_ino != os.stat(lock_path).st_ino:
            raise BlockingIOError  # a server that was ending removed it as we opened it
    except (BlockingIOError, FileNotFoundError):
        os._exit(0)  # another server runs (or is starting) for this root
    if os.fstat(2).st_size > LOG_KEEP:  # its log (stdout, stderr) outlives it: one server's worth is kept
        os.ftruncate(2, 0)
    import resource

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # ~10 fds per container
    from scrun.log import LogConfig, setup_logging

    setup_logging(LogConfig(stderr_level=3, file_level=0, prog=f"scrun-anchors[{os.getpid()}]"))  # stderr: the log
    sys.modules.setdefault("ssl", None)  # type: ignore[arg-type]  (as anchor/forked.py)
    import asyncio
    import gc

    if sys.version_info < (3, 12):
        asyncio.set_child_watcher(asyncio.PidfdChildWatcher())
    import scrun.anchor.quick  # noqa: F401
    import scrun.anchor.service  # noqa: F401

    gc.freeze()  # what every container shares: never walked by the collector
    code = asyncio.run(AnchorServer(root).run())
    # Nothing left of it in the state root once idle: the lock (still ours), and the log unless
    # something in it went wrong (then it stays for whoever looks; the next server appends).
    from scrun.log import get_logger

    if get_logger().worst < 30:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(root, LOG_NAME))
    with contextlib.suppress(FileNotFoundError):
        os.unlink(lock_path)
    os._exit(code)


class AnchorServer:
    def __init__(self, root: str):
        self.root = root
        self.guests: set = set()  # the Anchors running here
        self.stopping = False

    async def run(self) -> int:
        import asyncio
        import concurrent.futures
        import signal
        import socket

        from scrun.anchor.served import SOCKET_NAME
        from scrun.log import get_logger

        log = get_logger()
        loop = asyncio.get_running_loop()
        # Each container's blocking work (its quick create, scrun.lua's stage_in and stage_out,
        # which may copy a rootfs for minutes) runs in a thread: the default pool's 6 threads on
        # two cores would queue the hundredth container behind five long stage-ins.
        loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(max_workers=WORKER_THREADS))
        path = os.path.join(self.root, SOCKET_NAME)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # a dead server's: we hold the lock
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        umask = os.umask(0o077)
        try:
            listener.bind(path)
        finally:
            os.umask(umask)
        listener.listen(128)
        listener.setblocking(False)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.add_signal_handler(sig, self.stop_all, sig)
        log.info("serving containers of uid %d in %s", os.getuid(), self.root)
        tasks: set = set()
        idle_since = loop.time()
        try:
            while not self.stopping:
                try:
                    conn, _ = await asyncio.wait_for(loop.sock_accept(listener), 1.0)
                except TimeoutError:
                    if tasks:
                        idle_since = loop.time()
                    elif loop.time() - idle_since >= IDLE_EXIT:
                        break
                    continue
                task = asyncio.ensure_future(self._serve_one(conn))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        finally:
            # New creates start a new server from now on; a connection already queued gets no
            # "adopted" and its create starts one too.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            listener.close()
        if tasks:
            await asyncio.wait(set(tasks))
        log.info("no container left: exiting")
        return 0

    def stop_all(self, sig: int) -> None:
        from scrun.core.exitcode import exit_code_for_signal
        from scrun.core.signals import signal_name

        self.stopping = True
        for anchor in list(self.guests):
            anchor.request_stop(exit_code_for_signal(sig), f"anchor server received {signal_name(sig)}")

    async def _serve_one(self, conn) -> None:
        import asyncio

        from scrun.log import get_logger

        try:
            adopted = await asyncio.to_thread(_receive, conn, self.root)
        except Exception as exc:  # noqa: BLE001  (a bad client must not end the server)
            get_logger().error("refused a container: %s", exc)
            conn.close()
            return
        conn.close()
        await self._run_guest(*adopted)

    async def _run_guest(self, msg: dict, fds: list[int]) -> None:
        import asyncio

        from scrun.anchor.service import Anchor
        from scrun.log import get_logger

        log = get_logger()
        stdio, ready_fd, waiter_fd = tuple(fds[:3]), fds[3], fds[4]
        try:
            container, early, quick = await asyncio.to_thread(_create_quickly, self.root, msg, stdio, ready_fd)
        except Exception as exc:  # noqa: BLE001
            log.error("%s: the container could not be set up: %r", msg.get("id"), exc)
            _tell(ready_fd, f"anchor server failed: {type(exc).__name__}")
            for fd in (*stdio, ready_fd):
                with contextlib.suppress(OSError):
                    os.close(fd)
            _exit_waiter(waiter_fd, 1)
            return
        anchor = Anchor.take_over(container, early_holder=early, quick=quick)
        self.guests.add(anchor)
        watch = asyncio.ensure_future(_watch_waiter(anchor, waiter_fd))
        code = 1
        try:
            code = await anchor.run()
        except Exception as exc:  # noqa: BLE001  (one container's bug must not end the others)
            log.error("%s: anchor failed: %r", msg.get("id"), exc, exc_info=True)
            if anchor.ready_fd is not None:
                anchor.notify_create("error", msg=f"anchor failed: {type(exc).__name__}")
        finally:
            self.guests.discard(anchor)
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch
            _exit_waiter(waiter_fd, code)


def _receive(conn, root: str) -> tuple[dict, list[int]]:
    """create's hand-over on `conn`: its message and fds (stdin, stdout, stderr, ready, waiter)."""
    import json
    import socket

    from scrun.anchor.protocol import peer_uid

    conn.setblocking(True)
    conn.settimeout(10)
    uid = peer_uid(conn)
    msg, fds, _flags, _addr = socket.recv_fds(conn, 65536, 5)
    if uid != os.getuid() or len(fds) != 5:
        for fd in fds:
            os.close(fd)
        raise PermissionError(f"uid {uid} with {len(fds)} fds")
    doc = json.loads(msg)
    if not isinstance(doc, dict) or not isinstance(doc.get("waiter_pid"), int) or doc.get("root") != root:
        for fd in fds:
            os.close(fd)
        raise ValueError(f"bad hand-over {msg[:200]!r}")
    conn.sendall(b"adopted\n")
    return doc, fds


def _create_quickly(root: str, msg: dict, stdio: tuple[int, int, int], ready_fd: int):
    """What a forked anchor's main thread does before its loop (anchor/forked.py), for one guest."""
    from scrun.anchor.container import Container
    from scrun.anchor.holder import abandon, base_env, spawn_early
    from scrun.anchor.quick import create_quickly
    from scrun.anchor.request import AnchorRequest
    from scrun.core.ids import validate_container_id

    request = AnchorRequest.load(root, validate_container_id(msg["id"]))
    early = spawn_early(request)
    try:
        container = Container(request, ready_fd, stdio)
        container.served = True
        container.waiter_pid = msg["waiter_pid"]
        quick = create_quickly(container, early) if early is not None else None
    except BaseException:
        if early is not None and early.returncode is None:
            abandon(early, base_env(request))
        raise
    return container, early, quick


async def _watch_waiter(anchor, waiter_fd: int) -> None:
    """Signals the waiter got stop the container; so does the waiter's death."""
    import asyncio
    import socket

    from scrun.core.exitcode import exit_code_for_signal
    from scrun.core.signals import signal_name

    loop = asyncio.get_running_loop()
    sock = socket.socket(fileno=os.dup(waiter_fd))
    sock.setblocking(False)
    buffer = b""
    try:
        while True:
            chunk = await loop.sock_recv(sock, 256)
            if not chunk:
                anchor.request_stop(137, "the container's process (its waiter) was killed")
                return
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                word, _, number = line.decode(errors="replace").partition(" ")
                if word == "signal" and number.isdigit():
                    sig = int(number)
                    anchor.request_stop(exit_code_for_signal(sig), f"anchor received {signal_name(sig)}")
    finally:
        sock.close()


def _exit_waiter(waiter_fd: int, code: int) -> None:
    try:
        os.write(waiter_fd, f"exit {code & 0xFF}\n".encode())
    except OSError:
        pass  # gone already
    finally:
        os.close(waiter_fd)


def _tell(ready_fd: int, msg: str) -> None:
    import json

    with contextlib.suppress(OSError):
        os.write(ready_fd, json.dumps({"event": "error", "msg": msg}).encode() + b"\n")
