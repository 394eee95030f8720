"""scrun.lua host: real Lua 5.4 through lupa. The only module that imports lupa.

The site script defines slurm_scrun_stage_in and slurm_scrun_stage_out and may call the
`slurm` table documented in scrun(1). `require 'json'` gives encode/decode that round-trip a
config.json exactly: arrays stay arrays (even empty), objects stay objects, integers stay
integers — crun rejects a config where they do not.

Hooks are called from a worker thread of the anchor; commands they run are plain children
waited for by pid, so no SIGCHLD handler can steal their status (upstream's race).
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from typing import Any

from lupa import lua54

from scrun.config.defaults import LUA_TIMEOUT_DEFAULT
from scrun.core.timefmt import time_str2mins
from scrun.errors import LuaError
from scrun.log import DEBUG2, DEBUG3, DEBUG4, VERBOSE, get_logger

SUCCESS = 0
ERROR = -1
_HOOKS = ("slurm_scrun_stage_in", "slurm_scrun_stage_out")
# slurm.log(level, msg): 0 info, 1 verbose, 2 debug, 3 debug2, 4 debug3, >4 debug4.
_LOG_LEVELS = {0: 20, 1: VERBOSE, 2: 10, 3: DEBUG2, 4: DEBUG3}

class HookTimeout(Exception):
    """Raised inside a hook (from the instruction hook or a command) once its time is up."""

    def __init__(self, timeout: float, command: str | None = None):
        running = f" (still running: {command[:80]})" if command else ""
        super().__init__(f"did not return within {timeout:g}s{running}: set SCRUN_LUA_TIMEOUT for longer")


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
-- The hook's deadline, checked every 10000 VM instructions (a loop that never calls out).
debug.sethook(function() host.check_deadline() end, "", 10000)
function slurm.remote_command(s) local st, out = host.remote_command(tostring(s)); return st, out end
function slurm.cache_image(c, u) local p, why = host.cache_image(tostring(c), tostring(u)); return p, why end

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
        self.timeout: float = float(context.get("timeout", LUA_TIMEOUT_DEFAULT))
        self.deadline: float | None = None  # monotonic time the running hook must end by
        # slurm.cache_image: the anchor's (anchor.cachedroot); scrun.lua only names its files.
        self._cache_image: Callable[[str, str], tuple[str | None, str]] = context.get(
            "cache_image", lambda config_file, upper_dir: (None, "no image cache here"))

    def start_clock(self) -> None:
        self.deadline = time.monotonic() + self.timeout

    def remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()

    def check_deadline(self) -> None:
        left = self.remaining()
        if left is not None and left <= 0:
            raise HookTimeout(self.timeout)

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

    def cache_image(self, config_file: str, upper_dir: str) -> tuple[str | None, str]:
        return self._cache_image(config_file, upper_dir)

    # commands ------------------------------------------------------------
    def _command(self, argv: list[str]) -> tuple[int, str]:
        env = self.env() or dict(os.environ)
        env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
        self.log_sink.log(DEBUG2, "lua command: %s", argv)
        self.check_deadline()
        proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)
        try:
            out, _ = proc.communicate(timeout=self.remaining())
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # its own session: the command and its children
            proc.communicate()
            raise HookTimeout(self.timeout, argv[-1]) from None
        status = proc.returncode if proc.returncode >= 0 else 128 - proc.returncode
        return status, out.decode(errors="replace")

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
        host.start_clock()
        try:
            result = chunk()
        except lua54.LuaError as exc:
            raise LuaError(f"{path}: error while loading: {_clean(exc)}") from None
        except HookTimeout as exc:
            raise LuaError(f"{path}: loading {exc}") from None
        finally:
            host.deadline = None
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
        self._host.start_clock()
        try:
            result = fn(*args)
        except lua54.LuaError as exc:
            raise LuaError(f"{name}: {_clean(exc)}") from None
        except Exception as exc:  # a Python error inside a slurm.* call, or HookTimeout
            raise LuaError(f"{self.path}: {name} {exc}" if isinstance(exc, HookTimeout) else f"{name}: {exc}") from None
        finally:
            self._host.deadline = None
        if isinstance(result, tuple):
            result = result[0] if result else None
        if result is None:
            return SUCCESS  # no return statement: upstream counts it a success
        if isinstance(result, (int, float)) and not isinstance(result, bool):
            return int(result)
        raise LuaError(f"{self.path}: {name} returned {_describe(result)} (return slurm.SUCCESS or slurm.ERROR)")

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


def _describe(value: Any) -> str:
    kind = lua54.lua_type(value)
    return f"a {kind}" if kind else repr(value)


def _clean(err: Any) -> str:
    """One line: Lua's message without the stack traceback lupa appends."""
    text = str(err).split("\nstack traceback:", 1)[0]
    return " ".join(text.replace('[string "', "").split())


def check_script(path: str, timeout: float = LUA_TIMEOUT_DEFAULT) -> None:
    """Load scrun.lua once in `create` so a broken script fails there with file:line."""
    LuaHooks.load(path, {"timeout": timeout})
