"""The anchor as a child of `create`: forked, not exec'd.

A fresh interpreter (`python -m scrun.anchor`, until 0.1) paid its start-up again and was ready
~50 ms after create had finished its checks, on create's critical path (create waits for the
anchor to spawn salloc). create now forks first thing, before its own imports; the child imports
what the service needs (asyncio, and lupa when there is a scrun.lua) while create imports and
checks. That import (~50 ms) is still the longest part of create: docs/benchmarks.md's profile.

The child keeps fds 0–2 (the container's stdio, as conmon or the shim passed them) and its two
pipes, closes every other fd create had, leaves create's session, and never returns into
create's code: it ends with os._exit, so nothing of create's (atexit, buffered output, finally
blocks) runs twice.
"""
from __future__ import annotations

import os
import select



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

        self.handed_over = True
        try:
            os.write(self.go_fd, json.dumps({"root": root, "id": container_id}).encode() + b"\n")
        finally:
            os.close(self.go_fd)
        return await_created(self.ready_fd, self.child, root, container_id)


def await_created(ready_fd: int, child: AnchorChild, root: str, container_id: str) -> int:
    """Relay the anchor's progress lines on `ready_fd` until it says created (its pid) or failed."""
    import json
    import signal

    from scrun.errors import AnchorError
    from scrun.log import get_logger

    log = get_logger()
    # SIGTERM to create (engine timeout) must still clean up: turn it into an exception.
    previous = signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        with os.fdopen(ready_fd, "rb") as ready:
            for raw in ready:
                try:
                    msg = json.loads(raw)
                except ValueError:
                    continue
                event = msg.get("event")
                if event == "progress":
                    log.info("%s", msg.get("msg", ""))
                elif event == "created":
                    return int(msg.get("pid", child.pid))
                elif event == "error":
                    raise AnchorError(msg.get("msg", "the anchor failed"))
        try:
            code = child.wait(timeout=5)
        except TimeoutError:
            code = None
        raise AnchorError(f"the anchor of `{container_id}` exited ({code}) before the container was created; "
                          f"see {os.path.join(root, container_id, 'anchor.log')} with SCRUN_DEBUG=debug")
    finally:
        signal.signal(signal.SIGTERM, previous)


def start_anchor(slurm_conf: str):
    """The anchor create hands its container to: forked now, or the user's anchor server's."""
    from scrun.anchor.served import ServedAnchor, anchor_server_wanted

    if anchor_server_wanted(slurm_conf):
        return ServedAnchor.start()
    from scrun.config.defaults import site_lua_script

    return PrestartedAnchor.start(site_lua_script(slurm_conf))


def fork_anchor(go_read: int, ready_write: int, lua_script: str) -> AnchorChild:
    """Fork; the child serves one container (serve) and exits."""
    pid = os.fork()
    if pid:
        return AnchorChild(pid)
    code = 1
    try:
        from scrun.anchor.forked import child_life

        code = child_life(go_read, ready_write, lua_script)
    finally:
        os._exit(code)


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
