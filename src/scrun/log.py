"""Logging: Slurm's level names, text or JSON sinks, without the logging module (Logger says why).

Levels (Slurm's): quiet, fatal, error, info, verbose, debug, debug2 … debug5. Three sinks with
their own level: stderr (default info), the --log file (text, or JSON lines with the keys
runc/crun write: level, msg, time — containerd and podman read those to show our errors), and
syslog (off by default). Nothing is configured at import time.
"""
from __future__ import annotations

import errno
import json
import os
import sys
import time
from collections import namedtuple
from _thread import allocate_lock
from collections.abc import Mapping

from scrun.errors import ConfigError

LEVEL_NAMES = ("quiet", "fatal", "error", "info", "verbose", "debug", "debug2", "debug3", "debug4", "debug5")
# Slurm level → logging level. quiet is above everything so nothing passes.
_PY_LEVEL = {0: 100, 1: 50, 2: 40, 3: 20, 4: 15, 5: 10, 6: 9, 7: 8, 8: 7, 9: 6}
_PY_TO_NAME = {50: "fatal", 40: "error", 30: "warning", 20: "info", 15: "verbose", 10: "debug", 9: "debug2", 8: "debug3", 7: "debug4", 6: "debug5"}
# runc/logrus level words for JSON lines.
_JSON_LEVEL = {"fatal": "fatal", "error": "error", "warning": "warning", "info": "info", "verbose": "debug"}

LOGGER_NAME = "scrun"


def parse_level(text: str) -> int:
    """`debug2` or `6` → 6. Raises ValueError naming the valid words."""
    value = text.strip().lower()
    if value.isdigit() and int(value) < len(LEVEL_NAMES):
        return int(value)
    if value in LEVEL_NAMES:
        return LEVEL_NAMES.index(value)
    raise ValueError(f"invalid log level {text!r}: use one of {', '.join(LEVEL_NAMES)} or 0-9")


class LogConfig(namedtuple("LogConfig", "stderr_level file_level syslog_level log_file log_format prog",
                           defaults=(3, 3, 0, None, "text", "scrun"))):
    """Slurm levels (0–9) of the three sinks, the --log file and its format, the name in lines."""

    __slots__ = ()


def log_config_from(env: Mapping[str, str], *, verbose: int = 0, debug: bool = False,
                    log_file: str | None = None, log_format: str | None = None,
                    oci_overrides: Mapping[str, str | None] | None = None) -> LogConfig:
    """Precedence: defaults < oci.conf *Debug < SCRUN_DEBUG < SCRUN_{STDERR,SYSLOG,FILE}_DEBUG < flags.

    Raises ValueError with the variable's name for a bad value.
    """
    stderr, file, syslog = 3, 3, 0
    for key, which in (("stdio_debug", "stderr"), ("file_debug", "file"), ("syslog_debug", "syslog")):
        value = (oci_overrides or {}).get(key)
        if value:
            level = parse_level(value)
            stderr, file, syslog = (level if which == "stderr" else stderr, level if which == "file" else file,
                                    level if which == "syslog" else syslog)

    def env_level(name: str) -> int | None:
        if name not in env or env[name] == "":
            return None
        try:
            return parse_level(env[name])
        except ValueError as exc:
            raise ValueError(f"{name}={env[name]!r}: {exc}") from None

    both = env_level("SCRUN_DEBUG")
    if both is not None:
        stderr = file = syslog = both
    for name in ("SCRUN_STDERR_DEBUG", "SCRUN_SYSLOG_DEBUG", "SCRUN_FILE_DEBUG"):
        level = env_level(name)
        if level is None:
            continue
        if name == "SCRUN_STDERR_DEBUG":
            stderr = level
        elif name == "SCRUN_SYSLOG_DEBUG":
            syslog = level
        else:
            file = level
    if debug:
        stderr = max(stderr, 5)
        file = max(file, 5)
    stderr = min(stderr + verbose, 9)
    fmt = (log_format or "text").lower()
    if fmt not in ("text", "json"):
        raise ValueError(f"--log-format {log_format!r}: use text or json")
    return LogConfig(stderr, file, syslog, log_file, fmt)


class _Sink(namedtuple("_Sink", "level emit closer")):
    """Where lines of `level` and above go: `emit(level, msg, when)`; `closer` closes what it opened."""

    __slots__ = ()


class Logger:
    """The `scrun` logger: a level, a few sinks, and the standard library's method names.

    Not the `logging` module: importing it costs every anchor 1.2 MiB (Python 3.11) to 3.1 MiB
    (3.14, where it pulls in traceback, _colorize and dataclasses) and create ~9 ms on 3.14, for
    three sinks that each write one line (bench/scale.py, tests/unit/test_import_cost.py)."""

    def __init__(self) -> None:
        self.sinks: list[_Sink] = []
        self.level = 100  # nothing passes until setup_logging
        self.worst = 0  # the highest level written (the anchor server keeps its log if it warned)
        self._lock = allocate_lock()  # the anchor logs from its import thread too

    def isEnabledFor(self, level: int) -> bool:  # noqa: N802  (logging's name: call sites read the same)
        return level >= self.level

    def log(self, level: int, msg: str, *args: object, exc_info: bool = False) -> None:
        if level < self.level:
            return
        self.worst = max(self.worst, level)
        text = msg % args if args else msg
        if exc_info:
            import traceback  # only for a bug's report

            text = f"{text}\n{traceback.format_exc().rstrip()}"
        when = time.time()
        with self._lock:
            for sink in self.sinks:
                if level >= sink.level:
                    try:
                        sink.emit(level, text, when)
                    except (OSError, ValueError):  # a closed or broken sink must not break the caller
                        pass

    def debug(self, msg: str, *args: object, **kw: bool) -> None:
        self.log(10, msg, *args, **kw)

    def info(self, msg: str, *args: object, **kw: bool) -> None:
        self.log(20, msg, *args, **kw)

    def warning(self, msg: str, *args: object, **kw: bool) -> None:
        self.log(30, msg, *args, **kw)

    def error(self, msg: str, *args: object, **kw: bool) -> None:
        self.log(40, msg, *args, **kw)

    def close(self) -> None:
        """Drop every sink, closing the files it opened (the forked anchor leaves create's)."""
        with self._lock:
            sinks, self.sinks, self.level = self.sinks, [], 100
        for sink in sinks:
            if sink.closer is not None:
                try:
                    sink.closer()
                except OSError:
                    pass


def _text_format(prog: str, with_time: bool):
    def fmt(level: int, msg: str, when: float) -> str:
        name = _PY_TO_NAME.get(level, "debug")
        prefix = "" if name == "info" else f"{name}: "
        if with_time:
            return f"[{local_iso_time(when, 3)}] {prefix}{msg}\n"
        return f"{prog}: {prefix}{msg}\n"
    return fmt


def _json_format(level: int, msg: str, when: float) -> str:
    """One object per line: {"level": …, "msg": …, "time": RFC3339} like runc's logrus output."""
    name = _PY_TO_NAME.get(level, "debug")
    return json.dumps({"level": _JSON_LEVEL.get(name, "debug"), "msg": msg, "time": local_iso_time(when, 6)}) + "\n"


def local_iso_time(when: float, digits: int) -> str:
    """datetime's local isoformat (fraction truncated to `digits`), without importing datetime:
    every anchor imports this module, and datetime costs each one 0.3 MiB (bench/scale.py)."""
    moment = time.localtime(when)
    offset = time.strftime("%z", moment)
    fraction = int(when * 10 ** digits) % 10 ** digits
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', moment)}.{fraction:0{digits}d}{offset[:3]}:{offset[3:]}"


def open_log_file(path: str) -> int:
    """An fd appending to --log's file, opened so that nobody else's file or link is written.

    The path is the caller's, but the file at it may not be: in a directory others can write
    (/tmp) a user could put a link there to a file of root's, or a file of their own to read what
    root logs. So: links are not followed (except root's own in a root-only directory, as
    /dev/stderr), a regular file must be ours, and its mode is set through the fd."""
    import stat

    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOCTTY
    try:
        try:
            fd = os.open(path, flags | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            if exc.errno != errno.ELOOP or not _root_only_link(path):
                raise
            fd = os.open(path, flags, 0o600)
    except OSError as exc:
        what = "it is a symlink, which --log does not follow" if exc.errno == errno.ELOOP else exc.strerror
        raise ConfigError(f"--log {path}: cannot open: {what}") from None
    st = os.fstat(fd)
    if stat.S_ISREG(st.st_mode):
        if st.st_uid != os.getuid():
            os.close(fd)
            raise ConfigError(f"--log {path}: belongs to uid {st.st_uid}, not to you: scrun writes its log only to "
                              "a file of its own (remove it, or choose another path)")
        os.fchmod(fd, 0o600)
    return fd


def _root_only_link(path: str) -> bool:
    """A symlink of root's in a directory only root can change (/dev/stderr, /dev/log …)."""
    import stat

    try:
        link, parent = os.lstat(path), os.stat(os.path.dirname(os.path.abspath(path)))
    except OSError:
        return False
    return link.st_uid == 0 and parent.st_uid == 0 and not parent.st_mode & 0o022 and stat.S_ISLNK(link.st_mode)


def _stream_sink(level: int, stream, prog: str) -> _Sink:
    fmt = _text_format(prog, with_time=False)

    def emit(lvl: int, msg: str, when: float) -> None:
        stream.write(fmt(lvl, msg, when))
        stream.flush()
    return _Sink(level, emit, None)


def _file_sink(level: int, path: str, fmt) -> _Sink:
    fd = open_log_file(path)

    def emit(lvl: int, msg: str, when: float) -> None:
        os.write(fd, fmt(lvl, msg, when).encode("utf-8", "backslashreplace"))  # O_APPEND: a line per write
    return _Sink(level, emit, lambda: os.close(fd))


_SYSLOG_PRIORITY = ((40, 3), (30, 4), (20, 6))  # error → LOG_ERR, warning, info; below: LOG_DEBUG


def _syslog_sink(level: int, prog: str) -> _Sink:
    import syslog

    syslog.openlog(prog, syslog.LOG_PID, syslog.LOG_USER)

    def emit(lvl: int, msg: str, when: float) -> None:
        syslog.syslog(next((prio for lowest, prio in _SYSLOG_PRIORITY if lvl >= lowest), 7), msg)
    return _Sink(level, emit, syslog.closelog)


def setup_logging(config: LogConfig, *, stderr_stream=None) -> Logger:
    """Install the sinks of `config` on the `scrun` logger (replacing earlier ones)."""
    logger = get_logger()
    logger.close()
    sinks = []
    if config.stderr_level > 0:
        sinks.append(_stream_sink(_PY_LEVEL[config.stderr_level], stderr_stream or sys.stderr, config.prog))
    if config.log_file and config.file_level > 0:
        fmt = _json_format if config.log_format == "json" else _text_format(config.prog, with_time=True)
        sinks.append(_file_sink(_PY_LEVEL[config.file_level], config.log_file, fmt))
    if config.syslog_level > 0 and os.path.exists("/dev/log"):
        sinks.append(_syslog_sink(_PY_LEVEL[config.syslog_level], config.prog))
    with logger._lock:
        logger.sinks = sinks
        logger.level = min((sink.level for sink in sinks), default=100)
    return logger


_LOGGER = Logger()


def get_logger() -> Logger:
    return _LOGGER


# Slurm-named helpers so call sites read like the man page's levels.
VERBOSE = 15
DEBUG2, DEBUG3, DEBUG4, DEBUG5 = 9, 8, 7, 6


def py_level(slurm_level: int) -> int:
    return _PY_LEVEL[max(0, min(9, slurm_level))]
