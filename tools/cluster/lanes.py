"""The lanes: one per Slurm generation, named by what they are.

The lane whose Debian matches the host's runs on the host itself; the other runs in
private namespaces on a rootfs of its own Debian (see nslane.py).
"""
from __future__ import annotations

import pathlib
from dataclasses import dataclass

from cluster.shell import ClusterError


@dataclass(frozen=True)
class LaneSpec:
    name: str      # the Slurm generation: what tests and benchmarks report
    debian: str    # the Debian release that ships it
    suite: str
    address: str   # a namespace lane's own address on its private loopback
    cluster: str   # Slurm ClusterName

    @property
    def hostname(self) -> str:
        return "lane-" + self.name.removeprefix("slurm-").replace(".", "-")


LANES = {
    spec.name: spec
    for spec in (
        LaneSpec("slurm-22.05", "12", "bookworm", "127.0.22.5", "scrun2205"),
        LaneSpec("slurm-24.11", "13", "trixie", "127.0.24.11", "scrun2411"),
        LaneSpec("slurm-26.05", "unstable", "sid", "127.0.26.5", "scrun2605"),
    )
}


def host_debian(version_file: pathlib.Path = pathlib.Path("/etc/debian_version")) -> str:
    """`12.11` → "12"; testing/sid names (`trixie/sid`) → their release number."""
    try:
        text = version_file.read_text().strip()
    except OSError as exc:
        raise ClusterError(f"{version_file} is not readable ({exc}): this tool needs Debian 12 or 13") from exc
    major = text.split(".", 1)[0]
    if major.isdigit():
        return major
    for spec in LANES.values():
        if text.startswith(spec.suite):
            return spec.debian
    raise ClusterError(f"{version_file} says {text!r}: this tool knows Debian 12 (bookworm) and 13 (trixie)")


def native_lane(debian: str | None = None) -> LaneSpec:
    debian = debian or host_debian()
    for spec in LANES.values():
        if spec.debian == debian:
            return spec
    raise ClusterError(f"Debian {debian} has no lane here: use Debian 12 or 13")


def ordered_names(debian: str | None = None) -> list[str]:
    """All lane names, the host's own first."""
    native = native_lane(debian).name
    return [native, *(n for n in LANES if n != native)]


def resolve(names: list[str] | None, debian: str | None = None) -> list[LaneSpec]:
    if not names or names == ["all"]:
        return [LANES[n] for n in ordered_names(debian)]
    unknown = [n for n in names if n not in LANES]
    if unknown:
        raise ClusterError(f"unknown lane {unknown[0]!r}: choose from {', '.join(LANES)} or all")
    return [LANES[n] for n in names]
