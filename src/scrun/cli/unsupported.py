"""runc verbs scrun does not offer: a clear error that says why and what to use instead."""
from __future__ import annotations

from scrun.errors import ScrunError

USAGE = "<ps|update|run|checkpoint|restore|events|spec> …"

REASONS = {
    "ps": "the processes run on a compute node: `squeue --steps --jobs <job>` or `sstat`",
    "update": "resources are the job's: change them with `scontrol update job=<job> …`",
    "run": "use create then start (what podman and docker do)",
    "checkpoint": "Slurm jobs have no container checkpointing",
    "restore": "Slurm jobs have no container checkpointing",
    "events": "there are no local cgroup events; use `sstat --jobs <job>`",
    "spec": "write config.json with `crun spec` or `runc spec`",
}


def add_arguments(parser) -> None:
    parser.add_argument("rest", nargs="*", help="ignored")


def run(settings, args) -> int:
    raise ScrunError(f"`{args.verb}` is not supported by scrun: {REASONS[args.verb]}")
