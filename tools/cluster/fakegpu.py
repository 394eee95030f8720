"""Fake GPUs on the isolated node, for the CDI tests (no GPU here; issue 31).

- Slurm: iso1 declares `Gres=gpu:2`, gres.conf gives them the device files /dev/scrun-gpu0-1
  (char devices with /dev/null's numbers: harmless to open).
- The login node: a stub CDI spec (/etc/cdi) whose devices carry only scrun's marker, so that
  podman accepts `--device example.com/gpu=…` (core/cdi.py).
- The node, while a test gives them (give()/take_back()): its own spec in its private /run/cdi
  (each device: its device node and FAKE_GPU_<id>=<id>; the kind: one read-only mount of the
  node's /run/cdi at /run/fake-gpu-driver), and an oci.conf whose RunTimeRun goes through
  `scrun cdi-run`.
Standard library only (also run inside a lane).
"""
from __future__ import annotations

import json

from cluster import slurmconf as conf

KIND = "example.com/gpu"
GRES = "gpu"
COUNT = conf.FAKE_GPUS  # what iso1 has
STUB_NAMES = ("0", "1", "2", "all")  # the login stub may name more than any node has (2: a request Slurm refuses)
DEVICE = "/dev/scrun-gpu{}"
STUB_PATH = "/etc/cdi/scrun-fake-gpu.json"
NODE_SPEC = "/run/cdi/scrun-fake-gpu.json"
# docker's --gpus asks for nvidia.com/gpu (core.cdi.NVIDIA_KIND): the same fake devices under that kind.
NVIDIA_KIND = "nvidia.com/gpu"
NVIDIA_NODE_SPEC = "/run/cdi/scrun-fake-nvidia.json"
DRIVER_MOUNT = "/run/fake-gpu-driver"
GRES_CONF = f"{conf.MARKER}\nNodeName={conf.ISOLATED_NODE} Name={GRES} File=/dev/scrun-gpu[0-{COUNT - 1}]\n"


def stub_spec() -> str:
    devices = [{"name": n, "containerEdits": {"env": [f"SCRUN_CDI_EXAMPLE_COM_GPU_{n.upper()}={KIND}={n}"]}}
               for n in STUB_NAMES]
    return json.dumps({"cdiVersion": "0.5.0", "kind": KIND, "devices": devices}, indent=1) + "\n"


def node_spec(kind: str = KIND) -> str:
    devices = [{"name": str(i), "containerEdits": {"env": [f"FAKE_GPU_{i}={i}"],
                                                   "deviceNodes": [{"path": DEVICE.format(i)}]}}
               for i in range(COUNT)]
    kind_edits = {"mounts": [{"hostPath": "/run/cdi", "containerPath": DRIVER_MOUNT, "options": ["ro", "bind"]}]}
    return json.dumps({"cdiVersion": "0.5.0", "kind": kind, "devices": devices, "containerEdits": kind_edits},
                      indent=1) + "\n"


def device_commands() -> list[list[str]]:
    """Make the device files (idempotent): the host's /dev, which every lane and node shares."""
    return [["sh", "-c", f"test -c {DEVICE.format(i)} || mknod -m 0666 {DEVICE.format(i)} c 1 3"] for i in range(COUNT)]


def node_oci_conf(scrun: str) -> str:
    """oci.conf with RunTimeRun through `scrun cdi-run` (the rest as every node's)."""
    lines = []
    for line in conf.OCI_CONF.splitlines():
        if line.startswith('RunTimeRun="exec '):
            line = line.replace('RunTimeRun="exec ', f'RunTimeRun="exec {scrun} cdi-run %n -- ', 1)
        lines.append(line)
    return "\n".join(lines) + "\n"


def give(node: str, scrun: str) -> None:
    """The node gets its spec and its cdi-run oci.conf (a copy of /etc/slurm bound over it)."""
    from cluster.topology import bind_conf_copy

    bind_conf_copy(node, "gpu", f'printf %s "$1" > "$d/oci.conf" && mkdir -p /run/cdi && printf %s "$2" > {NODE_SPEC} '
                   f'&& printf %s "$3" > {NVIDIA_NODE_SPEC} && chmod 644 /run/cdi/*.json',
                   node_oci_conf(scrun), node_spec(), node_spec(NVIDIA_KIND))


def take_back(node: str) -> None:
    from cluster.topology import unbind_conf_copy

    unbind_conf_copy(node, "gpu", f"rm -f {NODE_SPEC} {NVIDIA_NODE_SPEC}")
