"""Pure builders of salloc/srun/scancel command lines. Each flag and value is its own element."""
from __future__ import annotations

from collections.abc import Sequence

# The allocation holder salloc runs once the job is granted: print the job environment
# (NUL-separated, values may hold newlines), a marker, then block until scrun closes its stdin.
# Closing stdin — or the anchor dying, which closes it too — ends the holder, and salloc then
# relinquishes the allocation: the job ends COMPLETED and never outlives its container.
HOLDER_READY = "__SCRUN_ALLOCATION_READY__"
HOLDER_SCRIPT = f"env -0; printf '\\0{HOLDER_READY}\\0'; exec cat >/dev/null"
# What ends the holder's output: its job environment (env -0) comes before it.
HOLDER_READY_MARK = b"\0" + HOLDER_READY.encode() + b"\0"

# srun learned --container-id in Slurm 23.02.
CONTAINER_ID_MIN_VERSION = (23, 2)


# The job's comment names its container and where its state lives (`scrun:<id> <host>:<root>`):
# what finds a job whose login node lost its anchor and state (a reboot). The job name is the
# engine's container name, and a user may set it; ids have no space (core.ids).
JOB_COMMENT_PREFIX = "scrun:"


def job_comment(container_id: str, where: str, provenance: str = "") -> str:
    """`scrun:<id> <host>:<root>`, then `; <provenance>` (core.provenance.describe): what ran."""
    return f"{JOB_COMMENT_PREFIX}{container_id} {where}" + (f"; {provenance}" if provenance else "")


def build_salloc_argv(salloc: str, job_args: Sequence[str], job_name: str, comment: str | None = None) -> list[str]:
    """salloc that holds the allocation for the life of the container."""
    argv = [salloc, *job_args]
    if not any(a.startswith("--job-name") for a in job_args):
        argv.append(f"--job-name={job_name}")
    if comment is not None and not any(a.startswith("--comment") for a in job_args):
        argv.append(f"--comment={comment}")
    return [*argv, "--", "/bin/sh", "-c", HOLDER_SCRIPT]


# Fields of build_own_jobs_argv: the comment last (it may hold "|").
OWN_JOBS_FORMAT = "%i|%T|%r|%N|%k"


def build_own_jobs_argv(squeue: str, uid: int) -> list[str]:
    """Every job of `uid` squeue knows, with its comment (parse.parse_own_jobs)."""
    return [squeue, "--noheader", f"--user={uid}", f"--format={OWN_JOBS_FORMAT}"]


def build_srun_argv(
    srun: str,
    srun_args: Sequence[str],
    *,
    job_id: int,
    step_name: str,
    container_id: str,
    bundle: str,
    step_args: Sequence[str],
    pty: bool,
    args: Sequence[str],
    slurm_version: tuple[int, ...],
    verbose: bool = False,
    guard: str | None = None,
    guard_prolog: str | None = None,
) -> list[str]:
    """The container step (upstream scrun's line, minus its /bin/sh wrapper: we resolve srun ourselves).
    verbose: srun says when the tasks have started (core.stderrfilter drops its other lines).
    guard: the node guard's directory (core.nodeguard): its prolog is the step's --task-prolog
    (it runs the caller's, see split_task_prolog) and, unless the caller chose one, its --chdir."""
    argv = [srun, *srun_args, f"--jobid={job_id}", f"--job-name={step_name}", "--no-kill"]
    if verbose:
        argv.append("--verbose")
    if finds_step_by_container_id(slurm_version):
        argv.append(f"--container-id={container_id}")
    argv += [f"--container={bundle}", "--export=NONE", *step_args]
    if guard is not None and guard_prolog is not None:
        argv.append(f"--task-prolog={guard_prolog}")
        if not any(a.startswith("--chdir=") for a in step_args):
            argv.append(f"--chdir={guard}")
    if pty:
        argv.append("--pty")
    return [*argv, "--", *args]


def split_task_prolog(step_args: Sequence[str]) -> tuple[tuple[str, ...], str | None]:
    """step_args without the caller's --task-prolog (SCRUN_TASK_PROLOG), and that program: srun
    takes one, and the node guard runs it after its own check."""
    rest = tuple(a for a in step_args if not a.startswith("--task-prolog="))
    given = [a.split("=", 1)[1] for a in step_args if a.startswith("--task-prolog=")]
    return rest, (given[-1] if given else None)


def build_remote_command_argv(srun: str, srun_args: Sequence[str], job_id: int, script: str) -> list[str]:
    """Lua slurm.remote_command: run SCRIPT once per node of the job."""
    return [srun, *srun_args, f"--jobid={job_id}", "--no-kill", "--job-name=lua-command", "--overlap",
            "--", "/bin/sh", "-c", script]


def build_scancel_argv(scancel: str, job_id: int, *, step: str | None = None, signal: int | None = None) -> list[str]:
    """scancel for the whole job, or (with `step`) one step; `signal` sends it instead of cancelling."""
    target = f"{job_id}.{step}" if step is not None else str(job_id)
    argv = [scancel]
    if signal is not None:
        argv.append(f"--signal={signal}")
    return [*argv, target]


def build_step_list_argv(squeue: str, job_id: int) -> list[str]:
    """Steps of a job with their names (Slurm < 23.02: the step is known by its name)."""
    return [squeue, "--noheader", "--steps", f"--jobs={job_id}", "--format=%i %j"]


def build_step_nodes_argv(squeue: str, job_id: int) -> list[str]:
    """Steps of a job with their names and nodes: `<job>.<step>|<name>|<nodes>` (exec finds its node)."""
    return [squeue, "--noheader", "--steps", f"--jobs={job_id}", "--format=%i|%j|%N"]


def build_exec_srun_argv(srun: str, srun_args: Sequence[str], *, job_id: int, node: str, name: str, pty: bool,
                         command: str) -> list[str]:
    """An overlapping one-task step on the container's node that runs `command` (core.nodeexec)."""
    argv = [srun, *srun_args, f"--jobid={job_id}", "--overlap", f"--nodelist={node}", "--nodes=1", "--ntasks=1",
            f"--job-name={name}", "--no-kill", "--quiet"]
    if pty:
        argv.append("--pty")
    return [*argv, "--", "/bin/sh", "-c", command]


def build_job_state_argv(squeue: str, job_ids: Sequence[int]) -> list[str]:
    """`<id> <STATE>` per line for the given jobs (those squeue still knows)."""
    return [squeue, "--noheader", f"--jobs={','.join(str(j) for j in job_ids)}", "--format=%i %T"]


# Fields of build_job_info_argv, in order; "|" cannot occur in any of them.
JOB_INFO_FORMAT = "%i|%T|%r|%N"


def build_job_info_argv(squeue: str, job_ids: Sequence[int], *, ended_too: bool = False) -> list[str]:
    """Per job squeue still knows: `<id>|<STATE>|<reason>|<nodes>` (parse.parse_job_info).
    ended_too: also jobs that ended (kept for MinJobAge), which `--jobs` alone leaves out."""
    return [squeue, "--noheader", f"--jobs={','.join(str(j) for j in job_ids)}", f"--format={JOB_INFO_FORMAT}",
            *(["--states=all"] if ended_too else [])]


def build_step_show_argv(scontrol: str, job_id: int) -> list[str]:
    """Steps of a job, one line each, with ContainerID= (Slurm >= 23.02)."""
    return [scontrol, "--oneliner", "show", "step", str(job_id)]


def finds_step_by_container_id(slurm_version: tuple[int, ...]) -> bool:
    return tuple(slurm_version[:2]) >= CONTAINER_ID_MIN_VERSION


def build_job_details_argv(scontrol: str, job_id: int) -> list[str]:
    """The job with a line per node: which CPUs and GRES ids it holds (parse.parse_gres_ids)."""
    return [scontrol, "--details", "show", "job", str(job_id)]


def build_gres_counts_argv(sinfo: str, partition: str | None) -> list[str]:
    """Each node's GRES, e.g. `gpu:2` (parse.parse_gres_counts)."""
    return [sinfo, "--noheader", "--Node", "--format=%G", *([f"--partition={partition}"] if partition else [])]
