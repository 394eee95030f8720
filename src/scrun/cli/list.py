"""list: the containers under the root, as runc lists them, with each one's Slurm job."""
from __future__ import annotations

import os

from scrun.cli.output import print_json, print_text
from scrun.errors import ScrunError
from scrun.store.live import check_owned, live_status, read_record, state_document

USAGE = "list [--format table|json] [--quiet]"


def add_arguments(parser) -> None:
    parser.add_argument("-f", "--format", choices=("table", "json"), type=str.lower, default="table",
                        help="table (default) or json")
    parser.add_argument("-q", "--quiet", action="store_true", help="only the container ids")


def rows(root: str) -> list[dict[str, object]]:
    """State documents (plus `job`) of every readable container; a half-made one is skipped, as runc does."""
    check_owned(root, follow=True)
    try:
        names = sorted(os.listdir(root))
    except FileNotFoundError:
        return []
    out = []
    for name in names:
        try:
            doc = read_record(root, name)
        except ScrunError:
            continue
        state = state_document(doc, live_status(doc))
        state["job"] = doc.get("job_id")
        out.append(state)
    return out


def table(states: list[dict[str, object]]) -> str:
    """runc's columns, and the job id: ID PID STATUS BUNDLE CREATED OWNER JOB."""
    header = ("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER", "JOB")
    lines = [header] + [(str(s["id"]), str(s["pid"]), str(s["status"]), str(s["bundle"]), str(s["created"]),
                         str(s["owner"]), "" if s["job"] is None else str(s["job"])) for s in states]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("   ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in lines)


def run(settings, args) -> int:
    states = rows(settings.root)
    if args.quiet:
        print_text("".join(f"{s['id']}\n" for s in states))
    elif args.format == "json":
        print_json(states)
    else:
        print_text(table(states) + "\n")
    return 0
