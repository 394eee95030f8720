"""`scrun cdi-run NODE -- RUNTIME … run --bundle B ID`: the compute node's side of CDI devices.

A site whose nodes have devices puts it in front of the runtime in oci.conf:
    RunTimeRun="exec scrun cdi-run %n -- crun … run --bundle %b %n-%j-%s-%t"
It runs as the job's user, before the node's runtime. When the step's config.json names devices
for this node (core.cdi.NODE_ANNOTATION, which scrun wrote from Slurm's allocation), it applies
this node's CDI specs for exactly those ids to a copy of the config and hands the runtime that
copy (`--config`, an unlinked memory file: nothing is left on disk); otherwise it only execs the
runtime. Specs are the site's: only root's files that nobody else may write are read.

Not a runc verb, and not on the engines' path: it is dispatched before the CLI's grammar.
"""
from __future__ import annotations

import json
import os
import stat
import sys

from scrun.core import cdi
from scrun.store.owned import read_owned_json

SPEC_DIRS = ("/etc/cdi", "/var/run/cdi")  # CDI's defaults; the later wins for the same kind
USAGE = "usage: scrun cdi-run NODE -- RUNTIME [ARGS…] run [--bundle DIR] … ID"


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print(f"scrun cdi-run: {USAGE}", file=sys.stderr)
        return 2
    node, runtime = argv[0], argv[2:]
    try:
        runtime = with_devices(node, runtime)
    except (OSError, ValueError, KeyError) as exc:
        print(f"scrun cdi-run: {exc}", file=sys.stderr)
        return 1
    try:
        os.execvp(runtime[0], runtime)
    except OSError as exc:
        print(f"scrun cdi-run: cannot run {runtime[0]}: {exc.strerror}", file=sys.stderr)
        return 127


def with_devices(node: str, runtime: list[str]) -> list[str]:
    """The runtime's argv, given a config with this node's devices when the bundle names any."""
    if "run" not in runtime:
        raise ValueError(f"{' '.join(runtime)}: no `run` verb to hand the devices to")
    bundle = _bundle_of(runtime)
    with open(os.path.join(bundle, "config.json"), encoding="utf-8") as fh:
        config = json.load(fh)
    wanted = cdi.devices_for_node(config.get("annotations") or {}, node)
    if not wanted:
        return runtime
    specs = cdi.index_specs(load_specs(SPEC_DIRS))
    try:
        edited = cdi.apply_devices(config, wanted, specs, device_numbers)
    except KeyError as exc:
        raise KeyError(f"node {node} has no CDI device {exc.args[0]} in {' or '.join(SPEC_DIRS)} "
                       "(the site's spec for the GRES Slurm gave this step)") from None
    fd = os.memfd_create("config.json", 0)  # inherited by the runtime, gone with it
    os.write(fd, json.dumps(edited).encode())
    at = runtime.index("run") + 1
    return [*runtime[:at], f"--config=/proc/self/fd/{fd}", *runtime[at:]]


def _bundle_of(runtime: list[str]) -> str:
    for i, word in enumerate(runtime):
        if word in ("--bundle", "-b") and i + 1 < len(runtime):
            return runtime[i + 1]
        if word.startswith("--bundle="):
            return word.split("=", 1)[1]
    return "."


def load_specs(dirs: tuple[str, ...]) -> list[object]:
    """The JSON CDI specs in `dirs` that root owns and only root may write, in CDI's order."""
    specs = []
    for directory in dirs:
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            continue
        for name in names:
            if not name.endswith(".json"):
                continue
            spec = read_owned_json(os.path.join(directory, name), 0, 1 << 20)
            if spec is not None:
                specs.append(spec)
    return specs


def device_numbers(path: str) -> tuple[str, int, int]:
    st = os.stat(path)
    if stat.S_ISCHR(st.st_mode):
        kind = "c"
    elif stat.S_ISBLK(st.st_mode):
        kind = "b"
    else:
        raise ValueError(f"{path}: not a device node")
    return kind, os.major(st.st_rdev), os.minor(st.st_rdev)
