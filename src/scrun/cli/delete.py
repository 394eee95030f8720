"""delete: release the container's job and remove its state."""
from __future__ import annotations

import argparse
import os

from scrun.config.settings import Settings
from scrun.core.ids import validate_container_id
from scrun.core.status import Status
from scrun.errors import InvalidStatusError
from scrun.store.records import SOCKET_NAME, anchor_alive, container_dir, live_status, load_record

USAGE = "delete [--force] <container-id>"
# stage_out may take long (rsync of results); delete waits this long for the anchor to finish.
ANCHOR_EXIT_TIMEOUT = 300.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-f", "--force", action="store_true", help="also delete a running container (cancels its step)")
    parser.add_argument("id", metavar="container-id")


def run(settings: Settings, args: argparse.Namespace) -> int:
    from scrun.cli.teardown import cancel_recorded_job, kill_anchor, remove_state, wait_anchor_gone

    from scrun.errors import ContainerNotFoundError

    container_id = validate_container_id(args.id)
    try:
        record = load_record(settings.root, container_id)
    except ContainerNotFoundError:
        if not args.force:
            raise
        remove_state(settings.root, container_id)  # runc: --force succeeds, clears a half-made dir
        return 0
    status = live_status(record)
    if status is Status.RUNNING and not args.force:
        raise InvalidStatusError(f"cannot delete container `{container_id}` while it is running: kill it first or use --force")
    if anchor_alive(record):
        from scrun.anchor.client import AnchorUnreachableError, request

        try:
            request(os.path.join(container_dir(settings.root, container_id), SOCKET_NAME), "delete", force=args.force)
        except AnchorUnreachableError:
            pass
        if not wait_anchor_gone(record, ANCHOR_EXIT_TIMEOUT):
            kill_anchor(record)
        record = load_record(settings.root, container_id)
    if record.status is not Status.STOPPED or record.exit_code is None:
        # The anchor died before it could clean up (crash, kill -9): do its part.
        cancel_recorded_job(record)
    remove_state(settings.root, container_id)
    return 0
