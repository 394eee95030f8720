"""Argument grammar of runc/crun as podman, conmon and containerd use it.

Global options come before the verb; `--opt=v` and `--opt v` both work; unknown options or
verbs exit 2 with a usage line. Flags that only matter to a local runtime are accepted and
ignored ("so that a runc command line won't fail", as crun puts it).
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from scrun.version import version_text
from scrun.errors import UsageError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # noqa: D401 - argparse hook
        raise UsageError(f"{message}\n{self.format_usage().strip()}")


def _command_table():
    from scrun.cli import cache, create, delete, doctor, features, kill, pause, start, state
    from scrun.cli import exec as exec_verb
    from scrun.cli import list as list_verb

    return {"create": create, "start": start, "state": state, "kill": kill, "delete": delete, "pause": pause,
            "resume": pause, "exec": exec_verb, "list": list_verb, "doctor": doctor, "features": features, "cache": cache}


def _bool_text(value: str) -> bool:
    v = value.lower()
    if v in ("true", "1", "yes"):
        return True
    if v in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def build_parser() -> _Parser:
    parser = _Parser(prog="scrun", add_help=False,
                     description="OCI runtime that runs each container as a Slurm job.",
                     usage="scrun [global options] {create,start,state,kill,delete,pause,resume,exec,list,doctor,features,cache} [options] <container-id>")
    g = parser.add_argument_group("global options")
    g.add_argument("-h", "--help", "--usage", action="store_true", dest="help", help="show this help and exit")
    g.add_argument("-V", "--version", action="store_true", help="print the version and exit")
    g.add_argument("-v", action="count", default=0, dest="verbose", help="more logging on stderr (repeat for more)")
    g.add_argument("--debug", action="store_true", help="debug logging")
    # --slurm-conf: podman passes no environment to runtimes, only `--runtime-flag NAME=VALUE`
    # as `--NAME=VALUE`, and a one-letter flag cannot be spelled that way.
    g.add_argument("-f", "--slurm-conf", dest="slurm_conf", metavar="SLURM_CONF",
                   help="slurm.conf to use (default: $SLURM_CONF, /etc/slurm/slurm.conf)")
    g.add_argument("--log", metavar="FILE", help="also log to FILE")
    g.add_argument("--log-format", choices=("text", "json"), type=str.lower, help="format of --log (default text)")
    g.add_argument("--root", metavar="DIR", help="state directory (default /run/scrun for root, else $XDG_RUNTIME_DIR/scrun)")
    g.add_argument("--rootless", type=_bool_text, nargs="?", const=True, metavar="true|false", help="ignored")
    g.add_argument("--systemd-cgroup", action="store_true", help="ignored")
    g.add_argument("--cgroup-manager", metavar="MANAGER", help="ignored (cgroupfs, systemd or disabled)")
    sub = parser.add_subparsers(dest="verb", metavar="command", parser_class=_Parser)
    for name, module in _command_table().items():
        p = sub.add_parser(name, help=module.__doc__.splitlines()[0], add_help=True,
                           usage=f"scrun [global options] {module.USAGE}")
        module.add_arguments(p)
        p.set_defaults(command=module)
    from scrun.cli import unsupported

    for name in unsupported.REASONS:
        # Known runc verbs get a reason, not "invalid choice"; hidden from the verb list.
        p = sub.add_parser(name, add_help=False, prefix_chars="\0")
        unsupported.add_arguments(p)
        p.set_defaults(command=unsupported)
    return parser


def _normalise(argv: Sequence[str]) -> list[str]:
    """A bare `--rootless` must not swallow the verb that follows it (upstream scrun's bug)."""
    out = list(argv)
    for i, word in enumerate(out):
        if word in _command_table():
            break
        if word == "--rootless" and (i + 1 >= len(out) or out[i + 1].lower() not in ("true", "false", "1", "0", "yes", "no")):
            out[i] = "--rootless=true"
    return out


def parse_command_line(argv: Sequence[str]) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(_normalise(argv))
    if args.help:
        sys.stdout.write(parser.format_help())
        args.command = None
        return args
    if args.version:
        sys.stdout.write(version_text())
        args.command = None
        return args
    if args.verb is None:
        raise UsageError(f"no command given\n{parser.format_usage().strip()}")
    return args
