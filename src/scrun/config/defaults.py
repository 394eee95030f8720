"""Built-in defaults that cheap paths need without loading the settings machinery: the forked
anchor (before create hands it a container) and the Lua host."""
from __future__ import annotations

import os

DEFAULT_SLURM_CONF = "/etc/slurm/slurm.conf"
# Long enough to rsync a large image; a hook still running after it is stopped (its commands
# killed) and the container fails with that reason, instead of hanging its engine for good.
LUA_TIMEOUT_DEFAULT = 600.0


def resolve_slurm_conf(flag: str | None, env) -> str:
    """-f wins, then SLURM_CONF (of `env`, a mapping), then the compiled-in default."""
    return flag or env.get("SLURM_CONF") or DEFAULT_SLURM_CONF


def site_lua_script(slurm_conf: str) -> str:
    """The site's scrun.lua: next to slurm.conf (the man page's FILES)."""
    return os.path.join(os.path.dirname(slurm_conf), "scrun.lua")
