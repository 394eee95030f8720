"""scrun: an OCI runtime that runs each container as a Slurm job."""

__version__ = "0.1.0"
# The runtime-spec version whose CLI and state document we follow.
OCI_SPEC_VERSION = "1.0.2"
