"""pause / resume: stop the container's processes and continue them (runc's freezer verbs).

The processes run on a compute node, inside the job's step: the anchor has Slurm stop them
(SIGSTOP to every process of the step, `scancel --signal=STOP`; the job stays RUNNING to
Slurm) and continue them (SIGCONT). `state` says `paused` in between, as runc's does.
"""
from __future__ import annotations

import os

from scrun.core.ids import validate_container_id
from scrun.core.status import can_pause, can_resume
from scrun.errors import InvalidStatusError
from scrun.store.live import SOCKET_NAME, live_status, read_record

USAGE = "pause|resume <container-id>"


def add_arguments(parser) -> None:
    parser.add_argument("id", metavar="container-id")


def run(settings, args) -> int:
    from scrun.anchor.client import AnchorUnreachableError, request
    from scrun.anchor.protocol import refusal_error

    verb = args.verb  # "pause" or "resume": the anchor's op has the verb's name
    container_id = validate_container_id(args.id)
    doc = read_record(settings.root, container_id)
    status = live_status(doc)
    allowed, wanted = (can_pause, "running") if verb == "pause" else (can_resume, "paused")
    if not allowed(status):
        raise InvalidStatusError(f"cannot {verb} container `{container_id}` in status {status}: it is not {wanted}")
    try:
        reply = request(os.path.join(settings.root, container_id, SOCKET_NAME), verb)
    except AnchorUnreachableError:
        raise InvalidStatusError(f"cannot {verb} container `{container_id}`: its anchor is gone (status stopped)") from None
    if not reply.get("ok"):
        raise refusal_error(reply, verb)
    return 0
