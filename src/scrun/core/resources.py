"""The engine's own resource flags, read from config.json, as SCRUN_* job options.

docker and podman pass no environment to the runtime, but their flags land in config.json:
`--cpus` as linux.resources.cpu quota/period, `--cpuset-cpus` as cpu.cpus, `--memory` as
memory.limit, and `--annotation org.slurm.<option>=V` (podman; docker from 24) as annotations.
They become the same SCRUN_* values the option table already checks, at the lowest precedence:
an explicit SCRUN_* (caller's environment or the container's) wins.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

from scrun.errors import InvalidInputError

TYPE_CHECKING = False  # typing costs create ~7 ms to import
if TYPE_CHECKING:
    from typing import Any

ANNOTATION_PREFIX = "org.slurm."
MIB = 1024 * 1024


def _cpuset_count(text: str) -> int:
    """Number of CPUs in a cpuset list such as "0-3,8"; ValueError when malformed."""
    count = 0
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        low, _, high = part.partition("-")
        first, last = int(low), int(high) if high else int(low)
        if last < first:
            raise ValueError(part)
        count += last - first + 1
    return count


def requests_from_config(doc: Mapping[str, Any], config_file: str, known: Mapping[str, object]) -> dict[str, str]:
    """SCRUN_* values that the engine's flags in config.json ask for.

    `known`: the option table's variables; an annotation naming none of them is an error, so a
    typo (`org.slurm.partiton`) does not silently run in the default partition.
    """
    out: dict[str, str] = {}
    linux = doc.get("linux") if isinstance(doc.get("linux"), dict) else {}
    resources = linux.get("resources") if isinstance(linux.get("resources"), dict) else {}
    cpu = resources.get("cpu") if isinstance(resources.get("cpu"), dict) else {}
    quota, period = cpu.get("quota"), cpu.get("period")
    for field, value in (("cpu.quota", quota), ("cpu.period", period), ("memory.limit", (resources.get("memory") or {}).get("limit")
                                                                     if isinstance(resources.get("memory"), dict) else None)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise InvalidInputError(f"{config_file}: linux.resources.{field} must be an integer, not {value!r}")
    if isinstance(quota, int) and isinstance(period, int) and quota > 0 and period > 0:
        out["SCRUN_CPUS_PER_TASK"] = str(math.ceil(quota / period))
    elif isinstance(cpu.get("cpus"), str) and cpu["cpus"].strip():
        try:
            out["SCRUN_CPUS_PER_TASK"] = str(_cpuset_count(cpu["cpus"]))
        except ValueError:
            raise InvalidInputError(f"{config_file}: linux.resources.cpu.cpus {cpu['cpus']!r} is not a cpu list (e.g. 0-3,8)") from None
    memory = resources.get("memory") if isinstance(resources.get("memory"), dict) else {}
    limit = memory.get("limit")
    if isinstance(limit, int) and limit > 0:
        out["SCRUN_MEM_PER_NODE"] = f"{math.ceil(limit / MIB)}M"
    annotations = doc.get("annotations") if isinstance(doc.get("annotations"), dict) else {}
    for key, value in annotations.items():
        if not key.startswith(ANNOTATION_PREFIX):
            continue
        name = "SCRUN_" + key[len(ANNOTATION_PREFIX):].upper().replace("-", "_").replace(".", "_")
        if name not in known:
            raise InvalidInputError(f"annotation {key}: no such job option (use org.slurm.<name> for a SCRUN_<NAME> "
                                    "of scrun(1), e.g. org.slurm.partition)")
        from scrun.core.options import refuse_caller_only

        # podman copies an image's annotations into config.json: they are the container's, not the caller's.
        refuse_caller_only({name: str(value)}, f"the container's annotation {key} (podman --annotation, or the image's)")
        out[name] = str(value)
    return out
