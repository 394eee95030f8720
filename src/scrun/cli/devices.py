"""create's side of CDI devices (core/cdi.py): the stub's markers in config.json become the
job's GRES request, at the engine flags' precedence (an explicit SCRUN_GRES or SCRUN_GPUS*
wins), and the anchor is told what to name on each node once Slurm has chosen."""
from __future__ import annotations

from scrun.core import cdi
from scrun.errors import InvalidInputError

# Explicit requests that take the place of the engine's (lowest precedence, as --cpus).
_EXPLICIT = ("SCRUN_GRES", "SCRUN_GPUS", "SCRUN_GPUS_PER_NODE", "SCRUN_GPUS_PER_TASK", "SCRUN_GPUS_PER_SOCKET")


def device_requests(cfg, explicit: dict[str, str]) -> tuple[dict[str, str], dict[str, list[str]]]:
    """(SCRUN_* the devices ask for, {kind: names} for the anchor); both empty without markers."""
    try:
        requests = cdi.requested_devices(cfg.env)
    except ValueError as exc:
        raise InvalidInputError(f"{cfg.config_file}: process.env {exc}") from None
    for kind, names in cdi.nvidia_request(cfg.hook_paths, cfg.env).items():
        requests.setdefault(kind, set()).update(names)
    if not requests:
        return {}, {}
    named = {kind: sorted(names) for kind, names in requests.items()}
    if any(key in explicit for key in _EXPLICIT):
        return {}, named  # the caller's own GRES request stands; the node still maps what Slurm gave
    counts: dict[str, int] = {}
    if any(cdi.ALL in names for names in requests.values()):
        counts = _gres_counts(explicit.get("SCRUN_PARTITION") or cfg.engine_requests.get("SCRUN_PARTITION"))
    try:
        return {"SCRUN_GRES": cdi.gres_request(requests, counts)}, named
    except ValueError as exc:
        raise InvalidInputError(f"--device {exc}: ask for a number of devices, or another partition") from None


def _gres_counts(partition: str | None) -> dict[str, int]:
    from scrun.slurm.argv import build_gres_counts_argv
    from scrun.slurm.parse import parse_gres_counts
    from scrun.slurm.runner import run

    proc = run(build_gres_counts_argv("sinfo", partition), timeout=30)
    return parse_gres_counts(proc.stdout.decode(errors="replace"))
