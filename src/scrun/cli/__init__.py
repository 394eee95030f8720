"""Command line: runc's grammar (global options, then the verb and its options, then the id).

The full grammar lives in cli/args.py (argparse); cli/fast.py serves the plain calls engines
make after `create` without its import cost. Each verb is a module with run(settings, args).
Errors become exit codes in exactly one place, main().
"""
from __future__ import annotations

import sys

from scrun.errors import ScrunError, exit_code_for


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv in (["--version"], ["-V"], ["version"]):  # `version`: upstream scrun's verb
        from scrun.version import version_text

        sys.stdout.write(version_text())
        return 0
    if argv[:1] == ["cdi-run"]:  # the compute node's side, not a runc verb (cli/cdirun.py)
        from scrun.cli.cdirun import main as cdi_run

        return cdi_run(argv[1:])
    from scrun.cli.fast import parse_fast

    fast = parse_fast(argv)
    # Any logging request (flags or SCRUN_*DEBUG) takes the full path, which sets logging up.
    if fast is not None and not (fast.debug or fast.verbose or _debug_env()):
        try:
            from scrun.cli.fast import run_verb

            return run_verb(fast)
        except ScrunError as exc:
            return _report_with_settings(argv, exc)
        except KeyboardInterrupt:
            return exit_code_for(KeyboardInterrupt())
        except BrokenPipeError:
            return 1
    return _main_full(argv)


def entry() -> None:
    """The program: main(), then exit at once. Interpreter teardown (module GC) costs 5–20 ms
    per call, on the engine's critical path for every verb, and nothing of ours needs it.
    No cycle collection either: a CLI call lives for milliseconds, and the collector's passes
    over the freshly imported modules cost more than the garbage it would free."""
    import gc

    gc.disable()  # the forked anchor enables it again once it has imported everything
    code = main()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: stdout is the API, say we failed
            code = code or 1
    import os

    os._exit(code)


def _debug_env() -> bool:
    import os

    return any(os.environ.get(k) for k in ("SCRUN_DEBUG", "SCRUN_STDERR_DEBUG", "SCRUN_FILE_DEBUG", "SCRUN_SYSLOG_DEBUG"))


def _main_full(argv: list[str]) -> int:
    from scrun.cli.args import parse_command_line
    from scrun.cli.context import build_settings

    log = None
    try:
        args = parse_command_line(argv)
        if args.command is None:
            return 0  # --version / --help already printed
        settings = build_settings(args)
        from scrun.errors import ConfigError
        from scrun.log import setup_logging

        try:
            log = setup_logging(settings.log)
        except ValueError as exc:  # --log cannot be opened
            raise ConfigError(str(exc)) from None
        return args.command.run(settings, args)
    except ScrunError as exc:
        _report(log, str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        _report(log, "interrupted")
        return exit_code_for(KeyboardInterrupt())
    except BrokenPipeError:
        return 1


def _report_with_settings(argv: list[str], exc: ScrunError) -> int:
    """An error on the fast path: now pay for logging, so --log/--log-format get it too."""
    log = None
    try:
        from scrun.cli.args import parse_command_line
        from scrun.cli.context import build_settings
        from scrun.log import setup_logging

        log = setup_logging(build_settings(parse_command_line(argv)).log)
    except (ScrunError, ValueError):
        pass
    _report(log, str(exc))
    return exc.exit_code


def _report(log, message: str) -> None:
    """One line on stderr (and, through the logger, in --log for podman/containerd to show)."""
    if log is not None and log.sinks:
        log.error("%s", message)
    else:
        print(f"scrun: error: {message}", file=sys.stderr)
