"""One error hierarchy for scrun; exit codes are assigned here and nowhere else.

    ScrunError                      exit 1, "scrun: error: <msg>"
    ├── UsageError                  exit 2: bad command line (unknown option, verb, arity)
    ├── InvalidInputError           bad id, bundle, config.json, SCRUN_* value, signal
    ├── ConfigError                 slurm.conf / oci.conf unreadable or invalid (file:line)
    ├── ContainerNotFoundError      no container with that id ("does not exist": podman matches it)
    ├── ContainerExistsError        create with an id that is already in use
    ├── InvalidStatusError          verb not allowed in the container's current status
    ├── NotOwnerError               state of another user (or a symlink out of the state root)
    ├── SlurmError                  a Slurm command failed or slurmctld is unreachable
    ├── LuaError                    scrun.lua failed to load or a hook failed
    ├── StateError                  the state root cannot be written (full, read-only)
    └── AnchorError                 the per-container anchor failed or cannot be reached

Messages name the thing and, where there is one, the fix.
"""
from __future__ import annotations


class ScrunError(Exception):
    """Base of every error scrun reports to its caller."""

    exit_code = 1


class UsageError(ScrunError):
    """The command line cannot be parsed: unknown option or verb, wrong number of arguments."""

    exit_code = 2


class InvalidInputError(ScrunError):
    """An input value is malformed: container id, bundle, config.json, SCRUN_* variable, signal."""


class ConfigError(ScrunError):
    """slurm.conf or oci.conf cannot be read or holds an invalid line."""


class ContainerNotFoundError(ScrunError):
    """No container with this id exists under the root."""

    def __init__(self, container_id: str, root: str):
        super().__init__(f"container `{container_id}` does not exist (root {root})")
        self.container_id = container_id


class ContainerExistsError(ScrunError):
    """create was asked for an id that is already in use."""

    def __init__(self, container_id: str):
        super().__init__(f"container with id `{container_id}` exists already: delete it first or pick another id")


class InvalidStatusError(ScrunError):
    """The verb is not allowed in the container's current status (e.g. kill of a stopped one)."""


class NotOwnerError(ScrunError):
    """The state root or a container directory belongs to another uid, or is a symlink."""


class SlurmError(ScrunError):
    """A Slurm command failed, or slurmctld could not be reached."""


class LuaError(ScrunError):
    """scrun.lua could not be loaded, lacks a hook, or a hook failed."""


class StateError(ScrunError):
    """A container's record could not be written: the state root is full or read-only."""


class AnchorError(ScrunError):
    """The container's anchor process failed to start, died, or did not answer."""


def exit_code_for(exc: BaseException) -> int:
    """The process exit code for an exception that reached the top of the CLI."""
    if isinstance(exc, ScrunError):
        return exc.exit_code
    if isinstance(exc, KeyboardInterrupt):
        return 130
    return 1
