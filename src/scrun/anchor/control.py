"""The anchor's control socket: who may talk to it (SO_PEERCRED), and what each request does.

A mixin of Anchor (anchor/service.py): it uses the anchor's record, request, stop and step
methods. One JSON line in, one out (anchor/protocol.py); a refusal names its kind.
"""
from __future__ import annotations

import asyncio
import os
import signal
import sys
from typing import Any

from scrun.anchor.protocol import MAX_MESSAGE, ProtocolError, decode_request, encode, kind_of, peer_uid, refusal
from scrun.core.exitcode import exit_code_for_signal
from scrun.core.signals import IGNORED_BY_DEFAULT, signal_name
from scrun.core.phase import STATUS_OF, Event, Phase
from scrun.core.status import can_kill, can_pause, can_resume, can_start
from scrun.errors import ScrunError

# How long `kill` waits for a launching step's tasks to start before it signals anyway (a step
# that waits for resources can take longer; then the signal goes as it always did).
STEP_START_WAIT = 10.0


class ControlServer:
    """ping, start, kill, pause, resume and delete over the container's socket; only root and the
    owner may ask."""

    async def _serve(self) -> asyncio.AbstractServer:
        sock = self.quick.sock if self.quick is not None and self.quick.sock is not None else self.bind_socket()
        # 3.13's server stats the socket's bound name to unlink it at close; a long path was
        # bound through /proc/self/fd/N/… (protocol.reachable_path), and fd N is closed by now
        # (NotADirectoryError once N was reused: docker's state paths). run() unlinks it itself.
        cleanup = {"cleanup_socket": False} if sys.version_info >= (3, 13) else {}
        return await asyncio.start_unix_server(self._handle_client, sock=sock, limit=MAX_MESSAGE, **cleanup)

    async def _handle_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            sock = writer.get_extra_info("socket")
            uid = peer_uid(sock)
            if uid not in (0, os.getuid()):
                reply: dict[str, Any] = refusal("permission", f"uid {uid} may not control this container")
            else:
                line = b""
                try:
                    try:
                        line = await reader.readline()
                    except ValueError:  # asyncio's LimitOverrunError: longer than MAX_MESSAGE
                        raise ProtocolError(f"request longer than {MAX_MESSAGE} bytes") from None
                    req = decode_request(line)
                    reply = await self._dispatch(req)
                except ProtocolError as exc:
                    reply = refusal("protocol", f"bad request: {exc}")
                except ScrunError as exc:
                    reply = refusal(kind_of(exc), str(exc))
                except (ValueError, TypeError, KeyError) as exc:  # a malformed request field
                    reply = refusal("protocol", f"bad request: {exc!r}")
                except Exception as exc:  # a bug: answer and log it, keep serving
                    self.log.error("internal error serving %r: %r", line[:200], exc, exc_info=True)
                    reply = refusal("internal", f"internal error: {exc!r}")
            writer.write(encode(reply))
            await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def _dispatch(self, req: dict[str, Any]) -> dict[str, Any]:
        op = req["op"]
        status = self.record.status
        if op == "ping":
            return {"ok": True, "status": status}
        if op == "start":
            # The same predicates as the CLI's (core/status.py), on the phase's status.
            if not can_start(STATUS_OF[self.phase]) or self.stopping.is_set():
                return refusal("status", f"cannot start container `{self.req.id}` in status {status}: only a created container can be started")
            if not self.req.args:
                # Refused (runtime-spec), and stopped: nothing can ever run in it, and a created
                # container would hold its allocation until deleted.
                reason = f"container `{self.req.id}` has no process in {self.req.config_file}: nothing to start (set process.args)"
                self.request_stop(127, reason)
                return refusal("status", reason)
            self.advance(Event.LAUNCH)  # before the first await: a second start must not launch again
            try:
                await self._launch_step()
            except (OSError, ScrunError) as exc:
                # The container cannot run: it is stopped, with the reason, not left "created".
                reason = f"cannot launch the step: {exc}"
                self.log.error("%s", reason)
                self.request_stop(127 if isinstance(exc, FileNotFoundError) else 1, reason)
                return refusal("slurm", reason)
            if self.req.terminal:
                # The engine resizes the console as soon as start returns (docker) or while it
                # runs (podman). The anchor holds each resize until the node has connected to
                # srun's pty port (anchor/terminal.py); start returning once the tasks have
                # started means a resize made after it reaches the container without that wait.
                await self._wait_tasks_started(STEP_START_WAIT)
            return {"ok": True}
        if op == "kill":
            sig = int(req.get("signal", signal.SIGTERM))
            return await self._kill(sig)
        if op in ("pause", "resume"):
            return await self._pause_or_resume(op)
        if op == "delete":
            self.request_stop(exit_code_for_signal(signal.SIGKILL), "deleted")
            return {"ok": True}
        return refusal("protocol", f"unsupported op {op}")

    async def _pause_or_resume(self, op: str) -> dict[str, Any]:
        """SIGSTOP or SIGCONT to every process of the step, through Slurm (cli/pause.py)."""
        pausing = op == "pause"
        allowed = can_pause if pausing else can_resume
        if not allowed(STATUS_OF[self.phase]) or self.stopping.is_set():
            return refusal("status", f"cannot {op} container `{self.req.id}`: it is {self.record.status}")
        if pausing:
            await self._tasks_running(STEP_START_WAIT)  # a step still launching would miss it
        if self.phase != (Phase.RUNNING if pausing else Phase.PAUSED) or self.stopping.is_set():
            return refusal("status", f"cannot {op} container `{self.req.id}`: it is {self.record.status}")
        if not await self._signal_step(signal.SIGSTOP if pausing else signal.SIGCONT, srun_fallback=False):
            return refusal("slurm", f"cannot {op} container `{self.req.id}`: Slurm has no step of it to signal")
        self.advance(Event.PAUSE if pausing else Event.RESUME)
        return {"ok": True}

    async def _kill(self, sig: int) -> dict[str, Any]:
        if not can_kill(STATUS_OF[self.phase]) or self.stopping.is_set() and self.srun is None:
            return refusal("status", f"container `{self.req.id}` is not running")
        if self.srun is None:
            # Pending or created: no process exists yet. A signal whose default is to be
            # ignored does nothing; any other ends the container as if it had killed it.
            if sig in IGNORED_BY_DEFAULT or sig == 0:
                return {"ok": True}
            self.request_stop(exit_code_for_signal(sig), f"killed by {signal_name(sig)} before start")
            return {"ok": True}
        if sig != signal.SIGKILL:
            # A signal for a step still launching is lost, or kills the process before it has
            # set its handlers (OCI's killsig: sh's trap): deliver it once the process runs.
            # SIGKILL needs no handler, and stopping a launching step has its own path.
            await self._tasks_running(STEP_START_WAIT)
        self.signalled = sig
        await self._signal_step(sig)
        if sig == signal.SIGKILL:
            self._resend_task = asyncio.ensure_future(self._resend_kill())
        return {"ok": True}

