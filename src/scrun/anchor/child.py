"""The anchor as a child of `create`: forked, not exec'd.

A fresh interpreter (`python -m scrun.anchor`, until 0.1) paid its start-up again and was ready
~50 ms after create had finished its checks, on create's critical path (create waits for the
anchor to spawn salloc). create now forks first thing, before its own imports; the child imports
what the service needs (asyncio, and lupa when there is a scrun.lua) while create imports and
checks. That import (~50 ms) is still the longest part of create: README's profile.

The child keeps fds 0–2 (the container's stdio, as conmon or the shim passed them) and its two
pipes, closes every other fd create had, leaves create's session, and never returns into
create's code: it ends with os._exit, so nothing of create's (atexit, buffered output, finally
blocks) runs twice.
"""
from __future__ import annotations

import gc
import os
import select
import sys

# What `ps`, pgrep and top show for the anchor (the kernel keeps 15 bytes). Its cmdline stays
# create's, as upstream's forked anchor does: it names the container and bundle.
PROCESS_NAME = b"scrun-anchor"
_FD_LIMIT = 1 << 20  # above any RLIMIT_NOFILE in use


class AnchorChild:
    """The forked anchor, seen from create: the part of subprocess.Popen create uses."""

    def __init__(self, pid: int):
        self.pid = pid
        self.returncode: int | None = None

    def _reaped(self, status: int) -> int:
        self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self._reaped(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """The exit code; TimeoutError if it has not ended within `timeout` seconds."""
        if self.returncode is not None:
            return self.returncode
        if timeout is not None:
            pidfd = os.pidfd_open(self.pid)
            try:
                if not select.select([pidfd], [], [], timeout)[0]:
                    raise TimeoutError(f"anchor {self.pid} still running after {timeout}s")
            finally:
                os.close(pidfd)
        return self._reaped(os.waitpid(self.pid, 0)[1])

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        import signal

        self.send_signal(signal.SIGKILL)


class PrestartedAnchor:
    """The anchor forked before create's checks, waiting on the go pipe for its container."""

    def __init__(self, child: AnchorChild, go_fd: int, ready_fd: int):
        self.child = child
        self.go_fd = go_fd
        self.ready_fd = ready_fd
        self.handed_over = False

    @classmethod
    def start(cls, lua_script: str) -> PrestartedAnchor:
        """Fork it; `lua_script` is where the site's scrun.lua would be (imported ahead if so)."""
        _open_standard_fds()  # else a pipe could become the container's stdin or stdout
        go_read, go_write = os.pipe()
        ready_read, ready_write = os.pipe()
        try:
            child = fork_anchor(go_read, ready_write, lua_script)
        finally:
            os.close(go_read)
            os.close(ready_write)
        return cls(child, go_write, ready_read)

    def discard(self) -> None:
        """create failed before the hand-over: the anchor has done nothing; end it now."""
        if self.handed_over:
            return
        for fd in (self.go_fd, self.ready_fd):
            try:
                os.close(fd)
            except OSError:
                pass
        if self.child.poll() is None:
            self.child.kill()
        self.child.wait()

    def go_and_wait(self, root: str, container_id: str) -> int:
        """Hand over the container; relay progress lines until the anchor says created or failed."""
        import json
        import signal

        from scrun.errors import AnchorError
        from scrun.log import get_logger

        log = get_logger()
        self.handed_over = True
        try:
            os.write(self.go_fd, json.dumps({"root": root, "id": container_id}).encode() + b"\n")
        finally:
            os.close(self.go_fd)
        # SIGTERM to create (engine timeout) must still clean up: turn it into an exception.
        previous = signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
        try:
            with os.fdopen(self.ready_fd, "rb") as ready:
                for raw in ready:
                    try:
                        msg = json.loads(raw)
                    except ValueError:
                        continue
                    event = msg.get("event")
                    if event == "progress":
                        log.info("%s", msg.get("msg", ""))
                    elif event == "created":
                        return int(msg.get("pid", self.child.pid))
                    elif event == "error":
                        raise AnchorError(msg.get("msg", "the anchor failed"))
            try:
                code = self.child.wait(timeout=5)
            except TimeoutError:
                code = None
            raise AnchorError(f"the anchor of `{container_id}` exited ({code}) before the container was created; "
                              f"see {os.path.join(root, container_id, 'anchor.log')} with SCRUN_DEBUG=debug")
        finally:
            signal.signal(signal.SIGTERM, previous)


def fork_anchor(go_read: int, ready_write: int, lua_script: str) -> AnchorChild:
    """Fork; the child serves one container (serve) and exits."""
    pid = os.fork()
    if pid:
        return AnchorChild(pid)
    code = 1
    try:
        os.setsid()
        _close_inherited_logging()
        _keep_only_fds(0, 1, 2, go_read, ready_write)
        try:
            with open("/proc/self/comm", "wb") as comm:
                comm.write(PROCESS_NAME)
        except OSError:
            pass
        code = serve(go_read, ready_write, lua_script)
    finally:
        os._exit(code)


def _close_inherited_logging() -> None:
    """create's log handlers, copied by the fork (the full command line sets up logging before
    create forks): close them while their fds are still theirs. Left open, their fd numbers were
    closed by _keep_only_fds and reused — salloc's pipes, the control socket's connections — and
    a debug line written, or a close at setup_logging, then hit those: with `--debug --log F`,
    create saw its anchor exit and delete read a reply with a log line after it."""
    logging = sys.modules.get("logging")
    if logging is None:
        return
    from scrun.log import LOGGER_NAME

    logger = logging.getLogger(LOGGER_NAME)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()


def _open_standard_fds() -> None:
    """An engine may start us with fd 0, 1 or 2 closed: give the container /dev/null there."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)


def _keep_only_fds(*keep: int) -> None:
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
            import logging  # noqa: F401

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
    import logging

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
        # which `delete` would otherwise wait for).
        logging.shutdown()


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
