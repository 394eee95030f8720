"""Pure parsers of Slurm command output."""
from __future__ import annotations

import re
from typing import NamedTuple

# Whole lines only: salloc's errors quote what it was given ("'Pending job allocation 7' can't be
# reached now … for --cluster"), and a job id read from such a line was once cancelled as ours.
_SALLOC_PATTERNS = (
    ("pending", re.compile(r"salloc: Pending job allocation (\d+)")),
    ("granted", re.compile(r"salloc: Granted job allocation (\d+)")),
    ("queued", re.compile(r"salloc: job (\d+) queued and waiting for resources")),
    ("allocated", re.compile(r"salloc: job (\d+) has been allocated resources")),
    ("revoked", re.compile(r"salloc: Job allocation (\d+) has been revoked\.?")),
    ("timelimit", re.compile(r"salloc: Job (\d+) has exceeded its time limit and its allocation has been revoked\.?")),
    # A node stopped answering for SlurmdTimeout: slurmctld ends the job (NODE_FAIL); "revoked" follows.
    ("nodefail", re.compile(r"salloc: error: Node failure on (\S+)")),
)


_NODE_FAILURE = re.compile(r"(?:srun|salloc): error: Node failure on (\S+)")


def parse_node_failure(line: str) -> str | None:
    """The node named by srun's or salloc's whole "error: Node failure on X" line, else None."""
    m = _NODE_FAILURE.fullmatch(line.strip())
    return m.group(1) if m else None


def parse_salloc_line(line: str) -> tuple[str, int | str] | None:
    """One whole stderr line of salloc → (event, job id), ("nodefail", node) or ("error", message), else None."""
    text = line.rstrip("\r\n")
    for event, pattern in _SALLOC_PATTERNS:
        m = pattern.fullmatch(text)
        if m:
            return event, m.group(1) if event == "nodefail" else int(m.group(1))
    m = re.match(r"salloc: (?:error|fatal): (.*)", text)
    if m:
        return "error", m.group(1)
    return None


def parse_slurm_version(text: str) -> tuple[int, int, int]:
    """`slurm-wlm 22.05.8` / `slurm 23.02.7` → (22, 5, 8)."""
    m = re.search(r"(\d+)\.(\d+)\.(\d+)", text)
    if not m:
        raise ValueError(f"no Slurm version in {text!r}")
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def parse_holder_env(data: bytes) -> dict[str, str]:
    """The holder's output up to its ready mark (`env -0` of the job) → the SLURM* variables."""
    return {k: v for k, v in parse_env0(data).items() if k.startswith("SLURM")}


def parse_env0(data: bytes) -> dict[str, str]:
    """`env -0` output → dict; entries without '=' are ignored."""
    out: dict[str, str] = {}
    for entry in data.split(b"\0"):
        if b"=" in entry:
            key, _, value = entry.partition(b"=")
            out[key.decode(errors="replace")] = value.decode(errors="replace")
    return out


def parse_step_list(text: str) -> list[tuple[str, str]]:
    """`squeue --steps --format='%i %j'` → [(step id after the dot, step name)]."""
    steps = []
    for line in text.splitlines():
        parts = line.split(None, 1)
        if not parts or "." not in parts[0]:
            continue
        step = parts[0].split(".", 1)[1]
        steps.append((step, parts[1].strip() if len(parts) > 1 else ""))
    return steps


def parse_step_nodes(text: str) -> list[tuple[str, str, str]]:
    """slurm.argv.build_step_nodes_argv output → [(step id after the dot, step name, nodes)]."""
    steps = []
    for line in text.splitlines():
        fields = line.strip().split("|")
        if len(fields) != 3 or "." not in fields[0]:
            continue
        steps.append((fields[0].split(".", 1)[1], fields[1].strip(), fields[2].strip()))
    return steps


_STEP_ID = re.compile(r"(?:^|\s)StepId=\d+\.(\S+)")
_CONTAINER_ID = re.compile(r"(?:^|\s)ContainerID=(\S*)")


def parse_step_containers(text: str) -> list[tuple[str, str]]:
    """`scontrol --oneliner show step J` → [(step id after the dot, container id or "")]."""
    steps = []
    for line in text.splitlines():
        step = _STEP_ID.search(line)
        if step is None:
            continue
        container = _CONTAINER_ID.search(line)
        steps.append((step.group(1), container.group(1) if container else ""))
    return steps


def parse_job_states(text: str) -> dict[int, str]:
    """`squeue --format="%i %T"` lines → {job id: state}; other lines are skipped."""
    out: dict[int, str] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[0].isdigit():
            out[int(fields[0])] = fields[1]
    return out


class JobInfo(NamedTuple):
    state: str    # PENDING, RUNNING, COMPLETING …
    reason: str   # why it pends (Resources, Priority, Dependency …); "" when it does not
    nodes: str    # the node list once it runs; "" before


def parse_own_jobs(text: str, comment_prefix: str, where: str) -> dict[str, list[tuple[int, JobInfo]]]:
    """squeue with slurm.argv.OWN_JOBS_FORMAT → {container id: [(job id, JobInfo)]} for the jobs
    whose comment is slurm.argv.job_comment(<container id>, where); other lines are skipped."""
    out: dict[str, list[tuple[int, JobInfo]]] = {}
    for line in text.splitlines():
        fields = line.rstrip("\n").split("|", 4)
        if len(fields) != 5 or not fields[0].strip().isdigit() or not fields[4].startswith(comment_prefix):
            continue
        container_id, _, rest = fields[4][len(comment_prefix):].partition(" ")
        their_where = rest.split("; ", 1)[0]  # the provenance follows (slurm.argv.job_comment)
        if container_id and their_where.rstrip() == where:
            out.setdefault(container_id, []).append((int(fields[0]), _job_info(fields[1:4])))
    return out


def _job_info(fields: list[str]) -> JobInfo:
    """state, reason, nodes as squeue prints them: "None" for no reason, nothing for no nodes."""
    state, reason, nodes = (f.strip() for f in fields)
    return JobInfo(state, "" if reason == "None" else reason, nodes)


def parse_job_info(text: str) -> dict[int, JobInfo]:
    """squeue with slurm.argv.JOB_INFO_FORMAT → {job id: JobInfo}; other lines are skipped.

    squeue says "None" for no reason and prints no nodes for a pending job."""
    out: dict[int, JobInfo] = {}
    for line in text.splitlines():
        fields = line.strip().split("|")
        if len(fields) != 4 or not fields[0].isdigit():
            continue
        out[int(fields[0])] = _job_info(fields[1:])
    return out


_BRACKETS = re.compile(r"^([^\[\]]*)\[([^\[\]]+)\]([^\[\]]*)$")


def _expand_ranges(text: str) -> list[str]:
    """Slurm's `0-1,3` (a hostlist's brackets, a GRES's IDX) as its numbers; `01-02` keeps the padding."""
    out = []
    for piece in text.split(","):
        low, _, high = piece.partition("-")
        out += [f"{n:0{len(low)}d}" for n in range(int(low), int(high or low) + 1)]
    return out


def expand_hostlist(text: str) -> list[str]:
    """Slurm's `n[1-3,5],login` as names (one bracket group per name; zero padding kept)."""
    out: list[str] = []
    for part in re.split(r",(?![^\[]*\])", text.strip()):
        match = _BRACKETS.match(part)
        if not match:
            if part:
                out.append(part)
            continue
        head, ranges, tail = match.groups()
        out += [f"{head}{n}{tail}" for n in _expand_ranges(ranges)]
    return out


_NODE_GRES = re.compile(r"^\s*Nodes=(\S+)\s.*?\bGRES=(\S+)", re.MULTILINE)
_GRES_ITEM = re.compile(r"([A-Za-z0-9_]+)(?::[^:(,]+)?:\d+\(IDX:([0-9,\-]+)\)")


def parse_gres_ids(text: str) -> dict[str, dict[str, list[str]]]:
    """`scontrol --details show job` → {node: {gres name: ids}}, from its per-node lines
    (`Nodes=n[1-2] CPU_IDs=0 Mem=100 GRES=gpu:2(IDX:0-1)`; a type, `gpu:tesla:1(IDX:0)`, too)."""
    out: dict[str, dict[str, list[str]]] = {}
    for nodes, gres in _NODE_GRES.findall(text):
        ids: dict[str, list[str]] = {}
        for name, idx in _GRES_ITEM.findall(gres):
            ids.setdefault(name, []).extend(_expand_ranges(idx))
        for node in expand_hostlist(nodes):
            out[node] = ids
    return out


def parse_gres_counts(text: str) -> dict[str, int]:
    """sinfo's `%G` lines → {gres name: the most any one node has} (`gpu:2`, `gpu:tesla:4(S:0)`)."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        for item in line.strip().split(","):
            fields = item.split("(", 1)[0].split(":")
            if len(fields) >= 2 and fields[-1].isdigit():
                out[fields[0]] = max(out.get(fields[0], 0), int(fields[-1]))
    return out
