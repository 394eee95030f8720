"""The forked anchor's own life, after create's fork (anchor/child.py): leave create's session and
fds behind, import the service in a thread while waiting for the container, then run it.
Everything here runs in the child only, and ends in anchor/child.py's os._exit.
"""
from __future__ import annotations

import gc
import os
import sys

# What `ps`, pgrep and top show for the anchor (the kernel keeps 15 bytes). Its cmdline stays
# create's, as upstream's forked anchor does: it names the container and bundle.
PROCESS_NAME = b"scrun-anchor"
_FD_LIMIT = 1 << 20  # above any RLIMIT_NOFILE in use


def child_life(go_read: int, ready_write: int, lua_script: str) -> int:
    os.setsid()
    _close_inherited_logging()
    keep_only_fds(0, 1, 2, go_read, ready_write)
    try:
        with open("/proc/self/comm", "wb") as comm:
            comm.write(PROCESS_NAME)
    except OSError:
        pass
    return serve(go_read, ready_write, lua_script)


def _close_inherited_logging() -> None:
    """create's log handlers, copied by the fork (the full command line sets up logging before
    create forks): close them while their fds are still theirs. Left open, their fd numbers were
    closed by keep_only_fds and reused — salloc's pipes, the control socket's connections — and
    a debug line written, or a close at setup_logging, then hit those: with `--debug --log F`,
    create saw its anchor exit and delete read a reply with a log line after it."""
    log = sys.modules.get("scrun.log")
    if log is not None:
        log.get_logger().close()


def keep_only_fds(*keep: int) -> None:
    low = 0
    for fd in sorted(set(keep)):
        if fd > low:  # never an empty range: 3.11 turns closerange(n, n) into close_range(n, ~0)
            os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, _FD_LIMIT)  # close_range(2): one syscall


def serve(go_fd: int, ready_fd: int, lua_script: str) -> int:
    """The child's life: import the service, wait for the container, run it; the exit code."""
    # The heavy imports run in a thread from now on, while create still checks its input (why
    # there is a go pipe); the main thread waits for the container and starts its salloc the
    # moment it arrives (holder.spawn_early), so the job request does not wait for asyncio.
    importer = _ServiceImport(lua_script)
    importer.start()
    try:
        handed = _wait_for_go(go_fd)
    except BaseException:
        importer.join()
        raise
    if handed is None:
        importer.join()
        return 0  # create gave up before the hand-over: nothing to do
    root, container_id = handed
    import signal

    from scrun.anchor.holder import abandon, base_env, spawn_early
    from scrun.anchor.request import AnchorRequest
    from scrun.store.records import container_dir

    stdio = _move_stdio(os.path.join(container_dir(root, container_id), "anchor.log"))
    request = AnchorRequest.load(root, container_id)
    early = spawn_early(request)
    try:
        return _run_service(request, ready_fd, stdio, early, importer)
    finally:
        if early is not None and early.returncode is None:
            # The anchor failed before its loop could end salloc. create's SIGTERM (it undoes a
            # failed create) must not cut this short: a job would be left behind.
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                signal.signal(sig, signal.SIG_IGN)
            abandon(early, base_env(request))


class _ServiceImport:
    """The anchor's imports, in a thread (the main thread meanwhile waits on the go pipe)."""

    def __init__(self, lua_script: str):
        import threading

        self.lua_script = lua_script
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="import", daemon=True)

    def start(self) -> None:
        # The main thread must get the GIL back at once when create's go arrives, and again
        # for each step of the quick create: 0.1 ms, not the default 5 ms, while both threads
        # run (restored once the import is done). What the bench measured; 0.5 ms vs 0.1 ms
        # was not told apart on this VM.
        sys.setswitchinterval(0.0001)
        self.thread.start()

    def _run(self) -> None:
        try:
            # First what the main thread needs when the go arrives: holder.spawn_early, then
            # the quick create (anchor.quick), scrun.lua's host among it; asyncio last.
            import scrun.anchor.holder
            import scrun.anchor.request
            import scrun.slurm.runner

            scrun.slurm.runner.slurm_command([])  # its prefix: who we are, once (cached)
            import scrun.anchor.container
            import scrun.anchor.quick  # noqa: F401

            if os.path.exists(self.lua_script):
                import scrun.lua.host  # noqa: F401  (lupa: ~10 ms, not after the hand-over)

            # asyncio imports ssl for TLS transports the anchor never uses: skip that (~6 ms).
            sys.modules.setdefault("ssl", None)  # type: ignore[arg-type]
            import asyncio  # noqa: F401

            import scrun.anchor.service  # noqa: F401
        except BaseException as exc:  # re-raised in the main thread by join()
            self.error = exc

    def join(self) -> None:
        self.thread.join()
        sys.setswitchinterval(0.005)
        # The CLI runs without the cycle collector (cli.entry); the anchor lives long, so it
        # collects again, but never walks what it imported (permanent until it exits).
        gc.freeze()
        gc.enable()
        if self.error is not None:
            raise self.error


def _run_service(request, ready_fd: int, stdio: tuple[int, int, int], early, importer: _ServiceImport) -> int:
    """Create the container (quickly, if salloc started early), then run it on asyncio."""
    from scrun.log import LogConfig, py_level, setup_logging

    logger = setup_logging(LogConfig(stderr_level=max(request.file_level, 4), file_level=request.file_level,
                                     syslog_level=request.syslog_level, log_file=request.log_file,
                                     log_format=request.log_format, prog=f"scrun[{request.id[:12]}]"))
    container = None
    try:
        from scrun.anchor.container import Container

        container = Container(request, ready_fd, stdio)
        quick = None
        if early is not None:
            from scrun.anchor.quick import create_quickly

            quick = create_quickly(container, early)
        importer.join()
        import asyncio

        from scrun.anchor.service import Anchor

        if sys.version_info < (3, 12):
            # Children (salloc, srun) watched through pidfds, as 3.12+ does by default: 3.11's
            # default starts a thread per child, on create's and start's critical path.
            asyncio.set_child_watcher(asyncio.PidfdChildWatcher())
        return asyncio.run(Anchor.take_over(container, early_holder=early, quick=quick).run())
    except Exception as exc:  # the anchor must never die silently: say why in its log
        logger.log(py_level(1), "anchor failed: %r", exc, exc_info=True)
        fd = container.ready_fd if container is not None else ready_fd  # None: create was answered
        if fd is not None:
            try:
                os.write(fd, (f'{{"event": "error", "msg": "anchor failed: {type(exc).__name__}"}}\n').encode())
            except OSError:
                pass
        return 1
    finally:
        # Everything is released and recorded; os._exit follows (no interpreter teardown,
        # which `delete` would otherwise wait for). The log's sinks write each line through.
        logger.close()


def _wait_for_go(go_fd: int) -> tuple[str, str] | None:
    """create's hand-over: {"root", "id"} on the pipe, or EOF if create gave up."""
    import json

    with os.fdopen(go_fd, "rb") as go:
        line = go.readline()
    if not line:
        return None
    msg = json.loads(line)
    return msg["root"], msg["id"]


def _move_stdio(log_path: str) -> tuple[int, int, int]:
    """Keep the container's stdio for the step, and point 0/1/2 away from it: nothing the
    anchor itself prints may mix into the container's output. 0 → /dev/null, 1 and 2 → the
    anchor's log in the state directory."""
    saved = tuple(os.dup(fd) for fd in (0, 1, 2))
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    return saved  # type: ignore[return-value]
