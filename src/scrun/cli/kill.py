"""kill: send a signal (default SIGTERM) to the container's process."""
from __future__ import annotations

import argparse
import os
import signal

from scrun.config.settings import Settings
from scrun.core.ids import validate_container_id
from scrun.core.signals import parse_signal
from scrun.core.status import Status
from scrun.errors import InvalidStatusError
from scrun.store.records import SOCKET_NAME, container_dir, live_status, load_record

USAGE = "kill [--all] <container-id> [signal]"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-a", "--all", action="store_true", help="signal all processes (every step of the container)")
    parser.add_argument("id", metavar="container-id")
    parser.add_argument("signal", nargs="?", default="SIGTERM", help="name or number (default SIGTERM)")


def run(settings: Settings, args: argparse.Namespace) -> int:
    from scrun.anchor.client import AnchorUnreachableError, request

    container_id = validate_container_id(args.id)
    sig = parse_signal(args.signal)
    record = load_record(settings.root, container_id)
    status = live_status(record)
    if status is Status.STOPPED:
        if args.all:
            return 0  # runc: --all on a stopped container is not an error
        raise InvalidStatusError(f"container `{container_id}` is not running (status stopped)")
    try:
        reply = request(os.path.join(container_dir(settings.root, container_id), SOCKET_NAME), "kill", signal=sig)
    except AnchorUnreachableError:
        from scrun.cli.teardown import cancel_recorded_job

        cancel_recorded_job(record)
        if sig in (signal.SIGKILL, signal.SIGTERM):
            return 0
        raise InvalidStatusError(f"container `{container_id}` is not running (its anchor is gone)") from None
    if not reply.get("ok"):
        raise InvalidStatusError(reply.get("error", "kill failed"))
    return 0
