"""Command line: runc's grammar (global options, then the verb and its options, then the id).

Parsing lives here and in cli/args.py; each verb is a module with run(settings, args) -> int.
Errors become exit codes in exactly one place, main().
"""
from __future__ import annotations

import sys
from collections.abc import Sequence

from scrun.errors import ScrunError, exit_code_for


def main(argv: Sequence[str] | None = None) -> int:
    from scrun.cli.args import parse_command_line
    from scrun.cli.context import build_settings

    argv = list(sys.argv[1:] if argv is None else argv)
    log = None
    try:
        args = parse_command_line(argv)
        if args.command is None:
            return 0  # --version / --help already printed
        settings = build_settings(args)
        from scrun.log import setup_logging

        log = setup_logging(settings.log)
        return args.command.run(settings, args)
    except ScrunError as exc:
        _report(log, str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        _report(log, "interrupted")
        return exit_code_for(KeyboardInterrupt())
    except BrokenPipeError:
        return 1


def _report(log, message: str) -> None:
    """One line on stderr (and, through the logger, in --log for podman/containerd to show)."""
    if log is not None and log.handlers:
        log.error("%s", message)
    else:
        print(f"scrun: error: {message}", file=sys.stderr)
