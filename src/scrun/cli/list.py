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


def job_states(job_ids: list[int]) -> dict[int, str]:
    """Slurm's state of each job (PENDING, RUNNING …), in one squeue call; {} when Slurm cannot say."""
    from scrun.slurm.argv import build_job_state_argv
    from scrun.slurm.parse import parse_job_states
    from scrun.slurm.runner import run

    if not job_ids:
        return {}
    try:
        proc = run(build_job_state_argv("squeue", job_ids), timeout=30, check=False)
    except ScrunError:
        return {}
    return parse_job_states(proc.stdout.decode(errors="replace"))


def rows(root: str) -> list[dict[str, object]]:
    """State documents (plus `job` and `job_state`) of every readable container; a half-made one is
    skipped, as runc does. A job squeue no longer knows has ended: its state is empty."""
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
    slurm = job_states([s["job"] for s in out if isinstance(s["job"], int)])
    for s in out:
        s["job_state"] = slurm.get(s["job"], "") if isinstance(s["job"], int) else ""
    return out


def table(states: list[dict[str, object]]) -> str:
    """runc's columns, then the job: ID PID STATUS BUNDLE CREATED OWNER JOB JOB-STATE."""
    header = ("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER", "JOB", "JOB-STATE")
    lines = [header] + [(str(s["id"]), str(s["pid"]), str(s["status"]), str(s["bundle"]), str(s["created"]),
                         str(s["owner"]), "" if s["job"] is None else str(s["job"]), str(s["job_state"]))
                        for s in states]
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
