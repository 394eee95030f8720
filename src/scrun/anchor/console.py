"""The console of a container with `process.terminal`: the pty we make, the master we hand the
engine, and the engine's resizes, which reach srun through the anchor (anchor/terminal.py says
why). A mixin of Anchor (anchor/service.py).
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import signal

# When the engine resized the console since launch, srun is told at these times after "tasks
# started" (the node has connected to srun's pty port by then). Repeats: crun, still setting
# up, drops a SIGWINCH that comes before its signal loop runs, and on 24.11+ it sized the
# container's own pty from consoleSize (seen: a resize made as start returned never arrived).
# A repeat with an unchanged size changes nothing.
RESIZE_REPEATS = (0.0, 0.1, 1.0, 3.0)
# podman 5 leaves consoleSize out of config.json and sizes the console only as it calls start.
# A step launched before that got a 0x0 terminal whenever crun missed every later SIGWINCH (seen
# on 26.05 under load: `stty size` said "standard input"). So a launch waits, at most this long,
# for the engine to size the console, and the node's config then carries the size.
FIRST_SIZE_WAIT = 1.0


class Console:
    def _setup_terminal(self) -> None:
        """Early, as runc does: conmon waits for the master before create returns."""
        from scrun.anchor.terminal import open_pty, send_master, take_as_controlling_terminal

        assert self.req.console_socket is not None
        master, slave, name = open_pty(self.req.console_size)
        try:
            send_master(self.req.console_socket, master, name)
        finally:
            os.close(master)  # the engine owns the master now
        self.pty_slave = slave
        self.resizes_via_anchor = take_as_controlling_terminal(slave)
        if self.resizes_via_anchor:
            loop = asyncio.get_running_loop()
            loop.add_signal_handler(signal.SIGWINCH, self._engine_resized)
            for sig in (signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU):
                # A terminal's job control must never stop the anchor. Handlers, not SIG_IGN:
                # an ignored signal would stay ignored in every program it starts.
                loop.add_signal_handler(sig, lambda: None)
        self.log.debug("terminal %s sent to %s; resizes reach srun through %s", name, self.req.console_socket,
                       "the anchor" if self.resizes_via_anchor else "srun's own terminal")
        # With a terminal the container's stdio is the pty, never create's: keeping create's
        # stdout would hold containerd's shim, which reads it to EOF before it calls start.
        self.close_stdio()

    async def _console_size(self) -> tuple[int, int] | None:
        """The console's size for the step's launch; None if the engine has not sized it within
        FIRST_SIZE_WAIT (a later resize still reaches srun, as before)."""
        from scrun.anchor.terminal import get_size

        loop = asyncio.get_running_loop()
        deadline = loop.time() + FIRST_SIZE_WAIT
        while True:
            rows, cols = get_size(self.pty_slave)
            if rows and cols:
                return rows, cols
            if loop.time() >= deadline:
                self.log.debug("the engine did not size the console within %ss: launching without a size", FIRST_SIZE_WAIT)
                return None
            await asyncio.sleep(0.02)

    def _resizes_may_pass(self, loop: asyncio.AbstractEventLoop) -> None:
        for delay in RESIZE_REPEATS:
            loop.call_later(delay, self._forward_resize)

    def _engine_resized(self) -> None:
        """SIGWINCH: the engine resized the console. srun hears of it only once the node has
        connected to its pty port (anchor/terminal.py says why), and again (RESIZE_REPEATS)."""
        self.resized_since_launch = True
        if self.tasks_started.is_set():
            self._forward_resize()

    def _forward_resize(self) -> None:
        if self.resized_since_launch and self.srun is not None and self.srun.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.srun.send_signal(signal.SIGWINCH)  # srun reads the new size from the slave
