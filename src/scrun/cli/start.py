"""start: run the created container's process (launches the Slurm step)."""
from __future__ import annotations

import argparse
import os

from scrun.config.settings import Settings
from scrun.core.ids import validate_container_id
from scrun.core.status import Status
from scrun.errors import InvalidStatusError
from scrun.store.records import SOCKET_NAME, container_dir, live_status, load_record

USAGE = "start <container-id>"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", metavar="container-id")


def run(settings: Settings, args: argparse.Namespace) -> int:
    from scrun.anchor.client import AnchorUnreachableError, request

    record = load_record(settings.root, validate_container_id(args.id))
    status = live_status(record)
    if not status.can_start():
        raise InvalidStatusError(f"cannot start container `{record.id}` in status {status.value}: only a created container can be started")
    try:
        reply = request(os.path.join(container_dir(settings.root, record.id), SOCKET_NAME), "start")
    except AnchorUnreachableError:
        raise InvalidStatusError(f"cannot start container `{record.id}`: its anchor is gone (status stopped)") from None
    if not reply.get("ok"):
        raise InvalidStatusError(reply.get("error", "start failed"))
    return 0
