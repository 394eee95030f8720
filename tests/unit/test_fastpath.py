"""The fast path agrees with the argparse grammar; fastjson agrees with json."""
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scrun import fastjson
from scrun.cli.args import parse_command_line
from scrun.cli.fast import parse_fast
from scrun.core.signals import signal_name
from scrun.errors import UsageError

pytestmark = pytest.mark.unit

ACCEPTED = [
    ["state", "c1"], ["--root", "/r", "state", "c1"], ["--root=/r", "--log", "/l", "--log-format=json", "start", "c"],
    ["kill", "c", "9"], ["kill", "--all", "c", "KILL"], ["kill", "-a", "c"], ["delete", "-f", "c"],
    ["--rootless", "delete", "--force", "c"], ["--rootless", "true", "state", "c"], ["--systemd-cgroup", "--cgroup-manager", "cgroupfs", "state", "c"],
    ["-f", "/etc/slurm/slurm.conf", "state", "c"],
    ["create", "c"], ["create", "--bundle", "/b", "--pid-file=/p", "--console-socket", "/s", "--no-pivot", "c"],
    ["--log", "/l", "--log-format", "json", "create", "-b", "/b", "--preserve-fds", "3", "--no-new-keyring", "c"],
]
DECLINED = [
    ["state"], ["state", "a", "b"], ["kill", "c", "9", "x"], ["--bogus", "state", "c"], ["--ro", "/r", "state", "c"],
    ["create"], ["create", "c", "d"], ["create", "--preserve-fds", "x", "c"], ["create", "c", "--bundle", "/b"], ["--help"], ["state", "c", "--force"], ["delete", "c", "-f"], ["delete", "--bogus", "c"], [],
    ["--root"], ["--version", "state", "c"],
]


@pytest.mark.parametrize("argv", ACCEPTED, ids=" ".join)
def test_fast_path_parses_like_argparse(argv):
    fast = parse_fast(argv)
    full = parse_command_line(argv)
    assert fast is not None
    for attr in ("root", "log", "log_format", "slurm_conf", "verb", "id", "bundle", "pid_file", "console_socket", "preserve_fds"):
        assert getattr(fast, attr) == getattr(full, attr, None if attr != "preserve_fds" else 0), attr
    assert fast.all == getattr(full, "all", False) and fast.force == getattr(full, "force", False)
    assert fast.signal == getattr(full, "signal", "SIGTERM")


@pytest.mark.parametrize("argv", DECLINED, ids=" ".join)
def test_fast_path_declines_everything_else(argv):
    assert parse_fast(argv) is None


def test_declined_errors_still_come_from_argparse():
    with pytest.raises(UsageError):
        parse_command_line(["delete", "--bogus", "c"])


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children), max_leaves=30)


@given(json_values)
def test_fastjson_round_trips_like_json(value):
    assert json.loads(fastjson.dumps(value)) == value
    assert json.loads(fastjson.dumps(value, indent=2)) == value
    assert fastjson.loads(json.dumps(value)) == value


def test_fastjson_rejects_garbage_and_pretty_prints_like_json():
    for bad in ("", "{", "[1,]", "1 2", "nul"):
        with pytest.raises(ValueError):
            fastjson.loads(bad)
    doc = {"a": [1, {"b": None}], "c": "é\n"}
    assert fastjson.dumps(doc, indent=2) == json.dumps(doc, indent=2)


def test_signal_names_are_canonical():
    assert (signal_name(6), signal_name(17), signal_name(29), signal_name(9)) == ("SIGABRT", "SIGCHLD", "SIGIO", "SIGKILL")
