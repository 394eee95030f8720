"""Entry point of the anchor process: `python -m scrun.anchor --root R --id ID --ready-fd N`.

Started by `create` in a new session. Its fds 0/1/2 are the container's stdio (conmon's pipes);
they are moved out of the way at once so that nothing the anchor itself prints can mix into the
container's output: 0 becomes /dev/null, 1 and 2 the anchor's log file in the state directory.
"""
from __future__ import annotations

import argparse
import asyncio
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scrun-anchor")
    parser.add_argument("--root", required=True)
    parser.add_argument("--id", required=True)
    parser.add_argument("--ready-fd", type=int)
    args = parser.parse_args(argv)

    from scrun.anchor.request import AnchorRequest
    from scrun.anchor.service import Anchor
    from scrun.log import LogConfig, get_logger, py_level, setup_logging
    from scrun.store.records import container_dir

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
    sys.exit(main())
