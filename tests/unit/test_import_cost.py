"""The verbs engines call after `create` (state, start, kill, delete) stay cheap to start.

podman calls them without --root, once or more per container, on its critical path: each heavy
module they pull in costs 5–35 ms here (dataclasses ~20 ms through inspect and ast; typing ~10;
logging ~20). A fresh interpreter imports exactly what one such call would, and the heavy
modules must not be among them.
"""
from __future__ import annotations

import ast
import subprocess
import sys

import pytest

HEAVY = ("dataclasses", "typing", "asyncio", "logging", "argparse", "json", "subprocess", "inspect", "enum",
         "socket", "shutil", "tempfile", "lupa")

PROBE = """
import sys
before = set(sys.modules)
from scrun.cli.fast import parse_fast, resolve_root
args = parse_fast(sys.argv[1:])
assert args is not None, "the fast path refused " + repr(sys.argv[1:])
resolve_root(args)
from scrun.cli import {verb}
from scrun.anchor import client
print(sorted(set(sys.modules) - before))
"""


@pytest.mark.parametrize("argv", [["state", "c1"], ["start", "c1"], ["kill", "c1", "TERM"], ["delete", "--force", "c1"]],
                         ids=lambda a: a[0])
def test_post_create_verbs_import_nothing_heavy(argv):
    # -S as the installed launcher runs (tools/cluster/launcher.py); -I keeps the user's site out.
    probe = PROBE.format(verb=argv[0])
    out = subprocess.run([sys.executable, "-S", "-c", f"import sys; sys.path[:0] = {sys.path!r}\n" + probe, *argv],
                         capture_output=True, text=True, check=True, env={"PATH": "/usr/bin:/bin"}).stdout
    loaded = set(ast.literal_eval(out))
    assert "scrun.cli.fast" in loaded  # the probe measured something
    assert not loaded & set(HEAVY), f"`scrun {argv[0]}` imports {sorted(loaded & set(HEAVY))}"


CREATE_PROBE = """
import sys
before = set(sys.modules)
from scrun.cli.fast import parse_fast, run_verb  # noqa: F401
import scrun.anchor.child, scrun.anchor.request, scrun.cli.context, scrun.cli.create  # noqa: E401
import scrun.cli.pidfile, scrun.config.settings, scrun.core.bundle, scrun.core.executable, scrun.core.mounts  # noqa: E401
import scrun.core.options, scrun.core.specchecks, scrun.store.records  # noqa: E401
from scrun.log import log_config_from, setup_logging
setup_logging(log_config_from({}))  # create logs its progress on stderr
print(sorted(set(sys.modules) - before))
"""


def test_create_and_the_anchors_hand_over_import_nothing_heavy():
    """create's own path: no dataclasses (inspect, ast: ~20 ms), no typing, nothing of the
    anchor's event loop (the forked anchor imports that in parallel)."""
    out = subprocess.run([sys.executable, "-S", "-c", f"import sys; sys.path[:0] = {sys.path!r}\n" + CREATE_PROBE],
                         capture_output=True, text=True, check=True, env={"PATH": "/usr/bin:/bin"}).stdout
    loaded = set(ast.literal_eval(out))
    assert "scrun.cli.create" in loaded
    heavy = loaded & {"dataclasses", "typing", "asyncio", "argparse", "inspect", "subprocess", "shutil", "tempfile", "lupa",
                      "logging", "traceback"}  # logging: 5 ms on 3.11, 15 ms on 3.14 (traceback, _colorize …)
    assert not heavy, f"create imports {sorted(heavy)}"


ANCHOR_PROBE = """
import sys
sys.modules.setdefault("ssl", None)  # as the anchor does (anchor/forked.py)
import scrun.cli.create, scrun.anchor.forked, scrun.anchor.service, scrun.anchor.quick  # noqa: E401
import scrun.anchor.container, scrun.anchor.holder  # noqa: E401
print(sorted(k for k, v in sys.modules.items() if v is not None))
"""


def test_a_running_anchor_holds_no_module_it_does_not_need():
    """Every running container holds an anchor: what it imports is login-node memory, times the
    containers (bench/scale.py; these cost ~1 MiB per anchor of ~11)."""
    out = subprocess.run([sys.executable, "-S", "-c", f"import sys; sys.path[:0] = {sys.path!r}\n" + ANCHOR_PROBE],
                         capture_output=True, text=True, check=True, env={"PATH": "/usr/bin:/bin"}).stdout
    loaded = set(ast.literal_eval(out))
    assert "scrun.anchor.service" in loaded  # the probe measured something
    unneeded = loaded & {"datetime", "hashlib", "secrets", "hmac", "random", "shutil", "tempfile", "argparse", "ssl"}
    assert not unneeded, f"every anchor imports {sorted(unneeded)}"
