"""`scrun --version` text, in the layout docker and podman parse (runc's and crun's)."""
from __future__ import annotations

import os

from scrun import OCI_SPEC_VERSION, __version__


def version_text() -> str:
    """runc's three lines (go-runc and podman read them by prefix), then the Slurm scrun finds."""
    return f"scrun version {__version__}\ncommit: {_commit()}\nspec: {OCI_SPEC_VERSION}\nslurm: {_slurm()}\n"


def _slurm() -> str:
    """`srun --version` as found on PATH (oci.conf's SrunPath may name another per site)."""
    import subprocess

    try:
        proc = subprocess.run(["srun", "--version"], capture_output=True, text=True, timeout=10, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return "srun not found on PATH"
    return proc.stdout.strip() or f"srun --version exited {proc.returncode}"


def _commit() -> str:
    """The git commit of the source tree this scrun runs from, read without running git."""
    here = os.path.dirname(os.path.abspath(__file__))
    for up in range(2, 6):
        git = os.path.join(here, *([".."] * up), ".git")
        head_path = os.path.join(git, "HEAD")
        if os.path.isfile(head_path):
            try:
                head = open(head_path).read().strip()
                if head.startswith("ref: "):
                    ref = head[5:]
                    ref_file = os.path.join(git, ref)
                    if os.path.isfile(ref_file):
                        return open(ref_file).read().strip()
                    packed = os.path.join(git, "packed-refs")
                    if os.path.isfile(packed):
                        for line in open(packed):
                            if line.strip().endswith(" " + ref):
                                return line.split()[0]
                    return "unknown"
                return head
            except OSError:
                return "unknown"
    return "unknown"
