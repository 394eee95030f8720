"""state: print the OCI state of a container as JSON."""
from __future__ import annotations

import argparse

from scrun.cli.output import print_json
from scrun.config.settings import Settings
from scrun.core.ids import validate_container_id
from scrun.core.status import Status
from scrun.store.records import live_status, load_record

USAGE = "state <container-id>"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", metavar="container-id")


def state_document(record, status: Status) -> dict:
    """runtime-spec state (ociVersion, id, status, pid, bundle, annotations) plus runc's created/owner."""
    return {
        "ociVersion": record.oci_version,
        "id": record.id,
        "status": status.value,
        "pid": record.anchor_pid if status is not Status.STOPPED else 0,
        "bundle": record.bundle,
        "annotations": record.annotations,
        "created": record.created,
        "owner": record.owner,
    }


def run(settings: Settings, args: argparse.Namespace) -> int:
    record = load_record(settings.root, validate_container_id(args.id))
    print_json(state_document(record, live_status(record)))
    return 0
