"""The image cache (pure): which image a rootfs is, and how a container runs from its cached copy.

podman and docker hand the runtime an overlay of the image's read-only layers (lowerdir) and
the container's own upper layer. The layers are immutable and named by the engine: their
resolved paths identify the image's content, so the copy made for the first container of an
image (the cache entry, on the shared filesystem) serves every later one with no copy.

A container must still write anywhere as under podman, privately: on the node, the entry is the
read-only root and each of its top-level directories gets an overlay mount (the entry's
directory below, an upper of the container's own above; kernel overlayfs with `userxattr`,
which an unprivileged user namespace may mount since Linux 5.11). crun mounts those first, then
the container's own mounts on top. Measured against the alternatives in issue 28's note.
"""
from __future__ import annotations

import hashlib
import os

# Top-level directories a container's runtime mounts over anyway: no overlay for them.
RUNTIME_MOUNTED = frozenset({"dev", "proc", "sys"})
# Characters that end or split an overlay mount option (lowerdir=a:b,upperdir=…).
_OPTION_BREAKERS = (",", ":", "\\", "=")
# docker's per-container "init" layer (/etc/hosts, /.dockerenv stubs): not the image's.
_DOCKER_INIT_SUFFIX = "-init"


def _super_options(line: str) -> tuple[str, str, dict[str, str]] | None:
    """(mount point, fstype, super options) of one mountinfo line."""
    fields = line.split(" ")
    if "-" not in fields:
        return None
    sep = fields.index("-")
    if sep < 5 or len(fields) < sep + 4:
        return None
    options = {}
    for item in fields[sep + 3].split(","):
        key, _, value = item.partition("=")
        options[key] = value
    return fields[4], fields[sep + 1], options


def overlay_layers(mountinfo: str, root_path: str) -> tuple[tuple[str, ...], str] | None:
    """The lower layers (top first, as mounted) and the upper directory of the overlay mounted at
    `root_path`; None when the rootfs is not an engine's overlay (a plain directory, vfs)."""
    target = os.path.normpath(root_path)
    found = None
    for line in mountinfo.splitlines():
        parsed = _super_options(line)
        if parsed and parsed[0] == target:
            found = parsed  # the last one at a path is the one on top
    if found is None or found[1] != "overlay":
        return None
    options = found[2]
    lower, upper = options.get("lowerdir", ""), options.get("upperdir", "")
    if not lower or not upper or "\\" in lower or "\\" in upper:
        return None  # escaped characters in layer paths: not worth guessing, copy instead
    layers = lower.replace("::", ":").split(":")  # "::" is a data-only lower (6.5+): the same layers
    if not os.path.isabs(upper):
        return None
    base = os.path.dirname(os.path.dirname(upper))  # containers/storage: relative to …/overlay
    return tuple(layer if os.path.isabs(layer) else os.path.join(base, layer) for layer in layers), upper


def image_key(layers: tuple[str, ...], realpath=os.path.realpath) -> str:
    """The cache key of an image: its layers' resolved paths, in order (podman's l/<short>
    links resolve to the layer's directory). docker's per-container init layer is left out."""
    resolved = [realpath(layer) for layer in layers]
    image = [r for r in resolved if not os.path.basename(os.path.dirname(r)).endswith(_DOCKER_INIT_SUFFIX)]
    return hashlib.sha256("\n".join(image).encode()).hexdigest()[:32]


# Options that can give a step more than one task (each its own container on its node).
_TASK_COUNTS = ("--nodes", "--ntasks", "--ntasks-per-node", "--ntasks-per-core", "--ntasks-per-socket",
                "--ntasks-per-gpu", "--ntasks-per-tres", "-N", "-n")


def one_task(args: tuple[str, ...] | list[str]) -> bool:
    """Whether srun/salloc options leave the step one task. The cache's overlays name one upper
    layer, and overlayfs lets one mount use it: a second task (on this node or another) fails
    with EINVAL. A step of many tasks gets the copy, which its tasks share as before."""
    words = iter(args)
    for word in words:
        name, eq, value = word.partition("=")
        if name in ("-N", "-n", "-w") and not eq:
            value = next(words, "")  # `-N 2`
        elif not word.startswith("--") and word[:2] in ("-N", "-n", "-w") and len(word) > 2:
            name, value = word[:2], word[2:]  # `-N2`
        if name in _TASK_COUNTS and not (value.strip().isdigit() and int(value) <= 1):
            return False
        if name in ("--nodelist", "-w") and ("," in value or "[" in value):
            return False  # a job on several nodes runs a task on each
    return True


def usable_paths(*paths: str) -> bool:
    """Whether these paths can be named in an overlay mount's options."""
    return not any(ch in path for path in paths for ch in _OPTION_BREAKERS)


def overlay_mounts(entry_rootfs: str, top_dirs: list[str], config_mounts: list, upper_base: str) -> list[dict]:
    """The mounts that make the cached read-only root writable, one per top-level directory of
    the entry (`top_dirs`: real directories, not links), each with its upper and work directory
    under upper_base/<name>/; none where the container's config mounts something at that place."""
    taken = {os.path.normpath(m.get("destination", "")) for m in config_mounts if isinstance(m, dict)}
    out = []
    for name in sorted(top_dirs):
        if name in RUNTIME_MOUNTED or f"/{name}" in taken:
            continue
        up = os.path.join(upper_base, name)
        out.append({"destination": f"/{name}", "type": "overlay", "source": "overlay",
                    "options": ["userxattr", f"lowerdir={entry_rootfs}/{name}", f"upperdir={up}/up",
                                f"workdir={up}/work"]})
    return out


def cached_config(config: dict, entry_rootfs: str, overlays: list[dict]) -> dict:
    """config.json for a container run from the cache: the entry is its read-only root, the
    overlays come before the container's own mounts (its /etc/hosts binds onto the /etc overlay)."""
    out = dict(config)
    out["root"] = {**(config.get("root") or {}), "path": entry_rootfs, "readonly": True}
    out["mounts"] = [*overlays, *(config.get("mounts") or [])]
    return out
