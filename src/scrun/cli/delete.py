"""delete: release the container's job and remove its state."""
from __future__ import annotations

import os

from scrun.core.ids import validate_container_id
from scrun.core.status import Status, can_delete
from scrun.errors import ContainerNotFoundError, InvalidStatusError
from scrun.store.live import SOCKET_NAME, anchor_running, live_status, read_record

USAGE = "delete [--force] <container-id>"
# stage_out may take long (rsync of results); delete waits this long for the anchor to finish.
ANCHOR_EXIT_TIMEOUT = 300.0


def add_arguments(parser) -> None:
    parser.add_argument("-f", "--force", action="store_true", help="also delete a running container (cancels its step)")
    parser.add_argument("id", metavar="container-id")


def run(settings, args) -> int:
    from scrun.cli.teardown import cancel_recorded_job, kill_anchor, remove_stage_copy, remove_state, wait_anchor_gone

    container_id = validate_container_id(args.id)
    try:
        doc = read_record(settings.root, container_id)
    except ContainerNotFoundError:
        from scrun.cli.orphans import orphan_jobs, remove_orphan_stage_copy, signal_orphan

        lost = orphan_jobs(settings, container_id).get(container_id)
        if lost:  # its login node restarted: the job is all that is left of it
            signal_orphan(settings, lost, None)
            remove_orphan_stage_copy(settings, container_id)
            return 0
        if not args.force:
            raise
        remove_state(settings.root, container_id)  # runc: --force succeeds, clears a half-made dir
        return 0
    status = live_status(doc)
    if not args.force and not can_delete(status):
        raise InvalidStatusError(f"cannot delete container `{container_id}` while it is {status}: kill it first or use --force")
    if anchor_running(doc):
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
        remove_stage_copy(doc)
    remove_state(settings.root, container_id)
    return 0
