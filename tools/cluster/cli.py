"""devcluster's command line: up, down, status, exec, test, lanes, packages."""
from __future__ import annotations

import argparse
import os
import sys

from cluster import manage, packages
from cluster.lanes import native_lane, ordered_names, resolve
from cluster.shell import ClusterError

USAGE = """\
devcluster up [--lane L ...] [--nodes N]   install, configure and start lanes (default: all)
devcluster down [--lane L ...]             stop them (a namespace lane leaves no process or mount)
devcluster status                          daemons and nodes of every lane
devcluster exec --lane L -- CMD ...        run CMD in a lane, in this checkout
devcluster python --lane L -- ARGS         the lane's Python with scrun (e.g. bench/run.py)
devcluster test --lane L -- PYTEST_ARGS    run pytest in a lane (SCRUN_LANE names it in the report)
devcluster test-lanes [--lane L ...] [--at-once N] -- PYTEST_ARGS
                                           pytest in several lanes side by side (default: all)
devcluster lanes                           lane names, the host's own first
devcluster packages                        install the host's packages only
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="devcluster", description="Local Slurm lanes for scrun.", usage=USAGE)
    sub = parser.add_subparsers(dest="verb", required=True)
    p_up = sub.add_parser("up")
    p_up.add_argument("--lane", action="append", help="slurm-22.05, slurm-24.11 or all (repeatable)")
    p_up.add_argument("--nodes", type=int, default=int(os.environ.get("SCRUN_DEV_NODES", "1")),
                      help="number of slurmd per lane (default 1, env SCRUN_DEV_NODES)")
    p_up.add_argument("--scrun", default="/usr/local/bin/scrun", help="path of the scrun executable podman runs")
    p_up.add_argument("--pip", help="host pip that fetches wheels for a namespace lane's Python")
    p_up.add_argument("--no-podman", action="store_true", help="skip podman configuration and image")
    p_down = sub.add_parser("down")
    p_down.add_argument("--lane", action="append")
    sub.add_parser("status")
    sub.add_parser("lanes")
    sub.add_parser("packages")
    p_lanes = sub.add_parser("test-lanes")
    p_lanes.add_argument("--lane", action="append")
    p_lanes.add_argument("--at-once", type=int, default=int(os.environ.get("SCRUN_LANES_AT_ONCE", "0")),
                         help="lanes running together (default 0: all; env SCRUN_LANES_AT_ONCE)")
    p_lanes.add_argument("rest", nargs=argparse.REMAINDER)
    for verb in ("exec", "test", "python"):
        p = sub.add_parser(verb)
        p.add_argument("--lane", required=True)
        p.add_argument("rest", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    try:
        return dispatch(args)
    except ClusterError as exc:
        print(f"devcluster: error: {exc}", file=sys.stderr)
        return 1


def dispatch(args: argparse.Namespace) -> int:
    if args.verb == "lanes":
        print(" ".join(ordered_names()))
        return 0
    if args.verb == "packages":
        packages.ensure_host_packages(packages.lane_packages(native_lane().suite) + packages.HOST_TOOLS)
        return 0
    if args.verb == "up":
        if not 1 <= args.nodes <= 16:
            raise ClusterError(f"--nodes {args.nodes}: choose 1 to 16")
        specs = resolve(args.lane)
        packages.ensure_host_packages(packages.lane_packages(native_lane().suite) + packages.HOST_TOOLS)
        opts = manage.UpOptions(nodes=args.nodes, scrun=args.scrun, pip=args.pip, podman=not args.no_podman)
        for spec in specs:
            manage.up(spec, opts)
        return 0
    if args.verb == "down":
        for spec in resolve(args.lane):
            manage.down(spec)
        return 0
    if args.verb == "status":
        return 0 if all([manage.status(spec) for spec in resolve(None)]) else 1
    rest = args.rest[1:] if args.rest[:1] == ["--"] else args.rest
    if args.verb == "test-lanes":
        from cluster.sidebyside import run_side_by_side

        specs = resolve(args.lane)
        if args.at_once < 0:
            raise ClusterError(f"--at-once {args.at_once}: 0 (all lanes) or more")
        return run_side_by_side(specs, rest, manage.REPO / ".cache", args.at_once or len(specs))
    spec = resolve([args.lane])[0]
    if args.verb == "exec":
        if not rest:
            raise ClusterError("exec needs a command after --")
        return manage.run_in_lane(manage.exec_argv(spec, rest, {}))
    if args.verb == "python":
        return manage.run_in_lane(manage.python_argv(spec, rest))
    return manage.run_in_lane(manage.pytest_argv(spec, rest))
