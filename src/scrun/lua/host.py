"""scrun.lua host: real Lua 5.4 through lupa. The only module that imports lupa.

The site script defines slurm_scrun_stage_in and slurm_scrun_stage_out and may call the
`slurm` table documented in scrun(1). `require 'json'` gives encode/decode that round-trip a
config.json exactly: arrays stay arrays (even empty), objects stay objects, integers stay
integers — crun rejects a config where they do not.

Hooks are called from a worker thread of the anchor; commands they run are plain children
waited for by pid, so no SIGCHLD handler can steal their status (upstream's race).
"""
from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from typing import Any

from lupa import lua54

from scrun.core.timefmt import time_str2mins
from scrun.errors import LuaError
from scrun.log import DEBUG2, DEBUG3, DEBUG4, VERBOSE, get_logger

SUCCESS = 0
ERROR = -1
_HOOKS = ("slurm_scrun_stage_in", "slurm_scrun_stage_out")
# slurm.log(level, msg): 0 info, 1 verbose, 2 debug, 3 debug2, 4 debug3, >4 debug4.
_LOG_LEVELS = {0: 20, 1: VERBOSE, 2: 10, 3: DEBUG2, 4: DEBUG3}

_LUA_PRELUDE = r"""
local host = ...
local slurm = {SUCCESS = 0, ERROR = -1, FAILURE = -1}
local function fmt(...) if select('#', ...) == 0 then return "" end return string.format(...) end
function slurm.log(level, msg) host.log(level, tostring(msg)) end
function slurm.error(msg) host.log(-1, tostring(msg)) end
function slurm.log_error(...) host.log(-1, fmt(...)) end
function slurm.log_info(...) host.log(0, fmt(...)) end
function slurm.log_verbose(...) host.log(1, fmt(...)) end
function slurm.log_debug(...) host.log(2, fmt(...)) end
function slurm.log_debug2(...) host.log(3, fmt(...)) end
function slurm.log_debug3(...) host.log(4, fmt(...)) end
function slurm.log_debug4(...) host.log(5, fmt(...)) end
function slurm.log_user(...) host.log(0, fmt(...)) end
function slurm.time_str2mins(s) return host.time_str2mins(tostring(s)) end
function slurm.set_bundle_path(p) return host.set_bundle_path(tostring(p)) end
function slurm.set_root_path(p) return host.set_root_path(tostring(p)) end
function slurm.allocator_command(s) local st, out = host.allocator_command(tostring(s)); return st, out end
function slurm.remote_command(s) local st, out = host.remote_command(tostring(s)); return st, out end

-- JSON: tables decoded from arrays/objects carry a metatable so they encode back the same way.
local array_mt = {__jsontype = "array"}
local object_mt = {__jsontype = "object"}
local json = {}
function json.decode(text) return host.json_decode(text, array_mt, object_mt) end
function json.encode(value) return host.json_encode(value) end
json.array_mt, json.object_mt = array_mt, object_mt
slurm.to_json = json.encode
slurm.from_json = json.decode
package.preload["json"] = function() return json end
_G.slurm = slurm
return slurm
"""


class _Host:
    """Python side of the `slurm` table; state that Lua changes (bundle, root path) lives here."""

    def __init__(self, lua: Any, context: dict[str, Any]):
        self.lua = lua
        self.bundle: str = context.get("bundle", "")
        self.root_path: str = context.get("root_path", "")
        self.env: Callable[[], dict[str, str]] = context.get("env", lambda: dict(os.environ))
        self.srun: str = context.get("srun", "srun")
        self.srun_args: tuple[str, ...] = tuple(context.get("srun_args", ()))
        self.job_id: Callable[[], int | None] = context.get("job_id", lambda: None)
        self.log_sink = get_logger()
        self.errors: list[str] = []  # error-level messages of the running hook, for its failure text

    # logging -------------------------------------------------------------
    def log(self, level: int, msg: str) -> None:
        py = 40 if level < 0 else _LOG_LEVELS.get(int(level), DEBUG4)
        if py >= 40:
            self.errors.append(msg)
        self.log_sink.log(py, "lua: %s", msg)

    def time_str2mins(self, text: str) -> int:
        return time_str2mins(text)

    # paths ---------------------------------------------------------------
    def set_bundle_path(self, path: str) -> str:
        old, self.bundle = self.bundle, path
        return old

    def set_root_path(self, path: str) -> str:
        old, self.root_path = self.root_path, path
        return old

    # commands ------------------------------------------------------------
    def _command(self, argv: list[str]) -> tuple[int, str]:
        env = self.env() or dict(os.environ)
        env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
        self.log_sink.log(DEBUG2, "lua command: %s", argv)
        proc = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)
        status = proc.returncode if proc.returncode >= 0 else 128 - proc.returncode
        return status, proc.stdout.decode(errors="replace")

    def allocator_command(self, script: str) -> tuple[int, str]:
        return self._command(["/bin/sh", "-c", script])

    def remote_command(self, script: str) -> tuple[int, str]:
        from scrun.slurm.argv import build_remote_command_argv

        job_id = self.job_id()
        if job_id is None:
            return 1, "remote_command: no job allocation yet"
        from scrun.slurm.runner import slurm_command

        return self._command(slurm_command(build_remote_command_argv(self.srun, self.srun_args, job_id, script)))

    # json ----------------------------------------------------------------
    def json_decode(self, text: str, array_mt: Any, object_mt: Any) -> Any:
        try:
            doc = json.loads(text)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"json.decode: {exc}") from None
        setmt = self.lua.globals().setmetatable

        def to_lua(value: Any) -> Any:
            if isinstance(value, dict):
                table = self.lua.table_from({k: to_lua(v) for k, v in value.items()})
                return setmt(table, object_mt)
            if isinstance(value, list):
                table = self.lua.table_from([to_lua(v) for v in value])
                return setmt(table, array_mt)
            return value

        return to_lua(doc)

    def json_encode(self, value: Any) -> str:
        getmt = self.lua.globals().getmetatable

        def to_py(v: Any, depth: int = 0) -> Any:
            if depth > 200:
                raise ValueError("json.encode: nesting too deep (a cycle?)")
            if lua54.lua_type(v) != "table":
                if isinstance(v, float) and v.is_integer():
                    return int(v)
                if lua54.lua_type(v) in ("function", "userdata", "thread"):
                    raise ValueError(f"json.encode: cannot encode a Lua {lua54.lua_type(v)}")
                return v
            mt = getmt(v)
            kind = mt["__jsontype"] if mt is not None else None
            items = list(v.items())
            if kind == "object":
                return {str(k): to_py(x, depth + 1) for k, x in items}
            keys = [k for k, _ in items]
            ints = all(isinstance(k, int) and k >= 1 for k in keys)
            is_seq = ints and sorted(keys) == list(range(1, len(keys) + 1))
            if (kind == "array" and ints) or is_seq:
                # Holes (a decoded null) come back as null: up to the largest index, not the first nil.
                return [to_py(v[i], depth + 1) for i in range(1, max(keys, default=0) + 1)]
            return {str(k): to_py(x, depth + 1) for k, x in items}

        return json.dumps(to_py(value), separators=(",", ":"))


class LuaHooks:
    """A loaded scrun.lua: call stage_in/stage_out; read back the bundle/root Lua chose."""

    def __init__(self, path: str, lua: Any, host: _Host):
        self.path = path
        self._lua = lua
        self._host = host

    @property
    def bundle(self) -> str:
        return self._host.bundle

    @property
    def root_path(self) -> str:
        return self._host.root_path

    @classmethod
    def load(cls, path: str, context: dict[str, Any] | None = None) -> LuaHooks:
        lua = lua54.LuaRuntime(unpack_returned_tuples=True, register_eval=False)
        host = _Host(lua, context or {})
        lua.execute(_LUA_PRELUDE, host)
        try:
            with open(path, encoding="utf-8") as fh:
                source = fh.read()
        except OSError as exc:
            raise LuaError(f"cannot read {path}: {exc.strerror}") from None
        loader = lua.globals().load
        loaded = loader(source, "@" + path)  # a function, or (nil, message)
        chunk, err = (loaded[0], loaded[1]) if isinstance(loaded, tuple) else (loaded, None)
        if chunk is None:
            raise LuaError(f"{_clean(err)} (fix the syntax of {path})")
        try:
            result = chunk()
        except lua54.LuaError as exc:
            raise LuaError(f"{path}: error while loading: {_clean(exc)}") from None
        if isinstance(result, tuple):
            result = result[0] if result else None
        if result not in (None, 0):
            raise LuaError(f"{path}: returned {result!r} on load (return slurm.SUCCESS or nothing)")
        for name in _HOOKS:
            if lua54.lua_type(lua.globals()[name]) != "function":
                raise LuaError(f"{path}: function {name} is not defined (scrun.lua needs both stage hooks)")
        return cls(path, lua, host)

    def _call(self, name: str, *args: Any) -> int:
        self._host.errors.clear()
        fn = self._lua.globals()[name]
        try:
            result = fn(*args)
        except lua54.LuaError as exc:
            raise LuaError(f"{name}: {_clean(exc)}") from None
        except Exception as exc:  # a Python error inside a slurm.* call
            raise LuaError(f"{name}: {exc}") from None
        if isinstance(result, tuple):
            result = result[0] if result else None
        if isinstance(result, (int, float)) and not isinstance(result, bool):
            return int(result)
        return SUCCESS

    def stage_in(self, container_id: str, bundle: str, spool_dir: str, config_file: str, job_id: int,
                 user_id: int, group_id: int, job_env: list[str]) -> None:
        env_table = self._lua.table_from(job_env)  # a sequence indexed from 1, so ipairs sees every entry
        rc = self._call("slurm_scrun_stage_in", container_id, bundle, spool_dir, config_file, job_id, user_id,
                        group_id, env_table)
        if rc != SUCCESS:
            said = f": {self._host.errors[-1]}" if self._host.errors else ""
            raise LuaError(f"{self.path}: slurm_scrun_stage_in returned {rc}{said} (staging failed, job cancelled)")

    def stage_out(self, container_id: str, bundle: str, orig_bundle: str, root_path: str, orig_root_path: str,
                  spool_dir: str, config_file: str, job_id: int, user_id: int, group_id: int) -> None:
        rc = self._call("slurm_scrun_stage_out", container_id, bundle, orig_bundle, root_path, orig_root_path,
                        spool_dir, config_file, job_id, user_id, group_id)
        if rc != SUCCESS:
            get_logger().error("%s: slurm_scrun_stage_out returned %s", self.path, rc)


def _clean(err: Any) -> str:
    text = str(err)
    return text.replace('[string "', "").strip()


def check_script(path: str) -> None:
    """Load scrun.lua once in `create` so a broken script fails there with file:line."""
    LuaHooks.load(path, {})
