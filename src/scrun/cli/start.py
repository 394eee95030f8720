"""start: run the created container's process (launches the Slurm step)."""
from __future__ import annotations

import os

from scrun.core.ids import validate_container_id
from scrun.core.status import can_start
from scrun.errors import InvalidStatusError
from scrun.store.live import SOCKET_NAME, live_status, read_record

USAGE = "start <container-id>"


def add_arguments(parser) -> None:
    parser.add_argument("id", metavar="container-id")


def run(settings, args) -> int:
    from scrun.anchor.client import AnchorUnreachableError, request
    from scrun.anchor.protocol import refusal_error

    container_id = validate_container_id(args.id)
    doc = read_record(settings.root, container_id)
    status = live_status(doc)
    if not can_start(status):
        raise InvalidStatusError(f"cannot start container `{container_id}` in status {status}: only a created container can be started")
    try:
        reply = request(os.path.join(settings.root, container_id, SOCKET_NAME), "start")
    except AnchorUnreachableError:
        raise InvalidStatusError(f"cannot start container `{container_id}`: its anchor is gone (status stopped)") from None
    if not reply.get("ok"):
        raise refusal_error(reply, "start")
    return 0
