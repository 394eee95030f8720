"""state: print the OCI state of a container as JSON."""
from __future__ import annotations

from scrun.cli.output import print_json
from scrun.core.ids import validate_container_id
from scrun.store.live import live_status, read_record, state_document

USAGE = "state <container-id>"


def add_arguments(parser) -> None:
    parser.add_argument("id", metavar="container-id")


def run(settings, args) -> int:
    doc = read_record(settings.root, validate_container_id(args.id))
    print_json(state_document(doc, live_status(doc)))
    return 0
