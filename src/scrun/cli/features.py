"""features: what this runtime supports, as runtime-spec's features document (JSON).

dockerd and containerd ask every runtime at start-up. What the container may use inside is up to
the compute node's runtime (crun, through oci.conf), which the login node cannot see: those
fields (`linux`, `mountOptions`) are left out, which the spec reads as "unknown", not "absent".
"""
from __future__ import annotations

from scrun import OCI_SPEC_VERSION, __version__
from scrun.cli.output import print_json

USAGE = "features"

# The hooks config.json may carry; the node's runtime runs them (hooks that name a process of the
# login node are dropped on the way: core.nodebundle).
HOOKS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")


def add_arguments(parser) -> None:
    pass


def features_document() -> dict[str, object]:
    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": OCI_SPEC_VERSION,
        "hooks": list(HOOKS),
        "annotations": {
            "org.slurm.scrun.version": __version__,
            # The annotations scrun reads from config.json (the job's request; core.options).
            "org.slurm.scrun.annotations": "org.slurm.* (SCRUN_* options of the job and its step)",
            "org.slurm.scrun.node-runtime": "the compute node's OCI runtime, as oci.conf says",
        },
    }


def run(settings, args) -> int:
    print_json(features_document())
    return 0
