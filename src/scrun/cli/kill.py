"""kill: send a signal (default SIGTERM) to the container's process."""
from __future__ import annotations

import os

from scrun.core.ids import validate_container_id
from scrun.core.signals import parse_signal
from scrun.core.status import can_kill
from scrun.errors import ContainerNotFoundError, InvalidStatusError
from scrun.store.live import SOCKET_NAME, live_status, read_record

USAGE = "kill [--all] <container-id> [signal]"


def add_arguments(parser) -> None:
    parser.add_argument("-a", "--all", action="store_true", help="signal all processes (every step of the container)")
    parser.add_argument("id", metavar="container-id")
    parser.add_argument("signal", nargs="?", default="SIGTERM", help="name or number (default SIGTERM)")


def run(settings, args) -> int:
    from scrun.anchor.client import AnchorUnreachableError, request
    from scrun.anchor.protocol import refusal_error

    container_id = validate_container_id(args.id)
    sig = parse_signal(args.signal)
    try:
        doc = read_record(settings.root, container_id)
    except ContainerNotFoundError:
        from scrun.cli.orphans import orphan_jobs, signal_orphan

        lost = orphan_jobs(settings, container_id).get(container_id)
        if not lost:
            raise
        signal_orphan(settings, lost, sig)  # its login node restarted: signal the job's steps
        return 0
    if not can_kill(live_status(doc)):
        if args.all:
            return 0  # runc: --all on a stopped container is not an error
        raise InvalidStatusError(f"container `{container_id}` is not running (status stopped)")
    try:
        reply = request(os.path.join(settings.root, container_id, SOCKET_NAME), "kill", signal=sig)
    except AnchorUnreachableError:
        from scrun.cli.teardown import cancel_recorded_job

        cancel_recorded_job(doc)
        raise InvalidStatusError(f"container `{container_id}` is not running (its anchor is gone)") from None
    if not reply.get("ok"):
        raise refusal_error(reply, "kill")
    return 0
