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
