"""The SCRUN_* job options: one declarative table, their validation, and their precedence.

Every variable in the man page's "Job Input Environment Variables" list has a row. A row says
which Slurm option it sets, whether that option belongs to the allocation (salloc, the job) or
to the container's step (srun), and how its value is checked. Upstream scrun fails on ~15 of
these because salloc has no such option; we give those to the step instead.
"""
from __future__ import annotations

import re
from collections import namedtuple
from collections.abc import Callable, Mapping

from scrun.core.timefmt import INVALID, time_str2mins
from scrun.errors import InvalidInputError

JOB = "job"
STEP = "step"


class _Bad(ValueError):
    """A value failed its check; the text says what a good value looks like."""


def _text(value: str) -> str:
    if not value.strip():
        raise _Bad("must not be empty")
    return value.strip()


def _positive_int(value: str) -> str:
    if not re.fullmatch(r"\s*[0-9]+\s*", value) or int(value) < 1:
        raise _Bad("not a positive whole number (e.g. 2)")
    return value.strip()


def _count_or_zero(value: str) -> str:
    if not re.fullmatch(r"\s*[0-9]+\s*", value):
        raise _Bad("not a whole number (e.g. 0)")
    return value.strip()


def _node_range(value: str) -> str:
    if not re.fullmatch(r"[0-9]+(-[0-9]+)?", value.strip()) or value.strip().startswith("0"):
        raise _Bad("not a node count (e.g. 2 or 2-4)")
    return value.strip()


def _time(value: str) -> str:
    if time_str2mins(value) == INVALID:
        raise _Bad("not a valid time (e.g. 10, 1:30:00, 2-00:00:00)")
    return value.strip()


def _memory(value: str) -> str:
    if not re.fullmatch(r"[0-9]+[KMGTkmgt]?", value.strip()):
        raise _Bad("not a memory size (e.g. 100, 512M, 2G)")
    return value.strip()


def _switches(value: str) -> str:
    if not re.fullmatch(r"[0-9]+", value.strip()):
        raise _Bad("not a switch count (e.g. 1)")
    return value.strip()


def _slurmd_debug(value: str) -> str:
    names = {"quiet", "fatal", "error", "info", "verbose", "debug", "debug2", "debug3", "debug4", "debug5"}
    if value.strip().lower() not in names and not value.strip().isdigit():
        raise _Bad("not a debug level (e.g. verbose, debug2 or 3)")
    return value.strip()


def _choice(*choices: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        v = value.strip()
        if v.lower() not in choices:
            raise _Bad(f"must be one of {', '.join(choices)}")
        return v.lower()

    return check


def flag_is_set(value: str) -> bool:
    """Slurm's "set by env" rule: empty, yes or a non-zero number sets; anything else resets."""
    v = value.strip().lower()
    if v in ("", "yes", "y", "true"):
        return True
    return v.isdigit() and int(v) != 0


class OptionRow(namedtuple("OptionRow", "env option target check note caller_only", defaults=("", ""))):
    """env: the SCRUN_* name; option: salloc's/srun's long option ("--time"); target: JOB
    (salloc) or STEP (srun); check: validates a value (None: a flag without value);
    caller_only: why a container may not set it (empty: it may), see refuse_caller_only."""

    __slots__ = ()


def _row(env: str, option: str, target: str = JOB, check: Callable[[str], str] | None = _text, note: str = "",
         caller_only: str = "") -> OptionRow:
    return OptionRow(env, option, target, check, note, caller_only)


# What a container (its process.env — an image's ENV as well as `-e` — and its org.slurm.*
# annotations, which podman copies from images too) may not choose: anything that names a program
# or a path on a host, or a Slurm behaviour that runs outside the container, or who pays and with
# which privileges. Only the caller's environment (or the site's slurm.conf) sets these: an image
# pulled from a registry must not run `srun --prolog=/usr/bin/env` on the login node as root.
_RUNS_ON_LOGIN = "srun runs that program on the login node, outside the container"
_RUNS_ON_NODE = "slurmstepd runs that program on the compute node, outside the container"
_HOST_PATH = "a directory on the compute node, outside the container"
_OUTSIDE = "a Slurm behaviour that acts outside the container"
_POLICY = "who is charged and with which privileges: the caller's decision, not the image's"
_WHERE = "which cluster scrun talks to: the caller's decision, not the image's"


OPTION_TABLE: tuple[OptionRow, ...] = (
    _row("SCRUN_ACCOUNT", "--account", caller_only=_POLICY),
    _row("SCRUN_ACCTG_FREQ", "--acctg-freq", caller_only=_OUTSIDE),
    _row("SCRUN_BURST_BUFFER", "--bb", caller_only=_OUTSIDE),
    _row("SCRUN_CLUSTER_CONSTRAINT", "--cluster-constraint", caller_only=_WHERE),
    _row("SCRUN_CLUSTERS", "--clusters", caller_only=_WHERE),
    _row("SCRUN_CONSTRAINT", "--constraint"),
    _row("SCRUN_CORE_SPEC", "--core-spec", check=_count_or_zero, note="the man page calls it SLURM_CORE_SPEC"),
    _row("SCRUN_CPU_BIND", "--cpu-bind", STEP),
    _row("SCRUN_CPU_FREQ_REQ", "--cpu-freq", caller_only=_OUTSIDE),
    _row("SCRUN_CPUS_PER_GPU", "--cpus-per-gpu", check=_positive_int),
    _row("SCRUN_CPUS_PER_TASK", "--cpus-per-task", check=_positive_int),
    _row("SCRUN_DELAY_BOOT", "--delay-boot", check=_time),
    _row("SCRUN_DEPENDENCY", "--dependency"),
    _row("SCRUN_DISTRIBUTION", "--distribution"),
    _row("SCRUN_EPILOG", "--epilog", STEP, caller_only=_RUNS_ON_LOGIN),
    _row("SCRUN_EXACT", "--exact", STEP, check=None),
    _row("SCRUN_EXCLUSIVE", "--exclusive", check=None),
    _row("SCRUN_GPU_BIND", "--gpu-bind"),
    _row("SCRUN_GPU_FREQ", "--gpu-freq", caller_only=_OUTSIDE),
    _row("SCRUN_GPUS", "--gpus"),
    _row("SCRUN_GPUS_PER_NODE", "--gpus-per-node"),
    _row("SCRUN_GPUS_PER_SOCKET", "--gpus-per-socket"),
    _row("SCRUN_GPUS_PER_TASK", "--gpus-per-task"),
    _row("SCRUN_GRES_FLAGS", "--gres-flags"),
    _row("SCRUN_GRES", "--gres"),
    _row("SCRUN_HINT", "--hint", note="the man page says SLURM_HIST"),
    _row("SCRUN_JOB_NAME", "--job-name"),
    _row("SCRUN_JOB_NODELIST", "--nodelist"),
    _row("SCRUN_JOB_NUM_NODES", "--nodes", check=_node_range),
    _row("SCRUN_LABELIO", "--label", STEP, check=None),
    _row("SCRUN_MEM_BIND", "--mem-bind"),
    _row("SCRUN_MEM_PER_CPU", "--mem-per-cpu", check=_memory),
    _row("SCRUN_MEM_PER_GPU", "--mem-per-gpu", check=_memory),
    _row("SCRUN_MEM_PER_NODE", "--mem", check=_memory),
    _row("SCRUN_MPI_TYPE", "--mpi", STEP),
    _row("SCRUN_NCORES_PER_SOCKET", "--cores-per-socket", check=_positive_int),
    _row("SCRUN_NETWORK", "--network", caller_only=_OUTSIDE),
    _row("SCRUN_NSOCKETS_PER_NODE", "--sockets-per-node", check=_positive_int),
    _row("SCRUN_NTASKS", "--ntasks", check=_positive_int),
    _row("SCRUN_NTASKS_PER_CORE", "--ntasks-per-core", check=_positive_int),
    _row("SCRUN_NTASKS_PER_GPU", "--ntasks-per-gpu", check=_positive_int),
    _row("SCRUN_NTASKS_PER_NODE", "--ntasks-per-node", check=_positive_int),
    _row("SCRUN_NTASKS_PER_TRES", "--ntasks-per-tres", STEP, check=_positive_int),
    _row("SCRUN_OPEN_MODE", "--open-mode", STEP, check=_choice("append", "truncate")),
    _row("SCRUN_OVERCOMMIT", "--overcommit", check=None),
    _row("SCRUN_OVERLAP", "--overlap", STEP, check=None),
    _row("SCRUN_PARTITION", "--partition"),
    _row("SCRUN_POWER", "--power", caller_only=_OUTSIDE),
    _row("SCRUN_PROFILE", "--profile", caller_only=_OUTSIDE),
    _row("SCRUN_PROLOG", "--prolog", STEP, caller_only=_RUNS_ON_LOGIN),
    _row("SCRUN_QOS", "--qos", caller_only=_POLICY),
    _row("SCRUN_REMOTE_CWD", "--chdir", STEP, note="the container's step starts there; process.cwd still applies inside", caller_only=_HOST_PATH),
    _row("SCRUN_REQ_SWITCH", "--switches", check=_switches),
    _row("SCRUN_RESERVATION", "--reservation", caller_only=_POLICY),
    _row("SCRUN_SIGNAL", "--signal"),
    _row("SCRUN_SLURMD_DEBUG", "--slurmd-debug", STEP, check=_slurmd_debug, caller_only=_OUTSIDE),
    _row("SCRUN_SPREAD_JOB", "--spread-job", check=None),
    _row("SCRUN_TASK_EPILOG", "--task-epilog", STEP, caller_only=_RUNS_ON_NODE),
    _row("SCRUN_TASK_PROLOG", "--task-prolog", STEP, caller_only=_RUNS_ON_NODE),
    _row("SCRUN_THREAD_SPEC", "--thread-spec", check=_positive_int),
    _row("SCRUN_THREADS_PER_CORE", "--threads-per-core", check=_positive_int),
    _row("SCRUN_THREADS", "--threads", STEP, check=_positive_int),
    _row("SCRUN_TIMELIMIT", "--time", check=_time),
    _row("SCRUN_TRES_BIND", "--tres-bind"),
    _row("SCRUN_TRES_PER_TASK", "--tres-per-task"),
    _row("SCRUN_UNBUFFEREDIO", "--unbuffered", STEP, check=None),
    _row("SCRUN_USE_MIN_NODES", "--use-min-nodes", check=None),
    _row("SCRUN_WAIT4SWITCH", "--switches", check=_time, note="max wait for --switches, as count@time"),
    _row("SCRUN_WCKEY", "--wckey", caller_only=_POLICY),
    _row("SCRUN_WORKING_DIR", "--chdir", STEP, note="same as SCRUN_REMOTE_CWD and wins over it", caller_only=_HOST_PATH),
)

OPTIONS_BY_ENV: Mapping[str, OptionRow] = {row.env: row for row in OPTION_TABLE}


class JobOptions(namedtuple("JobOptions", "job_args step_args job_name")):
    """Validated options: salloc arguments for the job and srun arguments for the step."""

    __slots__ = ()


CONTAINER_ENV = "the container's environment (config.json process.env: an image's ENV, or -e)"


def refuse_caller_only(values: Mapping[str, str], source: str) -> None:
    """A container asked for an option only the caller may set: one line, which option, and where."""
    for name in sorted(values):
        row = OPTIONS_BY_ENV.get(name)
        if row is not None and row.caller_only:
            raise InvalidInputError(f"{name} from {source} is refused: {row.caller_only}; set it in the caller's "
                                    "environment of scrun (or the site's slurm.conf), never in a container")


def merge_option_env(caller_env: Mapping[str, str], container_env: Mapping[str, str]) -> dict[str, str]:
    """SCRUN_* values in effect: the caller's environment, overridden by config.json process.env.

    The container's own `-e SCRUN_…` is the more specific request (one container), the caller's
    environment a default for all containers started from that shell, so the container wins —
    for the options a container may set at all (refuse_caller_only: the others raise).
    """
    merged = {k: v for k, v in caller_env.items() if k in OPTIONS_BY_ENV}
    from_container = {k: v for k, v in container_env.items() if k in OPTIONS_BY_ENV}
    refuse_caller_only(from_container, CONTAINER_ENV)
    merged.update(from_container)
    return merged


def _one_line(name: str, raw: str) -> None:
    """Slurm's commands echo option values in their messages: a newline in one could forge a line
    scrun reads from them (a job id), so no value may hold a control character."""
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in raw if c != "\t"):
        raise InvalidInputError(f"{name}={raw!r}: holds a control character (a newline …): option values are one line")


def build_job_options(values: Mapping[str, str]) -> JobOptions:
    """Check every SCRUN_* value and turn it into salloc/srun arguments; the first bad one raises."""
    job: list[str] = []
    step: list[str] = []
    switches_count = values.get("SCRUN_REQ_SWITCH")
    chdir_done = False
    for row in OPTION_TABLE:
        if row.env not in values:
            continue
        raw = values[row.env]
        _one_line(row.env, raw)
        if row.env == "SCRUN_WAIT4SWITCH":
            continue  # folded into --switches below
        if row.env == "SCRUN_REMOTE_CWD" and "SCRUN_WORKING_DIR" in values:
            continue  # WORKING_DIR wins, as in upstream
        if row.check is None:
            if flag_is_set(raw):
                (job if row.target == JOB else step).append(row.option)
            continue
        try:
            value = row.check(raw)
        except _Bad as exc:
            raise InvalidInputError(f'{row.env}="{raw}": {exc}') from None
        if row.env == "SCRUN_REQ_SWITCH":
            wait = values.get("SCRUN_WAIT4SWITCH")
            if wait is not None:
                try:
                    _time(wait)
                except _Bad as exc:
                    raise InvalidInputError(f'SCRUN_WAIT4SWITCH="{wait}": {exc}') from None
                value = f"{value}@{wait.strip()}"
        if row.option == "--chdir":
            if chdir_done:
                continue
            chdir_done = True
        (job if row.target == JOB else step).append(f"{row.option}={value}")
    if "SCRUN_WAIT4SWITCH" in values and switches_count is None:
        raise InvalidInputError('SCRUN_WAIT4SWITCH is set without SCRUN_REQ_SWITCH: set both (count and max wait)')
    name = values.get("SCRUN_JOB_NAME")
    return JobOptions(tuple(job), tuple(step), name.strip() if name else None)
