"""Which bundle srun gets, given what the node side (slurmstepd) of each Slurm version honours."""
from __future__ import annotations

import os

from scrun.core.executable import resolve_in_rootfs

# slurmstepd before 23.02 ignores config.json's root.path and always runs <bundle>/rootfs
# (seen with 22.05.8: "make `<bundle>/rootfs` private: No such file or directory").
ROOT_PATH_HONOURED_FROM = (23, 2)
# Newer srun resolves a bare command name against the *node's* PATH and filesystem before the
# node runtime sees it (24.11: `sh` became /usr/bin/sh, absent from a busybox image). 22.05
# passes the name through and crun searches the container, as runc does.
NODE_RESOLVES_COMMAND_FROM = (23, 2)


def needs_rootfs_shim(slurm_version: tuple[int, ...], bundle: str, root_path: str) -> bool:
    """True when srun must get a bundle whose rootfs/ leads to `root_path`."""
    if tuple(slurm_version[:2]) >= ROOT_PATH_HONOURED_FROM:
        return False
    return os.path.normpath(root_path) != os.path.normpath(os.path.join(bundle, "rootfs"))


def shim_config(config: dict) -> dict:
    """config.json for the shim bundle: the same, with the root at the bundle's rootfs/."""
    out = dict(config)
    out["root"] = {**config.get("root", {}), "path": "rootfs"}
    return out


def _names_a_host_process(hook: object) -> bool:
    """A hook run through /proc/<pid>/… (docker's libnetwork-setkey: dockerd's own binary) only
    means something on the host that wrote it; on a node it runs a stranger or nothing."""
    return isinstance(hook, dict) and str(hook.get("path", "")).startswith("/proc/")


def node_config(config: dict, *, slurm_version: tuple[int, ...], root_path: str,
                terminal_size: tuple[int, int] | None, node_root_path: str | None = None,
                cdi_devices: str | None = None) -> dict | None:
    """config.json as the node must get it; None when the engine's serves unchanged.

    - hooks that name a process of this host are dropped (docker's, see _names_a_host_process);
    - a network namespace given by path (podman's /run/netns/…, made on this host) is dropped: no
      node can join it, and the container uses its node's network, as HPC containers do; its
      net.* sysctls go with it (podman 4 sets net.ipv4.ping_group_range);
    - Slurm >= 23.02 with a terminal: process.consoleSize is set when the engine left it out
      (podman 5): crun sizes the node's tty from it, and slurmstepd never resizes that tty.
    - the root is `node_root_path` when the nodes see the rootfs under another path than ours
      (core.mounts.node_visible_path);
    - CDI devices (core.cdi): the stub's markers leave process.env, and cdi_devices, the ids
      Slurm gave each node, becomes the annotation the node's `scrun cdi-run` applies.
    The root is made absolute (the node bundle lives elsewhere); callers that need the 22.05
    shim apply shim_config on top.
    """
    out: dict | None = None
    if node_root_path and os.path.normpath(node_root_path) != os.path.normpath(root_path):
        out, root_path = dict(config), node_root_path
    hooks = config.get("hooks")
    if isinstance(hooks, dict):
        from scrun.core.cdi import is_nvidia_hook

        # docker's --gpus is NVIDIA's hook: on the login node a stub; the node's CDI spec stands for it.
        def dropped(hook: object) -> bool:
            return _names_a_host_process(hook) or (cdi_devices is not None and is_nvidia_hook(hook))

        kept = {stage: [h for h in entries if not dropped(h)]
                for stage, entries in hooks.items() if isinstance(entries, list)}
        if any(len(kept[stage]) != len(hooks[stage]) for stage in kept):
            out = dict(config)
            out["hooks"] = {stage: entries for stage, entries in kept.items() if entries}
    linux = config.get("linux") if isinstance(config.get("linux"), dict) else {}
    namespaces = linux.get("namespaces") if isinstance(linux.get("namespaces"), list) else []
    joined_net = [ns for ns in namespaces if isinstance(ns, dict) and ns.get("type") == "network" and ns.get("path")]
    if joined_net:
        out = dict(out or config)
        out["linux"] = {**linux, "namespaces": [ns for ns in namespaces if ns not in joined_net]}
        sysctl = linux.get("sysctl")
        if isinstance(sysctl, dict):  # net.* were for that namespace: in the node's own, crun refuses them
            out["linux"]["sysctl"] = {k: v for k, v in sysctl.items() if not str(k).startswith("net.")}
    process = config.get("process") if isinstance(config.get("process"), dict) else {}
    if (terminal_size and tuple(slurm_version[:2]) >= ROOT_PATH_HONOURED_FROM and process.get("terminal")
            and not process.get("consoleSize")):
        out = dict(out or config)
        out["process"] = {**process, "consoleSize": {"height": terminal_size[0], "width": terminal_size[1]}}
    if cdi_devices is not None:
        from scrun.core.cdi import NODE_ANNOTATION, without_markers

        out = dict(out or config)
        process = out.get("process") if isinstance(out.get("process"), dict) else {}
        out["process"] = {**process, "env": without_markers(list(process.get("env") or []))}
        annotations = out.get("annotations") if isinstance(out.get("annotations"), dict) else {}
        out["annotations"] = {**annotations, NODE_ANNOTATION: cdi_devices}
    if out is not None:
        out["root"] = {**config.get("root", {}), "path": root_path}
    return out


def node_command(slurm_version: tuple[int, ...], args: tuple[str, ...], root_path: str, env: dict[str, str]) -> tuple[str, ...]:
    """process.args for srun: on Slurm versions that search the node, a bare command name is
    resolved in the container's rootfs first (along the container's PATH, as runc would)."""
    if tuple(slurm_version[:2]) < NODE_RESOLVES_COMMAND_FROM or not args:
        return args
    resolved = resolve_in_rootfs(root_path, args[0], env)
    return (resolved, *args[1:]) if resolved else args
