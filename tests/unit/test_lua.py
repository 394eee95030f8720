"""scrun.lua host on real Lua 5.4: slurm.* functions, json round trip, hooks, load errors."""
import json
import pathlib

import pytest

from scrun.errors import LuaError
from scrun.lua.host import LuaHooks, check_script

pytestmark = pytest.mark.unit
DATA = pathlib.Path(__file__).resolve().parents[1] / "data"
HOOKS = """
function slurm_scrun_stage_in(id, bundle, spool_dir, config_file, job_id, user_id, group_id, job_env) %s end
function slurm_scrun_stage_out(id, bundle, orig_bundle, root_path, orig_root_path, spool_dir, config_file, job_id, user_id, group_id) %s end
"""


def script(tmp_path, body_in="return slurm.SUCCESS", body_out="return slurm.SUCCESS", extra=""):
    path = tmp_path / "scrun.lua"
    path.write_text(extra + HOOKS % (body_in, body_out))
    return str(path)


def test_time_str2mins_and_constants(tmp_path):
    hooks = LuaHooks.load(script(tmp_path, extra="""
        results = {slurm.time_str2mins("90"), slurm.time_str2mins("1:30"), slurm.time_str2mins("1-2"),
                   slurm.time_str2mins("UNLIMITED"), slurm.time_str2mins("x"), slurm.SUCCESS, slurm.ERROR, slurm.FAILURE}
    """))
    assert list(hooks._lua.globals().results.values()) == [90, 2, 1560, -1, -2, 0, -1, -1]


def test_paths_commands_and_job_env(tmp_path):
    out = tmp_path / "seen.json"
    body = f"""
        local old_b = slurm.set_bundle_path("/new/bundle")
        local old_r = slurm.set_root_path("/new/rootfs")
        local st, text = slurm.allocator_command("echo out; echo err >&2; exit 3")
        local n = 0
        for _, e in ipairs(job_env) do n = n + 1 end
        local f = io.open("{out}", "w")
        f:write(require('json').encode({{old_b = old_b, old_r = old_r, st = st, text = text, n = n, first = job_env[1],
                                         id = id, job_id = job_id, uid = user_id}}))
        f:close()
        return slurm.SUCCESS
    """
    hooks = LuaHooks.load(script(tmp_path, body), {"bundle": "/b", "root_path": "/b/rootfs"})
    hooks.stage_in("c1", "/b", "/spool", "/b/config.json", 42, 0, 0, ["A=1", "B=2", "C=3"])
    seen = json.loads(out.read_text())
    assert seen == {"old_b": "/b", "old_r": "/b/rootfs", "st": 3, "text": "out\nerr\n", "n": 3, "first": "A=1",
                    "id": "c1", "job_id": 42, "uid": 0}
    assert (hooks.bundle, hooks.root_path) == ("/new/bundle", "/new/rootfs")


def test_json_round_trips_a_podman_config(tmp_path):
    config = json.loads((DATA / "podman-config.json").read_text())
    config["linux"]["resources"] = {}
    config["extra"] = {"empty_list": [], "nested": [{}, [], 1, 2.5, True, None, "s"]}
    src, dst = tmp_path / "in.json", tmp_path / "out.json"
    src.write_text(json.dumps(config))
    hooks = LuaHooks.load(script(tmp_path, f"""
        local json = require 'json'
        local f = io.open("{src}"); local c = json.decode(f:read("a")); f:close()
        local g = io.open("{dst}", "w"); g:write(json.encode(c)); g:close()
    """))
    hooks.stage_in("c", "/b", "/s", "/c", 1, 0, 0, [])
    back = json.loads(dst.read_text())
    expected = json.loads(json.dumps(config))
    assert back == expected
    assert isinstance(back["process"]["user"]["uid"], int)


@pytest.mark.parametrize("text,needle", [
    ("function broken(", "scrun.lua:1"),
    ("function slurm_scrun_stage_in() end", "slurm_scrun_stage_out is not defined"),
    ("error('boom at load')", "boom at load"),
    (HOOKS % ("", "") + "return 7", "returned 7 on load"),
])
def test_load_errors_are_clear(tmp_path, text, needle):
    path = tmp_path / "scrun.lua"
    path.write_text(text)
    with pytest.raises(LuaError) as info:
        check_script(str(path))
    assert needle in str(info.value)


def test_hook_failures(tmp_path):
    hooks = LuaHooks.load(script(tmp_path, "return slurm.ERROR"))
    with pytest.raises(LuaError, match="returned -1"):
        hooks.stage_in("c", "/b", "/s", "/c", 1, 0, 0, [])
    hooks = LuaHooks.load(script(tmp_path, "local x = nil; return x.y"))
    with pytest.raises(LuaError, match="slurm_scrun_stage_in: .*scrun.lua:2"):
        hooks.stage_in("c", "/b", "/s", "/c", 1, 0, 0, [])


def test_logging_goes_through_scrun_levels(tmp_path):
    import io

    from scrun.log import get_logger, log_config_from, setup_logging

    hooks = LuaHooks.load(script(tmp_path, 'slurm.log_info("n=%d", 5); slurm.log(0, "plain"); slurm.error("bad"); '
                                 'slurm.log_debug("d"); return 0'))
    stream = io.StringIO()
    setup_logging(log_config_from({"SCRUN_STDERR_DEBUG": "info"}), stderr_stream=stream)
    try:
        hooks.stage_in("c", "/b", "/s", "/c", 1, 0, 0, [])
    finally:
        get_logger().close()
    assert stream.getvalue() == "scrun: lua: n=5\nscrun: lua: plain\nscrun: error: lua: bad\n"


@pytest.mark.parametrize("body, words", [
    ("while true do end", ["slurm_scrun_stage_in did not return within 0.5s", "SCRUN_LUA_TIMEOUT"]),
    ('slurm.allocator_command("sleep 30; echo never")', ["still running: sleep 30; echo never"]),
])
def test_a_hook_that_never_returns_is_stopped(tmp_path, body, words):
    import time

    hooks = LuaHooks.load(script(tmp_path, body_in=body), {"timeout": 0.5})
    began = time.monotonic()
    with pytest.raises(LuaError) as err:
        hooks.stage_in("c1", "/b", "/s", "/b/config.json", 7, 0, 0, [])
    assert time.monotonic() - began < 5
    assert all(w in str(err.value) for w in words), err.value
    # The clock is per call: a quick hook afterwards is fine.
    hooks._host.timeout = 5
    hooks.stage_out("c1", "/b", "/b", "/r", "/r", "/s", "/b/config.json", 7, 0, 0)


def test_a_script_that_loops_while_loading_is_stopped(tmp_path):
    path = script(tmp_path, extra="while true do end")
    with pytest.raises(LuaError, match=r"loading did not return within 0.3s"):
        check_script(str(path), 0.3)


def test_the_hook_timeout_setting():
    from scrun.config.settings import LUA_TIMEOUT_DEFAULT, lua_timeout_from
    from scrun.errors import ConfigError

    assert lua_timeout_from({}) == LUA_TIMEOUT_DEFAULT and lua_timeout_from({"SCRUN_LUA_TIMEOUT": "2.5"}) == 2.5
    for bad in ("0", "-1", "abc", "nan", "inf"):
        with pytest.raises(ConfigError, match=f'SCRUN_LUA_TIMEOUT="{bad}": not a number of seconds > 0'):
            lua_timeout_from({"SCRUN_LUA_TIMEOUT": bad})


def test_cache_image_hands_the_scripts_paths_to_the_anchor_and_its_answer_back(tmp_path):
    asked = []

    def cache_image(config_file, upper_dir):
        asked.append((config_file, upper_dir))
        return (None, "no ImageCache in scrun.conf") if len(asked) == 1 else ("/cache/u/k/rootfs", "")

    hooks = LuaHooks.load(script(tmp_path, extra="""
        function ask() local p, why = slurm.cache_image("/s/config.json", "/s/upper"); return tostring(p) .. "|" .. why end
    """), {"cache_image": cache_image})
    assert hooks._lua.globals().ask() == "nil|no ImageCache in scrun.conf"
    assert hooks._lua.globals().ask() == "/cache/u/k/rootfs|"
    assert asked == [("/s/config.json", "/s/upper")] * 2
