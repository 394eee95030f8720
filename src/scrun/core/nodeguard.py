"""The guard that keeps a container's process off a node's host (pure).

A node without oci.conf makes slurmstepd ignore `--container` ("OCI Container not configured.
Ignoring … requested container") and exec the step's argv on the node itself: the container's
command would run outside any container, with the node's files. srun's `--task-prolog` runs on
the node before the task in both cases, and a prolog that fails ends the task before anything of
it runs (slurmstepd's exec_task: `--task-prolog failed`). The guard is that prolog; it passes only
where slurmstepd has set a container up:
- before 23.02, setup_container moves the task's cwd into the spool directory where it wrote the
  step's config.json, which carries a per-container token (an annotation); elsewhere the cwd is
  the step's --chdir (the guard's own directory, which holds no config.json, unless the caller
  chose one: the token tells them apart);
- from 23.02, setup_container merges config.json's process.env into the task's environment, so a
  per-container token set there is seen; the guard unsets it again (a prolog's `unset NAME`),
  and slurmstepd rebuilds the container's env from the task's: the container never sees it.
A refusing guard leaves `refused-<node>` in its directory (on a shared filesystem) for the anchor
to name the node.
"""
from __future__ import annotations

import shlex

GUARD_ENV = "SCRUN_NODE_GUARD"
GUARD_ANNOTATION = "org.slurm.scrun.node-guard"
GUARD_SCRIPT_NAME = "prolog"
REFUSED_PREFIX = "refused-"
# slurmstepd's line when the prolog failed, or was killed: a signal sent to the step while the
# guard runs ends it there (the task then exits 1, before the container's process exists).
GUARD_KILLED = "--task-prolog failed"
# Where slurmstepd's container setup merges config.json's env into the task's (see above).
ENV_MERGED_FROM = (23, 2)


def guard_uses_env(slurm_version: tuple[int, ...]) -> bool:
    return tuple(slurm_version[:2]) >= ENV_MERGED_FROM


def guard_config(config: dict, slurm_version: tuple[int, ...], token: str) -> dict:
    """config.json with the token where the node's guard looks for it."""
    out = dict(config)
    if guard_uses_env(slurm_version):
        process = config.get("process") if isinstance(config.get("process"), dict) else {}
        env = [e for e in process.get("env") or [] if not str(e).startswith(f"{GUARD_ENV}=")]
        out["process"] = {**process, "env": [*env, f"{GUARD_ENV}={token}"]}
    else:
        annotations = config.get("annotations") if isinstance(config.get("annotations"), dict) else {}
        out["annotations"] = {**annotations, GUARD_ANNOTATION: token}
    return out


def guard_script(slurm_version: tuple[int, ...], guard_dir: str, token: str, then_run: str | None = None) -> str:
    """The prolog's text (/bin/sh: the node's own, as slurmstepd runs it). `then_run`: the
    caller's own --task-prolog (SCRUN_TASK_PROLOG), run once the guard passed (srun takes one)."""
    if guard_uses_env(slurm_version):
        check = f'[ "${{{GUARD_ENV}:-}}" = {shlex.quote(token)} ]'
        passed = f"echo 'unset {GUARD_ENV}'"
    else:
        check = f"[ -f config.json ] && grep -qF -- {shlex.quote(token)} config.json"
        passed = ":"
    if then_run:
        passed += f"\n    exec {shlex.quote(then_run)}"
    refused = shlex.quote(f"{guard_dir}/{REFUSED_PREFIX}") + '"${SLURMD_NODENAME:-unknown}"'
    return ("#!/bin/sh\n"
            "# scrun: run the task only inside the container slurmstepd set up (scrun.core.nodeguard)\n"
            f"if {check}; then\n    {passed}\n    exit 0\nfi\n"
            f": > {refused} 2>/dev/null\n"
            "exit 1\n")


def refused_nodes(names: list[str]) -> list[str]:
    """Nodes whose guard refused the step, from its directory's file names."""
    return sorted(n[len(REFUSED_PREFIX):] for n in names if n.startswith(REFUSED_PREFIX))


def refusal_reason(nodes: list[str]) -> str:
    where = ", ".join(nodes)
    return (f"the container did not run: Slurm on node {where} ignored --container (no oci.conf there) and "
            f"would have run its command on the node itself; nothing ran. Fix: install oci.conf on {where}, or "
            f"drain it (scontrol update nodename={','.join(nodes)} state=drain reason=no-oci.conf)")
