"""The project's local Slurm clusters ("lanes"), set up without systemd, idempotently.

A lane is one Slurm generation with its own daemons, podman, crun and Python:
the host's own Debian is one lane, the other Debian runs as a second lane in private
namespaces on a rootfs built from Debian's archive. Standard library only: this runs
before the project's virtual environment exists.
"""
