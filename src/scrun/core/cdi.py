"""GPUs and other devices through CDI (Container Device Interface), bounded by Slurm.

The engine resolves `--device vendor.com/class=name` against the login node's CDI specs. A
login node has no GPUs, so a site gives it a stub spec whose devices carry one edit only: the
marker variable `SCRUN_CDI_<anything>=<kind>=<name>` (docs/user-guide.md: "GPUs"). scrun reads the markers
out of process.env (the container never sees them), asks Slurm for that many of the GRES named
by the kind's class (`example.com/gpu` → `--gres=gpu:N`; `=all`: every one a node has), and once
the job is granted writes which ids Slurm gave each node into the node's config.json
(NODE_ANNOTATION). On the node, `scrun cdi-run` (oci.conf's RunTimeRun) applies the node's own
CDI specs for exactly those ids and runs the node's runtime.

Pure: the reading of specs and of Slurm's answer is the callers'.
"""
from __future__ import annotations

import json

MARKER_PREFIX = "SCRUN_CDI_"
# docker's --gpus (before CDI): dockerd adds NVIDIA's prestart hook, found on its PATH, and
# NVIDIA_VISIBLE_DEVICES (all, the first N indices, or the ids named). A login node has a stub
# hook so that dockerd accepts the flag; scrun reads it as a request for nvidia.com/gpu.
NVIDIA_HOOK = "nvidia-container-runtime-hook"
NVIDIA_KIND = "nvidia.com/gpu"
NODE_ANNOTATION = "org.slurm.scrun.cdi-devices"  # {"<node>": ["<kind>=<id>", …]} as JSON
ALL = "all"

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def _is_kind(kind: str) -> bool:
    vendor, slash, klass = kind.partition("/")
    return bool(slash and vendor and klass and "." in vendor and "=" not in kind and "/" not in klass)


def requested_devices(env: tuple[str, ...] | list[str]) -> dict[str, set[str]]:
    """{kind: device names} the stub's markers in process.env ask for; ValueError names a bad one."""
    out: dict[str, set[str]] = {}
    for entry in env:
        key, eq, value = entry.partition("=")
        if not eq or not key.startswith(MARKER_PREFIX):
            continue
        kind, eq, name = value.partition("=")
        if not eq or not name or not _is_kind(kind):
            raise ValueError(f"{key}={value}: a CDI marker is <vendor.com/class>=<device> (the login node's stub spec)")
        out.setdefault(kind, set()).add(name)
    return out


def nvidia_request(hook_paths: tuple[str, ...], env: tuple[str, ...] | list[str]) -> dict[str, set[str]]:
    """{nvidia.com/gpu: names} for docker's --gpus (NVIDIA's hook and NVIDIA_VISIBLE_DEVICES); {}."""
    if not any(path.rsplit("/", 1)[-1] == NVIDIA_HOOK for path in hook_paths):
        return {}
    value = next((e.split("=", 1)[1] for e in reversed(list(env)) if e.startswith("NVIDIA_VISIBLE_DEVICES=")), "")
    names = {n.strip() for n in value.split(",") if n.strip() and n.strip() not in ("void", "none")}
    return {NVIDIA_KIND: names} if names else {}


def is_nvidia_hook(hook: object) -> bool:
    return isinstance(hook, dict) and str(hook.get("path", "")).rsplit("/", 1)[-1] == NVIDIA_HOOK


def without_markers(env: list[str]) -> list[str]:
    return [e for e in env if not e.split("=", 1)[0].startswith(MARKER_PREFIX)]


def gres_name(kind: str) -> str:
    """The Slurm GRES a CDI kind stands for: its class (`nvidia.com/gpu` → `gpu`)."""
    return kind.split("/", 1)[1]


def gres_request(requests: dict[str, set[str]], all_counts: dict[str, int]) -> str:
    """`--gres` for the requests: `gpu:2` for two names; `=all` is every one of that GRES a
    node of the partition has (all_counts, from sinfo). ValueError when a GRES no node has."""
    parts = []
    for kind in sorted(requests):
        name, names = gres_name(kind), requests[kind]
        if ALL in names:
            count = all_counts.get(name, 0)
            if count <= 0:
                raise ValueError(f"{kind}=all: no node of the partition has GRES {name} (sinfo -o %G)")
        else:
            count = len(names)
        parts.append(f"{name}:{count}")
    return ",".join(parts)


def node_annotation(requests: dict[str, set[str]], ids_by_node: dict[str, dict[str, list[str]]]) -> str:
    """NODE_ANNOTATION's value: for each node, `<kind>=<id>` of each id Slurm gave it.
    ids_by_node: {node: {gres name: ids}} (slurm.parse.parse_gres_ids)."""
    out: dict[str, list[str]] = {}
    for node, by_gres in sorted(ids_by_node.items()):
        out[node] = [f"{kind}={i}" for kind in sorted(requests) for i in by_gres.get(gres_name(kind), [])]
    return json.dumps(out, sort_keys=True, separators=(",", ":"))


def devices_for_node(annotations: dict[str, Any], node: str) -> list[tuple[str, str]]:
    """[(kind, id)] the node's config.json names for `node`; [] when none."""
    raw = annotations.get(NODE_ANNOTATION) if isinstance(annotations, dict) else None
    try:
        doc = json.loads(raw) if isinstance(raw, str) else {}
    except ValueError:
        return []
    entries = doc.get(node) if isinstance(doc, dict) else None
    out = []
    for entry in entries if isinstance(entries, list) else ():
        kind, eq, name = str(entry).partition("=")
        if eq and _is_kind(kind) and name:
            out.append((kind, name))
    return out


# ------------------------------------------------------------------ the node's side

def index_specs(specs: list[Any]) -> dict[str, tuple[dict, dict[str, dict]]]:
    """{kind: (spec-wide edits, {device name: edits})}; a later spec of a kind replaces an
    earlier one (CDI: /var/run/cdi over /etc/cdi)."""
    out: dict[str, tuple[dict, dict[str, dict]]] = {}
    for spec in specs:
        if not isinstance(spec, dict) or not isinstance(spec.get("kind"), str) or not _is_kind(spec["kind"]):
            continue
        devices = {}
        for device in spec.get("devices") or ():
            if isinstance(device, dict) and isinstance(device.get("name"), str):
                devices[device["name"]] = device.get("containerEdits") or {}
        edits = spec.get("containerEdits") if isinstance(spec.get("containerEdits"), dict) else {}
        out[spec["kind"]] = (edits, devices)
    return out


def apply_devices(config: dict, wanted: list[tuple[str, str]], specs: dict[str, tuple[dict, dict[str, dict]]],
                  device_numbers) -> dict:
    """config.json with the CDI edits of each (kind, id) applied (env, device nodes, mounts,
    hooks), the spec-wide edits once per kind. device_numbers(path) → (type, major, minor) for a
    node that the spec gives without them. KeyError names a device the node's specs lack."""
    out = json.loads(json.dumps(config))
    used_kinds: list[str] = []
    for kind, name in wanted:
        if kind not in specs or name not in specs[kind][1]:
            raise KeyError(f"{kind}={name}")
        if kind not in used_kinds:
            used_kinds.append(kind)
            _apply_edits(out, specs[kind][0], device_numbers)
        _apply_edits(out, specs[kind][1][name], device_numbers)
    return out


def _apply_edits(config: dict, edits: dict, device_numbers) -> None:
    process = config.setdefault("process", {})
    env = [e for e in process.get("env") or [] if isinstance(e, str)]
    for entry in edits.get("env") or ():
        name = str(entry).split("=", 1)[0]
        env = [e for e in env if e.split("=", 1)[0] != name] + [str(entry)]
    process["env"] = env
    linux = config.setdefault("linux", {})
    for node in edits.get("deviceNodes") or ():
        if not isinstance(node, dict) or not isinstance(node.get("path"), str):
            continue
        host_path = node.get("hostPath") or node["path"]
        kind, major, minor = node.get("type"), node.get("major"), node.get("minor")
        if kind is None or major is None or minor is None:
            kind, major, minor = device_numbers(host_path)
        device = {"path": node["path"], "type": kind, "major": major, "minor": minor}
        for key in ("fileMode", "uid", "gid"):
            if key in node:
                device[key] = node[key]
        linux.setdefault("devices", []).append(device)
        resources = linux.setdefault("resources", {})
        resources.setdefault("devices", []).append(
            {"allow": True, "type": kind, "major": major, "minor": minor, "access": node.get("permissions") or "rwm"})
    for mount in edits.get("mounts") or ():
        if isinstance(mount, dict) and mount.get("hostPath") and mount.get("containerPath"):
            config.setdefault("mounts", []).append(
                {"destination": mount["containerPath"], "type": mount.get("type") or "bind",
                 "source": mount["hostPath"], "options": list(mount.get("options") or ["bind"])})
    for hook in edits.get("hooks") or ():
        if isinstance(hook, dict) and hook.get("hookName") and hook.get("path"):
            entry = {k: hook[k] for k in ("path", "args", "env", "timeout") if k in hook}
            config.setdefault("hooks", {}).setdefault(hook["hookName"], []).append(entry)
