"""Entry point of the anchor process: `python -m scrun.anchor --root R --id ID --ready-fd N`.

Started by `create` in a new session. Its fds 0/1/2 are the container's stdio (conmon's pipes);
they are moved out of the way at once so that nothing the anchor itself prints can mix into the
container's output: 0 becomes /dev/null, 1 and 2 the anchor's log file in the state directory.
"""
from __future__ import annotations

import logging
import os
import sys


def _move_stdio(log_path: str) -> tuple[int, int, int]:
    saved = tuple(os.dup(fd) for fd in (0, 1, 2))
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    return saved  # type: ignore[return-value]


def _wait_for_go(go_fd: int) -> tuple[str, str] | None:
    """create's hand-over: {"root", "id"} on the pipe, or EOF if create gave up (then do nothing)."""
    import json

    with os.fdopen(go_fd, "rb") as go:
        line = go.readline()
    if not line:
        return None
    msg = json.loads(line)
    return msg["root"], msg["id"]


class _Args:
    """`--go-fd N --ready-fd N`, written by create only (internal: argparse would cost ~4 ms
    on create's critical path)."""

    def __init__(self, argv: list[str]):
        if len(argv) != 4:
            raise SystemExit("usage: python -m scrun.anchor --go-fd N --ready-fd N (started by `scrun create`)")
        opts = dict(zip(argv[::2], argv[1::2], strict=True))
        if set(opts) != {"--go-fd", "--ready-fd"}:
            raise SystemExit("usage: python -m scrun.anchor --go-fd N --ready-fd N (started by `scrun create`)")
        self.go_fd = int(opts["--go-fd"])
        self.ready_fd = int(opts["--ready-fd"])
        self.root = self.id = ""


def main(argv: list[str] | None = None) -> int:
    args = _Args(sys.argv[1:] if argv is None else argv)

    # Import the heavy part while create still checks its input (the reason for the go pipe).
    # asyncio imports ssl for TLS transports the anchor never uses: skip that (~6 ms).
    sys.modules.setdefault("ssl", None)  # type: ignore[arg-type]
    import asyncio

    from scrun.anchor.request import AnchorRequest
    from scrun.anchor.service import Anchor
    from scrun.log import LogConfig, py_level, setup_logging
    from scrun.store.records import container_dir

    handed = _wait_for_go(args.go_fd)
    if handed is None:
        return 0
    args.root, args.id = handed
    state_dir = container_dir(args.root, args.id)
    stdio = _move_stdio(os.path.join(state_dir, "anchor.log"))
    request = AnchorRequest.load(args.root, args.id)
    logger = setup_logging(LogConfig(stderr_level=max(request.file_level, 4), file_level=request.file_level,
                                     syslog_level=request.syslog_level, log_file=request.log_file,
                                     log_format=request.log_format, prog=f"scrun[{args.id[:12]}]"))
    try:
        anchor = Anchor(request, args.ready_fd, stdio)
        return asyncio.run(anchor.run())
    except Exception as exc:  # the anchor must never die silently: say why in its log
        logger.log(py_level(1), "anchor failed: %r", exc, exc_info=True)
        if args.ready_fd is not None:
            try:
                os.write(args.ready_fd, (f'{{"event": "error", "msg": "anchor failed: {type(exc).__name__}"}}\n').encode())
            except OSError:
                pass
        return 1
    finally:
        logging.shutdown()


if __name__ == "__main__":
    code = main()
    logging.shutdown()
    # Everything is released and recorded: skip interpreter teardown (asyncio, module GC),
    # which `delete` would otherwise wait for. Nothing is buffered on stdout (it is the log).
    os._exit(code)
