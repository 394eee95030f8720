"""delete: release the container's job and remove its state."""
from __future__ import annotations

import os

from scrun.core.ids import validate_container_id
from scrun.core.status import Status
from scrun.errors import ContainerNotFoundError, InvalidStatusError
from scrun.store.live import SOCKET_NAME, live_status, pid_matches, read_record

USAGE = "delete [--force] <container-id>"
# stage_out may take long (rsync of results); delete waits this long for the anchor to finish.
ANCHOR_EXIT_TIMEOUT = 300.0


def add_arguments(parser) -> None:
    parser.add_argument("-f", "--force", action="store_true", help="also delete a running container (cancels its step)")
    parser.add_argument("id", metavar="container-id")


def run(settings, args) -> int:
    from scrun.cli.teardown import cancel_recorded_job, kill_anchor, remove_state, wait_anchor_gone

    container_id = validate_container_id(args.id)
    try:
        doc = read_record(settings.root, container_id)
    except ContainerNotFoundError:
        if not args.force:
            raise
        remove_state(settings.root, container_id)  # runc: --force succeeds, clears a half-made dir
        return 0
    if live_status(doc) == Status.RUNNING and not args.force:
        raise InvalidStatusError(f"cannot delete container `{container_id}` while it is running: kill it first or use --force")
    if pid_matches(doc.get("anchor_pid", 0), doc.get("anchor_starttime", 0)):
        from scrun.anchor.client import AnchorUnreachableError, request

        try:
            request(os.path.join(settings.root, container_id, SOCKET_NAME), "delete", force=args.force)
        except AnchorUnreachableError:
            pass
        if not wait_anchor_gone(doc, ANCHOR_EXIT_TIMEOUT):
            kill_anchor(doc)
        doc = read_record(settings.root, container_id)
    if doc.get("status") != Status.STOPPED or doc.get("exit_code") is None:
        # The anchor died before it could clean up (crash, kill -9): do its part.
        cancel_recorded_job(doc)
    remove_state(settings.root, container_id)
    return 0
