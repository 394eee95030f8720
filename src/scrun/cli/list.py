"""list: the containers under the root, as runc lists them, with each one's Slurm job."""
from __future__ import annotations

import os

from scrun.cli.output import print_json, print_text
from scrun.errors import ScrunError
from scrun.store.live import check_state_root, live_status, read_record, state_document

USAGE = "list [--format table|json] [--quiet]"


def add_arguments(parser) -> None:
    parser.add_argument("-f", "--format", choices=("table", "json"), type=str.lower, default="table",
                        help="table (default) or json")
    parser.add_argument("-q", "--quiet", action="store_true", help="only the container ids")


def job_info(job_ids: list[int]) -> dict:
    """Slurm's word on each job (state, pending reason, nodes), in one squeue call; {} when Slurm
    cannot say (then the anchors' last word, from the records, stands)."""
    from scrun.slurm.argv import build_job_info_argv
    from scrun.slurm.parse import parse_job_info
    from scrun.slurm.runner import run

    if not job_ids:
        return {}
    try:
        proc = run(build_job_info_argv("squeue", job_ids), timeout=30, check=False)
    except ScrunError:
        return {}
    return parse_job_info(proc.stdout.decode(errors="replace"))


def rows(settings) -> list[dict[str, object]]:
    """State documents (plus `job`, `job_state`, `nodes`, `reason`) of every readable container; a
    half-made one is skipped, as runc does. A job squeue no longer knows has ended: its last
    state is the one its anchor recorded. Then the containers this login node lost (orphan_rows)."""
    root = settings.root
    check_state_root(root)
    try:
        names = sorted(os.listdir(root))
    except FileNotFoundError:
        names = []  # emptied by a restart, say: its containers' jobs may live on (orphan_rows)
    records = []
    for name in names:
        try:
            records.append(read_record(root, name))
        except ScrunError:
            continue
    slurm = job_info([doc["job_id"] for doc in records if isinstance(doc.get("job_id"), int)])
    out = []
    for doc in records:
        state = state_document(doc, live_status(doc))
        job = doc.get("job_id")
        info = slurm.get(job) if isinstance(job, int) else None
        state["image"] = doc.get("image", "")
        state["job"] = job
        state["job_state"] = info.state if info else doc.get("job_state", "")
        state["nodes"] = info.nodes if info else doc.get("nodes", "")
        state["reason"] = info.reason if info else doc.get("pending_reason", "")
        out.append(state)
    return out + orphan_rows(settings)


def orphan_rows(settings) -> list[dict[str, object]]:
    """Containers this login node lost (cli.orphans), status `orphaned`, with their jobs."""
    from scrun.cli.orphans import orphan_jobs

    out = []
    for cid, jobs in sorted(orphan_jobs(settings).items()):
        job, info = jobs[0]
        out.append({"ociVersion": "", "id": cid, "pid": 0, "status": "orphaned", "bundle": "", "created": "",
                    "owner": "", "image": "", "job": job, "job_state": info.state, "nodes": info.nodes,
                    "reason": "no state on this login node: scrun delete cancels its job"})
    return out


COLUMNS = ("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER", "IMAGE", "JOB", "JOB-STATE", "NODES", "REASON")


def table(states: list[dict[str, object]]) -> str:
    """runc's columns, the image (- when the engine's records did not say), then the job's:
    id, state, nodes, why it pends."""
    lines = [COLUMNS] + [(str(s["id"]), str(s["pid"]), str(s["status"]), str(s["bundle"]), str(s["created"]),
                          str(s["owner"]), str(s["image"] or "-"), "" if s["job"] is None else str(s["job"]), str(s["job_state"]),
                          str(s["nodes"]), str(s["reason"]))
                         for s in states]
    widths = [max(len(line[i]) for line in lines) for i in range(len(COLUMNS))]
    return "\n".join("   ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in lines)


def run(settings, args) -> int:
    states = rows(settings)
    if args.quiet:
        print_text("".join(f"{s['id']}\n" for s in states))
    elif args.format == "json":
        print_json(states)
    else:
        print_text(table(states) + "\n")
    return 0
