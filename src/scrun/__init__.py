"""scrun: an OCI runtime that runs each container as a Slurm job.

The start-up rule (written here once; tests/unit/test_import_cost.py's HEAVY list enforces it):
podman and containerd call `state`, `start`, `kill` and `delete` on their critical path, podman
`state` on every ps and inspect. A bare Python start is ~7 ms here; each heavy standard module
costs 5-35 ms more (dataclasses ~20 through inspect and ast, logging ~20, typing ~10, json,
argparse, asyncio, socket, subprocess, enum ...). So:
- those verbs run through cli/fast.py (no argparse) and import only scrun.cli.fast, their own
  cli module, store/live.py, anchor/client.py and what those need - none of HEAVY;
- modules on that path use fastjson (not json), the C _socket (not socket), NamedTuple-free
  plain classes, and string constants (not Enum): core/status.py, core/phase.py;
- `create` and the anchor's hand-over (anchor/quick.py) keep asyncio, dataclasses, typing and
  logging out as well (scrun.log is its own small logger: `logging` costs 5 ms on Python 3.11
  and 15 ms on 3.14); the forked anchor imports the event loop while salloc asks for the job;
- everything else (the anchor's loop, Lua, doctor, list) imports what it likes.
A change that breaks the rule fails the unit tier, with the module it pulled in named.
"""

__version__ = "0.5.0"
# The runtime-spec version whose CLI and state document we follow.
OCI_SPEC_VERSION = "1.0.2"
